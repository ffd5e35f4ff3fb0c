"""Which td-sim draw ships: the dev-seed figures and the written selection rule (issue 17).

``python benchmarks/dev_select.py --candidate NAME=WEIGHTS [...] --planning NAME=MPPI_JSON [...] [--data DIR]
[--episodes 12] [--quick] --out benchmarks/results/dev_select``

Every bundled td-sim draw since session 13 was chosen on dev seeds only, never on the benchmarks' held-out ones. Until
session 30 the rule scored planning alone (image-goal MPPI successes on OpenDrawer + PressButton, dev seeds 100-139),
and in session 30 the draw it chose gave back a held-out value bar (SlideDoor's VOC with another episode's goal,
0.969 -> 0.934) that its dev table did not score. :func:`select` is the rule since session 31, written before any new
draw was scored by it. It reads, per candidate:

* the **dev value figures** (:func:`dev_values`): :mod:`_value_metrics` on ``--episodes`` scripted-expert episodes per
  suite task reset from :data:`DEV_SEED` (``EVAL_SEED + 50000``: the held-out episodes of ``representation.py`` start
  at ``EVAL_SEED``, so none is shared; session 22's scratch dev evaluation used the same seeds): VOC with another
  episode's goal, reaching VOC, the decoy pass rate with an image and with the training instruction, and PushBlock's
  same-target figures;
* the **dev read-outs**: ridge R^2 of each task's object joints (``shortcut.PROBE_JOINTS``) from the embedding, fitted on
  the even and tested on the odd videos of the recipe's training files (``--data``, kinds ``shortcut.PROBE_KINDS``);
* the **dev planning score** from ``benchmarks/mppi_success.py --extra-encoders NAME=WEIGHTS --methods 'NAME image'
  --seed 100 --episodes 40 --tasks OpenDrawer,PressButton`` (``--planning NAME=that run's JSON``).

The rule (:func:`select`), in order:

1. **Gates**, each one of issue 17's bars that the held-out figures of the shipped td-sim met or nearly met, read on
   dev episodes with a margin (12 dev episodes per task; the session-30 draw read SlideDoor's VOC-other at 0.955 on dev
   and 0.934 held out): VOC-other >= 0.96 on every trained task except PushBlock (:data:`GATES`); reaching VOC (mean)
   >= 0.86; instruction decoy (pooled) >= 0.81; image-goal MPPI >= 36 of 40 on OpenDrawer and on PressButton.
2. Pairwise, between two draws that pass every gate (:func:`beats`): the one with more image-goal successes on
   OpenDrawer + PressButton (of 80) wins when they differ by more than :data:`PLANNING_TIE` episodes; within that band,
   the one passing more of the pooled dev image decoys wins when they differ by more than :data:`DECOY_TIE` episodes;
   within that band too, the higher mean linear read-out wins when they differ by more than :data:`READOUT_TIE`.
   Draws within all three bands are tied: neither beats the other.
3. The incumbent (``--incumbent``, the bundled file) stays unless a draw beats it. Among the draws that beat it, the
   one that beats the most of the others ships (ties: more planning, then decoy, then read-out).

Since session 42 the decoy and read-out steps have noise bands, as planning had from the start. Each band is the
largest spread seen between seeds of one recipe on the dev figures (``results/dev_stage5_draws/README.md``, session
42): the pooled decoy of 72 episodes 64 / 62 / 61 (session 39's value heads), 58 / 57 and 58 / 59 (sessions 40-41);
the mean read-out 0.607 / 0.635 (session 40). Session 41's draw had been chosen by one decoy episode of 72 and gave
the gain back on the held-out seeds.

Until session 41, step 2 tied every draw within :data:`PLANNING_TIE` of the *best* planning score and step 3 ranked all
of them at once. Session 40 found that this is not independent of irrelevant draws: a table that also held a draw
that had already lost to the incumbent moved the band and changed the winner. Under the pairwise rule a draw that does
not beat the incumbent cannot change the choice; every decision of sessions 31-40 is the same under both rules
(``results/dev_stage5_draws/README.md``, session 41).

Reported beside the rule, not part of it (session 32): each draw's **apparent decoy steps** per task
(``_value_metrics.apparent_steps``: the expert's steps left where its frames turn nearer the goal than the decoy for
good) next to the scripted expert's real steps from the same decoys (:func:`decoy_expert_steps`). On OpenDrawer it
tracks the dev planning of the session-31 draws: the colour-shuffled draws that lost the drawer read its decoy as
about 12 steps away, the bundled draw as 18 (the expert needs about 17).

Since session 35 the decoy figures leave out the decoy states that one zero action already solves
(``_value_metrics.decoy_defined``: all of PressButton's, whose goal pose presses the untouched cap). Rows scored before
then (``results/dev_select.json``) count them; compare a new candidate's decoy figures with the incumbent's rescored,
not with those rows.

Without ``--incumbent`` (a table of new draws only) every passing draw is a contender and the one beating the most of
the others ranks first. When no draw passes the gates, the rule picks none: the incumbent stays and the failed gates are
reported.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import _report

ROOT = Path(__file__).resolve().parents[1]
#: dev episodes are reset from this seed (task t: + t): :data:`_value_metrics.EVAL_SEED` + 50000
DEV_SEED = 777_000 + 50_000
#: the MPPI tasks whose image-goal successes rank the draws (the other trained tasks plan 39-40 of 40 with every draw)
PLANNING_TASKS = ("OpenDrawer", "PressButton")
#: the planning run's column
PLANNING_METHOD = "{name} image"
#: episodes per planning task in the rule's MPPI run
PLANNING_EPISODES = 40
#: two draws whose planning scores differ by at most this many episodes are tied on planning (binomial noise of 80 episodes near 0.95)
PLANNING_TIE = 3
#: two draws whose pooled dev image decoys differ by at most this many passing episodes are tied on the decoy (seeds of
#: one recipe differ by up to 3 of 72: module docstring)
DECOY_TIE = 3
#: two draws whose mean dev read-outs (R^2) differ by at most this are tied on them (seeds of one recipe: up to 0.028)
READOUT_TIE = 0.03
#: gate -> (figure key in a candidate's row, minimum)
GATES: dict[str, tuple[str, float]] = {
    "VOC-other, trained tasks except PushBlock (min)": ("voc_other_trained_min_excl_pushblock", 0.96),
    "reaching VOC (mean)": ("reach_voc_mean", 0.86),
    "instruction decoy (pooled)": ("decoy_pass_rate_text", 0.81),
    "image MPPI, OpenDrawer (of 40)": ("planning_OpenDrawer", 36),
    "image MPPI, PressButton (of 40)": ("planning_PressButton", 36),
}


# ------------------------------------------------------------------------------------------ the rule
def failed_gates(row: dict[str, Any]) -> list[str]:
    """The :data:`GATES` that ``row`` misses (a figure that is absent or NaN misses its gate)."""
    failed = []
    for label, (key, minimum) in GATES.items():
        value = row.get(key)
        if value is None or not math.isfinite(float(value)) or float(value) < minimum:
            failed.append(label)
    return failed


def beats(a: dict[str, Any], b: dict[str, Any], *, tie: int = PLANNING_TIE, decoy_tie: int = DECOY_TIE,
          readout_tie: float = READOUT_TIE) -> bool:
    """Whether draw ``a`` beats draw ``b`` (both passing every gate): more than ``tie`` more planning successes; or,
    within ``tie`` of each other, more than ``decoy_tie`` more passing dev image decoys; or, within that band too, a
    mean read-out higher by more than ``readout_tie``. Within all three bands neither draw beats the other.

    Raises:
        ValueError: the two rows' decoys were scored on different numbers of episodes (rows of different dev sets).
    """
    pa, pb = float(a["planning"]), float(b["planning"])
    if abs(pa - pb) > tie:
        return pa > pb
    (da, na), (db, nb) = decoy_passes(a), decoy_passes(b)
    if na != nb:
        raise ValueError(f"the rows' dev decoys count {na} and {nb} episodes: score both draws on the same dev set")
    if abs(da - db) > decoy_tie:
        return da > db
    ra, rb = float(a.get("readout_mean", float("nan"))), float(b.get("readout_mean", float("nan")))
    if math.isfinite(ra) and math.isfinite(rb) and abs(ra - rb) > readout_tie:
        return ra > rb
    return False


def decoy_passes(row: dict[str, Any]) -> tuple[int, int]:
    """(passing decoys, decoy episodes) of a row's pooled dev image decoy: ``decoy_pass_rate`` times its count,
    ``decoy_episodes`` (rows written before session 42 count the episodes of ``per_task``'s tasks with a decoy).

    Raises:
        ValueError: the row has no decoy count and no per-task figures to count them from.
    """
    count = row.get("decoy_episodes")
    if count is None:
        if "per_task" not in row:
            raise ValueError("a row without decoy_episodes or per_task figures: cannot count its decoy episodes")
        count = decoy_episodes(row["per_task"])
    return int(round(float(row["decoy_pass_rate"]) * count)), int(count)


def decoy_episodes(per_task: dict[str, dict[str, Any]]) -> int:
    """How many episodes the pooled image decoy counts (``_value_metrics.decoy_counts`` of the per-task decoy rates:
    the episodes whose pooled rate it is)."""
    from _value_metrics import decoy_counts

    return int(sum(decoy_counts({t: v.get("decoy_pass_rate") for t, v in per_task.items()}, per_task).values()))


def _tie_break(row: dict[str, Any]) -> tuple[float, float]:
    """How :func:`select` orders draws with equal wins after planning: the dev image decoy, then the mean read-out."""
    return float(row.get("decoy_pass_rate", -1.0)), float(row.get("readout_mean", -1.0))


def select(rows: dict[str, dict[str, Any]], *, incumbent: str | None = None, tie: int = PLANNING_TIE) -> dict[str, Any]:
    """The rule of the module docstring on ``rows`` (candidate name -> figures: :data:`GATES`' keys, ``planning``,
    ``decoy_pass_rate`` and ``readout_mean``).

    Args:
        incumbent: the name of the bundled file's row, or None when every row is a new draw.

    Returns:
        ``{"chosen": name or None, "order": names ranked (contenders first, then the other gate-passers, then the
        rest), "failed": name -> failed gates, "contenders": the incumbent and the draws that beat it (every
        gate-passer without an incumbent), "wins": contender -> how many other contenders it beats}``.

    Raises:
        ValueError: ``incumbent`` is not a row.
    """
    if incumbent is not None and incumbent not in rows:
        raise ValueError(f"incumbent {incumbent!r} is not a row ({sorted(rows)})")
    failed = {name: failed_gates(row) for name, row in rows.items()}
    passing = [name for name in rows if not failed[name]]
    if incumbent in passing:
        contenders = [incumbent] + [name for name in passing if name != incumbent and beats(rows[name], rows[incumbent], tie=tie)]
    else:
        contenders = list(passing)

    def ranked(names: list[str]) -> tuple[list[str], dict[str, int]]:
        wins = {name: sum(beats(rows[name], rows[other], tie=tie) for other in names if other != name) for name in names}
        order = sorted(names, key=lambda n: (wins[n], float(rows[n]["planning"]), *_tie_break(rows[n])), reverse=True)
        return order, wins

    def planning(name: str) -> float:
        value = float(rows[name].get("planning", float("nan")))
        return value if math.isfinite(value) else -1.0

    contender_order, wins = ranked(contenders)
    # the other gate-passers rank by their wins among all gate-passers
    rest_order = [name for name in ranked(passing)[0] if name not in contenders]
    order = contender_order + rest_order + sorted((n for n in rows if failed[n]), key=planning, reverse=True)
    return {"chosen": order[0] if passing else None, "order": order, "failed": failed, "contenders": contenders, "wins": wins}


# ------------------------------------------------------------------------------------------ figures
def planning_counts(path: Path, name: str) -> dict[str, int]:
    """Image-goal successes per :data:`PLANNING_TASKS` task in an ``mppi_success.py`` run (its JSON) for column
    ``name image``.

    Raises:
        ValueError: the file is not such a run, lacks the column or a task, or ran another number of episodes.
    """
    try:
        result = json.loads(Path(path).read_text())
        tasks = result["success"]["tasks"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not an mppi_success.py result ({exc})") from None
    column = PLANNING_METHOD.format(name=name)
    out = {}
    for task in PLANNING_TASKS:
        cell = tasks.get(task, {}).get(column)
        if cell is None:
            raise ValueError(f"{path}: no {column!r} cell for {task} (run mppi_success.py with --methods '{column}' "
                             f"--tasks {','.join(PLANNING_TASKS)})")
        if cell["episodes"] != PLANNING_EPISODES:
            raise ValueError(f"{path}: {task} ran {cell['episodes']} episodes, the rule scores {PLANNING_EPISODES}")
        out[task] = int(round(cell["success_rate"] * cell["episodes"]))
    command = result.get("provenance", {}).get("command", "")
    if "--seed 100" not in command:
        raise ValueError(f"{path}: the rule's planning run uses the dev seeds (--seed 100), this one ran {command!r}")
    return out


def dev_readouts(encoder: Any, data_dir: Path) -> dict[str, float]:
    """Ridge R^2 of each ``shortcut.PROBE_JOINTS`` task's object joints from the embedding: fitted on the even and
    tested on the odd videos (in file order) of the training files ``data_dir/<task>_<kind>_gripper.h5``."""
    import torch
    import vip_envs
    from shortcut import PROBE_JOINTS, PROBE_KINDS, _r2, _read, _ridge

    out = {}
    for task, joints in PROBE_JOINTS.items():
        cols = [list(vip_envs.STATE_LABELS).index(j) for j in joints]
        videos = [e for kind in PROBE_KINDS for e in _read(data_dir / f"{task}_{kind}_gripper.h5")]
        parts: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {0: ([], []), 1: ([], [])}
        with torch.no_grad():
            for i, e in enumerate(videos):
                parts[i % 2][0].append(encoder.encode_images(e.frames["front"]).cpu().numpy())
                parts[i % 2][1].append(e.states[:, cols].astype(np.float32))
        (tx, ty), (ex, ey) = ((np.concatenate(a), np.concatenate(b)) for a, b in (parts[0], parts[1]))
        out[task] = _r2(_ridge(tx, ty, ex), ey)
    return out


def dev_values(encoder: Any, *, episodes: int, cache: Path) -> dict[str, Any]:
    """The dev value figures of ``encoder`` (module docstring): per task and summarised."""
    import vip_envs
    from _value_metrics import collect_eval, decoy_set, pooled_decoy_pass_rate, summarise, value_metrics
    from representation import text_value_metrics
    from vip_rl.weights_recipe import HELD_OUT_TASK

    eps = collect_eval(vip_envs.TASKS, episodes, cache=cache, seed=DEV_SEED)
    decoys = decoy_set(eps, cache=cache)
    per_task = value_metrics(encoder, eps, decoys=decoys.decoys, matched_goals=decoys.matched_goals,
                             matched_decoys=decoys.matched_decoys, defined=decoys.defined, matched_defined=decoys.matched_defined)
    summary = summarise(per_task, HELD_OUT_TASK)
    if encoder.has_text:
        text = text_value_metrics(encoder, eps, decoys=decoys.decoys, defined=decoys.defined)
        summary["decoy_pass_rate_text"] = pooled_decoy_pass_rate({t: v["decoy_pass_rate_text"] for t, v in text.items()}, text)
    return {"per_task": per_task, "summary": summary, "dev_seed": DEV_SEED, "episodes_per_task": episodes}


def decoy_expert_steps(*, episodes: int, cache: Path) -> dict[str, float]:
    """Per task, the scripted expert's mean steps to success from the dev decoy states (each episode's start with the
    next episode's final end-effector pose: the decoys of :func:`dev_values`), the yardstick of each draw's
    ``decoy_apparent_steps`` (a reported column, not part of the rule)."""
    import gymnasium
    import vip_envs
    from _value_metrics import collect_eval, decoy_states, expert_steps_from

    out = {}
    for task, eps in collect_eval(vip_envs.TASKS, episodes, cache=cache, seed=DEV_SEED).items():
        env = gymnasium.make(vip_envs.env_id(task))
        env.reset(seed=0)
        states = decoy_states(env.unwrapped.layout, eps, [(i + 1) % len(eps) for i in range(len(eps))])
        env.close()
        out[task] = float(np.nanmean(expert_steps_from(task, states)))
    return out


def candidate_row(values: dict[str, Any], readouts: dict[str, float], planning: dict[str, int] | None) -> dict[str, Any]:
    """One candidate's figures as :func:`select` reads them."""
    row = {**values["summary"], "readouts": readouts, "readout_mean": float(np.mean(list(readouts.values()))) if readouts else float("nan"),
           "per_task": values["per_task"], "decoy_episodes": decoy_episodes(values["per_task"])}
    if planning is not None:
        row.update({f"planning_{task}": count for task, count in planning.items()}, planning=sum(planning.values()))
    return row


# ------------------------------------------------------------------------------------------ report
def render(result: dict[str, Any]) -> str:
    rows, choice = result["rows"], result["selection"]
    lines = ["# Dev-seed selection of a td-sim draw", "", _report.generated_by(result["provenance"]), "",
             f"Dev episodes: {result['episodes_per_task']} scripted-expert episodes per task from seed {DEV_SEED} (+ task index); "
             f"planning: `mppi_success.py --seed 100 --episodes {PLANNING_EPISODES}`, image goal, K=32, H=10. The rule "
             "(`benchmarks/dev_select.py`, written in session 31 before any draw it ranks was scored, made pairwise in "
             f"session 41, noise bands on every step since session 42): gates; then draw against draw, planning (more than "
             f"{PLANNING_TIE} episodes apart), else the dev image decoy (more than {DECOY_TIE} passing episodes apart), else "
             f"the mean linear read-out (more than {READOUT_TIE:g} apart), else neither beats the other; the incumbent "
             "stays unless a draw beats it, and among the draws that beat it the one beating the most others ships.", ""]
    tasks = list(next(iter(rows.values()))["per_task"]) if rows else []
    header = ["draw", "planning OD + PB (of 80)", "VOC-other " + " / ".join(t for t in tasks if t != result["held_out"]),
              "reach VOC", "decoy image / same-target / instruction", "decoy " + " / ".join(tasks), "PushBlock same-target VOC",
              f"{result['held_out']} VOC-other", "linear read-outs " + " / ".join(next(iter(rows.values()))["readouts"]) if rows else "",
              "decoy's apparent steps " + " / ".join(tasks), "failed gates", "contender: draws it beats", "rank"]
    body = []
    for rank, name in enumerate(choice["order"], 1):
        r = rows[name]
        pt = r["per_task"]
        passed, count = decoy_passes(r)
        body.append([name + (" (incumbent)" if name == result.get("incumbent") else ""),
                     f"{r['planning_OpenDrawer']} + {r['planning_PressButton']} = {r['planning']}" if "planning" in r else "-",
                     " / ".join(f"{pt[t]['voc_other']:.3f}" for t in tasks if t != result["held_out"]),
                     f"{r['reach_voc_mean']:.3f}", f"{r['decoy_pass_rate']:.3f} ({passed} of {count}) / {_report.fmt(r.get('decoy_pass_rate_same_target'), '{:.3f}')} / "
                     f"{_report.fmt(r.get('decoy_pass_rate_text'), '{:.3f}')}",
                     " / ".join(_report.fmt(pt[t]['decoy_pass_rate'], '{:.2f}', missing='none') for t in tasks),
                     _report.fmt(pt.get("PushBlock", {}).get("voc_same_target"), "{:.3f}"),
                     f"{pt[result['held_out']]['voc_other']:.3f}" if result["held_out"] in pt else "-",
                     " / ".join(f"{v:.3f}" for v in r["readouts"].values()),
                     " / ".join(_report.fmt(pt[t].get("decoy_apparent_steps"), "{:.1f}") for t in tasks),
                     ", ".join(choice["failed"][name]) or "none",
                     str(choice["wins"][name]) if name in choice.get("wins", {}) else "-", str(rank)])
    lines += _report.table(header, body)
    chosen = choice["chosen"]
    lines += ["", f"**Chosen: {chosen}**." if chosen else "**No draw passes every gate: none is chosen** (the incumbent stays).", ""]
    lines += ["Gates: " + "; ".join(f"{label} >= {minimum:g}" for label, (_, minimum) in GATES.items()) + ". The rule's "
              "decoy is the pooled image one (PushBlock's goal from another episode, as issue 17's 0.90 bar); the "
              "same-target column replaces PushBlock's with the same-target decoy (the pooled figure of the session 28-29 "
              "dev tables)."]
    if result.get("decoy_expert_steps"):
        lines += ["", "The decoy's apparent steps (reported, not part of the rule): the steps left on the expert episode "
                  "at the frame from which every later frame is nearer the goal than the decoy (`_value_metrics."
                  "apparent_steps`), averaged over the dev episodes. A value that counts steps reads about the scripted "
                  "expert's own steps from the same decoys: " + " / ".join(_report.fmt(result["decoy_expert_steps"].get(t), "{:.1f}") for t in tasks)
                  + "; fewer is the end-effector shortcut (the decoy looks nearer than it is)."]
    lines += _report.notes_section(result.get("notes"))
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidate", action="append", default=[], metavar="NAME=WEIGHTS",
                        help="a draw to rank: bundled name or weights file (repeatable)")
    parser.add_argument("--planning", action="append", default=[], metavar="NAME=MPPI_JSON",
                        help="the candidate's dev planning run (mppi_success.py, module docstring); without it the "
                             "candidate fails the planning gates")
    parser.add_argument("--incumbent", default=None, help="the candidate NAME that is the bundled file (marked in the table)")
    parser.add_argument("--data", default="runs/weights/data", help="the recipe's training files, for the dev read-outs")
    parser.add_argument("--quick", action="store_true", help="smoke sizes: 2 dev episodes per task")
    parser.add_argument("--episodes", type=int, default=None, help="dev episodes per task (default 12, quick 2)")
    parser.add_argument("--cache", default="runs/dev_select", help="where the dev episodes are cached")
    parser.add_argument("--note", action="append", default=[], help="free-text note for the report (repeatable)")
    _report.add_output_args(parser, "dev_select")
    args = parser.parse_args(argv)
    if args.render_only:
        return _report.render_only(args.out, render)
    try:
        candidates = _report.name_value_pairs(args.candidate, "--candidate", value="WEIGHTS")
        plannings = _report.name_value_pairs(args.planning, "--planning", value="MPPI_JSON", names=candidates)
    except ValueError as exc:
        parser.error(str(exc))
    if not candidates:
        parser.error("give at least one --candidate NAME=WEIGHTS")
    if args.incumbent is not None and args.incumbent not in candidates:
        parser.error(f"--incumbent {args.incumbent!r} is not a --candidate name ({sorted(candidates)})")
    if args.episodes is None:
        args.episodes = 2 if args.quick else 12
    if args.episodes < 2:
        parser.error(f"--episodes must be >= 2 (another episode's goal), got {args.episodes}")
    data_dir = Path(args.data)
    if not data_dir.is_dir():
        parser.error(f"--data {args.data!r}: no such directory (the recipe's training files: make weights, or "
                     "python -m vip_rl.weights_recipe --out DIR)")
    try:
        planning = {name: planning_counts(Path(path), name) for name, path in plannings.items()}
    except ValueError as exc:
        parser.error(str(exc))
    from vip_rl._gl import default_mujoco_gl

    default_mujoco_gl()
    from vip_rl.encoders import load_encoder
    from vip_rl.weights_recipe import HELD_OUT_TASK

    rows = {}
    for name, weights in candidates.items():
        encoder = load_encoder(weights)
        values = dev_values(encoder, episodes=args.episodes, cache=Path(args.cache))
        rows[name] = candidate_row(values, dev_readouts(encoder, data_dir), planning.get(name))
        print(f"[dev_select] {name}: VOC-other min excl. PushBlock {rows[name]['voc_other_trained_min_excl_pushblock']:.3f}, "
              f"decoy {rows[name]['decoy_pass_rate']:.3f}, planning {rows[name].get('planning', '-')}", flush=True)
    expert_steps = decoy_expert_steps(episodes=args.episodes, cache=Path(args.cache))
    result = {"provenance": _report.provenance(__file__, argv, quick=args.quick), "episodes_per_task": args.episodes, "held_out": HELD_OUT_TASK,
              "decoy_expert_steps": expert_steps,
              "incumbent": args.incumbent, "weights": candidates, "planning_runs": plannings, "rows": rows,
              "selection": select(rows, incumbent=args.incumbent), "gates": {label: list(gate) for label, gate in GATES.items()}, "notes": list(args.note)}
    _report.write(args.out, result, render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
