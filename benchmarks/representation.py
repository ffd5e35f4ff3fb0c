"""Representation benchmark: is the encoder's distance to a goal a good value?

``python benchmarks/representation.py [--quick] [--vip vip-sim] [--liv liv-sim] [--hand-steps N]``
writes ``benchmarks/results/representation.json`` and ``.md``.

Measured on held-out episodes (expert demos with new seeds, every suite task incl. the held-out
one), side by side with a randomly initialised encoder of the same architecture:

* ``voc_other``: value-order correlation (Spearman of frame index vs ``-d(phi(o_t), phi(g))``)
  with ``g`` = the final frame of a *different* episode of the same task
  (targets >= 0.95 trained tasks, >= 0.85 held-out task); ``voc_own`` (own final frame) for reference.
* ``voc_same_target`` (PushBlock only): PushBlock draws a new push target every episode, so another episode's final
  frame shows the block on another target. Here episode i's goal is the final frame of a separate noise-free expert
  episode (reset with ``seed_i + 500000 + k``: another block, arm and scene start) whose target is set to episode i's
  (``_value_metrics.same_target_goals``, cached beside the episodes). ``voc_other_trained_min_same_target`` is the
  min over trained tasks of ``voc_other`` with PushBlock's entry replaced by this figure (target >= 0.95).
* ``reach_voc``: the same VOC over the frames before any object moves (target >= 0.8).
* ``decoy``: the end effector placed where the goal image has it, objects at their start state;
  pass when that frame is farther from the goal than the episode's frame at 50% task progress
  (target: >= 90% of episodes). A decoy state that one zero action already solves is no decoy and is left out
  (``_value_metrics.decoy_defined``: PressButton, whose goal pose presses the untouched cap); the tables say "no
  decoy" where a task has none, and the pooled rates are over the decoys left (issue 17: "on every task where the
  decoy is defined").
* ``decoy_same_target_pass_rate`` (PushBlock only): the same test with episode i's same-target goal above, the decoy
  being episode i's start (block and target) with the end effector where that goal episode ends
  (``decoy_frames(..., goal_states=goals.final_states)``); ``decoy_pass_rate_same_target`` is the pooled decoy pass
  rate with PushBlock's entry replaced by it (target >= 0.90).
* LIV: top-1 retrieval of the right task from a final frame among the held-out paraphrases of all
  tasks' instructions (target >= 90%).
* hand -> gripper: an encoder pretrained on ``hand`` videos only (``--hand-steps``; td-sim's config with
  ``--hand-td-steps``; each once as the recipe has it and once with the colour augmentation ``--hand-shuffle``, RGB
  channel permutations, since the hand and the gripper differ mostly in colour), tested on gripper episodes (target
  voc_other >= 0.8).
* pretraining throughput: samples/s and the share of step time spent waiting for data.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

import _report
from _value_metrics import (DECOY_SETTLE_STEPS, SAME_TARGET_SEED_OFFSET, collect_eval, decoy_set, first_object_motion,
                            half_progress_index, mean_or_nan, pooled_decoy_pass_rate, random_twin, summarise, value_metrics)
from vip_rl.diagnostics import spearman

TARGETS = {"voc_other_trained": 0.95, "voc_other_heldout": 0.85, "voc_hand_to_gripper": 0.8, "decoy_pass_rate": 0.9,
           "reach_voc": 0.8, "liv_retrieval_top1": 0.9, "data_time_share_max": 0.1}


# ------------------------------------------------------------------------------------- metrics
@torch.no_grad()
def text_value_metrics(encoder: Any, episodes: dict[str, list[Any]], *, decoys: dict[str, np.ndarray],
                       defined: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per task, with the task's first train instruction as the goal: VOC, reaching VOC and the decoy pass rate
    (decoy farther from the instruction than the episode's 50%-progress frame), over the episodes whose decoy is one
    (``defined``, :class:`_value_metrics.Decoys` ``.defined``; NaN where none is)."""
    import vip_envs

    results: dict[str, dict[str, float]] = {}
    for task, eps in episodes.items():
        goal = encoder.encode_text([vip_envs.instructions(task, "train")[0]])[0]
        zd = encoder.encode_images(decoys[task])
        is_decoy = np.asarray(defined[task], dtype=bool)
        voc, reach, passes = [], [], []
        for i, e in enumerate(eps):
            d = encoder.distance(encoder.encode_images(e.frames["front"]), goal[None]).cpu().numpy()
            voc.append(spearman(np.arange(len(d)), -d))
            moved = first_object_motion(e)
            if moved >= 4:
                reach.append(spearman(np.arange(moved), -d[:moved]))
            if is_decoy[i]:
                passes.append(float(encoder.distance(zd[i], goal)) > d[half_progress_index(e)])
        results[task] = {"episodes": len(eps), "voc_text": float(np.mean(voc)), "reach_voc_text": mean_or_nan(reach),
                         "decoy_episodes": len(passes), "decoy_pass_rate_text": mean_or_nan(passes)}
    return results


@torch.no_grad()
def retrieval(encoder: Any, episodes: dict[str, list[Any]], *, split: str = "heldout") -> dict[str, Any]:
    """Top-1 task retrieval from final frames among all tasks' ``split`` paraphrases."""
    import vip_envs

    texts, owners = [], []
    for task in vip_envs.TASKS:
        for text in vip_envs.instructions(task, split=split):
            texts.append(text)
            owners.append(task)
    zt = encoder.encode_text(texts)
    per_task: dict[str, float] = {}
    hits_all: list[bool] = []
    for task, eps in episodes.items():
        zf = encoder.encode_images(np.stack([e.frames["front"][-1] for e in eps]))
        d = encoder.distance(zf[:, None, :], zt[None, :, :])  # [n, texts]
        hits = [owners[int(k)] == task for k in d.argmin(1).tolist()]
        per_task[task] = float(np.mean(hits))
        hits_all += hits
    return {"top1": float(np.mean(hits_all)), "per_task": per_task, "num_texts": len(texts)}


def throughput(config: Any, videos: list[Any], *, steps: int, workdir: Path) -> dict[str, float]:
    """Run the trainer for ``steps`` steps; samples/s and data-time share from its log (first window dropped)."""
    import csv

    from vip_rl.data.samplers import TupleSampler
    from vip_rl.pretrain import pretrain

    cfg = dataclasses.replace(config, steps=steps, eval_every=0, ckpt_every=0, log_every=max(steps // 4, 1), eval_videos=0)
    start = time.perf_counter()
    pretrain(cfg, videos, out_dir=workdir, progress=False, resume=False)
    wall = time.perf_counter() - start
    with open(workdir / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    def values(tag: str) -> list[float]:
        return [float(r["value"]) for r in rows if r["tag"] == tag][1:] or [float(r["value"]) for r in rows if r["tag"] == tag]
    sampler = TupleSampler(videos, batch_size=cfg.batch_size, image_size=cfg.image_size, crop_scale=cfg.crop_scale, seed=0,
                           with_text=cfg.objective == "liv")
    tic = time.perf_counter()
    for k in range(10):
        sampler.batch(k)
    batch_time = (time.perf_counter() - tic) / 10
    samples_per_s = float(np.mean(values("train/samples_per_s")))
    return {
        "samples_per_s": samples_per_s,
        "data_time_share": float(np.mean(values("train/data_time_share"))),
        "batch_build_s": batch_time,
        "batch_build_share_without_prefetch": batch_time / (cfg.batch_size / samples_per_s),
        "steps": steps,
        "batch_size": cfg.batch_size,
        "wall_s": wall,
    }


def train_hand_encoder(steps: int, *, cache: Path, quick: bool = False, recipe_name: str = "vip-sim",
                       channel_shuffle_prob: float = 0.0) -> tuple[str, float, int, bool]:
    """Collect hand-embodiment videos (the recipe's kinds, fewer episodes) and pretrain an encoder on them with the
    bundled ``recipe_name`` config (``vip-sim``: VIP; ``td-sim``: temporal distance, image tower only), optionally with
    the colour augmentation ``channel_shuffle_prob`` (``PretrainConfig.channel_shuffle_prob``).

    Resumes (or returns at once) when ``cache/hand_run`` (``hand_run_td-sim`` for td-sim, ``..._shuffle<P>`` with
    the augmentation) already holds the run.
    Returns ``(encoder path, seconds, number of videos, whether a finished run was reused)``.
    """
    from vip_rl.pretrain import pretrain
    from vip_rl.weights_recipe import DATA, GOAL_SWAP_PROB, RECIPES, collect_data, load_training_videos

    # stage 1 of the recipes only: no goal-pose or high detours for the hand (td-sim's fine-tune stage is not run here)
    counts = dict(expert_episodes=10, noisy_episodes=10, play_episodes=5, detour_episodes=10, goal_pose_detour_episodes=0,
                  high_detour_episodes=0) if quick else \
        dict(expert_episodes=20, noisy_episodes=20, play_episodes=15, detour_episodes=20, goal_pose_detour_episodes=0,
             high_detour_episodes=0)
    recipe = dataclasses.replace(DATA, embodiment="hand", **counts)
    paths = collect_data(cache / "hand_data", recipe, progress=False)
    data = load_training_videos(paths)
    extra = {"text": "none"} if RECIPES[recipe_name].objective == "tdist" else {}
    # the recipe at draw 0 (what this transfer test has measured since session 8), not the bundled encoder's draw
    cfg = dataclasses.replace(RECIPES[recipe_name], steps=steps, eval_every=0, ckpt_every=max(steps // 5, 1),
                              channel_shuffle_prob=channel_shuffle_prob, **extra)
    run = cache / ("hand_run" if recipe_name == "vip-sim" else f"hand_run_{recipe_name}")
    if channel_shuffle_prob:
        run = run.with_name(f"{run.name}_shuffle{channel_shuffle_prob:g}")
    reused = (run / "encoder").is_dir()  # pretrain writes it when the run finishes
    tic = time.perf_counter()
    pretrain(cfg, data.videos, out_dir=run, groups=data.groups, final_goal_ok=data.final_goal_ok,
             goal_swap_prob=GOAL_SWAP_PROB, progress=False)
    return str(run / "encoder"), time.perf_counter() - tic, len(data.videos), reused


#: task -> (object joint, change that undoes the task from a typical goal state)
UNDO = {"OpenDrawer": ("drawer", -0.09), "CloseDrawer": ("drawer", 0.11), "SlideDoor": ("door", -0.12),
        "PressButton": ("button", -0.016), "FlipSwitch": ("switch", -0.9)}


@torch.no_grad()
def sensitivity(encoder: Any, episodes: dict[str, list[Any]], *, ee_shift: float = 0.045) -> dict[str, dict[str, float]]:
    """What the distance to a goal frame responds to: undoing the task's object (end effector kept) vs
    moving the end effector by ``ee_shift`` m in y (objects kept), both from the goal's own state.
    A shortcut-free value needs ``undo`` well above ``ee``."""
    import gymnasium
    import vip_envs

    out: dict[str, dict[str, float]] = {}
    for task, (joint, amount) in UNDO.items():
        if task not in episodes:
            continue
        env = gymnasium.make(vip_envs.env_id(task), render_mode="rgb_array", image_size=96)
        env.reset(seed=0)
        unwrapped = env.unwrapped
        ly = unwrapped.layout
        undo, ee = [], []
        for e in episodes[task]:
            goal = np.array(e.sim_states[-1])
            undone, moved = goal.copy(), goal.copy()
            undone[1 + getattr(ly, joint)] += amount
            moved[1 + ly.ee[1]] += ee_shift
            z = encoder.encode_images(np.asarray(unwrapped.render_states(np.stack([goal, undone, moved]))))
            d = encoder.distance(z[1:], z[:1]).cpu().numpy()
            undo.append(float(d[0]))
            ee.append(float(d[1]))
        env.close()
        out[task] = {"undo_object": float(np.mean(undo)), "move_ee": float(np.mean(ee)), "ratio": float(np.mean(undo) / max(np.mean(ee), 1e-9))}
    return out


#: Development runs of the vip-sim recipe (measured with ``--quick``: 4 held-out episodes per task, same metrics;
#: small CNN 64 px, batch 32). Kept here so the table shows what each change did; they are not re-run.
DEVELOPMENT_LOG = [
    "random CNN (anchor): VOC-other min over trained tasks 0.37, decoy pass 0.11, reaching VOC 0.58",
    "expert+noisy+play, lr 3e-4, 300 steps: VOC-other min 0.51, decoy 0.14, reaching 0.42",
    "same, 1000 steps: VOC-other min 0.50, decoy 0.14, reaching 0.45 (loss still falling fast: under-trained)",
    "lr 1e-3, 1000 steps: VOC-other min 0.62, decoy 0.04, reaching 0.47 (lr 1e-3 kept)",
    "+ detour demos (random play prefix, then the expert), no crop, 1000 steps: VOC-other min 0.59, decoy 0.11, reaching 0.39",
    "+ detour demos, crop (0.85, 1), 1000 steps: VOC-other min 0.63, decoy 0.07, reaching 0.45 (crop kept)",
    "+ cosine lr, 2500 steps: VOC-other min 0.68 (CloseDrawer 0.99, PressButton 0.99), decoy 0.07, reaching 0.60; "
    "probe: undoing the drawer moves the embedding 0.5 vs 2.1 for a 4.5 cm end-effector shift: the end-effector "
    "shortcut persists (object state is visible: 58 vs 100 changed pixels at 64 px)",
    "=> goal-pose detour demos added (the end effector first goes to where the same episode's expert ends, objects "
    "untouched, then the expert solves the task): the counterexample VIP needs to stop valuing end-effector pose alone",
    "+ goal-pose detours, 2000 steps: OpenDrawer VOC-other 0.76 -> 0.96, reaching VOC on the drawer 0.57 -> 0.92, "
    "drawer-undo sensitivity 0.5 -> 1.2 (ratio to the 4.5 cm end-effector shift 0.25 -> 0.54); decoy still 0.11",
    "+ goal-pose detours, 8000 steps (the shipped vip-sim): VOC-other >= 0.99 on OpenDrawer/CloseDrawer/SlideDoor/"
    "PressButton, 0.77 on PushBlock/PickPlace, held-out FlipSwitch 0.95; decoy 0.21; undo/EE ratio 0.6-1.8 except the "
    "button and switch (8-13 changed pixels at 64 px): the shortcut is reduced, not gone",
    "liv-sim without goal-pose detours (6000 steps): decoy 0.46 and undo/EE ratios 1.9-72 on the drawer and door: "
    "the task-level InfoNCE between goal frames and instructions makes object state salient, which VIP alone does not",
    "liv-sim WITH goal-pose detours (6000 steps, not shipped): decoy 0.64, VOC-other held-out 0.94, PickPlace 0.86, but "
    "held-out-paraphrase retrieval 0.71 (PressButton lost; 12 episodes/task) vs 0.86 for the shipped liv-sim: "
    "retrieval is liv-sim's own target, so the run without them was kept",
    "session 2, full evaluation (12 held-out episodes/task), `python -m vip_rl.weights_recipe --variant NAME`: "
    "liv-sim + goal-pose detours + InfoNCE weight 3 (`liv-sim-gpd-nce3`, seeds 0 and 1): decoy 0.71 / 0.69 (drawer and "
    "door 1.0 with margins +0.36..+0.51), drawer undo/EE ratio 16, reaching VOC 0.71 / 0.75, but retrieval 0.71 / 0.80 "
    "(the PressButton goal frame's nearest text is an unseen FlipSwitch paraphrase: a near-tie, +0.016 cosine margin for "
    "the shipped liv-sim); MPPI image goal on OpenDrawer still 0/6. Not shipped",
    "vip-sim at 96 px input (`vip-sim-96`, 8000 steps): decoy 0.41 (margins still ~0), PressButton undo/EE ratio 0.09 "
    "(0.11 at 64 px), held-out FlipSwitch VOC 0.81 (< 0.85), reaching VOC 0.74, MPPI worse on 4 of 5 tasks: resolution "
    "is not what hides the button and switch. Not shipped",
    "session 3 (`benchmarks/shortcut.py`, results/shortcut.md): the vip-sim CNN trained supervised from scratch reads the "
    "object joints from the same 64 px frames (held-out R^2 0.90-0.99), vip-sim's embedding keeps little of them linearly "
    "(0.20 on the drawer, below a random CNN's 0.31); on its own goal-pose detour training videos vip-sim's distance is "
    "0.3-0.7 of the VIP target (expert frames 1.4-2.3): the objective, not the pixels, drops object state. Goal-pose "
    "detours drawn 4x / 10x (2500-step fine-tunes): decoy 0.38 / 0.44 but VOC-other min 0.55 / 0.52 and reaching "
    "0.76 / 0.73. A closer camera (suite camera `close`, 2x the object pixels), 4000 steps vs front at 4000 steps: "
    "reaching 0.66 -> 0.797, held-out 0.86 -> 0.97, decoy 0.41 -> 0.44. VIP + an InfoNCE term (final frame nearer "
    "another episode's final frame than its own frames >= 15 steps earlier), 2500-step fine-tune: reaching 0.818 and "
    "VOC-other min 0.68 (best of all runs) but decoy 0.17. None shipped",
]

# ------------------------------------------------------------------------------------- report
def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return "nan" if np.isnan(x) else f"{x:.3f}"
    return str(x)


def _ok(value: float, target: float, *, at_most: bool = False) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return _report.status(None)
    return _report.status(value <= target if at_most else value >= target)


def _decoy_cell(row: dict[str, Any], key: str) -> str:
    """A decoy figure, or "no decoy" where no episode's decoy state is one (:func:`_value_metrics.decoy_defined`)."""
    return "no decoy" if row.get("decoy_episodes", row["episodes"]) == 0 else _fmt(row[key])


def _undefined_decoys(per_task: dict[str, dict[str, Any]]) -> list[str]:
    """The sentence that names the tasks whose decoy states are not decoys (empty when every one is)."""
    left = {t: (row["episodes"] - row["decoy_episodes"], row["episodes"]) for t, row in per_task.items()
            if row.get("decoy_episodes", row["episodes"]) < row["episodes"]}
    if not left:
        return []
    actions = "one zero action" if DECOY_SETTLE_STEPS == 1 else f"{DECOY_SETTLE_STEPS} zero actions"
    return ["", "Decoys left out of every decoy figure: " + ", ".join(f"{t} {k} of {n}" for t, (k, n) in left.items())
            + f" (a decoy state that {actions} already solves is no decoy: the goal pose overlaps the untouched object, "
            "and the simulator resolves the overlap by moving it; `_value_metrics.decoy_defined`)."]


def render(result: dict[str, Any]) -> str:
    lines = ["# Representation benchmark", "", _report.generated_by(result["provenance"]), "", f"Held-out task: **{result['held_out_task']}**; held-out episodes are expert "
             f"demos with new seeds ({result['episodes_per_task']} per task, successful ones kept). Goal = final frame of a *different* episode "
             "of the same task unless noted. Random = a randomly initialised encoder of the same architecture, measured in the same run.", ""]
    lines += ["## Targets", "", "| metric | encoder | value | random encoder | target | status |", "|---|---|---|---|---|---|"]
    for row in result["targets"]:
        lines.append(f"| {row['metric']} | {row['encoder']} | {_fmt(row['value'])} | {_fmt(row.get('random', float('nan')))} | {row['target']} | {row['status']} |")
    for name, block in result["encoders"].items():
        lines += ["", f"## {name} per task", "", "| task | VOC other goal | random | VOC own goal | random | reaching VOC | random | decoy pass | random | decoy margin |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for task, row in block["per_task"].items():
            rnd = block["random_per_task"][task]
            tag = " (held out)" if task == result["held_out_task"] else ""
            lines.append(f"| {task}{tag} | {_fmt(row['voc_other'])} | {_fmt(rnd['voc_other'])} | {_fmt(row['voc_own'])} | {_fmt(rnd['voc_own'])} | "
                         f"{_fmt(row['reach_voc'])} | {_fmt(rnd['reach_voc'])} | {_decoy_cell(row, 'decoy_pass_rate')} | "
                         f"{_decoy_cell(rnd, 'decoy_pass_rate')} | {_decoy_cell(row, 'decoy_margin')} |")
        lines += _undefined_decoys(block["per_task"])
        for task, row in block["per_task"].items():
            if "voc_same_target" in row:
                rnd = block["random_per_task"][task]
                decoy = (f" Decoy pass {_fmt(row['decoy_same_target_pass_rate'])} (random {_fmt(rnd['decoy_same_target_pass_rate'])}; "
                         f"mean margin {_fmt(row['decoy_same_target_margin'])}) with the decoy = the episode's start (block and target) "
                         "with the end effector where this goal has it." if "decoy_same_target_pass_rate" in row else "")
                lines += ["", f"{task}, goal from an episode with the **same target**: VOC {_fmt(row['voc_same_target'])} "
                          f"(random {_fmt(rnd['voc_same_target'])}; worst episode {_fmt(row['voc_same_target_min'])}).{decoy} "
                          f"{task} draws a new target every episode, so the \"VOC other goal\" column's goal shows the block on another "
                          f"target; this goal is the final frame of a noise-free expert episode from another start (seed + {SAME_TARGET_SEED_OFFSET}) "
                          "with the target set to the episode's own."]
        if "sensitivity" in block:
            lines += ["", "Distance from a goal frame to the same state with the task's object undone (end effector kept) vs with the end "
                      "effector moved 4.5 cm (objects kept): a shortcut-free value needs undo >> move.", "",
                      "| task | undo object | move EE 4.5 cm | ratio | random ratio |", "|---|---|---|---|---|"]
            for task, row in block["sensitivity"].items():
                lines.append(f"| {task} | {_fmt(row['undo_object'])} | {_fmt(row['move_ee'])} | {_fmt(row['ratio'])} | {_fmt(block['random_sensitivity'][task]['ratio'])} |")
        if "text_per_task" in block:
            lines += ["", "Instruction goal (the task's first train instruction):", "", "| task | VOC | reaching VOC | decoy pass |", "|---|---|---|---|"]
            for task, row in block["text_per_task"].items():
                lines.append(f"| {task} | {_fmt(row['voc_text'])} | {_fmt(row['reach_voc_text'])} | {_decoy_cell(row, 'decoy_pass_rate_text')} |")
        if "retrieval" in block:
            r, rr = block["retrieval"], block["random_retrieval"]
            lines += ["", f"LIV retrieval (final frame -> one of {r['num_texts']} held-out paraphrases of all tasks): top-1 {_fmt(r['top1'])} (random {_fmt(rr['top1'])}); "
                      + ", ".join(f"{t} {_fmt(v)}" for t, v in r["per_task"].items())]
            if "retrieval_train_split" in block:
                lines.append(f"(train-split paraphrases: top-1 {_fmt(block['retrieval_train_split']['top1'])})")
    if "hand" in result:
        lines += ["", "## Embodiment transfer", ""]
        for key, value in result["hand"].items():
            lines.append(f"- {key}: {json.dumps(value) if isinstance(value, dict) else _fmt(value)}")
    if "throughput" in result:
        lines += ["", "## Pretraining throughput", "", "| encoder config | samples/s | data-time share (prefetch) | batch build s | batch share without prefetch |", "|---|---|---|---|---|"]
        for name, t in result["throughput"].items():
            lines.append(f"| {name} | {t['samples_per_s']:.1f} | {t['data_time_share']:.3f} | {t['batch_build_s']:.3f} | {t['batch_build_share_without_prefetch']:.3f} |")
    lines += ["", "## What was tried (development runs, --quick)", ""] + [f"- {n}" for n in DEVELOPMENT_LOG]
    if result.get("training_runs"):
        lines += ["", "Throughput recorded by the bundled weights' own training runs (whole run, 10-step windows; CPU shared with other jobs):", "",
                  "| run | steps | samples/s (mean) | data-time share (mean) | data-time share (worst window) |", "|---|---|---|---|---|"]
        for name, t in result["training_runs"].items():
            lines.append(f"| {name} | {t['steps']} | {t['samples_per_s_mean']:.1f} | {t['data_time_share_mean']:.4f} | {t['data_time_share_max_window']:.3f} |")
    if result.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 episodes per task, short throughput run")
    parser.add_argument("--episodes", type=int, default=None, help="held-out episodes per task (default 12, quick 4)")
    parser.add_argument("--vip", default="vip-sim", help="VIP encoder (bundled name or path); '' to skip")
    parser.add_argument("--liv", default="liv-sim", help="LIV encoder (bundled name or path); '' to skip")
    parser.add_argument("--td", default="td-sim", help="temporal-distance encoder (bundled name or path); '' to skip")
    parser.add_argument("--hand-encoder", default=None, help="encoder pretrained on hand videos (path), tested on gripper")
    parser.add_argument("--hand-steps", type=int, default=None,
                        help="train a hand-only encoder for this many steps inside the benchmark (0: skip; default 2000, "
                             "0 with --quick; a finished run in the cache is reused)")
    parser.add_argument("--hand-td-steps", type=int, default=None,
                        help="also train a hand-only td-sim encoder for this many steps (0: skip; default 4000, 0 with --quick)")
    parser.add_argument("--hand-shuffle", type=float, default=1.0,
                        help="also train each hand-only encoder with this channel_shuffle_prob (colour augmentation; 0: skip)")
    parser.add_argument("--throughput-steps", type=int, default=None, help="trainer steps for the throughput figure (default 40, quick 12; 0 skips)")
    parser.add_argument("--train-log", action="append", default=[], metavar="NAME=LOG_CSV",
                        help="also summarise the throughput recorded in a pretraining run's log.csv (repeatable)")
    parser.add_argument("--note", action="append", default=[], help="free-text note for the report (repeatable)")
    parser.add_argument("--cache", default="runs/bench_representation", help="where held-out episodes and scratch runs go")
    _report.add_output_args(parser, "representation")
    args = parser.parse_args(argv)
    if args.render_only:
        return _report.render_only(args.out, render)
    try:
        train_logs = _report.name_value_pairs(args.train_log, "--train-log", value="LOG_CSV")
    except ValueError as exc:
        parser.error(str(exc))
    missing = [path for path in train_logs.values() if not Path(path).is_file()]
    if missing:
        parser.error(f"--train-log: no such file {missing[0]!r}")
    import vip_envs
    from vip_rl.encoders import load_encoder
    from vip_rl.weights_recipe import CONFIGS, HELD_OUT_TASK

    episodes_per_task = args.episodes or (4 if args.quick else 12)
    cache = Path(args.cache)
    started = time.perf_counter()
    episodes = collect_eval(vip_envs.TASKS, episodes_per_task, cache=cache)
    decoy_inputs = decoy_set(episodes, cache=cache)
    decoys, matched, matched_decoys = decoy_inputs.decoys, decoy_inputs.matched_goals, decoy_inputs.matched_decoys
    decoy_kw = {"defined": decoy_inputs.defined, "matched_defined": decoy_inputs.matched_defined}
    result: dict[str, Any] = {"provenance": _report.provenance(__file__, argv, quick=args.quick), "quick": args.quick,
                              "held_out_task": HELD_OUT_TASK, "episodes_per_task": episodes_per_task,
                              "encoders": {}, "targets": [], "notes": list(args.note)}
    if (goals := decoy_inputs.same_target) is not None:  # PushBlock: the one task whose target moves between episodes
        result["same_target_goals"] = {"task": "PushBlock", "eval_seeds": [int(e.attrs["seed"]) for e in episodes["PushBlock"]],
                                       "goal_seeds": goals.seeds.tolist()}
    targets = result["targets"]
    for role, name in (("td", args.td), ("vip", args.vip), ("liv", args.liv)):
        if not name:
            continue
        try:
            encoder = load_encoder(name)
        except FileNotFoundError as exc:
            result["notes"].append(f"{role} encoder {name!r} not available: {exc}")
            continue
        twin = random_twin(encoder)
        per_task = value_metrics(encoder, episodes, decoys=decoys, matched_goals=matched, matched_decoys=matched_decoys, **decoy_kw)
        random_per_task = value_metrics(twin, episodes, decoys=decoys, matched_goals=matched, matched_decoys=matched_decoys, **decoy_kw)
        block: dict[str, Any] = {"per_task": per_task, "random_per_task": random_per_task,
                                 "sensitivity": sensitivity(encoder, episodes), "random_sensitivity": sensitivity(twin, episodes),
                                 "summary": summarise(per_task, HELD_OUT_TASK), "random_summary": summarise(random_per_task, HELD_OUT_TASK),
                                 "config": {k: v for k, v in encoder.config.items() if k != "training"}}
        s, rs = block["summary"], block["random_summary"]
        targets += [
            {"metric": "VOC other-episode goal, trained tasks (min over tasks)", "encoder": name, "value": s["voc_other_trained_min"], "random": rs["voc_other_trained_min"], "target": ">= 0.95", "status": _ok(s["voc_other_trained_min"], 0.95)},
        ]
        if "voc_other_trained_min_same_target" in s:
            targets.append({"metric": "VOC other-episode goal, trained tasks, PushBlock goal with the same target (min)", "encoder": name,
                            "value": s["voc_other_trained_min_same_target"], "random": rs["voc_other_trained_min_same_target"],
                            "target": ">= 0.95", "status": _ok(s["voc_other_trained_min_same_target"], 0.95)})
        targets += [
            {"metric": f"VOC other-episode goal, held-out {HELD_OUT_TASK}", "encoder": name, "value": s["voc_other_heldout"], "random": rs["voc_other_heldout"], "target": ">= 0.85", "status": _ok(s["voc_other_heldout"], 0.85)},
            {"metric": "decoy farther than 50%-progress frame (share of episodes)", "encoder": name, "value": s["decoy_pass_rate"], "random": rs["decoy_pass_rate"], "target": ">= 0.90", "status": _ok(s["decoy_pass_rate"], 0.9)},
        ]
        if "decoy_pass_rate_same_target" in s:
            targets.append({"metric": "decoy farther than 50%-progress frame, PushBlock goal with the same target (share of episodes)", "encoder": name,
                            "value": s["decoy_pass_rate_same_target"], "random": rs["decoy_pass_rate_same_target"],
                            "target": ">= 0.90", "status": _ok(s["decoy_pass_rate_same_target"], 0.9)})
        targets += [
            {"metric": "reaching-phase VOC (mean over tasks)", "encoder": name, "value": s["reach_voc_mean"], "random": rs["reach_voc_mean"], "target": ">= 0.8", "status": _ok(s["reach_voc_mean"], 0.8)},
        ]
        if role == "td":  # issue 17's bar for the recommended encoder
            targets += [
                {"metric": "reaching-phase VOC (mean over tasks), issue-17 bar", "encoder": name, "value": s["reach_voc_mean"], "random": rs["reach_voc_mean"], "target": ">= 0.85", "status": _ok(s["reach_voc_mean"], 0.85)},
                {"metric": "VOC other-episode goal, trained tasks except PushBlock (min)", "encoder": name, "value": s["voc_other_trained_min_excl_pushblock"], "random": rs["voc_other_trained_min_excl_pushblock"], "target": ">= 0.95", "status": _ok(s["voc_other_trained_min_excl_pushblock"], 0.95)},
            ]
        if encoder.has_text:
            block["text_per_task"] = text_metrics = text_value_metrics(encoder, episodes, decoys=decoys, defined=decoy_inputs.defined)
            rate = pooled_decoy_pass_rate({t: v["decoy_pass_rate_text"] for t, v in text_metrics.items()}, text_metrics)
            block["summary"]["decoy_pass_rate_text"] = rate
            targets.append({"metric": "decoy farther than 50%-progress frame, instruction goal (share)", "encoder": name, "value": rate,
                            "target": ">= 0.80", "status": _ok(rate, 0.8)})
        if encoder.has_text:
            block["retrieval"] = retrieval(encoder, episodes)
            block["random_retrieval"] = retrieval(twin, episodes)
            block["retrieval_train_split"] = retrieval(encoder, episodes, split="train")
            targets.append({"metric": "LIV top-1 task retrieval, held-out paraphrases", "encoder": name, "value": block["retrieval"]["top1"], "random": block["random_retrieval"]["top1"], "target": ">= 0.90", "status": _ok(block["retrieval"]["top1"], 0.9)})
        result["encoders"][name] = block

    # --- embodiment transfer ---------------------------------------------------------------
    hand: dict[str, Any] = {}

    def hand_row(path: str, key: str, metric: str) -> None:
        """VOC with another episode's goal on the gripper episodes, for an encoder trained on hand videos."""
        enc = load_encoder(path)
        per_task = value_metrics(enc, episodes, decoys=decoys, defined=decoy_inputs.defined)
        rnd = value_metrics(random_twin(enc), episodes, decoys=decoys, defined=decoy_inputs.defined)
        value = hand[f"{key}_trained_on_gripper_voc_other_mean"] = float(np.mean([v["voc_other"] for v in per_task.values()]))
        random_value = hand[f"random_{key}_on_gripper_voc_other_mean"] = float(np.mean([v["voc_other"] for v in rnd.values()]))
        hand[f"{key}_per_task_voc_other"] = {t: v["voc_other"] for t, v in per_task.items()}
        targets.append({"metric": metric, "encoder": path, "value": value, "random": random_value, "target": ">= 0.8", "status": _ok(value, 0.8)})

    if args.hand_steps is None:
        args.hand_steps = 0 if args.quick else 2000
    if args.hand_td_steps is None:
        args.hand_td_steps = 0 if args.quick else 4000
    # each recipe as it is, then with the colour augmentation (RGB channel permutations; the hand and the gripper
    # differ mostly in colour)
    shuffles = [0.0] + ([args.hand_shuffle] if args.hand_shuffle > 0 else [])
    for recipe_name, steps, key, what in (("vip-sim", args.hand_steps, "hand_vip", "VIP encoder (vip-sim config)"),
                                          ("td-sim", args.hand_td_steps, "hand_td", "td-sim encoder (stage-1 config, image tower)")):
        for shuffle in shuffles if steps > 0 else []:
            path, seconds, num_videos, reused = train_hand_encoder(steps, cache=cache, quick=args.quick,
                                                                   recipe_name=recipe_name, channel_shuffle_prob=shuffle)
            label = f" + channel shuffle {shuffle:g}" if shuffle else ""
            result["notes"].append(f"hand-only {what}{label}: {steps} steps on {num_videos} hand videos (expert, noisy, play, "
                                   f"detour; held-out task excluded){', channel_shuffle_prob=%g' % shuffle if shuffle else ''}; "
                                   + (f"the finished run in {Path(path).parent} was reused ({seconds:.0f} s)" if reused else
                                      f"trained in this call in {seconds:.0f} s (to {Path(path).parent})"))
            hand_row(path, key + ("_shuffle" if shuffle else ""),
                     f"hand-pretrained {recipe_name} recipe{' (stage 1)' if recipe_name == 'td-sim' else ''}{label} on gripper, "
                     f"VOC other-episode goal (mean)")
    if args.hand_encoder:
        hand_row(args.hand_encoder, "hand_given", "hand-pretrained encoder (--hand-encoder) on gripper, VOC other-episode goal (mean)")
    if not (args.hand_encoder or args.hand_steps > 0 or args.hand_td_steps > 0):
        targets.append({"metric": "hand-pretrained encoder on gripper, VOC other-episode goal", "encoder": "-", "value": float("nan"), "target": ">= 0.8", "status": "not measured"})
    if shuffles[1:]:
        hand["channel_shuffle_prob"] = shuffles[1]
    if args.vip:
        try:
            hand_eps = collect_eval(vip_envs.TASKS, max(episodes_per_task // 2, 2), cache=cache, embodiment="hand")
            vip = load_encoder(args.vip)
            per_task = value_metrics(vip, hand_eps, embodiment="hand")
            hand[f"{args.vip}_on_hand_voc_other_mean"] = float(np.mean([v["voc_other"] for v in per_task.values()]))
            hand[f"{args.vip}_on_hand_per_task"] = {t: v["voc_other"] for t, v in per_task.items()}
        except FileNotFoundError:
            pass
    result["hand"] = hand

    # --- throughput ---------------------------------------------------------------------------
    steps = args.throughput_steps if args.throughput_steps is not None else (12 if args.quick else 40)
    if steps > 0:
        videos = [_as_video(e) for eps in episodes.values() for e in eps]
        result["throughput"] = {}
        for name in ("td-sim", "vip-sim", "liv-sim"):
            result["throughput"][name] = throughput(CONFIGS[name], videos, steps=steps, workdir=cache / f"throughput_{name}")
            share = result["throughput"][name]["data_time_share"]
            targets.append({"metric": f"data-time share of a training step ({name} config)", "encoder": name, "value": share, "target": "<= 0.10", "status": _ok(share, 0.1, at_most=True)})
    for name, path in train_logs.items():
        import csv

        with open(path) as handle:
            rows = list(csv.DictReader(handle))
        per_tag = {tag: [float(r["value"]) for r in rows if r["tag"] == tag] for tag in ("train/samples_per_s", "train/data_time_share")}
        steps = max(int(r["step"]) for r in rows)
        result.setdefault("training_runs", {})[name] = {
            "steps": steps, "samples_per_s_mean": float(np.mean(per_tag["train/samples_per_s"])),
            "data_time_share_mean": float(np.mean(per_tag["train/data_time_share"])),
            "data_time_share_max_window": float(np.max(per_tag["train/data_time_share"])), "log": path}
    result["wall_s"] = time.perf_counter() - started
    _report.write(args.out, result, render(result))
    return 0


def _as_video(episode: Any) -> Any:
    from vip_rl.data import Video

    return Video(episode.frames["front"], text=episode.instruction, source=str(episode.task))


if __name__ == "__main__":
    sys.exit(main())
