"""MPPI episodes on a real env: the env, the cost and the episode loop behind ``vip-rl mppi``.

:func:`make_env` makes a Gymnasium env by id, :func:`mppi_config_for` builds the :class:`MPPIConfig`
once the env's action space is known, :func:`make_cost` builds the goal cost a command line asks
for, and :func:`run_episode` runs one planner on one env until success or the end of the episode.
The CLI (:mod:`vip_rl.planning.cli`) only parses flags and calls these; benchmarks call them directly.

Env ids (:func:`make_env`): any registered Gymnasium id (``Pusher-v5``, ``vip_envs/OpenDrawer-v0``: the
suite is imported for its own ids) or Gymnasium's ``module:Id`` (import ``module``, which registers ``Id``,
then make it: ``metaworld:Meta-World/MT1``); constructor kwargs are passed through (``--env-kwargs`` on the
command line, read by :func:`parse_env_kwargs`). An id whose namespace is registered by a package that is
not imported gets a hint naming the ``module:Id`` to use.

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

import importlib
import importlib.util
import json
from typing import Any, Literal

import numpy as np

from vip_rl._gl import render_frame
from vip_rl.planning.costs import (
    ActionPenalty,
    Cost,
    DemoSubgoalCost,
    EmbeddingGoalCost,
    EmbeddingProgressCost,
    OracleCost,
    SumCost,
)
from vip_rl.planning.decompose import decompose_demo
from vip_rl.planning.dynamics import MujocoDynamics
from vip_rl.planning.mppi import MPPI, MPPIConfig

__all__ = ["TIMING_KEYS", "CostKind", "NAMESPACE_PACKAGES", "EnvKwargsError", "make_env", "parse_env_kwargs",
           "mppi_config_for", "make_cost", "demo_subgoals", "run_episode"]

#: The per-command time split reported by :func:`run_episode` (seconds, see :class:`~vip_rl.planning.mppi.PlanResult`).
TIMING_KEYS = ("rollout", "render", "encode", "cost", "update", "total")

CostKind = Literal["goal", "progress", "oracle", "subgoals"]


#: Gymnasium namespaces registered by importing a package (the module to name in ``module:Id``).
NAMESPACE_PACKAGES: dict[str, str] = {"Meta-World": "metaworld", "ALE": "ale_py", "dm_control": "shimmy",
                                      "vip_envs": "vip_envs"}
#: Ids without a namespace that Gymnasium-Robotics registers when imported (name prefixes).
_ROBOTICS_PREFIXES = ("Fetch", "HandManipulate", "HandReach", "Adroit", "FrankaKitchen", "PointMaze", "AntMaze")


class EnvKwargsError(ValueError):
    """The env's constructor refused the kwargs it was given (a ``TypeError`` there: an unknown or missing keyword)."""


def _split_env_id(env_id: Any) -> tuple[str | None, str]:
    if not isinstance(env_id, str) or not env_id.strip():
        raise ValueError(f"env id must be a Gymnasium id such as 'Pusher-v5' or 'module:Id', got {env_id!r}")
    module, colon, name = env_id.partition(":")
    if not colon:
        return None, env_id
    if not module or not name or ":" in name:
        raise ValueError(f"env id {env_id!r} must be 'Id' or 'module:Id' (one ':', e.g. 'metaworld:Meta-World/MT1')")
    return module, name


def _unknown_env_hint(module: str | None, name: str, err: Exception) -> str:
    """What to try for an id ``gymnasium.make`` does not know ('' when nothing better than its own message)."""
    import gymnasium as gym

    if isinstance(err, (gym.error.VersionNotFound, gym.error.DeprecatedEnv)):
        return ""  # the name is known: gymnasium's message lists its versions
    try:
        namespace, base, _ = gym.envs.registration.parse_env_id(name)
    except gym.error.Error:
        return ""
    if module is not None:
        return f"; module {module!r} was imported but does not register {name!r}"
    if namespace is not None and not any(spec.namespace == namespace for spec in gym.registry.values()):
        package = NAMESPACE_PACKAGES.get(namespace)
        if package is None:
            return (f"; no package registered the namespace {namespace!r}: name the module that does, "
                    f"'<module>:{name}'")
        missing = "" if importlib.util.find_spec(package) else f" (not installed: pip install {package.replace('_', '-')})"
        adapter = " (or the suite's seeded adapter with experts, vip_envs/MetaWorld-<task>)" if namespace == "Meta-World" else ""
        return f"; {namespace}/... ids need `import {package}`{missing}: use '{package}:{name}'{adapter}"
    if namespace is None and base.startswith(_ROBOTICS_PREFIXES):
        return f"; Gymnasium-Robotics ids need `import gymnasium_robotics`: use 'gymnasium_robotics:{name}'"
    if namespace is None:
        return f"; if a package registers it, name the package: '<module>:{name}'"
    return ""


def make_env(env_id: str, *, render_mode: str | None = "rgb_array", **kwargs: Any) -> Any:
    """``gymnasium.make(env_id, render_mode=render_mode, **kwargs)`` for any env id (module docstring).

    ``vip_envs/...`` ids import the suite first; ``module:Id`` imports ``module`` first.

    Raises:
        ValueError: an unknown env id (with a hint: the suite's tasks for a ``vip_envs`` id, the
            ``module:Id`` to use for a namespace registered by a package not imported), a ``module`` that
            cannot be imported, an env that cannot be made here (its own ``ValueError`` / ``ImportError``).
        EnvKwargsError: the env's constructor refused ``kwargs`` (a ``ValueError``).

    Example:
        >>> make_env("nosuchmod:Foo-v0")
        Traceback (most recent call last):
        ...
        ValueError: env 'nosuchmod:Foo-v0': cannot import module 'nosuchmod' (No module named 'nosuchmod'); the part before ':' must be an installed module that registers the env
    """
    import gymnasium as gym

    from vip_rl._gl import default_mujoco_gl

    module, name = _split_env_id(env_id)
    default_mujoco_gl()
    if module is not None:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ValueError(f"env {env_id!r}: cannot import module {module!r} ({err}); the part before ':' must be an "
                             "installed module that registers the env") from err
    suite: Any = None
    if name.startswith("vip_envs/"):
        try:
            import vip_envs as suite  # registers the ids
        except ImportError as err:
            raise ValueError(f"env_id {env_id!r} needs the vip_envs suite, which failed to import: {err}") from err
    shown = dict(kwargs)
    try:
        return gym.make(name, render_mode=render_mode, **kwargs)
    except gym.error.Error as err:
        known = "" if suite is None else "; suite ids: " + ", ".join(
            [suite.env_id(t) for t in suite.TASKS] + list(suite.KITCHEN_IDS)
            + ([f"vip_envs/MetaWorld-<task> (e.g. {next(iter(suite.METAWORLD_IDS))})"] if getattr(suite, "METAWORLD_IDS", None) else []))
        raise ValueError(f"unknown env {env_id!r} ({err}){known or _unknown_env_hint(module, name, err)}") from err
    except TypeError as err:  # gymnasium appends "was raised from the environment creator for <id> with kwargs (...)"
        reason = str(err).split(" was raised from the environment creator")[0]
        raise EnvKwargsError(f"env {env_id!r} refused the kwargs {shown}: {reason}") from err
    except (ValueError, ImportError) as err:
        given = f" with kwargs {shown}" if shown else ""
        raise ValueError(f"env {env_id!r} cannot be made{given}: {type(err).__name__}: {err}") from err


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}


def parse_env_kwargs(text: str | None, *, flag: str = "--env-kwargs", reserved: tuple[str, ...] = ("render_mode",)) -> dict[str, Any]:
    """A command line's env kwargs: a JSON object (``'{"camera_name": "corner"}'``) -> dict (None -> ``{}``).

    Args:
        text: the flag's value, or None when not given.
        flag: the flag named in errors.
        reserved: keys the command sets itself (refused).

    Raises:
        ValueError: not JSON, not a JSON object, or a reserved key.

    Example:
        >>> parse_env_kwargs('{"env_name": "drawer-open-v3", "camera_name": "corner"}')
        {'env_name': 'drawer-open-v3', 'camera_name': 'corner'}
        >>> parse_env_kwargs('[1, 2]')
        Traceback (most recent call last):
        ...
        ValueError: --env-kwargs must be a JSON object such as '{"camera_name": "corner"}', got an array: '[1, 2]'
    """
    if text is None:
        return {}
    example = '\'{"camera_name": "corner"}\''
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{flag} must be a JSON object such as {example}, got {text!r} ({err.msg} at character "
                         f"{err.pos}; quote keys and strings with \", and the whole object for the shell)") from err
    if not isinstance(value, dict):
        raise ValueError(f"{flag} must be a JSON object such as {example}, got {_JSON_TYPES.get(type(value), 'a value')}: "
                         f"{text!r}")
    refused = [key for key in reserved if key in value]
    if refused:
        raise ValueError(f"{flag} must not set {', '.join(map(repr, refused))} (the command sets it), got {text!r}")
    return value


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
        name = getattr(getattr(env, "spec", None), "id", None) or type(env).__name__
        raise TypeError(f"env {name!r} must have a Box action space (MPPI samples continuous actions), got {space}")
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
    lookahead: int | None = None,
    final_weight: float = 0.0,
    decompose: bool = False,
    min_interval: int = 5,
    smooth: int = 3,
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
        lookahead, final_weight: as :class:`DemoSubgoalCost` (``"subgoals"`` only). ``lookahead`` counts demo
            frames, or subgoals with ``decompose``; None: 10 frames, or 1 subgoal (the next) with ``decompose``.
        decompose: (``"subgoals"`` only) split the demo into subgoals with
            :func:`~vip_rl.planning.decompose.decompose_demo` (UVD's rule, ``min_interval`` and ``smooth``
            passed on): the current frame is still matched against every demo frame, and the cost aims at the
            ``lookahead``-th subgoal after the match. :func:`demo_subgoals` reads the chosen frames back.

    Raises:
        ValueError: an unknown ``kind``, ``decompose`` with another kind; everything the cost classes and
            ``decompose_demo`` raise.
    """
    if decompose and kind != "subgoals":
        raise ValueError(f"decompose needs kind='subgoals' (a demo to split), got kind={kind!r}")
    if lookahead is None:
        lookahead = 1 if decompose else 10
    if kind == "oracle":
        cost: Cost = OracleCost(key="reward", when="sum", discount=discount)
    elif kind == "progress":
        cost = EmbeddingProgressCost(encoder, goal, discount=discount)
    elif kind == "goal":
        cost = EmbeddingGoalCost(encoder, goal, when=when, discount=discount)
    elif kind == "subgoals":
        subgoals = decompose_demo(encoder, goal, min_interval=min_interval, smooth=smooth) if decompose else None
        cost = DemoSubgoalCost(encoder, goal, lookahead=lookahead, when=when, discount=discount, final_weight=final_weight,
                               subgoals=subgoals)
    else:
        raise ValueError(f"kind must be 'goal', 'progress', 'subgoals' or 'oracle', got {kind!r}")
    if action_penalty > 0:
        cost = cost + ActionPenalty(action_penalty)
    return cost


def demo_subgoals(cost: Cost) -> list[int] | None:
    """The demo frame indices a :func:`make_cost` ``"subgoals"`` cost aims at (ascending, the last is the demo's
    last frame; every frame unless it was made with ``decompose``), or None for a cost without a demo."""
    terms = [term for _, term in cost.terms] if isinstance(cost, SumCost) else [cost]
    for term in terms:
        if isinstance(term, DemoSubgoalCost):
            return [int(i) for i in term.tracker.subgoals.tolist()]
    return None


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
    frames = [np.asarray(render_frame(env))] if record else []
    timings = {k: 0.0 for k in TIMING_KEYS}
    success, steps, info = False, 0, {}
    for steps in range(1, limit + 1):
        result = planner.plan(dynamics.get_state())
        for key in TIMING_KEYS:
            timings[key] += result.timings.get(key, 0.0)
        _, _, terminated, truncated, info = env.step(result.action.cpu().numpy().astype(np.float32))
        if record:
            frames.append(np.asarray(render_frame(env)))
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
