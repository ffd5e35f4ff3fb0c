"""VIP / LIV tuple samplers over preloaded videos.

A tuple is ``(o_0, g, o_t, o_t+1)`` from one video, drawn as in the official VIP loader:
start ``s`` uniform in ``[0, T-2)``, goal ``g`` uniform in ``(s, T-1]``, ``o_t`` uniform in
``[s, g)`` and ``o_t+1 = min(o_t + 1, g)``. One random-resized crop is drawn per tuple and
applied to its four frames, so the crop never leaks temporal information. LIV tuples add
the video's text. ``channel_shuffle_prob`` recolours a share of the tuples by permuting their RGB channels (one
permutation per tuple, shared by its frames, from a stream of its own: the rest of the batch is unchanged), so
the value cannot key on colour alone, e.g. the colour of the end effector across embodiments. ``colour_gain_prob``
is the hue-keeping counterpart: a share of the tuples get per-channel RGB gains drawn from ``colour_gain_range`` (one
gain triple per tuple, shared by its frames, from another stream of its own; applied after any channel permutation).

Temporal-distance tuples (``goal_mode="geometric"``, HILP's goal distribution): ``o_t`` uniform in
``[0, T-2]``, ``o_t+1 = o_t + 1``, and the goal is either a geometric future frame of the same video,
``min(t + Geometric(geometric_p), T-1)``, or, with ``random_goal_prob``, any frame of any video
(cross-video goals); ``goal_swap_prob`` swaps final-frame goals as in the VIP modes. ``o_0`` is then the video's
first frame: the objective does not use it; the focused reconstruction (``PretrainConfig.recon_focus``) weighs the
pixels that changed since it.

Determinism: batch ``k`` is a pure function of ``(seed, k)`` (its own
``np.random.Generator``), so a resumed run sees the same batches as an uninterrupted one
without replaying the stream, and a background prefetch thread cannot change the data.
Distributed training draws the *global* batch on every rank and keeps the rank's
contiguous slice, so the concatenation of the ranks' batches is exactly the
single-process batch.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Any, Iterator, Literal, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

GoalMode = Literal["random", "final", "geometric"]

#: fixed salt so that sampler streams differ from other consumers of the same seed.
_SAMPLER_SALT = 0x5EED_7091
_SHUFFLE_SALT = 0xC0_10B5
_GAIN_SALT = 0x6A1C
#: the five non-identity permutations of (R, G, B)
_CHANNEL_PERMUTATIONS = np.array([[0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]], dtype=np.int64)


@dataclass(frozen=True)
class TupleBatch:
    """One batch of VIP/LIV tuples (this rank's slice of the global batch).

    Attributes:
        initial: uint8 ``[B, S, S, 3]``: o_0, the first frame of the sampled segment.
        goal: uint8 ``[B, S, S, 3]``: g, the segment's last frame.
        current: uint8 ``[B, S, S, 3]``: o_t.
        next: uint8 ``[B, S, S, 3]``: o_t+1 = min(o_t + 1, g).
        is_goal: bool ``[B]``: whether o_t is the goal frame (reward 0 instead of -1).
        reward: float32 ``[B]``: ``is_goal - 1``.
        text: the videos' texts (``list[str]`` of length B) when the sampler was built with
            ``with_text=True``, else ``None``.
        text_frame: uint8 ``[B, S, S, 3]`` frame from the last 5% of the video (LIV pairs it with
            the text in InfoNCE), when ``with_text=True`` and ``goal_mode="random"``; else ``None``
            (with ``goal_mode="final"`` the goal is the last frame and serves).
        label: int64 ``[B]``: group id of each tuple's video (``groups`` argument; default: one id
            per distinct text, else per source); equal labels are positives in InfoNCE.
        video_index: int64 ``[B]``: index of each tuple's video in the sampler's list.
        frame_index: int64 ``[B, 5]``: frame indices of (o_0, g, o_t, o_t+1, text frame) in their video.
        step: the batch number (the data is a pure function of ``(seed, step)``).
        next_is_goal: bool ``[B]``: ``"geometric"`` mode: o_t+1 reaches the goal, i.e. it is the last frame of a
            successful video and the goal is a (swapped) successful final frame of the same group: the goal is the
            task's outcome, not one picture, so the temporal-distance target is -1 without bootstrapping. ``None``
            in the VIP modes.
    """

    initial: torch.Tensor
    goal: torch.Tensor
    current: torch.Tensor
    next: torch.Tensor
    is_goal: torch.Tensor
    reward: torch.Tensor
    text: list[str] | None
    text_frame: torch.Tensor | None
    label: torch.Tensor
    video_index: torch.Tensor
    frame_index: torch.Tensor
    step: int
    next_is_goal: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return int(self.initial.shape[0])


#: Aspect-ratio range (w/h, log-uniform) of the random-resized crops: :class:`TupleSampler`'s default and the value head's.
CROP_RATIO: tuple[float, float] = (0.9, 1.0 / 0.9)


def crop_boxes(rng: np.random.Generator, size: int, scale: tuple[float, float], ratio: tuple[float, float]) -> np.ndarray:
    """Random-resized crop boxes ``[size, 4]`` as ``(cx, cy, width, height)`` fractions of the frame: area uniform in
    ``scale``, aspect ratio log-uniform in ``ratio`` (torchvision's parametrisation, clipped instead of retried)."""
    area = rng.uniform(scale[0], scale[1], size)
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1]), size))
    width = np.clip(np.sqrt(area * aspect), 0.0, 1.0)
    height = np.clip(np.sqrt(area / aspect), 0.0, 1.0)
    cx = width / 2 + rng.random(size) * (1.0 - width)
    cy = height / 2 + rng.random(size) * (1.0 - height)
    return np.stack([cx, cy, width, height], 1)


def crop_frames(pixels: np.ndarray, boxes: np.ndarray, size: int) -> torch.Tensor:
    """uint8 ``[N, F, F, 3]`` + boxes ``[N, 4]`` (:func:`crop_boxes`) -> uint8 ``[N, size, size, 3]`` (bilinear, border
    padding)."""
    x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float()
    box = torch.from_numpy(boxes).float()
    theta = torch.zeros(x.shape[0], 2, 3)
    theta[:, 0, 0] = box[:, 2]
    theta[:, 1, 1] = box[:, 3]
    theta[:, 0, 2] = box[:, 0] * 2 - 1
    theta[:, 1, 2] = box[:, 1] * 2 - 1
    grid = F.affine_grid(theta, [x.shape[0], 3, size, size], align_corners=False)
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _video_frames(video: Any, index: int) -> np.ndarray:
    frames = getattr(video, "frames", video)
    if isinstance(frames, torch.Tensor):
        frames = frames.numpy()
    if not isinstance(frames, np.ndarray):
        raise TypeError(f"videos[{index}] must be a Video or a uint8 [T, H, W, 3] array, got {type(video).__name__}")
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"videos[{index}].frames must be uint8 [T, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    if frames.shape[0] < 2:
        raise ValueError(f"videos[{index}] has {frames.shape[0]} frame(s); a tuple needs at least 2")
    return frames


def _resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``[T, H, W, 3]`` -> uint8 ``[T, size, size, 3]`` (bilinear, antialiased)."""
    if frames.shape[1:3] == (size, size):
        return frames
    out = []
    for start in range(0, frames.shape[0], 256):
        x = torch.from_numpy(np.ascontiguousarray(frames[start : start + 256])).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out.append(x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out, 0)


class TupleSampler:
    """Draws batches of VIP (or LIV, ``with_text=True``) tuples from preloaded videos.

    All frames are resized once to ``frame_size`` and concatenated into one uint8 array, so
    a batch is one vectorised gather plus one batched ``grid_sample`` (the shared crop).

    Args:
        videos: sequence of ``Video`` (``.frames`` uint8 ``[T, H, W, 3]``, ``.text``,
            ``.source``) or bare uint8 ``[T, H, W, 3]`` arrays; each needs ``T >= 2``.
        batch_size: the *global* batch size B (split across ``world_size`` ranks).
        image_size: side S of the output frames (the encoder's input size).
        frame_size: side the videos are stored at in memory (default ``image_size``).
        crop_scale: ``(min, max)`` area fraction of the random-resized crop; ``(1, 1)``
            disables cropping.
        crop_ratio: ``(min, max)`` aspect ratio (w/h) of the crop, log-uniform.
        goal_mode: ``"random"`` (VIP: g uniform after s), ``"final"`` (g = last frame) or ``"geometric"``
            (temporal distance: see the module docstring).
        geometric_p: success probability of the geometric goal offset (HILP: ``1 - gamma``).
        random_goal_prob: ``"geometric"`` mode: probability that the goal is a uniformly drawn frame
            of a uniformly drawn video (HILP: 0.375).
        final_goal_prob: with this probability a tuple's goal is its video's last frame even
            in ``"random"`` mode (videos with ``final_goal_ok=False`` are exempt).
        final_goal_ok: bool per video: may its last frame be used as a goal by
            ``final_goal_prob`` / ``goal_swap_prob`` (e.g. only successful episodes). Default: all.
        goal_swap_prob: with this probability a tuple whose goal is the last frame of a
            ``final_goal_ok`` video gets, instead, the last frame of a random ``final_goal_ok``
            video of the same group (``groups``): goals from *other* episodes of the task, so the
            value generalises across episodes (an extension; 0 = the official sampler).
        with_text: attach each video's text (raises if a video has none) and, in ``"random"``
            goal mode, a fifth frame from the video's last 5% for text alignment.
        groups: optional group key per video (e.g. the task name) for ``TupleBatch.label``.
        channel_shuffle_prob: probability that a tuple's frames get a random non-identity permutation of their RGB
            channels (the same for all of the tuple's frames); 0 (default) draws nothing and leaves batches as they were.
        colour_gain_prob: probability that a tuple's frames are multiplied by per-channel RGB gains (one triple per
            tuple, uniform in ``colour_gain_range``, rounded back to uint8); 0 (default) draws nothing.
        colour_gain_range: ``(low, high)`` of those gains, ``0 < low <= high``.
        source_weights: optional ``{source: weight}``; a video belongs to ``source`` if its
            ``.source`` equals it or starts with ``source + ":"`` (``load_videos`` names suite
            episodes ``file.h5:demo_3``). Videos are drawn by source first (weight-proportional;
            sources missing from the mapping get weight 0), then uniformly within the source.
            Default: uniform over videos.
        seed: base seed; batch ``k`` uses ``np.random.default_rng([salt, seed, k])``.
        rank, world_size: this process's slice of the global batch.

    Example:
        >>> videos = [np.random.default_rng(i).integers(0, 255, (12, 64, 64, 3), dtype=np.uint8) for i in range(3)]
        >>> sampler = TupleSampler(videos, batch_size=8, image_size=32, seed=0)
        >>> batch = sampler.batch(0)          # the same batch for the same (seed, step)
        >>> list(batch.initial.shape), batch.current.dtype, batch.reward.tolist() == (batch.is_goal.float() - 1).tolist()
        ([8, 32, 32, 3], torch.uint8, True)
    """

    def __init__(
        self,
        videos: Sequence[Any],
        *,
        batch_size: int,
        image_size: int,
        frame_size: int | None = None,
        crop_scale: tuple[float, float] = (0.8, 1.0),
        crop_ratio: tuple[float, float] = CROP_RATIO,
        goal_mode: GoalMode = "random",
        geometric_p: float = 0.01,
        random_goal_prob: float = 0.0,
        final_goal_prob: float = 0.0,
        final_goal_ok: Sequence[bool] | None = None,
        goal_swap_prob: float = 0.0,
        with_text: bool = False,
        groups: Sequence[Any] | None = None,
        source_weights: Mapping[str, float] | None = None,
        channel_shuffle_prob: float = 0.0,
        colour_gain_prob: float = 0.0,
        colour_gain_range: tuple[float, float] = (0.7, 1.3),
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if len(videos) == 0:
            raise ValueError("videos must be a non-empty sequence of videos, got 0 videos")
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(world_size, int) or world_size <= 0 or batch_size % world_size:
            raise ValueError(f"batch_size={batch_size} must be divisible by world_size={world_size!r}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank!r}")
        if image_size <= 0:
            raise ValueError(f"image_size must be positive, got {image_size!r}")
        lo, hi = float(crop_scale[0]), float(crop_scale[1])
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {crop_scale!r}")
        rlo, rhi = float(crop_ratio[0]), float(crop_ratio[1])
        if not 0.0 < rlo <= rhi:
            raise ValueError(f"crop_ratio must satisfy 0 < min <= max, got {crop_ratio!r}")
        if goal_mode not in ("random", "final", "geometric"):
            raise ValueError(f"goal_mode must be 'random', 'final' or 'geometric', got {goal_mode!r}")
        if not 0.0 < geometric_p <= 1.0:
            raise ValueError(f"geometric_p must be in (0, 1], got {geometric_p!r}")
        if not 0.0 <= random_goal_prob <= 1.0:
            raise ValueError(f"random_goal_prob must be in [0, 1], got {random_goal_prob!r}")
        if not 0.0 <= final_goal_prob <= 1.0:
            raise ValueError(f"final_goal_prob must be in [0, 1], got {final_goal_prob!r}")
        if not 0.0 <= goal_swap_prob <= 1.0:
            raise ValueError(f"goal_swap_prob must be in [0, 1], got {goal_swap_prob!r}")
        if not 0.0 <= float(channel_shuffle_prob) <= 1.0:
            raise ValueError(f"channel_shuffle_prob must be in [0, 1], got {channel_shuffle_prob!r}")
        self.channel_shuffle_prob = float(channel_shuffle_prob)
        if not 0.0 <= float(colour_gain_prob) <= 1.0:
            raise ValueError(f"colour_gain_prob must be in [0, 1], got {colour_gain_prob!r}")
        if len(colour_gain_range) != 2 or not 0.0 < float(colour_gain_range[0]) <= float(colour_gain_range[1]):
            raise ValueError(f"colour_gain_range must be (low, high) with 0 < low <= high, got {colour_gain_range!r}")
        self.colour_gain_prob = float(colour_gain_prob)
        self.colour_gain_range = (float(colour_gain_range[0]), float(colour_gain_range[1]))
        self.batch_size = batch_size
        self.local_batch_size = batch_size // world_size
        self.image_size = int(image_size)
        self.frame_size = int(frame_size or image_size)
        self.crop_scale = (lo, hi)
        self.crop_ratio = (rlo, rhi)
        self.goal_mode: GoalMode = goal_mode
        self.final_goal_prob = float(final_goal_prob)
        self.geometric_p = float(geometric_p)
        self.random_goal_prob = float(random_goal_prob)
        self.goal_swap_prob = float(goal_swap_prob)
        self.with_text = bool(with_text)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)

        arrays = [_resize_frames(_video_frames(v, i), self.frame_size) for i, v in enumerate(videos)]
        lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
        self.lengths = lengths
        self.offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self.frames = np.concatenate(arrays, 0) if len(arrays) > 1 else arrays[0]
        self.texts: list[str | None] = [getattr(v, "text", None) for v in videos]
        self.sources: list[str] = [str(getattr(v, "source", "")) for v in videos]
        if self.with_text:
            missing = [i for i, t in enumerate(self.texts) if not isinstance(t, str) or not t]
            if missing:
                raise ValueError(
                    f"with_text=True needs a text for every video; videos {missing[:5]} "
                    f"(source {self.sources[missing[0]]!r}) have none"
                )
        if final_goal_ok is None:
            self.final_goal_ok = np.ones(len(videos), dtype=bool)
        else:
            if len(final_goal_ok) != len(videos):
                raise ValueError(f"final_goal_ok must have one entry per video ({len(videos)}), got {len(final_goal_ok)}")
            self.final_goal_ok = np.asarray(final_goal_ok, dtype=bool)
        self.video_probs = self._video_probs(source_weights)
        if groups is None:
            groups = [t if isinstance(t, str) and t else s for t, s in zip(self.texts, self.sources)]
        elif len(groups) != len(videos):
            raise ValueError(f"groups must have one entry per video ({len(videos)}), got {len(groups)}")
        names = {g: i for i, g in enumerate(dict.fromkeys(groups))}
        self.labels = np.array([names[g] for g in groups], dtype=np.int64)
        # swap candidates: final_goal_ok videos sorted by label, with per-label start / count
        candidates = np.flatnonzero(self.final_goal_ok)
        candidates = candidates[np.argsort(self.labels[candidates], kind="stable")]
        num_labels = int(self.labels.max()) + 1
        self.swap_candidates = candidates
        self.swap_count = np.bincount(self.labels[candidates], minlength=num_labels)
        self.swap_start = np.concatenate([[0], np.cumsum(self.swap_count)[:-1]]).astype(np.int64)
        self.text_frame = self.with_text and self.goal_mode in ("random", "geometric")
        self.frames_per_tuple = 5 if self.text_frame else 4

    def _video_probs(self, source_weights: Mapping[str, float] | None) -> np.ndarray | None:
        if source_weights is None:
            return None
        weights = np.zeros(len(self.sources))
        for name, weight in source_weights.items():
            if weight < 0:
                raise ValueError(f"source_weights[{name!r}] must be >= 0, got {weight!r}")
            members = [i for i, s in enumerate(self.sources) if s == name or s.startswith(f"{name}:")]
            if not members:
                raise ValueError(f"source_weights names source {name!r}, but no video has it; sources: {sorted(set(self.sources))}")
            weights[members] = weight / len(members)
        if weights.sum() <= 0:
            raise ValueError(f"source_weights must give some video a positive weight, got {dict(source_weights)!r}")
        return weights / weights.sum()

    @property
    def num_videos(self) -> int:
        return len(self.lengths)

    def fingerprint(self) -> str:
        """Short hash of the video lengths, texts and a strided sample of the pixels (resume checks)."""
        import hashlib

        digest = hashlib.sha1(self.lengths.tobytes())
        digest.update("\x00".join(str(t) for t in self.texts).encode("utf-8"))
        digest.update(np.ascontiguousarray(self.frames.reshape(-1)[::9973]).tobytes())
        return digest.hexdigest()[:16]

    def state_dict(self) -> dict[str, int]:
        """The sampler's RNG state: batches are a function of ``(seed, step)`` only."""
        return {"seed": self.seed, "batch_size": self.batch_size}

    # --- index sampling (global batch, identical on every rank) -------------------------
    def sample_indices(self, step: int) -> dict[str, np.ndarray]:
        """Draw the *global* batch's indices and crop boxes for batch ``step``.

        Returns:
            dict with ``video`` int64 ``[B]``, ``goal_video`` int64 ``[B]`` (the goal frame's video), ``frames`` int64 ``[B, 5]`` (o_0, g, o_t, o_t+1,
            text frame; g's index is within ``goal_video``, the others within ``video``), ``is_goal`` bool ``[B]`` and ``crop`` float64 ``[B, 4]``
            (centre x, centre y, width, height as fractions of the frame).
        """
        rng = np.random.default_rng([_SAMPLER_SALT, self.seed, int(step)])
        size = self.batch_size
        if self.video_probs is None:
            video = rng.integers(0, self.num_videos, size=size)
        else:
            video = rng.choice(self.num_videos, size=size, p=self.video_probs)
        length = self.lengths[video]
        if self.goal_mode == "geometric":
            return self._sample_geometric(rng, video, length)
        # official VIP: start in [0, T-2), goal in (start, T-1], o_t in [start, goal)
        start = np.floor(rng.random(size) * np.maximum(length - 2, 1)).astype(np.int64)
        u_goal = rng.random(size)
        final = rng.random(size) < self.final_goal_prob
        if self.goal_mode == "final":
            goal = length - 1
        else:
            goal = start + 1 + np.floor(u_goal * (length - 1 - start)).astype(np.int64)
            goal = np.where(final & self.final_goal_ok[video], length - 1, goal)
        current = start + np.floor(rng.random(size) * (goal - start)).astype(np.int64)
        nxt = np.minimum(current + 1, goal)
        is_goal = current == goal
        # LIV's language-aligned frame: uniform over the last 5% of the video
        tail_start = np.ceil(0.95 * (length - 1)).astype(np.int64)
        text_frame = tail_start + np.floor(rng.random(size) * (length - tail_start)).astype(np.int64)
        # cross-episode goal swap (same group, successful final frames)
        swap, pick = self._goal_swap(rng, video, length, goal, allowed=np.True_)
        goal_video = np.where(swap, pick, video)
        goal = np.where(swap, self.lengths[goal_video] - 1, goal)
        crop = self._crop_boxes(rng, size)
        return {
            "video": video.astype(np.int64),
            "goal_video": goal_video.astype(np.int64),
            "frames": np.stack([start, goal, current, nxt, text_frame], 1).astype(np.int64),
            "is_goal": is_goal,
            "crop": crop,
        }

    def _goal_swap(self, rng: np.random.Generator, video: np.ndarray, length: np.ndarray, goal: np.ndarray, *,
                   allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cross-episode goal swap: which tuples swap their final-frame goal, and for which video's final frame.

        A tuple whose goal is the last frame of a ``final_goal_ok`` video swaps it, with probability
        ``goal_swap_prob`` (and where ``allowed``), for the last frame of a random ``final_goal_ok`` video of
        the same group. Draws two uniforms per tuple. Returns ``swap`` bool ``[B]`` and ``pick`` int64 ``[B]``.
        """
        size = len(video)
        u_swap, u_pick = rng.random(size), rng.random(size)
        label = self.labels[video]
        count = self.swap_count[label]
        swap = (u_swap < self.goal_swap_prob) & (goal == length - 1) & self.final_goal_ok[video] & (count > 0) & allowed
        if not len(self.swap_candidates):
            return swap, video
        offset = np.minimum(self.swap_start[label] + np.floor(u_pick * count).astype(np.int64), len(self.swap_candidates) - 1)
        return swap, self.swap_candidates[offset]

    def _crop_boxes(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return crop_boxes(rng, size, self.crop_scale, self.crop_ratio)

    def _sample_geometric(self, rng: np.random.Generator, video: np.ndarray, length: np.ndarray) -> dict[str, np.ndarray]:
        """Temporal-distance tuples: geometric future goals of the same video, or random frames of any video."""
        size = len(video)
        current = np.floor(rng.random(size) * (length - 1)).astype(np.int64)  # [0, T-2]
        nxt = current + 1
        goal = np.minimum(current + rng.geometric(self.geometric_p, size), length - 1)
        random_goal = rng.random(size) < self.random_goal_prob
        other = rng.integers(0, self.num_videos, size=size) if self.video_probs is None else rng.choice(self.num_videos, size=size, p=self.video_probs)
        other_frame = np.floor(rng.random(size) * self.lengths[other]).astype(np.int64)
        # cross-episode goal swap, as in the VIP modes: a final-frame goal of a final_goal_ok video becomes the final
        # frame of a random final_goal_ok video of the same group (equivalent goals across episodes)
        swap, pick = self._goal_swap(rng, video, length, goal, allowed=~random_goal)
        label = self.labels[video]
        goal_video = np.where(random_goal, other, np.where(swap, pick, video))
        goal = np.where(random_goal, other_frame, np.where(swap, self.lengths[pick] - 1, goal))
        is_goal = (goal_video == video) & (goal == current)
        # o_t+1 = the last frame of a successful video, goal = a successful final frame of the same group
        next_is_goal = (nxt == length - 1) & (goal == self.lengths[goal_video] - 1) & self.final_goal_ok[video] \
            & self.final_goal_ok[goal_video] & (self.labels[goal_video] == label) & ~random_goal
        tail_start = np.ceil(0.95 * (length - 1)).astype(np.int64)
        text_frame = tail_start + np.floor(rng.random(size) * (length - tail_start)).astype(np.int64)
        return {
            "video": video.astype(np.int64),
            "goal_video": goal_video.astype(np.int64),
            "frames": np.stack([np.zeros_like(current), goal, current, nxt, text_frame], 1).astype(np.int64),
            "is_goal": is_goal,
            "next_is_goal": next_is_goal,
            "crop": self._crop_boxes(rng, size),
        }

    # --- materialise this rank's slice ---------------------------------------------------
    def batch(self, step: int) -> TupleBatch:
        """Batch number ``step`` (this rank's slice of the global batch)."""
        idx = self.sample_indices(step)
        lo = self.rank * self.local_batch_size
        sl = slice(lo, lo + self.local_batch_size)
        video, frames, is_goal, crop = idx["video"][sl], idx["frames"][sl], idx["is_goal"][sl], idx["crop"][sl]
        goal_video = idx["goal_video"][sl]
        k = self.frames_per_tuple
        flat = self.offsets[video][:, None] + frames[:, :k]
        flat[:, 1] = self.offsets[goal_video] + frames[:, 1]
        flat = flat.reshape(-1)  # [b*k]
        pixels = self.frames[flat]  # [b*k, F, F, 3] uint8, one gather
        out = self._crop(pixels, np.repeat(crop, k, axis=0))  # [b*k, S, S, 3]
        out = out.view(len(video), k, self.image_size, self.image_size, 3)
        if self.channel_shuffle_prob > 0:
            out = out.take_along_dim(torch.from_numpy(self.channel_permutations(step)[sl]).view(-1, 1, 1, 1, 3), dim=-1)
        if self.colour_gain_prob > 0:
            gains = torch.from_numpy(self.colour_gains(step)[sl]).float().view(-1, 1, 1, 1, 3)
            out = (out.float() * gains).round_().clamp_(0, 255).to(torch.uint8)
        texts = [self.texts[i] for i in video.tolist()] if self.with_text else None
        is_goal_t = torch.from_numpy(is_goal.copy())
        return TupleBatch(
            initial=out[:, 0],
            goal=out[:, 1],
            current=out[:, 2],
            next=out[:, 3],
            is_goal=is_goal_t,
            reward=is_goal_t.float() - 1.0,
            text=texts,  # type: ignore[arg-type]
            text_frame=out[:, 4] if self.text_frame else None,
            label=torch.from_numpy(self.labels[video]),
            video_index=torch.from_numpy(video.copy()),
            frame_index=torch.from_numpy(frames.copy()),
            step=int(step),
            next_is_goal=torch.from_numpy(idx["next_is_goal"][sl].copy()) if "next_is_goal" in idx else None,
        )

    def channel_permutations(self, step: int) -> np.ndarray:
        """The *global* batch's RGB channel orders int64 ``[B, 3]`` for batch ``step`` (identity where a tuple is not
        recoloured); a pure function of ``(seed, step)`` drawn apart from the tuples' own stream."""
        rng = np.random.default_rng([_SHUFFLE_SALT, self.seed, int(step)])
        recolour = rng.random(self.batch_size) < self.channel_shuffle_prob
        which = rng.integers(0, len(_CHANNEL_PERMUTATIONS), size=self.batch_size)
        return np.where(recolour[:, None], _CHANNEL_PERMUTATIONS[which], np.arange(3)[None, :])

    def colour_gains(self, step: int) -> np.ndarray:
        """The *global* batch's per-channel RGB gains float64 ``[B, 3]`` for batch ``step`` (1 where a tuple keeps its
        colours); a pure function of ``(seed, step)`` drawn apart from the tuples' and the permutations' streams."""
        rng = np.random.default_rng([_GAIN_SALT, self.seed, int(step)])
        on = rng.random(self.batch_size) < self.colour_gain_prob
        low, high = self.colour_gain_range
        return np.where(on[:, None], rng.uniform(low, high, size=(self.batch_size, 3)), 1.0)

    def _crop(self, pixels: np.ndarray, crop: np.ndarray) -> torch.Tensor:
        if self.frame_size == self.image_size and bool(np.all(crop[:, 2:] >= 1.0)):
            return torch.from_numpy(pixels).contiguous()
        return crop_frames(pixels, crop, self.image_size)

    def iterate(self, start_step: int = 0, *, prefetch: int = 2) -> Iterator[TupleBatch]:
        """Yield batches ``start_step, start_step + 1, ...`` forever.

        With ``prefetch > 0`` a daemon thread prepares up to ``prefetch`` batches ahead; the
        batches are the same as without it (each is a function of its step). Close the
        iterator (``it.close()``, or let it be garbage collected) to stop the thread: closing
        waits for the batch it is making, so no torch op is left running when the process exits
        (one caught at exit aborted a training process: ``terminate called without an active
        exception``).
        """
        if prefetch <= 0:
            step = start_step
            while True:
                yield self.batch(step)
                step += 1
        buffer: queue.Queue[Any] = queue.Queue(maxsize=prefetch)
        stop = threading.Event()

        def work() -> None:
            step = start_step
            while not stop.is_set():
                try:
                    item: Any = self.batch(step)
                except Exception as exc:  # forwarded to the consumer, which re-raises it
                    item = exc
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if isinstance(item, Exception):
                    return
                step += 1

        thread = threading.Thread(target=work, name="vip-rl-sampler", daemon=True)
        thread.start()
        try:
            while True:
                item = buffer.get()
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            stop.set()
            if thread is not threading.current_thread():  # closed from the worker itself (garbage collected there): no join
                thread.join()
