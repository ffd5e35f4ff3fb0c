"""How much do ``--workers`` save in ``make weights``? The recipe's video collection on 1 and on N processes.

``python -m vip_rl.weights_recipe`` collects its videos twice: the training videos before the first stage
(:func:`vip_rl.weights_recipe.collect_data`), and a round of planner detours before each DAgger stage of td-sim
(:func:`~vip_rl.weights_recipe.collect_all_planner_detours`: MPPI with the encoder so far, then the expert). Each file
has its own seed, so ``--workers`` may collect them on several processes without changing a byte. This measures both
collections with one worker and with ``--workers N``, one after the other in the same run (the same machine and
load), into scratch directories, and checks that the two give the same files (every dataset and attribute equal).

The planner round uses ``--encoder`` (default the bundled td-sim): the recipe's round uses the stage before it, but
the work per episode is the same. Training, the rest of the recipe, runs on one thread and is not measured here.

Usage:
  .venv/bin/python benchmarks/weights_collect.py [--workers 2] [--quick] [--out /tmp/x]
  .venv/bin/python benchmarks/weights_collect.py --render-only
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

import _common  # noqa: F401  (library path, MUJOCO_GL default)
import _report

NOTES = Path(__file__).resolve().parent / "notes" / "weights_collect.md"


def h5_contents(path: Path) -> dict[str, Any]:
    """Every dataset and attribute of an HDF5 file, by path (``"name"`` for a dataset, ``"name@attr"`` for an attribute)."""
    import h5py

    out: dict[str, Any] = {}
    with h5py.File(path, "r") as f:
        out.update({f"@{k}": np.asarray(v) for k, v in f.attrs.items()})

        def visit(name: str, obj: Any) -> None:
            out.update({f"{name}@{k}": np.asarray(v) for k, v in obj.attrs.items()})
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]

        f.visititems(visit)
    return out


def same_files(first: Sequence[Path], second: Sequence[Path]) -> list[str]:
    """Names of the files that differ between two collections (another name, key, shape or value); [] when equal."""
    differ = []
    for a, b in zip(first, second):
        if a.name != b.name:
            differ.append(f"{a.name} / {b.name}")
            continue
        x, y = h5_contents(a), h5_contents(b)
        if set(x) != set(y) or any(x[k].shape != y[k].shape or not np.array_equal(x[k], y[k]) for k in x):
            differ.append(a.name)
    if len(first) != len(second):
        differ.append(f"{len(first)} files against {len(second)}")
    return differ


def timed(collect: Callable[[Path, int], list[Path]], scratch: Path, workers: int) -> tuple[float, list[Path]]:
    out = scratch / f"workers{workers}"
    start = time.perf_counter()
    paths = collect(out, workers)
    return time.perf_counter() - start, paths


def measure(*, workers: int, encoder: str, recipe: Any, scratch: Path) -> list[dict[str, Any]]:
    """One row per collection: seconds with 1 and with ``workers`` processes, the ratio and the files' equality."""
    import torch

    from vip_rl import weights_recipe as wr
    from vip_rl.encoders import load_encoder

    threads = torch.get_num_threads()
    torch.set_num_threads(wr.RECIPE_THREADS)  # as the recipe's main process runs (the workers set it themselves)
    try:
        enc = load_encoder(encoder)
        jobs = {
            "training videos (`collect_data`)": lambda out, n: wr.collect_data(out, recipe, progress=False, workers=n),
            "planner detours, one round (`collect_all_planner_detours`)":
                lambda out, n: wr.collect_all_planner_detours(out, enc, 1, recipe, workers=n),
        }
        rows = []
        for k, (label, collect) in enumerate(jobs.items()):
            base = scratch / f"job{k}"
            one_s, one = timed(collect, base, 1)
            many_s, many = timed(collect, base, workers)
            differ = same_files(one, many)
            rows.append({"collection": label, "files": len(one), "seconds_1": one_s, "seconds_n": many_s,
                         "speedup": one_s / many_s, "same_files": not differ, "differing": differ})
            print(f"[weights_collect] {label}: {len(one)} files, {one_s:.0f} s on 1 process, {many_s:.0f} s on {workers} "
                  f"({one_s / many_s:.2f}x), same files: {not differ}", flush=True)
        return rows
    finally:
        torch.set_num_threads(threads)


def render(res: dict[str, Any]) -> str:
    n = res["workers"]
    lines = ["# `make weights`: the video collection on 1 and on several processes", "", _report.generated_by(res["provenance"]), "",
             f"Each collection ran with one worker, then with `--workers {n}`, in the same run, into scratch directories; "
             f"recipe: {res['recipe']}; planner round with `{res['encoder']}`. Same files: every dataset and attribute of "
             "every file equal.", ""]
    lines += _report.table(["collection", "files", "1 process (s)", f"{n} processes (s)", "speed-up", "same files"],
                           [[r["collection"], r["files"], f"{r['seconds_1']:.0f}", f"{r['seconds_n']:.0f}",
                             f"{r['speedup']:.2f}x", "yes" if r["same_files"] else "**no**: " + ", ".join(r["differing"][:3])]
                            for r in res["rows"]])
    lines += [""] + [_report.target_line(f"{r['collection']}: the files do not depend on the worker count", "equal" if r["same_files"] else "differ",
                                         "equal", met=r["same_files"]) for r in res["rows"]]
    lines += _report.notes_section(res.get("notes"))
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 6), help="processes of the second measurement (default: one per core, at most 6)")
    parser.add_argument("--encoder", default="td-sim", help="encoder the planner round plans with (bundled name or path)")
    parser.add_argument("--quick", action="store_true", help="two tasks, a few episodes of each kind (a smoke run)")
    parser.add_argument("--scratch", type=Path, default=None, help="where the collections go (default: a temporary directory, removed after)")
    parser.add_argument("--notes", type=Path, default=NOTES, help="markdown notes appended to the report")
    _report.add_output_args(parser, "weights_collect")
    args = parser.parse_args(argv)
    if args.render_only:
        return _report.render_only_with_notes(args.out, render, args.notes)
    if args.workers < 2:
        parser.error(f"--workers must be >= 2 (it is compared with 1), got {args.workers}")
    from vip_rl import weights_recipe as wr

    recipe = wr.DATA
    if args.quick:
        recipe = dataclasses.replace(recipe, tasks=recipe.tasks[:2], expert_episodes=2, noisy_episodes=2, play_episodes=1,
                                     detour_episodes=1, goal_pose_detour_episodes=1, high_detour_episodes=1,
                                     planner_detour_episodes=1, planner_detour_steps=(3, 4))
    described = ("the recipe's (`weights_recipe.DATA`)" if not args.quick else
                 f"--quick: tasks {', '.join(recipe.tasks)}, 1-2 episodes per kind, one planner detour per task")
    with tempfile.TemporaryDirectory(prefix="weights_collect-", dir=args.scratch) as scratch:
        try:
            rows = measure(workers=args.workers, encoder=args.encoder, recipe=recipe, scratch=Path(scratch))
        except (FileNotFoundError, ValueError) as err:
            print(f"weights_collect: {err}", file=sys.stderr)
            return 2
    res = {"provenance": _report.provenance(__file__, argv, quick=args.quick), "workers": args.workers, "encoder": args.encoder,
           "recipe": described, "rows": rows, "notes": _report.read_notes(args.notes)}
    _report.write(args.out, res, render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
