"""Tests for benchmarks/recipe_speed.py: td-sim's training stages on one thread, two threads and two DDP ranks."""
from __future__ import annotations

import re

import pytest


@pytest.mark.parametrize(("argv", "message"), [
    (["--steps", "30"], "--steps must be > 30"),
    (["--stages", "9"], "--stages: td-sim records 6 image stages, not a stage 9"),
])
def test_bad_options_are_usage_errors_before_anything_runs(benchmark_module, capsys, tmp_path, argv, message):
    rs = benchmark_module("recipe_speed")
    with pytest.raises(SystemExit, match="^2$"):
        rs.main([*argv, "--out", str(tmp_path / "out"), "--scratch", str(tmp_path)])
    assert re.search(re.escape(message), capsys.readouterr().err)
    assert not list(tmp_path.iterdir())


def test_the_stage_configs_are_the_bundled_records(benchmark_module):
    rs = benchmark_module("recipe_speed")
    first, last = rs.stage_config(1), rs.stage_config(6)
    assert (first.steps, first.recon_weight) == (12000, 0.0)  # the first stage, as the recipe trains it
    assert last.steps == 4000 and last.recon_weight > 0  # the last image stage adds the focused reconstruction


def test_the_report_shows_speed_ups_and_whether_ddp_runs_agree(benchmark_module):
    rs = benchmark_module("recipe_speed")
    rows = []
    for k, (setup, rate, digest) in enumerate([("1 process, 1 thread (the recipe)", 10.0, "a" * 64),
                                               ("1 process, 2 threads", 12.5, "b" * 64),
                                               ("2 DDP ranks, 1 thread each", 19.0, "c" * 64),
                                               ("2 DDP ranks, 1 thread each", 18.0, "c" * 64)]):
        ranks, threads = rs.SETUPS[setup]
        rows.append({"stage": 1, "setup": setup, "ranks": ranks, "threads": threads, "steps": 300, "steps_per_s": rate,
                     "speedup": rate / 10.0, "digest": digest, "same_as_recipe": digest == "a" * 64, "repeat": k == 3,
                     **({"ddp_runs_agree": True} if ranks > 1 else {})})
    res = {"provenance": {"command": "python benchmarks/recipe_speed.py", "date": "2026-12-07 20:00 UTC"}, "steps": 300,
           "rows": rows, "notes": ["- a note"]}
    text = rs.render(res)
    assert "| 1 | 2 DDP ranks, 1 thread each | 19.00 | 1.90x | `cccccccccccccccc` | no |" in text
    assert "| 1 | 2 DDP ranks, 1 thread each (again) | 18.00 | 1.80x |" in text
    assert "stage 1: two DDP runs write the same tensors; DDP against one process: other tensors" in text
    assert text.rstrip().endswith("- a note")


def test_bad_value_head_options_are_usage_errors_before_anything_runs(benchmark_module, capsys, tmp_path):
    rs = benchmark_module("recipe_speed")
    with pytest.raises(SystemExit, match="^2$"):
        rs.main(["--part", "value-head", "--vh-steps", "0", "--out", str(tmp_path / "out"), "--data", str(tmp_path / "data")])
    assert "--vh-steps must be >= 1, got 0" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_the_value_head_encoder_is_the_bundled_cnn_without_its_value(benchmark_module):
    import numpy as np
    import torch

    from vip_rl.encoders import load_encoder
    from vip_rl.pretrain import cnn_features

    rs = benchmark_module("recipe_speed")
    encoder, bundled = rs.value_head_encoder(), load_encoder("td-sim")
    assert encoder.vision.value is None and not encoder.has_text and bundled.vision.value is not None
    frames = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    features = cnn_features(encoder, frames)
    # the bundled value head reads these very features
    value = bundled.vision.value(features)
    assert torch.allclose(bundled.encode_images(frames)[:, -value.shape[1]:], value, atol=1e-5)


def test_the_value_head_report_shows_both_ways_and_the_recipe_scale(benchmark_module):
    rs = benchmark_module("recipe_speed")
    res = {"provenance": {"command": "python benchmarks/recipe_speed.py --part value-head", "date": "2026-12-07 22:00 UTC"},
           "value_head": {"videos": 10, "frames": 600, "vh_steps": 200, "vh_blocks": 4,
                          "feature_frames_per_s": {"serial": 3000.0, "side threads": 5400.0},
                          "ms_per_step": {"serial": 30.0, "side threads": 25.0}, "same_features": True, "same_mlp": False,
                          "recipe_views": 4, "recipe_steps": 20000, "recipe_minutes": {"serial": 11.5, "side threads": 9.0}},
           "notes": ["- a note"]}
    text = rs.render(res)
    assert "| feature pass (frames/s) | 3000 | 5400 | 1.80x | yes |" in text
    assert "| MLP step (ms) | 30.0 | 25.0 | 1.20x | **no** |" in text
    assert "**11.5 min serial, 9.0 min with side threads** (2.5 min less)" in text
    assert text.rstrip().endswith("- a note")
