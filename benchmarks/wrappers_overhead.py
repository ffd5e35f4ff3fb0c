"""Reward-wrapper overhead: ``GoalReward.step`` vs the bare loop it replaces.

The bare loop is ``env.step`` + ``render`` + encode + distance of the same frames, on an identical env (same
seed, same actions); the two are stepped alternately and each step is timed, so load spikes from other
processes hit both. Overhead = median over steps of wrapped/bare time - 1 (paired by state); target <= 5%.
Random ``cnn`` encoder (the bundled architecture), 96 px, the first suite task.

Writes ``benchmarks/results/wrappers_overhead.json`` and ``.md`` (``--out`` to write elsewhere).

Usage:
    python benchmarks/wrappers_overhead.py [--quick] [--out /tmp/x]
    python benchmarks/wrappers_overhead.py --render-only
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Sequence

import numpy as np
import torch

import _report
from _wrapper_setup import default_tasks, make_env, meta_line, random_encoder, run_meta
from vip_rl.encoders.base import Encoder
from vip_rl.wrappers import GoalReward

TARGET = 0.05


def bench_overhead(task: str, encoder: Encoder, *, image_size: int, steps: int, reps: int) -> dict[str, Any]:
    """Two identical envs (same seed, same actions), one bare and one wrapped, stepped alternately.

    Each step is timed on its own, and the pair's order alternates, so load spikes from other
    processes hit both; the overhead is the median over steps of wrapped/bare time (paired by state).
    """
    bare_env, inner = make_env(task, image_size), make_env(task, image_size)
    bare_env.reset(seed=0)
    goal = bare_env.render()
    goal_z = encoder.encode_images(goal[None])
    wrapped = GoalReward(inner, encoder, goal)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (steps, *bare_env.action_space.shape)).astype(np.float32)
    state: dict[str, Any] = {}

    def bare_step(action: np.ndarray) -> None:
        _, env_reward, *_ = bare_env.step(action)
        distance = encoder.distance(encoder.encode_images(bare_env.render()[None]), goal_z)
        state["reward"] = float((state["previous"] - distance)[0])  # the value the wrapper returns
        state["previous"] = distance

    def wrapped_step(action: np.ndarray) -> None:
        wrapped.step(action)

    bare_times, wrapped_times = [], []
    for rep in range(reps + 1):  # the first repetition warms up
        bare_env.reset(seed=rep)
        state["previous"] = encoder.distance(encoder.encode_images(bare_env.render()[None]), goal_z)
        wrapped.reset(seed=rep)
        for index, action in enumerate(actions):
            pair = [(bare_step, bare_times), (wrapped_step, wrapped_times)]
            for step, times in pair if index % 2 == 0 else pair[::-1]:
                start = time.perf_counter()
                step(action)
                if rep > 0:
                    times.append(time.perf_counter() - start)
    bare_env.close()
    wrapped.close()
    bare_arr, wrapped_arr = np.asarray(bare_times), np.asarray(wrapped_times)
    overhead = float(np.median(wrapped_arr / bare_arr) - 1.0)
    # pairs where neither step was hit by a scheduling spike (> 2x its median)
    calm = (bare_arr < 2 * np.median(bare_arr)) & (wrapped_arr < 2 * np.median(wrapped_arr))
    return {
        "env": task,
        "image_size": image_size,
        "steps_timed": int(bare_arr.size),
        "bare_ms_per_step": 1e3 * float(np.median(bare_arr)),
        "wrapped_ms_per_step": 1e3 * float(np.median(wrapped_arr)),
        "overhead": overhead,
        "overhead_total_time": float(wrapped_arr.sum() / bare_arr.sum() - 1.0),
        "overhead_total_time_calm_pairs": float(wrapped_arr[calm].sum() / bare_arr[calm].sum() - 1.0),
        "calm_pairs": int(calm.sum()),
        "target": "<= 5%",
        "met": overhead <= 0.05,
    }


def render(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = ["# Reward wrappers: overhead of GoalReward", "", _report.generated_by(result["provenance"]), "", meta_line(meta), ""]
    over = result["overhead"]
    lines += [
        "**Overhead** of `GoalReward.step` over the bare loop (env.step + render + encode + distance, same frames)",
        "",
        f"(two identical envs stepped alternately, {over['steps_timed']} steps each, each step timed; random `cnn` encoder)",
        "",
        "| env | image | bare ms/step (median) | wrapped ms/step (median) | overhead: median of per-step ratios | total time, all pairs | total time, pairs without a >2x spike | target | met |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {over['env']} | {over['image_size']} | {over['bare_ms_per_step']:.2f} | {over['wrapped_ms_per_step']:.2f} | "
        f"{100 * over['overhead']:+.1f}% | {100 * over['overhead_total_time']:+.1f}% | "
        f"{100 * over['overhead_total_time_calm_pairs']:+.1f}% ({over['calm_pairs']}/{over['steps_timed']} pairs) | "
        f"<= 5% (on the median) | {'yes' if over['met'] else 'MISSED'} |",
        "",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small run (seconds)")
    parser.add_argument("--task", default=None, help="suite task (default: the first; 'Pusher' for Pusher-v5)")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=90, help="steps per repetition")
    parser.add_argument("--reps", type=int, default=10, help="repetitions (one more warms up)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1: on a small shared CPU more threads oversubscribe and time the scheduler)")
    _report.add_output_args(parser, "wrappers_overhead")
    args = parser.parse_args(argv)
    if args.render_only:
        return _report.render_only(args.out, render)
    tasks, env_note = default_tasks(args.quick)
    torch.set_grad_enabled(False)
    torch.set_num_threads(args.threads)
    meta = run_meta(quick=args.quick, threads=args.threads, env_note=env_note)
    overhead = bench_overhead(args.task or tasks[0], random_encoder(), image_size=args.image_size,
                              steps=50 if args.quick else args.steps, reps=4 if args.quick else args.reps)
    print(f"  {overhead}", flush=True)
    meta["load_average_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result = {"provenance": _report.provenance(__file__, argv, quick=args.quick), "meta": meta, "overhead": overhead}
    _report.write(args.out, result, render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
