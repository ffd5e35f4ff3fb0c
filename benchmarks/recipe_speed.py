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

Usage:
  .venv/bin/python benchmarks/recipe_speed.py [--steps 300] [--stages 1 6] [--data DIR] [--out STEM]
  .venv/bin/python benchmarks/recipe_speed.py --render-only
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


# ------------------------------------------------------------------------------------------ report
def render(res: dict[str, Any]) -> str:
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
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stage", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    _report.add_output_args(parser, "recipe_speed")
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.stage, args.steps, args.threads, args.data, args.run_dir)
        return 0
    if args.render_only:
        return _report.render_only_with_notes(args.out, render, args.notes)
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
