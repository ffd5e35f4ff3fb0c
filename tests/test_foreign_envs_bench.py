"""Tests for benchmarks/foreign_envs.py's merge of MPPI cells from an earlier results file (pure; no env)."""
from __future__ import annotations

import pytest


@pytest.fixture()
def foreign_envs(benchmark_module):
    return benchmark_module("foreign_envs")


def _entry(cells: dict, episodes: int = 5) -> dict:
    return {"episodes": episodes, "max_steps": 100, "K": 32, "H": 10, "cells": cells}


def test_kept_cells_stay_and_name_the_run_that_measured_them(foreign_envs):
    earlier_prov = {"command": "python benchmarks/foreign_envs.py --sections checks,mppi", "date": "d0",
                    "parts": [{"part": "mppi Pusher-v5", "command": "python benchmarks/foreign_envs.py --envs pusher", "date": "d1"},
                              {"part": "mppi Pusher-v5: oracle", "command": "an older run", "date": "d2"}]}
    earlier = _entry({"oracle": {"success": 0.2}, "vip-sim image": {"success": 0.0}, "td-sim image": {"success": 0.4}})
    measured = _entry({"td-sim image": {"success": 0.1}})
    prov = {"command": "now"}
    merged = foreign_envs.merge_cells("Pusher-v5", measured, earlier, prov, earlier_prov)
    assert merged["cells"] == {"oracle": {"success": 0.2}, "vip-sim image": {"success": 0.0}, "td-sim image": {"success": 0.1}}
    parts = {p["part"]: p["command"] for p in prov["parts"]}
    # a cell merged before keeps its own run; another one is the earlier file's run of the whole env
    assert parts == {"mppi Pusher-v5: oracle": "an older run",
                     "mppi Pusher-v5: vip-sim image": "python benchmarks/foreign_envs.py --envs pusher"}
    assert measured["cells"] == {"td-sim image": {"success": 0.1}}  # the input is not modified


def test_cells_of_another_planner_or_episode_count_are_dropped(foreign_envs):
    prov = {"command": "now"}
    merged = foreign_envs.merge_cells("E", _entry({"a": {}}), _entry({"b": {}}, episodes=2), prov, {"command": "old"})
    assert merged["cells"] == {"a": {}} and "parts" not in prov
    assert foreign_envs.merge_cells("E", _entry({"a": {}}), None, prov, {})["cells"] == {"a": {}}


def test_without_a_part_for_the_env_the_earlier_command_is_named(foreign_envs):
    prov = {"command": "now"}
    foreign_envs.merge_cells("E", _entry({"a": {}}), _entry({"b": {}}), prov, {"command": "old", "date": "d"})
    assert prov["parts"] == [{"part": "mppi E: b", "command": "old", "date": "d"}]


def test_merged_cells_keep_the_earlier_column_order(foreign_envs):
    earlier = _entry({"oracle": 1, "td-sim image": 2, "vip-sim image": 3})
    merged = foreign_envs.merge_cells("E", _entry({"td-sim image": 4, "new image": 5}), earlier, {"command": "now"}, {"command": "old"})
    assert list(merged["cells"].items()) == [("oracle", 1), ("td-sim image", 4), ("vip-sim image", 3), ("new image", 5)]


def test_provenance_lines_group_parts_by_run(benchmark_module):
    report = benchmark_module("_report")
    prov = {"parts": [{"part": "column a", "command": "c1"}, {"part": "column b", "command": "c1"},
                      {"part": "mppi E: x", "command": "c2"}, {"part": "mppi E: y", "command": "c2"}]}
    lines = report.provenance_lines(prov)
    assert "- columns a; b: measured by `c1`" in lines and "- mppi E: x; E: y: measured by `c2`" in lines


def test_an_env_not_planned_again_keeps_each_cells_run(foreign_envs):
    earlier_prov = {"command": "td run", "parts": [{"part": "mppi P: oracle", "command": "first run"}]}
    prov = {"command": "now"}
    foreign_envs.keep_cell_parts("P", {"oracle": {}, "td-sim image": {}}, prov, earlier_prov)
    assert [(p["part"], p["command"]) for p in prov["parts"]] == [("mppi P: oracle", "first run"), ("mppi P: td-sim image", "td run")]


def test_in_domain_time_is_the_runs_record_when_a_finished_run_is_reused(foreign_envs):
    """A rerun that finds the in-domain run finished trains nothing: the line reports the run's recorded training time
    against the 30-min target, and says that this call only reused it."""
    voc = {"drawer-open": {"in-domain (tdist)": 0.99, "expert_success": 1.0}}
    dom = {"commands": ["pretrain --data x.h5 --out r"], "run": "r", "collect_seconds": [0.0], "voc": voc, "voc_episodes": 2,
           "pretrain_seconds": 1207.8, "pretrain_call_seconds": 12.0, "encoders": {"in-domain (tdist)": "runs/x"}}
    text = foreign_envs.render({"in_domain": dom, "provenance": {"command": "c", "date": "d"}})
    assert "pretrain 20.1 min as the run records it; this call 0.2 min, the finished run reused (target: at most 30 min here: met)" in text
    dom.update(pretrain_seconds=2000.0, pretrain_call_seconds=2000.0)  # trained in this call: no note, and over the target
    text = foreign_envs.render({"in_domain": dom, "provenance": {"command": "c", "date": "d"}})
    assert "pretrain 33.3 min (target: at most 30 min here: **missed**)" in text
