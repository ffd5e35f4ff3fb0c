"""Reward-wrapper quality: does the wrapped reward rank episodes as the task does?

Per-episode return of the wrapped reward under each mode vs the true final ``task_progress`` and ``success``
(Spearman, per task, pooled over expert, noisy-expert and random rollouts), for the bundled ``td-sim`` and
``liv-sim`` (image and text goals), ``vip-sim`` (image goal) and a random encoder, next to the env's own
reward (oracle anchor). Recorded frames are replayed through ``GoalReward`` so every encoder and mode sees
the same episodes.

Writes ``benchmarks/results/wrappers_quality.json`` and ``.md`` (``--out`` to write elsewhere).

Usage:
    python benchmarks/wrappers_quality.py --quick --out /tmp/wrappers_quality
    python benchmarks/wrappers_quality.py --encoders vip-sim liv-sim random /path/to/checkpoint
    python benchmarks/wrappers_quality.py --render-only
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

import _report
from _common import resolve_encoder
from _wrapper_setup import ReplayEnv, default_tasks, make_env, meta_line, random_encoder, rollout, run_meta, suite_available
from vip_rl.diagnostics import spearman as _spearman
from vip_rl.encoders.base import Encoder
from vip_rl.wrappers import MODE_INFO_KEYS, GoalReward

MODES = tuple(MODE_INFO_KEYS)


def load_named_encoder(name: str) -> tuple[Encoder | None, str]:
    """-> (encoder, "") or (None, why it is not available)."""
    if name == "random":
        return random_encoder(), ""
    try:
        return resolve_encoder(name), ""
    except (ImportError, FileNotFoundError, ValueError, OSError, KeyError, RuntimeError) as error:
        return None, f"{type(error).__name__}: {error}"


class MemoEncoder(Encoder):
    """The same encoder, memoising ``encode_images`` per frame batch (bytes + shape).

    The quality part replays the same recorded frames under each mode; memoising makes that cost one
    forward per frame per encoder instead of one per mode. Everything else runs the wrapper's code.
    """

    def __init__(self, inner: Encoder) -> None:
        super().__init__(
            inner.vision,
            embed_dim=inner.embed_dim,
            metric=inner.metric,
            image_size=inner.image_size,
            mean=inner.mean.flatten().tolist(),
            std=inner.std.flatten().tolist(),
            text=inner.text,
            config=inner.config,
        )
        self._memo: dict[bytes, torch.Tensor] = {}

    def encode_images(self, images: Any, **kwargs: Any) -> torch.Tensor:
        array = np.ascontiguousarray(images)
        key = hashlib.sha1(array.data).digest() + str(array.shape).encode()
        if key not in self._memo:
            self._memo[key] = super().encode_images(array, **kwargs)
        return self._memo[key]


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """``vip_rl.diagnostics.spearman``, or None where it is undefined (fewer than 3 values, or a constant one)."""
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return _spearman(x, y)


@dataclass
class QualitySetup:
    tasks: list[str]
    episodes_per_policy: int
    noise: float
    image_size: int
    max_steps: int


def collect_quality_data(setup: QualitySetup) -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = {}
    for task in setup.tasks:
        env = make_env(task, setup.image_size)
        goal_episode = rollout(env, "expert", 10_000, noise=0.0, max_steps=setup.max_steps)
        episodes = []
        for k, policy_kind in enumerate(("expert", "noisy", "random")):
            for episode in range(setup.episodes_per_policy):
                episodes.append(
                    rollout(env, policy_kind, 100 * k + episode, noise=setup.noise, max_steps=setup.max_steps)
                )
        env.close()
        instruction = None
        if task != "Pusher":
            import vip_envs

            instruction = vip_envs.instructions(task, "train")[0]
        data[task] = {
            "goal_image": goal_episode["frames"][-1],
            "goal_success": goal_episode["success"],
            "instruction": instruction,
            "episodes": episodes,
        }
        print(
            f"  {task}: {len(episodes)} episodes, success "
            + ", ".join(
                f"{p}={np.mean([e['success'] for e in episodes if e['policy'] == p]):.2f}"
                for p in ("expert", "noisy", "random")
            ),
            flush=True,
        )
    return data


def episode_returns(encoder: Encoder, goal: Any, mode: str, episodes: list[dict[str, Any]], **kwargs: Any) -> np.ndarray:
    env = GoalReward(ReplayEnv(episodes), encoder, goal, mode=mode, **kwargs)
    returns = []
    for index in range(len(episodes)):
        env.reset(options={"episode": index})
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(np.zeros(1, np.float32))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return np.asarray(returns)


def bench_quality(data: dict[str, dict[str, Any]], encoder_names: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    # oracle anchor: the env's own dense reward
    for task, task_data in data.items():
        episodes = task_data["episodes"]
        progress = np.asarray([e["task_progress"] for e in episodes])
        success = np.asarray([float(e["success"]) for e in episodes])
        returns = np.asarray([e["rewards"].sum() for e in episodes])
        per_step = returns / np.asarray([len(e["rewards"]) for e in episodes])
        rows.append(
            {"encoder": "env reward (oracle)", "goal": "-", "mode": "-", "task": task,
             "spearman_progress": spearman(returns, progress), "spearman_success": spearman(returns, success),
             "spearman_progress_per_step": spearman(per_step, progress),
             "spearman_success_per_step": spearman(per_step, success), "available": True}
        )
    for name in encoder_names:
        encoder, why = load_named_encoder(name)
        if encoder is not None:
            encoder = MemoEncoder(encoder)
        goal_kinds = ["image", "text"] if encoder is None or encoder.has_text else ["image"]
        if encoder is None and name == "vip-sim":
            goal_kinds = ["image"]
        for goal_kind in goal_kinds:
            for mode in MODES:
                for task, task_data in data.items():
                    row = {"encoder": name, "goal": goal_kind, "mode": mode, "task": task, "available": encoder is not None}
                    if encoder is None:
                        row["note"] = f"not available ({why})"
                        rows.append(row)
                        continue
                    goal = task_data["goal_image"] if goal_kind == "image" else task_data["instruction"]
                    if goal is None:
                        row.update(available=False, note="no instruction for this env")
                        rows.append(row)
                        continue
                    if goal_kind == "text" and mode == "success":
                        row.update(available=False, note="n/a: success needs a calibrated threshold (image goals only)")
                        rows.append(row)
                        continue
                    episodes = task_data["episodes"]
                    returns = episode_returns(encoder, goal, mode, episodes)
                    progress = np.asarray([e["task_progress"] for e in episodes])
                    success = np.asarray([float(e["success"]) for e in episodes])
                    per_step = returns / np.asarray([len(e["rewards"]) for e in episodes])
                    row.update(
                        spearman_progress=spearman(returns, progress),
                        spearman_success=spearman(returns, success),
                        spearman_progress_per_step=spearman(per_step, progress),
                        spearman_success_per_step=spearman(per_step, success),
                        mean_return={p: float(np.mean([r for r, e in zip(returns, episodes) if e["policy"] == p]))
                                     for p in ("expert", "noisy", "random")},
                    )
                    rows.append(row)
                print(f"  quality: {name} / {goal_kind} goal / {mode} done", flush=True)
    return rows


def summarise_quality(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean over tasks per (encoder, goal, mode); None where undefined on every task."""
    summary: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        key = (row["encoder"], row["goal"], row["mode"])
        entry = summary.setdefault(key, {"encoder": key[0], "goal": key[1], "mode": key[2], "progress": [], "success": [],
                                         "progress_per_step": [], "success_per_step": [], "note": row.get("note")})
        for metric in ("progress", "success", "progress_per_step", "success_per_step"):
            value = row.get(f"spearman_{metric}")
            if value is not None:
                entry[metric].append(value)
    out = []
    for entry in summary.values():
        out.append({
            "encoder": entry["encoder"], "goal": entry["goal"], "mode": entry["mode"],
            "spearman_progress_mean": float(np.mean(entry["progress"])) if entry["progress"] else None,
            "spearman_success_mean": float(np.mean(entry["success"])) if entry["success"] else None,
            "spearman_progress_per_step_mean": float(np.mean(entry["progress_per_step"])) if entry["progress_per_step"] else None,
            "spearman_success_per_step_mean": float(np.mean(entry["success_per_step"])) if entry["success_per_step"] else None,
            "tasks_with_value": len(entry["progress"]),
            "note": entry["note"],
        })
    return out


def render(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = ["# Reward wrappers: reward quality", "", _report.generated_by(result["provenance"]), "", meta_line(meta), ""]
    quality = result["quality_summary"]
    q_meta = result["quality_setup"]
    lines += [
        f"**Reward quality**: Spearman of per-episode return vs final task_progress / success, mean over "
        f"{len(q_meta['tasks'])} task(s) ({', '.join(q_meta['tasks'])}); {q_meta['episodes_per_policy']} expert + "
        f"{q_meta['episodes_per_policy']} noisy (noise {q_meta['noise']}) + {q_meta['episodes_per_policy']} random episodes per task",
        "",
        "Return = sum of the wrapper's rewards over the episode. Successful episodes terminate early, so sums of "
        "per-step terms (distance, similarity, success, the env's dense reward) also measure episode length; the "
        "per-step columns divide the return by the episode length. `progress` telescopes to d(o_0, g) - d(o_T, g).",
        "",
        "| encoder | goal | mode | return vs progress | return vs success | per-step vs progress | per-step vs success | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in quality:
        note = (row["note"] or "").split(";")[0]
        lines.append(
            f"| {row['encoder']} | {row['goal']} | {row['mode']} | {_report.fmt(row['spearman_progress_mean'])} | "
            f"{_report.fmt(row['spearman_success_mean'])} | {_report.fmt(row['spearman_progress_per_step_mean'])} | "
            f"{_report.fmt(row['spearman_success_per_step_mean'])} | {note} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small run (~minutes)")
    parser.add_argument("--encoders", nargs="+", default=["td-sim", "vip-sim", "liv-sim", "random"],
                        help="bundled names, checkpoint paths, or 'random'")
    parser.add_argument("--tasks", nargs="+", default=None, help="suite tasks (default: all; --quick: 2)")
    parser.add_argument("--episodes", type=int, default=None, help="episodes per policy kind per task (default 8; --quick: 3)")
    parser.add_argument("--noise", type=float, default=1.0, help="action noise of the noisy expert (1.0: about half succeed)")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1: on a small shared CPU more threads oversubscribe and time the scheduler)")
    _report.add_output_args(parser, "wrappers_quality")
    args = parser.parse_args(argv)
    if args.render_only:
        return _report.render_only(args.out, render)
    tasks, env_note = default_tasks(args.quick)
    tasks = args.tasks or tasks
    torch.set_grad_enabled(False)
    torch.set_num_threads(args.threads)
    meta = run_meta(quick=args.quick, threads=args.threads, env_note=env_note)
    setup = QualitySetup(tasks=tasks, episodes_per_policy=args.episodes or (3 if args.quick else 8), noise=args.noise,
                         image_size=args.image_size, max_steps=100)
    if suite_available():
        print("quality: collecting rollouts ...", flush=True)
        rows = bench_quality(collect_quality_data(setup), args.encoders)
    else:
        rows = [{"encoder": name, "goal": "-", "mode": "-", "task": "-", "available": False,
                 "note": "not measured: vip_envs (task_progress / experts) not importable"} for name in args.encoders]
    meta["load_average_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result = {"provenance": _report.provenance(__file__, argv, quick=args.quick), "meta": meta, "quality_setup": setup.__dict__,
              "quality_summary": summarise_quality(rows), "quality": rows}
    _report.write(args.out, result, render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
