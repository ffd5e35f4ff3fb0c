"""MujocoDynamics backends: ms per MPPI command of the step backend (copies of the env stepped with ``env.step`` on
worker threads) vs the ``mujoco.rollout`` backends (actuator, mocap), and what each construction check measured.

Per env: the construction check (max |qpos| difference of a 5-step rollout vs ``env.step`` on a copy, mean absolute
pixel difference between ``env.render()`` and the backend's frame of the same state), then ms per MPPI command with
a state-only cost (``OracleCost`` on qpos: rollout time only) and with an image cost (``EmbeddingGoalCost`` with a
small random CNN on the rollout frames: rollout + render + encode), same start state, seed and planner. Envs: a suite
task (always), Meta-World drawer-open-v3 through its ``corner`` camera (when metaworld is installed) and
FrankaKitchen microwave without noise (when gymnasium-robotics is installed).

Writes ``benchmarks/results/dynamics_backends.json`` and ``.md`` (``--out`` to write elsewhere).

Usage:
  MUJOCO_GL=egl .venv/bin/python benchmarks/dynamics_backends.py [--quick] [--out /tmp/x]
  .venv/bin/python benchmarks/dynamics_backends.py --render-only
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch

import _report
from _common import resolve_encoder
from vip_rl.planning import MPPI, EmbeddingGoalCost, MPPIConfig, MujocoDynamics, OracleCost


def _make_envs(task: str, size: int) -> dict[str, Callable[[], Any]]:
    import gymnasium as gym

    makers: dict[str, Callable[[], Any]] = {}

    def suite() -> Any:
        import vip_envs  # noqa: F401 - registers the ids

        return gym.make(f"vip_envs/{task}-v0", render_mode="rgb_array", image_size=size)

    makers[f"vip_envs/{task}-v0"] = suite
    if importlib.util.find_spec("metaworld") is not None:
        def metaworld_env() -> Any:
            import metaworld  # noqa: F401 - registers Meta-World/MT1

            return gym.make("Meta-World/MT1", env_name="drawer-open-v3", render_mode="rgb_array", camera_name="corner",
                            width=size, height=size)

        makers["Meta-World drawer-open-v3 (corner)"] = metaworld_env
    if importlib.util.find_spec("gymnasium_robotics") is not None:
        def kitchen_env() -> Any:
            from vip_envs import kitchen

            return kitchen.make_kitchen(("microwave",), render_mode="rgb_array", image_size=size,
                                        robot_noise_ratio=0.0, object_noise_ratio=0.0)

        makers["FrankaKitchen microwave (no noise)"] = kitchen_env
    return makers


def bench_env(make: Callable[[], Any], *, num_samples: int, horizon: int, commands: int, seed: int) -> dict[str, Any]:
    """The construction checks and ms per command of the env's detected backend and of the step backend."""
    env = make()
    env.reset(seed=seed)
    for _ in range(3):  # a start state with velocities
        env.step(env.action_space.sample() * 0)
    encoder = resolve_encoder("random", device=torch.device("cpu"), seed=seed)
    action_dim = int(np.prod(env.action_space.shape))
    cfg = MPPIConfig(action_dim=action_dim, num_samples=num_samples, horizon=horizon, noise_beta=0.5, temperature=0.1,
                     action_low=tuple(map(float, env.action_space.low)), action_high=tuple(map(float, env.action_space.high)))
    rows: dict[str, Any] = {}
    try:
        for backend in ("auto", "step"):
            with MujocoDynamics(env, nthread=2, backend=backend) as dyn:
                name = dyn.check.backend
                goal = dyn.render(dyn.get_state()[None, None, : dyn.full_size])[0, 0]
                nq = dyn.model.nq
                costs = {
                    "states": OracleCost(fn=lambda s, nq=nq: -np.abs(s[:, 1 : 1 + nq]).sum(-1), when="final"),
                    "image": EmbeddingGoalCost(encoder, goal),
                }
                row: dict[str, Any] = {"max_qpos_diff": dyn.check.max_qpos_diff, "render_diff": dyn.check.render_diff,
                                       "render_view": dyn.check.render_view}
                for cost_name, cost in costs.items():
                    planner = MPPI(cfg, dyn, cost, seed=seed)
                    start = dyn.get_state()
                    planner.plan(start)  # warm-up (first render, encoder)
                    times = []
                    for _ in range(commands):
                        t0 = time.perf_counter()
                        planner.plan(start)
                        times.append(time.perf_counter() - t0)
                    row[f"ms_{cost_name}"] = 1000 * float(np.median(times))
                rows[name] = row
    finally:
        env.close()
    return rows


def render(res: dict[str, Any]) -> str:
    run = res["backends"]
    lines = ["# MujocoDynamics backends: step (env copies) vs mujoco.rollout", "", _report.generated_by(res["provenance"]), "",
             f"K={run['K']}, H={run['H']}, frames {run['size']} px, median of {run['commands']} commands, 2 worker threads, "
             "1 torch thread. `states`: a cost on the rolled-out qpos only (no frames); `image`: a random CNN on the "
             "final frames (rollout + render + encode). Check: max |qpos| difference of a 5-step rollout vs `env.step` "
             "on a copy, and mean |pixel| difference (0-255) vs `env.render()`.", ""]
    rows = []
    for env_name, backends in run["envs"].items():
        fast = next((b for b in backends if b != "step"), None)
        for backend, row in backends.items():
            slower = ""
            if backend == "step" and fast is not None:
                slower = f"{row['ms_states'] / backends[fast]['ms_states']:.1f}x / {row['ms_image'] / backends[fast]['ms_image']:.1f}x"
            rows.append([env_name, backend, _report.fmt(row["max_qpos_diff"], "{:.1e}"), _report.fmt(row["render_diff"], "{:.3f}"),
                         _report.fmt(row["ms_states"], "{:.0f}"), _report.fmt(row["ms_image"], "{:.0f}"), slower])
    lines += _report.table(["env", "backend", "qpos diff", "pixel diff", "ms/command (states)", "ms/command (image)",
                            "step vs fast (states / image)"], rows, align=["", "", "r", "r", "r", "r", "r"])
    worst = max((row["max_qpos_diff"] or 0.0) for backends in run["envs"].values() for row in backends.values())
    lines += ["", _report.target_line("rollout vs env.step, max |qpos| over envs and backends", f"{worst:.1e}", "<= 1e-6",
                                      met=worst <= 1e-6)]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    p.add_argument("--task", default="OpenDrawer")
    p.add_argument("--samples", type=int, default=64, help="K")
    p.add_argument("--horizon", type=int, default=10, help="H")
    p.add_argument("--commands", type=int, default=5, help="commands timed per backend and cost")
    p.add_argument("--size", type=int, default=64, help="frame side of every env")
    p.add_argument("--seed", type=int, default=0)
    _report.add_output_args(p, "dynamics_backends")
    args = p.parse_args(argv)
    if args.render_only:
        return _report.render_only(args.out, render)
    torch.set_num_threads(1)
    num_samples, horizon, commands = (8, 3, 1) if args.quick else (args.samples, args.horizon, args.commands)
    envs = {}
    for name, make in _make_envs(args.task, args.size).items():
        print(f"== {name}", flush=True)
        envs[name] = bench_env(make, num_samples=num_samples, horizon=horizon, commands=commands, seed=args.seed)
    res = {"provenance": _report.provenance(__file__, argv, quick=args.quick),
           "backends": {"K": num_samples, "H": horizon, "commands": commands, "size": args.size, "envs": envs}}
    _report.write(args.out, res, render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
