"""``vip-rl demo``: the main job end to end, on the bundled encoders and the vip_envs suite.

Stages (each writes ``<out>/<stage>/stage.json`` and skips itself when that file exists and was made with the
same configuration and, after ``collect``, the same encoder weights, unless ``--force``):

1. ``collect``       expert / noisy / play episodes and 20 mixed demos per task (``vip-rl collect``)
2. ``encoders``      load the bundled ``td-sim`` (recommended), ``vip-sim`` and ``liv-sim`` (``--pretrain`` retrains them briefly)
3. ``reward_curves`` embedding distance along expert, noisy and play episodes to image and text goals
4. ``wrapper``       a ``GoalReward``-wrapped task (td-sim): per-step reward next to the true progress
5. ``mppi``          MPPI toward a goal image and an instruction (td-sim), vip-sim's image goal and the oracle beside them
6. ``policies``      BC vs RWR(td-sim) on 20 mixed demos, evaluated on held-out seeds
7. ``report``        ``<out>/report.md`` and ``<out>/report.html`` with every figure and command

Example::

    vip-rl demo                 # full run (< 20 min on 2 CPU cores), writes runs/demo/report.md
    vip-rl demo --quick         # tiny configuration used by the test suite
"""
from __future__ import annotations

import argparse
import hashlib
import html
import json
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vip_rl._gl import default_mujoco_gl
from vip_rl._io import atomic_path, atomic_write_json, atomic_write_text

STAGES = ("collect", "encoders", "reward_curves", "wrapper", "mppi", "policies")
#: encoder role -> (pretraining objective of its --pretrain retrain, DemoConfig field naming the encoder)
ROLES = {"td-sim": ("tdist", "td_encoder"), "vip-sim": ("vip", "vip_encoder"), "liv-sim": ("liv", "liv_encoder")}


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs. ``quick()`` gives the tiny configuration the tests use."""

    out: Path = Path("runs/demo")
    """Output directory; the report is ``<out>/report.md``."""
    tasks: tuple[str, ...] = ("OpenDrawer", "PressButton")
    """Suite tasks to run every stage on."""
    curve_episodes: int = 2
    """Episodes per kind (expert, noisy, play) for the reward curves."""
    demos: int = 20
    """Mixed-quality demos per task for BC / RWR."""
    image_size: int = 96
    """Rendered image side."""
    mppi_tasks: tuple[str, ...] = ("SlideDoor", "PressButton")
    """Suite tasks of the MPPI stage (two the embedding goals reach; ``benchmarks/results/mppi_success.md`` has all five,
    including the ones they fail on)."""
    mppi_demo_tasks: tuple[str, ...] = ("OpenDrawer",)
    """Suite tasks of the MPPI stage planned along a demo video's frames (``vip-rl mppi --subgoals``)."""
    mppi_episodes: int = 3
    """MPPI episodes per task and goal kind."""
    mppi_samples: int = 32
    """MPPI samples K (``vip-rl mppi``'s default, ``vip_rl.planning.cli.DEFAULT_NUM_SAMPLES``)."""
    mppi_horizon: int = 10
    """MPPI horizon H (``vip-rl mppi``'s default, ``vip_rl.planning.cli.DEFAULT_HORIZON``)."""
    mppi_max_steps: int = 100
    """Step limit of one MPPI episode."""
    policy_steps: int = 2000
    """Gradient steps of BC and RWR."""
    eval_episodes: int = 20
    """Held-out evaluation episodes per policy."""
    td_encoder: str = "td-sim"
    """The recommended encoder (a temporal distance that counts steps; image and text goals): a bundled name or a
    checkpoint path. The wrapper, MPPI and policy stages use it."""
    vip_encoder: str = "vip-sim"
    """VIP encoder shown beside it (reward curves, MPPI image goal): a bundled name or a checkpoint path."""
    liv_encoder: str = "liv-sim"
    """LIV encoder shown beside it (reward curves; needs a text tower): a bundled name or a checkpoint path."""
    pretrain: bool = False
    """Retrain the encoders briefly with the real pipeline instead of loading the bundled ones."""
    pretrain_steps: int = 300
    """Steps of that brief retraining."""
    seed: int = 0
    """Seed of every stochastic stage."""

    def __post_init__(self) -> None:
        import vip_envs

        for name in ("tasks", "mppi_tasks", "mppi_demo_tasks"):
            for task in getattr(self, name):
                if task not in vip_envs.TASKS:
                    raise ValueError(f"{name} must be suite tasks {list(vip_envs.TASKS)}, got {task!r}")
        for name in ("curve_episodes", "demos", "image_size", "mppi_episodes", "mppi_samples", "mppi_horizon",
                     "mppi_max_steps", "policy_steps", "eval_episodes", "pretrain_steps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @classmethod
    def quick(cls, out: Path) -> "DemoConfig":
        """A configuration that exercises every stage in about a minute."""
        return cls(out=out, tasks=("PressButton",), mppi_tasks=("PressButton",), mppi_demo_tasks=("PressButton",), curve_episodes=1, demos=6, image_size=64, mppi_episodes=1,
                   mppi_samples=16, mppi_horizon=4, mppi_max_steps=6, policy_steps=50, eval_episodes=2,
                   pretrain_steps=20)


@dataclass
class StageResult:
    """What one stage leaves for the report: tables, pictures, videos and the commands behind them."""

    name: str
    seconds: float = 0.0
    commands: list[str] = field(default_factory=list)
    tables: list[dict[str, Any]] = field(default_factory=list)  # {"title", "columns", "rows"}
    images: list[str] = field(default_factory=list)  # paths relative to the demo root
    videos: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    key: dict[str, Any] = field(default_factory=dict)  # what the results depend on (Demo.stage_key)


def weights_digest(ref: str) -> str:
    """A short digest of the files behind an encoder reference (a bundled name, a checkpoint file or folder)."""
    from vip_rl.encoders.checkpoint import weights_dir

    path = Path(ref)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
    elif path.is_file():
        files = [path]
    else:
        files = sorted(p for p in weights_dir().glob(f"{ref}.*") if p.is_file())
    if not files:
        return f"unresolved:{ref}"
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def _vip_rl(argv: list[str], result: StageResult) -> None:
    """Run a ``vip-rl`` subcommand in-process and record it as a reproducible command."""
    from vip_rl.cli import main

    result.commands.append("vip-rl " + shlex.join(argv))
    code = main(argv)
    if code != 0:
        raise RuntimeError(f"`vip-rl {shlex.join(argv)}` exited with {code}")


class Demo:
    """Runs the stages in order and writes the report; see the module docstring."""

    def __init__(self, config: DemoConfig, *, device: str = "cpu", force: bool = False, quick: bool = False) -> None:
        self.config = config
        self.device = device
        self.force = force
        self.quick = quick
        self.root = Path(config.out)
        self.data_dir = self.root / "data"

    # -- helpers -----------------------------------------------------------------------------
    def _rel(self, path: Path) -> str:
        return os.path.relpath(path, self.root)

    def _data(self, task: str, kind: str) -> Path:
        return self.data_dir / f"{task}_{kind}.h5"

    def _encoder_ref(self, name: str) -> str:
        """The configured encoder for role ``name`` (one of :data:`ROLES`), or its brief retrain."""
        if self.config.pretrain:
            return str(self.root / "encoders" / name / "encoder")
        return getattr(self.config, ROLES[name][1])

    def stage_key(self, name: str) -> dict[str, Any]:
        """What stage ``name``'s results depend on: the configuration and, after ``collect``, the encoders' weights
        (their files' digests; a retrain's own stage depends on its configuration only)."""
        key: dict[str, Any] = {"config": json.loads(json.dumps(asdict(self.config), default=str)), "quick": self.quick}
        if name != "collect" and not (name == "encoders" and self.config.pretrain):
            key["encoders"] = {role: weights_digest(self._encoder_ref(role)) for role in ROLES}
        return key

    def run(self, stages: Sequence[str] = STAGES) -> Path:
        """Run (or reuse) each stage, then write the report; returns the report path."""
        results = []
        for name in stages:
            stage_file = self.root / name / "stage.json"
            key = self.stage_key(name)
            if stage_file.exists() and not self.force:
                saved = StageResult(**json.loads(stage_file.read_text()))
                if saved.key == key:
                    print(f"[demo] {name}: reusing {stage_file} (--force redoes it)", flush=True)
                    results.append(saved)
                    continue
                print(f"[demo] {name}: {stage_file} was made with other settings or encoder weights; redoing it", flush=True)
            print(f"[demo] {name} ...", flush=True)
            start = time.perf_counter()
            result = StageResult(name=name, key=key)
            getattr(self, f"stage_{name}")(result)
            result.seconds = time.perf_counter() - start
            atomic_write_json(stage_file, asdict(result))
            print(f"[demo] {name}: done in {result.seconds:.1f} s", flush=True)
            results.append(result)
        return write_report(self.root, self.config, results)

    # -- 1. collect ----------------------------------------------------------------------------
    def stage_collect(self, result: StageResult) -> None:
        cfg = self.config
        self.data_dir.mkdir(parents=True, exist_ok=True)
        rows = []
        for t, task in enumerate(cfg.tasks):
            seed = cfg.seed + 1000 * t
            plans = [
                ("expert", ["--policy", "expert", "--episodes", str(cfg.curve_episodes + 1)]),
                ("noisy", ["--policy", "noisy", "--noise", "0.5", "--episodes", str(cfg.curve_episodes)]),
                ("play", ["--policy", "play", "--episodes", str(cfg.curve_episodes)]),
                # expert, noisy, failed (cut) and wrong-task (another task's expert in this scene) demos
                ("mixed", ["--policy", "mixed", "--mix", "1", "1", "1", "1", "--episodes", str(cfg.demos)]),
            ]
            for k, (kind, args) in enumerate(plans):
                out = self._data(task, kind)
                argv = ["collect", task, *args, "--size", str(cfg.image_size), "--seed", str(seed + 100 * k),
                        "--out", str(out), "--no-progress"]
                if kind == "expert":
                    argv += ["--preview", str(self.root / "collect" / "preview")]
                _vip_rl(argv, result)
                rows.append([task, kind, *_dataset_summary(out)])
        previews = sorted((self.root / "collect" / "preview").glob("*.mp4"))
        result.videos += [self._rel(p) for p in previews[: len(cfg.tasks)]]
        result.tables.append({"title": "Collected datasets", "columns": ["task", "policy", "episodes", "success rate", "frames"],
                              "rows": rows})

    # -- 2. encoders ---------------------------------------------------------------------------
    def stage_encoders(self, result: StageResult) -> None:
        from vip_rl.goals import resolve_encoder

        cfg = self.config
        if cfg.pretrain:
            data = [str(self._data(task, kind)) for task in cfg.tasks for kind in ("expert", "noisy", "play")]
            for name, (objective, field_name) in ROLES.items():
                argv = ["pretrain", "--objective", objective, "--steps", str(cfg.pretrain_steps),
                        "--out", str(self.root / "encoders" / name), "--no-progress",
                        "--init-from", getattr(self.config, field_name)]
                for path in data:
                    argv += ["--data", path]
                _vip_rl(argv, result)
            result.notes.append(f"Encoders fine-tuned for {cfg.pretrain_steps} steps on the demo's own videos (--pretrain).")
        rows = []
        for name in ROLES:
            encoder = resolve_encoder(self._encoder_ref(name), device=self.device)
            params = sum(p.numel() for p in encoder.parameters())
            rows.append([self._encoder_ref(name), encoder.config.get("arch", "?"), encoder.metric, encoder.embed_dim, encoder.image_size,
                         "yes" if encoder.has_text else "no", f"{params / 1e6:.2f} M"])
        result.tables.append({"title": "Encoders", "columns": ["name", "backbone", "metric", "dim", "input size", "text tower", "parameters"],
                              "rows": rows})
        result.commands.append("make weights   # retrains td-sim / vip-sim / liv-sim by the recipe of the bundled weights")

    # -- 3. reward curves ----------------------------------------------------------------------
    def stage_reward_curves(self, result: StageResult) -> None:
        import imageio.v3 as iio

        import vip_envs
        from vip_rl.data import read_episodes
        from vip_rl.diagnostics import goal_distances, plot_reward_curve, spearman
        from vip_rl.goals import resolve_encoder

        cfg = self.config
        td = resolve_encoder(self._encoder_ref("td-sim"), device=self.device)
        vip = resolve_encoder(self._encoder_ref("vip-sim"), device=self.device)
        liv = resolve_encoder(self._encoder_ref("liv-sim"), device=self.device)
        out_dir = self.root / "reward_curves"
        rows = []
        for task in cfg.tasks:
            experts = read_episodes(self._data(task, "expert"))
            # the goal image comes from an expert episode that is not plotted: a different episode's final frame
            goal = experts[-1].frames["front"][-1]
            goal_path = out_dir / f"{task}_goal.png"
            goal_path.parent.mkdir(parents=True, exist_ok=True)
            iio.imwrite(goal_path, goal)
            instruction = vip_envs.instructions(task, "heldout")[0]
            episodes = [("expert", e) for e in experts[:-1]]
            episodes += [(kind, e) for kind in ("noisy", "play") for e in read_episodes(self._data(task, kind))]
            for i, (kind, episode) in enumerate(episodes):
                frames = episode.frames["front"]
                for enc_name, encoder, g, goal_desc in (("td-sim", td, goal, "image"), ("td-sim", td, instruction, "text"),
                                                        ("vip-sim", vip, goal, "image"), ("liv-sim", liv, instruction, "text")):
                    dist = goal_distances(encoder, frames, g)
                    voc = spearman(np.arange(len(dist)), -dist)
                    true_corr = spearman(episode.task_progress, -dist)
                    png = out_dir / f"{task}_{kind}{i}_{enc_name}_{goal_desc}.png"
                    title = f"{task} {kind} ({'success' if episode.success else 'no success'}) | {enc_name} {goal_desc} goal"
                    if goal_desc == "text":
                        title += f": {instruction!r}"
                    plot_reward_curve(dist, png, title=title, task_progress=episode.task_progress)
                    result.images.append(self._rel(png))
                    rows.append([task, kind, enc_name, goal_desc, bool(episode.success), f"{voc:.2f}", f"{true_corr:.2f}",
                                 f"{dist[0] - dist[-1]:.2f}"])
            result.commands.append(f"vip-rl reward-curve {shlex.quote(str(self._data(task, 'noisy')))} --goal "
                                   f"{shlex.quote(str(goal_path))} --encoder {shlex.quote(str(self._encoder_ref('td-sim')))} --out curve.png")
            result.commands.append(f"vip-rl reward-curve {shlex.quote(str(self._data(task, 'noisy')))} --goal "
                                   f"{shlex.quote(instruction)} --encoder {shlex.quote(str(self._encoder_ref('td-sim')))} --out curve_text.png")
        result.tables.append({
            "title": "Reward curves (VOC: Spearman of frame index vs -distance; true: Spearman of true task progress vs -distance; total progress d_0 - d_T)",
            "columns": ["task", "episode", "encoder", "goal", "episode success", "VOC", "vs true progress", "total progress"],
            "rows": rows})

    # -- 4. wrapper ----------------------------------------------------------------------------
    def stage_wrapper(self, result: StageResult) -> None:
        import gymnasium as gym

        import vip_envs
        from vip_rl.data import read_episodes
        from vip_rl.diagnostics import spearman
        from vip_rl.goals import resolve_encoder
        from vip_rl.wrappers import GoalReward

        cfg = self.config
        task = cfg.tasks[0]
        encoder = resolve_encoder(self._encoder_ref("td-sim"), device=self.device)
        goal = read_episodes(self._data(task, "expert"))[-1].frames["front"][-1]
        env = GoalReward(gym.make(vip_envs.env_id(task), render_mode="rgb_array", image_size=cfg.image_size),
                         encoder, goal, mode="progress")
        rows, series = [], {}
        try:
            for kind, noise in (("expert", 0.0), ("noisy", 0.5)):
                _, _ = env.reset(seed=cfg.seed + 777)
                policy = vip_envs.expert(env, noise=noise, seed=cfg.seed)
                obs, _ = env.reset(seed=cfg.seed + 777)
                rewards, env_rewards, progress = [], [], []
                done = False
                while not done:
                    obs, reward, terminated, truncated, info = env.step(policy(obs))
                    rewards.append(float(reward))
                    env_rewards.append(float(info["env_reward"]))
                    progress.append(float(info["task_progress"]))
                    done = terminated or truncated or bool(info["success"])
                series[kind] = (np.asarray(rewards), np.asarray(progress))
                cum = np.cumsum(rewards)
                rows.append([task, kind, len(rewards), bool(info["success"]), f"{cum[-1]:.2f}",
                             f"{spearman(np.asarray(progress), cum):.2f}" if len(rewards) > 1 else "n/a",
                             f"{sum(env_rewards):.2f}"])
        finally:
            env.close()
        png = self.root / "wrapper" / f"{task}_goal_reward.png"
        _plot_wrapper(series, png, title=f"GoalReward(td-sim, image goal) on vip_envs/{task}-v0")
        result.images.append(self._rel(png))
        result.tables.append({"title": "GoalReward on a live env (cumulative VIP reward vs true task progress, Spearman)",
                              "columns": ["task", "policy", "steps", "success", "VIP return", "Spearman(cum. reward, true progress)", "env return"],
                              "rows": rows})
        result.notes.append(
            "Code: `env = GoalReward(gym.make('vip_envs/%s-v0', render_mode='rgb_array'), load_encoder('td-sim'), goal_image)`; "
            "`info['env_reward']` keeps the original reward." % task)

    # -- 5. MPPI -------------------------------------------------------------------------------
    def stage_mppi(self, result: StageResult) -> None:
        cfg = self.config
        import vip_envs

        rows = []
        runs: list[tuple[str, str, list[str]]] = []  # (task, label, goal arguments)
        for task in cfg.mppi_tasks:
            instruction = vip_envs.instructions(task, "heldout")[0]
            runs += [(task, "td-sim, image goal", ["--goal", "expert", "--encoder", self._encoder_ref("td-sim")]),
                     (task, "td-sim, instruction", ["--goal", instruction, "--encoder", self._encoder_ref("td-sim")]),
                     (task, "vip-sim, image goal", ["--goal", "expert", "--encoder", self._encoder_ref("vip-sim")]),
                     (task, "true-reward oracle", ["--encoder", "oracle"])]
        for task in cfg.mppi_demo_tasks:  # where one goal image fails: follow a demo video's frames instead
            runs.append((task, "vip-sim, subgoals from a demo video",
                         ["--subgoals", "expert", "--lookahead", "5", "--encoder", self._encoder_ref("vip-sim")]))
        for task, label, goal_args in runs:
            slug = label.split(",")[0].replace(" ", "-") + ("-subgoals" if "subgoals" in label else "-text" if "instruction" in label else "")
            out = self.root / "mppi" / f"{task}_{slug}"
            argv = ["mppi", "--env", vip_envs.env_id(task), *goal_args,
                    "--episodes", str(cfg.mppi_episodes), "--num-samples", str(cfg.mppi_samples),
                    "--horizon", str(cfg.mppi_horizon), "--max-steps", str(cfg.mppi_max_steps),
                    "--out", str(out), "--seed", str(cfg.seed + 500), "--device", self.device]
            _vip_rl(argv, result)
            summary = json.loads((out / "results.json").read_text())
            episodes = summary["episodes"]
            rows.append([task, label, f"{np.mean([e['success'] for e in episodes]):.2f}",
                         f"{np.mean([e['steps'] for e in episodes]):.0f}",
                         f"{1000 * np.mean([e['seconds_per_command'] for e in episodes]):.0f} ms"])
            videos = sorted(out.glob("*.mp4"))
            result.videos += [self._rel(v) for v in videos[:1]]
        result.notes.append("Image and text goals are shown on tasks they reach. The full table, 20 episodes on five tasks, "
                            "is in `benchmarks/results/mppi_success.md`. With td-sim a single goal image meets 0.8 x the oracle on "
                            "4 of 5 tasks there; it fails on the held-out FlipSwitch, which no training video shows "
                            "(`benchmarks/notes/temporal_distance.md`). Following a demo video's frames "
                            "as subgoals (`--subgoals`) opens the drawer.")
        result.tables.append({"title": f"MPPI (K={cfg.mppi_samples}, H={cfg.mppi_horizon}, {cfg.mppi_episodes} episodes each)",
                              "columns": ["task", "cost", "success rate", "mean steps", "time per command"], "rows": rows})

    # -- 6. policies ---------------------------------------------------------------------------
    def stage_policies(self, result: StageResult) -> None:
        import vip_envs

        cfg = self.config
        rows = []
        for task in cfg.tasks:
            data = self._data(task, "mixed")
            for algo, extra in (("bc", []), ("rwr", ["--reward", "progress"])):
                out = self.root / "policies" / f"{task}_{algo}"
                _vip_rl(["train", algo, "--data", str(data), "--encoder", self._encoder_ref("td-sim"), "--out", str(out),
                         "--steps", str(cfg.policy_steps), "--seed", str(cfg.seed), "--device", self.device,
                         "--cache-dir", str(self.root / "policies" / "cache"), *extra], result)
                eval_json = out / "eval.json"
                _vip_rl(["evaluate", str(out), "--env", vip_envs.env_id(task), "--episodes", str(cfg.eval_episodes),
                         "--seed", "100000", "--video", str(out / "videos"), "--out", str(eval_json), "--device", self.device,
                         "--num-envs", str(min(cfg.eval_episodes, 10))], result)
                evaluation = json.loads(eval_json.read_text())
                rows.append([task, algo.upper() + (" (td-sim progress)" if algo == "rwr" else ""),
                             f"{evaluation['success_rate']:.2f}", evaluation.get("episodes", cfg.eval_episodes)])
                videos = sorted((out / "videos").glob("*.mp4"))
                result.videos += [self._rel(v) for v in videos[:1]]
        mixed = _dataset_summary(self._data(cfg.tasks[0], "mixed"))
        result.tables.append({"title": f"Few-shot policies from {cfg.demos} mixed demos per task (demo success rate {mixed[1]}), "
                                       f"evaluated on held-out seeds", "columns": ["task", "policy", "success rate", "episodes"],
                              "rows": rows})


def _dataset_summary(path: Path) -> list[Any]:
    from vip_rl.data import EpisodeFile

    with EpisodeFile(path) as handle:
        attrs = [handle.episode_attrs(i) for i in range(handle.num_episodes)]
        frames = sum(handle.num_steps(i) + 1 for i in range(handle.num_episodes))
    rate = np.mean([bool(a.get("success", False)) for a in attrs]) if attrs else float("nan")
    return [len(attrs), f"{rate:.2f}", frames]


def _plot_wrapper(series: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, *, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax2 = ax.twinx()
    for (kind, (rewards, progress)), colour in zip(series.items(), ("tab:blue", "tab:red")):
        ax.plot(np.cumsum(rewards), color=colour, label=f"{kind}: cumulative VIP reward")
        ax2.plot(progress, color=colour, linestyle="--", label=f"{kind}: true task progress")
    ax.set_xlabel("step")
    ax.set_ylabel("cumulative VIP reward")
    ax2.set_ylabel("true task progress")
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="upper left")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


SECTION_TITLES = {
    "collect": "1. Demonstrations from the suite's scripted experts",
    "encoders": "2. Bundled encoders",
    "reward_curves": "3. Reward curves: image and language goals",
    "wrapper": "4. A wrapped env: GoalReward",
    "mppi": "5. MPPI toward a goal image and an instruction",
    "policies": "6. Few-shot policies: BC vs RWR",
}


def _md_table(table: dict[str, Any]) -> list[str]:
    lines = [f"**{table['title']}**", "", "| " + " | ".join(map(str, table["columns"])) + " |",
             "|" + "---|" * len(table["columns"])]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in table["rows"]]
    return lines + [""]


def write_report(root: Path, config: DemoConfig, results: Sequence[StageResult]) -> Path:
    """Write ``report.md`` and ``report.html`` (pictures inline, videos embedded) under ``root``."""
    total = sum(r.seconds for r in results)
    md = ["# vip-rl demo report", "",
          f"Tasks: {', '.join(config.tasks)}. Total stage time: {total:.0f} s "
          "(stages reused from an earlier run keep their original time).", "",
          "| stage | seconds |", "|---|---|"]
    md += [f"| {r.name} | {r.seconds:.1f} |" for r in results] + [""]
    body = ["<h1>vip-rl demo report</h1>",
            f"<p>Tasks: {html.escape(', '.join(config.tasks))}. Total stage time: {total:.0f} s.</p>",
            "<table><tr><th>stage</th><th>seconds</th></tr>"
            + "".join(f"<tr><td>{r.name}</td><td>{r.seconds:.1f}</td></tr>" for r in results) + "</table>"]
    for r in results:
        md += [f"## {SECTION_TITLES.get(r.name, r.name)}", "", f"_{r.seconds:.1f} s_", ""]
        body += [f"<h2>{html.escape(SECTION_TITLES.get(r.name, r.name))}</h2>", f"<p><i>{r.seconds:.1f} s</i></p>"]
        for table in r.tables:
            md += _md_table(table)
            body.append(f"<p><b>{html.escape(table['title'])}</b></p><table><tr>"
                        + "".join(f"<th>{html.escape(str(c))}</th>" for c in table["columns"]) + "</tr>"
                        + "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in table["rows"])
                        + "</table>")
        for note in r.notes:
            md += [note, ""]
            body.append(f"<p>{html.escape(note)}</p>")
        for image in r.images:
            md += [f"![{image}]({image})", ""]
            body.append(f'<img src="{html.escape(image)}" alt="{html.escape(image)}" style="max-width:48%">')
        for video in r.videos:
            md += [f"Video: [{video}]({video})", ""]
            body.append(f'<p>{html.escape(video)}<br><video src="{html.escape(video)}" controls loop width="288"></video></p>')
        if r.commands:
            md += ["Reproduce:", "", "```"] + r.commands + ["```", ""]
            body.append("<pre>" + html.escape("\n".join(r.commands)) + "</pre>")
    report = root / "report.md"
    atomic_write_text(report, "\n".join(md))
    style = "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
    atomic_write_text(root / "report.html", f"<!doctype html><html><head><meta charset='utf-8'><title>vip-rl demo</title>"
                                            f"<style>{style}</style></head><body>{''.join(body)}</body></html>")
    return report


def cli(argv: Sequence[str] | None = None) -> int:
    """``vip-rl demo [--quick] [--force] [--pretrain] [--out DIR] [--stages ...]``."""
    parser = argparse.ArgumentParser(prog="vip-rl demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="output directory (default runs/demo, runs/demo_quick with --quick)")
    parser.add_argument("--quick", action="store_true", help="tiny configuration (about a minute)")
    parser.add_argument("--force", action="store_true", help="redo stages whose outputs exist")
    parser.add_argument("--pretrain", action="store_true", help="fine-tune the encoders briefly on the demo's videos first")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES), help="run only these stages")
    parser.add_argument("--td-encoder", default="td-sim", help="the recommended encoder (image and text goals): bundled name or checkpoint path")
    parser.add_argument("--vip-encoder", default="vip-sim", help="VIP encoder shown beside it: bundled name or checkpoint path")
    parser.add_argument("--liv-encoder", default="liv-sim", help="LIV encoder shown beside it: bundled name or checkpoint path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    args = parser.parse_args(list(argv) if argv is not None else None)
    default_mujoco_gl()
    from vip_rl.cli import resolve_device

    device = str(resolve_device(args.device))
    out = Path(args.out or ("runs/demo_quick" if args.quick else "runs/demo"))
    config = DemoConfig.quick(out) if args.quick else DemoConfig(out=out)
    config = replace(config, pretrain=args.pretrain, seed=args.seed, td_encoder=args.td_encoder, vip_encoder=args.vip_encoder,
                     liv_encoder=args.liv_encoder)
    start = time.perf_counter()
    report = Demo(config, device=device, force=args.force, quick=args.quick).run(args.stages)
    print(f"[demo] finished in {time.perf_counter() - start:.0f} s; report: {report} (HTML: {report.with_suffix('.html')})")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
