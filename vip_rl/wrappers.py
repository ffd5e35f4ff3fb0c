"""Gymnasium wrappers that turn an embedding space into rewards and observations.

Classes (one behaviour each):

- :class:`GoalReward`: single env; reward from the embedding distance to an image or text goal.
- :class:`GoalRewardVector`: its twin for a Gymnasium ``VectorEnv`` (sync or async); one batched
  encoder forward per step for all sub-envs, correct under every autoreset mode.
- :class:`VecGoalReward`: its twin for a Stable-Baselines3 ``VecEnv`` (a ``VecEnvWrapper``).
- :class:`EmbeddingObservation`: adds the frame's embedding to a Dict observation.
- :class:`EmbeddingObservationVector`: its twin for a Gymnasium ``VectorEnv`` (one batched forward per step).
- :class:`FinalFrameInfo`: puts ``render()`` of the last frame of an episode into ``info``; the vector
  forms need it when they read frames from ``render()`` and the vector env resets in the same step
  (Gymnasium ``SAME_STEP`` autoreset, every SB3 ``VecEnv``).

Frames come either from the env's ``render()`` (``render_mode="rgb_array"``) or from an image in the
observation (``obs["pixels"]``, a given ``pixel_key``, or an image ``Box`` observation); each frame is
read once and embedded once per step, and goal embeddings are cached.

Example (wrap your own env):
    >>> import gymnasium as gym
    >>> from vip_rl.encoders import load_encoder                 # doctest: +SKIP
    >>> env = gym.make("Pusher-v5", render_mode="rgb_array", width=96, height=96)
    >>> env = GoalReward(env, load_encoder("td-sim"), goal_image)  # doctest: +SKIP
    >>> obs, info = env.reset(seed=0)                            # doctest: +SKIP
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())  # doctest: +SKIP
    >>> info["env_reward"], info["goal_distance"], info["vip_reward"]  # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from typing import Any, Callable, Literal, Sequence, SupportsFloat

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper

from vip_rl.encoders.base import Encoder

__all__ = [
    "EmbeddingObservation",
    "EmbeddingObservationVector",
    "FinalFrameInfo",
    "GoalReward",
    "GoalRewardVector",
    "MODE_INFO_KEYS",
    "VecGoalReward",
    "final_frame",
]

Mode = Literal["progress", "distance", "similarity", "success"]
GoalReduce = Literal["nearest", "mean"]

#: info key holding each mode's raw (unscaled) per-step value.
MODE_INFO_KEYS: dict[str, str] = {
    "progress": "vip_reward",  # d(o_t, g) - d(o_t+1, g)
    "distance": "distance_reward",  # -d(o_t+1, g)
    "similarity": "goal_similarity",  # cos(phi(o_t+1), phi(g))
    "success": "goal_success",  # 1.0 if d(o_t+1, g) < threshold else 0.0
}

#: Success-threshold calibration: threshold = CALIBRATION_MULTIPLE * the largest distance between the
#: goal and CALIBRATION_COPIES perturbed copies of each goal image (shift up to 4% of the side,
#: brightness x U(0.95, 1.05)), drawn from a generator seeded with CALIBRATION_SEED.
CALIBRATION_MULTIPLE = 2.0
CALIBRATION_COPIES = 8
CALIBRATION_SEED = 0

_GOAL_CACHE_SIZE = 64


# --------------------------------------------------------------------------------------------
# goals


def final_frame(video: Any) -> np.ndarray:
    """The final frame of a demo video, to use as an image goal.

    Args:
        video: a ``vip_rl.data.Video``-like object (anything with a ``.frames`` uint8 ``[T, H, W, 3]``
            array) or a uint8 ``[T, H, W, 3]`` array / tensor.

    Returns:
        uint8 ``[H, W, 3]``.

    Raises:
        TypeError: frames are not a uint8 array. ValueError: not ``[T, H, W, 3]`` with ``T >= 1``.

    Example:
        >>> import numpy as np
        >>> final_frame(np.zeros((5, 8, 8, 3), np.uint8)).shape
        (8, 8, 3)
    """
    frames = video.frames if hasattr(video, "frames") and not isinstance(video, np.ndarray) else video
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    if not isinstance(frames, np.ndarray):
        raise TypeError(f"video must be a Video (with .frames) or a uint8 [T, H, W, 3] array, got {type(video).__name__}")
    if frames.dtype != np.uint8:
        raise TypeError(f"video frames must be uint8 [T, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"video frames must be uint8 [T, H, W, 3] with T >= 1, got shape {list(frames.shape)}")
    return frames[-1]


def _parse_goal(goal: Any, name: str = "goal") -> tuple[str, Any]:
    """One goal -> ``("text", str)`` or ``("images", uint8 [K, H, W, 3])``."""
    if isinstance(goal, str):
        if not goal.strip():
            raise ValueError(f"{name} text must be a non-empty instruction, got {goal!r}")
        return "text", goal
    if hasattr(goal, "frames") and not isinstance(goal, (np.ndarray, torch.Tensor)):
        return "images", final_frame(goal)[None]
    if isinstance(goal, torch.Tensor):
        goal = goal.detach().cpu().numpy()
    if not isinstance(goal, np.ndarray):
        raise TypeError(
            f"{name} must be a uint8 image [H, W, 3], several images [N, H, W, 3], a Video (final frame is "
            f"used) or an instruction string, got {type(goal).__name__}"
        )
    if goal.dtype != np.uint8:
        raise TypeError(f"{name} must be uint8 [H, W, 3] or [N, H, W, 3], got {goal.dtype} {list(goal.shape)}")
    if goal.ndim == 3:
        goal = goal[None]
    if goal.ndim != 4 or goal.shape[-1] != 3 or goal.shape[0] < 1:
        raise ValueError(
            f"{name} must be uint8 [H, W, 3] or [N, H, W, 3] (channels last, N >= 1), got shape {list(goal.shape)}"
        )
    return "images", goal


def _perturb(images: np.ndarray, rng: np.random.Generator, copies: int) -> np.ndarray:
    """``[K, H, W, 3]`` -> ``[K * copies, H, W, 3]``: small random shifts and brightness changes."""
    num, height, width, _ = images.shape
    max_shift = max(1, round(0.04 * min(height, width)))
    padded = np.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)), mode="edge")
    out = np.empty((num * copies, height, width, 3), np.uint8)
    for index in range(num * copies):
        dy, dx = rng.integers(0, 2 * max_shift + 1, size=2)
        crop = padded[index // copies, dy : dy + height, dx : dx + width].astype(np.float32)
        out[index] = np.clip(crop * rng.uniform(0.95, 1.05), 0, 255).astype(np.uint8)
    return out


class _GoalScorer:
    """Goal embeddings for a batch of envs and the per-mode scoring (shared by all wrappers).

    Goals are held padded as ``[N, K, D]`` (padding repeats an env's last goal embedding, which changes
    neither the nearest distance nor the max similarity) and thresholds as ``[N]``.
    """

    def __init__(
        self,
        encoder: Encoder,
        *,
        num_envs: int,
        mode: str,
        scale: float,
        goal_reduce: str,
        success_threshold: float | None,
        device: str | torch.device | None,
    ) -> None:
        if not isinstance(encoder, Encoder):
            raise TypeError(f"encoder must be a vip_rl.encoders.Encoder, got {type(encoder).__name__}")
        if mode not in MODE_INFO_KEYS:
            raise ValueError(f"mode must be one of {tuple(MODE_INFO_KEYS)}, got {mode!r}")
        if goal_reduce not in ("nearest", "mean"):
            raise ValueError(f"goal_reduce must be 'nearest' or 'mean', got {goal_reduce!r}")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not np.isfinite(scale):
            raise ValueError(f"scale must be a finite number, got {scale!r}")
        if success_threshold is not None and (
            isinstance(success_threshold, bool)
            or not isinstance(success_threshold, (int, float))
            or not success_threshold > 0
        ):
            raise ValueError(f"success_threshold must be a positive number or None, got {success_threshold!r}")
        if success_threshold is not None and mode != "success":
            raise ValueError(f"success_threshold is only used with mode='success', got mode={mode!r}")
        if device is not None and torch.device(device) != encoder.device:
            raise ValueError(
                f"encoder is on {encoder.device} but device={str(device)!r} was requested; "
                f"move it first with encoder.to({str(device)!r})"
            )
        self.encoder = encoder
        self.num_envs = num_envs
        self.mode = mode
        self.scale = float(scale)
        self.goal_reduce = goal_reduce
        self.user_threshold = None if success_threshold is None else float(success_threshold)
        self.info_key = MODE_INFO_KEYS[mode]
        self._cache: OrderedDict[tuple, tuple[torch.Tensor, float]] = OrderedDict()
        self._env_goals: list[torch.Tensor] = [torch.zeros(0)] * num_envs
        self.goals = torch.zeros(num_envs, 1, encoder.embed_dim, device=encoder.device)  # [N, K, D]
        self.thresholds = torch.full((num_envs,), float("nan"), device=encoder.device)  # [N]

    # -- goals ---------------------------------------------------------------------------------
    def _embed(self, kind: str, value: Any) -> tuple[torch.Tensor, float]:
        """One parsed goal -> (``[K, D]`` reduced goal embeddings, success threshold); cached."""
        if kind == "text":
            key: tuple = ("text", value)
        else:
            key = ("images", value.shape, hashlib.sha1(np.ascontiguousarray(value).data).hexdigest())
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        if kind == "text":
            if not self.encoder.has_text:
                raise ValueError(
                    f"goal is an instruction ({value!r}) but encoder "
                    f"{self.encoder.config.get('name', '<unnamed>')!r} has no text tower; "
                    "use an image goal or a language encoder such as 'liv-sim'"
                )
            if self.mode == "success" and self.user_threshold is None:
                raise ValueError(
                    "mode='success' with a text goal needs success_threshold=<float>: the threshold is "
                    "calibrated from goal images, and an instruction has none"
                )
            goal = self.encoder.encode_text([value]).detach().float()
            threshold = float("nan")
        else:
            goal = self.encoder.encode_images(value).detach().float()  # resized inside the encoder
            if self.goal_reduce == "mean":
                goal = goal.mean(0, keepdim=True)
            threshold = float("nan")
            if self.mode == "success" and self.user_threshold is None:
                rng = np.random.default_rng(CALIBRATION_SEED)
                copies = self.encoder.encode_images(_perturb(value, rng, CALIBRATION_COPIES)).detach().float()
                self_distance = self.distance(copies, goal[None].expand(copies.shape[0], -1, -1))
                threshold = CALIBRATION_MULTIPLE * float(self_distance.max())
                # an encoder that is blind to the perturbations would give 0 and never report success
                threshold = max(threshold, 1e-6)
        if self.user_threshold is not None:
            threshold = self.user_threshold
        self._cache[key] = (goal, threshold)
        if len(self._cache) > _GOAL_CACHE_SIZE:
            self._cache.popitem(last=False)
        return goal, threshold

    def set_goals(self, goals: Sequence[Any], indices: Sequence[int]) -> None:
        """Set the goal of each env in ``indices`` (``goals[j]`` for env ``indices[j]``)."""
        parsed = [_parse_goal(goal) for goal in goals]  # validate all before changing anything
        embedded = [self._embed(kind, value) for kind, value in parsed]
        thresholds = self.thresholds.clone()
        for index, (goal, threshold) in zip(indices, embedded):
            self._env_goals[index] = goal
            thresholds[index] = threshold
        num_goals = max(goal.shape[0] for goal in self._env_goals)
        self.goals = torch.stack(
            [torch.cat([goal, goal[-1:].expand(num_goals - goal.shape[0], -1)]) for goal in self._env_goals]
        )
        self.thresholds = thresholds

    # -- scoring -------------------------------------------------------------------------------
    def distance(self, z: torch.Tensor, goals: torch.Tensor) -> torch.Tensor:
        """``z [B, D]``, ``goals [B, K, D]`` -> distance to the nearest goal ``[B]``."""
        return self.encoder.distance(z[:, None, :], goals).min(dim=1).values

    def encode(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 ``[B, H, W, 3]`` -> ``[B, D]`` in one forward."""
        return self.encoder.encode_images(frames, batch_size=max(1, len(frames))).detach().float()

    def score(
        self, prev_distance: torch.Tensor, z: torch.Tensor, goals: torch.Tensor, thresholds: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw per-mode value and distance for new embeddings ``z [B, D]`` -> (``[B]``, ``[B]``)."""
        distance = self.distance(z, goals)
        if self.mode == "progress":
            raw = prev_distance - distance
        elif self.mode == "distance":
            raw = -distance
        elif self.mode == "similarity":
            raw = F.cosine_similarity(z[:, None, :], goals, dim=-1, eps=1e-8).max(dim=1).values
        else:
            raw = (distance < thresholds).float()
        return raw, distance


def _check_pixel_space(space: gym.Space, where: str) -> None:
    if not (
        isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3 and space.shape[-1] == 3
    ):
        raise ValueError(f"{where} must be a uint8 Box [H, W, 3] image space, got {space}")


def _resolve_frames(
    observation_space: gym.Space,
    render_mode: str | None,
    *,
    camera: str | None,
    pixel_key: str | None,
    cameras: Sequence[str] | None,
) -> tuple[str, str | None]:
    """Decide where frames come from -> ``("obs", key | None)`` (None: the whole obs) or ``("render", None)``.

    Order when nothing is given: ``obs["pixels"]``, an image ``Box`` observation, then ``render()``.
    """
    if camera is not None and pixel_key is not None:
        raise ValueError(f"give camera or pixel_key, not both (camera={camera!r}, pixel_key={pixel_key!r})")
    is_dict = isinstance(observation_space, spaces.Dict)
    keys = list(observation_space.spaces) if is_dict else []
    if camera is not None:
        candidates = [f"pixels_{camera}"] + (["pixels"] if cameras and cameras[0] == camera else [])
        for key in candidates:
            if key in keys:
                _check_pixel_space(observation_space[key], f"observation_space[{key!r}]")
                return "obs", key
        if render_mode == "rgb_array" and cameras and cameras[0] == camera:
            return "render", None
        raise ValueError(
            f"camera={camera!r} is not available: no observation key in {candidates} "
            f"(observation keys: {keys}) and render() shows camera {cameras[0] if cameras else None!r}"
        )
    if pixel_key is not None:
        if pixel_key not in keys:
            raise ValueError(f"pixel_key={pixel_key!r} is not a key of the Dict observation (keys: {keys or None})")
        _check_pixel_space(observation_space[pixel_key], f"observation_space[{pixel_key!r}]")
        return "obs", pixel_key
    if "pixels" in keys:
        _check_pixel_space(observation_space["pixels"], "observation_space['pixels']")
        return "obs", "pixels"
    if (
        isinstance(observation_space, spaces.Box)
        and observation_space.dtype == np.uint8
        and len(observation_space.shape) == 3
        and observation_space.shape[-1] == 3
    ):
        return "obs", None
    if render_mode == "rgb_array":
        os.environ.setdefault("MUJOCO_GL", "egl")
        return "render", None
    raise ValueError(
        f"env has neither rgb_array rendering (render_mode={render_mode!r}) nor an image observation "
        f"(observation_space={observation_space}); make it with render_mode='rgb_array' or pass pixel_key="
    )


def _pick(obs: Any, key: str | None) -> Any:
    return obs if key is None else obs[key]


# --------------------------------------------------------------------------------------------
# single env


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
      ``[T, H, W, 3]`` video array use :func:`final_frame` (a 4-D array means several goal images).
    - a string: a language instruction (the encoder needs a text tower).

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
        self._scorer = _GoalScorer(
            encoder,
            num_envs=1,
            mode=mode,
            scale=scale,
            goal_reduce=goal_reduce,
            success_threshold=success_threshold,
            device=device,
        )
        self._source, self._key = _resolve_frames(
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
        frame = self.env.render() if self._source == "render" else _pick(obs, self._key)
        return np.asarray(frame)[None]

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


def _check_embedding_args(encoder: Any, key: Any, device: str | torch.device | None) -> None:
    if not isinstance(encoder, Encoder):
        raise TypeError(f"encoder must be a vip_rl.encoders.Encoder, got {type(encoder).__name__}")
    if device is not None and torch.device(device) != encoder.device:
        raise ValueError(
            f"encoder is on {encoder.device} but device={str(device)!r} was requested; "
            f"move it first with encoder.to({str(device)!r})"
        )
    if not isinstance(key, str) or not key:
        raise ValueError(f"key must be a non-empty string, got {key!r}")


def _embedding_observation_space(space: gym.Space, key: str, embed_dim: int) -> spaces.Dict:
    """One env's observation space with the float32 ``[D]`` embedding added under ``key``."""
    embedding_space = spaces.Box(-np.inf, np.inf, (embed_dim,), np.float32)
    if isinstance(space, spaces.Dict):
        if key in space.spaces:
            raise ValueError(f"key={key!r} is already an observation key ({list(space.spaces)})")
        return spaces.Dict({**space.spaces, key: embedding_space})
    if key == "observation":
        raise ValueError("key='observation' holds the original observation; pick another key")
    return spaces.Dict({"observation": space, key: embedding_space})


def _with_embedding(obs: Any, key: str, embedding: np.ndarray, dict_obs: bool) -> dict[str, Any]:
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
        _check_embedding_args(encoder, key, device)
        self.encoder = encoder
        self.key = key
        self._source, self._key = _resolve_frames(
            env.observation_space,
            env.render_mode,
            camera=camera,
            pixel_key=pixel_key,
            cameras=getattr(env.unwrapped, "cameras", None),
        )
        self._dict_obs = isinstance(env.observation_space, spaces.Dict)
        self.observation_space = _embedding_observation_space(env.observation_space, key, encoder.embed_dim)

    def _observation(self, obs: Any) -> dict[str, Any]:
        frame = self.env.render() if self._source == "render" else _pick(obs, self._key)
        embedding = self.encoder.encode_images(np.asarray(frame)[None])[0].detach().float().cpu().numpy()
        return _with_embedding(obs, self.key, embedding, self._dict_obs)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        return self._observation(obs), info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._observation(obs), reward, terminated, truncated, info


class FinalFrameInfo(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """On the step that ends an episode, add ``info[key] = env.render()`` (uint8 ``[H, W, 3]``).

    A vector env that resets a finished sub-env within the same step (Gymnasium
    ``autoreset_mode=SAME_STEP``, every Stable-Baselines3 ``VecEnv``) renders the *new* episode
    afterwards, so :class:`GoalRewardVector` / :class:`VecGoalReward` reading frames from ``render()``
    take the terminal frame from this info key instead. Wrap each sub-env with it (it renders once
    per episode; other steps are untouched). Not needed when frames come from the observation.

    Example:
        >>> import gymnasium as gym
        >>> env = FinalFrameInfo(gym.make("Pusher-v5", render_mode="rgb_array", width=64, height=64,
        ...                               max_episode_steps=1))
        >>> _ = env.reset(seed=0)
        >>> info = env.step(env.action_space.sample())[-1]
        >>> info["final_frame"].shape
        (64, 64, 3)
        >>> env.close()
    """

    def __init__(self, env: gym.Env, *, key: str = "final_frame") -> None:
        gym.utils.RecordConstructorArgs.__init__(self, key=key)
        gym.Wrapper.__init__(self, env)
        if env.render_mode != "rgb_array":
            raise ValueError(f"FinalFrameInfo needs render_mode='rgb_array', got render_mode={env.render_mode!r}")
        self.final_frame_key = key

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            info = dict(info)
            info[self.final_frame_key] = np.asarray(self.env.render())
        return obs, reward, terminated, truncated, info


# --------------------------------------------------------------------------------------------
# vector envs


def _per_env_goals(goal: Any, num_envs: int) -> list[Any]:
    """A goal for all envs, or a list / tuple with one goal per env."""
    if isinstance(goal, (list, tuple)):
        if len(goal) != num_envs:
            raise ValueError(
                f"a list of goals gives one goal per env: expected {num_envs}, got {len(goal)} "
                "(several goal images for one env go in one uint8 [N, H, W, 3] array)"
            )
        return list(goal)
    return [goal] * num_envs


class _VectorGoalCore:
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
        self.scorer = _GoalScorer(
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
        self.source, self.key = _resolve_frames(
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
        self.scorer.set_goals(_per_env_goals(goal, len(indices)), indices)
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
        self._core = _VectorGoalCore(
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
        self.autoreset_mode = _vector_autoreset_mode(env, self._source, final_frame_key)
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
        return _vector_frames(self.env, self._source, self._key, obs)

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
                    goal = [_per_env_goals(goal, self.num_envs)[i] for i in indices]
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
        return _vector_final_frames(self._source, self._key, self.final_frame_key, ended, infos)

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
        _check_embedding_args(encoder, key, device)
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
        self._source, self._key = _resolve_frames(
            env.single_observation_space, env.render_mode, camera=camera, pixel_key=pixel_key, cameras=cameras
        )
        self.autoreset_mode = _vector_autoreset_mode(env, self._source, final_frame_key)
        self._dict_obs = isinstance(env.single_observation_space, spaces.Dict)
        self.single_observation_space = _embedding_observation_space(
            env.single_observation_space, key, encoder.embed_dim
        )
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, env.num_envs)
        self._embedding: np.ndarray | None = None  # float32 [N, D], the current frames'

    def _frames(self, obs: Any) -> np.ndarray:
        return _vector_frames(self.env, self._source, self._key, obs)

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
        return _with_embedding(obs, self.key, embedding, self._dict_obs), info

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        frames = self._frames(obs)  # [N, H, W, 3]
        num_envs = self.num_envs
        ended = np.logical_or(terminations, truncations)
        same_step_ended = self.autoreset_mode == AutoresetMode.SAME_STEP and ended.any()
        if same_step_ended:
            final = _vector_final_frames(self._source, self._key, self.final_frame_key, ended, infos)
            frames = np.concatenate([frames, final])
        embeddings = self._encode(frames)  # one forward: [N (+k), D]
        self._embedding = embeddings[:num_envs]
        if same_step_ended:
            infos = dict(infos)
            final_obs = np.array(infos["final_obs"], dtype=object, copy=True)
            for index, embedding in zip(np.flatnonzero(ended), embeddings[num_envs:]):
                final_obs[index] = _with_embedding(final_obs[index], self.key, embedding, self._dict_obs)
            infos["final_obs"] = final_obs
        return _with_embedding(obs, self.key, self._embedding, self._dict_obs), rewards, terminations, truncations, infos


def _vector_autoreset_mode(env: VectorEnv, source: str, final_frame_key: str) -> AutoresetMode:
    """The vector env's autoreset mode; SAME_STEP with frames from ``render()`` needs every sub-env to put
    its terminal frame in ``info[final_frame_key]`` (:class:`FinalFrameInfo`), else ``ValueError``."""
    mode_value = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    mode = mode_value if isinstance(mode_value, AutoresetMode) else AutoresetMode(mode_value)
    if source == "render" and mode == AutoresetMode.SAME_STEP:
        try:
            keys = env.get_attr("final_frame_key")
        except AttributeError:
            keys = None
        if keys is None or any(key != final_frame_key for key in keys):
            raise ValueError(
                "autoreset_mode=SAME_STEP with frames from render(): render() after the step shows the "
                "new episode, so the terminal frame must come from info; wrap each sub-env in "
                f"vip_rl.wrappers.FinalFrameInfo(env, key={final_frame_key!r}) or use image observations"
            )
    return mode


def _vector_frames(env: VectorEnv, source: str, key: str | None, obs: Any) -> np.ndarray:
    """uint8 ``[N, H, W, 3]``: the current frames of a Gymnasium vector env, from ``render()`` or the observation."""
    if source == "render":
        return np.stack(env.render())
    return np.asarray(_pick(obs, key))


def _vector_final_frames(
    source: str, key: str | None, final_frame_key: str, ended: np.ndarray, infos: dict[str, Any]
) -> np.ndarray:
    """uint8 ``[k, H, W, 3]`` true terminal frames of the ``k`` envs in ``ended`` (Gymnasium SAME_STEP infos)."""
    indices = np.flatnonzero(ended)
    if source == "obs":
        final_obs = infos["final_obs"]
        return np.stack([np.asarray(_pick(final_obs[i], key)) for i in indices])
    final_info = infos.get("final_info", {})
    if final_frame_key not in final_info or not final_info[f"_{final_frame_key}"][indices].all():
        raise RuntimeError(
            f"sub-envs {indices.tolist()} ended but info['final_info'][{final_frame_key!r}] is missing; "
            "wrap each sub-env in vip_rl.wrappers.FinalFrameInfo"
        )
    return final_info[final_frame_key][indices]


# --------------------------------------------------------------------------------------------
# Stable-Baselines3 (imported on first use of VecGoalReward)

_VEC_GOAL_REWARD: type | None = None


def _build_vec_goal_reward() -> type:
    try:
        from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
    except ImportError as error:  # pragma: no cover - SB3 is a dependency of vip-rl
        raise ImportError("VecGoalReward needs stable-baselines3: pip install 'stable-baselines3>=2.3'") from error

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
            self._core = _VectorGoalCore(
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
            return np.asarray(_pick(obs, self._key))

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
                    final = [np.asarray(_pick(infos[i]["terminal_observation"], self._key)) for i in indices]
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

    VecGoalReward.__module__ = __name__
    VecGoalReward.__qualname__ = "VecGoalReward"
    return VecGoalReward


def __getattr__(name: str) -> Any:
    global _VEC_GOAL_REWARD
    if name == "VecGoalReward":
        if _VEC_GOAL_REWARD is None:
            _VEC_GOAL_REWARD = _build_vec_goal_reward()
        return _VEC_GOAL_REWARD
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
