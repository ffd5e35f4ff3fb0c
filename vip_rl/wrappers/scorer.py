"""The goal scorer every goal-reward wrapper shares: goal embeddings per env, the per-mode reward, and
the success-threshold calibration.

One :class:`GoalScorer` serves a single env (``num_envs=1``) and a vector of envs alike: goals are held
padded as ``[N, K, D]`` and thresholds as ``[N]``; goals are parsed and embedded by
:mod:`vip_rl.goals` and cached.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vip_rl.encoders.base import Encoder
from vip_rl.goals import Goal, embed_goal, parse_goal

__all__ = ["CALIBRATION_COPIES", "CALIBRATION_MULTIPLE", "CALIBRATION_SEED", "GoalReduce", "GoalScorer", "MODE_INFO_KEYS", "Mode"]

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


class GoalScorer:
    """Goal embeddings for a batch of envs and the per-mode scoring (shared by all goal-reward wrappers).

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
    def _embed(self, goal: Goal) -> tuple[torch.Tensor, float]:
        """One parsed goal -> (``[K, D]`` reduced goal embeddings, success threshold); cached."""
        if goal.kind == "text":
            key: tuple = ("text", goal.value)
        else:
            key = (goal.kind, goal.value.shape, hashlib.sha1(np.ascontiguousarray(goal.value).data).hexdigest())
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        calibrate = self.mode == "success" and self.user_threshold is None
        if goal.kind != "images" and calibrate:
            kind, what = ("a text", "an instruction") if goal.kind == "text" else ("an embedding", "an embedding")
            raise ValueError(
                f"mode='success' with {kind} goal needs success_threshold=<float>: the threshold is "
                f"calibrated from goal images, and {what} has none"
            )
        embedding = embed_goal(self.encoder, goal)  # [K, D]; images are resized inside the encoder
        if goal.kind != "text" and self.goal_reduce == "mean":
            embedding = embedding.mean(0, keepdim=True)
        threshold = float("nan")
        if calibrate:
            rng = np.random.default_rng(CALIBRATION_SEED)
            copies = self.encoder.encode_images(_perturb(goal.value, rng, CALIBRATION_COPIES)).detach().float()
            self_distance = self.distance(copies, embedding[None].expand(copies.shape[0], -1, -1))
            threshold = CALIBRATION_MULTIPLE * float(self_distance.max())
            # an encoder that is blind to the perturbations would give 0 and never report success
            threshold = max(threshold, 1e-6)
        if self.user_threshold is not None:
            threshold = self.user_threshold
        self._cache[key] = (embedding, threshold)
        if len(self._cache) > _GOAL_CACHE_SIZE:
            self._cache.popitem(last=False)
        return embedding, threshold

    def set_goals(self, goals: Sequence[Any], indices: Sequence[int]) -> None:
        """Set the goal of each env in ``indices`` (``goals[j]`` for env ``indices[j]``); any goal
        :func:`vip_rl.goals.parse_goal` reads."""
        parsed = [parse_goal(goal) for goal in goals]  # validate all before changing anything
        embedded = [self._embed(goal) for goal in parsed]
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
