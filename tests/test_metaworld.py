"""vip_envs.metaworld: Meta-World v3 tasks behind the vip_envs hooks (skipped where metaworld is not installed: the
``metaworld`` extra)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("metaworld")

import gymnasium as gym  # noqa: E402

import vip_envs  # noqa: E402
from vip_envs import metaworld as mw  # noqa: E402

DRAWER = "vip_envs/MetaWorld-drawer-open-v3"
SIZE = 48


@pytest.fixture(scope="module")
def env():
    """drawer-open-v3 at 48 px, made once for the module (each test resets it)."""
    made = gym.make(DRAWER, render_mode="rgb_array", image_size=SIZE)
    yield made
    made.close()


def _random_actions(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (count, 4)).astype(np.float32)


# -- registration -------------------------------------------------------------------------------------
def test_ids_are_registered_without_importing_metaworld():
    code = ("import sys, gymnasium as gym, vip_envs\n"
            "assert 'metaworld' not in sys.modules\n"
            "spec = gym.spec('vip_envs/MetaWorld-door-open-v3')\n"
            "print(spec.max_episode_steps, len(vip_envs.METAWORLD_IDS))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(mw.MAX_EPISODE_STEPS), str(len(mw.METAWORLD_TASKS))]


def test_task_list_is_metaworlds_mt1_list():
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    assert mw.METAWORLD_TASKS == tuple(ALL_V3_ENVIRONMENTS)
    assert vip_envs.METAWORLD_IDS[DRAWER] == "drawer-open-v3" and mw.env_id("button-press-v3") in gym.registry


def test_missing_metaworld_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "metaworld", None)
    monkeypatch.setitem(sys.modules, "metaworld.env_dict", None)
    with pytest.raises(ImportError, match=r"pip install vip-rl\[metaworld\]"):
        mw.MetaWorldEnv("drawer-open-v3")


def test_unknown_task_is_refused_by_name():
    with pytest.raises(ValueError, match=r"task must be a Meta-World MT1 task name, one of .*got 'drawer-opne-v3'"):
        mw.MetaWorldEnv("drawer-opne-v3")
    with pytest.raises(ValueError, match=r"got 'OpenDrawer'"):
        mw.env_id("OpenDrawer")
    with pytest.raises(gym.error.Error, match="MetaWorld-drawer-opne"):
        gym.make("vip_envs/MetaWorld-drawer-opne-v3")


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(render_mode="human"), "render_mode must be None or 'rgb_array', got 'human'"),
    (dict(obs_mode="rgb"), r"obs_mode must be one of \['state', 'pixels'\], got 'rgb'"),
    (dict(camera="front"), r"camera must be one of \[.*'corner'.*\], got 'front'"),
    (dict(image_size=0), "image_size must be a positive int, got 0"),
    (dict(camera="corner", cameras=("topview",)), r"camera='corner' contradicts cameras=\('topview',\)"),
])
def test_bad_arguments_are_refused_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mw.MetaWorldEnv("drawer-open-v3", **kwargs)


def test_calls_before_reset_and_bad_inputs_are_refused(env):
    fresh = mw.MetaWorldEnv("reach-v3")
    try:
        with pytest.raises(RuntimeError, match=r"get_state\(\) needs a reset\(\) first"):
            fresh.get_state()
    finally:
        fresh.close()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must have shape \(4,\) and a numeric dtype, got shape \(3,\)"):
        env.step(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"state must be 1-D \[58\] \(from get_state\), got shape \(40,\)"):
        env.unwrapped.set_state(np.zeros(40))
    with pytest.raises(ValueError, match=r"states must have last dimension 58 \(get_state\) or 40"):
        env.unwrapped.render_states(np.zeros((2, 7)))


# -- seeding, frames, state ---------------------------------------------------------------------------
def test_reset_is_deterministic_by_seed(env):
    u = env.unwrapped
    obs_a, info = env.reset(seed=3)
    state_a = u.get_state()
    obs_b, _ = env.reset(seed=3)
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(state_a, u.get_state())
    obs_c, _ = env.reset(seed=4)
    assert not np.array_equal(obs_a[4:7], obs_c[4:7])  # the drawer is placed elsewhere
    assert info == {"success": False, "task_progress": 0.0} and obs_a.shape == (39,) and obs_a.dtype == np.float64
    assert env.observation_space.contains(obs_a)


def test_gymnasium_env_checker_passes():
    import warnings

    from gymnasium.utils.env_checker import check_env

    made = mw.MetaWorldEnv("button-press-v3", image_size=16)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*infinity")  # Meta-World's unbounded object entries
            check_env(made, skip_render_check=True)  # includes: reset(seed=) is deterministic
    finally:
        made.close()


def test_frames_are_upright(env):
    """The corner camera is rolled upside down in Meta-World's XML: gymnasium's renderer of the same data draws the
    scene rotated by 180 degrees relative to ours."""
    from gymnasium.envs.mujoco.mujoco_rendering import MujocoRenderer

    u = env.unwrapped
    env.reset(seed=0)
    ours = env.render().astype(np.int16)
    raw_renderer = MujocoRenderer(u.model, u.data, camera_name="corner", width=SIZE, height=SIZE)
    try:
        raw = raw_renderer.render("rgb_array").astype(np.int16)
    finally:
        raw_renderer.close()

    def arm(image: np.ndarray) -> np.ndarray:  # the red Sawyer arm (the backgrounds differ: no skybox in ours)
        return (image[..., 0] > 90) & (image[..., 1] < 60) & (image[..., 2] < 60)

    def overlap(a: np.ndarray, b: np.ndarray) -> float:
        return float((a & b).sum() / (a | b).sum())

    assert arm(ours).sum() > 50
    assert overlap(arm(ours), arm(raw[::-1, ::-1])) > 0.8 and overlap(arm(ours), arm(raw)) < 0.3
    assert u._flips == {"topview": False, "corner": True, "corner2": True, "corner3": True, "behindGripper": False,
                        "gripperPOV": False}


def test_render_equals_render_states(env):
    u = env.unwrapped
    env.reset(seed=1)
    frames, states = [env.render()], [u.get_state()]
    for action in _random_actions(3, seed=1):
        env.step(action)
        frames.append(env.render())
        states.append(u.get_state())
    before = u.get_state()
    batch = u.render_states(np.stack(states))
    assert batch.dtype == np.uint8 and batch.shape == (4, SIZE, SIZE, 3)
    np.testing.assert_array_equal(batch, np.stack(frames))
    np.testing.assert_array_equal(u.get_state(), before)  # rendering leaves the env as it was
    assert u.render_states(np.stack(states)[:, :-18], camera="topview").shape == (4, SIZE, SIZE, 3)


def test_state_round_trip_continues_bit_identically(env):
    u = env.unwrapped
    env.reset(seed=2)
    for action in _random_actions(5, seed=2):
        env.step(action)
    saved, saved_obs = u.get_state(), u.observation()
    later = _random_actions(6, seed=3)
    first = [env.step(a)[:2] for a in later]
    first_state = u.get_state()
    u.set_state(saved)
    np.testing.assert_array_equal(u.observation(), saved_obs)
    second = [env.step(a)[:2] for a in later]
    for (obs_a, reward_a), (obs_b, reward_b) in zip(first, second):
        np.testing.assert_array_equal(obs_a, obs_b)
        assert reward_a == reward_b
    np.testing.assert_array_equal(u.get_state(), first_state)


@pytest.mark.parametrize("task", ["drawer-open-v3", pytest.param("pick-place-v3", id="pick-place (views of data)")])
def test_evaluate_states_agrees_with_info_and_changes_nothing(task):
    made = gym.make(mw.env_id(task), image_size=SIZE)
    try:
        u = made.unwrapped
        obs, info = made.reset(seed=0)
        policy = vip_envs.expert(made, noise=0.3, seed=0)
        states, rewards, successes, progress = [u.get_state()], [], [], [info["task_progress"]]
        for _ in range(60):
            obs, reward, _, _, info = made.step(policy(obs))
            states.append(u.get_state())
            rewards.append(reward)
            successes.append(info["success"])
            progress.append(info["task_progress"])
        attributes = dict(vars(u.env))
        before, before_obs = u.get_state(), u.observation()
        scores = u.evaluate_states(np.stack(states))
        np.testing.assert_allclose(scores["reward"][1:], rewards, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(scores["success"][1:], successes)
        np.testing.assert_allclose(scores["task_progress"], progress, rtol=0, atol=1e-12)
        assert scores["task_progress"].min() >= 0 and scores["task_progress"].max() <= 1
        np.testing.assert_array_equal(u.get_state(), before)
        np.testing.assert_array_equal(u.observation(), before_obs)
        assert vars(u.env).keys() == attributes.keys() and all(vars(u.env)[k] is v for k, v in attributes.items())
    finally:
        made.close()


def test_pixels_obs_mode_matches_render():
    made = gym.make(DRAWER, render_mode="rgb_array", obs_mode="pixels", cameras=("corner", "topview"), image_size=32)
    try:
        obs, _ = made.reset(seed=0)
        assert sorted(obs) == ["pixels", "pixels_topview", "state"] and made.observation_space.contains(obs)
        np.testing.assert_array_equal(obs["pixels"], made.render())
        obs, *_ = made.step(np.zeros(4, np.float32))
        np.testing.assert_array_equal(obs["pixels_topview"], made.unwrapped.render_states(
            made.unwrapped.get_state()[None], camera="topview")[0])
    finally:
        made.close()


# -- planner -------------------------------------------------------------------------------------------
def test_mujoco_dynamics_uses_the_exact_mocap_backend(env):
    torch = pytest.importorskip("torch")
    from vip_rl.planning import MujocoDynamics

    env.reset(seed=0)
    with MujocoDynamics(env, nthread=0) as dyn:
        check = dyn.check
        assert check.backend == "mocap" and check.max_qpos_diff <= 1e-6 and check.render_diff == 0.0
        assert dyn.rollout_error(steps=10, num_samples=2, seed=1) <= 1e-6
        traj = dyn.rollout(dyn.get_state()[None], torch.zeros(1, 2, 3, 4), needs=frozenset({"frames"}))
        assert traj.frames.shape == (1, 2, 1, SIZE, SIZE, 3)
        scores = dyn.evaluate_states(traj.states)
        assert scores["reward"].shape == (1, 2, 3) and scores["success"].dtype == bool


# -- experts --------------------------------------------------------------------------------------------
def test_expert_rollout_succeeds_on_drawer_open():
    from vip_rl.goals import expert_rollout

    result = expert_rollout(DRAWER, seed=0, env_kwargs=dict(image_size=SIZE))
    assert result.success and result.steps < 100 and result.final_frame.shape == (SIZE, SIZE, 3)


def test_expert_noise_is_seeded_and_clipped(env):
    obs, _ = env.reset(seed=0)
    a = vip_envs.expert(env, noise=5.0, seed=7)
    b = vip_envs.expert(env, noise=5.0, seed=7)
    actions = np.stack([a(obs) for _ in range(5)])
    np.testing.assert_array_equal(actions, np.stack([b(obs) for _ in range(5)]))
    assert actions.dtype == np.float32 and actions.min() >= -1 and actions.max() <= 1 and len(np.unique(actions)) > 4
    play = vip_envs.play_policy(env, seed=0)
    for _ in range(30):
        action = play(obs)
        assert action.shape == (4,) and np.abs(action).max() <= 1
        obs, *_ = env.step(action)
    with pytest.raises(ValueError, match="task must be None for a Meta-World env .*got 'PressButton'"):
        vip_envs.expert(env, task="PressButton")
    with pytest.raises(ValueError, match="noise must be a finite float >= 0, got -1"):
        vip_envs.expert(env, noise=-1)


# -- collect ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_collect_writes_a_loadable_file(tmp_path: Path, capsys):
    from vip_rl.collect import cli
    from vip_rl.data import load_videos, read_episodes

    out = tmp_path / "mw.h5"
    assert cli(["MetaWorld-drawer-open-v3", "--episodes", "2", "--policy", "mixed", "--size", "32", "--max-steps", "12",
                "--seed", "0", "--out", str(out), "--no-progress"]) == 0
    assert "collected 2 episodes" in capsys.readouterr().out
    episodes = read_episodes(out)
    for ep in episodes:
        assert ep.attrs["env_id"] == DRAWER and ep.task == "MetaWorld-drawer-open-v3"
        assert ep.instruction == "open the drawer"
        assert ep.frames["corner"].shape == (ep.num_steps + 1, 32, 32, 3) and ep.states.shape == (ep.num_steps + 1, 39)
        assert ep.attrs["embodiment"] == "sawyer" and ep.sim_states.shape[1] == 58
    made = gym.make(DRAWER, image_size=32)
    try:
        made.reset(seed=int(episodes[0].attrs["seed"]))
        frames = made.unwrapped.render_states(episodes[0].sim_states[:3])
        np.testing.assert_array_equal(frames, episodes[0].frames["corner"][:3])
    finally:
        made.close()
    assert len(load_videos(out, camera="corner")) == 2


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(task="MetaWorld-drawer-opne-v3"),
     r"task must be MetaWorld-<task> with <task> one of .*got 'MetaWorld-drawer-opne-v3'"),
    (dict(expert_task="door-open-v3"), "expert_task must be None for a Meta-World task .*got 'door-open-v3'"),
    (dict(policy="mixed", mix=(1, 1, 1, 1)),
     r"mix must give wrong_task demos no weight for a Meta-World task .*got \(1, 1, 1, 1\)"),
    (dict(embodiment="hand"), "embodiment must be None for a Meta-World task .*got 'hand'"),
    (dict(cameras=("front",)), r"camera must be one of \('corner', .*\), got 'front'"),
])
def test_collect_refuses_what_metaworld_lacks(tmp_path: Path, kwargs, match):
    from vip_rl.collect import collect

    kwargs = {"task": "MetaWorld-drawer-open-v3", **kwargs}
    with pytest.raises(ValueError, match=match):
        collect(episodes=1, out=tmp_path / "x.h5", progress=False, **kwargs)
    assert list(tmp_path.iterdir()) == []
