"""The value metrics the representation and shortcut benchmarks share: held-out evaluation episodes, decoy states
(the end effector where the goal has it, objects at their start), value-order correlation (VOC), the decoy test,
PushBlock goal frames with the same push target as a given episode (:func:`same_target_goals`) and the decoys and
decoy test against them (:func:`decoy_frames` with ``goal_states=``, ``value_metrics(matched_decoys=...)``), and a
randomly initialised twin of an encoder (the anchor every figure stands beside).

``representation.py`` reports them for the bundled encoders; ``shortcut.py`` for its training variants and cameras.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

import _common  # noqa: F401  (library path, MUJOCO_GL default)
from vip_rl.diagnostics import spearman

OBJECT_COLUMNS = ("drawer", "door", "button", "switch", "block_x", "block_y", "block_z")
EVAL_SEED = 777_000
#: a matched PushBlock goal episode of eval episode i is reset with ``seed_i + SAME_TARGET_SEED_OFFSET + k``, k = 0, 1, ...
SAME_TARGET_SEED_OFFSET = 500_000
#: derived seeds tried per episode before :func:`same_target_goals` gives up
SAME_TARGET_MAX_TRIES = 100
#: a goal episode's block must start at least this far (m) from the target: the rule of the env's own reset
MIN_BLOCK_TARGET_DISTANCE = 0.1
#: zero-action steps :func:`decoy_defined` takes from a decoy state: a decoy they solve is no decoy
DECOY_SETTLE_STEPS = 1

def collect_eval(tasks: Sequence[str], episodes: int, *, cache: Path, embodiment: str = "gripper", seed: int = EVAL_SEED) -> dict[str, list[Any]]:
    """Held-out expert episodes (new seeds) per task, cached as HDF5 under ``cache``."""
    from vip_rl.collect import collect
    from vip_rl.data import read_episodes

    out: dict[str, list[Any]] = {}
    cache.mkdir(parents=True, exist_ok=True)
    for t, task in enumerate(tasks):
        path = cache / f"{task}_{embodiment}_{episodes}_{seed}.h5"
        if not path.is_file():
            collect(task, episodes=episodes, policy="expert", cameras=("front",), image_size=96, embodiment=embodiment,
                    seed=seed + t, out=path, progress=False)
        out[task] = [e for e in read_episodes(path) if e.success]
    return out


@dataclasses.dataclass(frozen=True)
class MatchedGoals:
    """Per eval episode, a goal from *another* PushBlock episode that has the same push target.

    Attributes:
        frames: uint8 ``[N, H, W, 3]``, the goal episode's final frame (same camera, size and embodiment).
        seeds: int64 ``[N]``, the seed each goal episode was reset with.
        start_states: float64 ``[N, S]``, each goal episode's first simulator state (target already set).
        final_states: float64 ``[N, S]``, each goal episode's final (successful) simulator state.
    """

    frames: np.ndarray
    seeds: np.ndarray
    start_states: np.ndarray
    final_states: np.ndarray


def same_target_goals(episodes: Sequence[Any], *, cache: Path | None = None, camera: str = "front",
                      seed_offset: int = SAME_TARGET_SEED_OFFSET, max_tries: int = SAME_TARGET_MAX_TRIES) -> MatchedGoals:
    """A goal frame for each PushBlock episode from another episode whose push target is the same.

    PushBlock draws a new push target every episode, so another episode's final frame shows the block at another
    target. For episode i this resets the env with ``seed_i + seed_offset + k`` (another block pose, arm start and
    scene), moves the target to episode i's target (``set_state`` with the target joints' qpos replaced), runs the
    noise-free scripted expert until success and renders the final state. ``k`` counts up from 0 past seeds whose block
    starts within ``MIN_BLOCK_TARGET_DISTANCE`` of the target (the env's own reset rule) or whose expert fails.

    Args:
        episodes: PushBlock episodes with ``attrs["seed"]``, ``attrs["embodiment"]``, ``sim_states`` and
            ``frames[camera]`` uint8 ``[T, H, W, 3]`` (what :func:`collect_eval` returns).
        cache: folder for the goals (one ``.npz`` keyed by the episodes' seeds and targets, written atomically);
            None: always recompute.
        camera: the camera of the goal frames.
        seed_offset: first derived seed minus the episode's seed.
        max_tries: derived seeds tried per episode.

    Returns:
        :class:`MatchedGoals` with one goal per episode, in order.

    Raises:
        ValueError: no episodes, an episode of another task, or episodes of mixed embodiments or frame sizes.
        RuntimeError: no derived seed within ``max_tries`` gave a valid, successful goal episode.
    """
    import gymnasium
    import vip_envs

    from vip_rl._io import atomic_path

    if len(episodes) == 0:
        raise ValueError("episodes must hold at least one PushBlock episode, got none")
    tasks = {str(e.attrs.get("task", "PushBlock")) for e in episodes}
    if tasks != {"PushBlock"}:
        raise ValueError(f"episodes must be PushBlock episodes (the only task with a moving target), got tasks {sorted(tasks)}")
    embodiments = {str(e.attrs["embodiment"]) for e in episodes}
    shapes = {tuple(e.frames[camera].shape[1:]) for e in episodes}
    if len(embodiments) != 1 or len(shapes) != 1:
        raise ValueError(f"episodes must share one embodiment and frame shape, got {sorted(embodiments)} and {sorted(shapes)}")
    if max_tries < 1:
        raise ValueError(f"max_tries must be >= 1, got {max_tries!r}")
    embodiment, (image_size, _, _) = embodiments.pop(), shapes.pop()
    eval_seeds = np.array([int(e.attrs["seed"]) for e in episodes], dtype=np.int64)
    env = gymnasium.make(vip_envs.env_id("PushBlock"), render_mode="rgb_array", obs_mode="state", cameras=(camera,),
                         image_size=image_size, embodiment=embodiment)
    unwrapped = env.unwrapped
    columns = 1 + unwrapped.layout.target  # state = [time, qpos, qvel, ...]
    block = 1 + unwrapped.layout.block
    targets = np.stack([np.asarray(e.sim_states[0], dtype=np.float64)[columns] for e in episodes])
    key = hashlib.sha256(repr((embodiment, camera, image_size, seed_offset, max_tries, MIN_BLOCK_TARGET_DISTANCE,
                               eval_seeds.tolist(), targets.tolist())).encode()).hexdigest()[:16]
    path = None if cache is None else Path(cache) / f"PushBlock_{embodiment}_same_target_goals_{len(episodes)}_{key}.npz"
    if path is not None and path.is_file():
        with np.load(path) as stored:
            if np.array_equal(stored["eval_seeds"], eval_seeds) and np.array_equal(stored["targets"], targets):
                env.close()
                return MatchedGoals(frames=stored["frames"], seeds=stored["seeds"], start_states=stored["start_states"],
                                    final_states=stored["final_states"])
    seeds, starts, finals = [], [], []
    try:
        for i, (episode_seed, target) in enumerate(zip(eval_seeds.tolist(), targets)):
            for k in range(max_tries):
                seed = episode_seed + seed_offset + k
                obs, _ = env.reset(seed=seed)
                state = unwrapped.get_state()
                state[columns] = target
                unwrapped.set_state(state)  # mj_setState + mj_forward: the marker is drawn at episode i's target
                obs[-2:] = target  # the state observation ends with target_x, target_y
                if np.linalg.norm(state[block : block + 2] - target) < MIN_BLOCK_TARGET_DISTANCE:
                    continue
                policy = vip_envs.expert(env, seed=seed)
                terminated = truncated = False
                info: dict[str, Any] = {"success": False}
                while not (terminated or truncated):
                    obs, _, terminated, truncated, info = env.step(policy(obs))
                if info["success"]:
                    seeds.append(seed)
                    starts.append(state)
                    finals.append(unwrapped.get_state())
                    break
            else:
                raise RuntimeError(f"no same-target PushBlock goal for episode {i} (seed {episode_seed}): seeds "
                                   f"{episode_seed + seed_offset}..{episode_seed + seed_offset + max_tries - 1} either start "
                                   f"the block within {MIN_BLOCK_TARGET_DISTANCE} m of target {target.tolist()} or the "
                                   "expert fails; raise max_tries")
        frames = np.asarray(unwrapped.render_states(np.stack(finals), camera=camera))
    finally:
        env.close()
    goals = MatchedGoals(frames=frames, seeds=np.array(seeds, dtype=np.int64), start_states=np.stack(starts),
                         final_states=np.stack(finals))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            np.savez(tmp, eval_seeds=eval_seeds, targets=targets, **dataclasses.asdict(goals))
    return goals


def first_object_motion(episode: Any, threshold: float = 2e-3) -> int:
    """Index of the first frame where any object joint has moved more than ``threshold`` (the reaching phase ends)."""
    import vip_envs

    cols = [list(vip_envs.STATE_LABELS).index(c) for c in OBJECT_COLUMNS]
    moved = np.abs(episode.states[:, cols] - episode.states[0, cols]).max(1) > threshold
    return int(np.argmax(moved)) if moved.any() else len(moved)


def decoy_states(layout: Any, episodes: Sequence[Any], partners: Sequence[int] | None = None, *,
                 goal_states: np.ndarray | None = None) -> np.ndarray:
    """Decoy simulator states: each episode's first state with the end effector (and fingers) of a goal state.

    Args:
        layout: the env's ``unwrapped.layout`` (which qpos columns hold the end effector and fingers).
        episodes: ``N`` episodes with ``sim_states`` float ``[T, S]``; the objects (and PushBlock's target) of
            decoy i are episode i's at its start.
        partners: the goal of decoy i is episode ``partners[i]``'s final state (``N`` indices).
        goal_states: float ``[N, S]``, the goal state of each decoy given directly (e.g.
            :func:`same_target_goals` ``.final_states``). Give exactly one of ``partners`` and ``goal_states``.

    Returns:
        float64 ``[N, S]``.

    Raises:
        ValueError: both or neither of ``partners`` and ``goal_states``, or not one goal per episode.
    """
    if (partners is None) == (goal_states is None):
        raise ValueError(f"give exactly one of partners and goal_states, got partners={partners!r} and "
                         f"goal_states {'None' if goal_states is None else np.shape(goal_states)}")
    if goal_states is None:
        goal_states = np.stack([np.asarray(episodes[j].sim_states[-1], dtype=np.float64) for j in partners])
    goal_states = np.asarray(goal_states, dtype=np.float64)
    states = np.stack([np.array(e.sim_states[0], dtype=np.float64) for e in episodes])
    if goal_states.shape != states.shape:
        raise ValueError(f"need one goal state per episode, shape {states.shape}, got {goal_states.shape}")
    cols = 1 + np.concatenate([layout.ee, layout.fingers])  # state = [time, qpos, qvel, ...]
    states[:, cols] = goal_states[:, cols]
    return states


def decoy_frames(task: str, episodes: Sequence[Any], partners: Sequence[int] | None = None, *, embodiment: str,
                 camera: str = "front", goal_states: np.ndarray | None = None) -> np.ndarray:
    """The :func:`decoy_states` (of ``partners`` or ``goal_states``) rendered at 96 px from ``camera``: uint8 ``[N, 96, 96, 3]``."""
    import gymnasium
    import vip_envs

    env = gymnasium.make(vip_envs.env_id(task), render_mode="rgb_array", image_size=96, embodiment=embodiment)
    env.reset(seed=0)
    unwrapped = env.unwrapped
    try:
        states = decoy_states(unwrapped.layout, episodes, partners, goal_states=goal_states)
        frames = np.asarray(unwrapped.render_states(states, camera=camera))
    finally:
        env.close()
    return frames


def decoy_defined(task: str, episodes: Sequence[Any], partners: Sequence[int] | None = None, *, embodiment: str,
                  goal_states: np.ndarray | None = None, steps: int = DECOY_SETTLE_STEPS) -> np.ndarray:
    """Which :func:`decoy_states` (of ``partners`` or ``goal_states``) are decoys at all: bool ``[N]``, False where
    ``steps`` zero actions from the decoy state (the arm held still) already solve the task.

    A decoy stands for "the end effector where the goal has it, the object untouched": a state that looks near the goal
    and is many steps from it. Where the goal pose overlaps the untouched object, the simulator resolves the overlap
    by moving the object: PressButton's goal pose presses the cap, so its decoy state is solved by one zero action
    (session 35). That state is not many steps from the goal, and the decoy test (farther than the 50%-progress frame,
    0-1 steps from success there) says nothing about the end-effector shortcut on it; such decoys are left out of the
    pass rates (issue 17: "on every task where the decoy is defined")."""
    import gymnasium
    import vip_envs

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps!r}")
    env = gymnasium.make(vip_envs.env_id(task), obs_mode="state", embodiment=embodiment)
    env.reset(seed=0)
    unwrapped = env.unwrapped
    out = []
    try:
        for state in decoy_states(unwrapped.layout, episodes, partners, goal_states=goal_states):
            env.reset(seed=0)
            unwrapped.set_state(state)
            solved = False
            for _ in range(steps):
                _, _, _, _, info = env.step(np.zeros(env.action_space.shape, dtype=env.action_space.dtype))
                solved = solved or bool(info["success"])
            out.append(not solved)
    finally:
        env.close()
    return np.array(out, dtype=bool)


@dataclasses.dataclass(frozen=True)
class Decoys:
    """The decoy inputs of :func:`value_metrics` for a set of eval episodes (:func:`decoy_set`).

    Attributes:
        decoys: task -> uint8 ``[n, 96, 96, 3]``, episode i's decoy against episode ``(i + 1) % n``'s final frame.
        matched_goals: ``{"PushBlock": frames}`` of :func:`same_target_goals` (empty without PushBlock episodes).
        matched_decoys: ``{"PushBlock": frames}``, the decoys against those goals (empty without PushBlock episodes).
        same_target: PushBlock's :class:`MatchedGoals`, or None.
        defined: task -> bool ``[n]``, :func:`decoy_defined` of ``decoys``.
        matched_defined: ``{"PushBlock": bool [n]}``, :func:`decoy_defined` of ``matched_decoys``.
    """

    decoys: dict[str, np.ndarray]
    matched_goals: dict[str, np.ndarray]
    matched_decoys: dict[str, np.ndarray]
    same_target: MatchedGoals | None
    defined: dict[str, np.ndarray]
    matched_defined: dict[str, np.ndarray]


def decoy_set(episodes: dict[str, Sequence[Any]], *, cache: Path, embodiment: str = "gripper") -> Decoys:
    """Every task's decoys (each episode against the next one's final frame) and, when there are PushBlock episodes
    (the one task whose target moves between episodes), its same-target goals and decoys (:func:`same_target_goals`,
    cached under ``cache``): the inputs :func:`value_metrics` takes for its decoy and same-target figures."""
    partners = {task: [(i + 1) % len(eps) for i in range(len(eps))] for task, eps in episodes.items()}
    decoys = {task: decoy_frames(task, eps, partners[task], embodiment=embodiment) for task, eps in episodes.items()}
    defined = {task: decoy_defined(task, eps, partners[task], embodiment=embodiment) for task, eps in episodes.items()}
    if "PushBlock" not in episodes:
        return Decoys(decoys, {}, {}, None, defined, {})
    goals = same_target_goals(episodes["PushBlock"], cache=cache)
    matched_decoys = decoy_frames("PushBlock", episodes["PushBlock"], goal_states=goals.final_states, embodiment=embodiment)
    matched_defined = decoy_defined("PushBlock", episodes["PushBlock"], goal_states=goals.final_states, embodiment=embodiment)
    return Decoys(decoys, {"PushBlock": goals.frames}, {"PushBlock": matched_decoys}, goals, defined,
                  {"PushBlock": matched_defined})


def expert_steps_from(task: str, states: np.ndarray, *, max_steps: int = 150, embodiment: str = "gripper") -> np.ndarray:
    """The scripted expert's steps to the task's success from each of ``states`` (simulator states float ``[N, S]``,
    e.g. :func:`decoy_states`): float ``[N]``, NaN where it does not succeed within ``max_steps``."""
    import gymnasium
    import vip_envs

    env = gymnasium.make(vip_envs.env_id(task), max_episode_steps=max_steps + 10, embodiment=embodiment)
    out = np.full(len(states), np.nan)
    try:
        for i, state in enumerate(np.asarray(states, dtype=np.float64)):
            obs, _ = env.reset(seed=0)
            env.unwrapped.set_state(state)
            policy = vip_envs.expert(env)
            for n in range(1, max_steps + 1):
                obs, _, _, _, info = env.step(policy(obs))
                if info["success"]:
                    out[i] = n
                    break
    finally:
        env.close()
    return out


def apparent_steps(d: np.ndarray, d_decoy: float) -> int:
    """The decoy's distance counted in the episode's own steps: the steps left (to the episode's last frame) at the
    frame from which every later frame is nearer the goal than the decoy (``d``: the episode's distances to the
    goal). A value that counts steps puts it near the expert's steps from the decoy (:func:`expert_steps_from`);
    fewer is the end-effector shortcut (the decoy looks nearer than it is). The episode's length when every frame is."""
    farther = np.flatnonzero(np.asarray(d) >= d_decoy)
    return int(len(d) - 1 - farther.max()) if len(farther) else int(len(d) - 1)


def half_progress_index(episode: Any) -> int:
    """Index of the episode's first frame at >= 50% task progress (progress rescaled from its first to its last
    frame): the frame every decoy test compares the decoy with."""
    p = episode.task_progress.astype(np.float64)
    p = (p - p[0]) / max(p[-1] - p[0], 1e-9)
    return int(np.argmax(p >= 0.5))


def _decoy_test(d_decoy: float, d: np.ndarray, half: int) -> tuple[bool, np.floating]:
    """One episode's decoy test against one goal: ``d`` = the episode's distances to the goal, ``half`` = its
    :func:`half_progress_index`. Returns (decoy farther than the half-progress frame, that difference over ``d[0]``)."""
    return bool(d_decoy > d[half]), (d_decoy - d[half]) / max(float(d[0]), 1e-9)


@torch.no_grad()
def value_metrics(encoder: Any, episodes: dict[str, list[Any]], *, embodiment: str = "gripper", decoys: dict[str, np.ndarray] | None = None,
                  matched_goals: dict[str, np.ndarray] | None = None, matched_decoys: dict[str, np.ndarray] | None = None,
                  defined: dict[str, np.ndarray] | None = None,
                  matched_defined: dict[str, np.ndarray] | None = None) -> dict[str, dict[str, float]]:
    """Per task: voc_own, voc_other, reach_voc, decoy pass rate and mean margin.

    The decoy test of episode i: goal = episode ``(i + 1) % n``'s final frame, decoy = ``decoys[task][i]`` (default
    :func:`decoy_frames` of those partners); pass when ``d(decoy, goal) > d(o_half, goal)``, ``o_half`` = episode i's
    frame at :func:`half_progress_index`; margin = that difference over ``d(o_0, goal)``. Only the episodes whose
    decoy is one count (``defined[task]``, bool ``[n]``, e.g. :class:`Decoys` ``.defined``; default: :func:`decoy_defined`
    when ``decoys`` is None, else every episode): ``decoy_episodes`` says how many, and the decoy figures are NaN
    when none is (PressButton). ``matched_defined`` does the same for ``matched_decoys`` (default: every episode).

    ``matched_goals`` (task -> uint8 ``[n, H, W, 3]``, one goal frame per episode of that task, e.g.
    :func:`same_target_goals` ``.frames``) adds ``voc_same_target`` to those tasks: the mean over episodes of
    Spearman(frame index, ``-d(phi(o_t), phi(goal_i))``). ``matched_decoys`` (task -> uint8 ``[n, H, W, 3]``, e.g.
    :func:`decoy_frames` with ``goal_states=`` the matched goals' ``.final_states``; its tasks need ``matched_goals``)
    adds ``decoy_same_target_pass_rate`` and ``decoy_same_target_margin``: the decoy test with ``goal_i`` as the goal.

    Raises:
        ValueError: ``matched_goals`` or ``matched_decoys`` without one frame per episode of a task, a task in
            ``matched_decoys`` but not in ``matched_goals``, or ``defined`` / ``matched_defined`` not one flag per episode.
    """
    matched_goals = matched_goals or {}
    matched_decoys = matched_decoys or {}
    defined = dict(defined or {})
    matched_defined = matched_defined or {}
    if set(matched_decoys) - set(matched_goals):
        raise ValueError(f"matched_decoys needs matched_goals for the same tasks, got decoys for {sorted(matched_decoys)} "
                         f"and goals for {sorted(matched_goals)}")
    results: dict[str, dict[str, float]] = {}
    for task, eps in episodes.items():
        n = len(eps)
        if n < 2:
            continue
        partners = [(i + 1) % n for i in range(n)]
        if decoys is None and task not in defined:
            defined[task] = decoy_defined(task, eps, partners, embodiment=embodiment)
        for name, kind, given in (("matched_goals", "goal frame", matched_goals), ("matched_decoys", "decoy frame", matched_decoys),
                                  ("defined", "flag", defined), ("matched_defined", "flag", matched_defined)):
            if task in given and len(given[task]) != n:
                raise ValueError(f"{name}[{task!r}] must hold one {kind} per episode ({n}), got {len(given[task])}")
        is_decoy = np.asarray(defined.get(task, np.ones(n, dtype=bool)), dtype=bool)
        z = [encoder.encode_images(e.frames["front"]) for e in eps]
        goals = torch.stack([zi[-1] for zi in z])
        own, other, reach, passes, margins, apparent = [], [], [], [], [], []
        frames_decoy = decoys[task] if decoys is not None else decoy_frames(task, eps, partners, embodiment=embodiment)
        zd = encoder.encode_images(frames_decoy)
        halves = [half_progress_index(e) for e in eps]
        for i, e in enumerate(eps):
            g = goals[partners[i]]
            order = np.arange(len(z[i]))
            d_own = encoder.distance(z[i], goals[i][None]).cpu().numpy()
            d = encoder.distance(z[i], g[None]).cpu().numpy()
            own.append(spearman(order, -d_own))
            other.append(spearman(order, -d))
            moved = first_object_motion(e)
            if moved >= 4:
                reach.append(spearman(np.arange(moved), -d[:moved]))
            if not is_decoy[i]:
                continue
            d_decoy = float(encoder.distance(zd[i], g).cpu())
            passed, margin = _decoy_test(d_decoy, d, halves[i])
            passes.append(passed)
            margins.append(margin)
            apparent.append(apparent_steps(d, d_decoy))
        results[task] = {
            "episodes": n,
            "voc_own": float(np.mean(own)),
            "voc_other": float(np.mean(other)),
            "voc_other_min": float(np.min(other)),
            "reach_voc": mean_or_nan(reach),
            "reach_episodes": len(reach),
            "decoy_episodes": len(passes),
            "decoy_pass_rate": mean_or_nan(passes),
            "decoy_margin": mean_or_nan(margins),
            "decoy_apparent_steps": mean_or_nan(apparent),
        }
        if task in matched_goals:
            zg = encoder.encode_images(matched_goals[task])
            d_matched = [encoder.distance(z[i], zg[i][None]).cpu().numpy() for i in range(n)]
            same = [spearman(np.arange(len(d)), -d) for d in d_matched]
            results[task]["voc_same_target"] = float(np.mean(same))
            results[task]["voc_same_target_min"] = float(np.min(same))
            if task in matched_decoys:
                zmd = encoder.encode_images(matched_decoys[task])
                keep = np.asarray(matched_defined.get(task, np.ones(n, dtype=bool)), dtype=bool)
                tests = [_decoy_test(float(encoder.distance(zmd[i], zg[i]).cpu()), d_matched[i], halves[i])
                         for i in range(n) if keep[i]]
                results[task]["decoy_same_target_episodes"] = len(tests)
                results[task]["decoy_same_target_pass_rate"] = mean_or_nan([passed for passed, _ in tests])
                results[task]["decoy_same_target_margin"] = mean_or_nan([margin for _, margin in tests])
    return results


def mean_or_nan(values: Sequence[float]) -> float:
    """The mean of ``values``, NaN when there are none (a figure no episode measured)."""
    return float(np.mean(values)) if len(values) else float("nan")


def random_twin(encoder: Any) -> Any:
    """A randomly initialised encoder with the same architecture / metric / text tower (an ensemble: of each member)."""
    from vip_rl.encoders import build_encoder, encoder_from_config

    cfg = encoder.config
    if cfg.get("arch") == "ensemble":
        members = [{**{k: v for k, v in member.items() if k not in ("training", "name")}, "seed": 12345 + index}
                   for index, member in enumerate(cfg["members"])]  # untrained: no member's training record
        return encoder_from_config({**cfg, "members": members, "name": "random"}, device=encoder.device)
    return build_encoder(cfg["arch"], metric=cfg["metric"], embed_dim=cfg["embed_dim"], image_size=cfg["image_size"],
                         text=cfg.get("text"), seed=12345, normalisation=cfg.get("normalisation"),
                         cnn_channels=cfg.get("cnn_channels"), text_hidden=cfg.get("text_hidden"), head_hidden=cfg.get("head_hidden"))


def summarise(per_task: dict[str, dict[str, float]], held_out: str) -> dict[str, float]:
    """Per-task value metrics -> the figures the targets judge (trained tasks vs the held-out one).

    When a trained task has ``voc_same_target`` (PushBlock, see :func:`same_target_goals`), also
    ``voc_other_trained_min_same_target``: the min over trained tasks of ``voc_other`` with that task's entry
    replaced by its same-target VOC. When a task has ``decoy_same_target_pass_rate``, also
    ``decoy_pass_rate_same_target``: ``decoy_pass_rate`` (pooled over all tasks, weighted by episodes) with that
    task's rate replaced by its same-target one.
    """
    trained = [t for t in per_task if t != held_out]
    extra = {}
    if any("voc_same_target" in per_task[t] for t in trained):
        extra["voc_other_trained_min_same_target"] = float(np.min([per_task[t].get("voc_same_target", per_task[t]["voc_other"]) for t in trained]))
    if any("decoy_same_target_pass_rate" in v for v in per_task.values()):
        extra["decoy_pass_rate_same_target"] = pooled_decoy_pass_rate(
            {t: v.get("decoy_same_target_pass_rate", v["decoy_pass_rate"]) for t, v in per_task.items()},
            {t: {"decoy_episodes": v.get("decoy_same_target_episodes", v.get("decoy_episodes", v["episodes"]))}
             for t, v in per_task.items()})
    return {
        "voc_other_trained_mean": float(np.mean([per_task[t]["voc_other"] for t in trained])),
        "voc_other_trained_min": float(np.min([per_task[t]["voc_other"] for t in trained])),
        # PushBlock re-randomises its push target every episode: another episode's goal is another task instance
        "voc_other_trained_min_excl_pushblock": float(np.min([per_task[t]["voc_other"] for t in trained if t != "PushBlock"])),
        "voc_other_heldout": per_task[held_out]["voc_other"] if held_out in per_task else float("nan"),
        "voc_own_mean": float(np.mean([v["voc_own"] for v in per_task.values()])),
        "reach_voc_mean": float(np.nanmean([v["reach_voc"] for v in per_task.values()])),
        "decoy_pass_rate": pooled_decoy_pass_rate({t: v["decoy_pass_rate"] for t, v in per_task.items()}, per_task),
        **extra,
    }


def decoy_counts(rates: dict[str, Any], per_task: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The episodes each task's decoy counts in a pooled rate: ``per_task[task]["decoy_episodes"]`` (the episodes whose
    decoy is one, :func:`decoy_defined`; ``"episodes"`` in rows scored before session 35, which counted them all), for
    the tasks whose count is positive and whose rate in ``rates`` is a number (NaN, or null read back from JSON, where
    the task has no decoy). The one count behind :func:`pooled_decoy_pass_rate` and ``dev_select``'s decoy noise band."""
    def has_rate(rate: Any) -> bool:
        return rate is not None and bool(np.isfinite(float(rate)))

    counts = {t: float(v.get("decoy_episodes", v.get("episodes", 0))) for t, v in per_task.items()}
    return {t: c for t, c in counts.items() if c > 0 and has_rate(rates.get(t))}


def pooled_decoy_pass_rate(rates: dict[str, float], per_task: dict[str, dict[str, float]]) -> float:
    """Share of all decoys that pass: the per-task ``rates`` weighted by :func:`decoy_counts`. Tasks without a decoy
    (rate NaN, count 0) drop out; NaN when no task has one."""
    counts = decoy_counts(rates, per_task)
    if not counts:
        return float("nan")
    return float(np.sum([rates[t] * c for t, c in counts.items()]) / np.sum(list(counts.values())))
