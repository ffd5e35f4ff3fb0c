"""Tests for vip_rl.planning: MPPI core, dynamics backends, costs, CLI (CPU, seeded, small)."""
from __future__ import annotations

import json
import math
import re
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from vip_rl.encoders.base import Encoder
from vip_rl.planning import (
    MPPI,
    ActionPenalty,
    EmbeddingGoalCost,
    EmbeddingProgressCost,
    MPPIConfig,
    MujocoDynamics,
    OracleCost,
    PlanningError,
    StateCost,
    SumCost,
    TorchDynamics,
    safe_weights,
)
from vip_rl.planning.costs import frame_embeddings

TARGET = torch.tensor([1.0, -2.0])


def tiny_encoder(seed: int = 0, image_size: int = 32) -> Encoder:
    torch.manual_seed(seed)  # only for this test helper's init
    vision = nn.Sequential(nn.Conv2d(3, 4, 5, stride=4), nn.ReLU(), nn.Flatten(), nn.LazyLinear(8))
    vision(torch.zeros(1, 3, image_size, image_size))
    return Encoder(vision, embed_dim=8, metric="l2", image_size=image_size)


def point_mass(config: MPPIConfig | None = None, seed: int = 0) -> MPPI:
    dyn = TorchDynamics(lambda s, a: s + 0.2 * a)
    cost = StateCost(lambda s: (s - TARGET).square().sum(-1))
    cfg = config or MPPIConfig(action_dim=2, num_samples=128, horizon=8, temperature=0.5, noise_beta=0.5)
    return MPPI(cfg, dyn, cost, seed=seed)


# -- config ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_samples=0), "num_samples"),
        (dict(horizon=-1), "horizon"),
        (dict(temperature=0.0), "temperature"),
        (dict(noise_sigma=-1.0), "noise_sigma"),
        (dict(noise_sigma=(0.1, 0.2, 0.3)), "noise_sigma"),
        (dict(action_low=1.0, action_high=-1.0), "action_low"),
        (dict(noise_beta=1.0), "noise_beta"),
        (dict(num_elites=1000), "num_elites"),
        (dict(iterations=0), "iterations"),
    ],
)
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MPPIConfig(action_dim=2, **kwargs)


# -- core -----------------------------------------------------------------------------------
@pytest.mark.parametrize("iterations, elites", [(1, None), (3, None), (1, 16)])
def test_converges_on_point_mass(iterations, elites):
    cfg = MPPIConfig(action_dim=2, num_samples=128, horizon=8, temperature=0.5, noise_beta=0.5,
                     iterations=iterations, num_elites=elites)
    planner = point_mass(cfg)
    state = torch.zeros(2)
    for _ in range(40):
        state = state + 0.2 * planner.command(state)
    assert torch.linalg.vector_norm(state - TARGET) < 0.15


def test_batched_envs_converge_and_shapes():
    planner = point_mass()
    states = torch.tensor([[0.0, 0.0], [2.0, 2.0], [-1.0, -3.0]])
    for _ in range(40):
        result = planner.plan(states)
        assert result.action.shape == (3, 2) and result.plan.shape == (3, 8, 2)
        assert result.costs.shape == (3, 128) and torch.allclose(result.weights.sum(-1), torch.ones(3))
        states = states + 0.2 * result.action
    assert (torch.linalg.vector_norm(states - TARGET, dim=-1) < 0.15).all()


def test_seeding_and_warm_start_are_deterministic():
    def run(seed):
        planner = point_mass(seed=seed)
        state, actions = torch.zeros(2), []
        for _ in range(5):
            action = planner.command(state)
            actions.append(action)
            state = state + 0.2 * action
        return torch.stack(actions), planner

    a, planner_a = run(0)
    b, _ = run(0)
    c, _ = run(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # the warm-start plan is the previous plan shifted by one step
    before = planner_a.plan(torch.zeros(2))
    assert torch.equal(planner_a.plan_buffer[:, :-1], before.plan[None, 1:])
    planner_a.reset(seed=0)
    assert planner_a.plan_buffer is None
    again = planner_a.command(torch.zeros(2))
    assert torch.equal(again, a[0])


def test_actions_respect_bounds():
    cfg = MPPIConfig(action_dim=2, num_samples=64, horizon=4, noise_sigma=5.0, action_low=-0.3, action_high=(0.1, 0.2))
    planner = point_mass(cfg)
    result = planner.plan(torch.zeros(2))
    assert (result.plan >= -0.3).all() and (result.plan[..., 0] <= 0.1).all() and (result.plan[..., 1] <= 0.2).all()


@pytest.mark.parametrize("sigma", [0.4, (0.2, 0.8)])
@pytest.mark.parametrize("beta", [0.0, 0.6])
def test_sampled_actions_have_the_configured_mean_and_spread(sigma, beta):
    cfg = MPPIConfig(action_dim=2, num_samples=4096, horizon=5, noise_sigma=sigma, noise_beta=beta, action_low=-10.0,
                     action_high=10.0, include_plan=False, sigma_decay=0.5)
    planner = point_mass(cfg)
    plan = torch.tensor([0.3, -0.2]).expand(1, 5, 2)
    want = torch.tensor(sigma).expand(2)
    for scale in (1.0, 0.5):
        actions = planner._sample_actions(plan, scale)  # [1, K, T, A]
        assert torch.allclose(actions.mean((0, 1, 2)), plan[0, 0], atol=0.05)
        assert torch.allclose(actions.std((0, 1, 2)), want * scale, rtol=0.05)


def test_noise_filter_is_stationary_ar1():
    filt = MPPI._noise_filter(6, 0.8)
    var = filt.square().sum(-1)
    assert torch.allclose(var, torch.ones(6), atol=1e-5)
    assert torch.allclose(MPPI._noise_filter(4, 0.0), torch.eye(4))


# -- numerical safety -----------------------------------------------------------------------
def test_safe_weights_nan_and_inf():
    costs = torch.tensor([[1.0, float("nan"), 3.0], [math.inf, math.inf, math.inf], [1e30, -1e30, 0.0]])
    weights, valid = safe_weights(costs, 0.1)
    assert torch.isfinite(weights).all() and torch.allclose(weights.sum(-1), torch.ones(3))
    assert weights[0, 1] == 0 and valid[:, 0].tolist() == [True, False, True]
    assert torch.allclose(weights[1], torch.full((3,), 1 / 3))


def test_nan_dynamics_warns_once_and_keeps_actions_finite():
    dyn = TorchDynamics(lambda s, a: torch.where(a[:, :1] > 0.5, torch.full_like(s, float("nan")), s + a))
    planner = MPPI(MPPIConfig(action_dim=2, num_samples=32, horizon=3), dyn, StateCost(lambda s: s.square().sum(-1)), seed=0)
    with pytest.warns(RuntimeWarning, match="NaN"):
        action = planner.command(torch.ones(2))
    assert torch.isfinite(action).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        planner.command(torch.ones(2))  # warned only once


def test_all_nan_dynamics_raises_naming_the_dynamics():
    dyn = TorchDynamics(lambda s, a: s * float("nan"))
    planner = MPPI(MPPIConfig(action_dim=2, num_samples=16, horizon=3, action_init=0.25), dyn,
                   StateCost(lambda s: s.sum(-1)), seed=0)
    for _ in range(2):  # every command, not only the first (no silent zeros after a warning)
        with pytest.raises(PlanningError, match="the dynamics TorchDynamics produced non-finite states for every"):
            planner.command(torch.ones(2))


@pytest.mark.parametrize("value", [float("nan"), math.inf, -math.inf])
def test_all_nonfinite_cost_raises_naming_the_cost(value):
    planner = MPPI(MPPIConfig(action_dim=2, num_samples=8, horizon=3), TorchDynamics(lambda s, a: s + a),
                   StateCost(lambda s: s.sum(-1) * value), seed=0)
    for _ in range(2):
        with pytest.raises(PlanningError, match="the cost StateCost is non-finite .* for every one of the 8"):
            planner.command(torch.ones(2))


def test_one_env_with_no_finite_cost_raises_and_names_it():
    cost = StateCost(lambda s: torch.where(s[..., 0] > 5, torch.full_like(s[..., 0], math.nan), s.sum(-1)))
    planner = MPPI(MPPIConfig(action_dim=2, num_samples=8, horizon=2), TorchDynamics(lambda s, a: s + 0.1 * a), cost)
    with pytest.raises(PlanningError, match=r"env \[1\]"):
        planner.command(torch.tensor([[0.0, 0.0], [10.0, 0.0]]))


@pytest.mark.parametrize("state", [torch.tensor([float("nan"), 0.0]), np.array([0.0, np.inf])])
def test_nonfinite_start_state_is_refused(state):
    planner = MPPI(MPPIConfig(action_dim=2, num_samples=4, horizon=2), TorchDynamics(lambda s, a: s + a),
                   StateCost(lambda s: s.sum(-1)))
    with pytest.raises(ValueError, match="state must be finite"):
        planner.command(state)


@pytest.mark.parametrize("bad_cost, error, match", [
    (lambda traj: torch.zeros(3), ValueError, r"cost .* must return costs of shape \[E, K\] = \[1, 4\], got \[3\]"),
    (lambda traj: torch.zeros(1, 4, 2), ValueError, r"shape \[E, K\] = \[1, 4\], got \[1, 4, 2\]"),
    (lambda traj: np.zeros((1, 4)), TypeError, "must return a torch.Tensor of shape \\[1, 4\\], got ndarray"),
    (lambda traj: torch.zeros(1, 4, dtype=torch.bool), TypeError, "real-valued tensor .* got dtype torch.bool"),
    (lambda traj: torch.zeros(1, 4, dtype=torch.complex64), TypeError, "got dtype torch.complex64"),
])
def test_cost_of_wrong_shape_or_dtype_is_refused_by_name(bad_cost, error, match):
    planner = MPPI(MPPIConfig(action_dim=2, num_samples=4, horizon=2), TorchDynamics(lambda s, a: s + a), bad_cost)
    with pytest.raises(error, match=match):
        planner.command(torch.zeros(2))


def test_torch_dynamics_bad_output_shape():
    planner = MPPI(MPPIConfig(action_dim=2, num_samples=4, horizon=2), TorchDynamics(lambda s, a: s[:, :1]),
                   StateCost(lambda s: s.sum(-1)))
    with pytest.raises(ValueError, match="fn must return next states of shape"):
        planner.command(torch.zeros(2))


@pytest.mark.parametrize("bad_step", [0, 1])
@pytest.mark.parametrize("bad", ["shape", "none"])
def test_torch_dynamics_names_the_bad_step(bad_step, bad):
    calls = []

    def fn(s, a):
        calls.append(1)
        if len(calls) - 1 == bad_step:
            return s[:, :1] if bad == "shape" else None
        return s + a

    got = "[4, 1]" if bad == "shape" else "NoneType"
    with pytest.raises(ValueError, match=rf"shape \[4, 2\], got {re.escape(got)} at step {bad_step}"):
        TorchDynamics(fn).rollout(torch.zeros(1, 2), torch.zeros(1, 4, 3, 2))


def test_cost_composition():
    a, b = StateCost(lambda s: s.sum(-1)), ActionPenalty(0.5)
    combined = 2.0 * a + b
    assert isinstance(combined, SumCost) and [w for w, _ in combined.terms] == [2.0, 1.0]
    assert combined.needs == frozenset({"states"})


def test_subgoal_tracker_is_monotonic_and_looks_ahead():
    from vip_rl.planning import SubgoalTracker

    demo = torch.arange(10, dtype=torch.float32)[:, None]  # 1-D features 0..9
    tracker = SubgoalTracker(demo, lookahead=3)
    dist = lambda a, b: (a - b).abs().sum(-1)  # noqa: E731
    assert tracker.subgoal_index(torch.tensor([[2.2], [8.0]]), dist).tolist() == [5, 9]
    assert tracker.subgoal_index(torch.tensor([[0.0], [8.0]]), dist).tolist() == [5, 9]  # never goes back
    tracker.reset()
    assert tracker.subgoal_index(torch.tensor([[0.0], [0.0]]), dist).tolist() == [3, 3]
    with pytest.raises(ValueError, match="lookahead"):
        SubgoalTracker(demo, lookahead=0)


def test_subgoal_tracker_aims_at_the_next_listed_subgoal():
    from vip_rl.planning import SubgoalTracker

    demo = torch.arange(10, dtype=torch.float32)[:, None]
    dist = lambda a, b: (a - b).abs().sum(-1)  # noqa: E731
    every = SubgoalTracker(demo, lookahead=3, subgoals=range(10))  # every step listed: as without subgoals
    assert every.subgoal_index(torch.tensor([[2.2], [8.0]]), dist).tolist() == [5, 9]
    tracker = SubgoalTracker(demo, lookahead=1, subgoals=np.array([4, 9]))
    # matched over every demo step; a match at the subgoal itself aims at the next one
    assert tracker.subgoal_index(torch.tensor([[0.0], [3.4], [4.0], [9.0]]), dist).tolist() == [4, 4, 9, 9]
    assert tracker.subgoal_index(torch.tensor([[0.0], [0.0], [0.0], [0.0]]), dist).tolist() == [4, 4, 9, 9]  # monotonic
    assert SubgoalTracker(demo, lookahead=2, subgoals=[4, 9]).subgoal_index(torch.zeros(1, 1), dist).tolist() == [9]
    assert SubgoalTracker(demo, lookahead=1, subgoals=[9]).subgoal_index(torch.zeros(1, 1), dist).tolist() == [9]
    for bad in ([], [4, 4], [9, 4], [0, 10], [-1, 9], [1.5, 9]):
        with pytest.raises(ValueError, match=r"subgoals must be ascending int demo step indices in \[0, 9\]"):
            SubgoalTracker(demo, subgoals=bad)


def test_demo_subgoal_cost_with_decomposed_subgoals():
    from vip_rl.planning import DemoSubgoalCost

    encoder = tiny_encoder()
    demo = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    cost = DemoSubgoalCost(encoder, demo, lookahead=1, subgoals=[2, 5])
    assert cost.tracker.subgoals.tolist() == [2, 5] and cost.tracker.demo.shape[0] == 6
    with pytest.raises(ValueError, match="subgoals must be ascending"):
        DemoSubgoalCost(encoder, demo, subgoals=[6])


# -- MuJoCo backend (Pusher-v5) ---------------------------------------------------------------
@pytest.fixture(scope="module")
def pusher():
    gym = pytest.importorskip("gymnasium")
    env = gym.make("Pusher-v5")
    env.reset(seed=0)
    yield env
    env.close()


def _full_state(env):
    import mujoco

    u = env.unwrapped
    out = np.empty(mujoco.mj_stateSize(u.model, mujoco.mjtState.mjSTATE_FULLPHYSICS))
    mujoco.mj_getState(u.model, u.data, out, mujoco.mjtState.mjSTATE_FULLPHYSICS)
    return np.concatenate([out, u.data.qacc_warmstart])


def test_mujoco_rollout_matches_env_step_and_leaves_env_untouched(pusher):
    pusher.reset(seed=3)
    for _ in range(3):  # a non-trivial start state (velocities, warm start)
        pusher.step(pusher.action_space.sample())
    gen = torch.Generator().manual_seed(0)
    actions = torch.rand(1, 4, 6, 7, generator=gen) * 4 - 2  # includes out-of-range controls
    with MujocoDynamics(pusher, nthread=2) as dyn:
        before = _full_state(pusher)
        start = dyn.get_state()
        traj = dyn.rollout(start[None], actions, needs=frozenset({"states"}))
        assert np.array_equal(_full_state(pusher), before)  # real env untouched
        assert traj.states.shape == (1, 4, 6, dyn.full_size) and not traj.invalid.any()
        for k in (0, 3):
            pusher.unwrapped.set_state(before[1:12], before[12:23])  # qpos, qvel
            pusher.unwrapped.data.qacc_warmstart[:] = before[dyn.full_size :]
            pusher.unwrapped.data.time = before[0]
            for t in range(6):
                pusher.step(actions[0, k, t].numpy())
                assert np.array_equal(_full_state(pusher)[: dyn.full_size], traj.states[0, k, t])


def test_batched_render_and_encode_equals_per_frame(pusher):
    pusher.reset(seed=1)
    encoder = tiny_encoder()
    gen = torch.Generator().manual_seed(1)
    actions = torch.rand(1, 3, 4, 7, generator=gen) * 2 - 1
    with MujocoDynamics(pusher, render_every=2, image_size=32, nthread=0) as dyn:
        traj = dyn.rollout(dyn.get_state()[None], actions, needs=frozenset({"frames", "initial_frame"}))
        assert traj.frame_steps == (1, 3) and traj.frames.shape == (1, 3, 2, 32, 32, 3)
        assert traj.initial_frames.shape == (1, 32, 32, 3)
        z = frame_embeddings(traj, encoder)
        assert frame_embeddings(traj, encoder) is z  # embedded once per batch, shared by the costs
        for k in range(3):
            for f, step in enumerate(traj.frame_steps):
                single = dyn.render(traj.states[:, k, step][None])[0, 0]
                assert np.array_equal(single, traj.frames[0, k, f])
                assert torch.allclose(encoder.encode_images(single)[0], z[0, k, f], atol=1e-5)
        goal = traj.frames[0, 0, -1]
        cost = EmbeddingGoalCost(encoder, goal, when="final")(traj)
        assert cost.shape == (1, 3) and cost[0, 0].abs() < 1e-4
        from vip_rl.planning import DemoSubgoalCost

        demo = np.concatenate([traj.initial_frames, traj.frames[0, :, -1]])  # [1 + K, H, W, 3]
        subgoal = DemoSubgoalCost(encoder, demo, lookahead=1)
        assert subgoal(traj).shape == (1, 3) and subgoal.tracker.matched.tolist() == [0]
        progress = EmbeddingProgressCost(encoder, goal)(traj)
        d0 = encoder.distance(encoder.encode_images(traj.initial_frames), encoder.encode_images(goal))
        assert torch.allclose(progress, cost - d0, atol=1e-4)  # discount 1 telescopes


@pytest.mark.slow
def test_kitchen_state_dependent_controls_match_env_step():
    """FrankaKitchen's control target depends on the state: the simulator backend steps it control step by
    control step through KitchenEnv.state_action_to_ctrl and matches env.step (noise off) to solver precision."""
    kitchen = pytest.importorskip("vip_envs.kitchen")
    if not kitchen.is_available():
        pytest.skip("gymnasium-robotics not installed")
    env = kitchen.make_kitchen(("microwave",), render_mode="rgb_array", image_size=32, robot_noise_ratio=0.0,
                               object_noise_ratio=0.0)
    try:
        env.reset(seed=0)
        actions = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (1, 2, 4, 9)).astype(np.float32))
        with MujocoDynamics(env, nthread=2) as dyn:
            assert dyn.state_action_to_ctrl is not None
            before = env.get_state()
            traj = dyn.rollout(dyn.get_state()[None], actions, needs=frozenset({"frames"}))
            np.testing.assert_array_equal(env.get_state(), before)  # real env untouched
            assert traj.frames.shape == (1, 2, 1, 32, 32, 3)
            nq = env.model.nq
            for k in range(2):
                env.set_state(before)
                for t in range(4):
                    env.step(actions[0, k, t].numpy())
                    np.testing.assert_allclose(traj.states[0, k, t, 1 : 1 + nq], env.get_state()[1 : 1 + nq], atol=1e-7)
            scores = env.evaluate_states(traj.states[0, :, -1])  # hooks take the planner's FULLPHYSICS states
            assert scores["task_progress"].shape == (2,)
    finally:
        env.close()


def test_mppi_on_pusher_with_oracle_fn(pusher):
    pusher.reset(seed=2)
    u = pusher.unwrapped
    tip = u.model.body("tips_arm").id

    with MujocoDynamics(pusher, nthread=2) as dyn:
        import mujoco

        scratch = mujoco.MjData(u.model)
        target = np.array([0.3, -0.4, -0.275])

        def fn(states):
            out = np.empty(len(states))
            for i, s in enumerate(states):
                mujoco.mj_setState(u.model, scratch, s, dyn.full_spec)
                mujoco.mj_kinematics(u.model, scratch)
                out[i] = -np.linalg.norm(scratch.xpos[tip] - target)
            return out

        cfg = MPPIConfig(action_dim=7, num_samples=32, horizon=5, noise_sigma=1.0, action_low=-2.0, action_high=2.0,
                         temperature=0.05, noise_beta=0.5)
        planner = MPPI(cfg, dyn, OracleCost(fn=fn, when="final"), seed=0)
        start = -fn(dyn.get_state()[None, : dyn.full_size])[0]
        for _ in range(25):
            pusher.step(planner.command(dyn.get_state()).numpy())
        end = -fn(dyn.get_state()[None, : dyn.full_size])[0]
    assert end < 0.6 * start


def test_non_mujoco_env_raises():
    gym = pytest.importorskip("gymnasium")
    env = gym.make("CartPole-v1")
    with pytest.raises(TypeError, match="CartPole"):
        MujocoDynamics(env)
    env.close()


@pytest.mark.parametrize(
    "goal, error, match",
    [
        (np.zeros((3, 32, 32), np.uint8), ValueError, "goal image must be uint8"),
        (np.zeros((32, 32, 3), np.float32), TypeError, r"goal must be uint8 .* got float32 \[32, 32, 3\]"),
        (np.zeros(5, np.float32), ValueError, r"goal embedding must be float \[8\]"),
        (12, TypeError, "goal must be"),
    ],
)
def test_bad_goal(goal, error, match):
    with pytest.raises(error, match=match):
        EmbeddingGoalCost(tiny_encoder(), goal)


def test_text_goal_without_text_tower():
    with pytest.raises(ValueError, match="no text tower"):
        EmbeddingGoalCost(tiny_encoder(), "open the drawer")


# -- CLI ------------------------------------------------------------------------------------
def test_cli_unknown_env(capsys):
    from vip_rl.planning.cli import cli

    with pytest.raises(SystemExit, match="^2$"):  # argparse's usage error; the message is on stderr
        cli(["--env", "NoSuchEnv-v9", "--goal", "x.png"])
    assert "unknown env" in capsys.readouterr().err


def test_mppi_config_for_takes_the_action_space_from_the_env():
    gym = pytest.importorskip("gymnasium")
    from vip_rl.planning import mppi_config_for

    env = gym.make("Pusher-v5")
    config = mppi_config_for(env, num_samples=8, horizon=3)
    assert (config.action_dim, config.num_samples, config.horizon) == (7, 8, 3)
    assert config.action_low == (-2.0,) * 7 and config.action_high == (2.0,) * 7
    with pytest.raises(TypeError, match="action_dim comes from the env's action space"):
        mppi_config_for(env, action_dim=3)
    with pytest.raises(ValueError, match="num_samples must be a positive int, got 0"):
        mppi_config_for(env, num_samples=0)
    env.close()


def test_make_cost_kinds():
    from vip_rl.planning import DemoSubgoalCost, make_cost

    encoder, goal = tiny_encoder(), np.zeros((32, 32, 3), np.uint8)
    assert isinstance(make_cost(encoder, goal), EmbeddingGoalCost)
    assert isinstance(make_cost(encoder, goal, kind="progress"), EmbeddingProgressCost)
    assert isinstance(make_cost(None, None, kind="oracle"), OracleCost)
    demo = np.zeros((5, 32, 32, 3), np.uint8)
    cost = make_cost(encoder, demo, kind="subgoals", lookahead=2, action_penalty=0.1)
    assert isinstance(cost, SumCost) and [type(c) for _, c in cost.terms] == [DemoSubgoalCost, ActionPenalty]
    assert cost.terms[0][1].tracker.lookahead == 2
    with pytest.raises(ValueError, match="kind must be 'goal', 'progress', 'subgoals' or 'oracle', got 'nope'"):
        make_cost(encoder, goal, kind="nope")


def test_cli_flags_are_the_config_fields_and_old_names_are_hidden_aliases(capsys):
    from vip_rl.planning.cli import build_parser

    parser = build_parser()
    new = parser.parse_args(["--env", "E", "--num-samples", "7", "--noise-sigma", "0.3", "--noise-beta", "0.2"])
    old = parser.parse_args(["--env", "E", "--samples", "7", "--sigma", "0.3", "--beta", "0.2"])
    assert (new.num_samples, new.noise_sigma, new.noise_beta) == (old.num_samples, old.noise_sigma, old.noise_beta) == (7, 0.3, 0.2)
    defaults = parser.parse_args(["--env", "E"])
    assert (defaults.num_samples, defaults.horizon, defaults.noise_sigma, defaults.noise_beta) == (32, 10, 0.5, 0.5)
    for field in ("num_samples", "horizon", "iterations", "noise_sigma", "temperature", "noise_beta"):
        assert field in MPPIConfig.__dataclass_fields__ and hasattr(defaults, field)
    parser.print_help()
    text = capsys.readouterr().out
    assert "--num-samples" in text and "--samples" not in text and "--sigma " not in text


def test_cli_smoke_pusher(tmp_path):
    import imageio.v3 as iio

    from vip_rl.planning.cli import cli

    goal = tmp_path / "goal.png"
    iio.imwrite(goal, np.full((32, 32, 3), 128, np.uint8))
    out = tmp_path / "run"
    code = cli(["--env", "Pusher-v5", "--goal", str(goal), "--encoder", "random", "--episodes", "1", "--samples", "4",
                "--horizon", "2", "--max-steps", "3", "--image-size", "32", "--out", str(out), "--device", "cpu",
                "--no-video"])
    assert code == 0
    result = json.loads((out / "results.json").read_text())
    assert result["episodes"][0]["steps"] == 3 and set(result["episodes"][0]["split_per_command"]) >= {"rollout", "render", "encode"}


def _vip_envs_ready() -> bool:
    try:
        import vip_envs

        return hasattr(vip_envs, "TASKS")
    except ImportError:
        return False


@pytest.mark.skipif(not _vip_envs_ready(), reason="vip_envs suite not available")
def test_vip_envs_rollout_matches_step_and_cli(tmp_path):
    import gymnasium as gym

    import vip_envs

    task = vip_envs.TASKS[0]
    env = gym.make(f"vip_envs/{task}-v0", render_mode="rgb_array")
    env.reset(seed=0)
    for _ in range(2):
        env.step(env.action_space.sample())
    gen = torch.Generator().manual_seed(0)
    actions = torch.rand(1, 3, 4, 4, generator=gen) * 2 - 1
    with MujocoDynamics(env) as dyn:
        before = env.unwrapped.get_state().copy()
        traj = dyn.rollout(dyn.get_state()[None], actions, needs=frozenset({"states", "frames"}))
        assert np.array_equal(env.unwrapped.get_state(), before)
        for t in range(4):
            env.step(actions[0, 2, t].numpy().astype(np.float32))
        assert np.array_equal(dyn.get_state()[: dyn.full_size], traj.states[0, 2, -1])
        assert traj.frames.shape[:3] == (1, 3, 1)
        evaluated = dyn.evaluate_states(traj.states[:, :, -1])
        assert evaluated["reward"].shape == (1, 3)
    with MujocoDynamics(env, camera=("front", "left")) as dyn:  # multi-view: one cost per camera, summed
        traj = dyn.rollout(dyn.get_state()[None], actions, needs=frozenset({"frames"}))
        assert sorted(traj.camera_frames) == ["front", "left"] and traj.frames is traj.camera_frames["front"]
        encoder = tiny_encoder()
        goal = traj.camera_frames["left"][0, 1, -1]
        cost = EmbeddingGoalCost(encoder, traj.frames[0, 1, -1], camera="front") + EmbeddingGoalCost(encoder, goal, camera="left")
        assert cost(traj).shape == (1, 3) and cost(traj)[0, 1].abs() < 1e-4
        with pytest.raises(ValueError, match="camera 'right'"):
            EmbeddingGoalCost(encoder, goal, camera="right")(traj)
    env.close()
    from vip_rl.planning.cli import cli

    code = cli(["--env", f"vip_envs/{task}-v0", "--goal", "expert", "--encoder", "oracle", "--episodes", "1",
                "--samples", "4", "--horizon", "2", "--max-steps", "2", "--out", str(tmp_path), "--device", "cpu"])
    assert code == 0 and (tmp_path / "episode_000.mp4").is_file()
    code = cli(["--env", f"vip_envs/{task}-v0", "--subgoals", "expert", "--encoder", "random", "--episodes", "1",
                "--samples", "4", "--horizon", "2", "--max-steps", "2", "--out", str(tmp_path / "sub"), "--device", "cpu",
                "--no-video"])
    assert code == 0 and json.loads((tmp_path / "sub" / "results.json").read_text())["episodes"][0]["steps"] == 2


def test_latent_dynamics_learns_and_plans():
    from vip_rl.planning.latent import LatentTrainConfig, latent_goal_cost, train_latent_dynamics

    class Identity(Encoder):  # "frames" encode to their first pixel, so the latent dynamics is z' = z + a
        def __init__(self):
            super().__init__(nn.Identity(), embed_dim=2, metric="l2", image_size=1)

        def encode_images(self, images, **_):
            return torch.as_tensor(np.asarray(images)[:, 0, 0, :2], dtype=torch.float32) / 10.0

    rng = np.random.default_rng(0)
    episodes = []
    for _ in range(8):
        actions = rng.uniform(-1, 1, (12, 2)).astype(np.float32)
        pos = np.concatenate([[[100.0, 100.0]], 100 + np.cumsum(actions * 10, 0)]).round()
        frames = np.zeros((13, 1, 1, 3), np.uint8)
        frames[:, 0, 0, :2] = pos
        episodes.append({"frames": frames, "actions": actions})
    encoder = Identity()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny MLP: thread hand-offs cost more than they give on a loaded machine
    try:
        model = train_latent_dynamics(encoder, episodes, config=LatentTrainConfig(steps=150, batch_size=64, hidden=32, lr=3e-3),
                                      seed=0)
    finally:
        torch.set_num_threads(threads)
    z = torch.tensor([[10.0, 10.0]])
    assert torch.allclose(model.step(z, torch.tensor([[1.0, -1.0]])), torch.tensor([[11.0, 9.0]]), atol=0.2)
    assert len(model.train_losses) == 20 and model.train_losses[-1] < 0.1 * model.train_losses[0]
    short = {"frames": episodes[0]["frames"][:3], "actions": episodes[0]["actions"][:2]}
    with pytest.warns(UserWarning, match="skipped 1 of 2 episodes shorter than rollout_length=3"):
        train_latent_dynamics(encoder, [short, episodes[1]], config=LatentTrainConfig(steps=2, rollout_length=3), seed=0)
    goal = np.zeros((1, 1, 1, 3), np.uint8)
    goal[0, 0, 0, :2] = (130, 80)
    planner = MPPI(MPPIConfig(action_dim=2, num_samples=64, horizon=5, temperature=0.1), TorchDynamics(model.step),
                   latent_goal_cost(encoder, goal), seed=0)
    state = z[0]
    for _ in range(8):
        state = state + planner.command(state)
    assert torch.linalg.vector_norm(state - torch.tensor([13.0, 8.0])) < 1.0
    with pytest.raises(ValueError, match="one goal"):
        latent_goal_cost(encoder, np.concatenate([goal, goal]))
