"""CPU speed of the CLIP RN50 encoder (the official LIV model's architecture) beside the small bundled encoders.

Measures, on this machine's CPU:

1. image tower throughput at 224 px (uint8 frames in, embeddings out: resize + normalise + RN50 + attention pool),
   batch 1 and batch 32; text tower latency for one instruction;
2. the time of one MPPI command (``MujocoDynamics`` simulator backend, K=32, H=10, final-frame cost, one task of the
   suite) with the RN50 encoder and with ``vip-sim``, ``liv-sim`` and ``td-sim``;
3. fine-tuning steps/s of ``vip-rl pretrain --objective liv --init-from model.pt`` (batch of 4 tuples = 20 frames at
   224 px + 4 instructions) with the last 2 blocks trained and the text tower frozen, and with everything trained.

The RN50 weights are random (the official ``model.pt`` is not shipped): the architecture, hence the compute, is the
one ``load_official_liv`` builds; the fine-tune reads a synthetic checkpoint in LIV's ``{'liv': module.model.*}``
layout. Writes ``benchmarks/results/clip_speed.json`` and ``.md`` (``--out`` to write elsewhere). About 3-5 minutes
on 2 cores; ``--quick`` runs a reduced-width CLIP with tiny sizes (a smoke run, not results).

Usage:
  MUJOCO_GL=egl .venv/bin/python benchmarks/clip_speed.py [--quick] [--out /tmp/x]
  .venv/bin/python benchmarks/clip_speed.py --render-only
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
from _common import has_encoder, resolve_encoder
from vip_rl.encoders.clip import RN50, ClipDims, encoder_to_clip_state
from vip_rl.encoders.factory import clip_config, encoder_from_config

SMALL_ENCODERS = ("vip-sim", "liv-sim", "td-sim")
QUICK_DIMS = ClipDims(embed_dim=32, image_resolution=64, vision_layers=(1, 1, 1, 1), vision_width=8, vision_heads=4,
                      transformer_width=128, transformer_heads=2, transformer_layers=2)


def _timed(fn: Any, repeats: int) -> tuple[float, float]:
    """Mean wall seconds and CPU seconds (this process) of ``fn()`` over ``repeats`` calls after one warm-up call."""
    fn()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - wall) / repeats, (time.process_time() - cpu) / repeats


def bench_towers(encoder: Any, *, batches: Sequence[int], repeats: dict[int, int]) -> dict[str, Any]:
    """Images/s of the image tower per batch size, ms per instruction of the text tower."""
    rng = np.random.default_rng(0)
    size = encoder.image_size
    out: dict[str, Any] = {"image_size": size}
    with torch.inference_mode():
        for batch in batches:
            frames = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
            seconds, cpu = _timed(lambda: encoder.encode_images(frames), repeats[batch])
            out[f"images_per_s_batch{batch}"] = batch / seconds
            out[f"images_per_cpu_s_batch{batch}"] = batch / cpu
            print(f"[clip-speed] image tower batch {batch}: {batch / seconds:.2f} images/s ({batch / cpu:.2f} per CPU-second)", flush=True)
        seconds, cpu = _timed(lambda: encoder.encode_text(["open the drawer"]), 5)
        out["text_ms_per_instruction"] = 1000 * seconds
        out["text_cpu_ms_per_instruction"] = 1000 * cpu
        print(f"[clip-speed] text tower: {1000 * seconds:.0f} ms per instruction ({1000 * cpu:.0f} CPU-ms)", flush=True)
    return out


def bench_mppi(encoders: dict[str, Any], *, task: str, num_samples: int, horizon: int, commands: dict[str, int], seed: int) -> dict[str, Any]:
    """Mean seconds per MPPI command (simulator backend) for each encoder, split by stage."""
    import gymnasium as gym

    import vip_envs  # noqa: F401
    from vip_rl.planning import MPPI, EmbeddingGoalCost, MPPIConfig, MujocoDynamics

    env = gym.make(f"vip_envs/{task}-v0", render_mode="rgb_array")
    env.reset(seed=seed + 1)
    goal = env.unwrapped.render()  # a frame of another start: the cost's compute does not depend on the goal
    env.reset(seed=seed)
    cfg = MPPIConfig(action_dim=int(np.prod(env.action_space.shape)), num_samples=num_samples, horizon=horizon,
                     noise_beta=0.5, temperature=0.1)
    out: dict[str, Any] = {"task": task, "K": num_samples, "H": horizon, "frame_size": list(goal.shape[:2]), "rows": {}}
    with MujocoDynamics(env, nthread=2) as dynamics:
        state = dynamics.get_state()
        for name, encoder in encoders.items():
            planner = MPPI(cfg, dynamics, EmbeddingGoalCost(encoder, goal, when="final"), seed=seed)
            planner.plan(state)  # warm-up: renderer, lazy init
            sums = {k: 0.0 for k in ("rollout", "render", "encode", "cost", "update", "total")}
            for _ in range(commands[name]):
                result = planner.plan(state)
                for key in sums:
                    sums[key] += result.timings.get(key, 0.0)
            out["rows"][name] = {"commands": commands[name], **{k: v / commands[name] for k, v in sums.items()}}
            print(f"[clip-speed] MPPI {name}: {out['rows'][name]['total']:.2f} s/command", flush=True)
    env.close()
    return out


def bench_finetune(dims: ClipDims, *, variants: dict[str, tuple[dict[str, Any], int]], batch_size: int, seed: int) -> dict[str, Any]:
    """Optimizer steps/s of ``pretrain(objective="liv", init_from=<LIV-layout file>)`` per variant."""
    from vip_rl.data import Video
    from vip_rl.pretrain import PretrainConfig, pretrain

    rng = np.random.default_rng(seed)
    videos = []
    for i in range(6):
        frames = np.repeat(rng.integers(0, 120, (1, 96, 96, 3), dtype=np.uint8), 12, axis=0)
        for t in range(12):
            frames[t, 30:46, 4 + 7 * t : 20 + 7 * t, 0] = 255
        videos.append(Video(frames, text="open the drawer" if i % 2 else "press the button"))
    out: dict[str, Any] = {"batch_size": batch_size, "frames_per_step": 5 * batch_size, "rows": {}}
    with tempfile.TemporaryDirectory(prefix="clip_speed_") as tmp:
        encoder = encoder_from_config(clip_config(dims, seed=seed))
        liv = Path(tmp) / "model.pt"
        torch.save({"liv": {f"module.model.{k}": v for k, v in encoder_to_clip_state(encoder).items()}}, liv)
        del encoder
        for name, (fields, steps) in variants.items():
            stamps: list[tuple[float, float]] = []
            config = PretrainConfig(objective="liv", batch_size=batch_size, lr=1e-5, steps=10_000, eval_every=0, ckpt_every=10_000,
                                    log_every=1, prefetch=0, seed=seed, **fields)
            start = time.perf_counter()
            tuned = pretrain(config, videos, out_dir=Path(tmp) / name, init_from=liv, progress=False, stop_after=steps,
                             on_step=lambda step, metrics: stamps.append((time.perf_counter(), time.process_time())))
            trainable = sum(p.numel() for p in tuned.parameters() if p.requires_grad)
            per_step = (stamps[-1][0] - stamps[0][0]) / max(1, len(stamps) - 1)
            cpu_per_step = (stamps[-1][1] - stamps[0][1]) / max(1, len(stamps) - 1)
            out["rows"][name] = {**fields, "trainable_params": trainable, "timed_steps": len(stamps) - 1, "s_per_step": per_step,
                                 "steps_per_s": 1.0 / per_step, "cpu_s_per_step": cpu_per_step,
                                 "wall_s_with_load_and_checkpoint": time.perf_counter() - start}
            print(f"[clip-speed] fine-tune {name}: {per_step:.2f} s/step ({trainable / 1e6:.1f} M trainable)", flush=True)
            del tuned
    return out


def render(res: dict[str, Any]) -> str:
    towers, mppi, tune = res["towers"], res["mppi"], res["finetune"]
    lines = ["# CLIP RN50 (official LIV architecture): CPU speed", "", _report.generated_by(res["provenance"]), "",
             f"Model: {res['model']}. Weights are random (the architecture and compute of `load_official_liv`).", "",
             "## Towers", ""]
    lines += _report.table(["measure", "wall clock", "per CPU-second of this process"], [
        [f"image tower, batch 1 ({towers['image_size']} px)", f"{towers['images_per_s_batch1']:.2f} images/s", f"{towers['images_per_cpu_s_batch1']:.2f} images"],
        [f"image tower, batch 32 ({towers['image_size']} px)", f"{towers['images_per_s_batch32']:.2f} images/s", f"{towers['images_per_cpu_s_batch32']:.2f} images"],
        ["text tower, one instruction", f"{towers['text_ms_per_instruction']:.0f} ms", f"{towers['text_cpu_ms_per_instruction']:.0f} CPU-ms"],
    ], align=["", "r", "r"])
    lines += ["", f"## MPPI command (simulator backend, {mppi['task']}, K={mppi['K']}, H={mppi['H']}, final-frame cost, "
                  f"{mppi['frame_size'][0]} px frames)", ""]
    lines += _report.table(["encoder", "s / command", "encode", "rollout + render", "commands timed"],
                           [[name, f"{r['total']:.3f}", f"{r['encode']:.3f}", f"{r['rollout'] + r['render']:.3f}", r["commands"]]
                            for name, r in mppi["rows"].items()], align=["", "r", "r", "r", "r"])
    lines += ["", f"## Fine-tuning (`--objective liv --init-from model.pt`, batch {tune['batch_size']} tuples = "
                  f"{tune['frames_per_step']} frames + {tune['batch_size']} instructions per step)", ""]
    lines += _report.table(["variant", "trainable params", "s / step", "steps / s", "CPU-s / step", "steps timed"],
                           [[name, f"{r['trainable_params'] / 1e6:.1f} M", f"{r['s_per_step']:.2f}", f"{r['steps_per_s']:.3f}",
                             f"{r['cpu_s_per_step']:.2f}", r["timed_steps"]] for name, r in tune["rows"].items()],
                           align=["", "r", "r", "r", "r", "r"])
    machine = res["provenance"]["machine"]
    lines += ["", f"Steps timed after the first. The machine is shared: the 1-minute load average was {res.get('load_average_start')} at "
                  f"the start and {machine.get('load_average_1min')} at the end of the run on {machine.get('cpu_count')} cores, with "
                  f"{machine.get('torch_threads')} torch thread(s) (under contention 1 thread is much faster than 2, whose "
                  "OpenMP workers wait on each other). The wall-clock figures are what this machine gave; the CPU-time ones "
                  "(compute this process got) are the better guide to a quiet CPU: one core does about the per-CPU-second "
                  "rate, two cores somewhat under twice it.", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="reduced-width CLIP, tiny sizes (smoke run)")
    p.add_argument("--task", default="OpenDrawer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--torch-threads", type=int, default=1, help="1 is fastest on the shared 2-core machine")
    _report.add_output_args(p, "clip_speed")
    args = p.parse_args(argv)
    if args.render_only:
        return _report.render_only(args.out, render)
    torch.set_num_threads(args.torch_threads)
    load_start = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    quick = args.quick
    dims = QUICK_DIMS if quick else RN50
    clip = encoder_from_config(clip_config(dims, name="clip-rn50 (random weights)", seed=args.seed))
    towers = bench_towers(clip, batches=(1, 32), repeats={1: 2 if quick else 5, 32: 1 if quick else 2})
    encoders = {"clip-rn50": clip}
    for name in SMALL_ENCODERS:
        encoders[name] = resolve_encoder(name if has_encoder(name) else "random", device=torch.device("cpu"), seed=args.seed)
    commands = {name: (1 if quick else (2 if name == "clip-rn50" else 5)) for name in encoders}
    mppi = bench_mppi(encoders, task=args.task, num_samples=8 if quick else 32, horizon=3 if quick else 10, commands=commands, seed=args.seed)
    del encoders, clip
    variants = {"last 2 blocks, text frozen": ({"train_blocks": 2, "freeze_text": True}, 2 if quick else 4),
                "all blocks, both towers": ({}, 2 if quick else 3)}
    finetune = bench_finetune(dims, variants=variants, batch_size=2 if quick else 4, seed=args.seed)
    model = "reduced-width CLIP (--quick)" if quick else "CLIP RN50: ModifiedResNet (38.3 M) + 12-layer text transformer (63.7 M), 1024-d, 224 px"
    res = {"provenance": _report.provenance(__file__, argv, quick=quick), "load_average_start": load_start, "model": model, "dims": dims.to_dict(),
           "towers": towers, "mppi": mppi, "finetune": finetune}
    _report.write(args.out, res, render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
