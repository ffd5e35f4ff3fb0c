"""MPPI speed, torch core: ``vip_rl.planning.MPPI`` vs ``pytorch_mppi`` on the same torch dynamics and cost.

A double integrator ``[x, y, vx, vy]`` with a quadratic cost, K=1024, H=16, one iteration; the two planners
run interleaved, command by command, so both see the same load of the shared machine. Target: >= 1.5x
on the median ms per command.

Writes ``benchmarks/results/mppi_speed_core.json`` and ``.md`` (``--out`` to write elsewhere).

Usage:
  .venv/bin/python benchmarks/mppi_speed_core.py [--quick] [--out /tmp/x]
  .venv/bin/python benchmarks/mppi_speed_core.py --render-only
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Sequence

import numpy as np
import torch

import _common  # noqa: F401  (library path, MUJOCO_GL default)
import _report
from vip_rl.planning import MPPI, ActionPenalty, MPPIConfig, StateCost, TorchDynamics

TARGET_SPEEDUP = 1.5


def sync(device: torch.device) -> None:
    """Wait for ``device``'s queued kernels (CUDA); nothing on the CPU. Timed code is bracketed by it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_speed_core(*, num_samples: int, horizon: int, commands: int, seed: int,
                     device: str | torch.device = "cpu") -> dict[str, Any]:
    """Median / min ms per command of both planners over ``commands`` interleaved commands (3 warm-up), both
    on ``device`` (on CUDA each command ends with a synchronise, so the time is the command's own)."""
    import pytorch_mppi

    device = torch.device(device)
    dt = 0.05
    goal = torch.tensor([1.0, -1.0], device=device)
    weight = 0.01

    def step(state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:  # double integrator [x, y, vx, vy]
        vel = state[..., 2:] + dt * action
        return torch.cat([state[..., :2] + dt * vel, vel], -1)

    target = torch.tensor([1.0, -1.0, 0.0, 0.0], device=device)
    state_weights = torch.tensor([1.0, 1.0, 0.1, 0.1], device=device)

    def state_cost(state: torch.Tensor) -> torch.Tensor:  # |pos - goal|^2 + 0.1 |vel|^2
        return ((state - target).square_() * state_weights).sum(-1)

    def running_cost(state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return state_cost(state) + weight * action.square().sum(-1)

    sigma, lam = 1.0, 0.1
    ours = MPPI(
        MPPIConfig(action_dim=2, num_samples=num_samples, horizon=horizon, noise_sigma=sigma, temperature=lam,
                   action_low=-2.0, action_high=2.0, include_plan=False),
        TorchDynamics(step),
        StateCost(state_cost) + ActionPenalty(weight),
        seed=seed,
        device=device,
    )
    torch.manual_seed(seed)  # pytorch_mppi samples from the global RNG
    theirs = pytorch_mppi.MPPI(step, running_cost, 4, noise_sigma=sigma**2 * torch.eye(2, device=device),
                               num_samples=num_samples, horizon=horizon, lambda_=lam, device=device,
                               u_min=torch.full((2,), -2.0, device=device), u_max=torch.full((2,), 2.0, device=device))
    results: dict[str, Any] = {"K": num_samples, "H": horizon, "commands": commands, "torch_threads": torch.get_num_threads(),
                               "device": str(device)}
    planners = {"vip_rl MPPI": ours.command, "pytorch_mppi": theirs.command}
    states = {name: torch.zeros(4, device=device) for name in planners}
    times: dict[str, list[float]] = {name: [] for name in planners}
    for i in range(commands + 3):  # interleaved, so both see the same machine load
        for name, fn in planners.items():
            sync(device)
            t0 = time.perf_counter()
            action = fn(states[name])
            sync(device)
            if i >= 3:
                times[name].append(time.perf_counter() - t0)
            states[name] = step(states[name][None], action.reshape(1, 2))[0]
    for name in planners:
        results[name] = {"ms_per_command": 1000 * float(np.median(times[name])),
                         "ms_per_command_min": 1000 * float(np.min(times[name])),
                         "final_distance": float(torch.linalg.vector_norm(states[name][:2] - goal))}
        print(f"[speed-core] {name}: {results[name]['ms_per_command']:.2f} ms/command", flush=True)
    results["speedup"] = results["pytorch_mppi"]["ms_per_command"] / results["vip_rl MPPI"]["ms_per_command"]
    results["speedup_min"] = results["pytorch_mppi"]["ms_per_command_min"] / results["vip_rl MPPI"]["ms_per_command_min"]
    return results


def render(res: dict[str, Any]) -> str:
    c = res["speed_core"]
    lines = ["# MPPI speed: torch core vs pytorch_mppi", "", _report.generated_by(res["provenance"]), "",
             f"Double integrator (torch), quadratic cost, K={c['K']}, H={c['H']}, 1 iteration, median over "
             f"{c['commands']} commands, CPU, {c['torch_threads']} torch threads.", ""]
    lines += _report.table(["planner", "ms / command (median)", "ms / command (min)", "final distance to goal"],
                           [[name, f"{c[name]['ms_per_command']:.2f}", f"{c[name]['ms_per_command_min']:.2f}",
                             f"{c[name]['final_distance']:.3f}"] for name in ("vip_rl MPPI", "pytorch_mppi")])
    lines += ["", f"Speed-up: **{c['speedup']:.2f}x** on the median, {c['speedup_min']:.2f}x on the minimum "
                  f"(target >= {TARGET_SPEEDUP}x on the median: {_report.status(c['speedup'] >= TARGET_SPEEDUP)}; the two "
                  "planners run interleaved, command by command, so both see the same load of the shared machine).", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    p.add_argument("--samples", type=int, default=1024, help="K")
    p.add_argument("--horizon", type=int, default=16, help="H")
    p.add_argument("--commands", type=int, default=200, help="timed commands per planner")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--torch-threads", type=int, default=1, help="1 is fastest on the shared 2-core machine")
    _report.add_output_args(p, "mppi_speed_core")
    args = p.parse_args(argv)
    if args.render_only:
        return _report.render_only(args.out, render)
    torch.set_num_threads(args.torch_threads)
    res = {"provenance": _report.provenance(__file__, argv, quick=args.quick),
           "speed_core": bench_speed_core(num_samples=64 if args.quick else args.samples, horizon=4 if args.quick else args.horizon,
                                          commands=5 if args.quick else args.commands, seed=args.seed)}
    _report.write(args.out, res, render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
