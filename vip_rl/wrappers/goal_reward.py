"""Embedding goal reward for a single Gymnasium env (:class:`GoalReward`)."""
from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import torch

from vip_rl.encoders.base import Encoder
from vip_rl.wrappers.frames import env_frame, resolve_frames
from vip_rl.wrappers.scorer import GoalReduce, GoalScorer, Mode

__all__ = ["GoalReward"]


class GoalReward(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Replace the reward with an embedding reward toward an image or language goal.

    With ``V(o; g) = -d(phi(o), phi(g))`` under the encoder's metric, the per-step reward is
    ``scale * raw`` where ``raw`` is, for ``mode``:

    - ``"progress"`` (default, the VIP reward): ``d(o_t, g) - d(o_t+1, g)``; ``info["vip_reward"]``;
    - ``"distance"``: ``-d(o_t+1, g)``; ``info["distance_reward"]``;
    - ``"similarity"``: cosine similarity of ``phi(o_t+1)`` and ``phi(g)`` (LIV/CLIP style, whatever
      the encoder's metric); ``info["goal_similarity"]``;
    - ``"success"``: 1.0 when ``d(o_t+1, g) < threshold`` else 0.0; ``info["goal_success"]``.
      ``threshold`` defaults to ``CALIBRATION_MULTIPLE`` (2) times the largest distance between the goal
      embedding and ``CALIBRATION_COPIES`` (8) perturbed copies of each goal image (random shifts up to
      4% of the side, brightness x0.95-1.05, fixed seed); see :attr:`success_threshold`.

    ``info`` also gains ``"env_reward"`` (the original reward, never lost) and ``"goal_distance"``
    (``d(o_t+1, g)``; also added by ``reset``).

    Goals (``goal`` argument, :meth:`set_goal`, or ``reset(options={"goal": ...})``):

    - uint8 ``[H, W, 3]`` image. Any size: the encoder resizes it (and every frame) to its
      ``image_size``, so a goal rendered at another resolution is accepted as is.
    - uint8 ``[N, H, W, 3]``: several goal images; ``goal_reduce="nearest"`` (default) rewards
      against the nearest one, ``"mean"`` against their mean embedding.
    - a ``vip_rl.data.Video`` (anything with ``.frames``): its final frame. For a bare
      ``[T, H, W, 3]`` video array use :func:`~vip_rl.goals.final_frame` (a 4-D array means several
      goal images).
    - a string: a language instruction (the encoder needs a text tower).
    - a float embedding ``[D]`` (or ``[K, D]``), or a goal file ``pathlib.Path`` (an image, or a video's
      last frame); see :func:`vip_rl.goals.parse_goal`, which reads every goal the same way for the
      wrappers, the planning costs, the diagnostics and the policy datasets.

    Frames: ``obs["pixels"]`` if the observation is a Dict with that key, the observation itself if it
    is a uint8 ``[H, W, 3]`` Box, else ``env.render()`` (needs ``render_mode="rgb_array"``);
    ``pixel_key`` picks another Dict key and ``camera`` a suite camera (obs key ``pixels_<camera>``).
    Each frame is read once and embedded once per step; the last embedding and goal embeddings are
    cached, so ``progress`` needs one encoder forward per step.

    The vector twins are :class:`GoalRewardVector` (Gymnasium ``VectorEnv``) and
    :class:`VecGoalReward` (Stable-Baselines3 ``VecEnv``).

    Args:
        env: the env to wrap.
        encoder: a :class:`vip_rl.encoders.Encoder` (not deep-copied).
        goal: see above.
        mode: ``"progress"``, ``"distance"``, ``"similarity"`` or ``"success"``.
        camera: suite camera whose frames to use (obs key ``pixels_<camera>``).
        pixel_key: Dict observation key holding uint8 ``[H, W, 3]`` frames.
        scale: reward multiplier.
        goal_reduce: ``"nearest"`` or ``"mean"`` over several goal images.
        success_threshold: fixed distance threshold for ``mode="success"`` (required for text goals).
        device: if given, the device the encoder must be on (checked, never moved).

    Raises:
        ValueError: unknown mode / goal_reduce, env without rgb_array rendering and without an image
            observation, bad pixel_key / camera, text goal for an encoder without a text tower, goal
            image not ``[H, W, 3]`` / ``[N, H, W, 3]``, encoder on another device than ``device``.
        TypeError: goal of a wrong type or dtype (must be uint8), encoder not an ``Encoder``.

    Example:
        >>> import gymnasium as gym, numpy as np, torch
        >>> from vip_rl.encoders.base import Encoder
        >>> vision = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(16))
        >>> encoder = Encoder(vision, embed_dim=16, metric="l2", image_size=32)
        >>> env = gym.make("Pusher-v5", render_mode="rgb_array", width=64, height=64)
        >>> goal = np.zeros((64, 64, 3), np.uint8)
        >>> env = GoalReward(env, encoder, goal, mode="progress")
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        >>> sorted(k for k in info if k in ("env_reward", "goal_distance", "vip_reward"))
        ['env_reward', 'goal_distance', 'vip_reward']
        >>> env.close()
    """

    def __init__(
        self,
        env: gym.Env,
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
        )
        gym.Wrapper.__init__(self, env)
        self._scorer = GoalScorer(
            encoder,
            num_envs=1,
            mode=mode,
            scale=scale,
            goal_reduce=goal_reduce,
            success_threshold=success_threshold,
            device=device,
        )
        self._source, self._key = resolve_frames(
            env.observation_space,
            env.render_mode,
            camera=camera,
            pixel_key=pixel_key,
            cameras=getattr(env.unwrapped, "cameras", None),
        )
        self._scorer.set_goals([goal], [0])
        self._last_embedding: torch.Tensor | None = None  # [1, D]
        self._last_distance: torch.Tensor | None = None  # [1]

    @property
    def encoder(self) -> Encoder:
        return self._scorer.encoder

    @property
    def mode(self) -> str:
        return self._scorer.mode

    @property
    def frame_source(self) -> str:
        """``"render"`` or ``"obs[<key>]"``: where frames are read from."""
        return "render" if self._source == "render" else f"obs[{self._key!r}]"

    @property
    def success_threshold(self) -> float:
        """The distance threshold of ``mode="success"`` (calibrated or given; NaN for other modes)."""
        return float(self._scorer.thresholds[0])

    @property
    def goal_embedding(self) -> torch.Tensor:
        """``[K, D]`` embeddings of the current goal (``K = 1`` for one image, a text or ``"mean"``)."""
        return self._scorer.goals[0]

    def set_goal(self, goal: Any) -> None:
        """Change the goal now (see the class docstring for the accepted forms).

        The cached embedding of the current frame is kept, so the next ``progress`` reward is measured
        against the new goal from the current frame; no frame is re-rendered.
        """
        self._scorer.set_goals([goal], [0])
        if self._last_embedding is not None:
            self._last_distance = self._scorer.distance(self._last_embedding, self._scorer.goals)

    def _frame(self, obs: Any) -> np.ndarray:
        return env_frame(self.env, self._source, self._key, obs)[None]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset the env; ``options={"goal": ...}`` sets a new goal first (the key is not passed on)."""
        if options is not None and "goal" in options:
            options = dict(options)
            self.set_goal(options.pop("goal"))
        obs, info = self.env.reset(seed=seed, options=options)
        self._last_embedding = self._scorer.encode(self._frame(obs))
        self._last_distance = self._scorer.distance(self._last_embedding, self._scorer.goals)
        info = dict(info)
        info["goal_distance"] = float(self._last_distance[0])
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env and return ``scale * raw`` as the reward (see the class docstring)."""
        if self._last_distance is None:
            raise RuntimeError("GoalReward.step() called before reset()")
        obs, env_reward, terminated, truncated, info = self.env.step(action)
        embedding = self._scorer.encode(self._frame(obs))
        raw, distance = self._scorer.score(self._last_distance, embedding, self._scorer.goals, self._scorer.thresholds)
        self._last_embedding, self._last_distance = embedding, distance
        raw_value, distance_value = torch.stack([raw, distance]).cpu().numpy()[:, 0].tolist()
        info = dict(info)
        info["env_reward"] = env_reward
        info["goal_distance"] = distance_value
        info[self._scorer.info_key] = raw_value
        return obs, self._scorer.scale * raw_value, terminated, truncated, info
