"""Tests for benchmarks/mppi_cli.py (the `vip-rl mppi` default-command check): variant parsing, the report, and a
smoke run of the real command."""
from __future__ import annotations

import argparse
import json

import pytest


@pytest.fixture()
def mppi_cli(benchmark_module):
    return benchmark_module("mppi_cli")


def test_variant_is_a_label_and_flags(mppi_cli):
    assert mppi_cli.parse_variant("K=64, H=10=--num-samples 64 --horizon 10") == (
        "K=64, H=10", ["--num-samples", "64", "--horizon", "10"])
    with pytest.raises(argparse.ArgumentTypeError, match="--variant must be 'LABEL=--flag value ...', got 'no flags'"):
        mppi_cli.parse_variant("no flags")


def _run(successes: list[bool], k: int, h: int) -> dict:
    return {"command": "vip-rl mppi --env E --goal expert --episodes 5", "seconds": 30.0,
            "results": {"config": {"num_samples": k, "horizon": h},
                        "episodes": [{"success": s, "steps": 40 if s else 100} for s in successes]}}


def test_report_judges_only_the_default_run(mppi_cli):
    res = {"provenance": {"script": "benchmarks/mppi_cli.py", "command": "python benchmarks/mppi_cli.py", "utc": "2026-12-03 15:00 UTC",
                          "machine": {}}, "episodes": 5, "target_successes": 4,
           "runs": {"defaults": _run([True, True, True, False, False], 32, 20), "old": _run([True] * 5, 64, 10)}}
    text = mppi_cli.render(res)
    default_row = next(line for line in text.splitlines() if line.startswith("| defaults"))
    old_row = next(line for line in text.splitlines() if line.startswith("| old"))
    assert "K=32, H=20" in default_row and "3 / 5" in default_row and "**missed**" in default_row
    assert "5 / 5" in old_row and old_row.rstrip().endswith("| - |")


@pytest.mark.slow
def test_quick_run_executes_the_real_command(mppi_cli, tmp_path):
    assert mppi_cli.main(["--quick", "--variant", "K=4=--num-samples 4", "--out", str(tmp_path / "r")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert list(res["runs"]) == ["defaults", "K=4"]
    assert res["runs"]["K=4"]["results"]["config"]["num_samples"] == 8  # --quick's flags come last and win
    assert all(len(run["results"]["episodes"]) == 1 for run in res["runs"].values())
