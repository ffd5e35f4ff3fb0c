"""MPPI episodes on a real env: the env, the cost and the episode loop behind ``vip-rl mppi``.

:func:`make_env` makes a Gymnasium env by id, :func:`mppi_config_for` builds the :class:`MPPIConfig`
once the env's action space is known, :func:`make_cost` builds the goal cost a command line asks
for, and :func:`run_episode` runs one planner on one env until success or the end of the episode.
The CLI (:mod:`vip_rl.planning.cli`) only parses flags and calls these; benchmarks call them directly.

Example:
    >>> from vip_rl.goals import expert_goal, resolve_encoder                       # doctest: +SKIP
    >>> env = make_env("vip_envs/OpenDrawer-v0")                                    # doctest: +SKIP
    >>> config = mppi_config_for(env, num_samples=64, horizon=10)                   # doctest: +SKIP
    >>> encoder = resolve_encoder("td-sim")                                         # doctest: +SKIP
    >>> with MujocoDynamics(env) as dynamics:                                       # doctest: +SKIP
    ...     cost = make_cost(encoder, expert_goal("vip_envs/OpenDrawer-v0", seed=10_000))
    ...     result = run_episode(env, MPPI(config, dynamics, cost, seed=0), dynamics, seed=0, record=False)
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np

from vip_rl.planning.costs import (
    ActionPenalty,
    Cost,
    DemoSubgoalCost,
    EmbeddingGoalCost,
    EmbeddingProgressCost,
    OracleCost,
)
from vip_rl.planning.dynamics import MujocoDynamics
from vip_rl.planning.mppi import MPPI, MPPIConfig

__all__ = ["TIMING_KEYS", "CostKind", "make_env", "mppi_config_for", "make_cost", "run_episode"]

#: The per-command time split reported by :func:`run_episode` (seconds, see :class:`~vip_rl.planning.mppi.PlanResult`).
TIMING_KEYS = ("rollout", "render", "encode", "cost", "update", "total")

CostKind = Literal["goal", "progress", "oracle", "subgoals"]


def make_env(env_id: str, *, render_mode: str | None = "rgb_array", **kwargs: Any) -> Any:
    """``gymnasium.make(env_id)``, importing ``vip_envs`` first for ``vip_envs/...`` ids.

    Raises:
        ValueError: unknown env id (lists the suite's tasks when it is a ``vip_envs`` id).
    """
    import gymnasium as gym

    from vip_rl._gl import default_mujoco_gl

    default_mujoco_gl()
    suite: Any = None
    if env_id.startswith("vip_envs/"):
        try:
            import vip_envs as suite  # registers the ids
        except ImportError as err:
            raise ValueError(f"env_id {env_id!r} needs the vip_envs suite, which failed to import: {err}") from err
    try:
        return gym.make(env_id, render_mode=render_mode, **kwargs)
    except gym.error.Error as err:
        known = "" if suite is None else "; suite tasks: " + ", ".join(f"vip_envs/{t}-v0" for t in suite.TASKS)
        raise ValueError(f"unknown env {env_id!r} ({err}){known}") from err


def mppi_config_for(env: Any, **fields: Any) -> MPPIConfig:
    """The :class:`MPPIConfig` for ``env``: ``action_dim`` and the action bounds from its Box action
    space, every other field from ``fields`` (checked by the config).

    Raises:
        ValueError: an invalid field value (see :class:`MPPIConfig`).
        TypeError: an unknown field, or an env whose action space is not a bounded Box.

    Example:
        >>> import gymnasium as gym
        >>> env = gym.make("Pendulum-v1")
        >>> mppi_config_for(env, num_samples=32).action_high
        (2.0,)
    """
    space = env.action_space
    if not hasattr(space, "low") or not hasattr(space, "high"):
        raise TypeError(f"env must have a Box action space, got {space}")
    for name in ("action_dim", "action_low", "action_high"):
        if name in fields:
            raise TypeError(f"{name} comes from the env's action space; do not pass it (got {fields[name]!r})")
    return MPPIConfig(
        action_dim=int(np.prod(space.shape)),
        action_low=tuple(float(v) for v in np.ravel(space.low)),
        action_high=tuple(float(v) for v in np.ravel(space.high)),
        **fields,
    )


def make_cost(
    encoder: Any | None,
    goal: Any,
    *,
    kind: CostKind = "goal",
    when: str = "final",
    discount: float = 1.0,
    action_penalty: float = 0.0,
    lookahead: int = 10,
    final_weight: float = 0.0,
) -> Cost:
    """The cost of ``vip-rl mppi``: ``kind`` plus an optional action penalty.

    Args:
        encoder: the goal's encoder (unused by ``"oracle"``).
        goal: any goal :func:`vip_rl.goals.parse_goal` reads (``"goal"``, ``"progress"``), demo frames
            uint8 ``[N, H, W, 3]`` (``"subgoals"``), or None (``"oracle"``).
        kind: ``"goal"`` (:class:`EmbeddingGoalCost`), ``"progress"`` (:class:`EmbeddingProgressCost`),
            ``"subgoals"`` (:class:`DemoSubgoalCost` along the demo ``goal``) or ``"oracle"`` (the env's
            true reward, summed over the horizon).
        when, discount: as :class:`EmbeddingGoalCost` (``when`` unused by ``"progress"``).
        action_penalty: weight of :class:`ActionPenalty` (0: none).
        lookahead, final_weight: as :class:`DemoSubgoalCost` (``"subgoals"`` only).

    Raises:
        ValueError: an unknown ``kind``; everything the cost classes raise.
    """
    if kind == "oracle":
        cost: Cost = OracleCost(key="reward", when="sum", discount=discount)
    elif kind == "progress":
        cost = EmbeddingProgressCost(encoder, goal, discount=discount)
    elif kind == "goal":
        cost = EmbeddingGoalCost(encoder, goal, when=when, discount=discount)
    elif kind == "subgoals":
        cost = DemoSubgoalCost(encoder, goal, lookahead=lookahead, when=when, discount=discount, final_weight=final_weight)
    else:
        raise ValueError(f"kind must be 'goal', 'progress', 'subgoals' or 'oracle', got {kind!r}")
    if action_penalty > 0:
        cost = cost + ActionPenalty(action_penalty)
    return cost


def run_episode(
    env: Any,
    planner: MPPI,
    dynamics: MujocoDynamics,
    *,
    seed: int,
    max_steps: int | None = None,
    record: bool = True,
    stop_on_success: bool = True,
) -> dict[str, Any]:
    """Run one MPPI episode on ``env`` (reset with ``seed``, the planner reseeded with it).

    Args:
        env: the real env (``render_mode="rgb_array"`` when ``record``).
        planner: the MPPI planner over ``dynamics``.
        dynamics: gives the env's current state (``get_state()``).
        seed: reset seed of the env and the planner.
        max_steps: step limit (default: the env's ``max_episode_steps``, else 100).
        record: keep the rendered frames (``out["frames"]``, uint8 ``[N + 1, H, W, 3]``).
        stop_on_success: end the episode at the first ``info["success"]``.

    Returns:
        JSON-able ``{"seed", "success", "steps", "task_progress", "seconds_per_command",
        "split_per_command": {TIMING_KEYS}}`` (+ ``"frames"`` when ``record``).
    """
    env.reset(seed=seed)
    planner.reset(seed=seed)
    limit = max_steps or getattr(getattr(env, "spec", None), "max_episode_steps", None) or 100
    frames = [np.asarray(env.render())] if record else []
    timings = {k: 0.0 for k in TIMING_KEYS}
    success, steps, info = False, 0, {}
    for steps in range(1, limit + 1):
        result = planner.plan(dynamics.get_state())
        for key in TIMING_KEYS:
            timings[key] += result.timings.get(key, 0.0)
        _, _, terminated, truncated, info = env.step(result.action.cpu().numpy().astype(np.float32))
        if record:
            frames.append(np.asarray(env.render()))
        success = success or bool(info.get("success", False))
        if (success and stop_on_success) or terminated or truncated:
            break
    out: dict[str, Any] = {
        "seed": seed,
        "success": success,
        "steps": steps,
        "task_progress": float(info.get("task_progress", float("nan"))),
        "seconds_per_command": timings["total"] / max(steps, 1),
        "split_per_command": {k: timings[k] / max(steps, 1) for k in TIMING_KEYS},
    }
    if record:
        out["frames"] = np.stack(frames)
    return out
