"""MPPI success on the suite tasks: seeded episodes per (task, goal method), K=32, H=10.

Columns: MPPI with the true reward (the oracle anchor); ``td-sim`` image and text goals; ``vip-sim`` image
goal; ``liv-sim`` text goal; a random encoder's image goal; ``vip-sim`` subgoals from an other-seed demo
(lookahead 10 and 5); ``td-sim`` subgoals (lookahead 10); and, beside the fixed lookaheads, ``vip-sim`` / ``td-sim``
subgoals *decomposed* from the same demo by UVD's rule (``vip_rl.planning.decompose``, min_interval 5, smooth 3,
the same encoder): the planner aims at the next subgoal frame after the matched demo frame. Image goal = final
frame of a scripted-expert run from seed+10000; text goal = the task's first training instruction (``(held-out)``: its
first held-out paraphrase, which no training stage saw); success =
``info["success"]`` at any step within 100 steps. Target: embedding-goal success >= 0.8 x the oracle's on each task.

Writes ``benchmarks/results/mppi_success.json`` and ``.md`` (``--out`` to write elsewhere). ``--merge`` keeps
the columns of an earlier results file that this run did not measure (same planner settings), and names
the run that measured each of them.

Usage:
  MUJOCO_GL=egl .venv/bin/python benchmarks/mppi_success.py --quick --out /tmp/mppi_success
  MUJOCO_GL=egl .venv/bin/python benchmarks/mppi_success.py --methods 'td-sim image' --merge benchmarks/results/mppi_success.json
  .venv/bin/python benchmarks/mppi_success.py --render-only
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

import _report
from _common import describe_encoders
from _mppi_cells import TASKS, add_planner_args, extra_encoders, load_encoders, run_cells, suite_config

#: ``decompose_demo`` settings of the decomposed-subgoal columns (the library defaults)
DECOMPOSE = dict(min_interval=5, smooth=3)
METHODS: dict[str, dict[str, Any]] = {
    "oracle": dict(kind="oracle"),
    "vip-sim image": dict(kind="image", encoder="vip-sim"),
    "liv-sim text": dict(kind="text", encoder="liv-sim"),
    "random image": dict(kind="image", encoder="random"),
    "td-sim image": dict(kind="image", encoder="td-sim"),
    "td-sim text": dict(kind="text", encoder="td-sim"),
    # the first held-out paraphrase (vip_envs.instructions(task, "heldout")[0]), which the text fit never saw
    "td-sim text (held-out)": dict(kind="text", encoder="td-sim", split="heldout"),
    "vip-sim subgoals": dict(kind="image-subgoals", encoder="vip-sim", lookahead=10),
    # chosen after the ablation row "vip-sim, subgoals, lookahead 5" (6/6 on OpenDrawer, seeds 0-5, which are also
    # the first 6 episodes here): a selected setting, reported beside the lookahead-10 column it was compared with
    "vip-sim subgoals (lookahead 5)": dict(kind="image-subgoals", encoder="vip-sim", lookahead=5),
    # UVD subgoals of the same demo, same encoder; lookahead 1 = the next subgoal after the matched demo frame
    "vip-sim subgoals (decomposed)": dict(kind="image-subgoals", encoder="vip-sim", lookahead=1, decompose=DECOMPOSE),
    "td-sim subgoals": dict(kind="image-subgoals", encoder="td-sim", lookahead=10),
    "td-sim subgoals (decomposed)": dict(kind="image-subgoals", encoder="td-sim", lookahead=1, decompose=DECOMPOSE),
    "oracle goal-state subgoals": dict(kind="goalstate-subgoals", lookahead=10),
}
DEFAULT_METHODS = ("oracle,td-sim image,td-sim text,td-sim text (held-out),vip-sim image,liv-sim text,random image,vip-sim subgoals,"
                   "vip-sim subgoals (lookahead 5),vip-sim subgoals (decomposed),td-sim subgoals,td-sim subgoals (decomposed)")
TARGET_RATIO = 0.8


def success_deviations(table: dict[str, dict[str, Any]]) -> list[str]:
    """Deviations from the brief visible in a success table: short episode counts, skipped columns."""
    out = []
    names = list(dict.fromkeys(name for cells in table.values() for name in cells))
    short = {}
    for name in names:
        counts = {c["episodes"] for c in (cells.get(name, {}) for cells in table.values()) if "episodes" in c}
        if counts and min(counts) < 20:
            short[name] = min(counts)
    if short:
        out.append("Fewer than the 20 episodes asked for, to fit the CPU budget of the shared 2-core machine: "
                   + ", ".join(f"{name} {n}" for name, n in short.items()) + " episodes per task.")
    for name in names:
        reasons = {c["skipped"] for c in (cells.get(name, {}) for cells in table.values()) if "skipped" in c}
        if reasons:
            out.append(f"Column {name!r} n/a: {'; '.join(sorted(reasons))}.")
    return out


def merge(res: dict[str, Any], earlier: dict[str, Any], path: str) -> None:
    """Keep ``earlier``'s cells where this run has none (or skipped them); record who measured each kept column."""
    s, e = res["success"], earlier["success"]
    if e["config"] != json.loads(json.dumps(s["config"])):  # compared as written (tuples become lists)
        raise ValueError(f"--merge {path}: success config differs, cannot share a table")
    kept = []
    for task, cells in e["tasks"].items():
        for name, cell in cells.items():
            if "skipped" in s["tasks"].get(task, {}).get(name, {"skipped": ""}):
                s["tasks"].setdefault(task, {})[name] = cell
                kept.append(name)
    for name in dict.fromkeys(kept):
        _report.add_part(res["provenance"], f"column {name}", earlier["provenance"])
    for name, text in e.get("encoders", {}).items():
        s.setdefault("encoders", {}).setdefault(name, text)
    s["deviations"] = success_deviations(s["tasks"])


def render(res: dict[str, Any]) -> str:
    s = res["success"]
    c = s["config"]
    lines = ["# MPPI success on the suite tasks", "", _report.generated_by(res["provenance"]), "",
             f"MPPI K={c['num_samples']}, H={c['horizon']}, sigma={c['noise_sigma']}, lambda={c['temperature']}, "
             f"beta={c['noise_beta']}, iterations={c['iterations']}; image goal = final frame of a scripted-expert run from "
             f"another seed (seed+10000); text goal = first training instruction ('(held-out)': the first held-out "
             f"paraphrase, never trained on); success = info['success'] at any step "
             f"within {s['max_steps'] or 100} steps; episodes per cell in parentheses.", ""]
    found = list(dict.fromkeys(name for cells in s["tasks"].values() for name in cells))
    methods = [m for m in METHODS if m in found] + [m for m in found if m not in METHODS]  # related columns side by side

    def cell(c: dict[str, Any] | None, text: Any, *, skipped: bool = False) -> str:
        if c is None or "skipped" in c:
            return c.get("skipped", "n/a") if skipped and c is not None else "n/a"
        return text(c)

    lines += _report.table(["task", *methods], [[task, *(cell(cells.get(m), lambda c: f"{c['success_rate']:.2f} ({c['episodes']})")
                                                        for m in methods)] for task, cells in s["tasks"].items()])
    lines += ["", "Mean task progress at episode end / ms per command:", ""]
    lines += _report.table(["task", *methods], [[task, *(cell(cells.get(m), lambda c: f"{c['mean_progress']:.2f} / {c['ms_per_command']:.0f}",
                                                              skipped=True) for m in methods)]
                                                for task, cells in s["tasks"].items()])
    if "oracle" in methods:
        lines += ["", f"Target (embedding-goal success >= {TARGET_RATIO} x oracle's on each task):", ""]
        for m in methods:
            if m == "oracle":
                continue
            ok, total = 0, 0
            for cells in s["tasks"].values():
                c, o = cells.get(m, {}), cells.get("oracle", {})
                if "success_rate" in c and "success_rate" in o:
                    total += 1
                    # rates are k / episodes: compare exactly, not through 0.8 * 0.75 = 0.6000000000000001
                    ok += c["success_rate"] >= TARGET_RATIO * o["success_rate"] - 1e-9
            if total:
                lines.append(f"- {m}: met on {ok} of {total} tasks")
    decomposed = [m for m in methods if any("subgoals_per_demo" in cells.get(m, {}) for cells in s["tasks"].values())]
    if decomposed:
        settings = next(c["decompose"] for cells in s["tasks"].values() for c in cells.values() if "decompose" in c)
        lines += ["", "Decomposed subgoals (UVD's rule, `vip_rl.planning.decompose`, "
                  + ", ".join(f"{k} {v}" for k, v in settings.items())
                  + ", on the same expert demo and encoder as the fixed-lookahead column; the planner aims at the next "
                  "subgoal after the matched demo frame): mean subgoals per demo, the demo's final frame included / "
                  "mean demo length in frames:", ""]
        per_demo = lambda c: f"{c['subgoals_per_demo']:.2f} / {c['demo_frames']:.1f}"  # noqa: E731
        lines += _report.table(["task", *decomposed], [[task, *(cell(cells.get(m), per_demo) for m in decomposed)]
                                                      for task, cells in s["tasks"].items()])
        lines.append("")
    for name, text in s.get("encoders", {}).items():
        lines.append(f"- encoder `{name}`: {text}")
    if s.get("deviations"):
        lines += ["", "Deviations: " + " ".join(s["deviations"])]
    return "\n".join(lines + [""])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes (smoke run: 2 tasks, 1 episode, K=8, H=4, 10 steps)")
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--methods", default=DEFAULT_METHODS,
                   help=f"comma-separated columns from {list(METHODS)} (+ '<name> image' / '<name> subgoals' / '<name> text' for --extra-encoders; text: encoders with a text tower)")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--embed-episodes", type=int, default=None, help="episodes for the embedding methods (default --episodes)")
    p.add_argument("--method-episodes", default="", help="per-column episode counts, e.g. 'random image=5'")
    add_planner_args(p)
    p.add_argument("--merge", default=None, help="comma-separated earlier results of this script whose columns are kept")
    _report.add_output_args(p, "mppi_success")
    args = p.parse_args(argv)
    if args.render_only:
        return _report.render_only(args.out, render)
    torch.set_num_threads(args.torch_threads)
    try:
        encoders, encoder_specs, cameras = extra_encoders(args.extra_encoders, args.seed)
    except (ValueError, FileNotFoundError) as exc:
        p.error(str(exc))
    for name, camera in cameras.items():
        cam = {"camera": camera} if camera else {}
        METHODS[f"{name} image"] = dict(kind="image", encoder=name, **cam)
        METHODS[f"{name} subgoals"] = dict(kind="image-subgoals", encoder=name, lookahead=10, **cam)
        if encoders[name].has_text:
            METHODS[f"{name} text"] = dict(kind="text", encoder=name, **cam)
    unknown = [m for m in args.methods.split(",") if m not in METHODS]
    if unknown:
        p.error(f"--methods: unknown {unknown}; known: {list(METHODS)}")
    tasks = args.tasks.split(",")[:2] if args.quick else args.tasks.split(",")
    episodes = 1 if args.quick else args.episodes
    embed_episodes = 1 if args.quick else (args.embed_episodes or args.episodes)
    cfg = suite_config(num_samples=8 if args.quick else args.samples, horizon=4 if args.quick else args.horizon,
                       iterations=args.iterations, sigma=args.sigma, temperature=args.temperature, beta=args.beta)
    max_steps = 10 if args.quick else args.max_steps
    methods = {m: METHODS[m] for m in args.methods.split(",")}
    overrides = {k: int(v) for k, _, v in (item.rpartition("=") for item in filter(None, args.method_episodes.split(",")))}
    load_encoders({spec["encoder"] for spec in methods.values() if spec.get("encoder")}, encoder_specs, encoders, seed=args.seed)
    table: dict[str, dict[str, Any]] = {}
    jobs = []
    for task in tasks:
        table[task] = {}
        for name, spec in methods.items():
            if spec.get("encoder") is not None and spec["encoder"] not in encoders:
                table[task][name] = {"skipped": f"encoder {spec['encoder']} not available"}
                continue
            n = episodes if spec["kind"] in ("oracle", "goalstate-subgoals") else embed_episodes
            n = 1 if args.quick else overrides.get(name, n)
            table[task][name] = {}  # keeps the column order
            jobs.append(dict(name=name, task=task, method=spec, episodes=n, cfg=cfg.__dict__, seed=args.seed,
                             max_steps=max_steps, kwargs={}, encoder_specs=encoder_specs, torch_threads=args.torch_threads))
    for job, cell in zip(jobs, run_cells(jobs, workers=args.workers, encoders=encoders, label="success")):
        table[job["task"]][job["name"]] = cell
    res: dict[str, Any] = {"provenance": _report.provenance(__file__, argv, quick=args.quick),
                           "success": {"config": dict(cfg.__dict__), "max_steps": max_steps, "tasks": table,
                                       "deviations": success_deviations(table), "encoders": describe_encoders(encoders)}}
    for path in filter(None, (args.merge or "").split(",")):
        merge(res, _report.read(Path(path)), path)
    _report.write(args.out, res, render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
