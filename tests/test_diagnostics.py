"""Tests of vip_rl.diagnostics: value-order correlation, reward-curve plot and CLI."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from vip_rl.diagnostics import cli, goal_distances, plot_reward_curve, spearman, value_order_correlation
from vip_rl.encoders.base import Encoder


class _Brightness(nn.Module):
    """Embeds an image as its mean intensity (a 1-D 'value' that is easy to reason about)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3)).unsqueeze(1)


def _encoder() -> Encoder:
    return Encoder(_Brightness(), embed_dim=1, metric="l2", image_size=8, config={"name": "brightness"})


def _ramp(length: int = 10) -> np.ndarray:
    return np.stack([np.full((8, 8, 3), 20 * t, np.uint8) for t in range(length)])


def test_spearman_matches_scipy_and_handles_ties() -> None:
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=30), rng.normal(size=30)
    y[:5] = y[0]
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    assert spearman(np.arange(5), np.zeros(5)) == 0.0
    with pytest.raises(ValueError, match="same length"):
        spearman(np.arange(3), np.arange(4))


def test_voc_is_one_for_a_monotone_approach_and_minus_one_reversed() -> None:
    frames = _ramp()
    encoder = _encoder()
    assert value_order_correlation(encoder, frames, frames[-1]) == pytest.approx(1.0)
    assert value_order_correlation(encoder, frames[::-1].copy(), frames[0]) == pytest.approx(1.0)
    assert value_order_correlation(encoder, frames, frames[0]) == pytest.approx(-1.0)
    goal_embedding = encoder.encode_images(frames[-1])[0]
    assert value_order_correlation(encoder, frames, goal_embedding) == pytest.approx(1.0)
    assert goal_distances(encoder, frames, frames[-1]).shape == (10,)


@pytest.mark.parametrize(
    "frames, goal, error, match",
    [
        (np.zeros((5, 8, 8, 3), np.float32), np.zeros((8, 8, 3), np.uint8), TypeError, "frames must be uint8"),
        (np.zeros((1, 8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8), ValueError, "at least 2"),
        (np.zeros((5, 8, 8, 3), np.uint8), np.zeros((2, 8, 8, 3), np.uint8), ValueError, "one uint8"),
        (np.zeros((5, 8, 8, 3), np.uint8), torch.zeros(3), ValueError, "goal embedding"),
        (np.zeros((5, 8, 8, 3), np.uint8), "open the drawer", ValueError, "no text tower"),
    ],
)
def test_bad_inputs(frames: np.ndarray, goal: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        value_order_correlation(_encoder(), frames, goal)


def test_plot_writes_a_png(tmp_path: Path) -> None:
    path = plot_reward_curve(np.linspace(3, 0, 12), tmp_path / "sub" / "curve.png", title="t", task_progress=np.linspace(0, 1, 12))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_prints_voc_and_writes_the_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vip_rl.encoders import build_encoder, save_encoder
    import imageio.v3 as iio

    np.save(tmp_path / "clip.npy", _ramp())
    encoder = build_encoder("cnn", embed_dim=8, image_size=16, cnn_channels=(4, 8), seed=0)
    save_encoder(encoder, tmp_path / "enc")
    iio.imwrite(tmp_path / "goal.png", _ramp()[-1])
    out = tmp_path / "curve.png"
    assert cli([str(tmp_path / "clip.npy"), "--goal", str(tmp_path / "goal.png"), "--encoder", str(tmp_path / "enc"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("VOC ") and out.is_file()
    expected = value_order_correlation(encoder, _ramp(), _ramp()[-1])
    assert float(printed.split()[1]) == pytest.approx(expected, abs=1e-4)
    # a sentence goal needs a text tower
    assert cli([str(tmp_path / "clip.npy"), "--goal", "open the drawer", "--encoder", str(tmp_path / "enc"), "--out", str(out)]) == 2
    assert "has no text tower" in capsys.readouterr().err
    # a missing goal file is an error, not an instruction
    assert cli([str(tmp_path / "clip.npy"), "--goal", str(tmp_path / "gone.png"), "--encoder", "random", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--goal file" in err and "gone.png' does not exist" in err
