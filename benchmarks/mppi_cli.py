"""What a new user gets from ``vip-rl mppi`` with its defaults (issue 17's command check).

Runs the command exactly as a user would, in a subprocess::

    vip-rl mppi --env vip_envs/OpenDrawer-v0 --goal expert --episodes 5 --out <tmp>

(no ``--encoder``: the default td-sim; no planner flags: the defaults of ``vip_rl.planning.cli``), then the same command
with each ``--variant`` (extra flags appended: by default the command's earlier budgets, H=20 of sessions 7-20,
``--horizon 20``, and K=64, H=10 before session 7), and reads each run's ``results.json``. Target: at least 4 of the
5 episodes succeed with the defaults. Writes ``benchmarks/results/mppi_cli.json`` and ``.md``. About 1-3 minutes on 2 cores.

Usage:
  MUJOCO_GL=egl .venv/bin/python benchmarks/mppi_cli.py [--quick] [--variant 'K=64, H=10=--num-samples 64 --horizon 10']
  .venv/bin/python benchmarks/mppi_cli.py --render-only
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import _report
from _common import vip_rl_script

HERE = Path(__file__).resolve().parent
TARGET_SUCCESSES = 4
DEFAULT_VARIANTS = ("K=32, H=20 (the default of sessions 7-20)=--horizon 20",
                    "K=64, H=10 (the default before session 7)=--num-samples 64 --horizon 10")


def run_command(args: list[str], *, workdir: Path) -> dict[str, Any]:
    """Run ``vip-rl mppi <args> --out <workdir>/run``; return its ``results.json`` plus the command and wall time."""
    out = workdir / "run"
    cmd = [vip_rl_script(), "mppi", *args, "--out", str(out)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=HERE.parent, capture_output=True, text=True,
                          env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")})
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited with {proc.returncode}:\n{proc.stderr[-2000:]}")
    results = json.loads((out / "results.json").read_text())
    shown = ["vip-rl", "mppi", *args]
    return {"command": shlex.join(shown), "seconds": round(seconds, 1), "results": results}


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``'LABEL=FLAGS'`` -> (label, flag list); the last ``=`` before the first flag splits them."""
    label, sep, flags = text.partition("=--")
    if not sep or not label.strip():
        raise argparse.ArgumentTypeError(f"--variant must be 'LABEL=--flag value ...', got {text!r}")
    return label.strip(), shlex.split("--" + flags)


def summary(run: dict[str, Any]) -> dict[str, Any]:
    episodes = run["results"]["episodes"]
    return {"successes": sum(bool(e["success"]) for e in episodes), "episodes": len(episodes),
            "steps": [int(e["steps"]) for e in episodes]}


def render(res: dict[str, Any]) -> str:
    lines = ["# `vip-rl mppi` with its defaults", "", _report.generated_by(res["provenance"]), "",
             f"Target: the default command succeeds in at least {res['target_successes']} of {res['episodes']} episodes "
             "(issue 17). Each row runs the command in a subprocess as a user would; a variant appends flags.", ""]
    rows = []
    for label, run in res["runs"].items():
        s = summary(run)
        config = run["results"].get("config", {})
        met = s["successes"] >= res["target_successes"] if label == "defaults" else None
        rows.append([label, f"`{run['command']}`", f"K={config.get('num_samples', '?')}, H={config.get('horizon', '?')}",
                     f"{s['successes']} / {s['episodes']}", " ".join(map(str, s["steps"])), f"{run['seconds']:.0f}",
                     _report.status(met) if met is not None else "-"])
    lines += _report.table(["run", "command", "planner", "successes", "steps per episode", "wall s", "target"], rows,
                           align=["", "", "", "r", "", "r", ""])
    lines += ["", "Steps per episode: the step at which the episode ended (success ends it; 100 is the limit)."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 episode of 10 steps at K=8, H=4 (a smoke run, not results)")
    p.add_argument("--env", default="vip_envs/OpenDrawer-v0")
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--variant", action="append", type=parse_variant, default=None,
                   help="'LABEL=--flag value ...': also run the command with these flags (repeatable; default: "
                        f"{DEFAULT_VARIANTS[0]!r})")
    _report.add_output_args(p, "mppi_cli")
    args = p.parse_args(argv)
    if args.render_only:
        return _report.render_only(args.out, render)
    variants = args.variant if args.variant is not None else [parse_variant(v) for v in DEFAULT_VARIANTS]
    episodes = 1 if args.quick else args.episodes
    base = ["--env", args.env, "--goal", "expert", "--episodes", str(episodes)]
    quick = ["--num-samples", "8", "--horizon", "4", "--max-steps", "10"] if args.quick else []
    runs: dict[str, Any] = {}
    for label, flags in [("defaults", []), *variants]:
        with tempfile.TemporaryDirectory(prefix="mppi_cli_") as tmp:
            runs[label] = run_command([*base, *flags, *quick], workdir=Path(tmp))
        s = summary(runs[label])
        print(f"{label}: {s['successes']} / {s['episodes']} ({runs[label]['seconds']:.0f} s)", flush=True)
    res = {"provenance": _report.provenance(__file__, argv, quick=args.quick), "episodes": episodes,
           "target_successes": min(TARGET_SUCCESSES, episodes), "runs": runs}
    _report.write(args.out, res, render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
