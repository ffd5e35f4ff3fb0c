"""Tests for benchmarks/device_paths.py (CPU vs CUDA side by side): the report's loss-agreement verdict, the refusal
to run for real without CUDA, and a CPU smoke run of the pretraining section."""
from __future__ import annotations

import json
import math

import pytest
import torch


@pytest.fixture()
def device_paths(benchmark_module):
    return benchmark_module("device_paths")


def _pretrain_row(cpu_loss: float, cuda_loss: float) -> dict:
    return {name: {"samples_per_s": speed, "first_loss": loss, "last_loss": loss, "wall_s": 1.0, "steps": 60,
                   "data_time_share": 0.05}
            for name, speed, loss in (("cpu", 1000.0, cpu_loss), ("cuda", 7000.0, cuda_loss))}


def test_report_says_whether_the_devices_agree(device_paths):
    res = {"provenance": {"command": "python benchmarks/device_paths.py", "date": "2026-12-04 17:00 UTC", "machine": {}},
           "pretrain": {"steps": 60, "runs": {"vip same": _pretrain_row(0.9094, 0.90945),
                                              "tdist off": _pretrain_row(0.5631, 0.60)}}}
    text = device_paths.render(res)
    same = next(line for line in text.splitlines() if line.startswith("| vip same"))
    off = next(line for line in text.splitlines() if line.startswith("| tdist off"))
    assert "| 7.0x |" in same and "| agree |" in same
    assert "**differ**" in off


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_refuses_a_full_run_without_cuda(device_paths, capsys, tmp_path):
    with pytest.raises(SystemExit, match="^2$"):
        device_paths.main(["--sections", "pretrain", "--out", str(tmp_path / "out")])
    assert "no CUDA device: this benchmark compares CPU and CUDA" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.slow  # three short pretraining runs end to end
def test_quick_pretrain_section_runs_each_objective(device_paths, tmp_path):
    assert device_paths.main(["--quick", "--sections", "pretrain", "--out", str(tmp_path / "dp")]) == 0
    res = json.loads((tmp_path / "dp.json").read_text())
    runs = res["pretrain"]["runs"]
    assert sorted(label.split()[0] for label in runs) == ["liv", "tdist", "vip"]
    for row in runs.values():
        assert row["cpu"]["samples_per_s"] > 0 and math.isfinite(row["cpu"]["first_loss"])
    assert "## Pretraining" in (tmp_path / "dp.md").read_text()
