"""Tests for benchmarks/shortcut.py's command line (refused before any data is read)."""
from __future__ import annotations

import re

import pytest


@pytest.mark.parametrize(("specs", "message"), [
    (["foo"], "--extra-encoder: expected NAME=PATH, got 'foo'"),
    (["=x"], "--extra-encoder: expected NAME=PATH, got '=x'"),
    (["a="], "--extra-encoder: expected NAME=PATH, got 'a='"),
    (["a=x", "a=y"], "--extra-encoder: the NAME 'a' is given twice"),
])
def test_bad_extra_encoder_is_a_usage_error(benchmark_module, capsys, tmp_path, specs, message):
    shortcut = benchmark_module("shortcut")
    argv = [a for spec in specs for a in ("--extra-encoder", spec)] + ["--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit, match="^2$"):  # argparse's usage-error exit status
        shortcut.main(argv)
    assert re.search(message, capsys.readouterr().err)
    assert not list(tmp_path.iterdir())  # nothing written


def test_mlp_readout_reads_a_curved_joint_the_linear_map_cannot(benchmark_module):
    """A joint laid on a circle arc (a kept but curved state): the MLP read-out recovers it, ridge regression does not."""
    import numpy as np

    shortcut = benchmark_module("shortcut")
    rng = np.random.default_rng(0)
    t_train, t_test = rng.uniform(0, 1, 800), rng.uniform(0, 1, 200)

    def features(t):
        return np.c_[np.cos(6 * t), np.sin(6 * t), rng.normal(0, 0.01, (len(t), 2))].astype(np.float32)

    x_train, x_test = features(t_train), features(t_test)
    y_train, y_test = t_train[:, None].astype(np.float32), t_test[:, None].astype(np.float32)
    linear = shortcut._r2(shortcut._ridge(x_train, y_train, x_test), y_test)
    mlp = shortcut._r2(shortcut._mlp_readout(x_train, y_train, x_test, seed=0, steps=600), y_test)
    assert mlp > 0.95 and mlp > linear + 0.2


def test_the_decoy_table_reads_each_encoders_apparent_steps_beside_the_experts(benchmark_module):
    shortcut = benchmark_module("shortcut")
    row = {"expert_steps_from_decoy": 17.25, "solved_from_decoy": 1.0, "steps_left_at_half": 2.0, "episode_steps": 27.0,
           "changed_pixels_64px front": 49.0, "changed_pixels_64px close": 94.0}
    res = {"provenance": {"command": "python benchmarks/shortcut.py --sections decoy", "date": "2026-12-06 16:30 UTC"},
           "decoy": {"OpenDrawer": {**row, "apparent_steps": {"td-sim": 18.0, "vip-sim": 3.25}}}}
    text = shortcut.to_markdown(res)
    assert "| close 64 px | apparent steps, td-sim | apparent steps, vip-sim |" in text
    assert "| OpenDrawer | 17.2 | 1.00 | - | 2.0 | 27.0 | 49 | 94 | 18.0 | 3.2 |" in text  # measured before the zero-action column
    res["decoy"]["PressButton"] = {**row, "solved_by_zero_action": 1.0, "apparent_steps": {"td-sim": 1.0, "vip-sim": 1.0}}
    text = shortcut.to_markdown(res)
    assert "| solved from it | solved by one zero action | steps left" in text
    assert "| PressButton | 17.2 | 1.00 | 1.00 | 2.0 | 27.0 | 49 | 94 | 1.0 | 1.0 |" in text
    del res["decoy"]["PressButton"]
    del res["decoy"]["OpenDrawer"]["apparent_steps"]  # a table measured before the column
    table = shortcut.to_markdown(res).split("## How far is the decoy really?")[1].split("## Findings")[0]
    assert "| close 64 px |\n" in table and "apparent steps" not in table


@pytest.mark.slow
def test_probe_reads_the_joints_from_the_true_gripper_state_too(benchmark_module, monkeypatch, tmp_path):
    """The probe's reference column regresses each joint on the simulator's gripper state (not on an embedding): a
    joint that moves only under the gripper, like a spring button pressed by it, is read there; one that keeps its
    state after the gripper leaves, like a drawer, is not."""
    import types

    import numpy as np
    import torch

    shortcut = benchmark_module("shortcut")
    rng = np.random.default_rng(0)

    def episode(n):
        states = np.zeros((n, 21), np.float32)
        states[:, :3] = rng.uniform(-1, 1, (n, 3))
        states[:, 10] = np.maximum(0.0, 0.5 - np.abs(states[:, 0]))  # button: pressed only under the gripper
        states[:, 8] = rng.uniform(0, 1)  # drawer: one state per episode, whatever the gripper does
        return types.SimpleNamespace(frames={"front": rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)}, states=states)

    monkeypatch.setattr(shortcut, "_read", lambda path: [episode(40) for _ in range(6)])  # each training file
    monkeypatch.setattr(shortcut, "PROBE_JOINTS", {"PressButton": ("button",), "OpenDrawer": ("drawer",)})

    class Twin(torch.nn.Module):
        image_size, config = 32, {"cnn_channels": [4, 4, 4, 4]}

        def preprocess(self, x):
            return x.permute(0, 3, 1, 2).float() / 255.0

        def encode_images(self, x):
            return torch.as_tensor(np.asarray(x), dtype=torch.float32).reshape(len(x), -1)[:, :8]

    monkeypatch.setattr(shortcut, "_encoders", lambda extra=None: {"vip-sim": Twin()})
    out = shortcut.probe(tmp_path, {"PressButton": [episode(60)], "OpenDrawer": [episode(60)]}, steps=2, seed=0, mlp_steps=400)
    column = shortcut.GRIPPER_COLUMN
    assert out["PressButton"][f"mlp_r2 {column}"] > 0.8 > out["PressButton"][f"linear_r2 {column}"]
    assert out["OpenDrawer"][f"mlp_r2 {column}"] < 0.3 and out["OpenDrawer"][f"linear_r2 {column}"] < 0.3
    assert f"linear on {column}" in shortcut.to_markdown({"provenance": {"command": "x"}, "probe": out})
