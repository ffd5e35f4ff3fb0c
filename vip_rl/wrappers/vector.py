"""Embedding goal reward for a Gymnasium ``VectorEnv`` (:class:`GoalRewardVector`), and the batched core
it shares with the Stable-Baselines3 twin (:class:`VectorGoalCore`)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper

from vip_rl.encoders.base import Encoder
from vip_rl.wrappers.frames import resolve_frames, vector_autoreset_mode, vector_final_frames, vector_frames
from vip_rl.wrappers.scorer import GoalReduce, GoalScorer, Mode

__all__ = ["GoalRewardVector", "VectorGoalCore", "per_env_goals"]


def per_env_goals(goal: Any, num_envs: int) -> list[Any]:
    """A goal for all envs, or a list / tuple with one goal per env."""
    if isinstance(goal, (list, tuple)):
        if len(goal) != num_envs:
            raise ValueError(
                f"a list of goals gives one goal per env: expected {num_envs}, got {len(goal)} "
                "(several goal images for one env go in one uint8 [N, H, W, 3] array)"
            )
        return list(goal)
    return [goal] * num_envs


class VectorGoalCore:
    """The part :class:`GoalRewardVector` and :class:`VecGoalReward` share: argument checks, frame source,
    per-env goals, and the batched transition (one encoder forward for the new and the terminal frames).

    Holds the last embedding ``[N, D]`` and distance ``[N]`` of each env.
    """

    def __init__(
        self,
        encoder: Encoder,
        *,
        num_envs: int,
        observation_space: gym.Space,
        render_mode: str | None,
        get_cameras: Callable[[], Sequence[str] | None],
        mode: str,
        camera: str | None,
        pixel_key: str | None,
        scale: float,
        goal_reduce: str,
        success_threshold: float | None,
        device: str | torch.device | None,
        final_frame_key: str,
    ) -> None:
        if not isinstance(final_frame_key, str) or not final_frame_key:
            raise ValueError(f"final_frame_key must be a non-empty string, got {final_frame_key!r}")
        self.num_envs = num_envs
        self.scorer = GoalScorer(
            encoder,
            num_envs=num_envs,
            mode=mode,
            scale=scale,
            goal_reduce=goal_reduce,
            success_threshold=success_threshold,
            device=device,
        )
        cameras = None
        if camera is not None:
            try:
                cameras = get_cameras()
            except AttributeError:
                cameras = None
        self.source, self.key = resolve_frames(
            observation_space, render_mode, camera=camera, pixel_key=pixel_key, cameras=cameras
        )
        self.final_frame_key = final_frame_key
        self.last_embedding: torch.Tensor | None = None  # [N, D]
        self.last_distance: torch.Tensor | None = None  # [N]

    def set_goal(self, goal: Any, env_indices: Sequence[int] | None = None) -> None:
        """One goal for the envs in ``env_indices`` (all by default) or a list with one goal per env there."""
        indices = list(range(self.num_envs)) if env_indices is None else [int(i) for i in env_indices]
        for index in indices:
            if not 0 <= index < self.num_envs:
                raise ValueError(f"env_indices must be in [0, {self.num_envs}), got {index}")
        self.scorer.set_goals(per_env_goals(goal, len(indices)), indices)
        if self.last_embedding is not None:
            self.last_distance = self.scorer.distance(self.last_embedding, self.scorer.goals)

    def start(self, frames: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Embed the first frames of new episodes (uint8 ``[N, H, W, 3]``; only ``mask`` envs if given)
        -> float64 ``[N]`` goal distances."""
        if mask is None or mask.all() or self.last_embedding is None:
            embedding = self.scorer.encode(frames)
        else:
            embedding = self.last_embedding.clone()
            embedding[torch.from_numpy(mask).to(embedding.device)] = self.scorer.encode(frames[mask])
        self.last_embedding = embedding
        self.last_distance = self.scorer.distance(embedding, self.scorer.goals)
        return self.last_distance.cpu().numpy().astype(np.float64)

    def transition(
        self, frames: np.ndarray, final_frames: np.ndarray | None, ended: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Score one vector step -> float64 (raw ``[N]``, distance ``[N]``).

        Args:
            frames: uint8 ``[N, H, W, 3]``, the frames after the step (new episodes' first frames for
                envs that were reset within the step).
            final_frames: uint8 ``[k, H, W, 3]`` true terminal frames of the ``k`` envs in ``ended``
                that were reset within the step (their transition ends there), or None.
            ended: bool ``[N]``, the envs ``final_frames`` belong to (ignored when it is None).
        """
        if self.last_distance is None:
            raise RuntimeError("step() called before reset()")
        scorer = self.scorer
        num_envs = self.num_envs
        if final_frames is not None:
            frames = np.concatenate([frames, final_frames])
        embeddings = scorer.encode(frames)  # one forward: [N (+k), D]
        new_embedding = embeddings[:num_envs]
        transition_embedding = new_embedding
        if final_frames is not None:
            transition_embedding = new_embedding.clone()
            transition_embedding[torch.from_numpy(ended).to(new_embedding.device)] = embeddings[num_envs:]
        raw, distance = scorer.score(self.last_distance, transition_embedding, scorer.goals, scorer.thresholds)
        new_distance = distance if final_frames is None else scorer.distance(new_embedding, scorer.goals)
        self.last_embedding, self.last_distance = new_embedding, new_distance
        raw_np, distance_np = torch.stack([raw, distance]).cpu().numpy().astype(np.float64)
        return raw_np, distance_np


class GoalRewardVector(VectorWrapper, gym.utils.RecordConstructorArgs):
    """Embedding goal reward for a Gymnasium ``VectorEnv``: the vector twin of :class:`GoalReward`.

    Same modes, goals, info keys (as ``[num_envs]`` arrays with ``_key`` masks) and frame sources as
    :class:`GoalReward`, with **one batched encoder forward per step** for all sub-envs (terminal frames
    included). ``goal`` is one goal for every env or a list with one goal per env;
    :meth:`set_goal` and ``reset(options={"goal": ...})`` take the same, and ``reset`` with
    ``options["reset_mask"]`` changes only the masked envs.

    Autoreset (``env.metadata["autoreset_mode"]``), each giving the same rewards as :class:`GoalReward`
    on the sub-envs:

    - ``NEXT_STEP`` (default): a sub-env that ended at step t is reset during step t+1; the terminal
      reward at t uses the terminal frame, the reset step t+1 has reward 0 (like the env's own reward)
      and its frame becomes the start of the new episode.
    - ``SAME_STEP``: the terminal reward uses the true final frame, from ``info["final_obs"]`` with
      image observations, or from ``info["final_info"]["final_frame"]`` (:class:`FinalFrameInfo`
      on each sub-env; checked here) with ``render()`` frames; the new episode starts from the reset frame.
    - ``DISABLED``: the caller resets with ``options={"reset_mask": ...}``; those envs re-embed their frame.

    Frames with ``render()`` come from ``env.render()`` (a tuple, one frame per sub-env), so the
    sub-envs need ``render_mode="rgb_array"``; with an async env each step costs one extra
    ``call("render")`` round trip, so image observations are faster there.

    Args:
        env: a ``gymnasium.vector.VectorEnv`` (``SyncVectorEnv``, ``AsyncVectorEnv``, wrapped or not).
        encoder, mode, camera, pixel_key, scale, goal_reduce, success_threshold, device: see
            :class:`GoalReward`.
        goal: one goal or a list of ``num_envs`` goals.
        final_frame_key: the info key of :class:`FinalFrameInfo`.

    Raises:
        ValueError / TypeError: as :class:`GoalReward`; a goal list of the wrong length; ``SAME_STEP``
            with ``render()`` frames and sub-envs not wrapped in :class:`FinalFrameInfo`.

    Example:
        >>> import gymnasium as gym, numpy as np, torch
        >>> from vip_rl.encoders.base import Encoder
        >>> vision = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(16))
        >>> encoder = Encoder(vision, embed_dim=16, metric="l2", image_size=32)
        >>> envs = gym.make_vec("Pusher-v5", num_envs=2, render_mode="rgb_array", width=64, height=64)
        >>> envs = GoalRewardVector(envs, encoder, np.zeros((64, 64, 3), np.uint8))
        >>> obs, info = envs.reset(seed=0)
        >>> obs, rewards, terminations, truncations, info = envs.step(envs.action_space.sample())
        >>> rewards.shape, info["vip_reward"].shape
        ((2,), (2,))
        >>> envs.close()
    """

    def __init__(
        self,
        env: VectorEnv,
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
        gym.utils.RecordConstructorArgs.__init__(
            self,
            _disable_deepcopy=True,
            encoder=encoder,
            goal=goal,
            mode=mode,
            camera=camera,
            pixel_key=pixel_key,
            scale=scale,
            goal_reduce=goal_reduce,
            success_threshold=success_threshold,
            device=device,
            final_frame_key=final_frame_key,
        )
        if not isinstance(env, VectorEnv):
            raise TypeError(
                f"env must be a gymnasium.vector.VectorEnv, got {type(env).__name__}; "
                "use GoalReward for a single env and VecGoalReward for an SB3 VecEnv"
            )
        VectorWrapper.__init__(self, env)
        self._core = VectorGoalCore(
            encoder,
            num_envs=env.num_envs,
            observation_space=env.single_observation_space,
            render_mode=env.render_mode,
            get_cameras=lambda: env.get_attr("cameras")[0],
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
        self.autoreset_mode = vector_autoreset_mode(env, self._source, final_frame_key)
        self._core.set_goal(goal)
        self._autoreset = np.zeros(self.num_envs, dtype=np.bool_)

    @property
    def encoder(self) -> Encoder:
        return self._scorer.encoder

    @property
    def success_threshold(self) -> np.ndarray:
        """``[num_envs]`` thresholds of ``mode="success"`` (NaN for other modes)."""
        return self._scorer.thresholds.cpu().numpy()

    def set_goal(self, goal: Any, *, env_indices: Sequence[int] | None = None) -> None:
        """Set the goal of the envs in ``env_indices`` (all by default).

        Args:
            goal: one goal for those envs, or a list with one goal per env in ``env_indices``.
        """
        self._core.set_goal(goal, env_indices)

    def _frames(self, obs: Any) -> np.ndarray:
        return vector_frames(self.env, self._source, self._key, obs)

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset (all envs, or ``options["reset_mask"]``); ``options["goal"]`` sets goals first."""
        mask = np.ones(self.num_envs, dtype=np.bool_)
        if options is not None:
            options = dict(options)
            if "reset_mask" in options:
                mask = np.asarray(options["reset_mask"], dtype=np.bool_)
            if "goal" in options:
                goal = options.pop("goal")
                indices = np.flatnonzero(mask)
                if isinstance(goal, (list, tuple)):
                    goal = [per_env_goals(goal, self.num_envs)[i] for i in indices]
                self.set_goal(goal, env_indices=indices)
            if not options:
                options = None
        obs, info = self.env.reset(seed=seed, options=options)
        distance = self._core.start(self._frames(obs), mask)
        self._autoreset[mask] = False
        info = dict(info)
        info["goal_distance"] = distance
        info["_goal_distance"] = mask.copy()
        return obs, info

    def _final_frames(self, ended: np.ndarray, infos: dict[str, Any]) -> np.ndarray:
        """uint8 ``[k, H, W, 3]`` true terminal frames of the ``k`` envs that ended and were reset."""
        return vector_final_frames(self._source, self._key, self.final_frame_key, ended, infos)

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step all envs; rewards ``[num_envs]`` float64 = ``scale * raw``."""
        if self._core.last_distance is None:
            raise RuntimeError("GoalRewardVector.step() called before reset()")
        obs, env_rewards, terminations, truncations, infos = self.env.step(actions)
        ended = np.logical_or(terminations, truncations)
        final_frames = None
        if self.autoreset_mode == AutoresetMode.SAME_STEP and ended.any():
            final_frames = self._final_frames(ended, infos)
        raw_np, distance_np = self._core.transition(self._frames(obs), final_frames, ended)
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            raw_np[self._autoreset] = 0.0  # the reset step: no transition, like the env's own reward
            self._autoreset = ended
        infos = dict(infos)
        all_envs = np.ones(self.num_envs, dtype=np.bool_)
        for key, value in (
            ("env_reward", np.asarray(env_rewards, dtype=np.float64)),
            ("goal_distance", distance_np),
            (self._scorer.info_key, raw_np),
        ):
            infos[key], infos[f"_{key}"] = value, all_envs
        return obs, self._scorer.scale * raw_np, terminations, truncations, infos
