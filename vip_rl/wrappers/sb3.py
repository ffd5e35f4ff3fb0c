"""Embedding goal reward for a Stable-Baselines3 ``VecEnv`` (:class:`VecGoalReward`, a ``VecEnvWrapper``)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from vip_rl.encoders.base import Encoder
from vip_rl.wrappers.frames import FinalFrameInfo, pick
from vip_rl.wrappers.scorer import GoalReduce, Mode
from vip_rl.wrappers.vector import VectorGoalCore

__all__ = ["VecGoalReward"]


class VecGoalReward(VecEnvWrapper):
    """Embedding goal reward for a Stable-Baselines3 ``VecEnv``: the SB3 twin of :class:`GoalReward`.

    Same modes, goals and frame sources as :class:`GoalReward` and :class:`GoalRewardVector`, with
    one batched encoder forward per step. Each ``infos[i]`` gains ``"env_reward"``,
    ``"goal_distance"`` and the mode's raw value. SB3 resets a finished env inside ``step``:

    - frames from image observations: the terminal frame comes from
      ``infos[i]["terminal_observation"]``;
    - frames from ``venv.get_images()`` (``render_mode="rgb_array"``): the terminal frame comes
      from ``infos[i]["final_frame"]``, so each env must be wrapped in :class:`FinalFrameInfo`
      (e.g. ``make_vec_env(..., wrapper_class=FinalFrameInfo)``; checked here).

    The new episode starts from the reset frame. SB3 ``reset()`` takes no options: change goals
    with :meth:`set_goal` (per env with ``env_indices``).

    Args:
        venv: an SB3 ``VecEnv``.
        encoder, goal, mode, camera, pixel_key, scale, goal_reduce, success_threshold, device,
            final_frame_key: see :class:`GoalRewardVector`.

    Example:
        >>> import gymnasium as gym, numpy as np, torch
        >>> from stable_baselines3.common.env_util import make_vec_env
        >>> from vip_rl.encoders.base import Encoder
        >>> vision = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(16))
        >>> encoder = Encoder(vision, embed_dim=16, metric="l2", image_size=32)
        >>> venv = make_vec_env("Pusher-v5", n_envs=2, wrapper_class=FinalFrameInfo,
        ...                     env_kwargs=dict(render_mode="rgb_array", width=64, height=64))
        >>> venv = VecGoalReward(venv, encoder, np.zeros((64, 64, 3), np.uint8))
        >>> obs = venv.reset()
        >>> obs, rewards, dones, infos = venv.step(np.zeros((2, 7), np.float32))
        >>> rewards.shape, sorted(k for k in infos[0] if k in ("env_reward", "vip_reward"))
        ((2,), ['env_reward', 'vip_reward'])
        >>> venv.close()
    """

    def __init__(
        self,
        venv: VecEnv,
        encoder: Encoder,
        goal: Any,
        *,
        mode: Mode = "progress",
        camera: str | None = None,
        pixel_key: str | None = None,
        scale: float = 1.0,
        goal_reduce: GoalReduce = "nearest",
        success_threshold: float | None = None,
        device: str | torch.device | None = None,
        final_frame_key: str = "final_frame",
    ) -> None:
        if not isinstance(venv, VecEnv):
            raise TypeError(
                f"venv must be a stable_baselines3 VecEnv, got {type(venv).__name__}; "
                "use GoalReward for a gymnasium env and GoalRewardVector for a gymnasium VectorEnv"
            )
        super().__init__(venv)
        self._core = VectorGoalCore(
            encoder,
            num_envs=venv.num_envs,
            observation_space=venv.observation_space,
            render_mode=getattr(venv, "render_mode", None),
            get_cameras=lambda: venv.get_attr("cameras", [0])[0],
            mode=mode,
            camera=camera,
            pixel_key=pixel_key,
            scale=scale,
            goal_reduce=goal_reduce,
            success_threshold=success_threshold,
            device=device,
            final_frame_key=final_frame_key,
        )
        self._scorer = self._core.scorer
        self._source, self._key = self._core.source, self._core.key
        self.final_frame_key = final_frame_key
        if self._source == "render":
            wrapped = venv.env_is_wrapped(FinalFrameInfo)
            if not all(wrapped):
                raise ValueError(
                    "frames from venv.get_images(): SB3 resets a finished env inside step(), so the "
                    "terminal frame must come from info; wrap each env in vip_rl.wrappers.FinalFrameInfo "
                    "(make_vec_env(..., wrapper_class=FinalFrameInfo)) or use image observations"
                )
        self._core.set_goal(goal)

    @property
    def encoder(self) -> Encoder:
        return self._scorer.encoder

    @property
    def success_threshold(self) -> np.ndarray:
        """``[num_envs]`` thresholds of ``mode="success"`` (NaN for other modes)."""
        return self._scorer.thresholds.cpu().numpy()

    def set_goal(self, goal: Any, *, env_indices: Sequence[int] | None = None) -> None:
        """Set the goal of the envs in ``env_indices`` (all by default); see :meth:`GoalRewardVector.set_goal`."""
        self._core.set_goal(goal, env_indices)

    def _frames(self, obs: Any) -> np.ndarray:
        if self._source == "render":
            return np.stack(self.venv.get_images())
        return np.asarray(pick(obs, self._key))

    def reset(self) -> Any:
        obs = self.venv.reset()
        self._core.start(self._frames(obs))
        return obs

    def step_wait(self) -> tuple[Any, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        if self._core.last_distance is None:
            raise RuntimeError("VecGoalReward.step() called before reset()")
        obs, env_rewards, dones, infos = self.venv.step_wait()
        ended = np.asarray(dones, dtype=np.bool_)
        indices = np.flatnonzero(ended)
        final_frames = None
        if len(indices):
            if self._source == "obs":
                final = [np.asarray(pick(infos[i]["terminal_observation"], self._key)) for i in indices]
            else:
                missing = [int(i) for i in indices if self.final_frame_key not in infos[i]]
                if missing:
                    raise RuntimeError(
                        f"envs {missing} ended without info[{self.final_frame_key!r}]; wrap each env in FinalFrameInfo"
                    )
                final = [infos[i][self.final_frame_key] for i in indices]
            final_frames = np.stack(final)
        raw_np, distance_np = self._core.transition(self._frames(obs), final_frames, ended)
        info_key = self._scorer.info_key
        for i, info in enumerate(infos):
            info["env_reward"] = float(env_rewards[i])
            info["goal_distance"] = float(distance_np[i])
            info[info_key] = float(raw_np[i])
        return obs, (self._scorer.scale * raw_np).astype(np.float32), dones, infos
