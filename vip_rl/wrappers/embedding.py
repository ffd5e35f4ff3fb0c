"""Observations that carry the frame's embedding: :class:`EmbeddingObservation` (single env) and
:class:`EmbeddingObservationVector` (Gymnasium ``VectorEnv``, one batched forward per step)."""
from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper

from vip_rl.encoders.base import Encoder
from vip_rl.wrappers.frames import env_frame, resolve_frames, vector_autoreset_mode, vector_final_frames, vector_frames

__all__ = ["EmbeddingObservation", "EmbeddingObservationVector", "check_embedding_args", "embedding_observation_space",
           "with_embedding"]


def check_embedding_args(encoder: Any, key: Any, device: str | torch.device | None) -> None:
    if not isinstance(encoder, Encoder):
        raise TypeError(f"encoder must be a vip_rl.encoders.Encoder, got {type(encoder).__name__}")
    if device is not None and torch.device(device) != encoder.device:
        raise ValueError(
            f"encoder is on {encoder.device} but device={str(device)!r} was requested; "
            f"move it first with encoder.to({str(device)!r})"
        )
    if not isinstance(key, str) or not key:
        raise ValueError(f"key must be a non-empty string, got {key!r}")


def embedding_observation_space(space: gym.Space, key: str, embed_dim: int) -> spaces.Dict:
    """One env's observation space with the float32 ``[D]`` embedding added under ``key``."""
    embedding_space = spaces.Box(-np.inf, np.inf, (embed_dim,), np.float32)
    if isinstance(space, spaces.Dict):
        if key in space.spaces:
            raise ValueError(f"key={key!r} is already an observation key ({list(space.spaces)})")
        return spaces.Dict({**space.spaces, key: embedding_space})
    if key == "observation":
        raise ValueError("key='observation' holds the original observation; pick another key")
    return spaces.Dict({"observation": space, key: embedding_space})


def with_embedding(obs: Any, key: str, embedding: np.ndarray, dict_obs: bool) -> dict[str, Any]:
    if dict_obs:
        return {**obs, key: embedding}
    return {"observation": obs, key: embedding}


class EmbeddingObservation(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Add the embedding of the current frame to the observation, for policies that act on it.

    The observation becomes a Dict: a Dict observation gains ``key``; any other observation ``o``
    becomes ``{"observation": o, key: embedding}``. ``embedding`` is float32 ``[D]``. Frames are read
    like :class:`GoalReward` reads them (``obs["pixels"]``, a uint8 image observation, ``pixel_key``,
    ``camera`` or ``render()``). Stacking this under :class:`GoalReward` embeds each frame twice; use
    ``GoalReward.goal_embedding`` and this wrapper's output if that matters. The vector twin is
    :class:`EmbeddingObservationVector` (one batched forward for all sub-envs).

    Args:
        env: the env to wrap.
        encoder: a :class:`vip_rl.encoders.Encoder` (not deep-copied).
        key: the observation key of the embedding.
        camera, pixel_key, device: as in :class:`GoalReward`.

    Raises:
        ValueError: env without frames (see :class:`GoalReward`), ``key`` already in the observation.

    Example:
        >>> import gymnasium as gym, torch
        >>> from vip_rl.encoders.base import Encoder
        >>> vision = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(16))
        >>> encoder = Encoder(vision, embed_dim=16, metric="l2", image_size=32)
        >>> env = gym.make("Pusher-v5", render_mode="rgb_array", width=64, height=64)
        >>> env = EmbeddingObservation(env, encoder)
        >>> obs, info = env.reset(seed=0)
        >>> obs["embedding"].shape, obs["observation"].shape
        ((16,), (23,))
        >>> env.close()
    """

    def __init__(
        self,
        env: gym.Env,
        encoder: Encoder,
        *,
        key: str = "embedding",
        camera: str | None = None,
        pixel_key: str | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self, _disable_deepcopy=True, encoder=encoder, key=key, camera=camera, pixel_key=pixel_key, device=device
        )
        gym.Wrapper.__init__(self, env)
        check_embedding_args(encoder, key, device)
        self.encoder = encoder
        self.key = key
        self._source, self._key = resolve_frames(
            env.observation_space,
            env.render_mode,
            camera=camera,
            pixel_key=pixel_key,
            cameras=getattr(env.unwrapped, "cameras", None),
        )
        self._dict_obs = isinstance(env.observation_space, spaces.Dict)
        self.observation_space = embedding_observation_space(env.observation_space, key, encoder.embed_dim)

    def _observation(self, obs: Any) -> dict[str, Any]:
        frame = env_frame(self.env, self._source, self._key, obs)
        embedding = self.encoder.encode_images(frame[None])[0].detach().float().cpu().numpy()
        return with_embedding(obs, self.key, embedding, self._dict_obs)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        return self._observation(obs), info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._observation(obs), reward, terminated, truncated, info


class EmbeddingObservationVector(VectorWrapper, gym.utils.RecordConstructorArgs):
    """Add each sub-env's frame embedding to a Gymnasium ``VectorEnv``'s observation: the vector twin of
    :class:`EmbeddingObservation`.

    The observation becomes a Dict like :class:`EmbeddingObservation`'s (a Dict observation gains
    ``key``; any other becomes ``{"observation": obs, key: embedding}``), batched: ``embedding`` is
    float32 ``[num_envs, D]``, computed by **one batched encoder forward per step** for all sub-envs
    (terminal frames included). Frames come from the same sources as :class:`GoalRewardVector`'s.

    Autoreset (``env.metadata["autoreset_mode"]``):

    - ``NEXT_STEP`` (default) and ``DISABLED``: every observation is the env's current frame (on a
      reset step the new episode's first frame), so it is embedded as is; ``reset`` with
      ``options["reset_mask"]`` re-embeds only the masked envs.
    - ``SAME_STEP``: the observation of an env that ended holds the new episode's first frame and is
      embedded so; ``info["final_obs"][i]`` (the true terminal observation, e.g. for bootstrapping)
      gains the terminal frame's embedding too, read from the final observation with image
      observations or from ``info["final_info"]["final_frame"]`` (:class:`FinalFrameInfo` on each
      sub-env; checked here) with ``render()`` frames.

    Args:
        env: a ``gymnasium.vector.VectorEnv`` (``SyncVectorEnv``, ``AsyncVectorEnv``, wrapped or not).
        encoder: a :class:`vip_rl.encoders.Encoder` (not deep-copied).
        key: the observation key of the embedding.
        camera, pixel_key, device: as in :class:`GoalReward`.
        final_frame_key: the info key of :class:`FinalFrameInfo`.

    Raises:
        TypeError: ``env`` not a ``VectorEnv``, encoder not an ``Encoder``.
        ValueError: env without frames, ``key`` already an observation key, ``SAME_STEP`` with
            ``render()`` frames and sub-envs not wrapped in :class:`FinalFrameInfo`, encoder on another
            device than ``device``.

    Example:
        >>> import gymnasium as gym, torch
        >>> from vip_rl.encoders.base import Encoder
        >>> vision = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(16))
        >>> encoder = Encoder(vision, embed_dim=16, metric="l2", image_size=32)
        >>> envs = gym.make_vec("Pusher-v5", num_envs=2, render_mode="rgb_array", width=64, height=64)
        >>> envs = EmbeddingObservationVector(envs, encoder)
        >>> obs, info = envs.reset(seed=0)
        >>> obs["embedding"].shape, obs["observation"].shape
        ((2, 16), (2, 23))
        >>> envs.close()
    """

    def __init__(
        self,
        env: VectorEnv,
        encoder: Encoder,
        *,
        key: str = "embedding",
        camera: str | None = None,
        pixel_key: str | None = None,
        device: str | torch.device | None = None,
        final_frame_key: str = "final_frame",
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self,
            _disable_deepcopy=True,
            encoder=encoder,
            key=key,
            camera=camera,
            pixel_key=pixel_key,
            device=device,
            final_frame_key=final_frame_key,
        )
        if not isinstance(env, VectorEnv):
            raise TypeError(
                f"env must be a gymnasium.vector.VectorEnv, got {type(env).__name__}; "
                "use EmbeddingObservation for a single env"
            )
        VectorWrapper.__init__(self, env)
        check_embedding_args(encoder, key, device)
        if not isinstance(final_frame_key, str) or not final_frame_key:
            raise ValueError(f"final_frame_key must be a non-empty string, got {final_frame_key!r}")
        self.encoder = encoder
        self.key = key
        self.final_frame_key = final_frame_key
        cameras = None
        if camera is not None:
            try:
                cameras = env.get_attr("cameras")[0]
            except AttributeError:
                cameras = None
        self._source, self._key = resolve_frames(
            env.single_observation_space, env.render_mode, camera=camera, pixel_key=pixel_key, cameras=cameras
        )
        self.autoreset_mode = vector_autoreset_mode(env, self._source, final_frame_key)
        self._dict_obs = isinstance(env.single_observation_space, spaces.Dict)
        self.single_observation_space = embedding_observation_space(
            env.single_observation_space, key, encoder.embed_dim
        )
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, env.num_envs)
        self._embedding: np.ndarray | None = None  # float32 [N, D], the current frames'

    def _frames(self, obs: Any) -> np.ndarray:
        return vector_frames(self.env, self._source, self._key, obs)

    def _encode(self, frames: np.ndarray) -> np.ndarray:
        """uint8 ``[B, H, W, 3]`` -> float32 ``[B, D]`` in one forward."""
        embedding = self.encoder.encode_images(frames, batch_size=max(1, len(frames)))
        return embedding.detach().float().cpu().numpy()

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset (all envs, or ``options["reset_mask"]``: only those are re-embedded)."""
        obs, info = self.env.reset(seed=seed, options=options)
        frames = self._frames(obs)
        mask = None if options is None or "reset_mask" not in options else np.asarray(options["reset_mask"], np.bool_)
        if mask is None or mask.all() or self._embedding is None:
            embedding = self._encode(frames)
        else:
            embedding = self._embedding.copy()
            embedding[mask] = self._encode(frames[mask])
        self._embedding = embedding
        return with_embedding(obs, self.key, embedding, self._dict_obs), info

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        frames = self._frames(obs)  # [N, H, W, 3]
        num_envs = self.num_envs
        ended = np.logical_or(terminations, truncations)
        same_step_ended = self.autoreset_mode == AutoresetMode.SAME_STEP and ended.any()
        if same_step_ended:
            final = vector_final_frames(self._source, self._key, self.final_frame_key, ended, infos)
            frames = np.concatenate([frames, final])
        embeddings = self._encode(frames)  # one forward: [N (+k), D]
        self._embedding = embeddings[:num_envs]
        if same_step_ended:
            infos = dict(infos)
            final_obs = np.array(infos["final_obs"], dtype=object, copy=True)
            for index, embedding in zip(np.flatnonzero(ended), embeddings[num_envs:]):
                final_obs[index] = with_embedding(final_obs[index], self.key, embedding, self._dict_obs)
            infos["final_obs"] = final_obs
        return with_embedding(obs, self.key, self._embedding, self._dict_obs), rewards, terminations, truncations, infos
