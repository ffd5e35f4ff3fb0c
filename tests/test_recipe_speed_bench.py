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
