"""benchmarks/weights_reproduce.py: a fresh recipe run's weights against the bundled ones, tensor by tensor."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from safetensors.numpy import save_file


def _write(folder, name, tensors, training=None):
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / f"{name}.safetensors"))
    (folder / f"{name}.json").write_text(json.dumps({"training": training or {}}))
    return folder / f"{name}.safetensors"


def test_identical_weights_are_bit_for_bit_and_a_changed_tensor_is_named(benchmark_module, tmp_path):
    bench = benchmark_module("weights_reproduce")
    weights = {"a.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "b.bias": np.ones(3, np.float32)}
    bundled = _write(tmp_path / "bundled", "enc", weights, {"command": "make it", "torch_threads": 1})
    same = _write(tmp_path / "same", "enc", {k: v.copy() for k, v in weights.items()})
    changed = dict(weights, **{"b.bias": np.array([1.0, 1.5, 1.0], np.float32)})
    other = _write(tmp_path / "other", "enc", changed)

    row = bench.compare(bundled, same)
    assert row["bit_for_bit"] and row["differing"] == 0 and row["max_abs_diff"] == 0.0
    row = bench.compare(bundled, other)
    assert not row["bit_for_bit"] and row["differing"] == 1 and row["worst_tensor"] == "b.bias"
    assert row["max_abs_diff"] == pytest.approx(0.5) and row["max_rel_diff"] == pytest.approx(0.5)
    extra = _write(tmp_path / "extra", "enc", dict(weights, **{"c": np.zeros(1, np.float32)}))
    row = bench.compare(bundled, extra)
    assert not row["bit_for_bit"] and row["only_fresh"] == ["c"] and row["differing"] == 0

    out = tmp_path / "report"
    assert bench.main(["--fresh", f"enc={other}", "--bundled-dir", str(tmp_path / "bundled"), "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["rows"][0]["bundled_recorded"]["command"] == "make it"
    markdown = out.with_suffix(".md").read_text()
    assert "| enc | 1 of 2 | 0.5 |" in markdown and "**missed**" in markdown


def test_missing_or_corrupt_weights_are_named_and_nothing_is_written(benchmark_module, tmp_path, capsys):
    bench = benchmark_module("weights_reproduce")
    _write(tmp_path / "bundled", "enc", {"a": np.ones(2, np.float32)})
    corrupt = tmp_path / "fresh" / "enc.safetensors"
    corrupt.parent.mkdir()
    corrupt.write_bytes(b"not a safetensors file")
    out = tmp_path / "report"
    for fresh, message in ((tmp_path / "nope.safetensors", "fresh weights .*nope.safetensors not found"),
                           (corrupt, "fresh weights .*enc.safetensors are not a readable safetensors file")):
        assert bench.main(["--fresh", f"enc={fresh}", "--bundled-dir", str(tmp_path / "bundled"), "--out", str(out)]) == 2
        assert re.search(message, capsys.readouterr().err)
    assert not out.with_suffix(".json").exists() and not out.with_suffix(".md").exists()
    with pytest.raises(SystemExit, match="2"):
        bench.main(["--out", str(out)])
    assert "give at least one --fresh NAME=PATH" in capsys.readouterr().err


def test_merge_keeps_the_other_encoders_rows_and_names_their_run(benchmark_module, tmp_path, capsys):
    bench = benchmark_module("weights_reproduce")
    weights = {"a": np.ones(2, np.float32)}
    bundled = tmp_path / "bundled"
    for name in ("one", "two"):
        _write(bundled, name, weights)
    first = _write(tmp_path / "f1", "one", dict(a=np.full(2, 2.0, np.float32)))
    second = _write(tmp_path / "f2", "two", weights, {"train_seconds": 3600.4, "torch_threads": 1})
    early, late = tmp_path / "early", tmp_path / "late"
    assert bench.main(["--fresh", f"one={first}", "--bundled-dir", str(bundled), "--out", str(early)]) == 0
    args = ["--fresh", f"two={second}", "--bundled-dir", str(bundled), "--out", str(late)]
    assert bench.main([*args, "--merge", str(early.with_suffix(".json"))]) == 0
    result = json.loads(late.with_suffix(".json").read_text())
    assert [(r["name"], r["bit_for_bit"]) for r in result["rows"]] == [("one", False), ("two", True)]
    markdown = late.with_suffix(".md").read_text()
    assert re.search(r"- row one: measured by `python benchmarks/weights_reproduce.py --fresh one=", markdown)
    assert "| two | 0 of 1 |" in markdown and "/ 1 / 3600 | yes |" in markdown
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(SystemExit, match="2"):
        bench.main([*args, "--merge", str(tmp_path / "bad.json")])
    assert "not a results file of this script" in capsys.readouterr().err


def test_a_second_fresh_run_is_compared_with_the_first_and_the_digest_ignores_the_record(benchmark_module, tmp_path, capsys):
    bench = benchmark_module("weights_reproduce")
    weights = {"a": np.arange(4, dtype=np.float32), "b": np.ones((2, 2), np.float32)}
    bundled = _write(tmp_path / "bundled", "enc", dict(weights, a=np.zeros(4, np.float32)))
    first = _write(tmp_path / "run1", "enc", weights, {"train_seconds": 10.0, "torch_threads": 1})
    same = _write(tmp_path / "run2", "enc", {k: v.copy() for k, v in weights.items()}, {"train_seconds": 99.0, "torch_threads": 1})
    moved = _write(tmp_path / "run3", "enc", dict(weights, b=np.full((2, 2), 1.25, np.float32)))
    # the digest covers the tensors only: another record (timings) gives the same digest, another tensor another one
    assert bench.tensor_digest(first) == bench.tensor_digest(same) != bench.tensor_digest(moved)
    assert bench.tensor_digest(first) != bench.tensor_digest(_write(tmp_path / "run4", "enc", dict(weights, a=weights["a"].astype(np.float64))))

    out = tmp_path / "report"
    base = ["--fresh", f"enc={first}", "--bundled-dir", str(tmp_path / "bundled"), "--out", str(out)]
    assert bench.main([*base, "--again", f"enc={same}"]) == 0
    row = json.loads(out.with_suffix(".json").read_text())["rows"][0]
    assert not row["bit_for_bit"] and row["again"]["bit_for_bit"] and row["fresh_sha256"] == bench.tensor_digest(first)
    markdown = out.with_suffix(".md").read_text()
    assert "/ 1 / 99 / yes |" in markdown and f"two fresh runs of the recipe agree: **bit for bit**; tensors SHA-256 `{row['fresh_sha256']}`" in markdown
    assert bench.main([*base, "--again", f"enc={moved}"]) == 0
    markdown = out.with_suffix(".md").read_text()
    assert "two fresh runs of the recipe agree: **no**, 1 of 2 tensors differ (max |diff| 0.25)" in markdown
    assert bundled.is_file()
    with pytest.raises(SystemExit, match="2"):
        bench.main([*base, "--again", f"other={same}"])
    assert "--again ['other']: give the first run of each with --fresh NAME=PATH" in capsys.readouterr().err
    assert bench.main([*base, "--again", f"enc={tmp_path / 'missing.safetensors'}"]) == 2
    assert re.search("again weights .*missing.safetensors not found", capsys.readouterr().err)


def test_the_probe_trains_vip_sims_recipe_briefly_and_names_a_failure(benchmark_module, tmp_path):
    """run_probe runs the recipe cut to PROBE_STEPS in a new process and digests what it wrote; a failed command is
    named with its exit status and the end of its stderr."""
    import subprocess

    bench = benchmark_module("weights_reproduce")
    seen = []

    def runner(command, **kwargs):
        seen.append(command)
        out = tmp_path / "probe" / "final"
        _write(out, "vip-sim", {"a": np.arange(3, dtype=np.float32)})
        return subprocess.CompletedProcess(command, 0, "", "")

    probe = bench.run_probe(tmp_path / "probe", runner=runner)
    (command,) = seen
    assert command[1:8] == ["-m", "vip_rl.weights_recipe", "--only", "vip-sim", "--steps", str(bench.PROBE_STEPS), "--no-export"]
    assert command[-2:] == ["--out", str(tmp_path / "probe")]
    assert probe["sha256"] == bench.tensor_digest(tmp_path / "probe" / "final" / "vip-sim.safetensors")
    assert probe["steps"] == 300 and probe["command"].startswith("python -m vip_rl.weights_recipe --only vip-sim --steps 300")
    failing = lambda command, **kwargs: subprocess.CompletedProcess(command, 2, "", "Traceback\nValueError: bad videos\n")
    with pytest.raises(RuntimeError, match="failed with exit status 2: .*ValueError: bad videos"):
        bench.run_probe(tmp_path / "other", runner=failing)


def test_the_probe_is_recorded_kept_on_merge_and_checked(benchmark_module, tmp_path, monkeypatch, capsys):
    """--probe records the probe's digest beside the rows (a merge without --probe keeps it, naming its run);
    --check-probe compares this machine's probe with it: exit 0 when equal, 1 when not, and writes nothing."""
    bench = benchmark_module("weights_reproduce")
    weights = {"a": np.ones(2, np.float32)}
    bundled = tmp_path / "bundled"
    _write(bundled, "one", weights)
    fresh = _write(tmp_path / "f1", "one", weights)
    digests = iter(["d" * 64, "d" * 64, "e" * 64])
    monkeypatch.setattr(bench, "run_probe", lambda out_dir: {"steps": 300, "command": "python -m ... DIR",
                                                              "sha256": next(digests), "cpu_model": "Example CPU 7000"})
    out = tmp_path / "report"
    assert bench.main(["--fresh", f"one={fresh}", "--bundled-dir", str(bundled), "--probe", "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["probe"]["sha256"] == "d" * 64
    assert "## Machine probe" in out.with_suffix(".md").read_text() and "Example CPU 7000" in out.with_suffix(".md").read_text()
    later = tmp_path / "later"
    assert bench.main(["--fresh", f"one={fresh}", "--bundled-dir", str(bundled), "--merge", str(out.with_suffix(".json")),
                       "--out", str(later)]) == 0
    kept = json.loads(later.with_suffix(".json").read_text())
    assert kept["probe"]["sha256"] == "d" * 64 and any(p["part"] == "probe" for p in kept["provenance"]["parts"])
    before = sorted(tmp_path.iterdir())
    assert bench.main(["--check-probe", "--reference", str(out.with_suffix(".json"))]) == 0
    assert "the same: this machine trains with the numerics" in capsys.readouterr().out
    assert bench.main(["--check-probe", "--reference", str(out.with_suffix(".json"))]) == 1
    assert "different: this machine trains other draws" in capsys.readouterr().out
    assert sorted(tmp_path.iterdir()) == before
    bare = tmp_path / "bare"
    assert bench.main(["--fresh", f"one={fresh}", "--bundled-dir", str(bundled), "--out", str(bare)]) == 0
    with pytest.raises(SystemExit, match="^2$"):
        bench.main(["--check-probe", "--reference", str(bare.with_suffix(".json"))])
    assert "records no probe" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="^2$"):
        bench.main(["--check-probe", "--fresh", f"one={fresh}"])
    assert "--check-probe runs alone" in capsys.readouterr().err


def test_a_failed_probe_is_one_line_and_nothing_is_written(benchmark_module, tmp_path, monkeypatch, capsys):
    bench = benchmark_module("weights_reproduce")
    weights = {"a": np.ones(2, np.float32)}
    _write(tmp_path / "bundled", "one", weights)
    fresh = _write(tmp_path / "f1", "one", weights)

    def fail(out_dir):
        raise RuntimeError("the probe `python -m ...` failed with exit status 2: ValueError: bad videos")

    monkeypatch.setattr(bench, "run_probe", fail)
    out = tmp_path / "report"
    assert bench.main(["--fresh", f"one={fresh}", "--bundled-dir", str(tmp_path / "bundled"), "--probe", "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("weights_reproduce: the probe") and line.endswith("ValueError: bad videos")
    assert not out.with_suffix(".json").exists() and not out.with_suffix(".md").exists()
