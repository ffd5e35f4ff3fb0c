"""The value metrics the representation and shortcut benchmarks share: held-out evaluation episodes, decoy states
(the end effector where the goal has it, objects at their start), value-order correlation (VOC), the decoy test,
PushBlock goal frames with the same push target as a given episode (:func:`same_target_goals`), and a randomly
initialised twin of an encoder (the anchor every figure stands beside).

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


def decoy_states(layout: Any, episodes: list[Any], partners: Sequence[int]) -> np.ndarray:
    """Simulator states ``[N, S]``: episode i's first state with the end effector (and fingers) of episode
    ``partners[i]``'s final state (``layout``: the env's ``unwrapped.layout``)."""
    cols = 1 + np.concatenate([layout.ee, layout.fingers])  # state = [time, qpos, qvel, ...]
    states = []
    for i, j in enumerate(partners):
        state = np.array(episodes[i].sim_states[0], dtype=np.float64)
        state[cols] = episodes[j].sim_states[-1][cols]
        states.append(state)
    return np.stack(states)


def decoy_frames(task: str, episodes: list[Any], partners: list[int], *, embodiment: str, camera: str = "front") -> np.ndarray:
    """The :func:`decoy_states` rendered at 96 px from ``camera``."""
    import gymnasium
    import vip_envs

    env = gymnasium.make(vip_envs.env_id(task), render_mode="rgb_array", image_size=96, embodiment=embodiment)
    env.reset(seed=0)
    unwrapped = env.unwrapped
    frames = np.asarray(unwrapped.render_states(decoy_states(unwrapped.layout, episodes, partners), camera=camera))
    env.close()
    return frames



@torch.no_grad()
def value_metrics(encoder: Any, episodes: dict[str, list[Any]], *, embodiment: str = "gripper", decoys: dict[str, np.ndarray] | None = None,
                  matched_goals: dict[str, np.ndarray] | None = None) -> dict[str, dict[str, float]]:
    """Per task: voc_own, voc_other, reach_voc, decoy pass rate and mean margin.

    ``matched_goals`` (task -> uint8 ``[n, H, W, 3]``, one goal frame per episode of that task, e.g.
    :func:`same_target_goals` ``.frames``) adds ``voc_same_target`` to those tasks: the mean over episodes of
    Spearman(frame index, ``-d(phi(o_t), phi(goal_i))``).
    """
    results: dict[str, dict[str, float]] = {}
    for task, eps in episodes.items():
        n = len(eps)
        if n < 2:
            continue
        if matched_goals is not None and task in matched_goals and len(matched_goals[task]) != n:
            raise ValueError(f"matched_goals[{task!r}] must hold one goal frame per episode ({n}), got {len(matched_goals[task])}")
        partners = [(i + 1) % n for i in range(n)]
        z = [encoder.encode_images(e.frames["front"]) for e in eps]
        goals = torch.stack([zi[-1] for zi in z])
        own, other, reach, passes, margins = [], [], [], [], []
        frames_decoy = decoys[task] if decoys is not None else decoy_frames(task, eps, partners, embodiment=embodiment)
        zd = encoder.encode_images(frames_decoy)
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
            p = e.task_progress.astype(np.float64)
            p = (p - p[0]) / max(p[-1] - p[0], 1e-9)
            half = int(np.argmax(p >= 0.5))
            d_decoy = float(encoder.distance(zd[i], g).cpu())
            passes.append(d_decoy > d[half])
            margins.append((d_decoy - d[half]) / max(float(d[0]), 1e-9))
        results[task] = {
            "episodes": n,
            "voc_own": float(np.mean(own)),
            "voc_other": float(np.mean(other)),
            "voc_other_min": float(np.min(other)),
            "reach_voc": float(np.mean(reach)) if reach else float("nan"),
            "reach_episodes": len(reach),
            "decoy_pass_rate": float(np.mean(passes)),
            "decoy_margin": float(np.mean(margins)),
        }
        if matched_goals is not None and task in matched_goals:
            zg = encoder.encode_images(matched_goals[task])
            same = [spearman(np.arange(len(z[i])), -encoder.distance(z[i], zg[i][None]).cpu().numpy()) for i in range(n)]
            results[task]["voc_same_target"] = float(np.mean(same))
            results[task]["voc_same_target_min"] = float(np.min(same))
    return results


def random_twin(encoder: Any) -> Any:
    """A randomly initialised encoder with the same architecture / metric / text tower."""
    from vip_rl.encoders import build_encoder

    cfg = encoder.config
    return build_encoder(cfg["arch"], metric=cfg["metric"], embed_dim=cfg["embed_dim"], image_size=cfg["image_size"],
                         text=cfg.get("text"), seed=12345, normalisation=cfg.get("normalisation"),
                         cnn_channels=cfg.get("cnn_channels"), text_hidden=cfg.get("text_hidden"), head_hidden=cfg.get("head_hidden"))


def summarise(per_task: dict[str, dict[str, float]], held_out: str) -> dict[str, float]:
    """Per-task value metrics -> the figures the targets judge (trained tasks vs the held-out one).

    When a trained task has ``voc_same_target`` (PushBlock, see :func:`same_target_goals`), also
    ``voc_other_trained_min_same_target``: the min over trained tasks of ``voc_other`` with that task's entry
    replaced by its same-target VOC.
    """
    trained = [t for t in per_task if t != held_out]
    extra = {}
    if any("voc_same_target" in per_task[t] for t in trained):
        extra["voc_other_trained_min_same_target"] = float(np.min([per_task[t].get("voc_same_target", per_task[t]["voc_other"]) for t in trained]))
    return {
        "voc_other_trained_mean": float(np.mean([per_task[t]["voc_other"] for t in trained])),
        "voc_other_trained_min": float(np.min([per_task[t]["voc_other"] for t in trained])),
        # PushBlock re-randomises its push target every episode: another episode's goal is another task instance
        "voc_other_trained_min_excl_pushblock": float(np.min([per_task[t]["voc_other"] for t in trained if t != "PushBlock"])),
        "voc_other_heldout": per_task[held_out]["voc_other"] if held_out in per_task else float("nan"),
        "voc_own_mean": float(np.mean([v["voc_own"] for v in per_task.values()])),
        "reach_voc_mean": float(np.nanmean([v["reach_voc"] for v in per_task.values()])),
        "decoy_pass_rate": float(np.sum([v["decoy_pass_rate"] * v["episodes"] for v in per_task.values()]) / np.sum([v["episodes"] for v in per_task.values()])),
        **extra,
    }
