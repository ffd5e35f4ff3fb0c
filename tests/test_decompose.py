"""Tests for vip_rl.planning.decompose: UVD subgoals on synthetic embedding paths and on a tiny encoder."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from vip_rl.encoders.base import Encoder
from vip_rl.planning.decompose import decompose_demo, decompose_embeddings


def path(corners: list[tuple[float, ...]], frames_per_leg: list[int]) -> torch.Tensor:
    """Embeddings ``[1 + sum(frames_per_leg), D]`` moving in straight legs through ``corners``; the corner
    ``k`` (``k >= 1``) is frame ``sum(frames_per_leg[:k])``."""
    points = torch.tensor(corners, dtype=torch.float64)
    out = [points[:1]]
    for start, end, n in zip(points[:-1], points[1:], frames_per_leg):
        t = torch.linspace(0, 1, n + 1, dtype=torch.float64)[1:, None]
        out.append(start + (end - start) * t)
    return torch.cat(out)


def tiny_encoder(metric: str = "l2", image_size: int = 16) -> Encoder:
    torch.manual_seed(0)  # only for this test helper's init
    vision = nn.Sequential(nn.Conv2d(3, 4, 5, stride=4), nn.ReLU(), nn.Flatten(), nn.LazyLinear(8))
    vision(torch.zeros(1, 3, image_size, image_size))
    return Encoder(vision, embed_dim=8, metric=metric, image_size=image_size)


# Each leg moves away from the corner that follows the next one, so every corner is a turning point.
TWO_LEGS = path([(0, 0), (1, 0), (0, 1)], [20, 20])  # corner A at 20
THREE_LEGS = path([(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)], [15, 20, 25])  # corners at 15, 35


@pytest.mark.parametrize("smooth", [1, 3, 5])
@pytest.mark.parametrize("embeddings, corners", [(TWO_LEGS, [20]), (THREE_LEGS, [15, 35])])
def test_corners_of_two_and_three_leg_paths(embeddings, corners, smooth):
    out = decompose_embeddings(embeddings, smooth=smooth)
    assert out.dtype == np.int64 and out[-1] == len(embeddings) - 1
    assert len(out) == len(corners) + 1
    assert np.abs(out[:-1] - np.array(corners)).max() <= smooth // 2  # a moving average can move a corner by this much
    assert decompose_embeddings(embeddings, smooth=1)[:-1].tolist() == corners


def test_float32_input_gives_the_same_subgoals():
    assert decompose_embeddings(TWO_LEGS.float()).tolist() == decompose_embeddings(TWO_LEGS).tolist()


@pytest.mark.parametrize("embeddings", [torch.linspace(0, 1, 30)[:, None], path([(0, 0), (3, 1)], [40]),
                                        torch.zeros(12, 4)])
def test_monotone_or_still_path_is_its_last_frame(embeddings):
    assert decompose_embeddings(embeddings).tolist() == [len(embeddings) - 1]


@pytest.mark.parametrize("n", [1, 2, 9])
def test_short_demos(n):
    assert decompose_embeddings(TWO_LEGS[:n]).tolist() == [n - 1]


def test_min_interval_is_respected():
    # a zigzag with a turn every 4 frames: min_interval 1 keeps them all, larger ones thin them out
    zigzag = torch.tensor([[float(i % 8 if i % 8 <= 4 else 8 - i % 8), 0.01 * i] for i in range(41)])
    for min_interval in (1, 3, 5, 8, 12):
        out = decompose_embeddings(zigzag, min_interval=min_interval, smooth=1)
        assert out[-1] == 40 and out[0] >= min_interval
        assert (np.diff(out) >= min_interval).all(), (min_interval, out)
    assert len(decompose_embeddings(zigzag, min_interval=1, smooth=1)) > len(decompose_embeddings(zigzag, min_interval=8, smooth=1))
    assert decompose_embeddings(TWO_LEGS, min_interval=21).tolist() == [40]  # the corner is too close to frame 0
    assert decompose_embeddings(TWO_LEGS, min_interval=20, smooth=1).tolist() == [20, 40]  # bounds are inclusive


@pytest.mark.parametrize("seed", range(5))
def test_smoothing_makes_noisy_paths_robust(seed):
    noise = torch.from_numpy(np.random.default_rng(seed).normal(0.0, 0.05, TWO_LEGS.shape))  # the step is 0.05-0.07
    noisy = TWO_LEGS + noise
    assert decompose_embeddings(noisy, smooth=1, min_interval=1).size > 2  # raw noise makes spurious turns
    out = decompose_embeddings(noisy, smooth=5)
    assert out.tolist()[-1] == 40 and len(out) == 2 and abs(out[0] - 20) <= 2


def test_flat_top_counts_its_last_frame():
    pause = torch.cat([TWO_LEGS[:21], TWO_LEGS[20:21].repeat(4, 1), TWO_LEGS[21:]])  # 4 more frames at the corner
    assert decompose_embeddings(pause, smooth=1).tolist() == [24, 44]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(embeddings=np.zeros((5, 2))), TypeError, "embeddings must be a float torch.Tensor \\[N, D\\], got ndarray"),
        (dict(embeddings=torch.zeros(5, 2, dtype=torch.long)), TypeError, "float torch.Tensor \\[N, D\\], got torch.int64 \\[5, 2\\]"),
        (dict(embeddings=torch.zeros(5)), ValueError, "embeddings must be \\[N, D\\] with N >= 1, got shape \\[5\\]"),
        (dict(embeddings=torch.zeros(0, 3)), ValueError, "N >= 1, got shape \\[0, 3\\]"),
        (dict(embeddings=torch.tensor([[0.0], [float("nan")], [1.0]])), ValueError, "finite, got NaN or inf in frame\\(s\\) \\[1\\]"),
        (dict(embeddings=torch.tensor([[0.0], [float("inf")]])), ValueError, "must be finite"),
        (dict(embeddings=TWO_LEGS, min_interval=0), ValueError, "min_interval must be an int >= 1, got 0"),
        (dict(embeddings=TWO_LEGS, min_interval=2.5), ValueError, "min_interval must be an int >= 1, got 2.5"),
        (dict(embeddings=TWO_LEGS, smooth=0), ValueError, "smooth must be an int >= 1, got 0"),
        (dict(embeddings=TWO_LEGS, smooth=True), ValueError, "smooth must be an int >= 1, got True"),
    ],
)
def test_decompose_embeddings_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        decompose_embeddings(**kwargs)


@pytest.mark.parametrize("metric", ["l2", "cos"])
def test_decompose_demo_on_uint8_frames(metric):
    encoder = tiny_encoder(metric)
    frames = np.random.default_rng(0).integers(0, 256, (14, 16, 16, 3), dtype=np.uint8)
    out = decompose_demo(encoder, frames, min_interval=2)
    assert out.dtype == np.int64 and out[-1] == 13 and (np.diff(out) >= 2).all()
    z = encoder.encode_images(frames)
    if metric == "cos":
        z = z / z.norm(dim=-1, keepdim=True)
    assert out.tolist() == decompose_embeddings(z, min_interval=2).tolist()
    assert decompose_demo(encoder, torch.from_numpy(frames), min_interval=2, device="cpu").tolist() == out.tolist()


@pytest.mark.parametrize(
    "frames, kwargs, error, match",
    [
        (np.zeros((4, 16, 16, 3), np.float32), {}, TypeError, "frames must be uint8 \\[N, H, W, 3\\], got float32 \\[4, 16, 16, 3\\]"),
        (torch.zeros(4, 16, 16, 3), {}, TypeError, "frames must be uint8 \\[N, H, W, 3\\], got torch.float32"),
        ([[0]], {}, TypeError, "frames must be a uint8 \\[N, H, W, 3\\] numpy array or torch tensor, got list"),
        (np.zeros((16, 16, 3), np.uint8), {}, ValueError, "with N >= 1, got shape \\[16, 16, 3\\]"),
        (np.zeros((4, 3, 16, 16), np.uint8), {}, ValueError, "got shape \\[4, 3, 16, 16\\]"),
        (np.zeros((0, 16, 16, 3), np.uint8), {}, ValueError, "got shape \\[0, 16, 16, 3\\]"),
        (np.zeros((4, 16, 16, 3), np.uint8), dict(device="meta"), ValueError, "encoder is on cpu but device='meta'"),
        (np.zeros((4, 16, 16, 3), np.uint8), dict(smooth=0), ValueError, "smooth must be an int >= 1"),
    ],
)
def test_decompose_demo_errors(frames, kwargs, error, match):
    with pytest.raises(error, match=match):
        decompose_demo(tiny_encoder(), frames, **kwargs)
