"""Tests of the vip_envs MuJoCo tabletop suite (CPU, seeded, no rendering unless needed)."""

from __future__ import annotations

import os
import warnings

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from mujoco import rollout

import vip_envs
from vip_envs.rendering import OffscreenRenderer
from vip_envs.tabletop import TabletopEnv

TASKS = vip_envs.TASKS


def make(task: str = "PickPlace", **kwargs) -> gym.Env:
    return gym.make(vip_envs.env_id(task), **kwargs)


def run_expert(env: gym.Env, seed: int, *, noise: float = 0.0) -> tuple[bool, int]:
    obs, info = env.reset(seed=seed)
    policy = vip_envs.expert(env, noise=noise, seed=seed)
    for step in range(vip_envs.MAX_EPISODE_STEPS):
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        if terminated or truncated:
            break
    return bool(info["success"]), step + 1


def effector_geoms_hidden_option() -> mujoco.MjvOption:
    option = mujoco.MjvOption()
    option.geomgroup[2] = 0  # effector geoms live in group 2
    return option


# ----------------------------------------------------------------------------- API surface
def test_registry_and_constants():
    assert len(TASKS) >= 7
    assert vip_envs.CAMERAS == ("front", "left", "right", "close", "wrist")
    for task in TASKS:
        spec = gym.spec(f"vip_envs/{task}-v0")
        assert spec.max_episode_steps == 100


@pytest.mark.parametrize("task", TASKS)
def test_instructions(task):
    train = vip_envs.instructions(task, "train")
    heldout = vip_envs.instructions(task, split="heldout")
    assert len(train) + len(heldout) >= 6 and len(heldout) >= 2
    assert not set(train) & set(heldout)
    assert all(isinstance(s, str) and s for s in train + heldout)


def test_spaces_and_info():
    env = make("OpenDrawer")
    assert env.action_space == gym.spaces.Box(-1, 1, (4,), np.float32)
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (len(vip_envs.STATE_LABELS),)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert isinstance(info["success"], bool)
    assert 0.0 <= info["task_progress"] <= 1.0
    for key in ("reward_reach", "reward_progress", "reward_success"):
        assert key in info
    assert reward == pytest.approx(info["reward_reach"] + info["reward_progress"] + info["reward_success"])


# ----------------------------------------------------------------------------- experts
@pytest.mark.parametrize("task", TASKS)
def test_expert_success_gripper(task):
    env = make(task)
    results = [run_expert(env, seed) for seed in range(20)]
    rate = np.mean([ok for ok, _ in results])
    assert rate >= 0.95, f"{task}: expert success {rate:.2f} over 20 seeds"
    assert np.mean([n for _, n in results]) < 90


@pytest.mark.parametrize("task", TASKS)
def test_expert_success_hand(task):
    env = make(task, embodiment="hand")
    rate = np.mean([run_expert(env, seed)[0] for seed in range(10)])
    assert rate >= 0.9, f"{task} (hand): expert success {rate:.2f} over 10 seeds"


def test_expert_noise_is_seeded_and_changes_actions():
    env = make("PushBlock")
    env.reset(seed=1)
    a = [vip_envs.expert(env, noise=0.3, seed=5)(None) for _ in range(2)]
    b = vip_envs.expert(env, noise=0.0)(None)
    np.testing.assert_array_equal(a[0], a[1])
    assert not np.array_equal(a[0], b)
    assert a[0].dtype == np.float32 and np.all(np.abs(a[0]) <= 1)


def test_play_policy_touches_objects():
    env = make("OpenDrawer", terminate_on_success=False)
    moved = 0
    for seed in range(6):
        obs, _ = env.reset(seed=seed)
        start = obs.copy()
        policy = vip_envs.play_policy(env, seed=seed)
        biggest = np.zeros(5)
        for _ in range(100):
            obs, *_ = env.step(policy(obs))
            delta = np.abs(obs - start)
            biggest = np.maximum(biggest, [delta[8], delta[9], delta[10], delta[11], np.linalg.norm(delta[12:14])])
        moved += bool(np.any(biggest > [0.02, 0.02, 0.008, 0.2, 0.02]))
    assert moved >= 3


# ----------------------------------------------------------------------------- determinism and state
@pytest.mark.parametrize("task", ["PushBlock", "CloseDrawer"])
def test_reset_determinism(task):
    env_a, env_b = make(task), make(task)
    obs_a, _ = env_a.reset(seed=7)
    obs_b, _ = env_b.reset(seed=7)
    np.testing.assert_array_equal(obs_a, obs_b)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(20, 4)).astype(np.float32)
    for action in actions:
        obs_a, r_a, *_ = env_a.step(action)
        obs_b, r_b, *_ = env_b.step(action)
    np.testing.assert_array_equal(obs_a, obs_b)
    assert r_a == r_b
    obs_c, _ = env_a.reset(seed=8)
    assert not np.array_equal(obs_c, env_b.reset(seed=7)[0])


def test_state_round_trip_and_continuation():
    env = make("PickPlace")
    obs, _ = env.reset(seed=3)
    policy = vip_envs.expert(env)
    for _ in range(12):
        obs, *_ = env.step(policy(obs))
    base = env.unwrapped
    state = base.get_state()
    assert state.dtype == np.float64 and state.shape == (base.state_size,)
    assert base.state_spec == int(mujoco.mjtState.mjSTATE_FULLPHYSICS)
    actions = np.random.default_rng(1).uniform(-1, 1, size=(25, 4)).astype(np.float32)
    first = []
    for action in actions:
        obs, reward, *_ = env.step(action)
        first.append((base.get_state(), obs, reward))
    base.set_state(state)
    np.testing.assert_array_equal(base.get_state(), state)
    for action, (ref_state, ref_obs, ref_reward) in zip(actions, first):
        obs, reward, *_ = env.step(action)
        np.testing.assert_array_equal(base.get_state(), ref_state)
        np.testing.assert_array_equal(obs, ref_obs)
        assert reward == ref_reward


@pytest.mark.parametrize("task, obs_mode", [("OpenDrawer", "state"), ("PickPlace", "pixels")])
def test_rollout_reproduces_steps(task, obs_mode):
    # pixels: rendering each step (mj_kinematics + mj_camlight on env.data) must not change physics
    env = make(task, obs_mode=obs_mode)
    env.reset(seed=4)
    base = env.unwrapped
    state = base.get_state()
    actions = np.random.default_rng(2).uniform(-1.2, 1.2, size=(30, 4)).astype(np.float32)
    stepped = []
    for action in actions:
        env.step(action)
        stepped.append(base.get_state())
    ctrl = np.repeat(base.action_to_ctrl(actions), base.frame_skip, axis=0)
    states, _ = rollout.rollout(base.model, mujoco.MjData(base.model), state, ctrl[None])
    np.testing.assert_array_equal(states[0, base.frame_skip - 1 :: base.frame_skip], np.array(stepped))


def test_action_to_ctrl_is_affine_and_batched():
    base = make().unwrapped
    a = np.random.default_rng(0).uniform(-1, 1, size=(3, 5, 4))
    ctrl = base.action_to_ctrl(a)
    assert ctrl.shape == (3, 5, base.model.nu)
    np.testing.assert_allclose(base.action_to_ctrl(a[1, 2]), ctrl[1, 2])
    zero, one = base.action_to_ctrl(np.zeros(4)), base.action_to_ctrl(np.ones(4))
    np.testing.assert_allclose(base.action_to_ctrl(0.5 * np.ones(4)), 0.5 * (zero + one))


def test_effector_holds_still_at_zero_action():
    env = make("PressButton")
    obs, _ = env.reset(seed=0)
    for _ in range(40):
        obs2, *_ = env.step(np.zeros(4, np.float32))
    np.testing.assert_allclose(obs2[:3], obs[:3], atol=2e-3)


def test_evaluate_states_matches_info():
    env = make("OpenDrawer")
    obs, _ = env.reset(seed=2)
    policy = vip_envs.expert(env)
    states, infos = [], []
    for _ in range(30):
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        states.append(env.unwrapped.get_state())
        infos.append((info["success"], info["task_progress"], reward))
        if terminated:
            break
    scores = env.unwrapped.evaluate_states(np.array(states))
    assert scores["success"].dtype == bool and scores["success"].shape == (len(states),)
    np.testing.assert_array_equal(scores["success"], [i[0] for i in infos])
    np.testing.assert_allclose(scores["task_progress"], [i[1] for i in infos])
    np.testing.assert_allclose(scores["reward"], [i[2] for i in infos])
    assert scores["success"][-1]


# ----------------------------------------------------------------------------- checkers
@pytest.mark.parametrize("obs_mode", ["state", "pixels"])
def test_check_env(obs_mode):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = make("PushBlock", obs_mode=obs_mode, render_mode="rgb_array", cameras=("front", "left"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        check_env(env.unwrapped, skip_render_check=False)
    sb3_check_env(env.unwrapped, warn=True)
    env.close()


# ----------------------------------------------------------------------------- rendering
def test_render_shapes_and_pixels_obs():
    env = make("SlideDoor", render_mode="rgb_array", obs_mode="pixels", cameras=("left", "front"), image_size=64)
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"pixels", "pixels_front", "state"}
    assert obs["pixels"].dtype == np.uint8 and obs["pixels"].shape == (64, 64, 3)
    frame = env.render()
    np.testing.assert_array_equal(frame, obs["pixels"])
    assert obs["pixels"].std() > 10
    env.close()


def test_render_states_does_not_disturb_env():
    env = make("PickPlace", render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    base = env.unwrapped
    states = []
    for action in np.random.default_rng(0).uniform(-1, 1, size=(5, 4)).astype(np.float32):
        env.step(action)
        states.append(base.get_state())
    current = base.get_state()
    frame_now = env.render()
    images = base.render_states(np.array(states), camera="right")
    assert images.shape == (5, 96, 96, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(base.get_state(), current)
    np.testing.assert_array_equal(base.render_states(current[None])[0], frame_now)
    env.close()


@pytest.mark.parametrize("camera", vip_envs.CAMERAS)
def test_render_states_tiled_matches_one_by_one(camera):
    """render_states tiles frames into one offscreen sheet; images match rendering them one at a time
    except for rasteriser ties on a few edge pixels, across more frames than one sheet holds."""
    env = make("OpenDrawer", render_mode="rgb_array", image_size=96)
    env.reset(seed=3)
    base = env.unwrapped
    states = []
    for action in np.random.default_rng(1).uniform(-1, 1, size=(40, 4)).astype(np.float32):  # sheet: 6x6 = 36
        env.step(action)
        states.append(base.get_state())
    tiled = base.render_states(np.array(states), camera=camera)
    single = np.stack([base.render_states(s[None], camera=camera)[0] for s in states])
    differing = np.any(tiled != single, axis=-1)
    assert differing.mean() < 1e-3, f"{int(differing.sum())} pixels differ"
    # and the frames are really of different states, in order
    assert not np.array_equal(tiled[0], tiled[-1])
    env.close()


@pytest.mark.parametrize("camera", vip_envs.CAMERAS)
def test_effector_visible_from_every_camera(camera):
    env = make("PickPlace", render_mode="rgb_array", cameras=(camera,))
    base = env.unwrapped
    renderer = OffscreenRenderer(base.model, 96, 96)
    hide = effector_geoms_hidden_option()
    try:
        for seed in range(4):
            env.reset(seed=seed)
            env.action_space.seed(seed)  # unseeded, a rare draw parks the effector at the 'close' camera's edge
            for _ in range(seed * 8):
                env.step(env.action_space.sample())
            with_ee = env.render()
            without = renderer.render(base.data, camera, scene_option=hide)
            mask = np.any(with_ee != without, axis=-1)
            cols, rows = np.flatnonzero(mask.any(0)), np.flatnonzero(mask.any(1))
            assert mask.sum() >= 60, f"{camera}: only {mask.sum()} effector pixels"
            assert cols.max() - cols.min() + 1 >= 8 and rows.max() - rows.min() + 1 >= 8
    finally:
        renderer.close()
        env.close()


def test_renders_without_mujoco_gl_preset():
    # MUJOCO_GL unset when mujoco is imported: the env must still default to egl where it renders.
    import subprocess
    import sys

    code = (
        "import gymnasium as gym, vip_envs\n"
        "env = gym.make('vip_envs/PressButton-v0', render_mode='rgb_array')\n"
        "env.reset(seed=0)\n"
        "frame = env.render()\n"
        "assert frame.shape == (96, 96, 3) and frame.std() > 10\n"
        "import os; print(os.environ['MUJOCO_GL'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("egl")


@pytest.mark.parametrize("platform", ["linux", "darwin", "win32"])
@pytest.mark.parametrize("preset", [None, "osmesa", " EGL ", "glfw"])
def test_one_mujoco_gl_rule(monkeypatch, platform, preset):
    # vip_envs cannot import vip_rl, so it spells the rule out itself: both must agree
    from vip_rl._gl import default_mujoco_gl as library_rule
    from vip_envs.rendering import default_mujoco_gl as suite_rule

    results = []
    for rule in (library_rule, suite_rule):
        monkeypatch.setattr("sys.platform", platform)
        if preset is None:
            monkeypatch.delenv("MUJOCO_GL", raising=False)
        else:
            monkeypatch.setenv("MUJOCO_GL", preset)
        results.append((rule(), os.environ.get("MUJOCO_GL")))
    assert results[0] == results[1]
    expected_backend = {None: "egl" if platform == "linux" else None}.get(preset, (preset or "").lower().strip())
    assert results[0] == (expected_backend, preset if preset is not None else ("egl" if platform == "linux" else None))


def test_bad_gl_backend_message():
    import subprocess
    import sys

    code = (
        "import gymnasium as gym, vip_envs\n"
        "env = gym.make('vip_envs/PressButton-v0', render_mode='rgb_array')\n"
        "env.reset(seed=0)\n"
        "env.render()\n"
    )
    env = {**os.environ, "MUJOCO_GL": "disable"}
    env.pop("PYOPENGL_PLATFORM", None)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "MUJOCO_GL must be one of ['egl', 'osmesa', 'glfw'] for rendering, got 'disable'" in result.stderr


def test_effector_moves_in_pixels():
    env = make("PushBlock", render_mode="rgb_array")
    env.reset(seed=0)
    before = env.render().astype(int)
    for _ in range(8):
        env.step(np.array([1.0, 0.0, 0.0, 0.0], np.float32))
    after = env.render().astype(int)
    assert (np.abs(after - before).sum(-1) > 30).sum() >= 60
    env.close()


@pytest.mark.parametrize("embodiment", vip_envs.EMBODIMENTS)
def test_wrist_camera_rides_on_the_effector(embodiment):
    """The wrist camera keeps its offset from the effector wherever it moves, the fixed cameras do not move,
    and from above the block the wrist view shows the block (magenta) between the fingers."""
    env = make("PickPlace", render_mode="rgb_array", obs_mode="pixels", cameras=("front", "wrist"), embodiment=embodiment)
    obs, _ = env.reset(seed=1)
    base = env.unwrapped
    wrist, front = (mujoco.mj_name2id(base.model, mujoco.mjtObj.mjOBJ_CAMERA, name) for name in ("wrist", "front"))
    qpos = base.data.qpos[None]
    offset = base.data.cam_xpos[wrist] - base.layout.ee_pos(qpos)[0]
    front_pos = base.data.cam_xpos[front].copy()
    policy = vip_envs.expert(env)
    for _ in range(12):  # the expert travels to above the block
        obs, *_ = env.step(policy(obs))
    ee = base.layout.ee_pos(base.data.qpos[None])[0]
    np.testing.assert_allclose(base.data.cam_xpos[wrist] - ee, offset, atol=1e-6)
    np.testing.assert_array_equal(base.data.cam_xpos[front], front_pos)
    frame = obs["pixels_wrist"].astype(int)
    magenta = (frame[..., 0] > 150) & (frame[..., 1] < 100) & (frame[..., 2] > 150)
    assert magenta.sum() >= 30, f"{embodiment}: the block shows in {magenta.sum()} wrist pixels"
    assert magenta.sum() > 3 * ((obs["pixels"][..., 0] > 150) & (obs["pixels"][..., 1] < 100) & (obs["pixels"][..., 2] > 150)).sum()
    env.close()


def test_hand_embodiment_looks_different():
    gripper = make("PushBlock", render_mode="rgb_array")
    hand = make("PushBlock", render_mode="rgb_array", embodiment="hand")
    gripper.reset(seed=0)
    hand.reset(seed=0)
    np.testing.assert_array_equal(gripper.unwrapped.get_state(), hand.unwrapped.get_state())
    img_g, img_h = gripper.render().astype(int), hand.render().astype(int)
    changed = np.abs(img_g - img_h).sum(-1) > 60
    assert changed.sum() >= 60
    # the gripper is orange/yellow (red > blue), the hand blue (blue > red)
    assert (img_g[changed, 0] - img_g[changed, 2]).mean() > 50
    assert (img_h[changed, 2] - img_h[changed, 0]).mean() > 20
    gripper.close()
    hand.close()


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"task": "FoldLaundry"}, "task must be one of"),
        ({"cameras": ("top",)}, "camera must be one of"),
        ({"embodiment": "tentacle"}, "embodiment must be one of"),
        ({"obs_mode": "rgb"}, "obs_mode must be one of"),
        ({"image_size": 0}, "image_size"),
        ({"render_mode": "human"}, "render_mode"),
    ],
)
def test_bad_constructor_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TabletopEnv(**{"task": "PickPlace", **kwargs})


def test_unknown_task_everywhere():
    with pytest.raises(ValueError, match="OpenDrawer"):
        vip_envs.instructions("FoldLaundry")
    with pytest.raises(ValueError, match="split"):
        vip_envs.instructions("OpenDrawer", split="test")
    with pytest.raises(ValueError, match="task must be one of"):
        vip_envs.env_id("FoldLaundry")


@pytest.mark.parametrize(
    "action, match",
    [
        (np.zeros(3), r"action must have shape \(4,\)"),
        (np.zeros((1, 4)), r"action must have shape \(4,\)"),
        (np.array([0.0, np.nan, 0.0, 0.0]), "action must be finite"),
        (np.array([0.0, 0.0, np.inf, 0.0]), "action must be finite"),
    ],
)
def test_bad_actions(action, match):
    env = make()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.unwrapped.step(action)


def test_bad_states():
    env = make()
    env.reset(seed=0)
    base = env.unwrapped
    with pytest.raises(ValueError, match=f"{base.state_size}.*got shape \\(5,\\)"):
        base.set_state(np.zeros(5))
    with pytest.raises(ValueError, match="finite"):
        base.set_state(np.full(base.state_size, np.nan))
    with pytest.raises(ValueError, match="states"):
        base.evaluate_states(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="camera must be one of"):
        base.render_states(base.get_state()[None], camera="top")


def test_expert_rejects_bad_arguments():
    with pytest.raises(ValueError, match="noise"):
        vip_envs.expert(make(), noise=-1.0)
    with pytest.raises(TypeError, match="TabletopEnv"):
        vip_envs.expert(gym.make("CartPole-v1"))


# ----------------------------------------------------------------------------- FrankaKitchen (extra)
def test_kitchen_missing_extra_names_install_command():
    from vip_envs import kitchen

    if kitchen.is_available():
        pytest.skip("gymnasium-robotics is installed")
    with pytest.raises(ImportError, match=r"pip install vip-rl\[kitchen\]"):
        kitchen.make_kitchen(("microwave",))
    with pytest.raises(ValueError, match="task must be one of"):
        kitchen.make_kitchen(("dishes",))


@pytest.mark.skipif(
    not __import__("vip_envs.kitchen", fromlist=["is_available"]).is_available(),
    reason="gymnasium-robotics (extra 'kitchen') not installed",
)
@pytest.mark.slow  # FrankaKitchen end to end (gymnasium-robotics)
def test_kitchen_interface():
    from vip_envs import kitchen

    env = kitchen.make_kitchen(("microwave",), render_mode="rgb_array", image_size=64)
    obs, info = env.reset(seed=0)
    assert isinstance(info["success"], bool) and 0.0 <= info["task_progress"] <= 1.0
    state = env.get_state()
    actions = np.random.default_rng(0).uniform(-1, 1, size=(5,) + env.action_space.shape)
    first = []
    for action in actions:
        env.step(action)
        first.append(env.get_state())
    env.set_state(state)
    np.testing.assert_array_equal(env.get_state(), state)
    frame = env.render()
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    images = env.render_states(np.array(first))
    assert images.shape == (5, 64, 64, 3)
    scores = env.evaluate_states(np.array(first))
    assert scores["success"].shape == (5,)
    with pytest.raises(ValueError, match="state"):
        env.set_state(np.zeros(3))
    # observations are fresh arrays every call (upstream Kitchen reuses them)
    obs_a, *_ = env.step(actions[0])
    kept = np.array(obs_a["observation"], copy=True)
    env.step(actions[1])
    np.testing.assert_array_equal(obs_a["observation"], kept)
    env.close()


def test_expert_of_another_task_in_the_same_scene():
    """expert(env, task=...) solves another task in the env's scene and not the env's own."""
    from vip_envs.tasks import task_metrics

    env = make("OpenDrawer")
    obs, _ = env.reset(seed=4)
    policy = vip_envs.expert(env, seed=0, task="PressButton")
    base = env.unwrapped
    pressed = False
    for _ in range(80):
        obs, _, terminated, truncated, info = env.step(policy(obs))
        pressed = pressed or bool(task_metrics("PressButton", base.layout, base.data.qpos[None])[0][0])
        if pressed or terminated or truncated:
            break
    assert pressed and not info["success"]
    with pytest.raises(ValueError, match="task"):
        vip_envs.expert(env, task="FlyAway")
    env.close()
