"""The representation benchmark's hand-only runs (benchmarks/representation.py::train_hand_encoder): the colour
augmentation reaches the training config and gets a run directory of its own, beside the plain run's; a second call
reuses the finished run and says so."""
from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_hand_runs_with_and_without_channel_shuffle(benchmark_module, tmp_path):
    representation = benchmark_module("representation")
    plain, _, videos, reused = representation.train_hand_encoder(2, cache=tmp_path, quick=True, recipe_name="td-sim")
    shuffled, _, videos_again, _ = representation.train_hand_encoder(2, cache=tmp_path, quick=True, recipe_name="td-sim",
                                                                     channel_shuffle_prob=1.0)
    assert videos == videos_again > 0  # the same hand videos
    assert not reused and representation.train_hand_encoder(2, cache=tmp_path, quick=True, recipe_name="td-sim")[3]
    assert plain.endswith("hand_run_td-sim/encoder") and shuffled.endswith("hand_run_td-sim_shuffle1/encoder")
    configs = [json.loads((tmp_path / path.split("/")[-2] / "encoder" / "config.json").read_text())["training"]["pretrain_config"]
               for path in (plain, shuffled)]
    assert [c["channel_shuffle_prob"] for c in configs] == [0.0, 1.0]
    assert all(c["objective"] == "tdist" and c["steps"] == 2 for c in configs)
