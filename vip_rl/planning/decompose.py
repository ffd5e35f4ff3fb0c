"""Subgoals from one demonstration video, found in embedding space (UVD's rule).

:func:`decompose_demo` embeds a demo's frames and :func:`decompose_embeddings` picks the frames where the
demo, read backwards from its end, turns: the subgoals a planner can follow one after the other
(:class:`~vip_rl.planning.costs.DemoSubgoalCost` with ``subgoals=`` and ``lookahead=1``).

The rule is the one of UVD, the Universal Visual Decomposer (Zhang et al. 2023, "Universal Visual Decomposer:
Long-Horizon Manipulation Made Easy", arXiv 2310.08581; official code ``zcczhang/UVD``,
``uvd/decomp/decomp.py::embedding_decomp``). Within one subtask the embedding distance to the subtask's
last frame falls; read backwards in time from that frame it rises, and the frame where it stops rising is
where the subtask began, that is, the end of the previous one. Starting with the last frame ``g = N - 1``
as the current subgoal:

1. ``d_j = ||z_j - z_g||`` for every frame ``j <= g`` (Euclidean; :func:`decompose_demo` puts a cosine
   encoder's embeddings on the unit sphere first, where Euclidean distance orders pairs as cosine does);
2. ``s`` = ``d`` smoothed by a centred moving average over ``smooth`` frames (the window is cut at both
   ends of ``0..g``; ``smooth=1``: no smoothing);
3. the turning points are the frames ``j`` with ``s[j-1] <= s[j] > s[j+1]`` (``1 <= j < g``): reading
   backwards, the distance has risen into ``j`` and stops rising there. The next subgoal is the latest
   turning point with ``min_interval <= j <= g - min_interval``; without those bounds that is the earliest
   frame of the monotone stretch that ends at ``g``; turning points within ``min_interval`` frames of
   ``g`` or of frame 0 are passed over, as UVD passes over extrema within ``min_interval`` of either;
4. that frame becomes ``g`` and the loop repeats; it ends when no turning point qualifies.

Differences from the official code, all in the details: UVD smooths with an RBF kernel regression
(``gamma=0.08``) and takes strict local maxima (``np.greater``), so a flat top (a pause at the turn) is no
maximum there; here the last frame of a flat top counts. UVD keeps ``min_interval`` strictly (``>``, default
18 frames, for 200+-frame kitchen videos); here the bound is inclusive and the default 5 suits the
100-step ``vip_envs`` demos. A demo that moves toward its end all the way (a single straight reach) has no
turning point and decomposes into ``[N - 1]``: UVD finds subgoals only where the demo first moves away
from what comes later.

Example (a 2-D path that goes from the origin to ``A = (1, 0)``, then turns to ``B = (0, 1)``):
    >>> import torch
    >>> t = torch.linspace(0, 1, 21)
    >>> to_a = torch.stack([t[::2], 0 * t[::2]], 1)    # frames 0-10: (0, 0) -> A, moving away from B
    >>> to_b = torch.stack([1 - t[1:], t[1:]], 1)      # frames 11-30: A -> B
    >>> decompose_embeddings(torch.cat([to_a, to_b])).tolist()
    [10, 30]
    >>> decompose_embeddings(to_b).tolist()    # a straight leg has no turning point: its last frame only
    [19]
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["decompose_embeddings", "decompose_demo"]


def _check_options(min_interval: Any, smooth: Any) -> None:
    for name, value in (("min_interval", min_interval), ("smooth", smooth)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def _moving_average(values: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average of ``values [n]`` over ``width`` frames, the window cut at both ends."""
    n = values.shape[0]
    if width == 1 or n == 1:
        return values
    sums = np.concatenate([[0.0], np.cumsum(values)])
    frames = np.arange(n)
    lo = np.maximum(frames - (width - 1) // 2, 0)
    hi = np.minimum(frames + width // 2, n - 1) + 1
    return (sums[hi] - sums[lo]) / (hi - lo)


def decompose_embeddings(embeddings: torch.Tensor, *, min_interval: int = 5, smooth: int = 3) -> np.ndarray:
    """Subgoal frames of a demo from its frames' embeddings (UVD's rule, see the module docstring).

    Args:
        embeddings: float ``[N, D]`` embeddings of the demo's frames ``o_0 .. o_{N-1}``, in order.
        min_interval: fewest frames between two subgoals, and between frame 0 and the first subgoal (>= 1).
        smooth: width in frames of the moving average applied to each distance curve (>= 1; 1: none).

    Returns:
        int64 ``[M]`` ascending frame indices of the subgoals; the last is always ``N - 1``
        (``M == 1`` when the demo has no turning point).

    Raises:
        TypeError: ``embeddings`` is not a floating-point torch tensor.
        ValueError: ``embeddings`` is not ``[N, D]`` with ``N >= 1``, or holds NaN / inf; ``min_interval`` or
            ``smooth`` is not an int >= 1.
    """
    _check_options(min_interval, smooth)
    if not isinstance(embeddings, torch.Tensor):
        raise TypeError(f"embeddings must be a float torch.Tensor [N, D], got {type(embeddings).__name__}")
    if not embeddings.is_floating_point():
        raise TypeError(f"embeddings must be a float torch.Tensor [N, D], got {embeddings.dtype} {list(embeddings.shape)}")
    if embeddings.ndim != 2 or embeddings.shape[0] < 1:
        raise ValueError(f"embeddings must be [N, D] with N >= 1, got shape {list(embeddings.shape)}")
    z = embeddings.detach().to("cpu", torch.float64).numpy()
    if not np.isfinite(z).all():
        bad = np.flatnonzero(~np.isfinite(z).all(1))
        raise ValueError(f"embeddings must be finite, got NaN or inf in frame(s) {bad[:5].tolist()}"
                         + (" ..." if bad.size > 5 else ""))
    goal = z.shape[0] - 1
    subgoals = [goal]
    while goal >= 2 * min_interval:  # else no frame can be min_interval from both frame 0 and the goal
        s = _moving_average(np.linalg.norm(z[: goal + 1] - z[goal], axis=1), smooth)  # [goal + 1]
        j = np.arange(1, goal)
        turning = j[(s[j - 1] <= s[j]) & (s[j] > s[j + 1])]
        turning = turning[(turning >= min_interval) & (turning <= goal - min_interval)]
        if turning.size == 0:
            break
        goal = int(turning[-1])
        subgoals.append(goal)
    return np.array(subgoals[::-1], dtype=np.int64)


def decompose_demo(
    encoder: Any,
    frames: np.ndarray,
    *,
    min_interval: int = 5,
    smooth: int = 3,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Subgoal frames of a demo video: embed its frames (no grad, batched) and :func:`decompose_embeddings`.

    A ``metric="cos"`` encoder's embeddings are scaled to unit length first, so that the Euclidean distances
    of the rule order frames as the encoder's cosine distance does.

    Args:
        encoder: an :class:`~vip_rl.encoders.base.Encoder` (``encode_images``, ``metric``, ``device``).
        frames: uint8 ``[N, H, W, 3]`` frames of one demonstration (numpy array or torch tensor), ``N >= 1``.
        min_interval, smooth: as :func:`decompose_embeddings`.
        device: where to embed; None (default) is the encoder's device, anything else must be it (the
            encoder is not moved).

    Returns:
        int64 ``[M]`` ascending frame indices of the subgoals, the last ``N - 1``: ``frames[indices]`` are
        the subgoal images.

    Raises:
        TypeError: ``frames`` is not a uint8 array or tensor.
        ValueError: ``frames`` is not ``[N, H, W, 3]`` with ``N >= 1``; ``device`` is not the encoder's;
            everything :func:`decompose_embeddings` raises.

    Example:
        >>> from vip_rl.goals import resolve_encoder
        >>> frames = np.zeros((12, 16, 16, 3), np.uint8)
        >>> decompose_demo(resolve_encoder("random", seed=0), frames).tolist()
        [11]
    """
    _check_options(min_interval, smooth)
    if not isinstance(frames, (np.ndarray, torch.Tensor)):
        raise TypeError(f"frames must be a uint8 [N, H, W, 3] numpy array or torch tensor, got {type(frames).__name__}")
    uint8 = torch.uint8 if isinstance(frames, torch.Tensor) else np.uint8
    if frames.dtype != uint8:
        raise TypeError(f"frames must be uint8 [N, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must be uint8 [N, H, W, 3] with N >= 1, got shape {list(frames.shape)}")
    if device is not None and torch.device(device) != torch.device(encoder.device):
        raise ValueError(f"encoder is on {encoder.device} but device={str(device)!r} was requested; "
                         f"move it first with encoder.to({str(device)!r})")
    with torch.no_grad():
        embeddings = encoder.encode_images(frames).float()  # [N, D], batched inside the encoder
    if getattr(encoder, "metric", "l2") == "cos":
        embeddings = embeddings / embeddings.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return decompose_embeddings(embeddings, min_interval=min_interval, smooth=smooth)
