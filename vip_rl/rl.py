"""`vip-rl rl`: train SB3 PPO or SAC on a suite task with an embedding (VIP) reward.

The policy never sees the task reward: it is trained on :class:`vip_rl.wrappers.VecGoalReward`'s
reward toward an image goal (the final frame of an expert demo) or an instruction. The true success
rate and task reward are logged next to the embedding return, so one can see whether optimising
the embedding reward solves the task.

Outputs in ``--out`` (default ``runs/rl/<task>-<algo>-<encoder>``): ``episodes.csv`` (one row per
training episode), ``learning_curve.png``, ``eval.mp4`` (the trained policy, deterministic),
``summary.json``, ``goal.png``, TensorBoard logs when tensorboard is installed.

Example:
    vip-rl rl --task OpenDrawer --algo ppo --encoder td-sim --total-steps 50000
    vip-rl rl --task PushBlock --encoder liv-sim --goal text --mode progress
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vip_rl._gl import default_mujoco_gl
from vip_rl._io import atomic_write_bytes, atomic_write_json, atomic_write_text
from vip_rl.cli import ArgumentParser, check_output_dir, command, resolve_device

ALGOS = ("ppo", "sac")
GOALS = ("image", "text")


@dataclass(frozen=True)
class RLConfig:
    """Settings of one `vip-rl rl` run (CLI flags map onto these fields)."""

    task: str = "OpenDrawer"
    """Suite task (``vip_envs.TASKS``)."""
    algo: Literal["ppo", "sac"] = "ppo"
    """Stable-Baselines3 algorithm."""
    encoder: str = "td-sim"
    """Bundled encoder name, checkpoint path, or ``"random"`` (randomly initialised CNN anchor)."""
    goal: Literal["image", "text"] = "image"
    """``image``: final frame of an expert demo (seeded ``goal_seed``); ``text``: an instruction."""
    instruction: str | None = None
    """Instruction for ``goal="text"`` (default: the task's first training instruction)."""
    mode: str = "progress"
    """Reward mode of the wrapper (progress, distance, similarity, success)."""
    scale: float = 1.0
    """Reward multiplier."""
    num_envs: int = 4
    """Parallel envs in the SB3 vector env (one batched encoder forward per step)."""
    total_steps: int = 50_000
    """Environment steps over all envs."""
    image_size: int = 96
    """Rendered frame side."""
    eval_episodes: int = 5
    """Deterministic evaluation episodes after training (the first is saved as eval.mp4)."""
    goal_seed: int = 10_000
    """Seed of the expert episode whose final frame is the image goal."""
    seed: int = 0
    """Seed of the envs and the learner."""
    out: str | None = None
    """Output folder (default ``runs/rl/<task>-<algo>-<encoder>``)."""

    def __post_init__(self) -> None:
        import vip_envs  # registers the suite; a dependency of vip-rl (no rendering starts here)

        if self.task not in vip_envs.TASKS:
            raise ValueError(f"task must be one of {vip_envs.TASKS}, got {self.task!r}")
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {self.algo!r}")
        if self.goal not in GOALS:
            raise ValueError(f"goal must be one of {GOALS}, got {self.goal!r}")
        from vip_rl.wrappers import MODE_INFO_KEYS

        if self.mode not in MODE_INFO_KEYS:
            raise ValueError(f"mode must be one of {tuple(MODE_INFO_KEYS)}, got {self.mode!r}")
        for name in ("num_envs", "total_steps", "image_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if isinstance(self.eval_episodes, bool) or not isinstance(self.eval_episodes, int) or self.eval_episodes < 0:
            raise ValueError(f"eval_episodes must be an int >= 0, got {self.eval_episodes!r}")
        if self.instruction is not None and self.goal != "text":
            raise ValueError(f"instruction is only used with goal='text', got goal={self.goal!r}")
        if self.instruction is not None and (not isinstance(self.instruction, str) or not self.instruction.strip()):
            raise ValueError(f"instruction must be a non-empty string, got {self.instruction!r}")
        if self.goal == "text" and self.mode == "success":
            raise ValueError(
                "mode='success' needs a success threshold calibrated from goal images; with goal='text' "
                "use mode='progress', 'distance' or 'similarity'"
            )
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)) or not np.isfinite(self.scale):
            raise ValueError(f"scale must be a finite number, got {self.scale!r}")
        for name in ("seed", "goal_seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        if not isinstance(self.encoder, str) or not self.encoder:
            raise ValueError(f"encoder must be a bundled name, a checkpoint path or 'random', got {self.encoder!r}")

    @property
    def out_dir(self) -> Path:
        name = Path(self.encoder).name if os.sep in self.encoder else self.encoder
        return Path(self.out) if self.out else Path("runs") / "rl" / f"{self.task}-{self.algo}-{name}"


def _make_env(task: str, image_size: int):
    import gymnasium as gym
    import vip_envs

    from vip_rl.wrappers import FinalFrameInfo

    env = gym.make(vip_envs.env_id(task), render_mode="rgb_array", obs_mode="state", image_size=image_size)
    return FinalFrameInfo(env)


def _episode_logger_class():
    from stable_baselines3.common.callbacks import BaseCallback

    class EpisodeLogger(BaseCallback):
        """Per env: sums the embedding reward and the true env reward; logs finished episodes."""

        def __init__(self, info_key: str, total_steps: int) -> None:
            super().__init__()
            self.info_key = info_key
            self.total_steps = total_steps
            self.episodes: list[dict[str, Any]] = []
            self._embed: np.ndarray | None = None
            self._env: np.ndarray | None = None
            self._bar = None

        def _on_training_start(self) -> None:
            from tqdm.auto import tqdm

            num_envs = self.training_env.num_envs
            self._embed, self._env = np.zeros(num_envs), np.zeros(num_envs)
            self._bar = tqdm(total=self.total_steps, desc="rl", unit="step")

        def _on_step(self) -> bool:
            rewards, dones, infos = self.locals["rewards"], self.locals["dones"], self.locals["infos"]
            self._embed += rewards
            self._env += np.asarray([info["env_reward"] for info in infos])
            for i in np.flatnonzero(dones):
                info = infos[i]
                self.episodes.append({
                    "timestep": int(self.num_timesteps),
                    "embed_return": float(self._embed[i]),
                    "env_return": float(self._env[i]),
                    "success": float(bool(info.get("success", False))),
                    "task_progress": float(info.get("task_progress", np.nan)),
                    "final_goal_distance": float(info["goal_distance"]),
                })
                self._embed[i] = self._env[i] = 0.0
            if dones.any():
                recent = self.episodes[-20:]
                self.logger.record("rollout/embed_return", float(np.mean([e["embed_return"] for e in recent])))
                self.logger.record("rollout/env_return", float(np.mean([e["env_return"] for e in recent])))
                self.logger.record("rollout/success_rate", float(np.mean([e["success"] for e in recent])))
                self._bar.set_postfix(success=f"{np.mean([e['success'] for e in recent]):.2f}",
                                      embed=f"{np.mean([e['embed_return'] for e in recent]):.2f}")
            self._bar.update(self.training_env.num_envs)
            return True

        def _on_training_end(self) -> None:
            if self._bar is not None:
                self._bar.close()

    return EpisodeLogger


def _plot_curve(episodes: list[dict[str, Any]], path: Path, title: str, window: int = 20) -> None:
    """Top: true success rate; bottom: embedding return (trained on) and env return (not), smoothed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True)
    if episodes:
        width = max(1, min(window, len(episodes) // 4))
        kernel = np.ones(width) / width
        x = np.asarray([e["timestep"] for e in episodes])[width - 1 :]

        def smooth(key: str) -> np.ndarray:
            return np.convolve(np.asarray([e[key] for e in episodes]), kernel, mode="valid")

        style = dict(marker="o", markersize=3) if len(x) < 30 else {}
        top.plot(x, smooth("success"), color="tab:green", **style)
        bottom.plot(x, smooth("embed_return"), color="tab:blue", label="embedding return (trained on)", **style)
        twin = bottom.twinx()
        twin.plot(x, smooth("env_return"), color="tab:gray", alpha=0.7, label="env return (not trained on)", **style)
        twin.set_ylabel("env return")
        lines = bottom.get_lines() + twin.get_lines()
        bottom.legend(lines, [line.get_label() for line in lines], loc="upper left", fontsize=8)
        top.set_title(f"{title}\n(moving average over {width} episodes)", fontsize=10)
    top.set_ylim(-0.05, 1.05)
    top.set_ylabel("true success rate")
    bottom.set_ylabel("embedding return")
    bottom.set_xlabel("environment steps")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def evaluate(model: Any, config: RLConfig, encoder: Any, goal: Any) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """Deterministic episodes on a single wrapped env -> (per-episode stats, frames of the first)."""
    from vip_rl.wrappers import GoalReward

    env = GoalReward(_make_env(config.task, config.image_size), encoder, goal, mode=config.mode, scale=config.scale)
    results, video = [], []
    for episode in range(config.eval_episodes):
        obs, info = env.reset(seed=config.seed + 100_000 + episode)
        if episode == 0:
            video.append(env.render())
        embed_return = env_return = 0.0
        while True:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, info = env.step(action)
            embed_return += float(reward)
            env_return += float(info["env_reward"])
            if episode == 0:
                video.append(env.render())
            if terminated or truncated:
                break
        results.append({"embed_return": embed_return, "env_return": env_return,
                        "success": float(bool(info.get("success", False))),
                        "task_progress": float(info.get("task_progress", np.nan))})
    env.close()
    return results, video


def run(config: RLConfig, *, device: str = "cpu") -> dict[str, Any]:
    """Train, log, evaluate; returns the summary written to ``summary.json``."""
    default_mujoco_gl()
    import vip_envs
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import configure

    from vip_rl.data.video import write_video
    from vip_rl.goals import expert_rollout, resolve_encoder
    from vip_rl.wrappers import MODE_INFO_KEYS, VecGoalReward

    # seed -> build (the encoder first: a bad name or path fails before anything is written)
    text = config.goal == "text"
    encoder = resolve_encoder(config.encoder, device=device, seed=config.seed, text=text, metric="cos" if text else "l2")
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    goal_success = None
    if config.goal == "image":
        expert = expert_rollout(vip_envs.env_id(config.task), seed=config.goal_seed, max_steps=vip_envs.MAX_EPISODE_STEPS,
                                env_kwargs={"image_size": config.image_size})
        goal, goal_success = expert.final_frame, expert.success
        buffer = io.BytesIO()
        import imageio.v2 as imageio

        imageio.imwrite(buffer, goal, format="png")
        atomic_write_bytes(out / "goal.png", buffer.getvalue())
    else:
        goal = config.instruction or vip_envs.instructions(config.task, "train")[0]
    venv = make_vec_env(_make_env, n_envs=config.num_envs, seed=config.seed,
                        env_kwargs=dict(task=config.task, image_size=config.image_size))
    venv = VecGoalReward(venv, encoder, goal, mode=config.mode, scale=config.scale)
    algo = {"ppo": PPO, "sac": SAC}[config.algo]
    kwargs: dict[str, Any] = {"seed": config.seed, "device": device, "verbose": 0}
    if config.algo == "ppo":
        # a rollout never exceeds the run, so short runs (smoke tests) stay short
        n_steps = max(8, min(1024 // config.num_envs, config.total_steps // config.num_envs))
        rollout = n_steps * config.num_envs
        # a divisor of the rollout, so no minibatch is truncated (SB3 warns otherwise)
        batch_size = max(size for size in range(1, min(64, rollout) + 1) if rollout % size == 0)
        kwargs.update(n_steps=n_steps, batch_size=batch_size)
    else:
        kwargs.update(learning_starts=min(1000, config.total_steps // 4), buffer_size=min(200_000, config.total_steps))
    model = algo("MlpPolicy", venv, **kwargs)
    formats = ["csv"]
    try:
        import tensorboard  # noqa: F401

        formats.append("tensorboard")
    except ImportError:
        pass
    model.set_logger(configure(str(out / "sb3"), formats))

    # loop
    logger = _episode_logger_class()(MODE_INFO_KEYS[config.mode], config.total_steps)
    start = time.perf_counter()
    model.learn(total_timesteps=config.total_steps, callback=logger)
    train_seconds = time.perf_counter() - start
    venv.close()

    # eval and outputs
    eval_results, video = evaluate(model, config, encoder, goal)
    episodes = logger.episodes
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["timestep", "embed_return", "env_return", "success", "task_progress",
                                                "final_goal_distance"])
    writer.writeheader()
    writer.writerows(episodes)
    atomic_write_text(out / "episodes.csv", buffer.getvalue())
    goal_text = "image goal" if config.goal == "image" else f"text goal {goal!r}"
    _plot_curve(episodes, out / "learning_curve.png",
                f"{config.algo.upper()} on {config.task}, {config.encoder} {config.mode} reward ({goal_text})")
    if video:
        write_video(out / "eval.mp4", video, fps=20)
    model.save(str(out / "model.zip"))
    last = episodes[-20:]
    summary = {
        "config": dataclasses.asdict(config),
        "device": device,
        "goal": goal if isinstance(goal, str) else "goal.png",
        "goal_demo_succeeded": goal_success,
        "train_seconds": train_seconds,
        "train_episodes": len(episodes),
        "train_success_rate_last20": float(np.mean([e["success"] for e in last])) if last else None,
        "train_embed_return_last20": float(np.mean([e["embed_return"] for e in last])) if last else None,
        "eval_success_rate": float(np.mean([e["success"] for e in eval_results])) if eval_results else None,
        "eval_task_progress": float(np.mean([e["task_progress"] for e in eval_results])) if eval_results else None,
        "eval": eval_results,
        "files": sorted({p.name for p in out.iterdir() if p.is_file()} | {"summary.json"}),
    }
    atomic_write_json(out / "summary.json", summary, indent=1)  # valid JSON: NaN (e.g. task_progress) -> null
    return summary


@command("rl")
def cli(argv: list[str]) -> int:
    """``vip-rl rl [options]``: see the module docstring. The config, the device and ``--out`` are checked
    before anything is built or written; a failure is one line on stderr (:mod:`vip_rl.cli`)."""
    defaults = RLConfig()
    parser = ArgumentParser(prog="vip-rl rl", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default=defaults.task)
    parser.add_argument("--algo", choices=ALGOS, default=defaults.algo)
    parser.add_argument("--encoder", default=defaults.encoder, help="bundled name, checkpoint path, or 'random'")
    parser.add_argument("--goal", choices=GOALS, default=defaults.goal)
    parser.add_argument("--instruction", default=None, help="instruction for --goal text")
    parser.add_argument("--mode", default=defaults.mode, help="progress | distance | similarity | success")
    parser.add_argument("--scale", type=float, default=defaults.scale)
    parser.add_argument("--num-envs", type=int, default=defaults.num_envs)
    parser.add_argument("--total-steps", type=int, default=defaults.total_steps)
    parser.add_argument("--image-size", type=int, default=defaults.image_size)
    parser.add_argument("--eval-episodes", type=int, default=defaults.eval_episodes)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--out", default=None)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    args = parser.parse_args(argv)
    try:
        device = str(resolve_device(args.device))
    except ValueError as error:
        parser.error(str(error))
    try:
        config = RLConfig(task=args.task, algo=args.algo, encoder=args.encoder, goal=args.goal,
                          instruction=args.instruction, mode=args.mode, scale=args.scale, num_envs=args.num_envs,
                          total_steps=args.total_steps, image_size=args.image_size,
                          eval_episodes=args.eval_episodes, seed=args.seed, out=args.out)
    except ValueError as error:
        parser.error(str(error))
    check_output_dir(config.out_dir, flag="--out")
    summary = run(config, device=device)
    print(json.dumps({k: v for k, v in summary.items() if k not in ("eval", "config")}, indent=1))
    print(f"wrote {config.out_dir}")
    return 0
