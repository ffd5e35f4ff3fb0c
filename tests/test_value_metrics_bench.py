"""Tests for benchmarks/_value_metrics.py's same-target PushBlock goals (issue 17), the VOC and the decoy test computed
with them, and the decoy states they share with the ordinary decoy test."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture()
def metrics(benchmark_module):
    return benchmark_module("_value_metrics")


def _pushblock_episodes(seeds: list[int], *, image_size: int = 32) -> list[SimpleNamespace]:
    """Stand-ins for collect_eval's episodes: the reset state of each seed (what same_target_goals reads)."""
    import gymnasium
    import vip_envs

    env = gymnasium.make(vip_envs.env_id("PushBlock"), image_size=image_size)
    episodes = []
    for seed in seeds:
        env.reset(seed=seed)
        episodes.append(SimpleNamespace(attrs={"seed": seed, "embodiment": "gripper", "task": "PushBlock"},
                                        sim_states=env.unwrapped.get_state()[None],
                                        frames={"front": np.zeros((1, image_size, image_size, 3), np.uint8)}))
    env.close()
    return episodes


def test_same_target_goal_has_the_episodes_target_and_another_block_start(metrics, tmp_path):
    import gymnasium
    import vip_envs

    episodes = _pushblock_episodes([3, 4])
    goals = metrics.same_target_goals(episodes, cache=tmp_path)
    env = gymnasium.make(vip_envs.env_id("PushBlock"), image_size=32)
    layout = env.unwrapped.layout
    target, block = 1 + layout.target, 1 + layout.block + np.arange(2)  # state = [time, qpos, ...]
    assert goals.frames.shape == (2, 32, 32, 3) and goals.frames.dtype == np.uint8
    for i, episode in enumerate(episodes):
        own = episode.sim_states[0]
        assert goals.seeds[i] >= episode.attrs["seed"] + metrics.SAME_TARGET_SEED_OFFSET
        np.testing.assert_array_equal(goals.start_states[i][target], own[target])
        np.testing.assert_allclose(goals.final_states[i][target], own[target], atol=1e-9)  # the marker stays put
        assert np.linalg.norm(goals.start_states[i][block] - own[block]) > 0.01  # another block start
        assert np.linalg.norm(goals.start_states[i][block] - own[target]) >= metrics.MIN_BLOCK_TARGET_DISTANCE
        assert env.unwrapped.evaluate_states(goals.final_states[i])["success"]  # the block is on episode i's target
    env.close()
    # cached under a key of the episodes' seeds and targets: reused as is, never for other episodes
    cached = metrics.same_target_goals(episodes, cache=tmp_path)
    np.testing.assert_array_equal(cached.frames, goals.frames)
    metrics.same_target_goals(episodes[:1], cache=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 2 and not list(tmp_path.glob(".*"))


def test_same_target_goals_rejects_other_tasks(metrics):
    episode = SimpleNamespace(attrs={"seed": 0, "embodiment": "gripper", "task": "OpenDrawer"}, sim_states=None, frames={})
    with pytest.raises(ValueError, match=r"PushBlock episodes .* got tasks \['OpenDrawer'\]"):
        metrics.same_target_goals([episode])
    with pytest.raises(ValueError, match="at least one PushBlock episode"):
        metrics.same_target_goals([])


def test_same_target_decoy_has_the_goal_end_effector_and_the_episodes_block_and_target(metrics, tmp_path):
    import gymnasium
    import vip_envs

    episodes = _pushblock_episodes([3, 4])
    goals = metrics.same_target_goals(episodes, cache=tmp_path)
    env = gymnasium.make(vip_envs.env_id("PushBlock"), render_mode="rgb_array", image_size=96)
    env.reset(seed=0)
    unwrapped = env.unwrapped
    layout = unwrapped.layout
    ee, fingers = 1 + layout.ee, 1 + layout.fingers  # state = [time, qpos, ...]
    block, target = 1 + layout.block + np.arange(7), 1 + layout.target
    states = metrics.decoy_states(layout, episodes, goal_states=goals.final_states)
    frames = metrics.decoy_frames("PushBlock", episodes, goal_states=goals.final_states, embodiment="gripper")
    for i, episode in enumerate(episodes):
        own = episode.sim_states[0]
        np.testing.assert_array_equal(states[i][ee], goals.final_states[i][ee])
        np.testing.assert_array_equal(states[i][fingers], goals.final_states[i][fingers])
        np.testing.assert_array_equal(states[i][block], own[block])  # the block where episode i starts ...
        np.testing.assert_array_equal(states[i][target], own[target])  # ... and episode i's (= the goal's) target
        assert np.linalg.norm(states[i][block[:2]] - goals.final_states[i][block[:2]]) > 0.05  # not the goal's block
        others = np.setdiff1d(np.arange(len(own)), np.concatenate([ee, fingers]))
        np.testing.assert_array_equal(states[i][others], own[others])
    # rendered like the ordinary decoys (96 px, front camera, the episodes' embodiment)
    assert frames.shape == (2, 96, 96, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, unwrapped.render_states(states, camera="front"))
    env.close()


def test_decoy_states_of_partners_equal_those_of_their_final_states(metrics):
    import gymnasium
    import vip_envs

    episodes = _pushblock_episodes([3, 4, 5])
    for e, final in zip(episodes, _pushblock_episodes([6, 7, 8])):  # a distinct "final" state per episode
        e.sim_states = np.concatenate([e.sim_states, final.sim_states])
    env = gymnasium.make(vip_envs.env_id("PushBlock"), image_size=32)
    layout = env.unwrapped.layout
    env.close()
    partners = [1, 2, 0]
    by_partner = metrics.decoy_states(layout, episodes, partners)
    finals = np.stack([episodes[j].sim_states[-1] for j in partners])
    np.testing.assert_array_equal(by_partner, metrics.decoy_states(layout, episodes, goal_states=finals))
    np.testing.assert_array_equal(by_partner[:, 1 + layout.ee], finals[:, 1 + layout.ee])
    with pytest.raises(ValueError, match="exactly one of partners and goal_states"):
        metrics.decoy_states(layout, episodes, partners, goal_states=finals)
    with pytest.raises(ValueError, match="exactly one of partners and goal_states"):
        metrics.decoy_states(layout, episodes)
    with pytest.raises(ValueError, match=r"one goal state per episode, shape \(3, \d+\), got \(2, \d+\)"):
        metrics.decoy_states(layout, episodes, goal_states=finals[:2])


class _PixelEncoder:
    """Toy encoder: the embedding is the top-left pixel's red value."""

    def encode_images(self, images: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(images[:, 0, 0, :1], dtype=torch.float32)

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(a - b, dim=-1)


def _ramp_episodes(n: int, steps: int = 6) -> list[SimpleNamespace]:
    """Frames whose pixel value rises with time (10, 20, ...): any episode's final frame ranks them in order."""
    frames = np.zeros((steps, 4, 4, 3), np.uint8)
    frames[..., 0] = (10 * np.arange(1, steps + 1))[:, None, None]
    return [SimpleNamespace(frames={"front": frames}, states=np.zeros((steps, 21), np.float32),
                            task_progress=np.linspace(0, 1, steps, dtype=np.float32)) for _ in range(n)]


def test_voc_same_target_is_computed_with_the_matched_goals(metrics):
    episodes = {"PushBlock": _ramp_episodes(3)}
    decoys = {"PushBlock": np.zeros((3, 4, 4, 3), np.uint8)}
    goals = np.zeros((3, 4, 4, 3), np.uint8)  # value 0: farther from every later frame, the reverse order
    goals[1, ..., 0] = 60  # the final frame's value: perfect order
    row = metrics.value_metrics(_PixelEncoder(), episodes, decoys=decoys, matched_goals={"PushBlock": goals})["PushBlock"]
    assert row["voc_other"] == pytest.approx(1.0)
    assert row["voc_same_target"] == pytest.approx((-1.0 + 1.0 - 1.0) / 3)
    assert row["voc_same_target_min"] == pytest.approx(-1.0)
    plain = metrics.value_metrics(_PixelEncoder(), episodes, decoys=decoys)["PushBlock"]
    assert "voc_same_target" not in plain and {k: row[k] for k in plain} == plain  # nothing else changes
    with pytest.raises(ValueError, match=r"matched_goals\['PushBlock'\] must hold one goal frame per episode \(3\), got 2"):
        metrics.value_metrics(_PixelEncoder(), episodes, decoys=decoys, matched_goals={"PushBlock": goals[:2]})


def test_same_target_decoy_pass_rate_is_computed_against_the_matched_goals(metrics):
    # ramp frames 10..60; the 50%-progress frame is index 3 (value 40); ordinary goal = partner's final frame (60)
    episodes = {"PushBlock": _ramp_episodes(3)}
    decoys = {"PushBlock": np.zeros((3, 4, 4, 3), np.uint8)}  # d = 60 > 20 from the ordinary goal: all pass
    goals = np.zeros((3, 4, 4, 3), np.uint8)
    goals[[0, 2], ..., 0] = 60
    matched_decoys = np.zeros((3, 4, 4, 3), np.uint8)
    matched_decoys[:, ..., 0] = np.array([30, 0, 50])[:, None, None]  # d to the matched goal 30 > 20, 0 < 40, 10 < 20
    row = metrics.value_metrics(_PixelEncoder(), episodes, decoys=decoys, matched_goals={"PushBlock": goals},
                                matched_decoys={"PushBlock": matched_decoys})["PushBlock"]
    assert row["decoy_pass_rate"] == pytest.approx(1.0)
    assert row["decoy_same_target_pass_rate"] == pytest.approx(1 / 3)
    assert row["decoy_same_target_margin"] == pytest.approx(((30 - 20) / 50 + (0 - 40) / 10 + (10 - 20) / 50) / 3)
    plain = metrics.value_metrics(_PixelEncoder(), episodes, decoys=decoys, matched_goals={"PushBlock": goals})["PushBlock"]
    assert "decoy_same_target_pass_rate" not in plain and {k: row[k] for k in plain} == plain  # nothing else changes
    with pytest.raises(ValueError, match=r"matched_decoys needs matched_goals .* decoys for \['PushBlock'\] and goals for \[\]"):
        metrics.value_metrics(_PixelEncoder(), episodes, decoys=decoys, matched_decoys={"PushBlock": matched_decoys})
    with pytest.raises(ValueError, match=r"matched_decoys\['PushBlock'\] must hold one decoy frame per episode \(3\), got 1"):
        metrics.value_metrics(_PixelEncoder(), episodes, decoys=decoys, matched_goals={"PushBlock": goals},
                              matched_decoys={"PushBlock": matched_decoys[:1]})


@pytest.mark.parametrize(("same_target", "expected"), [(1.0, (3 * 0.5 + 4 * 1.0 + 1 * 1.0) / 8), (0.0, (3 * 0.5 + 4 * 0.0 + 1 * 1.0) / 8)])
def test_summarise_pools_the_decoy_pass_rate_with_pushblocks_same_target_one(metrics, same_target, expected):
    row = {"voc_own": 1.0, "voc_other": 0.9, "reach_voc": 0.9}
    per_task = {"OpenDrawer": {**row, "episodes": 3, "decoy_pass_rate": 0.5}, "PushBlock": {**row, "episodes": 4, "decoy_pass_rate": 0.25},
                "FlipSwitch": {**row, "episodes": 1, "decoy_pass_rate": 1.0}}
    summary = metrics.summarise(per_task, "FlipSwitch")
    assert summary["decoy_pass_rate"] == pytest.approx(3.5 / 8) and "decoy_pass_rate_same_target" not in summary
    per_task["PushBlock"]["decoy_same_target_pass_rate"] = same_target
    summary = metrics.summarise(per_task, "FlipSwitch")
    assert summary["decoy_pass_rate"] == pytest.approx(3.5 / 8)  # unchanged
    assert summary["decoy_pass_rate_same_target"] == pytest.approx(expected)


def test_summarise_replaces_pushblock_by_its_same_target_voc(metrics):
    row = {"episodes": 2, "voc_own": 1.0, "reach_voc": 0.9, "decoy_pass_rate": 1.0}
    per_task = {"OpenDrawer": {**row, "voc_other": 0.97}, "PushBlock": {**row, "voc_other": 0.6},
                "FlipSwitch": {**row, "voc_other": 0.5}}
    summary = metrics.summarise(per_task, "FlipSwitch")
    assert summary["voc_other_trained_min"] == 0.6 and "voc_other_trained_min_same_target" not in summary
    per_task["PushBlock"]["voc_same_target"] = 0.99
    summary = metrics.summarise(per_task, "FlipSwitch")
    assert summary["voc_other_trained_min"] == 0.6 and summary["voc_other_trained_min_same_target"] == 0.97


def test_representation_report_shows_the_same_target_figures(benchmark_module):
    import json

    result = json.loads((BENCHMARKS / "results" / "representation.json").read_text())
    text = benchmark_module("representation").render(result)
    for name, block in result["encoders"].items():
        value = block["summary"]["voc_other_trained_min_same_target"]
        assert f"| VOC other-episode goal, trained tasks, PushBlock goal with the same target (min) | {name} | {value:.3f} |" in text
        assert f"PushBlock, goal from an episode with the **same target**: VOC {block['per_task']['PushBlock']['voc_same_target']:.3f}" in text
        value = block["summary"]["decoy_pass_rate_same_target"]
        rows = [line for line in text.splitlines() if f"| {name} |" in line and line.startswith("| decoy farther than 50%-progress frame")]
        assert rows[:2] == [f"| decoy farther than 50%-progress frame (share of episodes) | {name} | {block['summary']['decoy_pass_rate']:.3f} "
                            f"| {block['random_summary']['decoy_pass_rate']:.3f} | >= 0.90 | {rows[0].split(' | ')[-1]}",
                            f"| decoy farther than 50%-progress frame, PushBlock goal with the same target (share of episodes) | {name} "
                            f"| {value:.3f} | {block['random_summary']['decoy_pass_rate_same_target']:.3f} | >= 0.90 | {rows[1].split(' | ')[-1]}"]
        pushblock, rnd = block["per_task"]["PushBlock"], block["random_per_task"]["PushBlock"]
        assert (f"Decoy pass {pushblock['decoy_same_target_pass_rate']:.3f} (random {rnd['decoy_same_target_pass_rate']:.3f}; "
                f"mean margin {pushblock['decoy_same_target_margin']:.3f})") in text


@pytest.mark.parametrize("d, d_decoy, expected", [
    (np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.0]), 2.5, 3),  # frames 3-5 are nearer: the decoy reads as 3 steps
    (np.array([5.0, 4.0, 1.0, 3.0, 1.0, 0.0]), 2.5, 2),  # a frame that comes back above the decoy counts
    (np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.0]), 9.0, 5),  # every frame is nearer: the episode's length
    (np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.5]), 0.2, 0),  # no frame is: 0 steps (nearer than the goal frame itself)
])
def test_apparent_steps_counts_the_steps_left_where_the_episode_stays_nearer_than_the_decoy(metrics, d, d_decoy, expected):
    assert metrics.apparent_steps(d, d_decoy) == expected


def test_value_metrics_reports_the_decoys_apparent_steps(metrics):
    episodes = {"PushBlock": _ramp_episodes(3)}  # frames 10..60, the goal 60: d = 50, 40, ..., 0
    decoys = np.zeros((3, 4, 4, 3), np.uint8)
    decoys[..., 0] = np.array([45, 25, 60])[:, None, None]  # d = 15, 35, 0: 2, 4 and 0 steps
    row = metrics.value_metrics(_PixelEncoder(), episodes, decoys={"PushBlock": decoys})["PushBlock"]
    assert row["decoy_apparent_steps"] == pytest.approx((2 + 4 + 0) / 3)


def _expert_episodes(task: str, seeds: list[int]) -> list[SimpleNamespace]:
    """Stand-ins with the first and final simulator state of a noise-free expert episode per seed (what decoy_states reads)."""
    import gymnasium
    import vip_envs

    env = gymnasium.make(vip_envs.env_id(task), obs_mode="state")
    episodes = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        first, policy, info = env.unwrapped.get_state(), vip_envs.expert(env), {"success": False}
        while not info["success"]:
            obs, _, _, _, info = env.step(policy(obs))
        episodes.append(SimpleNamespace(sim_states=np.stack([first, env.unwrapped.get_state()])))
    env.close()
    return episodes


def test_decoy_defined_leaves_out_the_decoys_one_zero_action_solves(metrics):
    # PressButton's goal pose presses the cap: put there with the button up, the simulator pushes it down at once
    button = _expert_episodes("PressButton", [1, 2])
    assert metrics.decoy_defined("PressButton", button, [1, 0], embodiment="gripper").tolist() == [False, False]
    drawer = _expert_episodes("OpenDrawer", [1, 2])  # the handle's pose with the drawer shut: 17 steps away
    assert metrics.decoy_defined("OpenDrawer", drawer, [1, 0], embodiment="gripper").tolist() == [True, True]
    with pytest.raises(ValueError, match=r"steps must be >= 1, got 0"):
        metrics.decoy_defined("OpenDrawer", drawer, [1, 0], embodiment="gripper", steps=0)


def test_value_metrics_counts_only_the_episodes_whose_decoy_is_one(metrics):
    episodes = {"PushBlock": _ramp_episodes(3)}  # frames 10..60, the goal 60; the 50% frame (40) is 20 away
    decoys = np.zeros((3, 4, 4, 3), np.uint8)
    decoys[..., 0] = np.array([0, 50, 30])[:, None, None]  # d = 60 (pass), 10 (fail), 30 (pass)
    row = metrics.value_metrics(_PixelEncoder(), episodes, decoys={"PushBlock": decoys})["PushBlock"]
    assert row["decoy_episodes"] == 3 and row["decoy_pass_rate"] == pytest.approx(2 / 3)
    kept = metrics.value_metrics(_PixelEncoder(), episodes, decoys={"PushBlock": decoys},
                                 defined={"PushBlock": np.array([True, False, True])})["PushBlock"]
    assert kept["decoy_episodes"] == 2 and kept["decoy_pass_rate"] == 1.0
    assert kept["decoy_margin"] == pytest.approx(((60 - 20) / 50 + (30 - 20) / 50) / 2)
    assert kept["voc_other"] == row["voc_other"]  # the VOC figures keep every episode
    none = metrics.value_metrics(_PixelEncoder(), episodes, decoys={"PushBlock": decoys},
                                 defined={"PushBlock": np.zeros(3, bool)})["PushBlock"]
    assert none["decoy_episodes"] == 0 and np.isnan(none["decoy_pass_rate"]) and np.isnan(none["decoy_apparent_steps"])
    with pytest.raises(ValueError, match=r"defined\['PushBlock'\] must hold one flag per episode \(3\), got 2"):
        metrics.value_metrics(_PixelEncoder(), episodes, decoys={"PushBlock": decoys}, defined={"PushBlock": np.ones(2, bool)})


def test_pooled_decoy_pass_rate_weighs_the_decoys_and_drops_tasks_without_one(metrics):
    per_task = {"OpenDrawer": {"episodes": 4, "decoy_episodes": 4}, "PressButton": {"episodes": 4, "decoy_episodes": 0},
                "PushBlock": {"episodes": 4, "decoy_episodes": 2}}
    rates = {"OpenDrawer": 1.0, "PressButton": float("nan"), "PushBlock": 0.5}
    assert metrics.pooled_decoy_pass_rate(rates, per_task) == pytest.approx((4 * 1.0 + 2 * 0.5) / 6)
    assert np.isnan(metrics.pooled_decoy_pass_rate({"PressButton": float("nan")}, {"PressButton": per_task["PressButton"]}))
    # a row scored before session 35 counts "episodes" for every task: a task without a rate drops out all the same
    old = {"OpenDrawer": {"episodes": 4}, "PressButton": {"episodes": 4}, "PushBlock": {"episodes": 4}}
    assert metrics.decoy_counts({**rates, "PressButton": None}, old) == {"OpenDrawer": 4.0, "PushBlock": 4.0}
    assert metrics.pooled_decoy_pass_rate(rates, old) == pytest.approx(0.75)


def test_the_dev_rule_counts_the_decoys_the_pooled_rate_counts(metrics, benchmark_module):
    dev_select = benchmark_module("dev_select")
    per_task = {"OpenDrawer": {"decoy_pass_rate": 1.0, "episodes": 12, "decoy_episodes": 12},
                "PressButton": {"decoy_pass_rate": float("nan"), "episodes": 12},  # no decoy, an old row's count
                "PushBlock": {"decoy_pass_rate": 0.5, "episodes": 12, "decoy_episodes": 10}}
    rates = {t: v["decoy_pass_rate"] for t, v in per_task.items()}
    assert dev_select.decoy_episodes(per_task) == sum(metrics.decoy_counts(rates, per_task).values()) == 22


def test_expert_steps_from_counts_the_scripted_experts_steps_to_success(metrics):
    import gymnasium
    import vip_envs

    env = gymnasium.make(vip_envs.env_id("PressButton"))
    env.reset(seed=3)
    start = env.unwrapped.get_state()
    policy, steps = vip_envs.expert(env), None
    for n in range(1, 200):
        _, _, _, _, info = env.step(policy(None))
        if info["success"]:
            steps = n
            break
    solved = env.unwrapped.get_state()
    env.close()
    out = metrics.expert_steps_from("PressButton", np.stack([start, solved]))
    assert out[0] == steps and 0 < out[1] < steps  # from the pressed button the expert is done in fewer steps
    assert np.isnan(metrics.expert_steps_from("PressButton", start[None], max_steps=2)[0])


def test_representation_report_says_which_tasks_have_no_decoy(benchmark_module):
    representation = benchmark_module("representation")
    rows = {"OpenDrawer": {"episodes": 12, "decoy_episodes": 12, "decoy_pass_rate": 1.0},
            "PressButton": {"episodes": 12, "decoy_episodes": 0, "decoy_pass_rate": float("nan")}}
    assert representation._decoy_cell(rows["OpenDrawer"], "decoy_pass_rate") == "1.000"
    assert representation._decoy_cell(rows["PressButton"], "decoy_pass_rate") == "no decoy"
    assert representation._decoy_cell({"episodes": 3, "decoy_pass_rate": 0.5}, "decoy_pass_rate") == "0.500"  # older results
    sentence = representation._undefined_decoys(rows)[1]
    assert sentence.startswith("Decoys left out of every decoy figure: PressButton 12 of 12 (")
    assert representation._undefined_decoys({"OpenDrawer": rows["OpenDrawer"]}) == []
