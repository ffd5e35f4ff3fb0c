"""Could `make weights` train td-sim faster on the same two cores? Its stages' step rates in three set-ups, side by side.

The recipe trains on one torch thread (:data:`vip_rl.weights_recipe.RECIPE_THREADS`): another thread count rounds
differently and parts the runs, and one thread made ``make weights`` bit for bit. Session 42 timed td-sim from nothing
on an idle machine at 73 min, over issue 17's 60 (`weights_reproduce.md`), while the second core idled through every
training stage. This measures, in one run and one after the other, ``--steps`` optimizer steps of td-sim's image
stages (``--stages``: their ``pretrain_config`` in the bundled file's training record; stage 6 adds the focused
reconstruction) on the recipe's training videos, in three set-ups:

* **1 process, 1 torch thread**: the recipe's;
* **1 process, 2 torch threads**;
* **2 DDP ranks, 1 thread each** (``torchrun``, gloo): every rank draws the same global batch and embeds half of it
  (:mod:`vip_rl.pretrain`'s distributed path).

Each run is a fresh process (``--worker``) in a scratch folder; its rate counts the steps after the first
:data:`WARMUP` (data loading and start-up left out). The DDP set-up runs twice per stage: do two of its runs write the
same tensors (a recipe on it could still be bit for bit), and do they equal the single-process runs'?

``--part value-head`` (session 43; ``results/recipe_speed_value_head.md``) measures the value-head stage on one torch
thread, serial against its spare-core path (:func:`vip_rl.pretrain._side_threads`: the feature pass on two threads,
the target MLP beside the online one), in one process, in alternating blocks: this machine's speed drifts by up to 2x
within a minute, so runs one after the other do not compare. It embeds the recipe's videos with the bundled td-sim's
CNN (its value head left out: what the stage fits on) and times blocks of :data:`VH_BLOCK_VIDEOS` videos each way,
then ``--vh-steps``-step fits of the MLP each way, ``--vh-blocks`` times; both ways must give the same tensors.

Usage:
  .venv/bin/python benchmarks/recipe_speed.py [--steps 300] [--stages 1 6] [--data DIR] [--out STEM]
  .venv/bin/python benchmarks/recipe_speed.py --part value-head [--vh-steps 200] [--vh-blocks 4]
  .venv/bin/python benchmarks/recipe_speed.py [--part value-head] --render-only
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import _common  # noqa: F401  (library path, MUJOCO_GL default)
import _report

NOTES = Path(__file__).resolve().parent / "notes" / "recipe_speed.md"
#: steps of each run left out of its rate (the first steps pay for warm-up)
WARMUP = 30
#: set-up label -> (DDP ranks, torch threads per rank)
SETUPS: dict[str, tuple[int, int]] = {
    "1 process, 1 thread (the recipe)": (1, 1),
    "1 process, 2 threads": (1, 2),
    "2 DDP ranks, 1 thread each": (2, 1),
}


def stage_config(stage: int, weights: str = "td-sim") -> Any:
    """Image stage ``stage`` (1-based) of a bundled encoder's training record (its JSON beside the tensors), as a
    :class:`PretrainConfig`.

    Raises:
        ValueError: the record has no such image stage.
    """
    from vip_rl.encoders.checkpoint import weights_dir
    from vip_rl.pretrain import PretrainConfig

    record = json.loads((weights_dir() / f"{weights}.json").read_text())["training"]  # the config beside the tensors
    stages = [s for s in record["stages"] if "pretrain_config" in s]
    if not 1 <= stage <= len(stages):
        raise ValueError(f"{weights} records {len(stages)} image stages, not a stage {stage}")
    return PretrainConfig.from_dict(stages[stage - 1]["pretrain_config"])


# ------------------------------------------------------------------------------------------ one run (a process)
def worker(stage: int, steps: int, threads: int, data_dir: Path, run_dir: Path) -> None:
    """Train ``steps`` steps of ``stage``'s config on ``threads`` torch threads (a DDP rank under ``torchrun``) into
    ``run_dir``; rank 0 writes ``run_dir/timing.json`` (steps per second after :data:`WARMUP`)."""
    import torch

    from vip_rl import weights_recipe as wr

    torch.set_num_threads(threads)
    config = dataclasses.replace(stage_config(stage), steps=steps, ckpt_every=steps, eval_every=10 * steps)
    paths = wr.collect_data(data_dir, progress=False)  # complete files (main collected them): only their paths
    data = wr.load_training_videos(paths, camera=wr.DATA.camera)
    marks: dict[int, float] = {}

    def on_step(step: int, _metrics: dict[str, float]) -> None:
        if step in (WARMUP, steps):
            marks[step] = time.perf_counter()

    from vip_rl.pretrain import pretrain

    selected = data.select(wr.TRAIN_KINDS["td-sim"])
    pretrain(config, selected.videos, out_dir=run_dir, groups=selected.groups, final_goal_ok=selected.final_goal_ok,
             goal_swap_prob=wr.GOAL_SWAP_PROB, progress=False, resume=False, on_step=on_step)
    if int(os.environ.get("RANK", "0")) == 0:
        rate = (steps - WARMUP) / (marks[steps] - marks[WARMUP])
        (run_dir / "timing.json").write_text(json.dumps({"steps_per_s": rate, "threads": threads,
                                                         "ranks": int(os.environ.get("WORLD_SIZE", "1"))}))


def run(stage: int, setup: str, *, steps: int, data_dir: Path, run_dir: Path, port: int) -> dict[str, Any]:
    """One set-up's run of ``stage`` in a fresh process: its rate and the digest of the tensors it wrote."""
    from weights_reproduce import tensor_digest

    ranks, threads = SETUPS[setup]
    args = [__file__, "--worker", "--stage", str(stage), "--steps", str(steps), "--threads", str(threads),
            "--data", str(data_dir), "--run-dir", str(run_dir)]
    if ranks == 1:
        command = [sys.executable, *args]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
                   f"--master_port={port}", *args]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    log = run_dir.with_suffix(".log")
    start = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"stage {stage}, {setup}: the run failed (exit {done.returncode}); its output, {log}, ends:\n"
                           + log.read_text()[-3000:])
    timing = json.loads((run_dir / "timing.json").read_text())
    return {"stage": stage, "setup": setup, "ranks": ranks, "threads": threads, "steps": steps,
            "steps_per_s": timing["steps_per_s"], "wall_s": time.perf_counter() - start,
            "digest": tensor_digest(run_dir / "encoder" / "model.safetensors")}


def measure(*, stages: Sequence[int], steps: int, data_dir: Path, scratch: Path) -> list[dict[str, Any]]:
    rows = []
    for stage in stages:
        base = None
        ddp_setup = next(name for name, (ranks, _) in SETUPS.items() if ranks > 1)  # run twice: do its runs agree?
        for k, setup in enumerate([*SETUPS, ddp_setup]):
            row = run(stage, setup, steps=steps, data_dir=data_dir, run_dir=scratch / f"stage{stage}_{k}", port=29500 + k)
            row["repeat"] = k == len(SETUPS)
            base = row if base is None else base
            row["speedup"] = row["steps_per_s"] / base["steps_per_s"]
            row["same_as_recipe"] = row["digest"] == base["digest"]
            rows.append(row)
            print(f"[recipe_speed] stage {stage}, {setup}{' (again)' if row['repeat'] else ''}: {row['steps_per_s']:.2f} "
                  f"steps/s ({row['speedup']:.2f}x), tensors {row['digest'][:16]}", flush=True)
        ddp = [r for r in rows if r["stage"] == stage and r["ranks"] > 1]
        for r in ddp:
            r["ddp_runs_agree"] = len({d["digest"] for d in ddp}) == 1
    return rows


# ------------------------------------------------------------------------------------------ the value head
#: videos per timed block of the value head's feature pass
VH_BLOCK_VIDEOS = 60


def value_head_encoder(weights: str = "td-sim") -> Any:
    """A bundled encoder's CNN without its value head (the encoder :func:`~vip_rl.pretrain.fit_value_head` fits on,
    up to the bundled head's 1/sqrt(2) scale, which the features before it do not see).

    Raises:
        ValueError: the bundled encoder has no value head.
    """
    from vip_rl import pretrain as trainer
    from vip_rl.encoders import load_encoder
    from vip_rl.encoders.factory import encoder_from_config

    bundled = load_encoder(weights)
    if not bundled.config.get("value_dim"):
        raise ValueError(f"{weights} has no value head to leave out")
    encoder = encoder_from_config(trainer._cnn_config(bundled.config) | {"text": None}, device="cpu")
    encoder.vision.load_state_dict({k: v for k, v in bundled.vision.state_dict().items() if not k.startswith("value.")})
    return encoder.eval()


def measure_value_head(*, data_dir: Path, steps: int, blocks: int) -> dict[str, Any]:
    """The value-head stage serial and with side threads, in alternating blocks in this process (one torch thread)."""
    import dataclasses as dc

    import numpy as np
    import torch

    from vip_rl import pretrain as trainer
    from vip_rl import weights_recipe as wr

    torch.set_num_threads(wr.RECIPE_THREADS)
    data = wr.load_training_videos(wr.collect_data(data_dir, progress=False), camera=wr.DATA.camera).select(wr.TRAIN_KINDS["td-sim"])
    encoder = value_head_encoder()
    frames_of = [np.asarray(v.frames) for v in data.videos]
    trainer_setting = trainer.SIDE_THREADS
    trainer.SIDE_THREADS = True  # the pool even where no core is spare: the measurement says what it is worth
    try:
        with trainer._side_threads(torch.device("cpu"), workers=2) as pool:
            assert pool is not None  # internal: forced on above
            ways = {"serial": map, "side threads": pool.map}
            embed = lambda frames: trainer.cnn_features(encoder, frames)  # noqa: E731
            first = frames_of[:VH_BLOCK_VIDEOS]
            same_features = all(torch.equal(a, b) for a, b in zip(map(embed, first), pool.map(embed, first)))
            seconds, frames = {w: 0.0 for w in ways}, {w: 0 for w in ways}
            feats: list[Any] = []
            for k in range(0, len(frames_of), VH_BLOCK_VIDEOS):  # alternate the ways block by block
                way = list(ways)[(k // VH_BLOCK_VIDEOS) % 2]
                block = frames_of[k : k + VH_BLOCK_VIDEOS]
                start = time.perf_counter()
                feats += list(ways[way](embed, block))
                seconds[way] += time.perf_counter() - start
                frames[way] += sum(len(f) for f in block)
            flat = torch.cat(feats).float()
            mean, std = trainer._feature_scale(flat)
            x = (flat - mean) / std
            lengths = [len(f) for f in frames_of]
            config = dc.replace(wr.VALUE_HEADS["td-sim"], steps=steps, views=1)
            step_seconds = {w: [] for w in ways}
            fitted: dict[str, Any] = {}
            for _ in range(blocks):
                for way, side in (("serial", None), ("side threads", pool)):
                    start = time.perf_counter()
                    out, _stats = trainer._fit_value_mlp(encoder, x, mean, std, lengths, groups=data.groups,
                                                         final_goal_ok=data.final_goal_ok, config=config, progress=False, side=side)
                    step_seconds[way].append((time.perf_counter() - start) / steps)
                    fitted.setdefault(way, out.state_dict())
    finally:
        trainer.SIDE_THREADS = trainer_setting
    same_mlp = all(torch.equal(a, b) for a, b in zip(fitted["serial"].values(), fitted["side threads"].values()))
    feature_rate = {w: frames[w] / seconds[w] for w in ways}
    ms_per_step = {w: 1000 * float(np.mean(step_seconds[w])) for w in ways}
    recipe = wr.VALUE_HEADS["td-sim"]
    recipe_frames = sum(lengths)  # the recipe's value head also embeds the planner rounds' videos: per frame the same work
    minutes = {w: (recipe.views * recipe_frames / feature_rate[w] + recipe.steps * ms_per_step[w] / 1000) / 60 for w in ways}
    return {"videos": len(frames_of), "frames": recipe_frames, "vh_steps": steps, "vh_blocks": blocks,
            "feature_frames_per_s": feature_rate, "ms_per_step": ms_per_step, "same_features": same_features,
            "same_mlp": same_mlp, "recipe_views": recipe.views, "recipe_steps": recipe.steps, "recipe_minutes": minutes}


# ------------------------------------------------------------------------------------------ report
def render_value_head(res: dict[str, Any]) -> str:
    v = res["value_head"]
    serial, side = v["feature_frames_per_s"]["serial"], v["feature_frames_per_s"]["side threads"]
    step_serial, step_side = v["ms_per_step"]["serial"], v["ms_per_step"]["side threads"]
    lines = ["# `make weights`: td-sim's value head on one thread, serial or with side threads", "",
             _report.generated_by(res["provenance"]), "",
             f"One process, one torch thread, the two ways in alternating blocks (this machine's speed drifts within a "
             f"minute). Feature pass: the bundled td-sim's CNN (its value head left out) over {v['videos']} of the "
             f"recipe's videos ({v['frames']} frames) in blocks of {VH_BLOCK_VIDEOS} videos. MLP: {v['vh_blocks']} fits "
             f"of {v['vh_steps']} steps each way (the recipe's batch, one view). Side threads: the feature pass on two "
             "threads, the target MLP's forward beside the online one's (`vip_rl.pretrain._side_threads`).", ""]
    lines += _report.table(["part", "serial", "side threads", "speed-up", "same tensors"], [
        ["feature pass (frames/s)", f"{serial:.0f}", f"{side:.0f}", f"{side / serial:.2f}x", "yes" if v["same_features"] else "**no**"],
        ["MLP step (ms)", f"{step_serial:.1f}", f"{step_side:.1f}", f"{step_serial / step_side:.2f}x", "yes" if v["same_mlp"] else "**no**"],
    ])
    m = v["recipe_minutes"]
    lines += ["", f"At the recipe's scale ({v['recipe_views']} views of {v['frames']} frames, {v['recipe_steps']} MLP steps, "
              f"these videos): **{m['serial']:.1f} min serial, {m['side threads']:.1f} min with side threads** "
              f"({m['serial'] - m['side threads']:.1f} min less).", ""]
    return "\n".join(lines + _report.notes_section(res.get("notes"))) + "\n"


def render(res: dict[str, Any]) -> str:
    if "value_head" in res:
        return render_value_head(res)
    lines = ["# `make weights`: td-sim's training stages on one thread, two threads and two DDP ranks", "",
             _report.generated_by(res["provenance"]), "",
             f"Each row: {res['steps']} optimizer steps of the stage's recorded config (the bundled td-sim's training record) "
             f"on the recipe's training videos, in a fresh process; steps per second after the first {WARMUP}. "
             "Speed-up: against the recipe's set-up (1 process, 1 thread) on the same stage, in the same run. "
             "Tensors: SHA-256 of the run's weights (first 16 hex digits).", ""]
    body = []
    for r in res["rows"]:
        body.append([str(r["stage"]), r["setup"] + (" (again)" if r.get("repeat") else ""), f"{r['steps_per_s']:.2f}",
                     f"{r['speedup']:.2f}x", f"`{r['digest'][:16]}`", "yes" if r["same_as_recipe"] else "no"])
    lines += _report.table(["stage", "set-up", "steps/s", "speed-up", "tensors", "same tensors as the recipe's set-up"], body)
    lines.append("")
    for stage in sorted({r["stage"] for r in res["rows"]}):
        ddp = [r for r in res["rows"] if r["stage"] == stage and r["ranks"] > 1]
        if ddp:
            agree = ddp[0].get("ddp_runs_agree")
            lines.append(f"- stage {stage}: two DDP runs write {'the same' if agree else '**different**'} tensors; "
                         f"DDP against one process: {'the same' if ddp[0]['same_as_recipe'] else 'other'} tensors "
                         f"(another draw of the recipe).")
    lines += [""] + _report.notes_section(res.get("notes"))
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help=f"optimizer steps per run (> {WARMUP}; default 300)")
    parser.add_argument("--stages", type=int, nargs="+", default=[1, 6], help="td-sim image stages to measure (1-6)")
    parser.add_argument("--data", type=Path, default=Path("runs/weights/data"),
                        help="the recipe's training videos (collected there when missing, as `make weights` does)")
    parser.add_argument("--scratch", type=Path, default=None, help="where the runs go (default: a temporary folder, removed after)")
    parser.add_argument("--notes", type=Path, default=NOTES, help="markdown notes appended to the report")
    parser.add_argument("--part", choices=["stages", "value-head"], default="stages",
                        help="the image stages (default) or the value head (default --out: results/recipe_speed_value_head)")
    parser.add_argument("--vh-steps", type=int, default=200, help="--part value-head: MLP steps per timed fit (default 200)")
    parser.add_argument("--vh-blocks", type=int, default=4, help="--part value-head: timed fits each way (default 4)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stage", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    _report.add_output_args(parser, "recipe_speed")
    args = parser.parse_args(argv)
    if args.part == "value-head" and args.out == _report.RESULTS / "recipe_speed":
        args.out = _report.RESULTS / "recipe_speed_value_head"
    if args.worker:
        worker(args.stage, args.steps, args.threads, args.data, args.run_dir)
        return 0
    if args.render_only:
        return _report.render_only_with_notes(args.out, render, args.notes)
    if args.part == "value-head":
        for flag, value in (("--vh-steps", args.vh_steps), ("--vh-blocks", args.vh_blocks)):
            if value < 1:
                parser.error(f"{flag} must be >= 1, got {value}")
        from vip_rl import weights_recipe as wr

        wr.collect_data(args.data, progress=False, workers=os.cpu_count() or 1)
        res = {"provenance": _report.provenance(__file__, argv), "part": "value-head",
               "value_head": measure_value_head(data_dir=args.data, steps=args.vh_steps, blocks=args.vh_blocks),
               "notes": _report.read_notes(args.notes)}
        _report.write(args.out, res, render(res))
        return 0
    if args.steps <= WARMUP:
        parser.error(f"--steps must be > {WARMUP} (the warm-up steps are left out of the rate), got {args.steps}")
    try:
        for stage in args.stages:
            stage_config(stage)
    except ValueError as err:
        parser.error(f"--stages: {err}")
    from vip_rl import weights_recipe as wr

    # collected here, once, so that the runs (two DDP ranks among them) only read the files
    wr.collect_data(args.data, progress=False, workers=os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="recipe_speed-", dir=args.scratch) as scratch:
        try:
            rows = measure(stages=args.stages, steps=args.steps, data_dir=args.data, scratch=Path(scratch))
        except RuntimeError as err:
            print(f"recipe_speed: {err}", file=sys.stderr)
            return 1
    res = {"provenance": _report.provenance(__file__, argv), "steps": args.steps, "rows": rows,
           "notes": _report.read_notes(args.notes)}
    _report.write(args.out, res, render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
