"""The spare-core path of the value head (vip_rl.pretrain._side_threads): its feature pass on two threads and its target
MLP on a second thread must write the very tensors the serial path writes."""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
import torch

from vip_rl import pretrain as trainer
from vip_rl.data import Video
from vip_rl.pretrain import ValueHeadConfig, fit_value_head


@pytest.fixture()
def one_thread():
    """One torch thread, as ``make weights`` trains (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def pools_used(monkeypatch):
    """Counts the calls of ``_side_threads`` that handed out a pool (the side path really ran)."""
    used: list[int] = []
    real = trainer._side_threads

    @contextmanager
    def counting(*args, **kwargs):
        with real(*args, **kwargs) as pool:
            used.append(pool is not None)
            yield pool

    monkeypatch.setattr(trainer, "_side_threads", counting)
    return used


def _moving_square(n: int = 6, length: int = 12, size: int = 24) -> list[Video]:
    rng = np.random.default_rng(1)
    videos = []
    for i in range(n):
        frames = np.repeat(rng.integers(0, 120, (1, size, size, 3), dtype=np.uint8), length, axis=0)
        for t in range(length):
            x = 1 + (size - 8) * t // (length - 1)
            frames[t, 8:14, x : x + 6, 0] = 255
        videos.append(Video(frames, text="move right", source=f"square:{i}"))
    return videos


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.slow  # two value-head fits (~2 s)
def test_value_head_side_threads_fit_the_same_tensors(monkeypatch, one_thread, pools_used) -> None:
    from vip_rl.encoders import build_encoder

    encoder = build_encoder("cnn", embed_dim=8, image_size=24, cnn_channels=(4, 8), head_hidden=(16,), seed=3)
    videos = _moving_square(5, 10)
    config = ValueHeadConfig(steps=30, batch_size=16, hidden=(16,), dim=4, views=3, crop_scale=(0.8, 1.0))
    fits = {}
    for side in (False, True):
        monkeypatch.setattr(trainer, "SIDE_THREADS", side)
        new, stats = fit_value_head(encoder, videos, groups=["a"] * 5, final_goal_ok=[True] * 5, config=config)
        fits[side] = (_state(new), stats["loss_last"])
    assert pools_used == [False, True]
    assert fits[False][1] == fits[True][1]
    assert all(torch.equal(fits[False][0][k], fits[True][0][k]) for k in fits[False][0])


@pytest.mark.parametrize("device, cores, threads, ranks, spare", [
    ("cpu", 2, 1, 1, True),     # make weights: one torch thread on two cores
    ("cpu", 2, 2, 1, False),    # torch's default on two cores: nothing to spare
    ("cpu", 2, 1, 2, False),    # two DDP ranks of one thread each
    ("cpu", 16, 4, 2, True),
    ("cuda", 16, 1, 1, False),  # one CUDA stream: no overlap to win
])
def test_a_side_thread_only_where_a_core_is_spare(monkeypatch, device: str, cores: int, threads: int, ranks: int, spare: bool) -> None:
    monkeypatch.setattr(trainer.os, "sched_getaffinity", lambda _pid: set(range(cores)), raising=False)
    monkeypatch.setattr(trainer.torch, "get_num_threads", lambda: threads)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(ranks))
    assert trainer._spare_cores(torch.device(device)) is spare
    monkeypatch.setattr(trainer, "SIDE_THREADS", not spare)  # the override wins either way
    assert trainer._spare_cores(torch.device(device)) is (not spare)
