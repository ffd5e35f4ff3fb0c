"""Planning on MuJoCo envs that are not the suite: gymnasium's Pusher-v5, Meta-World (drawer-open, button-press,
door-open) and FrankaKitchen microwave (issue 13).

Three measurements, each its own ``--sections`` entry (results merge into one file with ``--merge``):

- ``checks``: what ``MujocoDynamics(env)`` picks and how well it reproduces the env: the backend, the mean absolute
  pixel difference (0-255) between ``env.render()`` and the backend's frame of the same state, and the max |qpos|
  difference between a rollout and ``env.step`` with the same actions (5 steps at construction, and 20 steps x 4
  random action sequences through ``rollout_error``).
- ``mppi``: MPPI success per env: the **oracle** plans on the env's own reward (Pusher made with
  ``reward_control_weight=0``: with its control cost the short-horizon optimum is to hold still) (summed over the horizon: the
  ``evaluate_states`` hook where the env has one, else the rewards ``env.step`` returned in the step backend's
  rollouts), the **image-goal** cells on ``-||phi(o_T) - phi(g)||`` of an encoder (the bundled ones zero-shot, and
  the Meta-World encoder trained in-domain by the ``in-domain`` section). Goal images: Meta-World's final frame of
  its scripted expert from the episode's own seed (the object and goal positions are random per seed, so a goal from
  another seed shows another scene); Pusher's start state with the object moved onto the goal; the kitchen's start
  state with the microwave door at its goal angle. Success: ``info["success"]`` (Meta-World, kitchen) and, for
  Pusher (none upstream), the object within ``PUSHER_SUCCESS`` m of the goal in the table plane.
- ``in-domain``: the three CLI commands a user runs on their own Meta-World task (``vip-rl collect`` per task,
  one ``vip-rl pretrain`` on all), their wall time, and the value-order correlation (VOC, Spearman of the frame index
  with ``-d(o_t, g)`` along held-out expert episodes, g their final frame) of the in-domain encoder and the bundled
  ones. The trained encoder is then an ``mppi`` cell (``--in-domain-encoder``, default the run this section writes).

Writes ``benchmarks/results/foreign_envs.json`` and ``.md`` (``--out`` to write elsewhere).

Usage:
  MUJOCO_GL=egl .venv/bin/python benchmarks/foreign_envs.py --sections checks
  MUJOCO_GL=egl .venv/bin/python benchmarks/foreign_envs.py --sections in-domain --merge
  MUJOCO_GL=egl .venv/bin/python benchmarks/foreign_envs.py --sections mppi --envs pusher,kitchen --merge
  .venv/bin/python benchmarks/foreign_envs.py --render-only
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
import torch

import _report
from _common import ROOT, describe_encoders, has_encoder, resolve_encoder, run_episode, summarise_episodes, vip_rl_script
from vip_rl.planning import MPPI, EmbeddingGoalCost, MujocoDynamics, OracleCost
from vip_rl.planning.episode import mppi_config_for
from vip_rl.pretrain import trained_seconds

#: Rendered frame side of every env: the size of the frames the bundled encoders and the in-domain one were trained on.
IMAGE_SIZE = 96
#: Pusher success: object within this distance (m) of the goal in the table plane (Pusher-v5 reports no success).
PUSHER_SUCCESS = 0.05
#: Meta-World tasks of the benchmark (``vip_envs/MetaWorld-<task>-v3``).
METAWORLD_TASKS = ("drawer-open", "button-press", "door-open")
#: Where the ``in-domain`` section writes its data and run (git-ignored ``runs/``).
IN_DOMAIN_DIR = ROOT / "runs" / "foreign_envs"
#: Seeds of the in-domain training data (collect ``--seed``) and of the held-out VOC episodes (disjoint).
TRAIN_SEED, VOC_SEED = 0, 50_000


# -- envs ------------------------------------------------------------------------------------------
class PusherSuccess(gym.Wrapper):
    """Adds ``info["success"]`` and ``info["task_progress"]`` to Pusher-v5 (object within :data:`PUSHER_SUCCESS` of the
    goal in the plane; progress 1 - distance / start distance). A plain gymnasium wrapper: MujocoDynamics finds the
    MuJoCo layer below it and the step backend's rewards are Pusher's own."""

    def _distance(self) -> float:
        u = self.env.unwrapped
        return float(np.linalg.norm((u.get_body_com("object") - u.get_body_com("goal"))[:2]))

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self._start = max(self._distance(), 1e-6)
        return obs, {**info, "success": self._distance() < PUSHER_SUCCESS, "task_progress": 0.0}

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        distance = self._distance()
        info = {**info, "success": distance < PUSHER_SUCCESS,
                "task_progress": float(np.clip(1.0 - distance / self._start, 0.0, 1.0))}
        return obs, reward, terminated, truncated, info


@dataclass
class EnvCase:
    """One env of the benchmark: how to make it, its image goal for an episode seed, and its MPPI budget."""

    name: str
    make: Callable[[], Any]
    goal: Callable[[Any, int], np.ndarray]
    """``goal(env, seed) -> uint8 [H, W, 3]`` (may reset ``env``)."""
    max_steps: int
    episodes: int
    oracle_backend: str = "auto"
    """The backend of the oracle cell: ``"step"`` where the env's reward is only known by stepping it."""
    available: Callable[[], str | None] = lambda: None
    """None, or why this env cannot be measured here."""


def _render_state(env: Any, edit: Callable[[Any], None], seed: int) -> np.ndarray:
    """``env.render()`` of the reset state after ``edit(unwrapped_or_wrapper)``; the env is reset again afterwards."""
    import mujoco

    env.reset(seed=seed)
    layer = env
    while not (hasattr(layer, "model") and hasattr(layer, "data")):
        layer = layer.env
    edit(layer)
    mujoco.mj_forward(layer.model, layer.data)
    frame = np.asarray(env.render()).copy()
    env.reset(seed=seed)
    return frame


def _pusher_goal(env: Any, seed: int) -> np.ndarray:
    def edit(u: Any) -> None:
        u.data.qpos[-4:-2] = u.data.qpos[-2:]  # the object on the goal, the arm where it starts
        u.data.qvel[:] = 0.0

    return _render_state(env, edit, seed)


def _kitchen_goal(env: Any, seed: int) -> np.ndarray:
    def edit(layer: Any) -> None:
        for index, goal in zip(layer._indices, layer._goals):
            layer.data.qpos[index] = goal

    return _render_state(env, edit, seed)


def _metaworld_goal(task: str) -> Callable[[Any, int], np.ndarray]:
    def goal(env: Any, seed: int) -> np.ndarray:
        from vip_rl.goals import expert_rollout

        roll = expert_rollout(f"vip_envs/MetaWorld-{task}-v3", seed=seed, max_steps=env.spec.max_episode_steps or 150,
                              env_kwargs={"image_size": IMAGE_SIZE})
        return roll.final_frame

    return goal


def _needs(module: str, extra: str) -> Callable[[], str | None]:
    return lambda: None if importlib.util.find_spec(module) is not None else f"{module} not installed (pip install vip-rl[{extra}])"


def env_cases() -> dict[str, EnvCase]:
    def pusher() -> Any:
        from vip_envs.rendering import apply_fast_render_settings

        # reward_control_weight=0: with the control cost (0.1 |a|^2) the env-reward optimum over H=10 steps is to hold
        # still (the oracle's progress was 0.00 in 100 steps); without it the oracle reaches and pushes the object
        env = gym.make("Pusher-v5", render_mode="rgb_array", width=IMAGE_SIZE, height=IMAGE_SIZE, reward_control_weight=0.0)
        # before the first render, so env.render() and the rollouts draw alike: software GL renders Pusher's
        # shadows and multisampling at ~36 ms a frame, ~1.4 ms without
        apply_fast_render_settings(env.unwrapped.model)
        return PusherSuccess(env)

    def kitchen() -> Any:
        from vip_envs import kitchen as kitchen_module

        return kitchen_module.make_kitchen(("microwave",), render_mode="rgb_array", image_size=IMAGE_SIZE,
                                           robot_noise_ratio=0.0, object_noise_ratio=0.0)

    def metaworld(task: str) -> Callable[[], Any]:
        def make() -> Any:
            import vip_envs  # noqa: F401 - registers the ids

            return gym.make(f"vip_envs/MetaWorld-{task}-v3", render_mode="rgb_array", image_size=IMAGE_SIZE)

        return make

    cases = {"pusher": EnvCase("Pusher-v5", pusher, _pusher_goal, max_steps=100, episodes=5, oracle_backend="step")}
    for task in METAWORLD_TASKS:
        cases[f"mw-{task}"] = EnvCase(f"Meta-World {task}-v3", metaworld(task), _metaworld_goal(task), max_steps=150,
                                      episodes=5, available=_needs("metaworld", "metaworld"))
    cases["kitchen"] = EnvCase("FrankaKitchen microwave (no noise)", kitchen, _kitchen_goal, max_steps=60, episodes=2,
                               available=_needs("gymnasium_robotics", "kitchen"))
    return cases


# -- checks ----------------------------------------------------------------------------------------
def measure_checks(case: EnvCase, *, seed: int) -> dict[str, Any]:
    env = case.make()
    try:
        env.reset(seed=seed)
        t0 = time.perf_counter()
        with MujocoDynamics(env, nthread=2) as dyn:
            build = time.perf_counter() - t0
            long_error = dyn.rollout_error(steps=20, num_samples=4, seed=1)
            return {"backend": dyn.check.backend, "render_diff": dyn.check.render_diff,
                    "render_view": dyn.check.render_view, "qpos_diff_5": dyn.check.max_qpos_diff,
                    "qpos_diff_20": long_error, "rejected": dyn.check.rejected, "build_seconds": build}
    finally:
        env.close()


def raw_metaworld_check(*, seed: int) -> dict[str, Any]:
    """Meta-World drawer-open through gymnasium's own ``Meta-World/MT1`` (corner camera, no adapter)."""
    import metaworld  # noqa: F401 - registers Meta-World/MT1

    env = gym.make("Meta-World/MT1", env_name="drawer-open-v3", render_mode="rgb_array", camera_name="corner",
                   width=IMAGE_SIZE, height=IMAGE_SIZE)
    try:
        env.reset(seed=seed)
        with MujocoDynamics(env, nthread=2) as dyn:
            return {"backend": dyn.check.backend, "render_diff": dyn.check.render_diff, "render_view": dyn.check.render_view,
                    "qpos_diff_5": dyn.check.max_qpos_diff, "qpos_diff_20": dyn.rollout_error(steps=20, num_samples=4, seed=1),
                    "rejected": dyn.check.rejected}
    finally:
        env.close()


# -- MPPI ------------------------------------------------------------------------------------------
def measure_mppi(case: EnvCase, encoders: dict[str, Any], *, seed: int, num_samples: int, horizon: int,
                 episodes: int | None, max_steps: int | None, oracle: bool = True) -> dict[str, Any]:
    env = case.make()
    episodes = episodes or case.episodes
    max_steps = max_steps or case.max_steps
    cells: dict[str, Any] = {}
    try:
        env.reset(seed=seed)
        config = mppi_config_for(env, num_samples=num_samples, horizon=horizon)
        goals = {s: case.goal(env, s) for s in range(seed, seed + episodes)} if encoders else {}
        plans: dict[str, tuple[str, Callable[[int], Any]]] = {}
        if oracle:
            plans["oracle (env reward)"] = (case.oracle_backend, lambda s: OracleCost(key="reward", when="sum"))
        for name, encoder in encoders.items():
            plans[f"{name} image"] = ("auto", lambda s, e=encoder: EmbeddingGoalCost(e, goals[s]))
        for cell, (backend, make_cost) in plans.items():
            env.reset(seed=seed)
            t0 = time.perf_counter()
            with MujocoDynamics(env, nthread=2, backend=backend) as dyn:
                rows = [run_episode(env, MPPI(config, dyn, make_cost(s), seed=s), dyn, seed=s, max_steps=max_steps,
                                    record=False) for s in range(seed, seed + episodes)]
                used = dyn.backend
            cells[cell] = {**summarise_episodes(rows, seconds=time.perf_counter() - t0), "backend": used}
            c = cells[cell]
            print(f"[mppi] {case.name} {cell}: success {c['success_rate']:.2f} progress {c['mean_progress']:.2f} "
                  f"({c['ms_per_command']:.0f} ms/command, {c['seconds']:.0f} s)", flush=True)
    finally:
        env.close()
    return {"episodes": episodes, "max_steps": max_steps, "K": num_samples, "H": horizon, "cells": cells}


# -- in-domain pretraining -------------------------------------------------------------------------
def in_domain_commands(*, episodes: int, steps: int, stride: int, out: Path) -> tuple[list[list[str]], list[str], Path]:
    """The user's commands: ``vip-rl collect`` per Meta-World task, then one ``vip-rl pretrain`` on all files."""
    vip_rl = vip_rl_script()
    collects, files = [], []
    for i, task in enumerate(METAWORLD_TASKS):
        path = out / "data" / f"{task}.h5"
        files.append(path)
        collects.append([vip_rl, "collect", f"MetaWorld-{task}-v3", "--episodes", str(episodes), "--policy", "mixed",
                         "--size", "96", "--seed", str(TRAIN_SEED + i), "--out", str(path), "--no-progress"])
    run = out / f"mw-tdist-{steps}" if stride == 1 else out / f"mw-tdist-{steps}-stride{stride}"
    # td-sim's architecture and optimiser (vip_rl.weights_recipe), no text tower, Meta-World's camera
    pretrain = [vip_rl, "pretrain", *[a for f in files for a in ("--data", str(f))], "--camera", "corner", "--out", str(run),
                "--objective", "tdist", "--text", "none", "--embed-dim", "64", "--image-size", "64", "--cnn-channels",
                "16,32,64,64", "--head-hidden", "256", "--batch-size", "64", "--lr", "3e-4", "--lr-schedule", "cosine",
                "--warmup-steps", "200", "--gamma", "0.99", "--steps", str(steps), "--frame-stride", str(stride), "--no-progress"]
    return collects, pretrain, run


def _run(cmd: list[str]) -> float:
    print("$", " ".join(shlex.quote(c) for c in cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")})
    return time.perf_counter() - t0


def measure_in_domain(*, episodes: int, steps: int, stride: int, voc_episodes: int, encoders: dict[str, Any],
                      train: bool) -> dict[str, Any]:
    from vip_rl.diagnostics import value_order_correlation
    from vip_rl.goals import expert_rollout

    collects, pretrain, run = in_domain_commands(episodes=episodes, steps=steps, stride=stride, out=IN_DOMAIN_DIR)
    def shown(cmd: list[str]) -> str:  # the command as a user types it in the project root
        return " ".join(shlex.quote(c.replace(f"{ROOT}{os.sep}", "")) for c in cmd[1:])

    out: dict[str, Any] = {"commands": [shown(cmd) for cmd in [*collects, pretrain]], "run": str(run.relative_to(ROOT))}
    if train:
        (IN_DOMAIN_DIR / "data").mkdir(parents=True, exist_ok=True)
        out["collect_seconds"] = [0.0 if Path(cmd[cmd.index("--out") + 1]).exists() else _run(cmd) for cmd in collects]
        out["pretrain_call_seconds"] = _run(pretrain)
    in_domain = resolve_encoder(str(run / "encoder"), device=torch.device("cpu"))
    if train:  # the run's own record (every call that trained it): a finished run is reused in seconds
        out["pretrain_seconds"] = trained_seconds(in_domain, out["pretrain_call_seconds"])
    all_encoders = {"in-domain (tdist)": in_domain, **encoders}
    out["encoders"] = describe_encoders(all_encoders)
    table: dict[str, dict[str, float]] = {}
    for task in METAWORLD_TASKS:
        per: dict[str, list[float]] = {name: [] for name in all_encoders}
        successes = 0
        for s in range(VOC_SEED, VOC_SEED + voc_episodes):
            roll = expert_rollout(f"vip_envs/MetaWorld-{task}-v3", seed=s, max_steps=150, env_kwargs={"image_size": 96},
                                  record_frames=True)
            successes += roll.success
            for name, encoder in all_encoders.items():
                # over t < N, toward the final frame: 1 when the distance falls every step
                per[name].append(value_order_correlation(encoder, roll.frames[:-1], roll.frames[-1]))
        table[task] = {name: float(np.mean(v)) for name, v in per.items()}
        table[task]["expert_success"] = successes / voc_episodes
        print(f"[in-domain] {task}: " + ", ".join(f"{k} {v:.3f}" for k, v in table[task].items()), flush=True)
    out["voc"] = table
    out["voc_episodes"] = voc_episodes
    return out


# -- report ----------------------------------------------------------------------------------------
def keep_cell_parts(env: str, cells: Any, prov: dict[str, Any], earlier_prov: dict[str, Any]) -> None:
    """Name in ``prov`` the run that measured each of ``env``'s MPPI ``cells`` kept from a results file with
    provenance ``earlier_prov``: its part ``"mppi ENV: CELL"`` if it has one, else its part for the whole env (files
    written before cells were named one by one), else its command."""
    whole_env = next((part for part in earlier_prov.get("parts", []) if part["part"] == f"mppi {env}"), {})
    source = {**earlier_prov, **{k: v for k, v in whole_env.items() if k != "part"}}
    for name in cells:
        _report.add_part(prov, f"mppi {env}: {name}", source)


def merge_cells(env: str, measured: dict[str, Any], earlier: dict[str, Any] | None, prov: dict[str, Any],
                earlier_prov: dict[str, Any]) -> dict[str, Any]:
    """``measured`` (one env's MPPI entry) with the cells of the ``earlier`` entry that this run did not measure, when
    both ran the same episodes and planner, in the earlier column order; each kept cell is named in ``prov``
    (:func:`keep_cell_parts`)."""
    kept = (earlier or {}).get("cells", {})
    if not kept or any(earlier.get(k) != measured[k] for k in ("episodes", "max_steps", "K", "H")):
        return measured
    old_cells = {name: cell for name, cell in kept.items() if name not in measured["cells"]}
    keep_cell_parts(env, old_cells, prov, earlier_prov)
    order = [*kept, *(name for name in measured["cells"] if name not in kept)]  # the earlier file's column order
    cells = {**old_cells, **measured["cells"]}
    return {**measured, "cells": {name: cells[name] for name in order}}


def _num(value: Any, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def render(res: dict[str, Any]) -> str:
    lines = ["# Planning on MuJoCo envs outside the suite", "", _report.generated_by(res["provenance"]), ""]
    checks = res.get("checks") or {}
    if checks:
        lines += ["## MujocoDynamics on each env", "",
                  "`MujocoDynamics(env)` with `backend='auto'`. Pixel diff: mean |pixel| (0-255) between `env.render()` "
                  "and the backend's frame of the same state. qpos diff: max |qpos| between the backend's rollout and "
                  "`env.step` with the same random actions (5 steps x 2 sequences at construction; 20 steps x 4 "
                  "sequences through `rollout_error`).", ""]
        rows = [[name, c.get("skipped") or c["backend"], _num(c.get("render_diff"), "{:.3f}"),
                 _num(c.get("qpos_diff_5"), "{:.1e}"), _num(c.get("qpos_diff_20"), "{:.1e}")] for name, c in checks.items()]
        lines += _report.table(["env", "backend", "pixel diff", "qpos diff (5 steps)", "qpos diff (20 steps)"], rows)
        worst = [c["qpos_diff_20"] for c in checks.values() if c.get("qpos_diff_20") is not None]
        if worst:
            lines += ["", _report.target_line("rollout vs real, max |qpos| over the envs", f"{max(worst):.1e}", "<= 1e-6",
                                              met=max(worst) <= 1e-6)]
        lines.append("")
    mppi = res.get("mppi") or {}
    if mppi:
        lines += ["## MPPI success", ""]
        any_cell = next((m for m in mppi.values() if "cells" in m), None)
        if any_cell is not None:
            lines += [f"MPPI K={any_cell['K']}, H={any_cell['H']}, seeds 0.. per env; cell = success rate / mean final "
                      "task progress / ms per command (backend). Oracle: the env's reward summed over the horizon. Image: "
                      "`-||phi(o_T) - phi(g)||` (goal images in the script's docstring). The bundled encoders never saw "
                      "these envs (zero-shot); the in-domain encoder is the one the section below trains.", ""]
        names: list[str] = []
        for m in mppi.values():
            names += [n for n in m.get("cells", {}) if n not in names]
        rows = []
        for env_name, m in mppi.items():
            if "skipped" in m:
                rows.append([env_name, *([f"not measured: {m['skipped']}"] + [""] * (len(names) - 1))])
                continue
            cells = m["cells"]
            rows.append([f"{env_name} ({m['episodes']} ep, <= {m['max_steps']} steps)",
                         *(f"{cells[n]['success_rate']:.2f} / {cells[n]['mean_progress']:.2f} / "
                           f"{cells[n]['ms_per_command']:.0f} ms ({cells[n]['backend']})" if n in cells else "-" for n in names)])
        lines += _report.table(["env", *names], rows)
        lines.append("")
    dom = res.get("in_domain")
    if dom:
        lines += ["## Meta-World: an encoder pretrained in-domain by the CLI", "",
                  "The commands (`vip-rl ...`), run by `--sections in-domain`:", "", "```"]
        lines += [f"vip-rl {c}" for c in dom["commands"]]
        lines += ["```", ""]
        if "pretrain_seconds" in dom:
            call = dom.get("pretrain_call_seconds")
            reused = (f" as the run records it; this call {call / 60:.1f} min, the finished run reused"
                      if call is not None and call < 0.5 * dom["pretrain_seconds"] else "")
            lines += [f"Collect: {', '.join(f'{s:.0f} s' for s in dom['collect_seconds'])} (0: reused); pretrain "
                      f"{dom['pretrain_seconds'] / 60:.1f} min{reused} (target: at most 30 min here: "
                      f"{'met' if dom['pretrain_seconds'] <= 1800 else '**missed**'}).", ""]
        names = [n for n in next(iter(dom["voc"].values())) if n != "expert_success"]
        lines += [f"VOC on {dom['voc_episodes']} held-out expert episodes per task (seeds from {VOC_SEED}; goal = the "
                  "episode's final frame):", ""]
        lines += _report.table(["task", *names, "expert success"],
                               [[t, *(f"{v[n]:.3f}" for n in names), f"{v['expert_success']:.2f}"] for t, v in dom["voc"].items()])
        lines += ["", "Encoders: " + "; ".join(f"{k}: {v}" for k, v in dom["encoders"].items()), ""]
    lines += _report.notes_section(res.get("notes"))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke sizes: checks and 1 episode of 3 steps per MPPI cell (K=8, H=3), no in-domain training")
    p.add_argument("--sections", default="checks,in-domain,mppi", help="comma-separated: checks, in-domain, mppi")
    p.add_argument("--envs", default=None, help="comma-separated env keys (default all): pusher, mw-drawer-open, "
                                                "mw-button-press, mw-door-open, kitchen")
    p.add_argument("--encoders", default="td-sim,vip-sim", help="bundled encoders of the zero-shot image cells")
    p.add_argument("--in-domain-encoder", default=None,
                   help="encoder of the in-domain image cells on Meta-World (default: the in-domain section's run)")
    p.add_argument("--no-train", action="store_true", help="in-domain: reuse the run on disk instead of collecting/training")
    p.add_argument("--train-episodes", type=int, default=40, help="in-domain: episodes collected per task")
    p.add_argument("--train-steps", type=int, default=12000, help="in-domain: pretraining steps")
    p.add_argument("--train-stride", type=int, default=3,
                   help="in-domain: --frame-stride of the pretraining (6000 steps at stride 1 left the reaching phase flat)")
    p.add_argument("--voc-episodes", type=int, default=5)
    p.add_argument("--no-oracle", action="store_true", help="mppi: skip the oracle cells (with --merge they are kept)")
    p.add_argument("--episodes", type=int, default=None, help="MPPI episodes per cell (default per env)")
    p.add_argument("--max-steps", type=int, default=None, help="MPPI episode step limit (default per env)")
    p.add_argument("--samples", type=int, default=32, help="K")
    p.add_argument("--horizon", type=int, default=10, help="H")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--merge", action="store_true", help="keep the other sections/envs of the existing results file")
    p.add_argument("--notes", default=str(ROOT / "benchmarks" / "notes" / "foreign_envs.md"),
                   help="findings shown under Notes (read at every write)")
    _report.add_output_args(p, "foreign_envs")
    args = p.parse_args(argv)
    if args.render_only:
        return _report.render_only_with_notes(args.out, render, args.notes)
    torch.set_num_threads(args.torch_threads)
    if args.quick:
        args.sections = "checks,mppi" if args.sections == "checks,in-domain,mppi" else args.sections
        args.episodes, args.max_steps, args.samples, args.horizon = 1, 3, 8, 3
    sections = args.sections.split(",")
    unknown = [s for s in sections if s not in ("checks", "in-domain", "mppi")]
    if unknown:
        p.error(f"--sections: unknown {unknown}")
    cases = env_cases()
    keys = args.envs.split(",") if args.envs else list(cases)
    if [k for k in keys if k not in cases]:
        p.error(f"--envs: unknown {[k for k in keys if k not in cases]}; known: {list(cases)}")
    res: dict[str, Any] = _report.read(args.out) if args.merge and Path(args.out).with_suffix(".json").exists() else {}
    prov = _report.provenance(__file__, argv, quick=args.quick)
    measured_now = {f"{section} {cases[k].name}" for section in sections for k in keys} | (
        {"in-domain"} if "in-domain" in sections else set())
    earlier_prov = res.get("provenance") or {}
    if earlier_prov:  # name the runs behind the parts kept from the earlier file
        kept = [f"checks {n}" for n in res.get("checks", {})] + (["in-domain"] if res.get("in_domain") else [])
        for part in kept:
            if part not in measured_now:
                _report.add_part(prov, part, earlier_prov)
        for env, entry in res.get("mppi", {}).items():  # an env this run does not plan on: each cell keeps its run
            if f"mppi {env}" not in measured_now:
                keep_cell_parts(env, (entry or {}).get("cells", {}), prov, earlier_prov)
    res["provenance"] = prov
    cpu = torch.device("cpu")
    bundled = {n: resolve_encoder(n, device=cpu, seed=args.seed) for n in args.encoders.split(",") if n and has_encoder(n)}

    def save() -> None:
        res["notes"] = _report.read_notes(args.notes)
        _report.write(args.out, res, render(res), verbose=False)

    if "checks" in sections:
        checks = res.setdefault("checks", {})
        for key in keys:
            case = cases[key]
            why = case.available()
            checks[case.name] = {"skipped": why} if why else measure_checks(case, seed=args.seed)
            print(f"[checks] {case.name}: {checks[case.name]}", flush=True)
            if key == "mw-drawer-open" and not why:
                checks["Meta-World drawer-open-v3 via Meta-World/MT1 (corner camera, no adapter)"] = raw_metaworld_check(seed=args.seed)
            save()
    if "in-domain" in sections:
        if importlib.util.find_spec("metaworld") is None:
            res["in_domain"] = None
        else:
            earlier = res.get("in_domain") or {}
            res["in_domain"] = measure_in_domain(episodes=args.train_episodes, steps=args.train_steps, stride=args.train_stride,
                                                 voc_episodes=args.voc_episodes, encoders=bundled, train=not args.no_train)
            if args.no_train:  # the run on disk is the earlier one: keep what its training measured
                res["in_domain"].update({k: earlier[k] for k in ("collect_seconds", "pretrain_seconds") if k in earlier})
        save()
    if "mppi" in sections:
        mppi = res.setdefault("mppi", {})
        in_domain_path = args.in_domain_encoder or str(in_domain_commands(episodes=args.train_episodes, steps=args.train_steps,
                                                                          stride=args.train_stride, out=IN_DOMAIN_DIR)[2] / "encoder")
        for key in keys:
            case = cases[key]
            why = case.available()
            if why:
                mppi[case.name] = {"skipped": why}
                continue
            encoders = dict(bundled)
            if key.startswith("mw-") and Path(in_domain_path).exists():
                encoders = {"in-domain": resolve_encoder(in_domain_path, device=cpu), **encoders}
            measured = measure_mppi(case, encoders, seed=args.seed, num_samples=args.samples, horizon=args.horizon,
                                    episodes=args.episodes, max_steps=args.max_steps, oracle=not args.no_oracle)
            mppi[case.name] = merge_cells(case.name, measured, mppi.get(case.name) if args.merge else None, prov, earlier_prov)
            save()
    save()
    print(f"wrote {Path(args.out).with_suffix('.json')} and .md", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
