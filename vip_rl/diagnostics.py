"""Diagnostics of a value representation: value-order correlation and reward curves.

``VOC`` (value-order correlation) is the Spearman rank correlation between the frame index of
a video that reaches a goal and the value ``-d(phi(o_t), phi(g))``: 1 means the embedding
distance to the goal shrinks monotonically along the video.

``vip-rl reward-curve <video|dataset> --goal <image|text> --encoder td-sim`` plots the
distance and the progress ``1 - d_t / d_0`` per frame (PNG) and prints the VOC.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from vip_rl._io import atomic_path
from vip_rl.cli import ArgumentParser, UsageError, check_output_file, command, resolve_device
from vip_rl.encoders.base import Encoder, check_images
from vip_rl.goals import embed_goal, goal_from_arg, parse_goal, resolve_encoder


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation of two 1-D arrays (average ranks for ties); 0.0 if either is constant."""
    from scipy.stats import rankdata

    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"spearman needs two 1-D arrays of the same length >= 2, got {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("spearman got non-finite values")
    rx, ry = rankdata(x), rankdata(y)
    rx -= rx.mean()
    ry -= ry.mean()
    denom = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return 0.0 if denom == 0.0 else float((rx * ry).sum() / denom)


def _goal_embedding(encoder: Encoder, goal: Any) -> torch.Tensor:
    """One goal (see :func:`vip_rl.goals.parse_goal`: an image, an instruction, an embedding, a Video or a
    goal file) -> ``[D]`` on the encoder's device."""
    parsed = parse_goal(goal)
    if len(parsed) != 1:
        what = "image" if parsed.kind == "images" else parsed.kind
        raise ValueError(f"goal must be one uint8 [H, W, 3] image, instruction or embedding, got {len(parsed)} ({what})")
    return embed_goal(encoder, parsed)[0]


def goal_distances(encoder: Encoder, frames: Any, goal: Any) -> np.ndarray:
    """Embedding distance of each frame to the goal.

    Args:
        encoder: any :class:`Encoder`.
        frames: uint8 ``[T, H, W, 3]``.
        goal: uint8 ``[H, W, 3]`` image, a ``str`` instruction (needs a text tower), a precomputed
            float embedding ``[D]``, a Video (its final frame) or a goal file ``Path``.

    Returns:
        float64 ``[T]`` distances under the encoder's metric.
    """
    images = check_images(frames, "frames")
    goal_z = _goal_embedding(encoder, goal)
    z = encoder.encode_images(images)
    return encoder.distance(z, goal_z.unsqueeze(0)).double().cpu().numpy()


def value_order_correlation(encoder: Encoder, frames: Any, goal: Any) -> float:
    """Spearman correlation between frame index and ``-distance(phi(frame), phi(goal))``.

    Args:
        encoder: any :class:`Encoder`.
        frames: uint8 ``[T, H, W, 3]`` with ``T >= 2``, ordered in time.
        goal: uint8 ``[H, W, 3]`` goal image, a ``str`` (text goal) or a float ``[D]`` embedding.

    Returns:
        VOC in ``[-1, 1]`` (1: the value increases monotonically along the video).

    Raises:
        TypeError / ValueError: frames or goal of the wrong dtype / shape, fewer than 2 frames.

    Example:
        >>> voc = value_order_correlation(load_encoder("td-sim"), episode.frames["front"], goal_img)  # doctest: +SKIP
    """
    images = check_images(frames, "frames")
    if images.shape[0] < 2:
        raise ValueError(f"frames must hold at least 2 frames, got {images.shape[0]}")
    distances = goal_distances(encoder, images, goal)
    return spearman(np.arange(len(distances)), -distances)


def plot_reward_curve(
    distances: np.ndarray,
    path: str | os.PathLike[str],
    *,
    title: str = "",
    task_progress: np.ndarray | None = None,
) -> Path:
    """Write a PNG with the embedding distance (left axis) and progress ``1 - d_t / d_0`` per frame.

    Args:
        distances: float ``[T]``.
        path: output ``.png`` (written atomically).
        title: figure title.
        task_progress: optional float ``[T]`` ground-truth progress drawn for reference.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    distances = np.asarray(distances, dtype=np.float64)
    progress = 1.0 - distances / max(float(distances[0]), 1e-12)
    fig = Figure(figsize=(7, 3.5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    steps = np.arange(len(distances))
    ax.plot(steps, distances, color="tab:blue", label="distance to goal")
    ax.set_xlabel("frame")
    ax.set_ylabel("embedding distance", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(steps, progress, color="tab:orange", label="progress 1 - d/d0")
    if task_progress is not None:
        ax2.plot(steps, np.asarray(task_progress, dtype=np.float64), color="tab:green", linestyle="--", label="true task progress")
    ax2.set_ylabel("progress")
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="lower left", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


@command("reward-curve")
def cli(argv: Sequence[str] | None = None) -> int:
    """``vip-rl reward-curve VIDEO --goal IMAGE|TEXT --encoder NAME [--out curve.png]``.

    Every input (the video, the goal, the encoder, the output folder) is read and checked before the
    plot is written; a failure is one line on stderr (:mod:`vip_rl.cli`).
    """
    parser = ArgumentParser(
        prog="vip-rl reward-curve",
        description="Plot the embedding distance to a goal along a video and print the value-order correlation (VOC).",
    )
    parser.add_argument("video", help="anything vip_rl.data.load_videos accepts (HDF5, mp4/gif, frame folder, .npy/.npz)")
    parser.add_argument("--goal", default=None, help="goal image path, or an instruction (text goal); default: the video's last frame")
    parser.add_argument("--encoder", default="td-sim", help="bundled name or checkpoint path (default td-sim)")
    parser.add_argument("--camera", default="front", help="camera of suite HDF5 files (default front)")
    parser.add_argument("--index", type=int, default=0, help="which video of the dataset (default 0)")
    parser.add_argument("--out", default="curve.png", help="output PNG (default curve.png)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    from vip_rl.data import load_videos

    check_output_file(args.out, flag="--out")
    device = resolve_device(args.device)
    videos = load_videos(args.video, camera=args.camera)
    if not 0 <= args.index < len(videos):
        raise UsageError(f"--index must be in [0, {len(videos)}) for {args.video!r}, got {args.index}")
    video = videos[args.index]
    if len(video.frames) < 2:
        raise UsageError(f"video {args.video!r}[{args.index}] must hold at least 2 frames, got {len(video.frames)}")
    goal: Any = video.frames[-1] if args.goal is None else goal_from_arg(args.goal)
    encoder = resolve_encoder(args.encoder, device=device, text=isinstance(goal, str))
    if args.goal is None:
        goal_desc = "own last frame"
    else:
        goal_desc = f"text {args.goal!r}" if isinstance(goal, str) else f"image {args.goal}"
    distances = goal_distances(encoder, video.frames, goal)
    voc = spearman(np.arange(len(distances)), -distances)
    out = plot_reward_curve(distances, args.out, title=f"{args.encoder} | {Path(args.video).name}[{args.index}] | goal: {goal_desc} | VOC {voc:.3f}")
    print(f"VOC {voc:.4f}  frames {len(distances)}  distance first {distances[0]:.4f} last {distances[-1]:.4f}  plot {out}")
    return 0
