"""Few-shot policies from mixed-quality demos: BC vs RWR with embedding / true / random-encoder rewards.

Writes ``benchmarks/results/few_shot.json`` and ``benchmarks/results/few_shot.md`` (atomically).

Protocol (every figure measured in the same run, side by side with its anchors):

* Demos per task, collected with ``vip_rl.collect.collect`` in a fixed repeating order
  ``expert, noisy(0.3), failed, noisy(0.6)``; 20 demos = **5 expert** (scripted expert, no noise),
  **5 noisy expert with noise 0.3**, **5 noisy expert with noise 0.6**, **5 failed** (noisy expert,
  noise 0.45, cut at a uniformly random step before its first success: ``policy="mixed",
  mix=(0, 0, 1)``). Episodes end at success (the env terminates on success) or after 100 steps.
* Goal image for the embedding rewards: the final front frame of one extra successful expert demo
  (a seed not in the training demos), the VIP paper's "goal image" setting.
* Same policy for every method: MLP (2x128 by default, LayerNorm) on the frozen policy-input encoder's
  embedding of the front 96 px frame + proprioceptive state (end-effector position/velocity,
  fingers; no object state), deterministic tanh head, same steps / batch / lr / seeds.
  Methods differ only in the per-transition weights:
  ``BC`` (w = 1), ``RWR(vip)`` (progress reward of the ``vip-sim`` embedding to the goal image),
  ``RWR(true)`` (the env's dense reward: oracle anchor), ``RWR(random)`` (progress reward of a
  randomly initialised encoder of the same architecture: anchor).
* Evaluation: success rate over held-out reset seeds (100000 + i), deterministic actions.
* Scaling: success vs 5 / 10 / 20 / 50 demos (first k of a 50-demo pool in the order above) on one task.
* RWR settings (the same for every RWR column): weights ``exp(R / 0.5)`` on R standardised over the
  dataset, normalised to batch mean 1 and clipped at 20, R = reward-to-go (gamma 0.99). The return kind
  was picked in a pilot on OpenDrawer / SlideDoor / FlipSwitch (2 seeds, 20 episodes, an intermediate
  vip-sim checkpoint) by the **true-reward** column: RWR(true) reward-to-go 0.92, per-step reward 0.85,
  episode return 0.83 mean success (BC 0.92; RWR(vip) 0.97 / 0.64 / 0.79 in the same order).

Until ``vip-sim`` weights exist the policy input falls back to the random encoder and the
``RWR(vip)`` rows are reported as missing; rerun to fill them.

Usage:
    python benchmarks/few_shot.py --quick
    python benchmarks/few_shot.py                       # full: all 7 tasks x 3 seeds x 20 eval episodes
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vip_rl._io import atomic_write_text  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
PATTERN = ("expert", "noisy0.3", "failed", "noisy0.6")
METHODS = ("BC", "RWR(vip)", "RWR(true)", "RWR(random)")
EVAL_SEED = 100_000
IMAGE_SIZE = 96


# ------------------------------------------------------------------------------------------------
# data


def suite_fingerprint() -> str:
    """Hash of the suite's code + assets and the collector: cached demos are reused only while it holds."""
    import hashlib

    import vip_envs
    import vip_rl.collect

    digest = hashlib.sha256()
    package = Path(vip_envs.__file__).resolve().parent
    files = sorted(package.rglob("*.py")) + sorted(package.rglob("*.xml")) + [Path(vip_rl.collect.__file__).resolve()]
    for file in files:
        digest.update(file.name.encode() + file.read_bytes())
    return digest.hexdigest()[:12]


def collect_demos(task: str, num_demos: int, data_dir: Path, *, seed: int, failed: str = "cut") -> tuple[Path, np.ndarray, dict[str, Any]]:
    """Collect (or reuse) ``num_demos`` mixed demos + one goal demo; returns (h5 path, goal image, info).

    ``failed="cut"``: failed demos are noisy-expert rollouts (noise 0.45) cut before their first success;
    ``failed="play"``: failed demos are ``vip_envs.play_policy`` episodes (smooth random exploration).
    """
    from vip_rl.collect import collect
    from vip_rl.data import read_episodes, write_episodes

    out = data_dir / (f"{task}_{num_demos}.h5" if failed == "cut" else f"{task}_{num_demos}_{failed}.h5")
    goal_file = data_dir / f"{task}_goal.npy"
    kinds = [PATTERN[i % len(PATTERN)] for i in range(num_demos)]
    counts = {k: kinds.count(k) for k in PATTERN}
    if not out.exists() or not goal_file.exists():
        parts: dict[str, list[Any]] = {}
        settings = {
            "expert": dict(policy="expert"),
            "noisy0.3": dict(policy="noisy", noise=0.3),
            "noisy0.6": dict(policy="noisy", noise=0.6),
            "failed": dict(policy="mixed", noise=0.45, mix=(0.0, 0.0, 1.0)) if failed == "cut" else dict(policy="play"),
        }
        for offset, kind in enumerate(PATTERN):
            if not counts[kind]:
                parts[kind] = []
                continue
            tmp = data_dir / f".{task}_{kind}.h5"
            collect(task, episodes=counts[kind], out=tmp, seed=seed * 100 + offset, image_size=IMAGE_SIZE,
                    progress=False, **settings[kind])
            parts[kind] = read_episodes(tmp)
            tmp.unlink()
        taken = {k: 0 for k in PATTERN}
        ordered = []
        for kind in kinds:
            episode = parts[kind][taken[kind]]
            episode.attrs["bench_kind"] = kind
            ordered.append(episode)
            taken[kind] += 1
        write_episodes(out, ordered, env_id=f"vip_envs/{task}-v0", cameras=["front"], image_size=IMAGE_SIZE)
        if not goal_file.exists():
            tmp = data_dir / f".{task}_goal.h5"
            for attempt in range(5):
                collect(task, episodes=1, policy="expert", out=tmp, seed=seed * 100 + 50 + attempt, image_size=IMAGE_SIZE, progress=False)
                goal_episode = read_episodes(tmp)[0]
                tmp.unlink()
                if goal_episode.success:
                    break
            np.save(goal_file, goal_episode.frames["front"][-1])
    episodes = read_episodes(out, load_images=False)
    info = {
        "file": str(out.relative_to(ROOT) if out.is_relative_to(ROOT) else out),
        "counts": counts,
        "success_by_kind": {k: float(np.mean([e.success for e in episodes if e.attrs.get("bench_kind") == k]))
                            for k in PATTERN if counts[k]},
        "demo_success_rate": float(np.mean([e.success for e in episodes])),
        "mean_length": float(np.mean([e.num_steps for e in episodes])),
        "seeds": [int(e.attrs["seed"]) for e in episodes],
    }
    return out, np.load(goal_file), info


def build_encoders(vip_name: str, device: str) -> tuple[Any, Any, str | None]:
    """(vip encoder or None, random encoder of the same architecture, why vip is missing)."""
    from vip_rl.encoders import build_encoder, load_encoder

    try:
        vip = load_encoder(vip_name, device=device)
        missing = None
    except (FileNotFoundError, ValueError) as exc:
        vip, missing = None, f"{type(exc).__name__}: {exc}"
    if vip is not None and vip.config.get("arch") in ("cnn", "resnet18", "resnet34", "resnet50", "resnet101"):
        cfg = vip.config
        random = build_encoder(cfg["arch"], metric=vip.metric, embed_dim=cfg.get("embed_dim"), image_size=vip.image_size,
                               normalisation=cfg.get("normalisation"), cnn_channels=cfg.get("cnn_channels"),
                               seed=12345, device=device, name="random")
    else:
        random = build_encoder("cnn", seed=12345, device=device, name="random")
    return vip, random, missing


def dataset_arrays(path: Path, goal: np.ndarray, vip: Any, random: Any, cache_dir: Path) -> dict[str, Any]:
    """Policy-input embeddings (vip, else random) + the three reward labels, as plain arrays."""
    from vip_rl.policies import PolicyDataset

    input_encoder = vip if vip is not None else random
    base = PolicyDataset.from_file(path, input_encoder, goal=goal, mode="progress", cache_dir=cache_dir, progress=False)
    rand = base if vip is None else PolicyDataset.from_file(path, random, goal=goal, mode="progress", cache_dir=cache_dir, progress=False)
    arrays = {f.name: getattr(base, f.name) for f in dataclasses.fields(base) if f.name not in ("frames", "metadata", "rewards")}
    arrays["rewards_vip"] = base.rewards if vip is not None else np.full_like(base.rewards, np.nan)
    arrays["rewards_random"] = rand.rewards
    arrays["metadata"] = base.metadata
    return arrays


# ------------------------------------------------------------------------------------------------
# jobs (run in worker processes: one torch thread each)

_WORKER: dict[str, Any] = {}


def _init_worker(vip_name: str | None) -> None:
    import torch

    torch.set_num_threads(1)
    _WORKER["vip_name"] = vip_name


def _encoder(kind: str) -> Any:
    if kind not in _WORKER:
        vip, random, _ = build_encoders(_WORKER["vip_name"] or "vip-sim", "cpu")
        _WORKER["vip"], _WORKER["random"] = vip, random
    return _WORKER[kind]


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    from vip_rl.policies import BCConfig, PolicyDataset, RWRConfig, evaluate_policy, train_bc, train_rwr

    with np.load(job["arrays"], allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    method = job["method"]
    rewards = {"RWR(vip)": arrays["rewards_vip"], "RWR(random)": arrays["rewards_random"]}.get(method, arrays["rewards_random"])
    dataset = PolicyDataset(
        embeddings=arrays["embeddings"], states=arrays["states"], actions=arrays["actions"], rewards=rewards,
        true_rewards=arrays["true_rewards"], episode_ids=arrays["episode_ids"], timesteps=arrays["timesteps"],
        episode_success=arrays["episode_success"], metadata=json.loads(str(arrays["metadata"])),
    ).select_episodes(range(job["num_demos"]))
    common = job["train"]
    start = time.perf_counter()
    if method == "BC":
        result = train_bc(BCConfig(**common), dataset, seed=job["seed"], progress=False)
    else:
        rwr = dict(job["rwr"], reward_source="true" if method == "RWR(true)" else "relabelled")
        result = train_rwr(RWRConfig(**common, **rwr), dataset, seed=job["seed"], progress=False)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    encoder = _encoder(job["input_encoder"])
    evaluation = evaluate_policy(result.policy, f"vip_envs/{job['task']}-v0", episodes=job["eval_episodes"], seed=EVAL_SEED,
                                 encoder=encoder, num_envs=job["eval_episodes"], progress=False)
    eval_s = time.perf_counter() - start
    steps = sum(e["length"] for e in evaluation["per_episode"])
    return {
        **{k: job[k] for k in ("task", "method", "seed", "num_demos", "study")},
        "success_rate": evaluation["success_rate"],
        "mean_return": evaluation["mean_return"],
        "mean_final_progress": float(np.mean([e["final_task_progress"] for e in evaluation["per_episode"]])),
        "train_s": train_s,
        "eval_s": eval_s,
        "eval_env_steps": steps,
        "final_loss": result.history[-1]["train/loss"],
    }


# ------------------------------------------------------------------------------------------------
# report


def _fmt(values: list[float]) -> str:
    if not values:
        return "n/a"
    mean = 100 * float(np.mean(values))
    return f"{mean:.0f} ± {100 * float(np.std(values)):.0f}" if len(values) > 1 else f"{mean:.0f}"


def summarise(rows: list[dict[str, Any]], tasks: list[str], methods: list[str]) -> dict[str, Any]:
    main = [r for r in rows if r["study"] == "main"]
    table: dict[str, dict[str, Any]] = {}
    for task in tasks:
        table[task] = {}
        for method in methods:
            values = [r["success_rate"] for r in main if r["task"] == task and r["method"] == method]
            table[task][method] = {"mean": float(np.mean(values)) if values else None, "per_seed": values}
    average = {}
    for method in methods:
        means = [table[t][method]["mean"] for t in tasks if table[t][method]["mean"] is not None]
        average[method] = float(np.mean(means)) if means and len(means) == len(tasks) else None
    return {"per_task": table, "average": average}


def targets(average: dict[str, float | None]) -> dict[str, Any]:
    vip, bc, true = average.get("RWR(vip)"), average.get("BC"), average.get("RWR(true)")
    out: dict[str, Any] = {}
    if bc is None or true is None:
        return {"rwr_vip_minus_bc": {"value": None, "target": ">= 15 points", "status": "not measured yet"},
                "rwr_true_minus_rwr_vip": {"value": None, "target": "<= 10 points", "status": "not measured yet"}}
    if vip is None:
        out["rwr_vip_minus_bc"] = {"value": None, "target": ">= 15 points", "status": "not measured (vip-sim missing)"}
        out["rwr_true_minus_rwr_vip"] = {"value": None, "target": "<= 10 points", "status": "not measured (vip-sim missing)"}
        return out
    gain = 100 * (vip - bc)
    gap = 100 * (true - vip)
    out["rwr_vip_minus_bc"] = {"value": gain, "target": ">= 15 points", "status": "met" if gain >= 15 else "MISSED"}
    out["rwr_true_minus_rwr_vip"] = {"value": gap, "target": "<= 10 points", "status": "met" if gap <= 10 else "MISSED"}
    return out


def markdown(report: dict[str, Any]) -> str:
    cfg = report["config"]
    methods = report["methods"]
    lines = ["# Few-shot policies from mixed demos: BC vs RWR", ""]
    if report["status"] != "complete":
        lines += [f"**{report['status']}** (figures below cover the finished jobs only)", ""]
    lines.append(
        f"Success rate (%) over {cfg['eval_episodes']} held-out reset seeds per policy, mean ± std over "
        f"{len(cfg['seeds'])} training seeds; {cfg['num_demos']} demos per task "
        f"({report['demo_mix']}). Policy input: `{report['input_encoder']}` embedding of the front "
        f"{IMAGE_SIZE} px frame + proprio state; MLP {list(cfg['train']['hidden'])}, {cfg['train']['steps']} steps, batch {cfg['train']['batch_size']}; "
        f"RWR: {cfg['rwr']}."
    )
    if report.get("vip_encoder_note"):
        lines += ["", f"`{report['input_encoder']}` weights used here (fingerprint {report['vip_encoder_fingerprint']}): "
                      f"{report['vip_encoder_note']}."]
    if report.get("vip_missing"):
        lines += ["", f"**`vip-sim` missing** ({report['vip_missing']}): the policy input uses the random encoder and the "
                      "RWR(vip) column is empty; rerun this script once the weights exist."]
    lines += ["", "| task | demo success | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    for task, per_method in report["summary"]["per_task"].items():
        demo = report["data"][task]["demo_success_rate"]
        cells = [_fmt(per_method[m]["per_seed"]) for m in methods]
        lines.append(f"| {task} | {100 * demo:.0f} | " + " | ".join(cells) + " |")
    avg = report["summary"]["average"]
    lines.append("| **average** | | " + " | ".join("n/a" if avg[m] is None else f"**{100 * avg[m]:.0f}**" for m in methods) + " |")
    lines += ["", "Targets:", ""]
    for name, item in report["targets"].items():
        value = "n/a" if item["value"] is None else f"{item['value']:+.1f} points"
        lines.append(f"- `{name}` = {value} (target {item['target']}): **{item['status']}**")
    if report.get("scaling"):
        sc = report["scaling"]
        lines += ["", f"## Success vs number of demos ({sc['task']} only, same mix order, {len(cfg['seeds'])} seeds)", "",
                  "| demos | " + " | ".join(sc["methods"]) + " |", "|---|" + "---|" * len(sc["methods"])]
        for k in sc["num_demos"]:
            cells = [_fmt(sc["table"][str(k)][m]) for m in sc["methods"]]
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
    t = report["timing"]
    lines += ["", "## Cost", "",
              f"- total wall time {t['total_s']:.0f} s on {t['workers']} worker process(es) (1 torch thread each), "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores shared with other jobs "
              f"(1-min load average {report['machine']['load_average_1min']:.1f} at the end)",
              f"- data collection + embedding: {t['data_s']:.0f} s; per policy: training {t['train_s_mean']:.1f} s, "
              f"evaluation {t['eval_s_mean']:.1f} s for {t['eval_steps_mean']:.0f} env steps "
              f"({1000 * t['eval_s_per_step']:.2f} ms per env step incl. render + encoder forward + policy)",
              f"- held-out eval seeds {EVAL_SEED}..{EVAL_SEED + cfg['eval_episodes'] - 1}; overlap with demo seeds: {report['seed_overlap']}"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------
# main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 tasks, 1 seed, 10 eval episodes, short training")
    parser.add_argument("--tasks", nargs="+", default=["OpenDrawer", "CloseDrawer", "SlideDoor", "PressButton", "FlipSwitch",
                                                       "PushBlock", "PickPlace"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--num-demos", type=int, default=20)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.5)
    parser.add_argument("--returns", default="reward_to_go", choices=("reward", "reward_to_go", "return"),
                        help="RWR return for every RWR variant (chosen on RWR(true) in a pilot: see the module docstring)")
    parser.add_argument("--max-weight", type=float, default=20.0)
    parser.add_argument("--vip-encoder", default="vip-sim")
    parser.add_argument("--scaling-task", default="OpenDrawer")
    parser.add_argument("--scaling-demos", type=int, nargs="+", default=[5, 10, 20, 50])
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--scaling-methods", nargs="+", default=["BC", "RWR(vip)"],
                        help="methods of the demo-count study (RWR(vip) falls back to RWR(true) without vip-sim)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--failed", default="cut", choices=("cut", "play"),
                        help="what the failed demos are: noisy expert cut before success (default) or play episodes")
    parser.add_argument("--work-dir", default=str(ROOT / "runs" / "bench_few_shot"))
    parser.add_argument("--out-name", default="few_shot")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks = args.tasks[:2]
        args.seeds, args.eval_episodes, args.steps = 1, 10, 400
        args.scaling_demos = [5, 20]
    start = time.perf_counter()
    work = Path(args.work_dir)
    fingerprint = suite_fingerprint()
    data_dir, cache_dir, arrays_dir = work / f"data-{fingerprint}", work / "cache", work / f"arrays-{fingerprint}"
    for d in (data_dir, cache_dir, arrays_dir):
        d.mkdir(parents=True, exist_ok=True)

    import torch

    from vip_rl.policies import encoder_fingerprint

    torch.set_num_threads(1)
    vip, random, vip_missing = build_encoders(args.vip_encoder, "cpu")
    methods = [m for m in args.methods if not (vip is None and m == "RWR(vip)")]
    input_encoder = "vip" if vip is not None else "random"

    # ---- data
    scaling = not args.no_scaling and args.scaling_task
    pool_sizes = {t: args.num_demos for t in args.tasks}
    if scaling:
        pool_sizes[args.scaling_task] = max(pool_sizes.get(args.scaling_task, 0), max(args.scaling_demos))
    data_info: dict[str, Any] = {}
    arrays_path: dict[str, Path] = {}
    demo_seeds: set[int] = set()
    for index, (task, size) in enumerate(pool_sizes.items()):
        path, goal, info = collect_demos(task, size, data_dir, seed=index + 1, failed=args.failed)
        arrays = dataset_arrays(path, goal, vip, random, cache_dir)
        meta = arrays.pop("metadata")
        file = arrays_dir / f"{task}_{size}_{args.failed}_{input_encoder}.npz"
        np.savez(file, metadata=json.dumps(meta), **arrays)
        arrays_path[task] = file
        data_info[task] = info
        demo_seeds |= set(info["seeds"])
        print(f"[data] {task}: {size} demos, success {info['demo_success_rate']:.0%} by kind {info['success_by_kind']}", flush=True)
    data_s = time.perf_counter() - start
    eval_seeds = set(range(EVAL_SEED, EVAL_SEED + args.eval_episodes))

    # ---- jobs
    train = dict(steps=args.steps, batch_size=args.batch_size, lr=1e-3, hidden=tuple(args.hidden), head="deterministic",
                 state_indices=(0, 1, 2, 3, 4, 5, 6, 7))
    rwr = dict(temperature=args.temperature, returns=args.returns, max_weight=args.max_weight, gamma=0.99)
    base = dict(train=train, rwr=rwr, eval_episodes=args.eval_episodes, input_encoder=input_encoder)
    jobs = []
    for task in args.tasks:
        for method in methods:
            for seed in range(args.seeds):
                jobs.append(dict(base, task=task, method=method, seed=seed, num_demos=args.num_demos, study="main",
                                 arrays=str(arrays_path[task])))
    scaling_methods = [m for m in args.scaling_methods if m in methods]
    if vip is None and "RWR(vip)" in args.scaling_methods and "RWR(true)" not in scaling_methods and "RWR(true)" in methods:
        scaling_methods.append("RWR(true)")
    if scaling:
        for k in args.scaling_demos:
            if k == args.num_demos and args.scaling_task in args.tasks:
                continue  # reuse the main study's runs
            for method in scaling_methods:
                for seed in range(args.seeds):
                    jobs.append(dict(base, task=args.scaling_task, method=method, seed=seed, num_demos=k, study="scaling",
                                     arrays=str(arrays_path[args.scaling_task])))
    print(f"[jobs] {len(jobs)} train+eval jobs on {args.workers} workers", flush=True)
    rows: list[dict[str, Any]] = []

    def write_report(final: bool) -> dict[str, Any]:
        summary = summarise(rows, args.tasks, methods)
        scaling_report = None
        if scaling:
            table: dict[str, dict[str, list[float]]] = {}
            for k in args.scaling_demos:
                study = "main" if (k == args.num_demos and args.scaling_task in args.tasks) else "scaling"
                table[str(k)] = {m: [r["success_rate"] for r in rows if r["task"] == args.scaling_task and r["method"] == m
                                     and r["num_demos"] == k and r["study"] == study] for m in scaling_methods}
            scaling_report = {"task": args.scaling_task, "num_demos": args.scaling_demos, "methods": scaling_methods, "table": table}
        steps = sum(r["eval_env_steps"] for r in rows)
        mix = {k: [PATTERN[i % 4] for i in range(args.num_demos)].count(k) for k in PATTERN}
        report = {
            "benchmark": "few_shot",
            "status": "complete" if final else f"PARTIAL: {len(rows)}/{len(jobs)} jobs done",
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch_threads_per_worker": 1,
                        "load_average_1min": os.getloadavg()[0]},
            "config": {"tasks": args.tasks, "seeds": list(range(args.seeds)), "num_demos": args.num_demos,
                       "eval_episodes": args.eval_episodes, "eval_seed_start": EVAL_SEED, "train": {**train, "lr": 1e-3},
                       "rwr": rwr, "quick": args.quick, "suite_fingerprint": fingerprint,
                       "goal": "final front frame of one extra successful expert demo"},
            "demo_mix": "repeating expert, noisy 0.3, failed ("
                        + ("noisy 0.45 cut before success" if args.failed == "cut" else "play policy: smooth random exploration")
                        + "), noisy 0.6; "
                        f"{args.num_demos} demos = " + ", ".join(f"{v} {k}" for k, v in mix.items()),
            "input_encoder": args.vip_encoder if vip is not None else "random (vip-sim missing)",
            "vip_encoder_fingerprint": encoder_fingerprint(vip) if vip is not None else None,
            "vip_encoder_note": (vip.config.get("training") or {}).get("note") if vip is not None else None,
            "vip_missing": vip_missing,
            "methods": methods,
            "data": data_info,
            "summary": summary,
            "targets": targets(summary["average"]),
            "scaling": scaling_report,
            "rows": rows,
            "seed_overlap": len(eval_seeds & demo_seeds),
            "timing": {"total_s": time.perf_counter() - start, "data_s": data_s, "workers": args.workers,
                       "train_s_mean": float(np.mean([r["train_s"] for r in rows])) if rows else float("nan"),
                       "eval_s_mean": float(np.mean([r["eval_s"] for r in rows])) if rows else float("nan"),
                       "eval_steps_mean": float(np.mean([r["eval_env_steps"] for r in rows])) if rows else float("nan"),
                       "eval_s_per_step": float(sum(r["eval_s"] for r in rows) / max(steps, 1))},
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        atomic_write_text(RESULTS / f"{args.out_name}.json", json.dumps(report, indent=2, default=float))
        atomic_write_text(RESULTS / f"{args.out_name}.md", markdown(report))
        return report

    context = mp.get_context("spawn")
    with context.Pool(args.workers, initializer=_init_worker, initargs=(args.vip_encoder,)) as pool:
        for row in pool.imap_unordered(run_job, jobs):
            rows.append(row)
            print(f"[{len(rows)}/{len(jobs)}] {row['task']} {row['method']} seed={row['seed']} n={row['num_demos']}: "
                  f"success {row['success_rate']:.2f} (train {row['train_s']:.1f}s eval {row['eval_s']:.1f}s)", flush=True)
            write_report(final=False)
    print(markdown(write_report(final=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
