"""Tests for vip_rl.weights_recipe: the detour collectors and the multi-stage td-sim recipe (small, CPU)."""
from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
import torch

import vip_envs
from vip_rl import weights_recipe as wr
from vip_rl.data import Video, read_episodes

SMALL = dataclasses.replace(wr.DATA, image_size=32)


class ValueHeaded:
    """What the stubbed value-head stage returns: a marker for the encoder it was fitted on (no text tower, as the real
    stage's)."""

    has_text = False

    def __init__(self, base):
        self.base = base
        self.name = getattr(base, "name", None)


@pytest.fixture(autouse=True)
def value_heads(monkeypatch):
    """Stub the value-head stage (its real training is tested in test_pretrain) and give td-sim one: record each call,
    return a marker."""
    calls = []

    def fake(name, encoder, data, seed=0):
        calls.append((name, encoder, data, seed))
        return ValueHeaded(encoder), {"value_head_config": {}, "videos_used": {"expert": 1}, "train_seconds": 1.0}

    monkeypatch.setattr(wr, "value_head", fake)
    monkeypatch.setitem(wr.VALUE_HEADS, "td-sim", wr.ValueHeadConfig())  # the recipe's stages with a value head
    return calls


def test_high_detours_rise_over_the_table_then_solve_the_task(tmp_path):
    path = wr.collect_high_detours("PressButton", episodes=3, recipe=SMALL, seed=3, out=tmp_path / "high.h5")
    episodes = list(read_episodes(path))
    assert episodes, "every high detour was skipped"
    z = list(vip_envs.STATE_LABELS).index("ee_z")
    for episode in episodes:
        prefix = int(episode.attrs["detour_steps"])
        assert SMALL.high_detour_steps[0] <= prefix <= SMALL.high_detour_steps[1]
        assert episode.attrs["policy"] == wr.HIGH_DETOUR and episode.success
        assert episode.frames["front"].shape[1:] == (32, 32, 3)
        # the prefix climbs above the usual working band; the expert then comes back down and succeeds
        assert episode.states[: prefix + 1, z].max() > 0.12 > episode.states[-1, z]
        assert episode.task_progress[-1] >= 0.99


def test_detour_collectors_are_deterministic(tmp_path):
    for kind, fn in (("high", lambda out: wr.collect_high_detours("CloseDrawer", episodes=2, recipe=SMALL, seed=5, out=out)),
                     ("pose", lambda out: wr.collect_detours("CloseDrawer", episodes=2, recipe=SMALL, seed=5, out=out, to_goal_pose=True))):
        first = list(read_episodes(fn(tmp_path / f"{kind}_a.h5")))
        second = list(read_episodes(fn(tmp_path / f"{kind}_b.h5")))
        assert len(first) == len(second) > 0
        for a, b in zip(first, second):
            np.testing.assert_array_equal(a.frames["front"], b.frames["front"])
            assert a.instruction == b.instruction


def test_finetune_stages_are_valid_configs():
    for name, stages in wr.FINETUNES.items():
        for stage in stages:
            config = dataclasses.replace(wr.CONFIGS[name], **stage.overrides)  # raises on an unknown field
            assert config.steps < wr.CONFIGS[name].steps and config.lr <= wr.CONFIGS[name].lr
            assert set(stage.kinds) <= set(wr.KINDS) | {wr.HIGH_DETOUR, wr.PLANNER_DETOUR}
    second, *dagger, consolidation, again = wr.FINETUNES["td-sim"]
    assert wr.HIGH_DETOUR in second.kinds and wr.PLANNER_DETOUR not in second.kinds and second.planner_round == 0
    assert [stage.planner_round for stage in dagger] == [1, 2]
    # stages 5 and 6: no new round, every round so far; the same consolidation, stage 6 with its chosen draw and the
    # focused reconstruction (session 37's dev choice), which no other stage has
    for stage in (consolidation, again):
        assert stage.planner_round == 0 and wr.PLANNER_DETOUR in stage.kinds
    assert again.overrides == {**consolidation.overrides, "recon_weight": 10.0, "recon_focus": 0.9}
    assert (consolidation.seed_offset, again.seed_offset) == (0, 4)
    assert all("recon_weight" not in stage.overrides for stage in (second, *dagger, consolidation))
    assert wr.CONFIGS["td-sim"].recon_weight == 0.0
    # the consolidations (and only they) recolour half the tuples by RGB gains (session 33's dev choice)
    assert consolidation.overrides["colour_gain_prob"] == 0.5 and consolidation.overrides["colour_gain_range"] == (0.7, 1.3)
    assert all("colour_gain_prob" not in stage.overrides for stage in (second, *dagger))
    assert wr.CONFIGS["td-sim"].colour_gain_prob == 0.0 and wr.CONFIGS["td-sim"].channel_shuffle_prob == 0.0
    assert all({wr.HIGH_DETOUR, wr.PLANNER_DETOUR} <= set(stage.kinds) for stage in dagger)


@pytest.mark.slow
def test_planner_detours_follow_mppi_then_the_expert_and_are_deterministic(tmp_path):
    from vip_rl.encoders import load_encoder

    encoder = load_encoder("td-sim")
    recipe = dataclasses.replace(SMALL, planner_detour_steps=(3, 5))
    runs = [list(read_episodes(wr.collect_planner_detours("PressButton", episodes=2, recipe=recipe, seed=4, out=tmp_path / f"{k}.h5",
                                                          encoder=encoder))) for k in "ab"]
    assert len(runs[0]) == len(runs[1]) > 0
    for a, b in zip(*runs):
        assert a.attrs["policy"] == wr.PLANNER_DETOUR and a.success and a.task_progress[-1] >= 0.99
        assert 3 <= int(a.attrs["detour_steps"]) <= 5 < a.num_steps
        np.testing.assert_array_equal(a.frames["front"], b.frames["front"])  # seeded MPPI: the same videos
    assert [p.name for p in wr.planner_detour_paths(tmp_path, 2)] == [f"{t}_planner_detour_r2_gripper.h5" for t in wr.DATA.tasks]
    with pytest.raises(ValueError, match="round must be an int >= 1, got 0"):
        wr.collect_all_planner_detours(tmp_path, encoder, 0)


@pytest.mark.slow
def test_collection_workers_write_the_same_files_as_one_process(tmp_path):
    from vip_rl.encoders import load_encoder

    recipe = dataclasses.replace(SMALL, tasks=("PressButton", "CloseDrawer"), planner_detour_episodes=1, planner_detour_steps=(3, 4))
    encoder = load_encoder("td-sim")
    threads = torch.get_num_threads()
    torch.set_num_threads(wr.RECIPE_THREADS)  # as the recipe's main process runs (the workers set it themselves)
    try:
        one = wr.collect_all_planner_detours(tmp_path / "one", encoder, 1, recipe, workers=1)
    finally:
        torch.set_num_threads(threads)
    two = wr.collect_all_planner_detours(tmp_path / "two", encoder, 1, recipe, workers=2)
    assert [p.name for p in one] == [p.name for p in two] == [f"{t}_planner_detour_r1_gripper.h5" for t in recipe.tasks]
    for a_path, b_path in zip(one, two):
        a, b = list(read_episodes(a_path)), list(read_episodes(b_path))
        assert len(a) == len(b) > 0
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x.frames["front"], y.frames["front"])
            np.testing.assert_array_equal(x.states, y.states)
    # the encoder copy the workers loaded is gone; only the round's files and its collection time are left
    record = wr._planner_round_record(tmp_path / "two", 1, recipe)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted([p.name for p in two] + [record.name])
    assert json.loads(record.read_text())["files_collected"] == 2 and wr.planner_round_seconds(tmp_path / "two", 1, recipe) > 0
    # a second call finds every file on disk: it collects nothing and keeps the first call's time
    first = wr.planner_round_seconds(tmp_path / "one", 1, recipe)
    assert wr.collect_all_planner_detours(tmp_path / "one", None, 1, recipe) == one
    assert wr.planner_round_seconds(tmp_path / "one", 1, recipe) == first > 0


def test_a_resumed_run_records_the_planner_rounds_collection_time_not_its_loading(tmp_path, monkeypatch):
    """A recipe run resumed over a finished one reuses the planner rounds on disk: each stage's record keeps the
    collection time the earlier run wrote beside the files (None where it wrote none), not the seconds of loading them."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for round_ in (1, 2):
        for path in wr.planner_detour_paths(data_dir, round_):
            path.write_bytes(b"")  # on disk: nothing is collected (the mocked loader never reads them)
    wr._planner_round_record(data_dir, 1).write_text(json.dumps({"collect_seconds": 186.25}))
    monkeypatch.setattr(wr, "load_training_videos", lambda paths, **kwargs: wr.TrainingVideos([None], ["a"], [True], ["expert"]))
    monkeypatch.setattr(wr, "train", lambda name, data, **kwargs: Encoder())
    monkeypatch.setattr(wr, "_trained_seconds", lambda encoder, wall: 10.0)
    _, _, _, records = wr._fine_tune("td-sim", Encoder(), wr.CONFIGS["td-sim"], None, first=3, init_from="x", out=tmp_path,
                                     data_dir=data_dir, paths=[], steps=1, progress=False)
    rounds = [stage.planner_round for stage in wr.FINETUNES["td-sim"][1:]]
    assert rounds[:2] == [1, 2] and len(records) == len(rounds)
    assert records[0]["collect_seconds"] == 186.2 and records[0]["train_seconds"] == 196.2
    assert records[1]["collect_seconds"] is None and records[1]["train_seconds"] == 10.0  # the earlier run's time unknown
    assert all("collect_seconds" not in record for record in records[2:])  # no planner round in the consolidations
    assert not wr._planner_round_record(data_dir, 2).exists()  # nothing collected, nothing written
    wr._planner_round_record(data_dir, 1).write_text("{not json")
    assert wr.planner_round_seconds(data_dir, 1) is None


@pytest.mark.slow  # over a second (~2 s, a process pool): make test runs it, make test-fast skips it
def test_collection_workers_are_checked_and_pass_a_job_error_on():
    with pytest.raises(ValueError, match="workers must be an int >= 1, got 0"):
        wr._in_workers(int, [("1",)], 0)
    with pytest.raises(ValueError, match="workers must be an int >= 1, got True"):
        wr.collect_all_planner_detours("unused", None, 1, workers=True)
    with pytest.raises(ValueError, match="invalid literal for int"):  # raised in a worker process, re-raised here
        wr._in_workers(int, [("1",), ("x",)], 2)


def test_negative_episode_count_is_refused():
    with pytest.raises(ValueError, match="high_detour_episodes must be >= 0, got -1"):
        dataclasses.replace(wr.DATA, high_detour_episodes=-1)


def test_stage_seconds_come_from_the_run_record() -> None:
    """A resumed stage counts the seconds of its earlier slices (pretrain's record), not only the resumed call's."""
    class Trained:
        config = {"training": {"train_seconds": 1234.5}}

    assert wr._trained_seconds(Trained(), wall=7.0) == 1234.5
    assert wr._trained_seconds(object(), wall=7.0) == 7.0  # no record (older checkpoints): this call's wall time


def test_the_bundled_draw_is_part_of_the_recipe():
    """Each bundled encoder's draw (DRAWS) is in its first stage's seed, so the default command is that draw; td-sim's
    text fit keeps seed 7 (draw 5's image stages were chosen with it, session 29); the variants start from the recipe
    at draw 0, and td-sim's at 64-d, what they were measured with."""
    for name, recipe in wr.RECIPES.items():
        text = {"text": "none"} if name in wr.TRUNKS else {}  # attached for the text fit
        assert wr.CONFIGS[name] == dataclasses.replace(recipe, seed=recipe.seed + wr.DRAWS[name], **text)
    assert wr.DRAWS["td-sim"] == 5 and wr.TEXT_FITS["td-sim"].seed == 7
    assert wr.RECIPES["td-sim"].embed_dim == wr.TD_SIM_WIDTH == 128
    assert all(overrides["embed_dim"] == 64 for base, overrides, _ in wr.VARIANTS.values() if base == "td-sim")
    assert wr.TRUNKS == {"td-sim": ("vip-sim", 3)} and all(source not in wr.TRUNKS for source, _ in wr.TRUNKS.values())
    assert all(wr.RECIPES[base].seed == 0 for base, _, _ in wr.VARIANTS.values())


def test_the_recipe_trains_on_its_own_thread_count(monkeypatch):
    """Another torch thread count rounds sums differently and parts the runs, so main pins RECIPE_THREADS while it
    runs and gives the caller's count back."""
    import torch

    seen = []
    monkeypatch.setattr(wr, "_run", lambda args: seen.append(torch.get_num_threads()) or 0)
    before = torch.get_num_threads()
    assert wr.main(["--only", "td-sim"]) == 0
    assert seen == [wr.RECIPE_THREADS] == [1] and torch.get_num_threads() == before


def test_seed_is_another_draw_of_every_stage(tmp_path, monkeypatch, capsys, value_heads):
    """`--seed N` adds N to the seed of every training stage, of the value head and of the text fit, and the export
    records it."""
    videos = wr.TrainingVideos(videos=[None] * 2, groups=["a"] * 2, final_goal_ok=[True] * 2, kinds=["expert", wr.HIGH_DETOUR])
    monkeypatch.setattr(wr, "collect_data", lambda *args, **kwargs: [tmp_path / "base.h5"])
    monkeypatch.setattr(wr, "load_training_videos", lambda paths, **kwargs: videos)
    monkeypatch.setattr(wr, "collect_all_planner_detours", lambda data_dir, encoder, round, workers=1: [tmp_path / f"pd{round}.h5"])
    seeds = []
    monkeypatch.setattr(wr, "train", lambda name, data, **kwargs: seeds.append(kwargs["config"].seed) or Encoder())
    monkeypatch.setattr(wr, "trunk_start", lambda config, source, out: out)
    monkeypatch.setattr(wr, "with_text_tower", lambda encoder, text: encoder)
    text_seeds = []
    monkeypatch.setattr(wr, "fit_text", lambda name, encoder, data, seed=0: text_seeds.append(seed) or {"train_seconds": 1.0})
    exported = []
    monkeypatch.setattr(wr, "export", lambda name, encoder, **kwargs: exported.append(kwargs) or tmp_path / "x")
    assert wr.main(["--only", "td-sim", "--steps", "2", "--no-export", "--seed", "3", "--out", str(tmp_path)]) == 0
    base = wr.CONFIGS["td-sim"].seed + 3
    # the trunk source's pinned draw too (TRUNKS: + N like every stage), then td-sim's stages (stage 6: its own seed
    # offset, + N)
    assert seeds == [wr.RECIPES["vip-sim"].seed + wr.TRUNKS["td-sim"][1] + 3] + [base] * len(wr.FINETUNES["td-sim"]) + [base + 4] and text_seeds == [3]
    assert [seed for *_, seed in value_heads] == [3]
    assert exported[0]["command"] == "python -m vip_rl.weights_recipe --only td-sim --seed 3"
    with pytest.raises(SystemExit, match="^2$"):
        wr.main(["--only", "td-sim", "--seed", "-1", "--out", str(tmp_path)])
    assert "--seed must be >= 0, got -1" in capsys.readouterr().err


def test_main_trains_td_sim_in_six_stages(tmp_path, monkeypatch, value_heads):
    """`--only td-sim --steps N`: stage 2 starts from stage 1's encoder with the FINETUNES overrides; stages 3 and 4
    each start from the previous one's after collecting a round of planner detours with it; stages 5 and 6 each from
    the one before on every round; N steps each. Then the value head on stage 6's encoder (stage 7) and the text fit
    on the value head's."""
    calls = []
    videos = wr.TrainingVideos(videos=[None] * 3, groups=["a"] * 3, final_goal_ok=[True] * 3,
                               kinds=["expert", "noisy", wr.HIGH_DETOUR])
    with_detours = wr.TrainingVideos(videos=[None] * 4, groups=["a"] * 4, final_goal_ok=[True] * 4,
                                     kinds=["expert", "noisy", wr.HIGH_DETOUR, wr.PLANNER_DETOUR])
    loads = []
    monkeypatch.setattr(wr, "collect_data", lambda *args, **kwargs: [tmp_path / "base.h5"])
    monkeypatch.setattr(wr, "load_training_videos", lambda paths, **kwargs: loads.append(list(paths)) or (videos if len(loads) == 1 else with_detours))
    collected = []
    monkeypatch.setattr(wr, "collect_all_planner_detours",
                        lambda data_dir, encoder, round, workers=1: collected.append((data_dir, encoder, round)) or [tmp_path / f"pd{round}.h5"])
    encoders = []
    monkeypatch.setattr(wr, "train", lambda name, data, **kwargs: calls.append((data, kwargs)) or encoders.append(Encoder()) or encoders[-1])
    monkeypatch.setattr(wr, "trunk_start", lambda config, source, out: out)
    monkeypatch.setattr(wr, "with_text_tower", lambda encoder, text: encoder)
    fits = []
    monkeypatch.setattr(wr, "fit_text", lambda name, encoder, data, **kw: fits.append((name, encoder, data)) or {"train_seconds": 1.0})
    exported = []
    monkeypatch.setattr(wr, "export", lambda name, encoder, **kwargs: exported.append((name, encoder, kwargs)) or tmp_path / "x")
    assert wr.main(["--only", "td-sim", "--steps", "3", "--no-export", "--out", str(tmp_path)]) == 0
    # --no-export: the final encoder and its record go to OUT/final, not to the bundled weights
    ((name, encoder, kwargs),) = exported
    ((_, head_on, head_data, _),) = value_heads
    assert head_on is encoders[6] and head_data is with_detours  # on the last image stage, with its videos
    assert name == "td-sim" and isinstance(encoder, ValueHeaded) and encoder.base is encoders[6] and kwargs["to"] == tmp_path / "final"
    assert len(kwargs["stages"]) == 8 and kwargs["command"] == "python -m vip_rl.weights_recipe --only td-sim"
    assert "value_head_config" in kwargs["stages"][6]
    assert fits == [("td-sim", encoder, with_detours)]  # the text tower of the value head's encoder, on its videos
    # round 1 with stage 2's encoder, round 2 with stage 3's; each stage trains on every round so far
    assert collected == [(tmp_path / "data", encoders[2], 1), (tmp_path / "data", encoders[3], 2)]
    assert loads[1:] == [[tmp_path / "base.h5", tmp_path / "pd1.h5"], [tmp_path / "base.h5", tmp_path / "pd1.h5", tmp_path / "pd2.h5"]]
    (_, source), (_, first), (_, second), (third_data, third), (_, fourth), (fifth_data, fifth), (sixth_data, sixth) = calls
    # the trunk source (TRUNKS: draw 3, the bundled vip-sim's draw since session 27, so in vip-sim's own folder)
    assert source["out_dir"] == tmp_path / "vip-sim" and source["config"].steps == 3
    assert first["out_dir"] == tmp_path / "td-sim" and first["init_from"] == tmp_path / "td-sim-trunk" and first["config"].steps == 3
    assert second["out_dir"] == tmp_path / "td-sim-ft" and second["init_from"] == tmp_path / "td-sim" / "encoder"
    assert second["config"].steps == 3 and second["config"].lr == wr.FINETUNES["td-sim"][0].overrides["lr"]
    assert second["kinds"] == wr.FINETUNES["td-sim"][0].kinds
    assert third["out_dir"] == tmp_path / "td-sim-ft2" and third["init_from"] == tmp_path / "td-sim-ft" / "encoder"
    assert third["kinds"] == wr.FINETUNES["td-sim"][1].kinds and third_data is with_detours
    assert fourth["out_dir"] == tmp_path / "td-sim-ft3" and fourth["init_from"] == tmp_path / "td-sim-ft2" / "encoder"
    assert fifth["out_dir"] == tmp_path / "td-sim-ft4" and fifth["init_from"] == tmp_path / "td-sim-ft3" / "encoder"
    assert fifth_data is with_detours and fifth["config"].lr == wr.FINETUNES["td-sim"][3].overrides["lr"] and len(loads) == 3
    assert sixth["out_dir"] == tmp_path / "td-sim-ft5" and sixth["init_from"] == tmp_path / "td-sim-ft4" / "encoder"
    assert sixth_data is with_detours and sixth["config"].seed == fifth["config"].seed + 4


def test_text_fit_only_refits_the_bundled_weights_and_keeps_the_earlier_stages(tmp_path, monkeypatch, value_heads):
    import vip_rl.encoders

    record = {"pretrain_config": wr.CONFIGS["td-sim"].to_dict(), "videos_used": {"expert": 3}}

    class Bundled:
        has_text = True
        config = {"training": {"stages": [
            *({**record, "train_seconds": float(10 - k)} for k in range(6)),
            {"value_head_config": {}, "videos_used": {"expert": 3}, "train_seconds": 4.0},
            {"text_fit_config": {}, "train_seconds": 7.0}]}}  # an earlier text fit is replaced, not kept

    videos = wr.TrainingVideos(videos=[None], groups=["a"], final_goal_ok=[True], kinds=["expert"])
    monkeypatch.setattr(wr, "collect_data", lambda *args, **kwargs: [])
    monkeypatch.setattr(wr, "load_training_videos", lambda *args, **kwargs: videos)
    monkeypatch.setattr(vip_rl.encoders, "load_encoder", lambda name: Bundled())
    monkeypatch.setattr(wr, "train", lambda *args, **kwargs: pytest.fail("--text-fit-only must not train"))
    monkeypatch.setattr(wr, "fit_text", lambda name, encoder, data, **kw: {"text_fit_config": {}, "train_seconds": 2.0})
    exported = []
    monkeypatch.setattr(wr, "export", lambda name, encoder, **kwargs: exported.append(kwargs) or tmp_path / "x")
    detours = [p for r in (1, 2) for p in wr.planner_detour_paths(tmp_path / "data", r)]
    with pytest.raises(SystemExit, match="needs the planner detours the earlier stages trained on"):
        wr.main(["--only", "td-sim", "--text-fit-only", "--out", str(tmp_path)])
    detours[0].parent.mkdir(parents=True, exist_ok=True)
    for path in detours:
        path.touch()
    assert wr.main(["--only", "td-sim", "--text-fit-only", "--out", str(tmp_path)]) == 0
    (kwargs,) = exported
    assert [s["train_seconds"] for s in kwargs["stages"]] == [10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 2.0] and kwargs["seconds"] == 51.0
    assert value_heads == []  # the bundled weights' value head is kept
    assert "--text-fit-only" in kwargs["stages"][-1]["command"] and kwargs["command"] == "python -m vip_rl.weights_recipe --only td-sim --text-fit-only"
    with pytest.raises(SystemExit, match="2"):  # no text-fit stage: a usage error (argparse exits with 2)
        wr.main(["--only", "vip-sim", "--text-fit-only", "--out", str(tmp_path)])


def test_from_stage_trains_the_later_stages_on_the_bundled_weights(tmp_path, monkeypatch, capsys, value_heads):
    """`--from-stage 5`: stage 5 starts from the bundled weights (stages 1-4 keep their records), then stage 6 from
    stage 5's, on the base videos and both planner rounds, then the value head and the text fit; the export records
    every stage and the summed time. `--from-stage 7` fits only the value head (and the text) on weights of stages 1-6."""
    import vip_rl.encoders

    record = {"pretrain_config": wr.CONFIGS["td-sim"].to_dict(), "videos_used": {"expert": 3}}

    class Bundled:
        has_text = True
        config = {"training": {"stages": [*({**record, "train_seconds": 10.0} for _ in range(4)),
                                          {"text_fit_config": {}, "train_seconds": 7.0}]}}

    videos = wr.TrainingVideos(videos=[None], groups=["a"], final_goal_ok=[True], kinds=["expert"])
    loads, calls, exported = [], [], []
    monkeypatch.setattr(wr, "collect_data", lambda *args, **kwargs: [tmp_path / "base.h5"])
    monkeypatch.setattr(wr, "load_training_videos", lambda paths, **kwargs: loads.append(list(paths)) or videos)
    monkeypatch.setattr(vip_rl.encoders, "load_encoder", lambda name: Bundled())
    monkeypatch.setattr(wr, "collect_all_planner_detours", lambda *args, **kwargs: pytest.fail("stage 5 collects no planner round"))
    monkeypatch.setattr(wr, "train", lambda name, data, **kwargs: calls.append(kwargs) or f"stage-{len(calls) + 4} encoder")
    monkeypatch.setattr(wr, "fit_text", lambda name, encoder, data, **kw: {"text_fit_config": {}, "train_seconds": 2.0, "on": encoder})
    monkeypatch.setattr(wr, "with_text_tower", lambda encoder, text: encoder)
    monkeypatch.setattr(wr, "export", lambda name, encoder, **kwargs: exported.append((encoder, kwargs)) or tmp_path / "x")
    detours = [p for r in (1, 2) for p in wr.planner_detour_paths(tmp_path / "data", r)]
    detours[0].parent.mkdir(parents=True, exist_ok=True)
    for path in detours:
        path.touch()
    assert wr.main(["--only", "td-sim", "--from-stage", "5", "--steps", "3", "--out", str(tmp_path)]) == 0
    call, again = calls
    assert call["init_from"] == "td-sim" and call["out_dir"] == tmp_path / "td-sim-ft4" and call["config"].steps == 3
    assert call["config"].lr == wr.FINETUNES["td-sim"][3].overrides["lr"] and call["kinds"] == wr.FINETUNES["td-sim"][3].kinds
    assert again["init_from"] == tmp_path / "td-sim-ft4" / "encoder" and again["config"].seed == call["config"].seed + 4
    assert loads[-1] == [tmp_path / "base.h5", *detours]
    ((encoder, kwargs),) = exported
    assert isinstance(encoder, ValueHeaded) and encoder.base == "stage-6 encoder" and kwargs["stages"][-1]["on"] is encoder
    assert [s.get("command", "") for s in kwargs["stages"][4:]] == ["python -m vip_rl.weights_recipe --only td-sim --from-stage 5"] * 4
    assert kwargs["command"] == "python -m vip_rl.weights_recipe --only td-sim --from-stage 5"  # not the full recipe's
    assert [s["init_from"] for s in kwargs["stages"][4:6]] == ["stage 4", "stage 5"] and len(kwargs["stages"]) == 8
    # weights that hold stage 5 already stand for stages 1-5: --from-stage 5 on them would train stage 5 twice
    Bundled.config["training"]["stages"].insert(4, {**record, "train_seconds": 10.0})
    with pytest.raises(SystemExit, match=r"td-sim: the bundled weights record 5 training stage\(s\), --from-stage 5 needs "
                                         r"weights of stages 1-4 exactly; stage 5 would be trained a second time on top of itself"):
        wr.main(["--only", "td-sim", "--from-stage", "5", "--out", str(tmp_path)])
    assert len(calls) == 2  # refused before training
    # --from-stage 7 on weights of stages 1-6: no image stage, the value head on the bundled encoder, the text fit
    Bundled.config["training"]["stages"].insert(5, {**record, "train_seconds": 10.0})
    exported.clear()
    assert wr.main(["--only", "td-sim", "--from-stage", "7", "--out", str(tmp_path)]) == 0
    assert len(calls) == 2 and isinstance(value_heads[-1][1], Bundled) and len(value_heads) == 2
    ((encoder, kwargs),) = exported
    assert encoder.base is value_heads[-1][1] and len(kwargs["stages"]) == 8 and "value_head_config" in kwargs["stages"][6]
    # bad stage numbers and combinations are usage errors (argparse exits with 2)
    for argv in (["--from-stage", "1"], ["--from-stage", "8"], ["--from-stage", "5", "--text-fit-only"]):
        with pytest.raises(SystemExit, match="2"):
            wr.main(["--only", "td-sim", *argv, "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="2"):
        wr.main(["--from-stage", "5", "--out", str(tmp_path)])
    assert "--from-stage" in capsys.readouterr().err


def test_export_to_another_directory_leaves_the_bundled_weights_alone(tmp_path, monkeypatch):
    """``export(..., to=DIR)`` (``--no-export``) writes ``DIR/<name>.safetensors`` + its recipe record, loadable by path;
    the bundled weights directory is not touched."""
    import torch

    from vip_rl.encoders import build_encoder, checkpoint, load_encoder

    bundled = tmp_path / "bundled"
    bundled.mkdir()
    monkeypatch.setattr(checkpoint, "weights_dir", lambda: bundled)
    encoder = build_encoder("cnn", metric="l2", embed_dim=8, image_size=32, cnn_channels=(4, 4, 4, 4), seed=0)
    stages = [{"pretrain_config": wr.CONFIGS["td-sim"].to_dict(), "train_seconds": 1.0}]
    path = wr.export("td-sim", encoder, config=wr.CONFIGS["td-sim"], counts={"expert": 3}, seconds=1.0,
                     command="python -m vip_rl.weights_recipe --only td-sim", stages=stages, to=tmp_path / "out" / "final")
    assert path == tmp_path / "out" / "final" / "td-sim.safetensors" and path.with_suffix(".json").is_file()
    assert list(bundled.iterdir()) == []
    loaded = load_encoder(path)
    assert loaded.config["training"]["stages"] == stages and loaded.config["training"]["command"].endswith("--only td-sim")
    from vip_rl._provenance import code_version

    assert loaded.config["training"]["code"] == code_version()  # the code of the export (the stages record their own)
    from vip_rl._provenance import cpu_model

    assert loaded.config["training"]["cpu_model"] == cpu_model()  # which CPU exported it (runs part between CPUs)
    x = torch.zeros(2, 32, 32, 3, dtype=torch.uint8)
    assert torch.equal(loaded.encode_images(x), encoder.encode_images(x))


def test_fit_text_adds_the_seed_offset(monkeypatch):
    import vip_rl.pretrain as pretrain_module

    fitted = []
    stats = dict.fromkeys(("pairs", "goal_pairs", "instructions", "seconds", "loss_before", "loss_after",
                           "goal_distance_before", "goal_distance_after"), 0.0)
    monkeypatch.setattr(pretrain_module, "fit_text_tower", lambda encoder, videos, **kw: fitted.append(kw["config"].seed) or stats)
    videos = wr.TrainingVideos(videos=[None], groups=["a"], final_goal_ok=[True], kinds=["expert"])
    record = wr.fit_text("td-sim", object(), videos, seed=5)
    assert fitted == [wr.TEXT_FITS["td-sim"].seed + 5] and record["text_fit_config"]["seed"] == wr.TEXT_FITS["td-sim"].seed + 5
    wr.fit_text("td-sim", object(), videos)
    assert fitted[-1] == wr.TEXT_FITS["td-sim"].seed  # no offset: the recipe's own seed


def _tiny_config(**overrides):
    return dataclasses.replace(wr.RECIPES["td-sim"], image_size=32, cnn_channels=(4, 8), embed_dim=8, head_hidden=(16,), text="none",
                               **overrides)


def test_trunk_start_copies_the_conv_trunk_and_keeps_a_fresh_seeded_head(tmp_path):
    """The first stage of a recipe in TRUNKS: conv layers from the source, the MLP head as the config's seed builds it."""
    import torch
    from vip_rl.encoders import build_encoder, load_encoder

    config = _tiny_config(seed=5)
    source = build_encoder("cnn", embed_dim=8, image_size=32, cnn_channels=(4, 8), head_hidden=(16,), seed=99)
    fresh = build_encoder("cnn", embed_dim=8, image_size=32, cnn_channels=(4, 8), head_hidden=(16,), seed=5)
    start = load_encoder(wr.trunk_start(config, source, tmp_path / "start")).state_dict()
    for key, value in start.items():
        expected = source.state_dict()[key] if key.startswith("vision.convs.") else fresh.state_dict()[key]
        assert torch.equal(value, expected), key
    assert any(key.startswith("vision.convs.") for key in start) and any(key.startswith("vision.head.") for key in start)
    other = build_encoder("cnn", embed_dim=8, image_size=32, cnn_channels=(4, 16), head_hidden=(16,), seed=0)
    with pytest.raises(ValueError, match=r"conv trunk \(\d+ tensors\) does not fit cnn_channels=\[4, 8\]"):
        wr.trunk_start(config, other, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="trunk_start copies a CNN trunk, got arch='resnet18'"):
        wr.trunk_start(dataclasses.replace(config, arch="resnet18", head_hidden=()), source, tmp_path / "resnet")


def test_with_text_tower_adds_a_text_tower_and_keeps_the_image_tower():
    import torch
    from vip_rl.encoders import build_encoder

    encoder = build_encoder("cnn", embed_dim=8, image_size=32, cnn_channels=(4, 8), head_hidden=(16,), seed=3)
    encoder.config["training"] = {"stages": [1]}
    wider = wr.with_text_tower(encoder, "hashing")
    assert wider.has_text and not encoder.has_text and wider.config["training"] == {"stages": [1]}
    frames = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    assert torch.equal(wider.encode_images(frames), encoder.encode_images(frames))


def test_td_sim_trains_on_vip_sims_trunk_without_text_until_the_text_fit(tmp_path, monkeypatch):
    """TRUNKS: `--only td-sim` trains (or resumes) vip-sim's first stage at the pinned draw without exporting it;
    td-sim's first stage starts from its trunk with text none (so do the later stages), the text tower is attached
    before the text fit, and the first stage's record names the source. When the pinned draw is the one vip-sim
    exports (draw 3 for both since session 27), the trunk is OUT/vip-sim and, with both, trains first, once, and is
    exported; when it is not (session 26's pin at draw 0), the trunk trains in OUT/vip-sim-draw0 beside the exported
    vip-sim."""
    # first the case of a vip-sim exported at the trunk's draw (the bundled recipe's)
    bundled_draw, bundled_config = wr.DRAWS["vip-sim"], wr.CONFIGS["vip-sim"]
    monkeypatch.setitem(wr.DRAWS, "vip-sim", wr.TRUNKS["td-sim"][1])
    monkeypatch.setitem(wr.CONFIGS, "vip-sim", dataclasses.replace(wr.RECIPES["vip-sim"], seed=wr.RECIPES["vip-sim"].seed + wr.TRUNKS["td-sim"][1]))
    videos = wr.TrainingVideos(videos=[None] * 2, groups=["a"] * 2, final_goal_ok=[True] * 2, kinds=["expert", wr.HIGH_DETOUR])
    monkeypatch.setattr(wr, "collect_data", lambda *args, **kwargs: [tmp_path / "base.h5"])
    monkeypatch.setattr(wr, "load_training_videos", lambda paths, **kwargs: videos)
    monkeypatch.setattr(wr, "collect_all_planner_detours", lambda data_dir, encoder, round, workers=1: [tmp_path / f"pd{round}.h5"])
    calls = []
    monkeypatch.setattr(wr, "train", lambda name, data, **kwargs: calls.append((name, kwargs)) or Encoder(name))
    starts = []
    monkeypatch.setattr(wr, "trunk_start", lambda config, source, out: starts.append((config, source, out)) or out)
    attached = []
    monkeypatch.setattr(wr, "with_text_tower", lambda encoder, text: attached.append(text) or Encoder(encoder.name, True))
    fitted = []
    monkeypatch.setattr(wr, "fit_text", lambda name, encoder, data, seed=0: fitted.append(encoder.has_text) or {"train_seconds": 1.0})
    exported = []
    monkeypatch.setattr(wr, "export", lambda name, encoder, **kwargs: exported.append((name, kwargs)) or tmp_path / "x")
    assert wr.main(["--only", "td-sim", "--seed", "2", "--no-export", "--out", str(tmp_path)]) == 0
    (source_name, source_kwargs), (first_name, first), *later = calls
    assert source_name == "vip-sim" and source_kwargs["out_dir"] == tmp_path / "vip-sim"
    assert source_kwargs["config"] == dataclasses.replace(wr.CONFIGS["vip-sim"], seed=wr.CONFIGS["vip-sim"].seed + 2)
    ((config, source, start_dir),) = starts
    assert source.name == "vip-sim" and start_dir == tmp_path / "td-sim-trunk"
    assert config.text == "none" and config.seed == wr.CONFIGS["td-sim"].seed + 2
    assert first_name == "td-sim" and first["init_from"] == start_dir and first["config"] == config
    assert len(later) == len(wr.FINETUNES["td-sim"]) and all(kwargs["config"].text == "none" for _, kwargs in later)
    assert attached == [wr.RECIPES["td-sim"].text] == ["minilm"] and fitted == [True]
    ((name, kwargs),) = exported  # the source is not exported
    assert name == "td-sim" and kwargs["command"] == "python -m vip_rl.weights_recipe --only td-sim --seed 2"
    assert kwargs["stages"][0]["init_from"] == "conv trunk of vip-sim (draw 5)"  # the pinned draw 3, + 2
    calls.clear(), starts.clear(), exported.clear()
    assert wr.main(["--only", "td-sim", "--only", "vip-sim", "--no-export", "--out", str(tmp_path)]) == 0
    assert [name for name, _ in calls[:2]] == ["vip-sim", "td-sim"] and starts[0][1].name == "vip-sim"
    assert [name for name, _ in exported] == ["vip-sim", "td-sim"]
    # a single-stage recipe records its stage too, with the code that trained it (here: this call's)
    (vip_stage,) = exported[0][1]["stages"]
    assert vip_stage["pretrain_config"] == wr.CONFIGS["vip-sim"].to_dict() and "code" in vip_stage
    # a trunk pinned at another draw (0) than vip-sim's bundled one (3) trains in a folder of its own
    monkeypatch.setitem(wr.DRAWS, "vip-sim", bundled_draw)
    monkeypatch.setitem(wr.CONFIGS, "vip-sim", bundled_config)
    monkeypatch.setitem(wr.TRUNKS, "td-sim", ("vip-sim", 0))
    assert wr.DRAWS["vip-sim"] == 3
    calls.clear(), starts.clear(), exported.clear()
    assert wr.main(["--only", "td-sim", "--only", "vip-sim", "--no-export", "--out", str(tmp_path)]) == 0
    (vip_name, vip), (trunk_name, trunk), (td_name, _), *_ = calls
    assert vip_name == trunk_name == "vip-sim" and td_name == "td-sim"
    assert vip["out_dir"] == tmp_path / "vip-sim" and vip["config"].seed == wr.RECIPES["vip-sim"].seed + 3
    assert trunk["out_dir"] == tmp_path / "vip-sim-draw0" and trunk["config"] == wr.RECIPES["vip-sim"]
    assert [name for name, _ in exported] == ["vip-sim", "td-sim"]
    assert exported[1][1]["stages"][0]["init_from"] == "conv trunk of vip-sim (draw 0)"


def test_a_run_folder_it_cannot_resume_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    """A run under --out from another draw, recipe or set of videos (e.g. vip-sim's draw 0 from an older `make
    weights`, now that the bundled vip-sim is draw 3): pretrain refuses to resume it, and the recipe says so in one line
    with what to do, exit 2, the torch thread count restored."""
    import torch

    from vip_rl.pretrain import ResumeMismatchError

    videos = wr.TrainingVideos(videos=[None] * 2, groups=["a"] * 2, final_goal_ok=[True] * 2, kinds=["expert", "noisy"])
    monkeypatch.setattr(wr, "collect_data", lambda *args, **kwargs: [tmp_path / "base.h5"])
    monkeypatch.setattr(wr, "load_training_videos", lambda paths, **kwargs: videos)

    def refuse(name, data, **kwargs):
        raise ResumeMismatchError(f"{kwargs['out_dir']}/checkpoint.pt: checkpoint config differs from this run's "
                                  "(checkpoint, now): {'seed': (0, 3)}", "pass resume=False or another out_dir")

    monkeypatch.setattr(wr, "train", refuse)
    threads = torch.get_num_threads()
    assert wr.main(["--only", "vip-sim", "--no-export", "--out", str(tmp_path)]) == 2
    assert torch.get_num_threads() == threads
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("python -m vip_rl.weights_recipe: error: ") and f"{tmp_path / 'vip-sim'}/checkpoint.pt" in line
    assert "{'seed': (0, 3)}" in line and line.endswith("remove that run's folder or pass another --out")
    assert "resume=False" not in line  # pretrain()'s own advice is not the recipe user's to act on


class Encoder:
    """What the mocked ``train`` returns: an encoder of ``name`` with or without a text tower."""

    def __init__(self, name: str = "", has_text: bool = False) -> None:
        self.name, self.has_text = name, has_text


def test_set_overrides_every_td_sim_stage_but_not_its_trunk_source(tmp_path, monkeypatch):
    """`--set KEY=VALUE` (a candidate recipe): the --only encoder's first stage takes the override, its later stages
    inherit it, its trunk source keeps its own config, and the export records the command."""
    videos = wr.TrainingVideos(videos=[None] * 2, groups=["a"] * 2, final_goal_ok=[True] * 2, kinds=["expert", wr.HIGH_DETOUR])
    monkeypatch.setattr(wr, "collect_data", lambda *args, **kwargs: [tmp_path / "base.h5"])
    monkeypatch.setattr(wr, "load_training_videos", lambda paths, **kwargs: videos)
    monkeypatch.setattr(wr, "collect_all_planner_detours", lambda data_dir, encoder, round, workers=1: [tmp_path / f"pd{round}.h5"])
    configs = []
    monkeypatch.setattr(wr, "train", lambda name, data, **kwargs: configs.append((name, kwargs["config"])) or Encoder())
    monkeypatch.setattr(wr, "trunk_start", lambda config, source, out: out)
    monkeypatch.setattr(wr, "with_text_tower", lambda encoder, text: encoder)
    monkeypatch.setattr(wr, "fit_text", lambda name, encoder, data, seed=0: {"train_seconds": 1.0})
    exported = []
    monkeypatch.setattr(wr, "export", lambda name, encoder, **kwargs: exported.append(kwargs) or tmp_path / "x")
    assert wr.main(["--only", "td-sim", "--steps", "2", "--no-export", "--set", "channel_shuffle_prob=0.5",
                    "--set", "seed=6", "--out", str(tmp_path)]) == 0
    (source_name, source), *stages = configs
    assert source_name == "vip-sim" and source.channel_shuffle_prob == 0.0 and source.seed == wr.RECIPES["vip-sim"].seed + wr.TRUNKS["td-sim"][1]
    assert len(stages) == 1 + len(wr.FINETUNES["td-sim"])
    assert all(config.channel_shuffle_prob == 0.5 for _, config in stages)
    assert [config.seed for _, config in stages] == [6] * len(wr.FINETUNES["td-sim"]) + [10]  # seed is absolute; stage 6 adds 4
    assert exported[0]["command"] == ("python -m vip_rl.weights_recipe --only td-sim --set channel_shuffle_prob=0.5 "
                                      "--set seed=6 --no-export")


@pytest.mark.parametrize(("argv", "message"), [
    (["--only", "td-sim", "--set", "seed=6"], "--set needs --only with one encoder and --no-export"),
    (["--set", "seed=6", "--no-export"], "--set needs --only with one encoder and --no-export"),
    (["--only", "td-sim", "--no-export", "--set", "nope=1"], "'nope' is not a PretrainConfig field"),
    (["--only", "td-sim", "--no-export", "--set", "seed"], "--set expects KEY=VALUE, got 'seed'"),
    (["--only", "td-sim", "--no-export", "--set", "embed_dim=wide"], "embed_dim takes a int"),
    (["--only", "td-sim", "--no-export", "--set", "channel_shuffle_prob=2"], r"channel_shuffle_prob must be in \[0, 1\]"),
    (["--only", "td-sim", "--no-export", "--set", "seed=6", "--from-stage", "5"], "--set trains the full recipe"),
])
def test_bad_set_is_a_usage_error_before_anything_runs(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.setattr(wr, "collect_data", lambda *args, **kwargs: pytest.fail("collected before the usage check"))
    with pytest.raises(SystemExit, match="^2$"):
        wr.main([*argv, "--out", str(tmp_path)])
    assert re.search(message, capsys.readouterr().err)
    assert not list(tmp_path.iterdir())


def test_parse_overrides_reads_each_field_as_its_type():
    assert wr.parse_overrides(["embed_dim=256", "channel_shuffle_prob=0.25", "crop_scale=0.9,1.0", "text=none",
                               "cnn_channels=32,32,64,64", "head_hidden=256,256"]) == {
        "embed_dim": 256, "channel_shuffle_prob": 0.25, "crop_scale": (0.9, 1.0), "text": "none",
        "cnn_channels": (32, 32, 64, 64), "head_hidden": (256, 256)}
    assert wr.parse_overrides(["cnn_channels=none"]) == {"cnn_channels": None}  # a field that may be None
    with pytest.raises(ValueError, match=r"head_hidden takes a tuple\[int, \.\.\.\]"):
        wr.parse_overrides(["head_hidden=none"])


def test_overrides_are_checked_against_the_config_they_change():
    # td-sim's config is a tdist one, so its reconstruction term is a valid override there and not on a VIP config
    assert wr.parse_overrides(["recon_weight=5", "recon_focus=0.9"], wr.CONFIGS["td-sim"]) == {
        "recon_weight": 5.0, "recon_focus": 0.9}
    with pytest.raises(ValueError, match="needs objective='tdist'"):
        wr.parse_overrides(["recon_weight=5"], wr.CONFIGS["vip-sim"])


def test_set_on_td_sim_takes_a_tdist_only_field(tmp_path, monkeypatch):
    seen = {}

    def stop(*args, **kwargs):  # the usage checks passed: record the overrides main parsed and stop before collecting
        raise SystemExit(0)

    monkeypatch.setattr(wr, "collect_data", stop)
    monkeypatch.setattr(wr, "_run", lambda args: seen.update(args.overrides) or stop())
    with pytest.raises(SystemExit, match="^0$"):
        wr.main(["--only", "td-sim", "--set", "recon_weight=5", "--no-export", "--out", str(tmp_path)])
    assert seen == {"recon_weight": 5.0}


@pytest.mark.slow
def test_value_head_stage_fits_on_the_last_stages_videos_with_the_seed_added(monkeypatch):
    """`value_head` (the real stage, undoing the autouse stub): VALUE_HEADS' config with `--seed` added, on the kinds
    of the last image stage; the record names the config, the videos per kind and the stats."""
    from vip_rl.encoders import build_encoder

    monkeypatch.undo()  # the real value_head; VALUE_HEADS set again below
    monkeypatch.setitem(wr.VALUE_HEADS, "td-sim", wr.ValueHeadConfig(steps=3, batch_size=4, hidden=(8,), dim=4))
    frames = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    videos = wr.TrainingVideos(videos=[Video(frames, text="t", source=str(i)) for i in range(3)], groups=["a"] * 3,
                               final_goal_ok=[True] * 3, kinds=["expert", "play", wr.PLANNER_DETOUR])
    encoder = build_encoder("cnn", embed_dim=8, image_size=32, cnn_channels=(4, 8), head_hidden=(16,), seed=3)
    new, record = wr.value_head("td-sim", encoder, videos, seed=2)
    assert new.embed_dim == 12 and record["value_head_config"]["seed"] == 2 and record["value_head_config"]["dim"] == 4
    assert record["videos_used"] == {kind: (1 if kind in ("expert", "play", wr.PLANNER_DETOUR) else 0)
                                     for kind in wr.FINETUNES["td-sim"][-1].kinds}
    assert record["value_head"]["frames"] == 15 and "code" in record
