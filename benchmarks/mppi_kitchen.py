"""MPPI on FrankaKitchen (extra ``kitchen``): the true-progress oracle vs ``liv-sim`` with a text goal.

The VIP evaluation's K=32, H=12, beta 0.5, a few short episodes per cell (a kitchen command costs about a
second on 2 CPU cores: a smoke-size measurement). No image goals: the suite's experts do not cover the
kitchen. The bundled encoders never saw it, so this measures zero-shot transfer.

Writes ``benchmarks/results/mppi_kitchen.json`` and ``.md`` (``--out`` to write elsewhere).

Usage:
  MUJOCO_GL=egl .venv/bin/python benchmarks/mppi_kitchen.py [--quick] [--tasks microwave,kettle]
  .venv/bin/python benchmarks/mppi_kitchen.py --render-only
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Sequence

import torch

import _report
from _common import has_encoder, resolve_encoder, run_episode, summarise_episodes
from vip_rl.planning import MPPI, EmbeddingGoalCost, MPPIConfig, MujocoDynamics, OracleCost

KITCHEN_INSTRUCTIONS = {"microwave": "open the microwave", "kettle": "move the kettle to the top burner",
                        "light switch": "turn on the light switch", "slide cabinet": "slide the cabinet door open"}


def bench_kitchen(tasks: list[str], *, episodes: int, max_steps: int, num_samples: int, horizon: int, seed: int,
                  encoders: dict[str, Any]) -> dict[str, Any]:
    """One cell per (task, cost): ``episodes`` seeded episodes of at most ``max_steps`` steps."""
    import gymnasium as gym

    import vip_envs
    from vip_envs import kitchen

    if not kitchen.is_available():
        return {"skipped": "gymnasium-robotics not installed (pip install vip-rl[kitchen])"}
    ids = {task: env_id for env_id, task in vip_envs.KITCHEN_IDS.items()}
    cfg = MPPIConfig(action_dim=9, num_samples=num_samples, horizon=horizon, noise_beta=0.5, temperature=0.05)
    out: dict[str, Any] = {"episodes": episodes, "max_steps": max_steps, "K": num_samples, "H": horizon, "tasks": {}}
    for task in tasks:
        env = gym.make(ids[task], render_mode="rgb_array", image_size=64)
        env.reset(seed=seed)  # MujocoDynamics checks its backend by stepping a copy of the env from its current state
        cells: dict[str, Any] = {}
        with MujocoDynamics(env, nthread=2) as dyn:
            costs: dict[str, Any] = {"oracle (task progress)": lambda: OracleCost(key="task_progress", when="sum")}
            if "liv-sim" in encoders:
                costs["liv-sim text"] = lambda: EmbeddingGoalCost(encoders["liv-sim"], KITCHEN_INSTRUCTIONS[task])
            for name, make_cost in costs.items():
                t0 = time.perf_counter()
                rows = [run_episode(env, MPPI(cfg, dyn, make_cost(), seed=seed + ep), dyn, seed=seed + ep,
                                    max_steps=max_steps, record=False) for ep in range(episodes)]
                cells[name] = summarise_episodes(rows, seconds=time.perf_counter() - t0)
                print(f"[kitchen] {task} {name}: {cells[name]['success_rate']:.2f} progress "
                      f"{cells[name]['mean_progress']:.2f} ({cells[name]['seconds']:.0f}s)", flush=True)
        env.close()
        out["tasks"][task] = cells
    return out


def render(res: dict[str, Any]) -> str:
    k = res["kitchen"]
    lines = ["# MPPI on FrankaKitchen (gymnasium-robotics)", "", _report.generated_by(res["provenance"]), ""]
    if "skipped" in k:
        return "\n".join(lines + [f"Not measured: {k['skipped']}.", ""])
    names = list(next(iter(k["tasks"].values())).keys())
    lines += [f"MPPI K={k['K']}, H={k['H']} (the VIP evaluation uses K=32, H=12), beta 0.5, {k['episodes']} episodes of at most "
              f"{k['max_steps']} steps per cell (a kitchen command costs about a second on 2 CPU cores, so this is "
              "a smoke-size measurement); cell = success rate / mean final task progress / ms per command. The "
              "bundled encoders never saw the kitchen: this measures zero-shot transfer.", ""]
    lines += _report.table(["task", *names], [[task, *(f"{c['success_rate']:.2f} / {c['mean_progress']:.2f} / {c['ms_per_command']:.0f}"
                                                       for c in cells.values())] for task, cells in k["tasks"].items()])
    return "\n".join(lines + [""])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    p.add_argument("--tasks", default="microwave", help=f"comma-separated FrankaKitchen tasks ({', '.join(KITCHEN_INSTRUCTIONS)})")
    p.add_argument("--episodes", type=int, default=2)
    p.add_argument("--max-steps", type=int, default=80)
    p.add_argument("--samples", type=int, default=32, help="K")
    p.add_argument("--horizon", type=int, default=12, help="H")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--torch-threads", type=int, default=1, help="1 is fastest on the shared 2-core machine")
    _report.add_output_args(p, "mppi_kitchen")
    args = p.parse_args(argv)
    if args.render_only:
        return _report.render_only(args.out, render)
    torch.set_num_threads(args.torch_threads)
    unknown = [t for t in args.tasks.split(",") if t not in KITCHEN_INSTRUCTIONS]
    if unknown:
        p.error(f"--tasks: unknown {unknown}; known: {list(KITCHEN_INSTRUCTIONS)}")
    encoders = {"liv-sim": resolve_encoder("liv-sim", device=torch.device("cpu"), seed=args.seed)} if has_encoder("liv-sim") else {}
    res = {"provenance": _report.provenance(__file__, argv, quick=args.quick),
           "kitchen": bench_kitchen(args.tasks.split(","), episodes=1 if args.quick else args.episodes,
                                    max_steps=3 if args.quick else args.max_steps, num_samples=8 if args.quick else args.samples,
                                    horizon=3 if args.quick else args.horizon, seed=args.seed, encoders=encoders)}
    _report.write(args.out, res, render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
