"""benchmarks/weights_collect.py: the recipe's video collection on 1 and on N processes, and the files' equality."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest


def _h5(path, frames, attr="a"):
    with h5py.File(path, "w") as f:
        f.attrs["policy"] = attr
        f.create_dataset("data/demo_0/obs", data=frames)
    return path


def test_same_files_names_a_changed_dataset_attribute_or_count(benchmark_module, tmp_path):
    bench = benchmark_module("weights_collect")
    frames = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = [_h5(tmp_path / "a" / "x.h5", frames), _h5(tmp_path / "a" / "y.h5", frames)]
    two = [_h5(tmp_path / "b" / "x.h5", frames.copy()), _h5(tmp_path / "b" / "y.h5", frames)]
    assert bench.same_files(one, two) == []
    _h5(tmp_path / "b" / "y.h5", frames + 1)
    assert bench.same_files(one, two) == ["y.h5"]
    _h5(tmp_path / "b" / "y.h5", frames, attr="b")  # the same pixels, another attribute
    assert bench.same_files(one, two) == ["y.h5"]
    assert bench.same_files(one, two[:1]) == ["2 files against 1"]


def test_workers_below_two_are_refused(benchmark_module, tmp_path, capsys):
    bench = benchmark_module("weights_collect")
    with pytest.raises(SystemExit, match="2"):
        bench.main(["--workers", "1", "--out", str(tmp_path / "r")])
    assert "--workers must be >= 2 (it is compared with 1), got 1" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


@pytest.mark.slow
def test_quick_run_times_both_collections_and_finds_the_same_files(benchmark_module, tmp_path):
    bench = benchmark_module("weights_collect")
    out = tmp_path / "report"
    assert bench.main(["--quick", "--workers", "2", "--scratch", str(tmp_path), "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert [row["same_files"] for row in result["rows"]] == [True, True]
    assert result["rows"][0]["files"] == 2 * 6 and result["rows"][1]["files"] == 2
    assert all(row["seconds_1"] > 0 and row["seconds_n"] > 0 for row in result["rows"])
    markdown = out.with_suffix(".md").read_text()
    assert "| planner detours, one round (`collect_all_planner_detours`) | 2 |" in markdown and "**missed**" not in markdown
    assert list(tmp_path.glob("weights_collect-*")) == []  # the scratch collections are removed
