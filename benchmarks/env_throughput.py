"""Benchmark of the vip_envs suite: env steps/s and collection frames/s, per task.

Writes benchmarks/results/env_throughput.json and benchmarks/results/env_throughput.md
(atomically). Every row is measured in the same run, side by side:

  steps/s (no render)      gym.make(..., obs_mode="state"), pre-drawn random actions, resets
                           on episode end included (target >= 10000 on the 2-core CI machine).
  steps/s (1 camera 96px)  gym.make(..., obs_mode="pixels", cameras=("front",), image_size=96):
                           every step renders one 96x96 frame (target >= 1000).
  collect frames/s         expert policy + one 96x96 camera, whole episodes (reset frames count),
                           i.e. what `vip-rl collect` does minus the HDF5 write.
  FrankaKitchen            gymnasium-robotics FrankaKitchen-v1 (extra `kitchen`): frames/s with its
                           default render settings vs vip_envs.kitchen's fast settings; "not installed"
                           when the extra is missing.

Each figure is the median over --repeats timed repeats (best also reported), since the machine
is shared. The load average at the start of the run is recorded.

Usage:
  MUJOCO_GL=egl .venv/bin/python benchmarks/env_throughput.py --quick
  MUJOCO_GL=egl .venv/bin/python benchmarks/env_throughput.py --steps 5000 --repeats 5
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import Callable

import numpy as np

import _common  # noqa: F401  (library path, MUJOCO_GL default before mujoco is imported)
import _report

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402

import vip_envs  # noqa: E402

TARGET_NO_RENDER = 10_000.0
TARGET_ONE_CAMERA = 1_000.0


def timed(fn: Callable[[], int], repeats: int) -> dict[str, float]:
    """Run ``fn`` (returns a count of steps/frames) ``repeats`` times.

    Returns rates per wall-clock second (``median``, ``best``, ``runs``: the figures compared
    with the targets) and per CPU-second of this process (``cpu_median``: all its threads,
    including llvmpipe's; less sensitive to other users of a shared machine).
    """
    fn()  # warm-up: renderer creation, first-call checks
    rates, cpu_rates = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        count = fn()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        rates.append(count / wall)
        cpu_rates.append(count / max(cpu, 1e-9))
    return {
        "median": float(np.median(rates)),
        "best": float(np.max(rates)),
        "runs": [round(r, 1) for r in rates],
        "cpu_median": float(np.median(cpu_rates)),
    }


def random_steps(env: gym.Env, steps: int, seed: int) -> Callable[[], int]:
    actions = np.random.default_rng(seed).uniform(-1, 1, size=(steps, 4)).astype(np.float32)

    def run() -> int:
        env.reset(seed=seed)
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
        return steps

    return run


def expert_collection(env: gym.Env, frames: int, seed: int) -> Callable[[], int]:
    def run() -> int:
        count, episode = 0, 0
        while count < frames:
            obs, _ = env.reset(seed=seed + episode)
            policy = vip_envs.expert(env, noise=0.1, seed=seed + episode)
            count += 1
            done = False
            while not done and count < frames:
                obs, _, terminated, truncated, _ = env.step(policy(obs))
                done = terminated or truncated
                count += 1
            episode += 1
        return count

    return run


def kitchen_rows(steps: int, repeats: int) -> list[dict]:
    """FrankaKitchen frames/s with default vs fast render settings (or 'not installed')."""
    try:
        from vip_envs import kitchen
    except ImportError as exc:  # the module itself is dependency-free; keep the benchmark running
        return [{"setting": s, "status": f"unavailable: {exc}"} for s in ("default", "fast")]
    if not kitchen.is_available():
        return [{"setting": s, "status": "not installed (pip install vip-rl[kitchen])"} for s in ("default", "fast")]
    rows = []
    for setting, fast in (("default", False), ("fast", True)):
        env = kitchen.make_kitchen(("microwave",), render_mode="rgb_array", image_size=96, fast_render=fast)
        actions = np.random.default_rng(0).uniform(-1, 1, size=(steps, env.action_space.shape[0]))

        def run(env=env, actions=actions) -> int:
            env.reset(seed=0)
            for action in actions:
                env.step(action)
                env.render()
            return len(actions)

        rate = timed(run, repeats)
        rows.append({"setting": setting, "status": "ok", "frames_per_s": rate})
        env.close()
    return rows


def render(result: dict) -> str:
    """The markdown report, from the results JSON alone."""
    meta, rows, kitchen, targets = result["meta"], result["rows"], result["kitchen"], result["targets"]
    min_no, min_cam = targets["no_render"]["worst_task"], targets["one_camera_96"]["worst_task"]

    def fmt(rate: dict) -> str:
        return f"{rate['median']:,.0f} (best {rate['best']:,.0f}; per CPU-s {rate['cpu_median']:,.0f})"

    lines = [
        "# Environment throughput (vip_envs)",
        "",
        f"Wall-clock median over {meta['repeats']} repeats of {meta['steps_per_repeat']} steps (best repeat and the rate per "
        f"CPU-second of this process in brackets; targets are judged on the wall-clock median); "
        f"timestep {meta['timestep_s']} s x frame_skip {meta['frame_skip']} = {meta['control_dt_s']} s per step; "
        f"load average at start {meta['loadavg_at_start']} on {meta['cpu_count']} cores (shared machine).",
        "",
        "| task | steps/s, no render | steps/s, 1 camera 96x96 | collect frames/s (expert + 96x96) |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['task']} | {fmt(r['steps_per_s_no_render'])} | {fmt(r['steps_per_s_one_camera_96'])} "
                     f"| {fmt(r['collect_frames_per_s_96'])} |")
    lines += [
        "",
        "| target | worst task (median) | met |",
        "|---|---:|---|",
        f"| >= {TARGET_NO_RENDER:,.0f} steps/s without rendering | {min_no:,.0f} | "
        f"{'yes' if targets['no_render']['met'] else 'MISSED'} |",
        f"| >= {TARGET_ONE_CAMERA:,.0f} steps/s with one 96x96 camera | {min_cam:,.0f} | "
        f"{'yes' if targets['one_camera_96']['met'] else 'MISSED'} |",
        "",
        "| FrankaKitchen-v1 (microwave, 96x96 render each step) | frames/s |",
        "|---|---:|",
    ]
    for k in kitchen:
        value = fmt(k["frames_per_s"]) if k["status"] == "ok" else k["status"]
        lines.append(f"| {k['setting']} render settings | {value} |")
    if "provenance" in result:
        lines[1:1] = ["", _report.generated_by(result["provenance"])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small run (steps=600, repeats=2)")
    parser.add_argument("--steps", type=int, default=4000, help="env steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", default=",".join(vip_envs.TASKS), help="comma-separated task names")
    _report.add_output_args(parser, "env_throughput")
    args = parser.parse_args(argv)
    if args.render_only:
        return _report.render_only(args.out, render)
    if args.quick:
        args.steps, args.repeats = 600, 2
    if args.steps < 1 or args.repeats < 1:
        parser.error(f"--steps and --repeats must be >= 1, got {args.steps}, {args.repeats}")
    tasks = [t for t in args.tasks.split(",") if t]
    for task in tasks:
        vip_envs.env_id(task)  # validates

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    rows = []
    for task in tasks:
        env_state = gym.make(vip_envs.env_id(task))
        no_render = timed(random_steps(env_state, args.steps, seed=0), args.repeats)
        env_state.close()
        env_pix = gym.make(vip_envs.env_id(task), obs_mode="pixels", cameras=("front",), image_size=96)
        one_camera = timed(random_steps(env_pix, args.steps, seed=0), args.repeats)
        collect = timed(expert_collection(env_pix, args.steps, seed=0), args.repeats)
        env_pix.close()
        rows.append({"task": task, "steps_per_s_no_render": no_render, "steps_per_s_one_camera_96": one_camera,
                     "collect_frames_per_s_96": collect})
        print(f"{task:12s} no-render {no_render['median']:8.0f}  1cam {one_camera['median']:7.0f}  "
              f"collect {collect['median']:7.0f}", flush=True)
    kitchen = kitchen_rows(min(args.steps, 30), args.repeats)  # the default render runs at ~1 frame/s

    base = gym.make(vip_envs.env_id(tasks[0])).unwrapped
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": platform.node() or "unknown",
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "loadavg_at_start": [round(x, 2) for x in load],
        "mujoco": mujoco.__version__,
        "gymnasium": gym.__version__,
        "MUJOCO_GL": os.environ.get("MUJOCO_GL"),
        "quick": bool(args.quick),
        "steps_per_repeat": args.steps,
        "repeats": args.repeats,
        "timestep_s": float(base.model.opt.timestep),
        "frame_skip": base.frame_skip,
        "control_dt_s": base.dt,
    }
    med_no = float(np.median([r["steps_per_s_no_render"]["median"] for r in rows]))
    med_cam = float(np.median([r["steps_per_s_one_camera_96"]["median"] for r in rows]))
    min_no = float(np.min([r["steps_per_s_no_render"]["median"] for r in rows]))
    min_cam = float(np.min([r["steps_per_s_one_camera_96"]["median"] for r in rows]))
    targets = {
        "no_render": {"target": TARGET_NO_RENDER, "worst_task": min_no, "met": min_no >= TARGET_NO_RENDER},
        "one_camera_96": {"target": TARGET_ONE_CAMERA, "worst_task": min_cam, "met": min_cam >= TARGET_ONE_CAMERA},
    }
    result = {"meta": meta, "rows": rows, "kitchen": kitchen, "targets": targets,
              "median_over_tasks": {"no_render": med_no, "one_camera_96": med_cam}}

    result["provenance"] = _report.provenance(__file__, argv, quick=bool(args.quick))
    _report.write(args.out, result, render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
