"""The value metrics the representation and shortcut benchmarks share: held-out evaluation episodes, decoy states
(the end effector where the goal has it, objects at their start), value-order correlation (VOC), the decoy test,
and a randomly initialised twin of an encoder (the anchor every figure stands beside).

``representation.py`` reports them for the bundled encoders; ``shortcut.py`` for its training variants and cameras.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

import _common  # noqa: F401  (library path, MUJOCO_GL default)
from vip_rl.diagnostics import spearman

OBJECT_COLUMNS = ("drawer", "door", "button", "switch", "block_x", "block_y", "block_z")
EVAL_SEED = 777_000

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
def value_metrics(encoder: Any, episodes: dict[str, list[Any]], *, embodiment: str = "gripper", decoys: dict[str, np.ndarray] | None = None) -> dict[str, dict[str, float]]:
    """Per task: voc_own, voc_other, reach_voc, decoy pass rate and mean margin."""
    results: dict[str, dict[str, float]] = {}
    for task, eps in episodes.items():
        n = len(eps)
        if n < 2:
            continue
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
    return results


def random_twin(encoder: Any) -> Any:
    """A randomly initialised encoder with the same architecture / metric / text tower."""
    from vip_rl.encoders import build_encoder

    cfg = encoder.config
    return build_encoder(cfg["arch"], metric=cfg["metric"], embed_dim=cfg["embed_dim"], image_size=cfg["image_size"],
                         text=cfg.get("text"), seed=12345, normalisation=cfg.get("normalisation"),
                         cnn_channels=cfg.get("cnn_channels"), text_hidden=cfg.get("text_hidden"), head_hidden=cfg.get("head_hidden"))


def summarise(per_task: dict[str, dict[str, float]], held_out: str) -> dict[str, float]:
    """Per-task value metrics -> the figures the targets judge (trained tasks vs the held-out one)."""
    trained = [t for t in per_task if t != held_out]
    return {
        "voc_other_trained_mean": float(np.mean([per_task[t]["voc_other"] for t in trained])),
        "voc_other_trained_min": float(np.min([per_task[t]["voc_other"] for t in trained])),
        # PushBlock re-randomises its push target every episode: another episode's goal is another task instance
        "voc_other_trained_min_excl_pushblock": float(np.min([per_task[t]["voc_other"] for t in trained if t != "PushBlock"])),
        "voc_other_heldout": per_task[held_out]["voc_other"] if held_out in per_task else float("nan"),
        "voc_own_mean": float(np.mean([v["voc_own"] for v in per_task.values()])),
        "reach_voc_mean": float(np.nanmean([v["reach_voc"] for v in per_task.values()])),
        "decoy_pass_rate": float(np.sum([v["decoy_pass_rate"] * v["episodes"] for v in per_task.values()]) / np.sum([v["episodes"] for v in per_task.values()])),
    }
