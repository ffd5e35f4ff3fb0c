"""The GPU paths, side by side with the CPU in one run: the MPPI core, MPPI over the simulator with the
encoder on the device, and pretraining (VIP, LIV, the temporal distance) -- speed, and whether the two
devices agree.

Run it on a machine with CUDA (the project's own machine has none); every section measures CPU and CUDA
back to back in the same process, so each figure is a ratio from one run.

- ``core``: ``benchmarks/mppi_speed_core.py``'s double integrator, ``vip_rl`` MPPI and ``pytorch_mppi``
  on each device, K=1024 and K=16384, H=16.
- ``sim``: MPPI over ``MujocoDynamics`` (rollouts and rendering on the CPU, encoding, cost and update on
  the device) on OpenDrawer with ``vip-sim``, ms per command split by stage, K=32 and K=256; then full
  PressButton episodes toward an expert's final frame on both devices (same seeds), which must plan alike.
- ``pretrain``: ``vip_rl.pretrain.pretrain`` on synthetic clips, samples per second on each device for
  each objective (the bundled ``cnn`` at 64 px, and ``resnet50`` at 224 px as in the VIP paper), and the
  loss of the first step on each device, which must agree (same seed: same initial weights, same batch).

``vip-sim`` is used where an encoder is needed because it has no text tower: the bundled ``td-sim`` and
``liv-sim`` load MiniLM, whose package is too large to carry to the GPU machine here.

Writes ``benchmarks/results/device_paths.json`` and ``.md`` (``--out`` to write elsewhere).

Usage:
  MUJOCO_GL=egl python benchmarks/device_paths.py [--quick] [--sections core,sim,pretrain] [--out /tmp/x]
  python benchmarks/device_paths.py --render-only
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

import _report
from _common import GOAL_SEED_OFFSET, expert_goal, resolve_encoder
from _mppi_cells import run_method
from mppi_speed_core import bench_speed_core, sync

SECTIONS = ("core", "sim", "pretrain")
#: the first step's loss (same initial weights, same batch) must agree across devices to this relative
#: tolerance: float32 with different kernels, and cuDNN convolutions in TF32 by PyTorch's default
LOSS_RTOL = 1e-2


def bench_core(*, devices: Sequence[str], sizes: Sequence[int], horizon: int, commands: int, seed: int) -> dict[str, Any]:
    """``bench_speed_core`` on each device for each K."""
    out: dict[str, Any] = {}
    for k in sizes:
        for device in devices:
            print(f"[core] K={k} on {device}", flush=True)
            out[f"K={k} {device}"] = bench_speed_core(num_samples=k, horizon=horizon, commands=commands, seed=seed,
                                                      device=device)
    return out


def bench_sim(*, devices: Sequence[str], task: str, sizes: Sequence[int], horizon: int, commands: int, episode_task: str,
              episodes: int, seed: int, nthread: int) -> dict[str, Any]:
    """ms per command of MPPI over the simulator with the encoder on each device; PressButton episodes."""
    import gymnasium as gym

    import vip_envs  # noqa: F401
    from vip_rl.planning import MPPI, EmbeddingGoalCost, MPPIConfig, MujocoDynamics

    out: dict[str, Any] = {"task": task, "H": horizon, "commands": commands, "nthread": nthread, "timings": {},
                           "episode_task": episode_task, "episodes": {}}
    goal_image = expert_goal(f"vip_envs/{task}-v0", seed=seed + GOAL_SEED_OFFSET)
    encoders = {name: resolve_encoder("vip-sim", device=torch.device(name)) for name in devices}
    for k in sizes:
        cfg = MPPIConfig(action_dim=4, num_samples=k, horizon=horizon, noise_beta=0.5, temperature=0.1)
        for name in devices:
            device = torch.device(name)
            encoder = encoders[name]
            env = gym.make(f"vip_envs/{task}-v0", render_mode="rgb_array")
            env.reset(seed=seed)
            with MujocoDynamics(env, nthread=nthread) as dyn:
                planner = MPPI(cfg, dyn, EmbeddingGoalCost(encoder, goal_image, when="final"), seed=seed, device=device)
                state = dyn.get_state()
                planner.plan(state)  # warm-up: renderer, CUDA context, kernels
                sums: dict[str, float] = {}
                for _ in range(commands):
                    sync(device)
                    t0 = time.perf_counter()
                    result = planner.plan(state)
                    sync(device)
                    sums["wall"] = sums.get("wall", 0.0) + time.perf_counter() - t0
                    for key in ("rollout", "render", "encode", "cost", "update"):
                        sums[key] = sums.get(key, 0.0) + result.timings.get(key, 0.0)
            env.close()
            out["timings"][f"K={k} {name}"] = {key: 1000 * v / commands for key, v in sums.items()}
            print(f"[sim] K={k} {name}: {out['timings'][f'K={k} {name}']['wall']:.1f} ms/command", flush=True)
    cfg = MPPIConfig(action_dim=4, num_samples=32, horizon=10, noise_sigma=0.5, temperature=0.05, noise_beta=0.5)
    for name in devices:  # the MPPI tables' cell: an expert's final frame from seed + episode + 10000 as the goal
        cell = run_method(episode_task, dict(kind="image", encoder="vip-sim"), episodes=episodes, cfg=cfg, seed=seed,
                          encoders={"vip-sim": encoders[name]}, max_steps=None, device=name, nthread=nthread)
        out["episodes"][name] = cell
        print(f"[sim] {episode_task} episodes on {name}: success {cell['success_rate']:.2f} of {episodes}", flush=True)
    return out


def _synthetic_videos(count: int, length: int, size: int, seed: int) -> list[Any]:
    """Clips of smooth random frames (a moving blob on noise), with a text each: throughput, not learning."""
    from vip_rl.data import Video

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    videos = []
    for i in range(count):
        base = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
        path = rng.uniform(0.2 * size, 0.8 * size, (2, 2))
        frames = np.empty((length, size, size, 3), np.uint8)
        for t in range(length):
            cy, cx = path[0] + (path[1] - path[0]) * t / max(length - 1, 1)
            blob = ((yy - cy) ** 2 + (xx - cx) ** 2 < (0.1 * size) ** 2)[..., None]
            frames[t] = np.where(blob, np.array([220, 60, 40], np.uint8), base)
        videos.append(Video(frames, text=f"move the blob {i % 4}", source=f"synthetic:{i}"))
    return videos


def bench_pretrain(*, devices: Sequence[str], runs: Sequence[dict[str, Any]], steps: int, seed: int) -> dict[str, Any]:
    """Samples per second (median over the steps after the first 5) and the first step's loss of each run on each
    device."""
    from vip_rl.pretrain import PretrainConfig, pretrain

    out: dict[str, Any] = {"steps": steps, "runs": {}}
    for run in runs:
        videos = _synthetic_videos(12, 40, run["image_size"], seed)
        label = f"{run['objective']} {run['arch']} {run['image_size']}px batch {run['batch_size']}"
        row: dict[str, Any] = {}
        for name in devices:
            cfg = PretrainConfig(objective=run["objective"], arch=run["arch"], image_size=run["image_size"],
                                 batch_size=run["batch_size"], embed_dim=64, steps=run.get("steps", steps),
                                 text="hashing" if run["objective"] == "liv" else "none", log_every=1,
                                 eval_every=0, ckpt_every=0, warmup_steps=0, seed=seed)
            windows: list[dict[str, float]] = []
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                pretrain(cfg, videos, out_dir=tmp, device=name, progress=False, resume=False,
                         on_step=lambda step, train: windows.append(dict(train)))
                wall = time.perf_counter() - t0
            timed = windows[5:] or windows
            row[name] = {"samples_per_s": float(np.median([w["train/samples_per_s"] for w in timed])),
                         "first_loss": windows[0]["train/loss"], "last_loss": windows[-1]["train/loss"],
                         "wall_s": wall, "steps": cfg.steps,
                         "data_time_share": float(np.median([w["train/data_time_share"] for w in timed]))}
            print(f"[pretrain] {label} on {name}: {row[name]['samples_per_s']:.0f} samples/s, "
                  f"first loss {row[name]['first_loss']:.5f}", flush=True)
        out["runs"][label] = row
    return out


def render(res: dict[str, Any]) -> str:
    lines = ["# The GPU paths: CPU vs CUDA in one run", "", _report.generated_by(res["provenance"]), ""]
    gpu = res.get("gpu")
    if gpu:
        lines += [f"GPU: {gpu}. CPU: the same machine's cores ({res['provenance']['machine'].get('cpu_count')}), "
                  f"{res.get('torch_threads')} torch threads.", ""]
    core = res.get("core")
    if core:
        lines += ["## MPPI core (double integrator, H=16, one iteration)", "",
                  "Median ms per command, each device measured in turn; both planners on the same device interleave.", ""]
        rows = []
        for key, c in core.items():
            rows.append([key, _report.fmt(c["vip_rl MPPI"]["ms_per_command"]), _report.fmt(c["pytorch_mppi"]["ms_per_command"]),
                         f"{c['speedup']:.2f}x", _report.fmt(c["vip_rl MPPI"]["final_distance"], "{:.3f}")])
        lines += _report.table(["K, device", "vip_rl MPPI (ms)", "pytorch_mppi (ms)", "vip_rl speed-up",
                                "vip_rl final distance"], rows)
        for k in sorted({int(key.split()[0][2:]) for key in core}):
            cpu, cuda = core.get(f"K={k} cpu"), core.get(f"K={k} cuda")
            if cpu and cuda:
                lines.append(f"- K={k}: vip_rl MPPI on CUDA is {cpu['vip_rl MPPI']['ms_per_command'] / cuda['vip_rl MPPI']['ms_per_command']:.2f}x "
                             "its CPU speed.")
        lines.append("")
    sim = res.get("sim")
    if sim:
        lines += [f"## MPPI over the simulator ({sim['task']}, vip-sim, H={sim['H']}, {sim['nthread']} rollout threads)", "",
                  f"Mean ms per command over {sim['commands']} commands; rollouts and rendering run on the CPU either way.", ""]
        lines += _report.table(["K, encoder device", "wall", "rollout", "render", "encode", "cost", "update"],
                               [[key, *(_report.fmt(t.get(s), "{:.1f}") for s in ("wall", "rollout", "render", "encode", "cost", "update"))]
                                for key, t in sim["timings"].items()])
        eps = sim["episodes"]
        if eps:
            lines += ["", f"{sim['episode_task']} episodes toward an expert's final frame (K=32, H=10, the same seeds on each device):", ""]
            lines += _report.table(["device", "successes", "mean steps", "mean task progress", "s / command"],
                                   [[name, f"{round(c['success_rate'] * c['episodes'])}/{c['episodes']}", f"{c['mean_steps']:.1f}",
                                     f"{c['mean_progress']:.2f}", f"{c['ms_per_command'] / 1000:.3f}"] for name, c in eps.items()])
        lines.append("")
    pre = res.get("pretrain")
    if pre:
        lines += ["## Pretraining (synthetic clips; median samples per second over the steps after the first 5)", "",
                  f"The first step's loss (same initial weights, same batch) of the two devices must agree within "
                  f"{LOSS_RTOL:g} (relative; cuDNN convolutions run in TF32 by PyTorch's default).", ""]
        rows = []
        for label, r in pre["runs"].items():
            cpu, cuda = r.get("cpu"), r.get("cuda")
            agree = None
            if cpu and cuda:
                agree = abs(cpu["first_loss"] - cuda["first_loss"]) <= LOSS_RTOL * max(abs(cpu["first_loss"]), 1e-8)
            rows.append([label, _report.fmt(cpu and cpu["samples_per_s"], "{:.0f}"), _report.fmt(cuda and cuda["samples_per_s"], "{:.0f}"),
                         f"{cuda['samples_per_s'] / cpu['samples_per_s']:.1f}x" if cpu and cuda else "-",
                         _report.fmt(cpu and cpu["first_loss"], "{:.5f}"), _report.fmt(cuda and cuda["first_loss"], "{:.5f}"),
                         _report.status(agree, met_word="agree", missed_word="**differ**"),
                         _report.fmt(cpu and cpu["data_time_share"], "{:.0%}"), _report.fmt(cuda and cuda["data_time_share"], "{:.0%}")])
        lines += _report.table(["run", "CPU samples/s", "CUDA samples/s", "CUDA / CPU", "CPU first loss", "CUDA first loss",
                                "losses", "CPU data share", "CUDA data share"], rows)
        lines.append("")
    lines += _report.notes_section(res.get("notes"))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes (smoke run; CPU alone when there is no CUDA)")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--episodes", type=int, default=4, help="PressButton episodes per device")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--torch-threads", type=int, default=None, help="CPU torch threads (default: torch's own)")
    p.add_argument("--notes", default=str(Path(__file__).resolve().parent / "notes" / "device_paths.md"),
                   help="findings shown under '## Notes' (read at every write)")
    _report.add_output_args(p, "device_paths")
    args = p.parse_args(argv)
    if args.render_only:
        return _report.render_only_with_notes(args.out, render, args.notes)
    sections = [s for s in args.sections.split(",") if s]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        p.error(f"unknown sections {unknown}; choose from {list(SECTIONS)}")
    devices = ("cpu", "cuda")
    if not torch.cuda.is_available():
        if not args.quick:
            p.error("no CUDA device: this benchmark compares CPU and CUDA (use --quick for a CPU-only smoke run)")
        devices = ("cpu",)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    quick = args.quick
    res: dict[str, Any] = {"provenance": _report.provenance(__file__, argv, quick=quick),
                           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                           "torch_threads": torch.get_num_threads()}
    if "core" in sections:
        res["core"] = bench_core(devices=devices, sizes=(64,) if quick else (1024, 16384), horizon=4 if quick else 16,
                                 commands=3 if quick else 100, seed=args.seed)
    if "sim" in sections:
        res["sim"] = bench_sim(devices=devices, task="OpenDrawer", sizes=(8,) if quick else (32, 256), horizon=3 if quick else 10,
                               commands=2 if quick else 10, episode_task="PressButton",
                               episodes=1 if quick else args.episodes, seed=args.seed,
                               nthread=min(8, os.cpu_count() or 1))
    if "pretrain" in sections:
        runs = [dict(objective=o, arch="cnn", image_size=64, batch_size=64) for o in ("vip", "liv", "tdist")]
        runs.append(dict(objective="vip", arch="resnet50", image_size=224, batch_size=32, steps=20))
        if quick:
            runs = [dict(objective=o, arch="cnn", image_size=32, batch_size=8) for o in ("vip", "liv", "tdist")]
        res["pretrain"] = bench_pretrain(devices=devices, runs=runs, steps=20 if quick else 60, seed=args.seed)
    res["notes"] = _report.read_notes(args.notes)
    _report.write(args.out, res, render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
