"""MPPI speed, simulator backend: ``MujocoDynamics`` (mujoco.rollout + one batched render + one encode) vs a
VIP-eval-style sequential loop over samples (set state, step, render, encode one sample at a time).

Same task (OpenDrawer), K=64, H=10 and encoder (``vip-sim``, a random CNN when its weights are missing); ms per
command split into rollout / render / encode / update. Target: >= 10x over the sequential loop that renders
every step (a pixel-observation env, as the VIP evaluation runs).

Writes ``benchmarks/results/mppi_speed_sim.json`` and ``.md`` (``--out`` to write elsewhere).

Usage:
  MUJOCO_GL=egl .venv/bin/python benchmarks/mppi_speed_sim.py [--quick] [--out /tmp/x]
  .venv/bin/python benchmarks/mppi_speed_sim.py --render-only
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Sequence

import numpy as np
import torch

import _report
from _common import GOAL_SEED_OFFSET, expert_goal, has_encoder, resolve_encoder
from vip_rl.planning import MPPI, EmbeddingGoalCost, MPPIConfig, MujocoDynamics
from vip_rl.planning.dynamics import Trajectories

TARGET_SPEEDUP = 10.0
SIMULATOR = "simulator (mujoco.rollout + batched render + 1 encode)"
SEQUENTIAL_FINAL = "sequential, render final step only"
SEQUENTIAL_EVERY = "sequential, render every step (pixel-obs env, VIP eval)"


class SequentialDynamics:
    """VIP-eval-style planner backend: for each sample, restore the state on a private env copy,
    step it H times (rendering each step as a pixel-observation env does, or only the last), and
    encode that sample's final frame alone."""

    state_ndim = 1

    def __init__(self, env: Any, encoder: Any, *, render_each_step: bool) -> None:
        self.env = env
        self.encoder = encoder
        self.render_each_step = render_each_step

    def rollout(self, states: Any, actions: torch.Tensor, *, needs: frozenset[str] = frozenset()) -> Trajectories:
        u = self.env.unwrapped
        timings = {"rollout": 0.0, "render": 0.0, "encode": 0.0}
        num_envs, num_k, horizon = actions.shape[:3]
        acts = actions.cpu().numpy().astype(np.float32)
        embeddings = []
        for e in range(num_envs):
            for k in range(num_k):
                u.set_state(np.asarray(states[e])[: u.state_size])
                frame = None
                for t in range(horizon):
                    t1 = time.perf_counter()
                    u.step(acts[e, k, t])
                    t2 = time.perf_counter()
                    timings["rollout"] += t2 - t1
                    if self.render_each_step or t == horizon - 1:
                        frame = u.render_states(u.get_state()[None])[0]
                        timings["render"] += time.perf_counter() - t2
                t3 = time.perf_counter()
                embeddings.append(self.encoder.encode_images(frame[None])[0])
                timings["encode"] += time.perf_counter() - t3
        traj = Trajectories(actions=actions, timings=timings, frame_steps=(horizon - 1,))
        z = torch.stack(embeddings).reshape(num_envs, num_k, 1, -1)
        traj.embeddings[("frames", id(self.encoder), None)] = z  # the costs reuse it
        return traj


def bench_speed_sim(task: str, *, num_samples: int, horizon: int, commands: int, seed: int) -> dict[str, Any]:
    """Mean ms per command (split by stage) of the three backends on the same start state, goal and planner."""
    import gymnasium as gym

    import vip_envs  # noqa: F401

    name = "vip-sim" if has_encoder("vip-sim") else "random"
    encoder = resolve_encoder(name, device=torch.device("cpu"), seed=seed)
    env = gym.make(f"vip_envs/{task}-v0", render_mode="rgb_array")
    twin = gym.make(f"vip_envs/{task}-v0", render_mode="rgb_array")  # the sequential loop's private copy
    env.reset(seed=seed)
    twin.reset(seed=seed)
    goal = expert_goal(f"vip_envs/{task}-v0", seed=seed + GOAL_SEED_OFFSET)
    cfg = MPPIConfig(action_dim=4, num_samples=num_samples, horizon=horizon, noise_beta=0.5, temperature=0.1)
    out: dict[str, Any] = {"task": task, "K": num_samples, "H": horizon, "commands": commands,
                           "encoder": encoder.config.get("name") or "random cnn (same architecture)"}
    with MujocoDynamics(env, nthread=2) as dyn:
        state = dyn.get_state()
        variants: dict[str, Any] = {
            SIMULATOR: dyn,
            SEQUENTIAL_FINAL: SequentialDynamics(twin, encoder, render_each_step=False),
            SEQUENTIAL_EVERY: SequentialDynamics(twin, encoder, render_each_step=True),
        }
        for variant, backend in variants.items():
            planner = MPPI(cfg, backend, EmbeddingGoalCost(encoder, goal, when="final"), seed=seed)
            planner.plan(state)  # warm up (renderer creation, lazy init)
            sums = {k: 0.0 for k in ("rollout", "render", "encode", "cost", "update", "total")}
            for _ in range(commands):
                result = planner.plan(state)
                for key in sums:
                    sums[key] += result.timings.get(key, 0.0)
            out[variant] = {k: v / commands for k, v in sums.items()}
            print(f"[speed-sim] {variant}: {1000 * out[variant]['total']:.0f} ms/command", flush=True)
    env.close()
    twin.close()
    sim = out[SIMULATOR]["total"]
    out["speedup_vs_sequential_final_only"] = out[SEQUENTIAL_FINAL]["total"] / sim
    out["speedup_vs_sequential_every_step"] = out[SEQUENTIAL_EVERY]["total"] / sim
    return out


def render(res: dict[str, Any]) -> str:
    p = res["speed_sim"]
    lines = ["# MPPI speed: simulator backend vs sequential loop", "", _report.generated_by(res["provenance"]), "",
             f"Task {p['task']}, K={p['K']}, H={p['H']}, encoder {p['encoder']}, mean over {p['commands']} commands, "
             "ms per command split by stage.", ""]
    lines += _report.table(["backend", "total", "rollout", "render", "encode", "update"],
                           [[name, *(f"{1000 * t[k]:.1f}" for k in ("total", "rollout", "render", "encode", "update"))]
                            for name, t in p.items() if isinstance(t, dict)])
    every = p["speedup_vs_sequential_every_step"]
    lines += ["", f"Speed-up vs sequential (render final only): **{p['speedup_vs_sequential_final_only']:.1f}x**; "
                  f"vs sequential rendering every step (VIP eval with pixel observations): "
                  f"**{every:.1f}x** (target >= {TARGET_SPEEDUP:g}x: {_report.status(every >= TARGET_SPEEDUP)}).", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    p.add_argument("--task", default="OpenDrawer")
    p.add_argument("--samples", type=int, default=64, help="K")
    p.add_argument("--horizon", type=int, default=10, help="H")
    p.add_argument("--commands", type=int, default=10, help="commands timed per backend")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--torch-threads", type=int, default=1, help="1 is fastest on the shared 2-core machine")
    _report.add_output_args(p, "mppi_speed_sim")
    args = p.parse_args(argv)
    if args.render_only:
        return _report.render_only(args.out, render)
    torch.set_num_threads(args.torch_threads)
    res = {"provenance": _report.provenance(__file__, argv, quick=args.quick),
           "speed_sim": bench_speed_sim(args.task, num_samples=8 if args.quick else args.samples,
                                        horizon=3 if args.quick else args.horizon,
                                        commands=1 if args.quick else args.commands, seed=args.seed)}
    _report.write(args.out, res, render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
