"""MujocoDynamics on foreign envs (#13 items 1-2): rollout frames are ``env.render()``'s frames, and each backend
(actuator, mocap, step) reproduces ``env.step`` to 1e-6 on qpos, on gymnasium's Pusher-v5, a suite task and
Meta-World drawer-open-v3 (skipped where metaworld is not installed: CI installs it only with the ``metaworld``
extra).

Meta-World's ``corner`` camera draws its frames upside down (the camera's frame in Meta-World's XML); the
rollouts reproduce ``env.render()`` as it is, upside down included, so goal images taken with ``env.render()``
and rollout frames agree. Flip both or neither.
"""
from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

from vip_rl.planning import MPPI, DynamicsCheck, MPPIConfig, MujocoDynamics, OracleCost

gym = pytest.importorskip("gymnasium")


def _full_state(env) -> np.ndarray:
    import mujoco

    u = env.unwrapped
    out = np.empty(mujoco.mj_stateSize(u.model, mujoco.mjtState.mjSTATE_INTEGRATION))
    mujoco.mj_getState(u.model, u.data, out, mujoco.mjtState.mjSTATE_INTEGRATION)
    return np.concatenate([out, u.data.qacc_warmstart])


def _mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def make_pusher(size: int = 48):
    env = gym.make("Pusher-v5", render_mode="rgb_array", width=size, height=size)
    env.reset(seed=0)
    return env


def make_suite(task: str = "OpenDrawer"):
    import vip_envs  # noqa: F401 - registers the ids

    env = gym.make(f"vip_envs/{task}-v0", render_mode="rgb_array", image_size=48)
    env.reset(seed=0)
    return env


_SHARED: dict[int, object] = {}


def make_metaworld(size: int = 48):
    """drawer-open-v3 through the corner camera, made once per size for the module (making MT1 takes ~1.5 s)."""
    pytest.importorskip("metaworld")
    import metaworld  # noqa: F401 - registers Meta-World/MT1

    if size not in _SHARED:
        _SHARED[size] = gym.make("Meta-World/MT1", env_name="drawer-open-v3", render_mode="rgb_array",
                                 camera_name="corner", width=size, height=size)
    env = _SHARED[size]
    env.reset(seed=0)
    return env


def _close(env) -> None:
    if not any(env is shared for shared in _SHARED.values()):
        env.close()


@pytest.fixture(scope="module", autouse=True)
def _close_shared_envs():
    yield
    for env in _SHARED.values():
        env.close()
    _SHARED.clear()


MAKERS = {"pusher": make_pusher, "suite": make_suite, "metaworld": make_metaworld}
DETECTED = {"pusher": "actuator", "suite": "actuator", "metaworld": "mocap"}


def _rollout_matches_real_env(env, dyn: MujocoDynamics, *, samples: int = 3, steps: int = 6, seed: int = 0) -> float:
    """Max |qpos| difference between ``dyn``'s rollouts and the real env stepped with the same actions
    (the real env is restored to its start by re-setting its full MuJoCo state between samples)."""
    import mujoco

    u = env.unwrapped
    space = env.action_space
    gen = torch.Generator().manual_seed(seed)
    low, high = torch.as_tensor(space.low), torch.as_tensor(space.high)
    actions = low + (high - low) * torch.rand(1, samples, steps, *space.shape, generator=gen)
    before = _full_state(env)
    path_length = getattr(u, "curr_path_length", None)
    traj = dyn.rollout(dyn.get_state()[None], actions, needs=frozenset({"states"}))
    np.testing.assert_array_equal(_full_state(env), before)  # planning never touches the real env
    assert getattr(u, "curr_path_length", None) == path_length
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    worst = 0.0
    for k in range(samples):
        mujoco.mj_setState(u.model, u.data, before[: -u.model.nv], spec)
        u.data.qacc_warmstart[:] = before[-u.model.nv :]
        mujoco.mj_forward(u.model, u.data)
        for t in range(steps):
            env.step(actions[0, k, t].numpy())
            worst = max(worst, float(np.abs(traj.states[0, k, t, 1 : 1 + u.model.nq] - u.data.qpos).max()))
    return worst


# -- item 1: rollout frames are env.render()'s frames ------------------------------------------------
@pytest.mark.parametrize("name", ["pusher", "suite", pytest.param("metaworld", marks=pytest.mark.slow)])
def test_rollout_frames_are_the_env_frames(name):
    env = MAKERS[name]()
    try:
        for _ in range(2):
            env.step(env.action_space.sample() * 0)
        with MujocoDynamics(env, nthread=0) as dyn:
            check = dyn.check
            assert isinstance(check, DynamicsCheck) and check.render_note == ""
            assert check.render_diff is not None and check.render_diff < 1.0
            # a rollout's final frame is what env.render() shows after the same steps
            actions = torch.zeros(1, 1, 3, *env.action_space.shape)
            traj = dyn.rollout(dyn.get_state()[None], actions, needs=frozenset({"frames", "initial_frame"}))
            assert _mean_abs(traj.initial_frames[0], env.render()) < 1.0
            for t in range(3):
                env.step(actions[0, 0, t].numpy())
            assert traj.frames.shape[-3:] == env.render().shape
            assert _mean_abs(traj.frames[0, 0, -1], env.render()) < 1.0
    finally:
        _close(env)


def test_pusher_uses_the_free_camera_of_its_renderer_not_mujocos_default():
    """Pusher-v5 has no named camera: its render() is gymnasium's free camera with default_camera_config
    (distance 4), which MuJoCo's default free camera (what rollouts drew before #13) is not."""
    import mujoco

    env = make_pusher()
    try:
        with MujocoDynamics(env, nthread=0) as dyn:
            assert dyn.check.render_diff == 0.0  # right after reset the kinematics are current: exact
            assert "free camera" in dyn.check.render_view and "distance 4" in dyn.check.render_view
            assert "48x48" in dyn.check.render_view
            u = env.unwrapped
            with mujoco.Renderer(u.model, 48, 48) as renderer:
                renderer.update_scene(u.data, camera=-1)
                old_view = renderer.render()
            assert _mean_abs(old_view, env.render()) > 5.0  # the silent mismatch of the issue
    finally:
        _close(env)


class _Flipped(gym.Wrapper):
    """An env whose render() draws something the backend cannot know (here: flipped vertically)."""

    def render(self):
        return np.ascontiguousarray(self.env.render()[::-1])


class _Cropped(gym.Wrapper):
    def render(self):
        return self.env.render()[:32]


@pytest.mark.parametrize("wrapper, match", [(_Flipped, "differ from env.render"), (_Cropped, "size differs")])
def test_render_mismatch_is_refused_naming_what_differs(wrapper, match):
    env = wrapper(make_pusher())
    try:
        with pytest.raises(ValueError, match=match) as err:
            MujocoDynamics(env, nthread=0)
        assert "free camera" in str(err.value) and "48" in str(err.value)
    finally:
        _close(env)


def test_render_check_skips_what_it_cannot_compare():
    env = make_pusher()
    try:
        with MujocoDynamics(env, image_size=32, nthread=0) as dyn:
            assert dyn.check.render_diff is None and "image_size=32" in dyn.check.render_note
            traj = dyn.rollout(dyn.get_state()[None], torch.zeros(1, 2, 2, 7))
            assert traj.frames.shape == (1, 2, 1, 32, 32, 3)
    finally:
        _close(env)
    env = gym.make("Pusher-v5")  # render_mode None: nothing to compare with
    env.reset(seed=0)
    with MujocoDynamics(env, nthread=0) as dyn:
        assert dyn.check.render_diff is None and "render_mode" in dyn.check.render_note
    env.close()


@pytest.mark.slow  # two Pusher envs: make test runs it, make test-fast skips it
def test_a_viewer_the_garbage_collector_frees_mid_render_does_not_blank_the_reference_frame(monkeypatch):
    """Freeing any EGL context releases the current one (eglReleaseThread), and gymnasium's viewer then reads
    back a black frame. A dropped env caught in a reference cycle is freed whenever the collector runs; here
    it runs inside env.render(), as it did in a CI run (the check then saw a mean difference of 104/255)."""
    env = make_pusher()
    env.render()  # the env's viewer exists, so env.render() does not make its context current again
    other = make_pusher()
    other.render()  # its viewer holds another EGL context
    cycle: list = [other]
    cycle.append(cycle)
    renderer = env.unwrapped.mujoco_renderer
    original = renderer.render

    def render_after_a_collection(*args, **kwargs):
        gc.collect()
        return original(*args, **kwargs)

    monkeypatch.setattr(renderer, "render", render_after_a_collection)
    was_enabled = gc.isenabled()
    gc.disable()  # keep the dropped env pending until a collection we choose
    try:
        del other, cycle
        with MujocoDynamics(env, nthread=0) as dyn:
            assert dyn.check.render_diff is not None and dyn.check.render_diff < 1.0
    finally:
        if was_enabled:
            gc.enable()
        _close(env)


@pytest.mark.slow  # two render checks: make test runs it, make test-fast skips it
def test_an_all_black_env_frame_is_rendered_once_more_then_named(monkeypatch):
    env = make_pusher()
    try:
        env.render()
        renderer = env.unwrapped.mujoco_renderer
        original = renderer.render
        calls: list[int] = []

        def black_the_first_time(*args, **kwargs):
            calls.append(1)
            frame = original(*args, **kwargs)
            return frame * 0 if len(calls) == 1 else frame

        monkeypatch.setattr(renderer, "render", black_the_first_time)
        with MujocoDynamics(env, nthread=0) as dyn:
            assert len(calls) == 2 and dyn.check.render_diff is not None and dyn.check.render_diff < 1.0
        monkeypatch.setattr(renderer, "render", lambda *args, **kwargs: original(*args, **kwargs) * 0)
        with pytest.raises(ValueError, match="all-black 48x48 frame, twice"):
            MujocoDynamics(env, nthread=0)
    finally:
        _close(env)


def test_named_cameras_render_at_the_env_size_and_unknown_names_are_refused():
    env = make_pusher()
    try:
        with pytest.raises(ValueError, match="camera must name a camera of the model, got 'nope'"):
            MujocoDynamics(env, camera="nope", nthread=0)
    finally:
        _close(env)


# -- item 2: any way the env drives its arm ---------------------------------------------------------
@pytest.mark.parametrize("name", ["pusher", "suite", pytest.param("metaworld", marks=pytest.mark.slow)])
def test_backend_detection_and_rollouts_match_env_step(name):
    env = MAKERS[name]()
    try:
        for _ in range(3):  # a start state with velocities and a warm start
            env.step(env.action_space.sample())
        with MujocoDynamics(env, nthread=2, render_every=None) as dyn:
            assert dyn.check.backend == DETECTED[name] and dyn.check.rejected == {}
            assert dyn.check.max_qpos_diff is not None and dyn.check.max_qpos_diff <= 1e-6
            assert _rollout_matches_real_env(env, dyn, steps=8) <= 1e-6
    finally:
        _close(env)


@pytest.mark.parametrize("name", [pytest.param("pusher", marks=pytest.mark.slow), "suite",
                                  pytest.param("metaworld", marks=pytest.mark.slow)])
@pytest.mark.slow
def test_step_backend_matches_env_step_and_the_fast_backend(name):
    env = MAKERS[name]()
    try:
        for _ in range(2):
            env.step(env.action_space.sample())
        actions = torch.rand(1, 5, 4, *env.action_space.shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
        with MujocoDynamics(env, nthread=2, backend="step") as step, MujocoDynamics(env, nthread=2) as fast:
            assert step.check.backend == "step" and step.check.max_qpos_diff <= 1e-6
            start = step.get_state()[None]
            a = step.rollout(start, actions, needs=frozenset({"frames"}))
            b = fast.rollout(start, actions, needs=frozenset({"frames"}))
            np.testing.assert_allclose(a.states[..., 1:], b.states[..., 1:], atol=1e-6)
            assert a.frames.shape == b.frames.shape
            assert _rollout_matches_real_env(env, step, samples=2, steps=4) <= 1e-6
    finally:
        _close(env)


@pytest.mark.slow  # over a second: make test runs it, make test-fast skips it
def test_metaworld_mocap_targets_follow_set_xyz_action():
    env = make_metaworld()
    try:
        u = env.unwrapped
        with MujocoDynamics(env, nthread=0) as dyn:
            assert dyn.nstate == dyn.full_size + dyn.nv + 7 * u.model.nmocap  # the state carries the mocap target
            actions = torch.tensor([[[[1.0, -1.0, 0.5, 1.0]] * 3]])  # [1, 1, 3, 4]
            traj = dyn.rollout(dyn.get_state()[None], actions, needs=frozenset({"states"}))
            for t in range(3):
                env.step(actions[0, 0, t].numpy())
                np.testing.assert_array_equal(traj.mocap[0, 0, t, :3], u.data.mocap_pos[0])
                np.testing.assert_array_equal(traj.mocap[0, 0, t, 3:], u.data.mocap_quat[0])
    finally:
        _close(env)


def _half_pusher():
    from gymnasium.envs.mujoco.pusher_v5 import PusherEnv

    class HalfPusher(PusherEnv):
        def step(self, action):
            return super().step(0.5 * np.asarray(action))

    env = HalfPusher(render_mode="rgb_array", width=48, height=48)
    env.reset(seed=0)
    return env


def test_a_backend_that_does_not_reproduce_env_step_is_refused_or_replaced():
    env = _half_pusher()
    try:
        with pytest.raises(ValueError, match=r"backend 'actuator': a 5-step rollout .* max \|qpos\| [0-9.e-]+ > qpos_tolerance 1e-06"):
            MujocoDynamics(env, backend="actuator", nthread=0)
        with pytest.raises(ValueError, match="backend 'mocap': the mocap backend drives two finger actuators"):
            MujocoDynamics(env, backend="mocap", nthread=0)
        with pytest.warns(UserWarning, match="using the slower 'step' backend; 'actuator'"):
            dyn = MujocoDynamics(env, nthread=2)
        with dyn:
            assert dyn.check.backend == "step" and "actuator" in dyn.check.rejected
            assert _rollout_matches_real_env(env, dyn, samples=2, steps=3) <= 1e-6
    finally:
        _close(env)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(backend="physics"), "backend must be one of"),
        (dict(check_steps=-1), "check_steps must be a non-negative int, got -1"),
        (dict(qpos_tolerance=-1.0), "qpos_tolerance must be a non-negative number, got -1.0"),
        (dict(pixel_tolerance=float("nan")), "pixel_tolerance must be a non-negative number, got nan"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, match):
    env = make_suite()
    try:
        with pytest.raises(ValueError, match=match):
            MujocoDynamics(env, **kwargs)
    finally:
        _close(env)


def test_an_env_that_needs_a_reset_is_named():
    pytest.importorskip("metaworld")
    import metaworld  # noqa: F401

    env = gym.make("Meta-World/MT1", env_name="drawer-open-v3", render_mode="rgb_array", width=32, height=32)
    try:
        with pytest.raises(ValueError, match="could not be copied and stepped from the current state .*reset the env"):
            MujocoDynamics(env, nthread=0)
    finally:
        _close(env)


@pytest.mark.parametrize("backend", ["actuator", "step"])
def test_mppi_plans_through_each_backend(backend):
    env = make_suite("PressButton")
    try:
        with MujocoDynamics(env, nthread=2, backend=backend) as dyn:
            cfg = MPPIConfig(action_dim=4, num_samples=8, horizon=3, action_low=-1.0, action_high=1.0)
            planner = MPPI(cfg, dyn, OracleCost(key="reward", when="sum"), seed=0)
            before = _full_state(env)
            action = planner.command(dyn.get_state())
            assert action.shape == (4,) and torch.isfinite(action).all()
            np.testing.assert_array_equal(_full_state(env), before)
    finally:
        _close(env)


@pytest.mark.slow
def test_metaworld_mppi_step_and_mocap_backends_agree_over_an_episode():
    """Ten MPPI commands on drawer-open with both backends from the same seeds: the same actions."""
    env = make_metaworld(size=32)
    try:
        def run(backend: str) -> list[np.ndarray]:
            env.reset(seed=3)
            out = []
            with MujocoDynamics(env, nthread=2, backend=backend) as dyn:
                nq = env.unwrapped.model.nq

                def value(states):  # any smooth function of qpos: both backends must score the same states
                    return -np.abs(states[:, 1 : 1 + nq] - 0.3).sum(-1)

                cfg = MPPIConfig(action_dim=4, num_samples=8, horizon=4, action_low=-1.0, action_high=1.0)
                planner = MPPI(cfg, dyn, OracleCost(fn=value, when="final"), seed=0)
                for _ in range(10):
                    action = planner.command(dyn.get_state()).numpy()
                    out.append(action)
                    env.step(action)
            return out

        for a, b in zip(run("mocap"), run("step")):
            np.testing.assert_allclose(a, b, atol=1e-5)
    finally:
        _close(env)


@pytest.mark.slow
def test_fetch_without_frame_skip_plans_through_the_step_backend():
    """gymnasium-robotics' Fetch moves its arm by mocap from ``n_substeps`` (no ``frame_skip``, module attributes):
    only the step backend applies, and it is detected, checked and exact."""
    robotics = pytest.importorskip("gymnasium_robotics")
    gym.register_envs(robotics)
    env = gym.make("FetchReach-v4", render_mode="rgb_array", width=32, height=32)
    try:
        env.reset(seed=0)
        with MujocoDynamics(env, nthread=2) as dyn:
            assert dyn.frame_skip == 0 and dyn.check.backend == "step" and dyn.check.rejected == {}
            assert dyn.check.max_qpos_diff <= 1e-6 and dyn.check.render_diff < 1.0
            assert _rollout_matches_real_env(env, dyn, samples=2, steps=3) <= 1e-6
        with pytest.raises(ValueError, match="the actuator backend needs the env's physics steps per env step"):
            MujocoDynamics(env, backend="actuator", nthread=0)
    finally:
        env.close()


def test_step_backend_records_env_rewards_and_the_oracle_plans_on_them():
    """Pusher-v5 has no evaluate_states hook: the step backend's rewards are env.step's, and OracleCost uses them."""
    env = make_pusher()
    try:
        with MujocoDynamics(env, nthread=2, backend="step") as dyn:
            actions = torch.from_numpy(dyn._check_actions(4, num_samples=3, seed=1))
            traj = dyn.rollout(dyn.get_state()[None], actions, needs=frozenset())
            assert traj.rewards is not None and traj.rewards.shape == (1, 3, 4)
            copy_env = make_pusher()  # same seed, same start state
            expected = [[copy_env.unwrapped.step(a.numpy())[1] for a in actions[0, 0]]]
            np.testing.assert_allclose(traj.rewards[0, :1], expected, rtol=0, atol=1e-12)
            _close(copy_env)
            cost = OracleCost(key="reward", when="sum")(traj)
            np.testing.assert_allclose(cost.numpy(), -traj.rewards.sum(-1), rtol=1e-6)
            with pytest.raises(TypeError, match="key='success'.* evaluate_states"):
                OracleCost(key="success")(traj)
        with MujocoDynamics(env, nthread=0) as dyn:  # the actuator backend records no rewards: named
            traj = dyn.rollout(dyn.get_state()[None], actions, needs=frozenset())
            assert traj.rewards is None
            with pytest.raises(TypeError, match="backend='step'"):
                OracleCost(key="reward")(traj)
    finally:
        _close(env)
