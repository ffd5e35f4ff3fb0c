"""benchmarks/mppi_kitchen.py plans on FrankaKitchen end to end (tiny sizes; skipped without gymnasium-robotics)."""
from __future__ import annotations

import pytest


@pytest.mark.slow
def test_quick_kitchen_cells_are_measured(benchmark_module):
    pytest.importorskip("gymnasium_robotics")
    kitchen = benchmark_module("mppi_kitchen")
    res = kitchen.bench_kitchen(["microwave"], episodes=1, max_steps=2, num_samples=4, horizon=2, seed=0,
                                encoders={})
    # the dynamics are built on a reset env (building them first failed: the backend check steps a copy of the env)
    cell = res["tasks"]["microwave"]["oracle (task progress)"]
    assert cell["episodes"] == 1 and 0.0 <= cell["mean_progress"] <= 1.0 and cell["ms_per_command"] > 0
