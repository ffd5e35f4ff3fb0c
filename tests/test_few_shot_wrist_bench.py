"""Tests for benchmarks/few_shot_wrist.py: the same episodes as few_shot.py, both cameras kept, the target rule."""
from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture()
def wrist_bench(benchmark_module):
    return benchmark_module("few_shot_wrist")


def test_target_needs_every_task_above_30_percent(wrist_bench):
    rows = [dict(task="PushBlock", method="BC", success_rate=0.35), dict(task="PushBlock", method="RWR(td)", success_rate=0.10),
            dict(task="PickPlace", method="BC", success_rate=0.30), dict(task="PickPlace", method="RWR(td)", success_rate=0.25)]
    summary = wrist_bench.summarise(rows, ["PushBlock", "PickPlace"], ["BC", "RWR(td)"])
    assert summary["best"]["PushBlock"] == {"method": "BC", "success": pytest.approx(35.0)}
    assert summary["target"]["met"] is False  # PickPlace's best is 30, not above
    rows.append(dict(task="PickPlace", method="RWR(td)", success_rate=0.45))
    summary = wrist_bench.summarise(rows, ["PushBlock", "PickPlace"], ["BC", "RWR(td)"])
    assert summary["best"]["PickPlace"]["method"] == "RWR(td)" and summary["target"]["met"] is True


@pytest.mark.slow  # collects 40 episodes and trains five tiny policies: make test runs it, make test-fast skips it
def test_quick_run_uses_few_shots_episodes_with_both_cameras(wrist_bench, benchmark_module, tmp_path, capsys):
    first, out = tmp_path / "first", tmp_path / "res"
    common = ["--quick", "--work-dir", str(tmp_path), "--workers", "1"]
    assert wrist_bench.main([*common, "--out", str(first), "--methods", "BC"]) == 0
    # a second run measures another column and keeps the first run's (same config, data reused)
    assert wrist_bench.main([*common, "--out", str(out), "--methods", "RWR(td), front CNN", "--merge", str(first.with_suffix(".json"))]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["status"] == "complete" and report["methods"] == ["BC", "RWR(td), front CNN"]
    assert sorted(r["method"] for r in report["rows"]) == ["BC", "RWR(td), front CNN"]
    assert [p["part"] for p in report["provenance"]["parts"]] == ["column BC"]
    text = out.with_suffix(".md").read_text()
    assert "--quick" in text and "column BC: measured by" in text
    with pytest.raises(SystemExit, match="^2$"):  # argparse usage error: another config cannot share the table
        wrist_bench.main([*common, "--batch-size", "32", "--out", str(tmp_path / "x"), "--merge", str(first.with_suffix(".json"))])
    assert "its config differs from this run's" in capsys.readouterr().err and not (tmp_path / "x.json").exists()
    (arrays_file,) = tmp_path.glob("wrist-arrays-*/PushBlock_20_s6_mixB_front-wrist.npz")
    with np.load(arrays_file) as data:
        frames_front, frames_wrist, actions = data["frames_front"], data["frames_wrist"], data["actions"]
        rewards_td = data["rewards_td"]
    assert frames_front.shape == frames_wrist.shape and not np.array_equal(frames_front, frames_wrist)
    assert np.all(np.isfinite(rewards_td)) and rewards_td.std() > 0
    # the same episodes as few_shot.py's front-only demos of the task (its seed: the task's place in its list + 1)
    few_shot = benchmark_module("few_shot")
    (tmp_path / "front_only").mkdir()
    path, _, _ = few_shot.collect_demos("PushBlock", 20, tmp_path / "front_only", seed=6, mix="B")
    from vip_rl.policies import PolicyDataset

    front_only = PolicyDataset.from_file(path, None, mode="true", keep_frames=True, progress=False)
    np.testing.assert_array_equal(front_only.actions, actions)
    np.testing.assert_array_equal(front_only.frames, frames_front)


def test_ensemble_option_is_recorded_and_checked(wrist_bench, tmp_path, capsys):
    single = {"cnn_channels": [32, 32], "cnn_strides": [2, 1]}
    assert wrist_bench.describe_cnn(single) == "conv 32-32, strides 2-1"
    text = wrist_bench.describe_cnn(dict(single, ensemble=3))
    assert text.startswith("conv 32-32, strides 2-1; each policy is an ensemble of 3") and "s*3 .. s*3+2" in text
    with pytest.raises(SystemExit, match="^2$"):
        wrist_bench.main(["--quick", "--ensemble", "0", "--work-dir", str(tmp_path), "--out", str(tmp_path / "x")])
    assert "--ensemble must be a positive int, got 0" in capsys.readouterr().err and not (tmp_path / "x.json").exists()
