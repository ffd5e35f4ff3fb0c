"""Pretrain or fine-tune a VIP / LIV / temporal-distance encoder on videos (``vip-rl pretrain``).

One trainer for the three objectives (``vip``, ``liv``, ``tdist``); it reads top to bottom:
seed -> build (encoder, optimizer, sampler) -> resume -> loop (batch, loss, step, log)
-> periodic eval (value-order correlation on held-out videos) and atomic checkpoints.

Eval videos: ``eval_data`` when given, else ``config.eval_videos`` videos split off the data. With
``eval_videos=0``, or no more videos than ``eval_videos`` (nothing would be left to train on), the run
evaluates on its training videos: it warns (:class:`EvalOnTrainingVideosWarning`, one line
``vip-rl pretrain: warning: ...`` on the command line) and records it, as the metric
``eval/on_training_videos`` (1 or 0, beside every eval) in ``log.csv`` / TensorBoard and as
``training["eval_on_training_videos"]`` in the exported encoder's config.

Exact resume: batch ``k`` is a pure function of ``(seed, k)`` (see
:class:`~vip_rl.data.samplers.TupleSampler`) and so are the loss's negative permutations,
so a run killed after a checkpoint and resumed produces the same weights as an
uninterrupted one. The ``tdist`` objective (:func:`vip_rl.objectives.temporal_distance_loss`) also
keeps a target copy of the vision tower, updated by Polyak averaging after every step and saved in the
checkpoint. The checkpoint ``<out_dir>/checkpoint.pt`` holds the model, optimizer,
step, RNG states, both configs and the version; it is a ``weights_only`` torch file that
``load_encoder`` also reads. The final encoder is exported to ``<out_dir>/encoder/``
(safetensors + JSON, ``load_encoder(out_dir / "encoder")``).

Distributed: under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) the same code runs with
DistributedDataParallel (gloo on CPU, nccl on CUDA). Every rank draws the same global
batch and embeds its contiguous slice; embeddings are all-gathered (differentiably) so the
loss is the full-batch loss, and DDP's gradient averaging then equals the single-process
gradient. Only rank 0 writes files.

Spare core (:func:`_side_threads`): on a CPU with a core to spare for each torch thread (``make weights`` trains on one
thread of two cores), :func:`fit_value_head` embeds the videos on two threads and runs its target MLP on a second
thread beside the online one. Each op runs as it would in turn, on as many torch threads, so the tensors stay bit for
bit; only the wall time changes (``benchmarks/results/recipe_speed_value_head.md``). The pixel stages stay serial: the
target network on a second thread ran at 0.92x, interleaved with serial steps in one run, against the sampler's
prefetch thread. :data:`SIDE_THREADS` forces it on or off.

After the image stages, :func:`fit_text_tower` refits a text tower onto the frozen image tower and
:func:`fit_value_head` fits a temporal-distance value MLP on a SmallCNN's frozen features (both on vectors: the frames
are embedded once).

Fine-tuning a vision-language model: ``init_from`` the official LIV ``model.pt`` or an OpenAI CLIP RN50 state
dict (:func:`vip_rl.encoders.load_encoder` reads both) with ``objective="liv"`` trains CLIP's image and text towers
on the videos and their instructions (LIV fine-tunes at ``lr=1e-5``). ``train_blocks`` (the last N residual
blocks of each tower plus the heads) and ``freeze_text`` cut the trainable part so a run fits a CPU; the checkpoint
and the exported encoder record the CLIP dimensions, so ``load_encoder`` rebuilds the model.

Example:
    >>> cfg = PretrainConfig(objective="vip", steps=2000, image_size=64)   # doctest: +SKIP
    >>> encoder = pretrain(cfg, "data/demos.hdf5", out_dir="runs/vip")     # doctest: +SKIP
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import dataclasses
import io
import json
import math
import os
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vip_rl import __version__
from vip_rl._io import atomic_path, atomic_write_text
from vip_rl._provenance import code_version
from vip_rl.cli import ArgumentParser, check_output_dir, command, one_line, resolve_device
from vip_rl.data.samplers import CROP_RATIO, TupleBatch, TupleSampler, crop_boxes, crop_frames
from vip_rl.encoders.base import Encoder

CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_FORMAT = "vip-rl-pretrain/1"
LOG_FILE = "log.csv"
_LOSS_SALT = 0x1055_0BAD
#: Work beside the main thread (module docstring, "Spare core"): ``None`` when a core is spare, else always / never.
SIDE_THREADS: bool | None = None


class ResumeMismatchError(ValueError):
    """``out_dir`` holds a checkpoint that this call cannot resume: another config, encoder architecture or set of
    videos. ``reason`` says what differs; :meth:`advice` what to do, in the names of :func:`pretrain`'s arguments (the
    message is both) or, given other names, in a front end's flags (``vip-rl pretrain``). A front end with its own
    folder layout (``vip_rl.weights_recipe``) prints ``reason`` with advice of its own."""

    #: How :meth:`advice` names each remedy by default: :func:`pretrain`'s arguments.
    ARGUMENTS = {"init_from": "init_from", "data": "data", "no_resume": "resume=False", "out": "out_dir"}

    def __init__(self, reason: str, advice: str) -> None:
        """``advice``: a :meth:`str.format` template over the keys of :data:`ARGUMENTS`."""
        self.reason, self._advice = reason, advice
        super().__init__(f"{reason}; {self.advice()}")

    def advice(self, **names: str) -> str:
        """What to do, each remedy named as in ``names`` (keys of :data:`ARGUMENTS`) or else as :func:`pretrain`'s
        argument.

        >>> ResumeMismatchError("run/checkpoint.pt: other videos", "pass the same {data} or {no_resume}").advice(no_resume="--no-resume")
        'pass the same data or --no-resume'
        """
        return self._advice.format(**{**self.ARGUMENTS, **names})


class EvalOnTrainingVideosWarning(UserWarning):
    """A pretraining run's ``eval/`` metrics are measured on its own training videos (none held out)."""


@dataclass(frozen=True)
class PretrainConfig:
    """Everything that defines a pretraining run (stored in every checkpoint).

    Data-independent: the videos, ``out_dir``, ``device`` and ``init_from`` are passed to
    :func:`pretrain` beside the config.
    """

    objective: Literal["vip", "liv", "tdist"] = "vip"
    """``"vip"`` (L2 metric, image goals), ``"liv"`` (cosine metric, image + text goals) or ``"tdist"``
    (L2 metric that counts steps: HILP's expectile TD, optional text tower regressed onto goal frames)."""
    arch: str = "cnn"
    """Vision backbone for :func:`vip_rl.encoders.build_encoder` (``cnn``, ``resnet18``, ...)."""
    embed_dim: int = 128
    """Embedding dimension D."""
    image_size: int = 96
    """Encoder input side S; videos are resized to it once when loaded."""
    cnn_channels: tuple[int, ...] | None = None
    """Channels of the CNN's stride-2 stages (``None``: the backbone's default)."""
    head_hidden: tuple[int, ...] = ()
    """``cnn``: hidden widths of an MLP embedding head (empty: one linear layer)."""
    text: Literal["auto", "minilm", "hashing", "none"] = "auto"
    """Text tower: ``auto`` = ``minilm`` for LIV, none for VIP and tdist."""
    freeze_text: bool = False
    """Freeze the text tower (LIV's ``grad_text=False``): its weights stay as loaded or initialised."""
    train_blocks: int = 0
    """CLIP encoders (``init_from`` a LIV or CLIP checkpoint): 0 trains all blocks; N > 0 trains only the last N
    bottlenecks and the attention pool of the image tower and the last N text blocks, ``ln_final`` and
    ``text_projection`` (a fine-tune that fits a CPU); frozen BatchNorm layers keep their statistics."""
    batch_size: int = 32
    """Global batch of tuples (split evenly across DDP ranks)."""
    lr: float = 1e-4
    """Adam learning rate (official VIP: 1e-4)."""
    weight_decay: float = 0.0
    """Adam(W) weight decay."""
    lr_schedule: Literal["constant", "cosine"] = "constant"
    """``constant`` (official VIP) or ``cosine`` decay to 10% of ``lr`` at ``steps``; both after
    ``warmup_steps`` of linear warm-up. The rate is a pure function of the step (exact resume)."""
    warmup_steps: int = 0
    """Linear warm-up steps."""
    steps: int = 2000
    """Total optimizer steps."""
    gamma: float = 0.98
    """Discount of the VIP/LIV objective."""
    num_negatives: int = 0
    """Shuffled cross-tuple negatives of the VIP term (official ``num_negatives``)."""
    l1_weight: float = 0.0
    """VIP embedding L1 regulariser weight (official ``l1weight``)."""
    l2_weight: float = 0.0
    """VIP embedding L2 regulariser weight (official ``l2weight``)."""
    vip_weight: float = 1.0
    """LIV: weight of the image-goal VIP term."""
    text_weight: float = 1.0
    """LIV: weight of the text-goal VIP term. tdist: weight of the text regression (instruction embedding
    onto the target network's embedding of a successful video's last-5% frame)."""
    nce_weight: float = 1.0
    """LIV: weight of the image-text InfoNCE."""
    temperature: float = 1.0
    """LIV: InfoNCE temperature (official 1.0)."""
    frame_stride: int = 1
    """Keep every ``frame_stride``-th frame of each video (the last one always): a step of the value is then
    ``frame_stride`` frames. For videos at a high frame rate (Meta-World's ~90-step demos), where a TD value needs
    many more updates to count the early frames down."""
    crop_scale: tuple[float, float] = (0.8, 1.0)
    """Area range of the random-resized crop shared by a tuple's frames; (1, 1) disables it."""
    channel_shuffle_prob: float = 0.0
    """Share of tuples whose frames get a random permutation of their RGB channels (one per tuple): a colour
    augmentation, so that the value cannot key on colour alone (e.g. an end effector's, across embodiments)."""
    colour_gain_prob: float = 0.0
    """Share of tuples whose frames are multiplied by per-channel RGB gains (one triple per tuple, uniform in
    ``colour_gain_range``): a colour augmentation that keeps the hue order, unlike ``channel_shuffle_prob``."""
    colour_gain_range: tuple[float, float] = (0.7, 1.3)
    """``(low, high)`` of those gains, ``0 < low <= high``."""
    goal_mode: Literal["random", "final"] = "random"
    """Goal frame: ``random`` (official VIP: uniform after the start) or ``final`` (last frame)."""
    final_goal_prob: float = 0.0
    """Probability of using the video's last frame as the goal in ``random`` mode."""
    eval_every: int = 500
    """Evaluate every this many steps (and at the end); 0 disables periodic eval."""
    eval_videos: int = 8
    """Videos held out for eval when no eval data is given (0, or no more videos than this: evaluate on the
    training videos, with an :class:`EvalOnTrainingVideosWarning`)."""
    ckpt_every: int = 500
    """Checkpoint every this many steps (and at the end)."""
    log_every: int = 10
    """Write train metrics every this many steps."""
    prefetch: int = 2
    """Batches prepared ahead by a background thread (0: none)."""
    expectile: float = 0.7
    """tdist: expectile of the TD loss (HILP: 0.7 on pixels)."""
    value_heads: int = 2
    """tdist: value heads; the embedding is ``value_heads`` slices of ``embed_dim / value_heads``."""
    target_tau: float = 0.005
    """tdist: Polyak rate of the target network (HILP: 0.005)."""
    random_goal_prob: float = 0.375
    """tdist: share of goals drawn from any frame of any video (HILP: 0.375); the rest are geometric
    (``p = 1 - gamma``) future frames of the same video."""
    recon_weight: float = 0.0
    """tdist: weight of an auxiliary pixel objective, 0 = off. A small decoder (:class:`ReconDecoder`, trained with
    the encoder, never exported) reconstructs each ``s`` frame at half the input side from its embedding; the mean
    squared error of the preprocessed pixels is added to the loss, so the embedding keeps what the frame shows."""
    recon_focus: float = 0.0
    """tdist with ``recon_weight > 0``: the share of the reconstruction loss put on the pixels that changed since the
    video's first frame, in [0, 1]; 0 = the plain mean squared error. The rest of the weight stays uniform; the focused
    part weighs each pixel's error by how much it changed (:func:`recon_loss`). A plain error is dominated by what covers
    many pixels (table, arm, distractors), and the button and the switch are about 10 of 4096 pixels at 64 px."""
    recon_full_size: bool = False
    """tdist with ``recon_weight > 0``: decode each frame at the input side instead of half of it (one more transposed
    convolution; the error is taken on the unpooled pixels). At half the side of 64 px, PushBlock's block covers about
    two pooled pixels."""
    seed: int = 0
    """Seed of the initialisation, the data stream and the negatives."""

    def __post_init__(self) -> None:
        if self.objective not in ("vip", "liv", "tdist"):
            raise ValueError(f"objective must be 'vip', 'liv' or 'tdist', got {self.objective!r}")
        if self.text not in ("auto", "minilm", "hashing", "none"):
            raise ValueError(f"text must be 'auto', 'minilm', 'hashing' or 'none', got {self.text!r}")
        if self.objective == "liv" and self.text == "none":
            raise ValueError("objective='liv' needs a text tower; got text='none' (use 'minilm' or 'hashing')")
        if not isinstance(self.freeze_text, bool):
            raise ValueError(f"freeze_text must be a bool, got {self.freeze_text!r}")
        for name in ("embed_dim", "image_size", "batch_size", "steps", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        for name in ("num_negatives", "eval_every", "ckpt_every", "eval_videos", "prefetch", "seed", "warmup_steps", "train_blocks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not 0.0 < float(self.gamma) < 1.0:
            raise ValueError(f"gamma must be in (0, 1), got {self.gamma!r}")
        for name in ("weight_decay", "l1_weight", "l2_weight", "vip_weight", "text_weight", "nce_weight"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not float(self.temperature) > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")
        if isinstance(self.frame_stride, bool) or not isinstance(self.frame_stride, int) or self.frame_stride < 1:
            raise ValueError(f"frame_stride must be an int >= 1, got {self.frame_stride!r}")
        if len(self.crop_scale) != 2 or not 0.0 < self.crop_scale[0] <= self.crop_scale[1] <= 1.0:
            raise ValueError(f"crop_scale must be (min, max) with 0 < min <= max <= 1, got {self.crop_scale!r}")
        if not 0.0 <= float(self.channel_shuffle_prob) <= 1.0:
            raise ValueError(f"channel_shuffle_prob must be in [0, 1], got {self.channel_shuffle_prob!r}")
        if not 0.0 <= float(self.colour_gain_prob) <= 1.0:
            raise ValueError(f"colour_gain_prob must be in [0, 1], got {self.colour_gain_prob!r}")
        if len(self.colour_gain_range) != 2 or not 0.0 < float(self.colour_gain_range[0]) <= float(self.colour_gain_range[1]):
            raise ValueError(f"colour_gain_range must be (low, high) with 0 < low <= high, got {self.colour_gain_range!r}")
        if self.goal_mode not in ("random", "final"):
            raise ValueError(f"goal_mode must be 'random' or 'final', got {self.goal_mode!r}")
        if not 0.0 <= float(self.final_goal_prob) <= 1.0:
            raise ValueError(f"final_goal_prob must be in [0, 1], got {self.final_goal_prob!r}")
        if self.head_hidden and (self.arch != "cnn" or any(isinstance(h, bool) or not isinstance(h, int) or h <= 0 for h in self.head_hidden)):
            raise ValueError(f"head_hidden must be positive ints and needs arch='cnn', got {self.head_hidden!r} with arch={self.arch!r}")
        if not 0.5 <= float(self.expectile) < 1.0:
            raise ValueError(f"expectile must be in [0.5, 1), got {self.expectile!r}")
        if isinstance(self.value_heads, bool) or not isinstance(self.value_heads, int) or self.value_heads < 1 or self.embed_dim % self.value_heads:
            raise ValueError(f"value_heads must be a positive int dividing embed_dim={self.embed_dim}, got {self.value_heads!r}")
        if not 0.0 < float(self.target_tau) <= 1.0:
            raise ValueError(f"target_tau must be in (0, 1], got {self.target_tau!r}")
        if not 0.0 <= float(self.random_goal_prob) <= 1.0:
            raise ValueError(f"random_goal_prob must be in [0, 1], got {self.random_goal_prob!r}")
        if float(self.recon_weight) < 0 or (float(self.recon_weight) > 0 and self.objective != "tdist"):
            raise ValueError(f"recon_weight must be >= 0 and needs objective='tdist' when > 0, got {self.recon_weight!r} "
                             f"with objective={self.objective!r}")
        if not 0.0 <= float(self.recon_focus) <= 1.0 or (float(self.recon_focus) > 0 and float(self.recon_weight) == 0):
            raise ValueError(f"recon_focus must be in [0, 1] and needs recon_weight > 0 when > 0, got {self.recon_focus!r} "
                             f"with recon_weight={self.recon_weight!r}")
        if self.recon_full_size and float(self.recon_weight) == 0:
            raise ValueError("recon_full_size needs recon_weight > 0 (it sets the side the reconstruction decodes)")
        if self.cnn_channels is not None and (not self.cnn_channels or any(int(c) <= 0 for c in self.cnn_channels)):
            raise ValueError(f"cnn_channels must be None or positive ints, got {self.cnn_channels!r}")

    @property
    def metric(self) -> Literal["l2", "cos"]:
        """The training metric the objective implies: ``l2`` for VIP and tdist, ``cos`` for LIV."""
        return "cos" if self.objective == "liv" else "l2"

    def lr_at(self, step: int) -> float:
        """Learning rate of optimizer step ``step`` (0-based)."""
        import math

        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.lr_schedule == "constant":
            return self.lr
        frac = min(1.0, (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps))
        return self.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * frac)))

    @property
    def text_tower(self) -> str | None:
        """The resolved text tower (``None`` for none)."""
        if self.text == "auto":
            return "minilm" if self.objective == "liv" else None
        return None if self.text == "none" else self.text

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON values (tuples as lists): the stage's record in an exported encoder's JSON."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "PretrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown PretrainConfig fields {unknown}; known: {sorted(known)}")
        values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()}
        return cls(**values)


# --------------------------------------------------------------------------------------------
# distributed helpers
# --------------------------------------------------------------------------------------------
@dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1
    initialised_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable all-gather along dim 0 (rank order = global batch order)."""
        if self.world_size == 1:
            return x
        import warnings

        import torch.distributed.nn.functional as dist_fn

        with warnings.catch_warnings():  # deprecated in favour of a private API; semantics verified by the DDP test
            warnings.simplefilter("ignore", FutureWarning)
            return torch.cat(dist_fn.all_gather(x), 0)

    def barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.initialised_here:
            torch.distributed.destroy_process_group()


def _setup_distributed(device: torch.device) -> tuple[_Dist, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist(), device
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    initialised_here = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, init_method="env://")
        initialised_here = True
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return _Dist(rank=rank, world_size=dist.get_world_size(), initialised_here=initialised_here), device


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
def _as_videos(data: Any, *, camera: str | None) -> list[Any]:
    """Paths / a list of paths / a list of ``Video`` -> list of ``Video``."""
    if isinstance(data, (str, os.PathLike)):
        data = [data]
    if not isinstance(data, Sequence) or len(data) == 0:
        raise ValueError(f"data must be a path, a list of paths or a list of Video, got {type(data).__name__} {data!r:.80}")
    if all(isinstance(d, (str, os.PathLike)) for d in data):
        from vip_rl.data import load_videos

        videos: list[Any] = []
        for path in data:
            videos.extend(load_videos(path, camera=camera))
        return videos
    for i, video in enumerate(data):
        if not hasattr(video, "frames"):
            raise TypeError(f"data[{i}] must be a Video (with .frames) or a path, got {type(video).__name__}")
    return list(data)


def _strided(videos: list[Any], stride: int) -> list[Any]:
    """Every ``stride``-th frame of each video, ending at its last frame (``stride`` 1: the videos as they are)."""
    if stride == 1:
        return videos
    return [dataclasses.replace(v, frames=np.ascontiguousarray(v.frames[(len(v.frames) - 1) % stride :: stride]))
            for v in videos]


def _split_eval(videos: list[Any], count: int, seed: int) -> tuple[list[Any], list[Any]]:
    if count == 0 or len(videos) <= count:
        return videos, list(videos)
    rng = np.random.default_rng([_LOSS_SALT, seed, 7])
    held = set(rng.choice(len(videos), size=count, replace=False).tolist())
    return [v for i, v in enumerate(videos) if i not in held], [v for i, v in enumerate(videos) if i in held]


def _group_key(video: Any) -> str:
    text = getattr(video, "text", None)
    return text if isinstance(text, str) and text else str(getattr(video, "source", ""))


@torch.no_grad()
def evaluate(encoder: Encoder, videos: Sequence[Any], *, groups: Sequence[Any] | None = None) -> dict[str, float]:
    """Value-order correlation on held-out videos.

    For every video: ``voc_own`` uses its own last frame as the goal; ``voc_other`` uses the
    last frame of a *different* video of the same group (default group: the video's text,
    else its source); ``voc_text`` (text-tower encoders) uses the video's text as the goal.

    Returns:
        ``{"voc_own": mean, "voc_other": mean (if any pair exists), "voc_text": mean (if text)}``.
    """
    from vip_rl.diagnostics import spearman

    was_training = encoder.training
    encoder.eval()
    keys = list(groups) if groups is not None else [_group_key(v) for v in videos]
    embeddings = [encoder.encode_images(np.ascontiguousarray(v.frames)) for v in videos]
    own, other, text = [], [], []
    for i, (video, z) in enumerate(zip(videos, embeddings)):
        order = np.arange(z.shape[0])
        own.append(spearman(order, -encoder.distance(z, z[-1:]).cpu().numpy()))
        partners = [j for j in range(len(videos)) if j != i and keys[j] == keys[i]]
        if partners:
            j = next((p for p in partners if p > i), partners[0])  # the next one of the group, cyclically
            other.append(spearman(order, -encoder.distance(z, embeddings[j][-1:]).cpu().numpy()))
        if encoder.has_text and isinstance(getattr(video, "text", None), str):
            goal = encoder.encode_text([video.text])
            text.append(spearman(order, -encoder.distance(z, goal).cpu().numpy()))
    encoder.train(was_training)
    metrics = {"voc_own": float(np.mean(own))}
    if other:
        metrics["voc_other"] = float(np.mean(other))
    if text:
        metrics["voc_text"] = float(np.mean(text))
    return metrics


# --------------------------------------------------------------------------------------------
# model + loss
# --------------------------------------------------------------------------------------------
class ReconDecoder(nn.Module):
    """The auxiliary pixel decoder of ``recon_weight``: embedding ``[B, D]`` -> frame ``[B, 3, S/2, S/2]`` (preprocessed
    pixel space), a linear map to 64 x S/16 x S/16 and three stride-2 transposed convolutions; ``full_size``
    (``recon_full_size``): ``[B, 3, S, S]``, with a fourth (32 -> 16 channels before the last)."""

    def __init__(self, embed_dim: int, image_size: int, full_size: bool = False) -> None:
        super().__init__()
        if image_size % 16:
            raise ValueError(f"recon_weight needs an image_size divisible by 16, got {image_size}")
        self.side = image_size // 16
        self.fc = nn.Linear(embed_dim, 64 * self.side * self.side)
        last = [nn.ReLU(), nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.ReLU(),
                nn.ConvTranspose2d(16, 3, 4, stride=2, padding=1)] if full_size else [
            nn.ReLU(), nn.ConvTranspose2d(32, 3, 4, stride=2, padding=1)]
        self.net = nn.Sequential(
            nn.ReLU(), nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1),
            nn.ReLU(), nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),
            *last,
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(len(z), 64, self.side, self.side))


def recon_loss(decoded: torch.Tensor, pixels: torch.Tensor, first: torch.Tensor | None = None, focus: float = 0.0) -> torch.Tensor:
    """Squared error between ``decoded`` ``[B, 3, S/2, S/2]`` and ``pixels`` ``[B, 3, S, S]`` average-pooled 2x2 (a
    ``decoded`` of side S, ``recon_full_size``: the pixels themselves; in both, ``first`` is pooled as ``pixels``).

    ``focus = 0``: the mean. Else ``(1 - focus) * mean + focus * sum(c * e) / sum(c)``, with ``e`` the squared error per
    pooled pixel (mean over channels) and ``c`` how much that pixel changed from ``first`` (the videos' first frames,
    same shape as ``pixels``): ``|pool(pixels) - pool(first)|``, mean over channels, over the whole batch.
    """
    if pixels.shape[-1] not in (decoded.shape[-1], 2 * decoded.shape[-1]):
        raise ValueError(f"recon_loss decodes at the frames' side or half of it, got {tuple(decoded.shape)} for frames "
                         f"{tuple(pixels.shape)}")
    pool = 1 if pixels.shape[-1] == decoded.shape[-1] else 2
    target = F.avg_pool2d(pixels, pool) if pool > 1 else pixels
    error = (decoded - target) ** 2
    if focus == 0.0:
        return error.mean()
    if first is None:
        raise ValueError("recon_loss with focus > 0 needs the first frames")
    change = (target - (F.avg_pool2d(first, pool) if pool > 1 else first)).abs().mean(1)  # [B, side, side]
    focused = (change * error.mean(1)).sum() / change.sum().clamp(min=1e-6)
    return (1.0 - focus) * error.mean() + focus * focused


class _TrainModule(nn.Module):
    """What DDP wraps: images (and texts) -> embeddings in one forward, so DDP sees every used parameter; with a
    ``decoder``, also the reconstruction of the first ``recon`` images from their embeddings."""

    def __init__(self, encoder: Encoder, decoder: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, pixels: torch.Tensor, texts: list[str] | None,
                recon: int = 0) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        images = self.encoder(pixels)
        text = self.encoder.text(texts) if texts is not None else None
        decoded = self.decoder(images[:recon]) if recon and self.decoder is not None else None
        return images, text, decoded


def _spare_cores(device: torch.device) -> bool:
    """Is there a core beside each torch thread of each local rank (``LOCAL_WORLD_SIZE``)? CPU only: on CUDA the two
    threads would queue on one stream."""
    if SIDE_THREADS is not None:
        return SIDE_THREADS
    if device.type != "cpu":
        return False
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores >= 2 * torch.get_num_threads() * int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


@contextlib.contextmanager
def _side_threads(device: torch.device, workers: int = 1) -> Iterator[ThreadPoolExecutor | None]:
    """``workers`` threads for work beside the main thread when :func:`_spare_cores`, else None (the caller runs it in
    turn). Each runs torch ops on the caller's torch thread count: the same kernels, so the same bits."""
    if not _spare_cores(device):
        yield None
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="vip-rl-side", initializer=torch.set_num_threads,
                              initargs=(torch.get_num_threads(),))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True)


def _loss_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(int(np.random.default_rng([_LOSS_SALT, seed, step]).integers(0, 2**62)))
    return generator


def _tdist_loss(
    model: nn.Module, encoder: Encoder, target: nn.Module, batch: TupleBatch, config: PretrainConfig, dist: _Dist,
    device: torch.device, goal_ok: np.ndarray,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Temporal-distance loss: online (s, g), target (s, s', g) and, with a text tower, the text regression."""
    from vip_rl.objectives import temporal_distance_loss

    parts = [batch.current, batch.goal]
    pixels = encoder.preprocess(torch.cat(parts, 0))
    with_text = encoder.has_text and batch.text is not None and batch.text_frame is not None
    recon = len(batch.current) if config.recon_weight > 0 else 0
    images, text, decoded = model(pixels, batch.text if with_text else None, recon)
    with torch.no_grad():
        extra = [batch.next] + ([batch.text_frame] if with_text else [])
        target_out = target(torch.cat([pixels, encoder.preprocess(torch.cat(extra, 0))], 0))
    online = [dist.gather(c) for c in images.chunk(2, 0)]
    fixed = [dist.gather(c) for c in target_out.chunk(len(parts) + len(extra), 0)]
    loss, metrics = temporal_distance_loss(
        online[0], online[1], fixed[0], fixed[2], fixed[1], gamma=config.gamma, expectile=config.expectile,
        heads=config.value_heads, is_goal=dist.gather(batch.is_goal.to(device)),
        next_is_goal=None if batch.next_is_goal is None else dist.gather(batch.next_is_goal.to(device)),
    )
    if with_text:
        assert text is not None  # internal: the model embeds texts whenever with_text
        ok = torch.from_numpy(goal_ok[batch.video_index.numpy()]).to(device)
        ok = dist.gather(ok.float())
        sq = ((dist.gather(text) - fixed[3]) ** 2).sum(-1)  # [B]: squared distance instruction -> goal frame
        text_loss = (sq * ok).sum() / ok.sum().clamp(min=1.0)
        loss = loss + config.text_weight * text_loss
        metrics["text_loss"] = text_loss.detach()
        metrics["loss"] = loss.detach()
    if decoded is not None:  # this rank's frames: a per-rank mean, which DDP averages like the other terms' gradients
        first = encoder.preprocess(batch.initial) if config.recon_focus > 0 else None
        pixel_loss = recon_loss(decoded, pixels[:recon], first, float(config.recon_focus))
        loss = loss + config.recon_weight * pixel_loss
        metrics["recon_loss"] = pixel_loss.detach()
        metrics["loss"] = loss.detach()
    return loss, metrics


def _compute_loss(
    model: nn.Module, encoder: Encoder, batch: TupleBatch, config: PretrainConfig, dist: _Dist, device: torch.device,
    *, target: nn.Module | None = None, goal_ok: np.ndarray | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Embed this rank's slice, gather the global batch and evaluate the objective on it."""
    from vip_rl.objectives import liv_loss, vip_loss

    if config.objective == "tdist":
        assert target is not None and goal_ok is not None  # internal: the trainer passes both for tdist
        return _tdist_loss(model, encoder, target, batch, config, dist, device, goal_ok)

    parts = [batch.initial, batch.goal, batch.current, batch.next]
    if batch.text_frame is not None and config.objective == "liv":
        parts.append(batch.text_frame)
    pixels = encoder.preprocess(torch.cat(parts, 0))
    texts = batch.text if config.objective == "liv" else None
    images, text, _ = model(pixels, texts)
    chunks = [dist.gather(c) for c in images.chunk(len(parts), 0)]
    is_goal = dist.gather(batch.is_goal.to(device))
    generator = _loss_generator(config.seed, batch.step, device)
    if config.objective == "vip":
        return vip_loss(
            chunks[0], chunks[1], chunks[2], chunks[3], gamma=config.gamma, is_goal=is_goal,
            num_negatives=config.num_negatives, generator=generator,
            l1_weight=config.l1_weight, l2_weight=config.l2_weight,
        )
    assert text is not None  # internal: LIV batches always carry text (sampler built with_text)
    return liv_loss(
        chunks[0], chunks[1], chunks[2], chunks[3], dist.gather(text),
        e_text_frame=chunks[4] if len(chunks) == 5 else None,
        gamma=config.gamma, is_goal=is_goal, num_negatives=config.num_negatives, generator=generator,
        vip_weight=config.vip_weight, text_weight=config.text_weight, nce_weight=config.nce_weight,
        temperature=config.temperature, labels=dist.gather(batch.label.to(device)), metric="cos",
    )


def _build_encoder(config: PretrainConfig, init_from: str | os.PathLike[str] | None, device: torch.device) -> Encoder:
    """The encoder to train, with ``requires_grad`` set by ``config.freeze_text`` / ``config.train_blocks``."""
    encoder = _initial_encoder(config, init_from, device)
    arch = encoder.config.get("arch")
    if config.train_blocks and arch != "clip":
        raise ValueError(f"train_blocks={config.train_blocks} applies to CLIP encoders (init_from a LIV or CLIP checkpoint), "
                         f"got arch={arch!r}; use train_blocks=0")
    if config.freeze_text and not encoder.has_text:
        raise ValueError(f"freeze_text=True needs an encoder with a text tower, got arch={arch!r} without one")
    if arch == "clip":
        from vip_rl.encoders.clip import set_trainable_blocks

        set_trainable_blocks(encoder.vision, encoder.text, config.train_blocks, freeze_text=config.freeze_text)  # type: ignore[arg-type]
    elif config.freeze_text:
        assert encoder.text is not None  # internal: checked above
        encoder.text.requires_grad_(False)
    return encoder


def _initial_encoder(config: PretrainConfig, init_from: str | os.PathLike[str] | None, device: torch.device) -> Encoder:
    from vip_rl.encoders import build_encoder, load_encoder

    if init_from is None:
        return build_encoder(
            config.arch, metric=config.metric, embed_dim=config.embed_dim, image_size=config.image_size,
            text=config.text_tower, seed=config.seed, device=device,
            cnn_channels=config.cnn_channels if config.arch == "cnn" else None,
            head_hidden=config.head_hidden or None,
        )
    path = Path(init_from)
    if path.is_dir() and (path / CHECKPOINT_FILE).is_file():
        init_from = path / CHECKPOINT_FILE
    encoder = load_encoder(init_from, device=device)
    if encoder.metric != config.metric:
        raise ValueError(
            f"init_from={str(init_from)!r} was trained with metric {encoder.metric!r}, but objective={config.objective!r} "
            f"trains metric {config.metric!r}"
        )
    if config.objective == "liv" and not encoder.has_text:
        raise ValueError(f"init_from={str(init_from)!r} has no text tower; objective='liv' needs one")
    return encoder


# --------------------------------------------------------------------------------------------
# checkpoints + logs
# --------------------------------------------------------------------------------------------
def _save_checkpoint(path: Path, *, encoder: Encoder, optimizer: torch.optim.Optimizer, step: int, config: PretrainConfig, sampler: TupleSampler, init_from: str | None,
                     target: nn.Module | None = None, decoder: nn.Module | None = None, train_seconds: float = 0.0,
                     code: Sequence[dict[str, Any]] = ()) -> None:
    state = {
        "format": CHECKPOINT_FORMAT,
        "version": __version__,
        "step": int(step),
        "config": dict(encoder.config),  # the encoder config: load_encoder() reads this file directly
        "model": {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "pretrain_config": json.dumps(config.to_dict()),
        "sampler": json.dumps({**sampler.state_dict(), "next_step": int(step), "data_fingerprint": sampler.fingerprint()}),
        "torch_rng": _loss_generator(config.seed, step, torch.device("cpu")).get_state(),
        "init_from": init_from or "",
        "train_seconds": float(train_seconds),  # wall seconds of every call that trained this run so far
        "code": list(code),  # the code of each call that trained steps of this run (_code_history)
    }
    if target is not None:
        state["target"] = {k: v.detach().cpu().clone() for k, v in target.state_dict().items()}
    if decoder is not None:
        state["decoder"] = {k: v.detach().cpu().clone() for k, v in decoder.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


#: Stands in the code history for the steps of a checkpoint written before checkpoints recorded their code.
UNKNOWN_CODE: dict[str, Any] = {"sources_sha256": None, "git_commit": None, "git_dirty": None}


def _code_history(before: Sequence[dict[str, Any]], trained: bool) -> list[dict[str, Any]]:
    """The code of every call that trained steps of a run, oldest first: ``before`` (the resumed checkpoint's), then
    this call's when it trained (``trained``) and differs from the last. A finished run called again trains nothing
    and names the code that trained it, not the code that called it."""
    now = code_version()
    return [*before, now] if trained and (not before or before[-1] != now) else list(before)


def _load_checkpoint(path: Path) -> dict[str, Any]:
    from vip_rl.encoders.checkpoint import load_torch_file

    state = load_torch_file(path)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a vip-rl pretraining checkpoint (format {state.get('format') if isinstance(state, dict) else None!r}, expected {CHECKPOINT_FORMAT!r})")
    return state


class _Logger:
    """CSV (``step,tag,value``) + optional TensorBoard; rank 0 only."""

    def __init__(self, out_dir: Path, *, start_step: int, enabled: bool) -> None:
        self.enabled = enabled
        self.tb = None
        if not enabled:
            return
        self.path = out_dir / LOG_FILE
        rows: list[list[str]] = []
        if self.path.is_file() and start_step > 0:
            # keep what the resumed checkpoint had seen; drop rows logged after it by the killed run
            with open(self.path, newline="") as handle:
                rows = [r for r in list(csv.reader(handle))[1:] if r and int(r[0]) <= start_step]
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(["step", "tag", "value"])
        writer.writerows(rows)
        atomic_write_text(self.path, text.getvalue())
        self.handle = open(self.path, "a", newline="")
        self.writer = csv.writer(self.handle)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out_dir / "tb"), purge_step=start_step if start_step > 0 else None)
        except ImportError:
            print("vip-rl pretrain: tensorboard not installed, logging to CSV only (pip install vip-rl[tensorboard])", file=sys.stderr)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        for tag, value in metrics.items():
            self.writer.writerow([step, tag, f"{value:.6g}"])
            if self.tb is not None:
                self.tb.add_scalar(tag, value, step)
        self.handle.flush()

    def close(self) -> None:
        if self.enabled:
            self.handle.close()
            if self.tb is not None:
                self.tb.close()


# --------------------------------------------------------------------------------------------
# the trainer
# --------------------------------------------------------------------------------------------
def pretrain(
    config: PretrainConfig,
    data: Any,
    *,
    out_dir: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    init_from: str | os.PathLike[str] | None = None,
    resume: bool = True,
    eval_data: Any = None,
    camera: str | None = None,
    groups: Sequence[Any] | None = None,
    final_goal_ok: Sequence[bool] | None = None,
    source_weights: dict[str, float] | None = None,
    goal_swap_prob: float = 0.0,
    progress: bool = True,
    stop_after: int | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> Encoder:
    """Train a VIP or LIV encoder on videos; return it (in eval mode, on ``device``).

    Args:
        config: the run's :class:`PretrainConfig`.
        data: a path (anything ``vip_rl.data.load_videos`` reads: suite/D4RL HDF5, mp4/gif
            file or folder, frame folders, .npy/.npz, LIV manifest), a list of paths, or a
            list of ``Video``. LIV needs a text per video.
        out_dir: where ``checkpoint.pt``, ``log.csv``, ``tb/`` and the exported ``encoder/`` go.
        device: ``"cpu"``, ``"cuda"``, ... (under torchrun with CUDA: ``cuda:LOCAL_RANK``).
        init_from: fine-tune from this encoder (bundled name, ``save_encoder`` dir, ``.pt``
            incl. another run's ``checkpoint.pt`` or its directory, official VIP file).
        resume: continue from ``<out_dir>/checkpoint.pt`` if present (exact: same weights as
            an uninterrupted run). ``False`` starts over and overwrites it.
        eval_data: held-out videos (same forms as ``data``); default: ``config.eval_videos``
            videos split off ``data`` (the training videos themselves, with a warning, when
            ``eval_videos=0`` or ``data`` has no more videos than that).
        camera: camera read from suite HDF5 files (None: each episode's only camera, else ``"front"``).
        groups: optional per-video group key of ``data`` (e.g. task) for InfoNCE labels and
            the eval's "other episode of the same group" goal (default: text, else source);
            only with a list of ``Video`` when no ``eval_data`` is given.
        final_goal_ok: per-video flag for ``config.final_goal_prob`` (e.g. successful episodes).
        source_weights: optional ``{source: weight}`` mixing of videos from different sources.
        goal_swap_prob: swap final-frame goals for other successful episodes' final frames of
            the same group (see :class:`~vip_rl.data.samplers.TupleSampler`).
        progress: show a tqdm bar (rank 0).
        stop_after: stop this call after this many steps (a time slice; resume continues).
        on_step: optional callback ``(step, metrics)`` after every optimizer step (rank 0).

    Returns:
        The trained :class:`Encoder`.

    Raises:
        ValueError / TypeError / FileNotFoundError: bad config, data, paths or checkpoints.

    Warns:
        EvalOnTrainingVideosWarning: no eval videos are held out (see the module docstring).
    """
    from vip_rl.encoders import save_encoder
    from vip_rl.encoders.factory import check_device

    if not isinstance(config, PretrainConfig):
        raise TypeError(f"config must be a PretrainConfig, got {type(config).__name__}")
    if stop_after is not None and (isinstance(stop_after, bool) or not isinstance(stop_after, int) or stop_after <= 0):
        raise ValueError(f"stop_after must be None or a positive int, got {stop_after!r}")
    device = check_device(device)
    call_start = time.perf_counter()
    dist, device = _setup_distributed(device)
    out = Path(out_dir)
    try:
        # --- seed + data ---------------------------------------------------------------
        videos = _strided(_as_videos(data, camera=camera), config.frame_stride)
        for name, per_video in (("groups", groups), ("final_goal_ok", final_goal_ok)):
            if per_video is not None and len(per_video) != len(videos):
                raise ValueError(f"{name} must have one entry per video ({len(videos)}), got {len(per_video)}")
        if eval_data is not None:
            train_idx, eval_idx = list(range(len(videos))), []
            eval_videos = _strided(_as_videos(eval_data, camera=camera), config.frame_stride)
        else:  # hold out config.eval_videos videos (all videos are also eval videos when there are too few)
            train_idx, eval_idx = _split_eval(list(range(len(videos))), config.eval_videos, config.seed)
            eval_videos = [videos[i] for i in eval_idx]
        eval_on_training = eval_data is None and (config.eval_videos == 0 or len(videos) <= config.eval_videos)
        eval_groups = None
        if eval_idx and (groups is not None or final_goal_ok is not None):
            # "other episode" goals only between videos whose final frame is a valid goal
            keys = list(groups) if groups is not None else [_group_key(v) for v in videos]
            ok = list(final_goal_ok) if final_goal_ok is not None else [True] * len(videos)
            eval_groups = [keys[i] if ok[i] else f"__no_goal_{i}" for i in eval_idx]
        pick = lambda seq: None if seq is None else [seq[i] for i in train_idx]  # noqa: E731
        # --- build ---------------------------------------------------------------------
        encoder = _build_encoder(config, init_from, device)
        tdist = config.objective == "tdist"
        sampler = TupleSampler(
            [videos[i] for i in train_idx], batch_size=config.batch_size, image_size=encoder.image_size,
            crop_scale=config.crop_scale, goal_mode="geometric" if tdist else config.goal_mode, final_goal_prob=config.final_goal_prob,
            geometric_p=1.0 - config.gamma, random_goal_prob=config.random_goal_prob if tdist else 0.0,
            final_goal_ok=pick(final_goal_ok), with_text=config.objective == "liv" or (tdist and encoder.has_text), groups=pick(groups),
            source_weights=source_weights, goal_swap_prob=goal_swap_prob, channel_shuffle_prob=config.channel_shuffle_prob,
            colour_gain_prob=config.colour_gain_prob, colour_gain_range=config.colour_gain_range, seed=config.seed, rank=dist.rank, world_size=dist.world_size,
        )
        target: nn.Module | None = None
        if tdist:
            import copy

            target = copy.deepcopy(encoder.vision).requires_grad_(False)
        decoder: nn.Module | None = None
        if config.recon_weight > 0:
            with torch.random.fork_rng(devices=[]):  # seeded, and the global stream stays as it was
                torch.manual_seed(config.seed)
                decoder = ReconDecoder(encoder.embed_dim, encoder.image_size, config.recon_full_size).to(device)
        params = [p for p in encoder.parameters() if p.requires_grad] + (list(decoder.parameters()) if decoder is not None else [])
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay) if config.weight_decay else torch.optim.Adam(params, lr=config.lr)
        start_step = 0
        seconds_before = 0.0  # wall seconds of the earlier calls that trained this run (a resumed run)
        code_before: list[dict[str, Any]] = []  # the code of the earlier calls that trained it (_code_history)
        ckpt_path = out / CHECKPOINT_FILE
        if resume and ckpt_path.is_file():
            state = _load_checkpoint(ckpt_path)
            saved_arch = (state.get("config") or {}).get("arch")
            if saved_arch != encoder.config.get("arch"):
                raise ResumeMismatchError(f"{ckpt_path}: the checkpoint's encoder has arch={saved_arch!r} (init_from={state.get('init_from') or None!r}), "
                                          f"this run builds arch={encoder.config.get('arch')!r}", "pass the same {init_from} to resume, or {no_resume}")
            saved = PretrainConfig.from_dict(json.loads(state["pretrain_config"]))
            if saved.to_dict() != config.to_dict():
                diff = {k: (v, config.to_dict()[k]) for k, v in saved.to_dict().items() if config.to_dict()[k] != v}
                if set(diff) - {"steps", "eval_every", "ckpt_every", "log_every", "prefetch"} or (saved.lr_schedule != "constant" and "steps" in diff):
                    raise ResumeMismatchError(f"{ckpt_path}: checkpoint config differs from this run's (checkpoint, now): {diff}",
                                              "pass {no_resume} or another {out}")
            saved_data = json.loads(state["sampler"]).get("data_fingerprint")
            if saved_data is not None and saved_data != sampler.fingerprint():
                raise ResumeMismatchError(f"{ckpt_path}: the checkpoint was trained on other videos (data fingerprint {saved_data} != {sampler.fingerprint()})",
                                          "pass the same {data}, {no_resume} or another {out}")
            encoder.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if target is not None:
                if "target" not in state:
                    raise ValueError(f"{ckpt_path}: a tdist checkpoint must hold the target network ('target'), it has keys {sorted(state)}")
                target.load_state_dict(state["target"])
            if decoder is not None:
                if "decoder" not in state:
                    raise ValueError(f"{ckpt_path}: a recon_weight > 0 checkpoint must hold the decoder ('decoder'), it has keys {sorted(state)}")
                decoder.load_state_dict(state["decoder"])
            start_step = int(state["step"])
            seconds_before = float(state.get("train_seconds", 0.0))  # absent in checkpoints of older versions
            code_before = list(state.get("code") or ([UNKNOWN_CODE] if start_step else []))
        if dist.is_main:
            out.mkdir(parents=True, exist_ok=True)
        model: nn.Module = _TrainModule(encoder, decoder)
        if dist.world_size > 1:
            model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        logger = _Logger(out, start_step=start_step, enabled=dist.is_main)
        seconds_so_far = seconds_before  # what the last checkpoint records (a finished run called again: unchanged)
        end_step = config.steps if stop_after is None else min(config.steps, start_step + stop_after)
        if eval_on_training and dist.is_main:  # warned once the inputs are known good, before the first step
            why = ("eval_videos=0" if config.eval_videos == 0 else
                   f"{len(videos)} video{'' if len(videos) == 1 else 's'}, not more than eval_videos={config.eval_videos}, "
                   "so none is held out")
            warnings.warn(f"pretrain evaluates on its training videos ({why}): the eval/ metrics measure fit, not "
                          "generalisation to new videos; give held-out videos (eval_data, --eval-data) or more than "
                          "eval_videos videos", EvalOnTrainingVideosWarning, stacklevel=2)
        # --- loop ----------------------------------------------------------------------
        encoder.train()
        batches = sampler.iterate(start_step, prefetch=config.prefetch)
        bar = None
        if progress and dist.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(total=config.steps, initial=start_step, desc=f"pretrain {config.objective}", dynamic_ncols=True)
        sums: dict[str, float] = {}
        window_start, data_time, window_steps = time.perf_counter(), 0.0, 0
        step = start_step
        while step < end_step:
            tic = time.perf_counter()
            batch = next(batches)
            data_time += time.perf_counter() - tic
            loss, metrics = _compute_loss(model, encoder, batch, config, dist, device, target=target, goal_ok=sampler.final_goal_ok)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for group in optimizer.param_groups:
                group["lr"] = config.lr_at(step)
            optimizer.step()
            if target is not None:
                polyak_update(target, encoder.vision, config.target_tau)
            step += 1
            window_steps += 1
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + float(value)
            if step % config.log_every == 0 or step == end_step:
                elapsed = time.perf_counter() - window_start
                train = {f"train/{k}": v / window_steps for k, v in sums.items()}
                train["train/samples_per_s"] = window_steps * config.batch_size / max(elapsed, 1e-9)
                train["train/data_time_share"] = data_time / max(elapsed, 1e-9)
                logger.log(step, train)
                if bar is not None:
                    bar.set_postfix(loss=f"{train['train/loss']:.4f}", samples_s=f"{train['train/samples_per_s']:.0f}", data=f"{train['train/data_time_share']:.0%}")
                if on_step is not None and dist.is_main:
                    on_step(step, train)
                sums, window_start, data_time, window_steps = {}, time.perf_counter(), 0.0, 0
            if bar is not None:
                bar.update(1)
            # --- periodic eval + checkpoint -----------------------------------------------
            last = step == config.steps
            if dist.is_main and ((config.eval_every and step % config.eval_every == 0) or last):
                eval_metrics = {f"eval/{k}": v for k, v in evaluate(encoder, eval_videos, groups=eval_groups).items()}
                logger.log(step, eval_metrics | {"eval/on_training_videos": float(eval_on_training)})
                encoder.train()
            if (config.ckpt_every and step % config.ckpt_every == 0) or step == end_step:
                if dist.is_main:
                    seconds_so_far = seconds_before + time.perf_counter() - call_start
                    _save_checkpoint(ckpt_path, encoder=encoder, optimizer=optimizer, step=step, config=config, sampler=sampler, init_from=None if init_from is None else str(init_from), target=target,
                                     decoder=decoder, train_seconds=seconds_so_far,
                                     code=_code_history(code_before, step > start_step))
                dist.barrier()
        batches.close()
        if bar is not None:
            bar.close()
        logger.close()
        encoder.eval()
        if dist.is_main and step == config.steps:
            # train_seconds: every call that trained this run, resumed slices included, as the last checkpoint holds them
            # (a finished run called again adds nothing: a recipe resumed over finished stages keeps their times); also
            # left in encoder.config["training"] for the caller (weights_recipe's records)
            # code: the code that trained the last steps; code_earlier: that of earlier calls, where they differ
            codes = _code_history(code_before, step > start_step)  # never empty: steps >= 1, a resumed run has its own
            training = {"pretrain_config": config.to_dict(), "steps": step, "init_from": None if init_from is None else str(init_from),
                        "eval_on_training_videos": eval_on_training, "version": __version__, "code": codes[-1],
                        **({"code_earlier": codes[:-1]} if len(codes) > 1 else {}),
                        "train_seconds": round(seconds_so_far, 1)}
            save_encoder(encoder, out / "encoder", training=training)
            encoder.config["training"] = training
        dist.barrier()
        return encoder
    finally:
        dist.close()


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TextFitConfig:
    """:func:`fit_text_tower`: fit an encoder's text tower onto its own (frozen) image tower.

    The loss is ``goal_weight * mean d(psi(text), phi(g))`` over goal frames ``g`` (the instruction's median goal)
    plus ``value_weight * expectile-weighted (d(psi(text), phi(s)) - (1 - gamma^n) / (1 - gamma))^2`` over the
    frames ``s`` of successful videos, ``n`` the steps ``s`` still takes to the video's end: the instruction's
    distance to a frame then counts that frame's steps to success, in the (discounted) step units of a ``tdist``
    image tower. The defaults are the goal term alone (``value_weight=0``)."""

    steps: int = 3000
    """Adam steps on (instruction, frame embedding) pairs."""
    lr: float = 1e-3
    batch_size: int = 256
    goal_fraction: float = 0.05
    """Goal frames of a video: its last ``ceil(goal_fraction * T)`` frames (the tdist text term's rule)."""
    seed: int = 0
    """Seeds the fresh initialisation of the projection and the batches."""
    reinit: bool = True
    """Start the text tower's projection (``proj``: the MiniLM and hashing towers' trainable head) afresh, so the
    result depends only on the image tower, the videos and ``seed``; False continues from its current weights
    (a CLIP text transformer, which has no separate head, can only be fitted that way)."""
    goal_weight: float = 1.0
    """Weight of the mean distance to the goal frames."""
    value_weight: float = 0.0
    """Weight of the steps-to-success regression on every ``frame_stride``-th frame of the successful videos
    (0: only goal frames are used)."""
    gamma: float = 0.99
    """Discount of the step counts: the image tower's ``tdist`` gamma, whose distances are discounted steps."""
    expectile: float = 0.7
    """Expectile of the regression: above 0.5 an over-long distance costs more than a short one, since a video's
    steps (noisy, detour, play) over-count the shortest path (the tdist objective's reading of the data)."""
    frame_stride: int = 2
    """Every ``frame_stride``-th frame of a successful video (and its last) enters the regression."""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "frame_stride"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not (self.lr > 0 and np.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not 0 < self.goal_fraction <= 1:
            raise ValueError(f"goal_fraction must be in (0, 1], got {self.goal_fraction!r}")
        for name in ("goal_weight", "value_weight"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.goal_weight == 0 and self.value_weight == 0:
            raise ValueError("goal_weight and value_weight are both 0: nothing to fit")
        if not 0 < self.gamma < 1:
            raise ValueError(f"gamma must be in (0, 1), got {self.gamma!r}")
        if not 0 < self.expectile < 1:
            raise ValueError(f"expectile must be in (0, 1), got {self.expectile!r}")


@contextlib.contextmanager
def _deterministic_kernels() -> Iterator[None]:
    """PyTorch's deterministic kernels for the block, then the caller's setting back. The text fit needs them to be
    reproducible: without them two fits of one seed on one machine drifted apart (1e-6 in a weight after 300 steps,
    0.2 after 4000), so ``make weights`` gave another text tower every time. ``warn_only``: an op with no deterministic
    kernel (some CUDA ones) warns instead of failing. Bit for bit needs the same thread count too."""
    enabled, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def fit_text_tower(
    encoder: Encoder,
    videos: Sequence[Any],
    *,
    final_goal_ok: Sequence[bool],
    config: TextFitConfig = TextFitConfig(),
) -> dict[str, float]:
    """Fit ``encoder``'s text tower so that an instruction lands where its successful videos say, under the
    *final* image tower (frozen; nothing else changes).

    During ``tdist`` pretraining the text tower chases the target network's goal frames, a moving target; a later
    stage (a fine-tune) moves the image tower again. This refit starts the tower's trainable parameters afresh
    (seeded) and minimises :class:`TextFitConfig`'s loss: the mean distance to the goal frames (for an L2 metric
    the instruction lands on the geometric median of its goal frames) and, with ``value_weight``, a regression of
    the instruction's distance to every frame onto that frame's discounted steps to success, so that the
    distance to an instruction reads like the distance to a goal image all along the way (LIV's text value, fitted
    in the image tower's metric). Fast: the frames are embedded once, then it trains on vectors.

    Args:
        encoder: an encoder with a text tower (modified in place).
        videos: :class:`~vip_rl.data.Video` s with ``text``; only those with ``final_goal_ok`` are used.
        final_goal_ok: per video, whether it ends where the instruction is done (a successful demo).
        config: :class:`TextFitConfig`.

    Returns:
        ``{"pairs", "goal_pairs", "instructions", "loss_before", "loss_after", "goal_distance_before",
        "goal_distance_after", "seconds"}`` (losses: the fitted loss over all pairs; goal distances: the mean
        distance to the goal frames).

    Raises:
        ValueError: an encoder without a text tower, ``final_goal_ok`` of another length, or no successful video
            with an instruction.
    """
    from vip_rl.objectives import expectile_weight

    start = time.perf_counter()
    if not encoder.has_text:
        raise ValueError(f"encoder {encoder.config.get('name', '<unnamed>')!r} has no text tower to fit")
    if len(final_goal_ok) != len(videos):
        raise ValueError(f"final_goal_ok must have one flag per video ({len(videos)}), got {len(final_goal_ok)}")
    texts: list[str] = []
    embeddings: list[torch.Tensor] = []
    steps_left: list[np.ndarray] = []
    is_goal: list[np.ndarray] = []
    was_training = encoder.training
    encoder.eval()
    if hasattr(encoder.text, "clear_cache"):  # embed the instructions afresh, in the fit's own batches (bit for bit)
        encoder.text.clear_cache()
    for video, ok in zip(videos, final_goal_ok):
        text = getattr(video, "text", None)
        if not ok or not text:
            continue
        frames = np.asarray(video.frames)
        length = len(frames)
        first_goal = length - max(1, int(np.ceil(config.goal_fraction * length)))
        index = np.arange(first_goal, length)  # the goal frames, then (with the regression) every stride-th frame
        if config.value_weight > 0:
            index = np.union1d(np.arange(0, first_goal, config.frame_stride), index)
        embeddings.append(encoder.encode_images(frames[index]))
        texts += [str(text)] * len(index)
        steps_left.append(length - 1 - index)
        is_goal.append(index >= first_goal)
    if not texts:
        raise ValueError("fit_text_tower needs at least one video with an instruction (text) and final_goal_ok=True")
    frame = torch.cat(embeddings)
    device = frame.device
    steps = torch.as_tensor(np.concatenate(steps_left), dtype=torch.float64)
    target = ((1 - config.gamma ** steps) / (1 - config.gamma)).to(device, frame.dtype)
    goal_mask = torch.as_tensor(np.concatenate(is_goal), device=device)
    params = [p for p in encoder.text.parameters() if p.requires_grad]
    if config.reinit:
        head = getattr(encoder.text, "proj", None)
        if not isinstance(head, nn.Module):
            raise ValueError(f"reinit=True needs a text tower with a projection head (proj), got {type(encoder.text).__name__}; "
                             "pass TextFitConfig(reinit=False) to fit it from its current weights")
        with torch.random.fork_rng(devices=[]):  # a seeded fresh start that leaves the global RNG alone
            torch.manual_seed(config.seed)
            for module in head.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(params, lr=config.lr)

    def loss_of(distance: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        goal = goal_mask[index]
        loss = config.goal_weight * (distance * goal).sum() / goal.sum().clamp_min(1)
        if config.value_weight > 0:
            error = distance - target[index]  # a distance too long (error > 0) weighs ``expectile``
            loss = loss + config.value_weight * (expectile_weight(error, config.expectile) * error**2).mean()
        return loss

    instructions = sorted(set(texts))  # each step embeds every instruction once, then indexes the pairs
    which = torch.as_tensor([instructions.index(t) for t in texts], device=device)

    def evaluate() -> tuple[float, float]:
        with torch.no_grad():
            distance = encoder.distance(encoder.encode_text(instructions)[which], frame)
            return float(loss_of(distance, torch.arange(len(texts), device=device))), float(distance[goal_mask].mean())

    loss_before, goal_before = evaluate()
    encoder.text.train()
    with _deterministic_kernels():
        for _ in range(config.steps):
            index = torch.randint(len(texts), (config.batch_size,), generator=generator).to(device)
            predicted = encoder.encode_text(instructions, grad=True)[which[index]]
            loss = loss_of(encoder.distance(predicted, frame[index]), index)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    encoder.train(was_training)
    loss_after, goal_after = evaluate()
    return {"pairs": len(texts), "goal_pairs": int(goal_mask.sum()), "instructions": len(instructions),
            "loss_before": loss_before, "loss_after": loss_after, "goal_distance_before": goal_before,
            "goal_distance_after": goal_after, "seconds": time.perf_counter() - start}


@dataclass(frozen=True)
class ValueHeadConfig:
    """:func:`fit_value_head`: a temporal-distance value MLP on a trained CNN's frozen features (issue 17, session 39).

    The objective, goals and target network are the ``tdist`` pretraining's (:func:`~vip_rl.objectives.temporal_distance_loss`,
    :class:`~vip_rl.data.TupleSampler`'s geometric goals with ``random_goal_prob`` random ones and the goal swap); the
    input is each frame's feature vector (and those of ``views - 1`` crops of it), embedded once, without colour
    changes."""

    steps: int = 20000
    batch_size: int = 256
    lr: float = 3e-4
    hidden: tuple[int, ...] = (512, 512)
    """Hidden widths of the value MLP (Linear + LayerNorm + GELU per layer, as HILP's state-based value)."""
    dim: int = 64
    """Its output dimension, the value embedding's."""
    gamma: float = 0.99
    expectile: float = 0.7
    value_heads: int = 2
    target_tau: float = 0.005
    random_goal_prob: float = 0.375
    goal_swap_prob: float = 0.5
    seed: int = 0
    """Seeds the MLP's initialisation, the batches and the crops."""
    views: int = 1
    """Feature vectors per frame: the frame itself and ``views - 1`` random-resized crops of it (``crop_scale``, the
    pixel sampler's parametrisation), each embedded once; every step reads one view per frame of a tuple, drawn
    independently, so the value learns to read small shifts of the same frame as near. 1: the frames only."""
    crop_scale: tuple[float, float] = (0.85, 1.0)
    """Area fraction of those crops (the td-sim pixel stages'); unused when ``views == 1``."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "crop_scale", tuple(float(v) for v in self.crop_scale))  # a list from to_dict's JSON
        if len(self.crop_scale) != 2 or not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {self.crop_scale!r}")
        for name in ("steps", "batch_size", "dim", "value_heads", "views"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be positive ints, got {self.hidden!r}")
        if self.dim % self.value_heads:
            raise ValueError(f"value_heads={self.value_heads} must divide dim={self.dim}")
        if not (self.lr > 0 and np.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not 0 < self.gamma < 1:
            raise ValueError(f"gamma must be in (0, 1), got {self.gamma!r}")
        if not 0.5 <= self.expectile < 1:
            raise ValueError(f"expectile must be in [0.5, 1), got {self.expectile!r}")
        if not 0 < self.target_tau <= 1:
            raise ValueError(f"target_tau must be in (0, 1], got {self.target_tau!r}")
        for name in ("random_goal_prob", "goal_swap_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


@torch.no_grad()
def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """Move each of ``target``'s parameters a share ``tau`` of the way to ``online``'s (the temporal-distance target
    network, updated after every step)."""
    for p_target, p_online in zip(target.parameters(), online.parameters()):
        p_target.lerp_(p_online, tau)


def _cnn_config(config: dict[str, Any]) -> dict[str, Any]:
    """An encoder's ``config`` without what a new encoder on the same CNN does not inherit: the training record, the
    exported width, the text tower (fitted on its own, :func:`fit_text_tower`) and the value head (fitted again). The
    base of :func:`fit_value_head`'s output and of ``benchmarks/recipe_speed.py``'s encoder without its value head."""
    return {key: value for key, value in config.items()
            if key not in ("training", "embed_dim_out", "text", "text_hidden", "text_buckets", "value_dim", "value_hidden")}


def _feature_scale(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The value head's input standardisation: each column's mean and standard deviation (plus 1e-3, so a constant
    feature stays finite) over the rows of ``flat`` [N, F]."""
    return flat.mean(0), flat.std(0) + 1e-3


@torch.no_grad()
def cnn_features(encoder: Encoder, frames: Any, *, batch_size: int = 256) -> torch.Tensor:
    """The last hidden layer of a SmallCNN encoder's MLP head for uint8 frames ``[T, H, W, 3]``: float ``[T, F]``
    (the input of :func:`fit_value_head`'s MLP)."""
    vision = encoder.vision
    frames = np.asarray(frames)
    chunks = [vision.features(vision.convs(encoder.preprocess(frames[i : i + batch_size])).flatten(1))
              for i in range(0, len(frames), batch_size)]
    return torch.cat(chunks) if chunks else torch.zeros(0, vision.head[-1].in_features)


def fit_value_head(
    encoder: Encoder,
    videos: Sequence[Any],
    *,
    groups: Sequence[Any],
    final_goal_ok: Sequence[bool],
    config: ValueHeadConfig = ValueHeadConfig(),
    progress: bool = False,
) -> tuple[Encoder, dict[str, Any]]:
    """A temporal-distance value head on ``encoder``'s frozen features: a new encoder whose embedding is the old one
    followed by the value MLP's output, both scaled by ``1 / sqrt(2)`` (its distance is the root mean square of the two
    parts' distances, in steps).

    Why (issue 17, session 39): td-sim's pixel value reads PushBlock's decoy (the gripper at the goal pose, the block
    untouched) about 10 steps from the goal where the expert needs 35, yet the same objective, goals and videos on the
    true simulator state read 30, and an MLP trained by that objective on td-sim's own frozen features reads 24: the
    features hold what the value needs and the end-to-end head did not make a metric of it. The old embedding is kept
    beside the new one because the MLP alone forgot what td-sim's value knew of the held-out task (another episode's
    goal VOC on FlipSwitch 0.82 -> 0.21 on dev) and its embedding lost the linear read-outs of the object joints.
    ``config.views > 1`` (session 40) also trains on crops of each frame: without them the value read small shifts of
    a goal image as far, which inflated the wrappers' calibrated success threshold.

    Args:
        encoder: an L2 :class:`SmallCNN` encoder with an MLP head (``head_hidden``) and no value head yet; frozen.
        videos: :class:`~vip_rl.data.Video` s (``frames`` uint8 ``[T, H, W, 3]``, ``T >= 2``).
        groups, final_goal_ok: per video, as :func:`pretrain`'s (the goal swap's groups, successful final frames).
        config: :class:`ValueHeadConfig`.
        progress: print the loss every 2000 steps.

    Returns:
        ``(new encoder without a text tower, stats)``; stats: ``frames``, ``videos``, ``feature_dim``, ``loss_first``,
        ``loss_last`` (means over the first and last 500 steps), ``distance_last`` and ``seconds``.

    Raises:
        ValueError: an encoder that is not an L2 SmallCNN with an MLP head, one that has a value head already, per-video
            lists of another length, or a video shorter than 2 frames.
    """
    from vip_rl.encoders.backbones import SmallCNN, mlp as value_mlp
    from vip_rl.encoders.factory import encoder_from_config
    from vip_rl.objectives import temporal_distance_loss

    start = time.perf_counter()
    vision = encoder.vision
    if not isinstance(vision, SmallCNN) or not isinstance(vision.head, nn.Sequential) or encoder.metric != "l2":
        raise ValueError(f"fit_value_head needs an L2 SmallCNN encoder with an MLP head (head_hidden), got "
                         f"arch={encoder.config.get('arch')!r}, metric={encoder.metric!r}, head={type(getattr(vision, 'head', None)).__name__}")
    if vision.value is not None:
        raise ValueError("fit_value_head: this encoder has a value head already (value_dim > 0); fit one on the encoder before it")
    for name, per_video in (("groups", groups), ("final_goal_ok", final_goal_ok)):
        if len(per_video) != len(videos):
            raise ValueError(f"{name} must have one entry per video ({len(videos)}), got {len(per_video)}")
    was_training = encoder.training
    encoder.eval()
    frames_of = [np.asarray(getattr(video, "frames", video)) for video in videos]
    lengths = [len(f) for f in frames_of]
    if min(lengths, default=0) < 2:
        raise ValueError(f"every video needs at least 2 frames, got lengths down to {min(lengths, default=0)}")
    with _side_threads(encoder.device, workers=2) as side:  # the feature pass on two threads, then the target MLP beside the online one
        run = side.map if side is not None else map

        def features(frames: np.ndarray, boxes: np.ndarray | None = None) -> torch.Tensor:
            return cnn_features(encoder, frames if boxes is None else crop_frames(frames, boxes, frames.shape[1]))

        flat = torch.cat(list(run(features, frames_of))).float()
        mean, std = _feature_scale(flat)  # of the frames themselves, not their crops
        views = [flat]
        if config.views > 1:
            crop_rng = np.random.default_rng([config.seed, 1])
            for _ in range(config.views - 1):  # the boxes drawn in the videos' order, then cropped and embedded anywhere
                boxes = [crop_boxes(crop_rng, len(frames), config.crop_scale, CROP_RATIO) for frames in frames_of]
                views.append(torch.cat(list(run(features, frames_of, boxes))).float())
        encoder.train(was_training)
        del frames_of
        x = torch.stack(views)
        del views
        x = x.sub_(mean).div_(std).flatten(0, 1)  # [views * frames, F]: view v of frame i at row v * frames + i (in place: no copies)
        out, stats = _fit_value_mlp(encoder, x, mean, std, lengths, groups=groups, final_goal_ok=final_goal_ok,
                                    config=config, progress=progress, side=side)
    stats["seconds"] = time.perf_counter() - start
    return out, stats


def _fit_value_mlp(encoder: Encoder, x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, lengths: list[int], *,
                   groups: Sequence[Any], final_goal_ok: Sequence[bool], config: ValueHeadConfig, progress: bool,
                   side: ThreadPoolExecutor | None) -> tuple[Encoder, dict[str, Any]]:
    """:func:`fit_value_head`'s MLP steps on the standardised features ``x`` (``[views * frames, F]``, view ``v`` of
    frame ``i`` at row ``v * frames + i``), then the new encoder; ``side``: a thread for the target MLP's forward
    (:func:`_side_threads`)."""
    from vip_rl.encoders.backbones import mlp as value_mlp
    from vip_rl.encoders.factory import encoder_from_config
    from vip_rl.objectives import temporal_distance_loss

    vision = encoder.vision
    rows = sum(lengths)
    # the index stream of the pixel trainer's sampler (geometric goals, random goals, the goal swap): its frames are
    # not read, so each video stands in as a [T, 1, 1, 3] array
    sampler = TupleSampler([np.zeros((n, 1, 1, 3), np.uint8) for n in lengths], batch_size=config.batch_size, image_size=1,
                           crop_scale=(1.0, 1.0), goal_mode="geometric", geometric_p=1.0 - config.gamma,
                           random_goal_prob=config.random_goal_prob, final_goal_ok=list(final_goal_ok),
                           goal_swap_prob=config.goal_swap_prob, groups=list(groups), seed=config.seed)
    offsets = torch.as_tensor(sampler.offsets)  # each video's first row in ``x``, as in the sampler's frame store
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        mlp = value_mlp(x.shape[1], config.hidden, config.dim)
    target = copy.deepcopy(mlp).requires_grad_(False)
    optimizer = torch.optim.Adam(mlp.parameters(), lr=config.lr)
    losses, distances = [], []
    with _deterministic_kernels():
        for step in range(config.steps):
            idx = sampler.sample_indices(step)
            frames = torch.as_tensor(idx["frames"])
            base = offsets[torch.as_tensor(idx["video"])]
            at = torch.stack([base + frames[:, 2], base + frames[:, 3], offsets[torch.as_tensor(idx["goal_video"])] + frames[:, 1]])
            if config.views > 1:  # one view per frame of each tuple, a pure function of (seed, step)
                at = at + torch.as_tensor(np.random.default_rng([config.seed, 2, step]).integers(0, config.views, tuple(at.shape))) * rows
            s, s1, g = x[at[0]], x[at[1]], x[at[2]]

            @torch.no_grad()  # grad mode is per thread: set where it runs
            def target_forward(s: torch.Tensor = s, s1: torch.Tensor = s1, g: torch.Tensor = g) -> tuple[torch.Tensor, ...]:
                return target(s), target(s1), target(g)

            pending = side.submit(target_forward) if side is not None else None
            online_s, online_g = mlp(s), mlp(g)
            ts, ts1, tg = pending.result() if pending is not None else target_forward()
            loss, metrics = temporal_distance_loss(online_s, online_g, ts, ts1, tg, gamma=config.gamma, expectile=config.expectile,
                                                   heads=config.value_heads, is_goal=torch.as_tensor(idx["is_goal"]),
                                                   next_is_goal=torch.as_tensor(idx["next_is_goal"]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            polyak_update(target, mlp, config.target_tau)
            losses.append(float(metrics["td_loss"]))
            distances.append(float(metrics["distance"]))
            if progress and (step % 2000 == 0 or step == config.steps - 1):
                print(f"value head: step {step} td loss {losses[-1]:.3f} distance {distances[-1]:.1f}", flush=True)
    config_out = _cnn_config(encoder.config)
    config_out.update(value_dim=config.dim, value_hidden=list(config.hidden), text=None)
    out = encoder_from_config(config_out, device="cpu")
    scale = 1.0 / math.sqrt(2.0)
    with torch.no_grad():
        state = dict(vision.state_dict())
        head_out = f"head.{len(vision.head) - 1}"
        state[f"{head_out}.weight"] = state[f"{head_out}.weight"] * scale
        state[f"{head_out}.bias"] = state[f"{head_out}.bias"] * scale
        first, last = mlp[0], mlp[len(mlp) - 1]
        weight = first.weight / std.to(first.weight)  # the input standardisation, folded into the first layer
        mlp_state = {k: v.clone() for k, v in mlp.state_dict().items()}
        mlp_state["0.weight"], mlp_state["0.bias"] = weight, first.bias - weight @ mean.to(weight)
        last_key = f"{len(mlp) - 1}"
        mlp_state[f"{last_key}.weight"] = last.weight * scale
        mlp_state[f"{last_key}.bias"] = last.bias * scale
        state.update({f"value.{k}": v for k, v in mlp_state.items()})
        out.vision.load_state_dict(state, strict=True)
    out = out.to(encoder.device).eval()
    n = min(500, len(losses))
    stats = {"frames": rows, "videos": len(lengths), "feature_dim": int(x.shape[1]),
             "loss_first": float(np.mean(losses[:n])), "loss_last": float(np.mean(losses[-n:])),
             "distance_last": float(np.mean(distances[-n:]))}
    return out, stats


def trained_seconds(encoder: Any, wall: float) -> float:
    """Seconds :func:`pretrain` recorded for the run that made ``encoder`` (every call that trained it: a run resumed
    after an interruption counts its earlier slices, and a finished run that a later call only reloaded keeps its
    training time), else ``wall`` (e.g. the caller's wall time, for an encoder without that record).

    Example:
        >>> class Run:
        ...     config = {"training": {"train_seconds": 1207.8}}
        >>> trained_seconds(Run(), wall=12.0), trained_seconds(object(), wall=12.0)
        (1207.8, 12.0)
    """
    recorded = ((getattr(encoder, "config", None) or {}).get("training") or {}).get("train_seconds")
    return wall if recorded is None else float(recorded)


def _parse_pair(text: str) -> tuple[float, float]:
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected 'min,max', got {text!r}")
    return float(parts[0]), float(parts[1])


@command("pretrain")
def cli(argv: Sequence[str] | None = None) -> int:
    """``vip-rl pretrain --data PATH [--data PATH2] --objective vip|liv --steps N --out DIR ...``.

    The config and ``--out`` are checked before the videos are read, and the videos, ``--init-from`` and a
    checkpoint to resume before ``--out`` is created; a failure is one line on stderr (:mod:`vip_rl.cli`).
    """
    defaults = PretrainConfig()
    parser = ArgumentParser(prog="vip-rl pretrain", description="Pretrain or fine-tune a VIP / LIV encoder on videos.")
    parser.add_argument("--data", action="append", required=True, help="training videos: HDF5, mp4/gif file or folder, frame folders, .npy/.npz, LIV csv (repeatable)")
    parser.add_argument("--eval-data", action="append", default=None, help="held-out videos for eval (default: split off --data)")
    parser.add_argument("--out", required=True, help="run directory (checkpoint.pt, log.csv, tb/, encoder/)")
    parser.add_argument("--init-from", default=None,
                        help="fine-tune from an encoder: bundled name, checkpoint dir/file, official VIP .pt, LIV model.pt, CLIP RN50 state dict")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", dest="resume", action="store_true", default=True, help="continue from OUT/checkpoint.pt if present (default)")
    group.add_argument("--no-resume", dest="resume", action="store_false", help="start over, overwriting OUT/checkpoint.pt")
    parser.add_argument("--camera", default=None,
                        help="camera read from HDF5 files (default: each episode's only camera, else 'front')")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, or auto")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--objective", choices=("vip", "liv", "tdist"), default=defaults.objective,
                        help="vip, liv, or tdist (a distance that counts steps: HILP's expectile TD)")
    parser.add_argument("--arch", default=defaults.arch)
    parser.add_argument("--embed-dim", type=int, default=defaults.embed_dim)
    parser.add_argument("--image-size", type=int, default=defaults.image_size)
    parser.add_argument("--cnn-channels", default=None, help="comma-separated channels of the CNN stages")
    parser.add_argument("--head-hidden", default=None, help="comma-separated hidden widths of an MLP head (cnn)")
    parser.add_argument("--expectile", type=float, default=defaults.expectile, help="tdist: expectile of the TD loss")
    parser.add_argument("--value-heads", type=int, default=defaults.value_heads, help="tdist: value heads")
    parser.add_argument("--target-tau", type=float, default=defaults.target_tau, help="tdist: Polyak rate of the target network")
    parser.add_argument("--random-goal-prob", type=float, default=defaults.random_goal_prob, help="tdist: share of goals from any video")
    parser.add_argument("--recon-weight", type=float, default=defaults.recon_weight,
                        help="tdist: weight of the auxiliary reconstruction of each frame from its embedding (0: off)")
    parser.add_argument("--recon-focus", type=float, default=defaults.recon_focus,
                        help="tdist with --recon-weight: share of that loss on the pixels that changed since the video's "
                             "first frame, in [0, 1] (0: a plain mean squared error)")
    parser.add_argument("--recon-full-size", action="store_true",
                        help="tdist with --recon-weight: decode each frame at the input side (default: half of it)")
    parser.add_argument("--text", choices=("auto", "minilm", "hashing", "none"), default=defaults.text)
    parser.add_argument("--freeze-text", action="store_true", help="freeze the text tower (LIV's grad_text=False)")
    parser.add_argument("--train-blocks", type=int, default=defaults.train_blocks,
                        help="CLIP/LIV: train only the last N residual blocks of each tower and the heads (0: all)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--lr-schedule", choices=("constant", "cosine"), default=defaults.lr_schedule)
    parser.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps)
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--gamma", type=float, default=defaults.gamma)
    parser.add_argument("--num-negatives", type=int, default=defaults.num_negatives)
    parser.add_argument("--l1-weight", type=float, default=defaults.l1_weight)
    parser.add_argument("--l2-weight", type=float, default=defaults.l2_weight)
    parser.add_argument("--vip-weight", type=float, default=defaults.vip_weight)
    parser.add_argument("--text-weight", type=float, default=defaults.text_weight)
    parser.add_argument("--nce-weight", type=float, default=defaults.nce_weight)
    parser.add_argument("--temperature", type=float, default=defaults.temperature)
    parser.add_argument("--frame-stride", type=int, default=defaults.frame_stride,
                        help="keep every N-th frame of each video, ending at the last (videos at a high frame rate)")
    parser.add_argument("--crop-scale", type=_parse_pair, default=defaults.crop_scale, help="min,max area of the shared random crop")
    parser.add_argument("--channel-shuffle-prob", type=float, default=defaults.channel_shuffle_prob,
                        help="share of tuples recoloured by a random RGB channel permutation (colour augmentation)")
    parser.add_argument("--colour-gain-prob", type=float, default=defaults.colour_gain_prob,
                        help="share of tuples whose RGB channels are scaled by random gains (hue-keeping colour augmentation)")
    parser.add_argument("--colour-gain-range", type=_parse_pair, default=defaults.colour_gain_range,
                        help="low,high of those gains")
    parser.add_argument("--goal-mode", choices=("random", "final"), default=defaults.goal_mode)
    parser.add_argument("--final-goal-prob", type=float, default=defaults.final_goal_prob)
    parser.add_argument("--goal-swap-prob", type=float, default=0.0,
                        help="swap final-frame goals for another video's final frame with the same text (default 0: official)")
    parser.add_argument("--eval-every", type=int, default=defaults.eval_every)
    parser.add_argument("--eval-videos", type=int, default=defaults.eval_videos)
    parser.add_argument("--ckpt-every", type=int, default=defaults.ckpt_every)
    parser.add_argument("--log-every", type=int, default=defaults.log_every)
    parser.add_argument("--prefetch", type=int, default=defaults.prefetch)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    try:
        config = PretrainConfig(
            objective=args.objective, arch=args.arch, embed_dim=args.embed_dim, image_size=args.image_size,
            cnn_channels=None if args.cnn_channels is None else tuple(int(c) for c in args.cnn_channels.split(",")),
            head_hidden=() if args.head_hidden is None else tuple(int(c) for c in args.head_hidden.split(",")),
            expectile=args.expectile, value_heads=args.value_heads, target_tau=args.target_tau, random_goal_prob=args.random_goal_prob, recon_weight=args.recon_weight,
            recon_focus=args.recon_focus, recon_full_size=args.recon_full_size,
            text=args.text, freeze_text=args.freeze_text, train_blocks=args.train_blocks, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, steps=args.steps,
            lr_schedule=args.lr_schedule, warmup_steps=args.warmup_steps,
            gamma=args.gamma, num_negatives=args.num_negatives, l1_weight=args.l1_weight, l2_weight=args.l2_weight,
            vip_weight=args.vip_weight, text_weight=args.text_weight, nce_weight=args.nce_weight, temperature=args.temperature,
            frame_stride=args.frame_stride, crop_scale=args.crop_scale, channel_shuffle_prob=args.channel_shuffle_prob,
            colour_gain_prob=args.colour_gain_prob, colour_gain_range=args.colour_gain_range, goal_mode=args.goal_mode,
            final_goal_prob=args.final_goal_prob, eval_every=args.eval_every, eval_videos=args.eval_videos, ckpt_every=args.ckpt_every,
            log_every=args.log_every, prefetch=args.prefetch, seed=args.seed,
        )
    except ValueError as exc:
        parser.error(str(exc))
    check_output_dir(args.out, flag="--out")
    device = str(resolve_device(args.device))
    show_warning = warnings.showwarning

    def one_line_warning(message: Any, category: type[Warning], *rest: Any, **kwargs: Any) -> None:
        if issubclass(category, EvalOnTrainingVideosWarning):  # ours: one line, no source location
            print(f"vip-rl pretrain: warning: {one_line(message)}", file=sys.stderr)
        else:
            show_warning(message, category, *rest, **kwargs)

    with warnings.catch_warnings():  # restores warnings.showwarning on the way out
        warnings.showwarning = one_line_warning
        try:
            pretrain(
                config, args.data, out_dir=args.out, device=device, init_from=args.init_from, resume=args.resume,
                eval_data=args.eval_data, camera=args.camera, progress=not args.no_progress, goal_swap_prob=args.goal_swap_prob,
            )
        except ResumeMismatchError as err:  # the advice in this command's flags, not pretrain()'s arguments
            advice = err.advice(init_from="--init-from", data="--data", no_resume="--no-resume", out="--out")
            raise ValueError(f"{err.reason}; {advice}") from None
    print(f"encoder written to {Path(args.out) / 'encoder'} (load with vip_rl.encoders.load_encoder)")
    return 0


if __name__ == "__main__":  # torchrun -m vip_rl.pretrain: the same boundary and SIGTERM handling as vip-rl pretrain
    from vip_rl.cli import main

    sys.exit(main(["pretrain", *sys.argv[1:]]))
