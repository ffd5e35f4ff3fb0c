"""MPPI ablations: what each change did on the tasks the image goal fails on (OpenDrawer, FlipSwitch).

Rows: privileged stand-ins for a perfect embedding (goal state with the end effector and objects, objects
only, goal-state subgoals from a demo) to tell the planner from the representation, then the planner and cost
changes tried on the learned embeddings (sum over the horizon, longer horizon, more samples, progress cost,
demo subgoals, same-seed goal, another camera). Base settings as ``mppi_success.py`` (K=32, H=10); 6 episodes
per cell. The findings (``benchmarks/notes/mppi.md``, covering the success, speed and ablation tables) are
rendered after the table.

Writes ``benchmarks/results/mppi_ablations.json`` and ``.md`` (``--out`` to write elsewhere). ``--merge``
keeps the rows of earlier results files (rows add up across runs) and names the run that measured each.

Usage:
  MUJOCO_GL=egl .venv/bin/python benchmarks/mppi_ablations.py --quick --out /tmp/mppi_ablations
  MUJOCO_GL=egl .venv/bin/python benchmarks/mppi_ablations.py --ablations 'td-sim, same-seed goal image' --merge benchmarks/results/mppi_ablations.json
  .venv/bin/python benchmarks/mppi_ablations.py --render-only     # after editing the notes
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

import _report
from _mppi_cells import add_planner_args, extra_encoders, load_encoders, run_cells, suite_config
from vip_rl.planning import MPPIConfig

NOTES = _report.NOTES / "mppi.md"
Ablation = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]

# name -> (method, MPPIConfig overrides, run_method kwargs)
ABLATIONS: dict[str, Ablation] = {
    "true reward (oracle)": (dict(kind="oracle"), {}, {}),
    "goal state, EE+objects, other-seed goal": (dict(kind="goalstate"), {}, {}),
    "goal state, EE+objects, same-seed goal": (dict(kind="goalstate", same_seed_goal=True), {}, {}),
    "goal state, objects only, other-seed goal": (dict(kind="goalstate-objects"), {}, {}),
    "goal state, objects only, H=30, 3 iterations": (dict(kind="goalstate-objects"), dict(horizon=30, iterations=3), {}),
    "goal state, EE+objects, sum over horizon": (dict(kind="goalstate", when="sum"), {}, {}),
    "goal-state subgoals from an other-seed demo (lookahead 10)": (dict(kind="goalstate-subgoals", lookahead=10), {}, {}),
    "goal-state subgoals, lookahead 5": (dict(kind="goalstate-subgoals", lookahead=5), {}, {}),
    "random encoder, image goal": (dict(kind="image", encoder="random"), {}, {}),
    "random encoder, subgoals from an other-seed demo (lookahead 10)": (dict(kind="image-subgoals", encoder="random", lookahead=10), {}, {}),
    "liv-sim, text goal": (dict(kind="text", encoder="liv-sim"), {}, {}),
    "liv-sim, text goal, sum over horizon (render every 2)": (dict(kind="text", encoder="liv-sim", when="sum"), {}, dict(render_every=2)),
}


def encoder_ablations(enc: str, camera: str | None = None) -> dict[str, Ablation]:
    """The image-goal variants tried for one (VIP-style) encoder (rendering ``camera`` if given)."""
    if camera is not None:
        return {name: (method, cfg, {**kwargs, "camera": camera}) for name, (method, cfg, kwargs)
                in encoder_ablations(enc).items() if "camera" not in kwargs}
    return {
        f"{enc}, image goal, final step": (dict(kind="image", encoder=enc), {}, {}),
        f"{enc}, image goal, sum over horizon (render every 2)": (dict(kind="image", encoder=enc, when="sum"), {}, dict(render_every=2)),
        f"{enc}, image goal, H=20, 2 iterations": (dict(kind="image", encoder=enc), dict(horizon=20, iterations=2), {}),
        # K=32 at H=20: the `vip-rl mppi` default of sessions 7-20, the compute of K=64 at H=10 spent on a longer horizon
        f"{enc}, image goal, H=20": (dict(kind="image", encoder=enc), dict(horizon=20), {}),
        f"{enc}, image goal, no warm start": (dict(kind="image", encoder=enc), dict(warm_start=False), {}),
        f"{enc}, image goal, K=128": (dict(kind="image", encoder=enc), dict(num_samples=128), {}),
        f"{enc}, image goal, sigma 1.0, no smoothing": (dict(kind="image", encoder=enc), dict(noise_sigma=1.0, noise_beta=0.0), {}),
        f"{enc}, progress cost (discount 0.9, render every 2)": (dict(kind="image", encoder=enc, cost="progress", discount=0.9), {}, dict(render_every=2)),
        f"{enc}, subgoals from an other-seed demo (lookahead 10)": (dict(kind="image-subgoals", encoder=enc, lookahead=10), {}, {}),
        f"{enc}, subgoals, lookahead 5": (dict(kind="image-subgoals", encoder=enc, lookahead=5), {}, {}),
        f"{enc}, subgoals + final goal (weight 0.5)": (dict(kind="image-subgoals", encoder=enc, lookahead=10, final_weight=0.5), {}, {}),
        f"{enc}, same-seed goal image": (dict(kind="image", encoder=enc, same_seed_goal=True), {}, {}),
        f"{enc}, left camera": (dict(kind="image", encoder=enc), {}, dict(camera="left")),
    }


ABLATIONS.update(encoder_ablations("vip-sim"))
ABLATIONS.update(encoder_ablations("td-sim"))

#: What the default full run measures on the failing tasks: privileged stand-ins for a perfect embedding
#: (is it the planner or the representation?), then the planner changes tried on the real embeddings.
DEFAULT_ABLATIONS = (
    "goal state, EE+objects, other-seed goal",
    "goal state, objects only, other-seed goal",
    "goal-state subgoals from an other-seed demo (lookahead 10)",
    "vip-sim, image goal, sum over horizon (render every 2)",
    "vip-sim, image goal, H=20, 2 iterations",
    "vip-sim, image goal, K=128",
    "vip-sim, progress cost (discount 0.9, render every 2)",
    "vip-sim, subgoals, lookahead 5",
    "vip-sim, same-seed goal image",
    "liv-sim, text goal, sum over horizon (render every 2)",
)


def run_ablations(names: list[str], tasks: list[str], *, episodes: int, base: MPPIConfig, seed: int,
                  encoders: dict[str, Any], encoder_specs: dict[str, str], max_steps: int | None, workers: int = 1,
                  torch_threads: int = 1) -> dict[str, Any]:
    """One row per ablation name: its config overrides and a cell per task (or ``skipped``)."""
    table: dict[str, Any] = {}
    jobs = []
    for name in names:
        method, overrides, kwargs = ABLATIONS[name]
        if method.get("encoder") is not None and method["encoder"] not in encoders:
            table[name] = {"skipped": f"encoder {method['encoder']} not available"}
            continue
        cfg = {**base.__dict__, **overrides}
        MPPIConfig(**cfg)  # checked here, before any worker starts
        table[name] = {"config": overrides, "tasks": {}}
        jobs += [dict(name=name, task=task, method=method, episodes=episodes, cfg=cfg, seed=seed, max_steps=max_steps,
                      kwargs=kwargs, encoder_specs=encoder_specs, torch_threads=torch_threads) for task in tasks]
    for job, cell in zip(jobs, run_cells(jobs, workers=workers, encoders=encoders, label="ablation")):
        cell.pop("per_episode")
        table[job["name"]]["tasks"][job["task"]] = cell
    return table


def merge(res: dict[str, Any], earlier: dict[str, Any]) -> None:
    """Ablation tables add up: keep ``earlier``'s rows this run did not measure, naming the run that measured each."""
    table = res["ablations"]["table"]
    for name, row in earlier["ablations"]["table"].items():
        if name not in table:
            table[name] = row
            _report.add_part(res["provenance"], f"row {name}", earlier["provenance"])


def render(res: dict[str, Any]) -> str:
    a = res["ablations"]
    tasks = sorted({t for row in a["table"].values() for t in row.get("tasks", {})})
    lines = ["# MPPI ablations: what each change did", "", _report.generated_by(res["provenance"]), "",
             f"Base K={a['base']['num_samples']}, H={a['base']['horizon']}, iterations={a['base']['iterations']} "
             "(other settings as the success table); cell = success rate / mean final task progress (episodes).", ""]
    rows = []
    for name, row in a["table"].items():
        if "skipped" in row:
            rows.append([name, *(["n/a"] * len(tasks))])
            continue
        rows.append([name, *(f"{row['tasks'][t]['success_rate']:.2f} / {row['tasks'][t]['mean_progress']:.2f} ({row['tasks'][t]['episodes']})"
                             if t in row["tasks"] else "-" for t in tasks)])
    lines += _report.table(["variant", *tasks], rows)
    lines.append("")
    if res.get("notes"):
        lines += ["## Findings (MPPI success, speed and ablations)", "", *res["notes"], ""]
    return "\n".join(lines)


def update_notes(res: dict[str, Any], path: str | None) -> bool:
    """Copy the findings file into ``res["notes"]`` (prose, not measurements); True if it changed."""
    notes = _report.read_notes(path)
    if notes is None or notes == res.get("notes"):
        return False
    res["notes"] = notes
    return True


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes (smoke run: 1 episode, K=8, H=4, 10 steps)")
    p.add_argument("--ablations", default="default", help="';'-separated ablation names, 'default' (DEFAULT_ABLATIONS) or 'all'")
    p.add_argument("--ablation-tasks", default="OpenDrawer,FlipSwitch", help="default: the two tasks the image goal fails on")
    p.add_argument("--episodes", type=int, default=6, help="episodes per cell")
    add_planner_args(p)
    p.add_argument("--notes", default=str(NOTES), help="findings rendered after the table (default benchmarks/notes/mppi.md)")
    p.add_argument("--merge", default=None, help="comma-separated earlier results of this script whose rows are kept")
    _report.add_output_args(p, "mppi_ablations")
    args = p.parse_args(argv)
    if args.render_only:  # the render picks up edits to the notes file
        return _report.render_only(args.out, render, update=lambda res: update_notes(res, args.notes))
    torch.set_num_threads(args.torch_threads)
    try:
        encoders, encoder_specs, cameras = extra_encoders(args.extra_encoders, args.seed)
    except (ValueError, FileNotFoundError) as exc:
        p.error(str(exc))
    for name, camera in cameras.items():
        ABLATIONS.update(encoder_ablations(name, camera))
    names = {"all": list(ABLATIONS), "default": list(DEFAULT_ABLATIONS)}.get(args.ablations) or args.ablations.split(";")
    unknown = [n for n in names if n not in ABLATIONS]
    if unknown:
        p.error(f"--ablations: unknown {unknown}; known: {list(ABLATIONS)}")
    quick = dict(num_samples=8, horizon=4) if args.quick else dict(num_samples=args.samples, horizon=args.horizon)
    base = suite_config(**quick, iterations=args.iterations, sigma=args.sigma, temperature=args.temperature, beta=args.beta)
    load_encoders({ABLATIONS[n][0].get("encoder") for n in names} - {None}, encoder_specs, encoders, seed=args.seed)
    episodes = 1 if args.quick else args.episodes
    tasks = args.ablation_tasks.split(",")
    res: dict[str, Any] = {
        "provenance": _report.provenance(__file__, argv, quick=args.quick),
        "ablations": {"episodes": episodes, "base": dict(base.__dict__), "tasks": tasks,
                      "table": run_ablations(names, tasks, episodes=episodes, base=base, seed=args.seed, encoders=encoders,
                                             encoder_specs=encoder_specs, max_steps=10 if args.quick else args.max_steps,
                                             workers=args.workers, torch_threads=args.torch_threads)},
    }
    for path in filter(None, (args.merge or "").split(",")):
        merge(res, _report.read(Path(path)))
    update_notes(res, args.notes)
    _report.write(args.out, res, render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
