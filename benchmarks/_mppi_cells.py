"""MPPI episode cells shared by ``mppi_success.py`` and ``mppi_ablations.py``: one (task, method) cell =
seeded MPPI episodes with one cost, summarised by ``_common.summarise_episodes``.

A *method* is a dict: ``kind`` (``oracle``, ``image``, ``text``, ``image-subgoals``, ``goalstate``,
``goalstate-objects``, ``goalstate-subgoals``) and its options (``encoder``, ``when``, ``lookahead``,
``same_seed_goal``, ``camera``, ``cost``, ``discount``, ``final_weight``, ``key``, ``decompose``, ``split``: the
instruction set a ``text`` goal comes from, ``"train"`` by default or ``"heldout"``; its first one). ``decompose``
(``image-subgoals`` only): ``decompose_demo`` keyword arguments (``min_interval``, ``smooth``); the demo's UVD
subgoal frames are the only targets and ``lookahead`` counts subgoals (the match is still over every demo frame);
the cell then reports ``subgoals_per_demo``, the mean demo length ``demo_frames``, the ``decompose`` settings and
each episode its ``subgoals``. Episode ``i`` resets with ``seed + i`` and the planner is seeded the same; goals come
from a scripted-expert run from ``seed + i + 10000`` (``same_seed_goal``: from ``seed + i``).
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
import torch

import _report
from _common import GOAL_SEED_OFFSET, expert_goal, resolve_encoder, run_episode, summarise_episodes
from vip_rl.planning import (
    MPPI,
    DemoSubgoalCost,
    EmbeddingGoalCost,
    EmbeddingProgressCost,
    MPPIConfig,
    MujocoDynamics,
    OracleCost,
    decompose_demo,
)
from vip_rl.planning.dynamics import Trajectories

#: the suite tasks the success table covers
TASKS = ("OpenDrawer", "CloseDrawer", "SlideDoor", "PressButton", "FlipSwitch")


def suite_config(*, num_samples: int, horizon: int, iterations: int, sigma: float, temperature: float, beta: float,
                 **overrides: Any) -> MPPIConfig:
    """The planner settings of the success and ablation tables (the suite's action_dim is 4)."""
    return MPPIConfig(action_dim=4, num_samples=num_samples, horizon=horizon, iterations=iterations, noise_sigma=sigma,
                      temperature=temperature, noise_beta=beta, **overrides)


def add_planner_args(p: argparse.ArgumentParser) -> None:
    """The planner and episode flags the success and ablation tables share (their defaults are the tables')."""
    p.add_argument("--samples", type=int, default=32, help="K")
    p.add_argument("--horizon", type=int, default=10, help="H")
    p.add_argument("--iterations", type=int, default=1)
    p.add_argument("--sigma", type=float, default=0.5)
    p.add_argument("--temperature", type=float, default=0.05)
    p.add_argument("--beta", type=float, default=0.5)
    p.add_argument("--max-steps", type=int, default=None, help="episode length (default: the env's, 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--extra-encoders", default="", help="name=checkpoint_path[@camera],... extra encoders")
    p.add_argument("--torch-threads", type=int, default=1, help="1 is fastest on the shared 2-core machine")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes for the cells")


def expert_demo(env_id: str, seed: int, *, render: bool, **env_kwargs: Any) -> tuple[np.ndarray | None, np.ndarray]:
    """A scripted-expert run from ``seed`` (``vip_rl.goals.expert_rollout``): frames uint8 [N, H, W, 3] (if
    ``render``) and FULLPHYSICS states [N, S]."""
    from vip_rl.goals import expert_rollout

    run = expert_rollout(env_id, seed=seed, env_kwargs=env_kwargs, record_frames=render, record_states=True)
    return run.frames, run.states


def state_columns(layout: Any, *, objects_only: bool) -> np.ndarray:
    """FULLPHYSICS columns (``[time, qpos, ...]``) of the privileged goal features: objects, with the end effector
    and fingers first unless ``objects_only``."""
    idx = [int(layout.drawer), int(layout.door), int(layout.button), int(layout.switch), *range(layout.block, layout.block + 3)]
    if not objects_only:
        idx = [*map(int, layout.ee), *map(int, layout.fingers), *idx]
    return 1 + np.array(idx)


def goal_state_cost(env: Any, goal_state: np.ndarray, *, objects_only: bool, when: str = "final") -> OracleCost:
    """A 'perfect embedding' stand-in: distance between rolled-out and goal *privileged* states
    (end effector + objects, or objects only)."""
    cols = state_columns(env.unwrapped.layout, objects_only=objects_only)
    goal = goal_state[cols]
    return OracleCost(fn=lambda s: -np.linalg.norm(s[:, cols] - goal, axis=-1), when=when)


class StateSubgoalCost(OracleCost):
    """Privileged analogue of DemoSubgoalCost: subgoals are demo *states* (feature columns)."""

    def __init__(self, demo_states: np.ndarray, cols: np.ndarray, *, lookahead: int) -> None:
        super().__init__(fn=lambda s: s[:, 0], when="final")
        from vip_rl.planning.costs import SubgoalTracker

        self.cols = cols
        self.tracker = SubgoalTracker(torch.from_numpy(demo_states[:, cols]), lookahead=lookahead)

    def reset(self) -> None:
        self.tracker.reset()

    def __call__(self, traj: Trajectories) -> torch.Tensor:
        dist = lambda a, b: torch.linalg.vector_norm(a - b, dim=-1)  # noqa: E731
        start = torch.from_numpy(np.asarray(traj.start_states)[:, self.cols])
        index = self.tracker.subgoal_index(start, dist)
        final = torch.from_numpy(np.asarray(traj.states)[:, :, -1][..., self.cols])  # [E, K, D]
        return dist(final, self.tracker.demo[index][:, None]).float()


def make_cost(env: Any, task: str, method: dict[str, Any], *, goal_seed: int, encoders: dict[str, Any],
              env_kwargs: dict[str, Any]) -> Any:
    """The cost of one episode of ``method`` (see the module docstring)."""
    import vip_envs

    env_id = f"vip_envs/{task}-v0"
    kind = method["kind"]
    if kind == "oracle":
        return OracleCost(key=method.get("key", "reward"), when="sum")
    if kind == "goalstate-subgoals":
        _, demo_states = expert_demo(env_id, goal_seed, render=False)
        cols = state_columns(env.unwrapped.layout, objects_only=False)
        return StateSubgoalCost(demo_states, cols, lookahead=method.get("lookahead", 10))
    if kind == "image-subgoals":
        demo_frames, _ = expert_demo(env_id, goal_seed, render=True, **env_kwargs)
        encoder = encoders[method["encoder"]]
        subgoals = None if method.get("decompose") is None else decompose_demo(encoder, demo_frames, **method["decompose"])
        return DemoSubgoalCost(encoder, demo_frames, lookahead=method.get("lookahead", 10), subgoals=subgoals,
                               when=method.get("when", "final"), final_weight=method.get("final_weight", 0.0))
    if kind in ("goalstate", "goalstate-objects"):
        _, demo_states = expert_demo(env_id, goal_seed, render=False)  # the expert's state where it stopped
        return goal_state_cost(env, demo_states[-1], objects_only=kind == "goalstate-objects", when=method.get("when", "final"))
    if kind not in ("image", "text"):
        raise ValueError(f"method kind must be one of oracle, image, text, image-subgoals, goalstate, goalstate-objects, "
                         f"goalstate-subgoals; got {kind!r}")
    encoder = encoders[method["encoder"]]
    goal: Any = (vip_envs.instructions(task, method.get("split", "train"))[0] if kind == "text"
                 else expert_goal(env_id, seed=goal_seed, env_kwargs=env_kwargs))
    if method.get("cost") == "progress":
        return EmbeddingProgressCost(encoder, goal, discount=method.get("discount", 1.0))
    return EmbeddingGoalCost(encoder, goal, when=method.get("when", "final"), discount=method.get("discount", 1.0))


def run_method(task: str, method: dict[str, Any], *, episodes: int, cfg: MPPIConfig, seed: int,
               encoders: dict[str, Any], max_steps: int | None, render_every: int | None = None,
               camera: str | None = None, device: str | torch.device = "cpu", nthread: int = 2) -> dict[str, Any]:
    """``episodes`` seeded MPPI episodes of ``method`` on ``task`` -> one summarised cell. The planner runs on
    ``device`` (``encoders`` must live there too); ``nthread`` simulator threads roll the samples out."""
    import gymnasium as gym

    import vip_envs  # noqa: F401  (registers the vip_envs/* ids)

    camera = camera or method.get("camera")
    env_kwargs = {"cameras": (camera,)} if camera else {}
    env = gym.make(f"vip_envs/{task}-v0", render_mode="rgb_array", **env_kwargs)
    rows, subgoals, demo_frames = [], [], []
    t_start = time.perf_counter()
    with MujocoDynamics(env, nthread=nthread, render_every=render_every) as dyn:
        for ep in range(episodes):
            ep_seed = seed + ep
            goal_seed = ep_seed if method.get("same_seed_goal") else ep_seed + GOAL_SEED_OFFSET
            cost = make_cost(env, task, method, goal_seed=goal_seed, encoders=encoders, env_kwargs=env_kwargs)
            if method.get("decompose") is not None:
                subgoals.append(cost.tracker.subgoals.tolist())
                demo_frames.append(cost.tracker.demo.shape[0])
            planner = MPPI(cfg, dyn, cost, seed=ep_seed, device=device)
            rows.append(run_episode(env, planner, dyn, seed=ep_seed, max_steps=max_steps, record=False))
    env.close()
    cell = summarise_episodes(rows, seconds=time.perf_counter() - t_start)
    if subgoals:  # the decomposed demo's subgoal frames (the last is the demo's final frame)
        cell["subgoals_per_demo"] = float(np.mean([len(s) for s in subgoals]))
        cell["demo_frames"] = float(np.mean(demo_frames))
        cell["decompose"] = dict(method["decompose"])
        for row, frames in zip(cell["per_episode"], subgoals):
            row["subgoals"] = frames
    return cell


def load_encoders(names: set[str], specs: dict[str, str], encoders: dict[str, Any], *, seed: int) -> None:
    """Load each of ``names`` not in ``encoders`` that is ``random`` or a bundled encoder with weights (the
    others stay missing: their cells are reported as skipped); record its spec for the workers."""
    from _common import has_encoder

    for name in sorted(names - set(encoders)):
        if name == "random" or has_encoder(name):
            encoders[name] = resolve_encoder(name, device=torch.device("cpu"), seed=seed)
            specs[name] = name


def extra_encoders(spec: str, seed: int) -> tuple[dict[str, Any], dict[str, str], dict[str, str | None]]:
    """``name=path[@camera],...`` -> (loaded encoders, name -> path for the workers, name -> camera or None).

    Raises:
        ValueError / FileNotFoundError: a malformed item (``_report.name_value_pairs``) or an encoder that does not load.
    """
    encoders, paths, cameras = {}, {}, {}
    for name, value in _report.name_value_pairs(filter(None, spec.split(",")), "--extra-encoders", value="PATH[@CAMERA]").items():
        path, _, camera = value.partition("@")
        encoders[name] = resolve_encoder(path, device=torch.device("cpu"), seed=seed)
        paths[name] = path
        cameras[name] = camera or None
    return encoders, paths, cameras


_WORKER_ENCODERS: dict[str, Any] = {}


def _cell_worker(job: dict[str, Any]) -> dict[str, Any]:
    """One (task, method) cell in a worker process: encoders are loaded once per process from their specs."""
    torch.set_num_threads(job["torch_threads"])
    for name, spec in job["encoder_specs"].items():
        if name not in _WORKER_ENCODERS:
            _WORKER_ENCODERS[name] = resolve_encoder(spec, device=torch.device("cpu"), seed=job["seed"])
    return run_method(job["task"], job["method"], episodes=job["episodes"], cfg=MPPIConfig(**job["cfg"]), seed=job["seed"],
                      encoders=_WORKER_ENCODERS, max_steps=job["max_steps"], **job["kwargs"])


def run_cells(jobs: list[dict[str, Any]], *, workers: int, encoders: dict[str, Any], label: str) -> list[dict[str, Any]]:
    """Run ``run_method`` for every job, in ``workers`` spawned processes (1: in this process), in job order.

    A job: ``name``, ``task``, ``method``, ``episodes``, ``cfg`` (MPPIConfig fields), ``seed``, ``max_steps``,
    ``kwargs`` (``render_every``, ``camera``), ``encoder_specs`` (name -> what to load in a worker), ``torch_threads``.
    """
    def describe(job: dict[str, Any], cell: dict[str, Any]) -> str:
        return (f"[{label}] {job['task']} {job['name']}: {cell['success_rate']:.2f} progress {cell['mean_progress']:.2f} "
                f"({job['episodes']} eps, {cell['seconds']:.0f}s)")

    if workers <= 1:
        out = []
        for job in jobs:
            out.append(run_method(job["task"], job["method"], episodes=job["episodes"], cfg=MPPIConfig(**job["cfg"]),
                                  seed=job["seed"], encoders=encoders, max_steps=job["max_steps"], **job["kwargs"]))
            print(describe(job, out[-1]), flush=True)
        return out
    import concurrent.futures
    import multiprocessing

    # longest cells first (embedding methods render and encode; the oracle does not), results in job order
    order = sorted(range(len(jobs)), key=lambda i: jobs[i]["method"].get("kind") == "oracle")
    results: dict[int, dict[str, Any]] = {}
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_cell_worker, jobs[i]): i for i in order}
        for future in concurrent.futures.as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            print(describe(jobs[i], results[i]), flush=True)
    return [results[i] for i in range(len(jobs))]
