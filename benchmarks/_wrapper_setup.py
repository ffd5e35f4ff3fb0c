"""Setup the reward-wrapper benchmarks share (``wrappers_overhead.py``, ``wrappers_batching.py``,
``wrappers_quality.py``): the envs, the random anchor encoder, a replay env for recorded episodes, rollouts
of scripted / noisy / random policies, and the run's machine record.
"""
from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

import _report
from _common import resolve_encoder
from vip_rl.encoders.base import Encoder

#: The split and the load-robust speedup use this percentile of the per-round times: on a shared machine a
#: longer round is likelier to be preempted, which inflates the median of the slower side more (rounds of
#: 8 single steps take several times longer than one vector step), so a low percentile, the cost without
#: preemption, is shown next to the median.
SPLIT_PERCENTILE = 20


def suite_available() -> bool:
    """Whether the ``vip_envs`` suite imports (the quality measurement needs its experts and task_progress)."""
    try:
        import vip_envs  # noqa: F401
    except ImportError:
        return False
    return True


def default_tasks(quick: bool) -> tuple[list[str], str]:
    """-> (tasks, env note): every suite task (2 with ``quick``), or Pusher-v5 alone without the suite."""
    if not suite_available():
        return ["Pusher"], "vip_envs not importable: Pusher-v5 only (quality needs the suite's task_progress)"
    import vip_envs

    return (["OpenDrawer", "PushBlock"] if quick else list(vip_envs.TASKS)), "vip_envs suite"


def make_env(task: str, image_size: int) -> gym.Env:
    """A suite task (state obs, rgb_array rendering) or Pusher-v5 when ``task == "Pusher"``."""
    if task == "Pusher":
        return gym.make("Pusher-v5", render_mode="rgb_array", width=image_size, height=image_size)
    import vip_envs

    return gym.make(vip_envs.env_id(task), render_mode="rgb_array", image_size=image_size)


def random_encoder() -> Encoder:
    """The random anchor: the bundled encoders' architecture (small CNN), randomly initialised (seed 0)."""
    return resolve_encoder("random", seed=0)


class ReplayEnv(gym.Env):
    """Replays recorded episodes: obs ``{"pixels": frame}``; reward = the recorded env reward.

    ``reset(options={"episode": i})`` picks an episode (default: cycles); the episode terminates at its
    last frame; with ``loop=True`` it wraps around forever instead (throughput runs).
    """

    metadata = {"render_modes": []}

    def __init__(self, episodes: list[dict[str, Any]], *, loop: bool = False) -> None:
        self.episodes = episodes
        self.loop = loop
        frame = episodes[0]["frames"][0]
        self.observation_space = spaces.Dict({"pixels": spaces.Box(0, 255, frame.shape, np.uint8)})
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self._episode, self._t, self._next = episodes[0], 0, 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        index = (options or {}).get("episode", self._next)
        self._next = index + 1
        self._episode, self._t = self.episodes[index % len(self.episodes)], 0
        return {"pixels": self._episode["frames"][0]}, {}

    def step(self, action):
        frames = self._episode["frames"]
        self._t += 1
        if self.loop:
            self._t %= len(frames)
            return {"pixels": frames[self._t]}, 0.0, False, False, {}
        reward = float(self._episode["rewards"][self._t - 1])
        return {"pixels": frames[self._t]}, reward, self._t == len(frames) - 1, False, {}


def rollout(env: gym.Env, policy_kind: str, seed: int, *, noise: float, max_steps: int) -> dict[str, Any]:
    """One episode -> frames uint8 [T+1, H, W, 3], rewards [T], final task_progress, success."""
    obs, info = env.reset(seed=seed)
    if policy_kind == "random":
        rng = np.random.default_rng(seed)
        policy = lambda _obs: rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)  # noqa: E731
        if suite_available() and hasattr(env.unwrapped, "get_state"):
            import vip_envs

            policy = vip_envs.play_policy(env, seed=seed)
    else:
        import vip_envs

        policy = vip_envs.expert(env, noise=noise if policy_kind == "noisy" else 0.0, seed=seed)
    frames, rewards, progress, success = [env.render()], [], float(info.get("task_progress", 0.0)), False
    for _ in range(max_steps):
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        frames.append(env.render())
        rewards.append(float(reward))
        progress = float(info.get("task_progress", progress))
        success = bool(info.get("success", success))
        if terminated or truncated:
            break
    return {
        "frames": np.stack(frames),
        "rewards": np.asarray(rewards),
        "task_progress": progress,
        "success": success,
        "policy": policy_kind,
    }


def run_meta(*, quick: bool, threads: int, env_note: str) -> dict[str, Any]:
    """The machine record the wrapper reports print (``load_average_end`` is added when the run ends)."""
    import mujoco

    info = _report.machine()
    return {"date": _report.utc_now(), "machine": info["host"], "cpu": info["cpu"], "cpu_count": info["cpu_count"],
            "device": "cpu", "torch": torch.__version__, "mujoco": mujoco.__version__, "quick": quick,
            "torch_threads": threads, "env_note": env_note,
            "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def meta_line(meta: dict[str, Any]) -> str:
    """``Measured <date> on <host> (CPUs, torch, device, threads; load average at start and end). Env: ...``"""
    end = meta.get("load_average_end")
    return (f"Measured {meta['date']} on {meta['machine']} ({meta['cpu_count']} CPUs, torch {meta['torch']}, "
            f"device {meta['device']}, {meta['torch_threads']} torch thread(s){', --quick' if meta['quick'] else ''}; "
            f"shared machine, load average {meta['load_average']:.1f} at start"
            + (f", {end:.1f} at end" if end is not None else "") + f"). Env: {meta['env_note']}.")
