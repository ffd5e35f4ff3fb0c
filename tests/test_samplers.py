"""Tests of the VIP/LIV tuple samplers (vip_rl.data.samplers)."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from vip_rl.data import Video
from vip_rl.data.samplers import TupleSampler


def _videos(n: int = 6, length: int = 12, size: int = 16, seed: int = 0) -> list[Video]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        frames = rng.integers(0, 255, (length + i, size, size, 3), dtype=np.uint8)
        frames[:, 0, 0, 0] = np.arange(length + i)  # frame index stamped into a pixel
        frames[:, 0, 0, 1] = i  # video index stamped into a pixel
        out.append(Video(frames, text=f"task {i % 2}", source=f"file{i % 3}.h5:demo_{i}"))
    return out


def _plain(videos: list[Video], batch_size: int = 32, **kw) -> TupleSampler:
    return TupleSampler(videos, batch_size=batch_size, image_size=16, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), **kw)


def test_tuple_index_rules_follow_official_vip() -> None:
    videos = _videos()
    sampler = _plain(videos, batch_size=512, seed=3)
    for step in range(3):
        idx = sampler.sample_indices(step)
        length = sampler.lengths[idx["video"]]
        start, goal, cur, nxt = idx["frames"][:, :4].T
        assert np.all(start >= 0) and np.all(start < np.maximum(length - 2, 1))
        assert np.all(goal > start) and np.all(goal <= length - 1)
        assert np.all(cur >= start) and np.all(cur < goal)
        assert np.array_equal(nxt, np.minimum(cur + 1, goal))
        assert not idx["is_goal"].any()


def test_frames_come_from_the_indexed_video_and_frames() -> None:
    videos = _videos()
    sampler = _plain(videos, batch_size=16, seed=1)
    batch = sampler.batch(5)
    idx = sampler.sample_indices(5)
    assert batch.initial.dtype == torch.uint8 and batch.initial.shape == (16, 16, 16, 3)
    for row in range(16):
        v = int(idx["video"][row])
        for name, col in (("initial", 0), ("goal", 1), ("current", 2), ("next", 3)):
            assert np.array_equal(getattr(batch, name)[row].numpy(), videos[v].frames[idx["frames"][row, col]])
    assert torch.equal(batch.reward, batch.is_goal.float() - 1.0)


def test_batches_are_a_function_of_seed_and_step() -> None:
    videos = _videos()
    a = TupleSampler(videos, batch_size=8, image_size=12, seed=7)
    b = TupleSampler(videos, batch_size=8, image_size=12, seed=7)
    assert torch.equal(a.batch(4).current, b.batch(4).current)
    assert not torch.equal(a.batch(4).current, a.batch(5).current)
    it = a.iterate(3, prefetch=2)
    prefetched = [next(it) for _ in range(3)]
    it.close()
    # closing waits for the prefetch thread: no batch is still being made (a torch op caught at exit aborts a process)
    assert not [t for t in threading.enumerate() if t.name == "vip-rl-sampler"]
    for k, batch in enumerate(prefetched):
        assert batch.step == 3 + k and torch.equal(batch.goal, b.batch(3 + k).goal)


def test_ranks_split_the_global_batch_exactly() -> None:
    videos = _videos()
    full = TupleSampler(videos, batch_size=8, image_size=12, seed=2, with_text=True).batch(9)
    halves = [TupleSampler(videos, batch_size=8, image_size=12, seed=2, with_text=True, rank=r, world_size=2).batch(9) for r in range(2)]
    for name in ("initial", "goal", "current", "next", "text_frame", "is_goal", "label", "video_index"):
        assert torch.equal(getattr(full, name), torch.cat([getattr(h, name) for h in halves]))
    assert full.text == halves[0].text + halves[1].text


def test_crop_is_shared_across_the_tuple() -> None:
    # constant-colour frames with a marker column: the crop window must be the same for all 4 frames
    frames = np.zeros((10, 32, 32, 3), np.uint8)
    frames[:, :, 8, :] = 255
    sampler = TupleSampler([Video(frames)], batch_size=16, image_size=32, crop_scale=(0.3, 0.6), seed=0)
    batch = sampler.batch(0)
    for name in ("goal", "current", "next"):
        assert torch.equal(batch.initial, getattr(batch, name))
    assert batch.initial.dtype == torch.uint8
    # crops differ between tuples
    assert not all(torch.equal(batch.initial[0], batch.initial[i]) for i in range(1, 16))


def test_channel_shuffle_recolours_whole_tuples_and_nothing_else() -> None:
    videos = _videos()
    plain = _plain(videos, batch_size=64, seed=4, with_text=True)
    shuffled = _plain(videos, batch_size=64, seed=4, with_text=True, channel_shuffle_prob=0.5)
    a, b = plain.batch(2), shuffled.batch(2)
    perms = shuffled.channel_permutations(2)
    recoloured = (perms != np.arange(3)).any(1)
    assert 0 < recoloured.sum() < 64  # about half of the tuples
    for name in ("initial", "goal", "current", "next", "text_frame"):
        # every frame of a tuple gets its tuple's permutation; the tuples' frames are the unshuffled sampler's
        assert np.array_equal(getattr(b, name).numpy(), np.take_along_axis(getattr(a, name).numpy(), perms[:, None, None, :], -1))
        assert not torch.equal(getattr(a, name)[recoloured], getattr(b, name)[recoloured])
    assert torch.equal(a.is_goal, b.is_goal) and a.text == b.text
    # the permutations are a function of (seed, step), and the ranks slice the global batch
    halves = [_plain(videos, batch_size=64, seed=4, channel_shuffle_prob=0.5, rank=r, world_size=2).batch(2) for r in range(2)]
    assert torch.equal(torch.cat([h.current for h in halves]), b.current)
    full = _plain(videos, batch_size=64, seed=4, channel_shuffle_prob=1.0).channel_permutations(2)
    assert (full != np.arange(3)).any(1).all()


def test_colour_gains_scale_whole_tuples_as_the_recipe_draws_them() -> None:
    videos = _videos()
    plain = _plain(videos, batch_size=64, seed=4, with_text=True)
    gained = _plain(videos, batch_size=64, seed=4, with_text=True, colour_gain_prob=0.5, colour_gain_range=(0.7, 1.3))
    a, b = plain.batch(2), gained.batch(2)
    # the draw spelled out (td-sim's stages 5-6 depend on it to the bit): its own stream, half the tuples, U(low, high)
    rng = np.random.default_rng([0x6A1C, 4, 2])
    on = rng.random(64) < 0.5
    expected = np.where(on[:, None], rng.uniform(0.7, 1.3, (64, 3)), 1.0)
    assert np.array_equal(gained.colour_gains(2), expected) and 0 < on.sum() < 64
    scale = torch.from_numpy(expected).float().view(-1, 1, 1, 3)
    for name in ("initial", "goal", "current", "next", "text_frame"):
        # every frame of a tuple gets its tuple's gains, rounded back to uint8; untouched tuples are the plain sampler's
        x = getattr(a, name)
        assert torch.equal(getattr(b, name), (x.float() * scale).round().clamp(0, 255).to(torch.uint8))
        assert torch.equal(getattr(b, name)[~on], x[~on]) and not torch.equal(getattr(b, name)[on], x[on])
    assert torch.equal(a.is_goal, b.is_goal) and a.text == b.text
    halves = [_plain(videos, batch_size=64, seed=4, colour_gain_prob=0.5, rank=r, world_size=2).batch(2) for r in range(2)]
    assert torch.equal(torch.cat([h.current for h in halves]), b.current)
    # 0 (the default) draws nothing; a gain of exactly 1 leaves the frames as they were
    assert torch.equal(_plain(videos, batch_size=64, seed=4, colour_gain_range=(0.5, 2.0)).batch(2).current, a.current)
    unit = _plain(videos, batch_size=64, seed=4, colour_gain_prob=1.0, colour_gain_range=(1.0, 1.0)).batch(2)
    assert torch.equal(unit.current, a.current)


def test_final_goal_modes_and_text() -> None:
    videos = _videos()
    final = _plain(videos, batch_size=64, goal_mode="final", with_text=True, seed=0)
    idx = final.sample_indices(0)
    assert np.array_equal(idx["frames"][:, 1], final.lengths[idx["video"]] - 1)
    batch = final.batch(0)
    assert batch.text_frame is None and batch.text == [videos[i].text for i in batch.video_index.tolist()]
    mixed = _plain(videos, batch_size=256, final_goal_prob=1.0, final_goal_ok=[i % 2 == 0 for i in range(6)], seed=0)
    idx = mixed.sample_indices(0)
    ok = idx["video"] % 2 == 0
    assert np.all(idx["frames"][ok, 1] == mixed.lengths[idx["video"][ok]] - 1)
    liv = _plain(videos, batch_size=64, with_text=True, seed=0)
    idx = liv.sample_indices(0)
    length = liv.lengths[idx["video"]]
    assert np.all(idx["frames"][:, 4] >= np.ceil(0.95 * (length - 1))) and np.all(idx["frames"][:, 4] <= length - 1)
    assert liv.batch(0).text_frame is not None
    assert set(liv.batch(0).label.tolist()) == {0, 1}  # grouped by text


def test_source_weights_mix_sources() -> None:
    videos = _videos()
    sampler = _plain(videos, batch_size=600, source_weights={"file0.h5": 1.0, "file1.h5": 0.0, "file2.h5": 3.0}, seed=0)
    sources = np.array([videos[i].source.split(":")[0] for i in sampler.sample_indices(0)["video"]])
    assert (sources == "file1.h5").sum() == 0
    assert 0.15 < (sources == "file0.h5").mean() < 0.35


def test_frames_are_resized_to_the_frame_size() -> None:
    videos = [Video(np.zeros((5, 40, 40, 3), np.uint8)), Video(np.zeros((6, 24, 24, 3), np.uint8))]
    sampler = TupleSampler(videos, batch_size=4, image_size=20, seed=0)
    assert sampler.frames.shape == (11, 20, 20, 3)
    assert sampler.batch(0).goal.shape == (4, 20, 20, 3)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"videos": []}, ValueError, "non-empty"),
        ({"videos": [np.zeros((1, 8, 8, 3), np.uint8)]}, ValueError, "at least 2"),
        ({"videos": [np.zeros((4, 8, 8, 3), np.float32)]}, ValueError, "uint8"),
        ({"videos": ["clip.mp4"]}, TypeError, "Video or a uint8"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"batch_size": 3, "world_size": 2}, ValueError, "divisible"),
        ({"crop_scale": (0.0, 1.0)}, ValueError, "crop_scale"),
        ({"goal_mode": "last"}, ValueError, "goal_mode"),
        ({"final_goal_prob": 1.5}, ValueError, "final_goal_prob"),
        ({"with_text": True, "videos": [Video(np.zeros((4, 8, 8, 3), np.uint8))]}, ValueError, "text"),
        ({"source_weights": {"nope": 1.0}}, ValueError, "nope"),
        ({"final_goal_ok": [True]}, ValueError, "final_goal_ok"),
        ({"channel_shuffle_prob": 1.5}, ValueError, "channel_shuffle_prob"),
        ({"colour_gain_prob": -0.5}, ValueError, "colour_gain_prob"),
        ({"colour_gain_range": (0.0, 1.3)}, ValueError, "colour_gain_range"),
        ({"colour_gain_range": (1.3, 0.7)}, ValueError, "colour_gain_range"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type, match: str) -> None:
    args = {"videos": [np.zeros((4, 8, 8, 3), np.uint8)] * 2, "batch_size": 4, "image_size": 8}
    args.update(kwargs)
    videos = args.pop("videos")
    with pytest.raises(error, match=match):
        TupleSampler(videos, **args)


def test_goal_swap_takes_final_frames_of_the_same_group() -> None:
    videos = _videos(8)
    groups = ["a", "b"] * 4
    ok = [True, True, True, True, True, True, False, False]
    sampler = _plain(videos, batch_size=512, goal_mode="final", goal_swap_prob=1.0, groups=groups, final_goal_ok=ok, seed=0)
    idx = sampler.sample_indices(0)
    batch = sampler.batch(0)
    swapped = idx["goal_video"] != idx["video"]
    assert swapped.mean() > 0.4
    for row in np.flatnonzero(swapped)[:50]:
        v, gv = int(idx["video"][row]), int(idx["goal_video"][row])
        assert groups[v] == groups[gv] and ok[v] and ok[gv]
        assert np.array_equal(batch.goal[row].numpy(), videos[gv].frames[-1])
    assert np.all(idx["goal_video"][~np.array(ok)[idx["video"]]] == idx["video"][~np.array(ok)[idx["video"]]])


def test_crop_frames_whole_box_is_the_frame_and_a_corner_box_reads_that_corner() -> None:
    from vip_rl.data.samplers import crop_boxes, crop_frames

    frames = np.zeros((2, 8, 8, 3), np.uint8)
    frames[:, :4, :4] = 200  # the top-left quarter bright
    whole = np.array([[0.5, 0.5, 1.0, 1.0]] * 2)
    assert torch.equal(crop_frames(frames, whole, 8), torch.from_numpy(frames))
    corner = crop_frames(frames, np.array([[0.25, 0.25, 0.5, 0.5]] * 2), 4)
    assert corner.shape == (2, 4, 4, 3) and bool((corner == 200).all())
    boxes = crop_boxes(np.random.default_rng(0), 64, (0.5, 0.9), (0.9, 1 / 0.9))
    area = boxes[:, 2] * boxes[:, 3]
    assert boxes.shape == (64, 4) and area.min() >= 0.5 - 1e-9 and area.max() <= 0.9 + 1e-9
    assert bool(np.all(np.abs(boxes[:, :2] - 0.5) <= (1 - boxes[:, 2:]) / 2 + 1e-9))  # every box inside the frame
