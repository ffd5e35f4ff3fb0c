"""The temporal-distance objective (vip_rl.objectives.temporal_distance_loss) and its trainer path.

* the loss against a plain, loop-based transcription of its formula on a fixed batch;
* a short run on a toy chain of states recovers distances proportional to steps;
* the sampler's geometric / cross-video goals; the trainer's target network (exact resume, text tower).
"""
from __future__ import annotations

import dataclasses

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vip_rl.data.samplers import TupleSampler
from vip_rl.objectives import head_distances, temporal_distance_loss
from vip_rl.pretrain import CHECKPOINT_FILE, PretrainConfig, pretrain

B, H, D = 6, 2, 3  # batch, heads, dims per head


def _batch(seed: int = 0, scale: float = 3.0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(B, H * D, generator=gen, dtype=torch.float64) * scale).requires_grad_(True) for _ in range(5)]


def _naive(es, eg, ts, ts1, tg, *, gamma: float, expectile: float, heads: int, is_goal: list[bool],
           next_is_goal: list[bool] | None = None) -> torch.Tensor:
    """Loop transcription: V_h(a, g) = -sqrt(H) * ||a_h - g_h||; expectile-weighted squared TD error, summed over heads."""
    d = es.shape[1] // heads

    def value_nograd(a: torch.Tensor, g: torch.Tensor, h: int) -> float:
        return float(value(a.detach(), g.detach(), h))

    def value(a: torch.Tensor, g: torch.Tensor, h: int) -> torch.Tensor:
        return -math.sqrt(heads) * torch.sqrt(sum((a[h * d + k] - g[h * d + k]) ** 2 for k in range(d)))

    total = es.new_zeros(())
    for h in range(heads):
        per_sample = []
        for i in range(es.shape[0]):
            r = 0.0 if is_goal[i] else -1.0
            m = 0.0 if is_goal[i] or (next_is_goal is not None and next_is_goal[i]) else 1.0
            q = r + gamma * m * float(value_nograd(ts1[i], tg[i], h))
            next_min = min(float(value_nograd(ts1[i], tg[i], k)) for k in range(heads))
            now_mean = sum(float(value_nograd(ts[i], tg[i], k)) for k in range(heads)) / heads
            adv = r + gamma * m * next_min - now_mean
            w = expectile if adv >= 0 else 1.0 - expectile
            per_sample.append(w * (q - value(es[i], eg[i], h)) ** 2)
        total = total + sum(per_sample) / len(per_sample)
    return total


@pytest.mark.parametrize("gamma,expectile,heads", [(0.99, 0.7, 2), (0.9, 0.5, 1), (0.98, 0.95, 3)])
def test_loss_matches_plain_transcription(gamma: float, expectile: float, heads: int) -> None:
    gen = torch.Generator().manual_seed(1)
    es, eg, ts, ts1, tg = [(torch.randn(B, heads * D, generator=gen, dtype=torch.float64) * 3).requires_grad_(True) for _ in range(5)]
    is_goal = [False, True, False, False, False, True]
    loss, metrics = temporal_distance_loss(es, eg, ts, ts1, tg, gamma=gamma, expectile=expectile, heads=heads, is_goal=torch.tensor(is_goal))
    ref = _naive(es, eg, ts, ts1, tg, gamma=gamma, expectile=expectile, heads=heads, is_goal=is_goal)
    assert torch.allclose(loss, ref, rtol=1e-9, atol=1e-9), (float(loss), float(ref))
    grads = torch.autograd.grad(loss, [es, eg, ts, ts1, tg], allow_unused=True)
    ref_grads = torch.autograd.grad(ref, [es, eg], allow_unused=True)
    assert torch.allclose(grads[0], ref_grads[0]) and torch.allclose(grads[1], ref_grads[1])
    assert all(g is None for g in grads[2:]), "the target embeddings must not receive gradients"
    assert 0.0 <= float(metrics["advantage_pos"]) <= 1.0


def test_next_is_goal_stops_bootstrapping() -> None:
    """s' reaches the goal (e.g. another successful episode's final frame): target -1, whatever V(s', g) says."""
    es, eg, ts, ts1, tg = _batch(2)
    is_goal = [False, False, True, False, False, False]
    next_is_goal = [True, False, False, True, False, False]
    loss, _ = temporal_distance_loss(es, eg, ts, ts1, tg, gamma=0.9, expectile=0.7, heads=H, is_goal=torch.tensor(is_goal),
                                     next_is_goal=torch.tensor(next_is_goal))
    ref = _naive(es, eg, ts, ts1, tg, gamma=0.9, expectile=0.7, heads=H, is_goal=is_goal, next_is_goal=next_is_goal)
    assert torch.allclose(loss, ref, rtol=1e-9, atol=1e-9)
    plain, _ = temporal_distance_loss(es, eg, ts, ts1, tg, gamma=0.9, expectile=0.7, heads=H, is_goal=torch.tensor(is_goal))
    assert not torch.allclose(loss, plain)


def test_head_distances_make_the_full_l2_distance_their_rms() -> None:
    a, g = torch.randn(4, 6), torch.randn(4, 6)
    per_head = head_distances(a, g, heads=2)  # [2, 4]
    assert per_head.shape == (2, 4)
    assert torch.allclose(torch.linalg.vector_norm(a - g, dim=-1), per_head.pow(2).mean(0).sqrt(), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs,match",
    [({"gamma": 1.0}, "gamma"), ({"expectile": 0.3}, "expectile"), ({"expectile": 1.0}, "expectile"), ({"heads": 4}, "heads"),
     ({"heads": 0}, "heads")],
)
def test_argument_errors(kwargs: dict, match: str) -> None:
    es, eg, ts, ts1, tg = _batch()
    with pytest.raises(ValueError, match=match):
        temporal_distance_loss(es, eg, ts, ts1, tg, **kwargs)


def test_shape_errors_name_the_tensor() -> None:
    es, eg, ts, ts1, tg = _batch()
    with pytest.raises(ValueError, match="target_g"):
        temporal_distance_loss(es, eg, ts, ts1, tg[:3])


@pytest.mark.slow  # trains the toy chain to convergence (~3 s alone, far more under load)
def test_toy_chain_recovers_distances_proportional_to_steps() -> None:
    """A chain of N states walked both ways (one video each way): the learned distance counts the steps."""
    n, dim, gamma = 12, 8, 0.95
    torch.manual_seed(0)
    table = torch.nn.Parameter(torch.randn(n, 2 * dim) * 0.1)
    target = table.detach().clone()
    opt = torch.optim.Adam([table], lr=3e-2)
    rng = np.random.default_rng(0)
    for _ in range(1500):
        s = rng.integers(0, n, 128)
        direction = rng.choice([-1, 1], 128)
        direction[s == 0], direction[s == n - 1] = 1, -1
        s1 = s + direction
        ahead = np.where(direction > 0, n - 1 - s, s)  # steps left in this walk
        offset = np.minimum(rng.geometric(1 - gamma, 128), ahead)
        goal = np.where(rng.random(128) < 0.375, rng.integers(0, n, 128), s + direction * offset)
        loss, _ = temporal_distance_loss(table[s], table[goal], target[s], target[s1], target[goal], gamma=gamma,
                                         expectile=0.7, heads=2, is_goal=torch.from_numpy(goal == s))
        opt.zero_grad()
        loss.backward()
        opt.step()
        target.lerp_(table.detach(), 0.05)
    with torch.no_grad():
        learned = torch.linalg.vector_norm(table[0] - table, dim=-1).numpy()[1:]
    steps = np.arange(1, n)
    # A line of states embeds with additive distances: the fit lands between the discounted fixed point
    # (1 - gamma^k) / (1 - gamma) and k itself (the expectile favours the larger targets); both are ~k here.
    discounted = (1 - gamma ** steps) / (1 - gamma)
    assert np.all(learned >= 0.85 * discounted) and np.all(learned <= 1.15 * steps), learned
    assert np.corrcoef(learned, steps)[0, 1] > 0.99
    assert np.all(np.diff(learned) > 0), learned  # strictly more steps -> strictly farther


def _videos(n: int = 4, length: int = 10) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (length + i, 8, 8, 3), dtype=np.uint8) for i in range(n)]


def test_geometric_sampler_goals() -> None:
    videos = _videos()
    kw = dict(batch_size=4000, image_size=8, crop_scale=(1, 1), crop_ratio=(1, 1), goal_mode="geometric", geometric_p=0.2, seed=0)
    idx = TupleSampler(videos, random_goal_prob=0.0, **kw).sample_indices(0)
    video, goal_video, frames = idx["video"], idx["goal_video"], idx["frames"]
    current, goal, nxt = frames[:, 2], frames[:, 1], frames[:, 3]
    length = np.array([len(v) for v in videos])[video]
    assert np.all(goal_video == video) and np.all(nxt == current + 1) and np.all(nxt <= length - 1)
    assert np.all(goal > current) and np.all(goal <= length - 1)
    # geometric(p) offsets clipped at the last frame: below the second-last frame P(offset = 1) = p
    early = current < length - 2
    assert abs(np.mean(goal[early] - current[early] == 1) - 0.2) < 0.03
    # with random goals: a quarter of the goals are any frame of any of the 4 videos (3/4 of those another video)
    sampler = TupleSampler(videos, random_goal_prob=0.25, **kw)
    idx = sampler.sample_indices(0)
    video, goal_video, frames = idx["video"], idx["goal_video"], idx["frames"]
    assert 0.15 < np.mean(goal_video != video) < 0.23
    assert np.all(frames[:, 1] < sampler.lengths[goal_video])
    # the materialised goal frame is the indexed frame of the goal video
    batch = sampler.batch(0)
    for i in range(40):
        np.testing.assert_array_equal(batch.goal[i].numpy(), videos[goal_video[i]][frames[i, 1]])
        np.testing.assert_array_equal(batch.next[i].numpy(), videos[video[i]][frames[i, 3]])


def _tiny_tdist(**kw) -> PretrainConfig:
    base = dict(objective="tdist", steps=8, batch_size=8, image_size=24, embed_dim=8, cnn_channels=(4, 8), head_hidden=(16,),
                eval_every=4, ckpt_every=4, eval_videos=3, log_every=2, lr=1e-3, prefetch=0, seed=0, gamma=0.9, target_tau=0.1)
    base.update(kw)
    return PretrainConfig(**base)


def _synthetic() -> list:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_pretrain import synthetic_videos

    return synthetic_videos()


@pytest.mark.slow  # three short training runs (uninterrupted, interrupted, resumed)
def test_tdist_resume_restores_the_target_network(tmp_path: Path) -> None:
    videos = _synthetic()
    straight = pretrain(_tiny_tdist(), videos, out_dir=tmp_path / "straight", progress=False)
    pretrain(_tiny_tdist(), videos, out_dir=tmp_path / "sliced", progress=False, stop_after=4)
    state = torch.load(tmp_path / "sliced" / CHECKPOINT_FILE, weights_only=True)
    assert state["step"] == 4 and "target" in state
    resumed = pretrain(_tiny_tdist(), videos, out_dir=tmp_path / "sliced", progress=False)
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    # a tdist checkpoint without its target network is refused by name
    del state["target"]
    torch.save(state, tmp_path / "sliced" / CHECKPOINT_FILE)
    with pytest.raises(ValueError, match="target network"):
        pretrain(_tiny_tdist(steps=12), videos, out_dir=tmp_path / "sliced", progress=False)


def test_tdist_with_text_tower_trains_the_projection_only_from_goal_frames(tmp_path: Path) -> None:
    videos = _synthetic()
    config = _tiny_tdist(text="hashing", text_weight=1.0)
    encoder = pretrain(config, videos, out_dir=tmp_path, progress=False, final_goal_ok=[True] * len(videos))
    assert encoder.has_text and encoder.metric == "l2"
    z = encoder.encode_text([videos[0].text])
    assert z.shape == (1, 8) and torch.isfinite(z).all()
    import csv

    with open(tmp_path / "log.csv") as handle:
        tags = {r["tag"] for r in csv.DictReader(handle)}
    assert {"train/td_loss", "train/text_loss", "eval/voc_text"} <= tags


@pytest.mark.parametrize(
    "kwargs,match",
    [({"expectile": 0.2}, "expectile"), ({"value_heads": 3}, "value_heads"), ({"target_tau": 0.0}, "target_tau"),
     ({"random_goal_prob": 1.5}, "random_goal_prob"), ({"head_hidden": (16,), "arch": "resnet18"}, "head_hidden"),
     ({"recon_weight": -1.0}, "recon_weight must be >= 0"), ({"recon_weight": 1.0, "objective": "vip"}, "needs objective='tdist'"),
     ({"recon_focus": 0.5}, r"recon_focus must be in \[0, 1\] and needs recon_weight > 0"),
     ({"recon_weight": 1.0, "recon_focus": 1.5}, r"recon_focus must be in \[0, 1\]"),
     ({"recon_full_size": True}, "recon_full_size needs recon_weight > 0")],
)
def test_tdist_config_is_checked(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _tiny_tdist(**kwargs)


def test_cli_trains_a_tdist_encoder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vip_rl.encoders import load_encoder
    from vip_rl.pretrain import cli

    videos = _synthetic()[:6]
    np.savez(tmp_path / "clips.npz", **{f"v{i}": v.frames for i, v in enumerate(videos)})
    rc = cli(["--data", str(tmp_path / "clips.npz"), "--objective", "tdist", "--out", str(tmp_path / "run"), "--steps", "4",
              "--batch-size", "4", "--image-size", "24", "--embed-dim", "8", "--cnn-channels", "4,8", "--head-hidden", "16",
              "--expectile", "0.8", "--value-heads", "2", "--target-tau", "0.05", "--random-goal-prob", "0.5",
              "--eval-videos", "2", "--no-progress", "--prefetch", "0"])
    assert rc == 0 and "encoder written" in capsys.readouterr().out
    encoder = load_encoder(tmp_path / "run" / "encoder")
    assert encoder.metric == "l2" and encoder.config["head_hidden"] == [16]
    state = torch.load(tmp_path / "run" / CHECKPOINT_FILE, weights_only=True)
    assert "target" in state and '"expectile": 0.8' in state["pretrain_config"]


@pytest.mark.slow
def test_cli_passes_the_focused_reconstruction_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vip_rl.pretrain import cli

    videos = _synthetic()[:6]
    np.savez(tmp_path / "clips.npz", **{f"v{i}": v.frames for i, v in enumerate(videos)})
    common = ["--data", str(tmp_path / "clips.npz"), "--objective", "tdist", "--steps", "2", "--batch-size", "4",
              "--image-size", "32", "--embed-dim", "8", "--cnn-channels", "4,8", "--eval-videos", "2", "--no-progress",
              "--prefetch", "0"]
    assert cli([*common, "--out", str(tmp_path / "run"), "--recon-weight", "1", "--recon-focus", "0.5"]) == 0
    state = torch.load(tmp_path / "run" / CHECKPOINT_FILE, weights_only=True)
    assert '"recon_focus": 0.5' in state["pretrain_config"] and "decoder" in state
    with pytest.raises(SystemExit, match="^2$"):  # a usage error, the message on stderr
        cli([*common, "--out", str(tmp_path / "bad"), "--recon-focus", "0.5"])  # without --recon-weight
    assert "recon_focus must be in [0, 1] and needs recon_weight > 0" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    assert cli([*common, "--out", str(tmp_path / "full"), "--recon-weight", "1", "--recon-full-size"]) == 0
    state = torch.load(tmp_path / "full" / CHECKPOINT_FILE, weights_only=True)
    assert '"recon_full_size": true' in state["pretrain_config"] and state["decoder"]["net.7.weight"].shape == (16, 3, 4, 4)


def test_geometric_sampler_swaps_final_goals_within_a_group_and_marks_next_is_goal() -> None:
    videos = _videos(n=6)
    groups = ["a", "a", "a", "b", "b", "b"]
    ok = [True, True, False, True, True, True]
    sampler = TupleSampler(videos, batch_size=6000, image_size=8, crop_scale=(1, 1), crop_ratio=(1, 1), goal_mode="geometric",
                           geometric_p=0.5, random_goal_prob=0.0, goal_swap_prob=1.0, groups=groups, final_goal_ok=ok, seed=0)
    idx = sampler.sample_indices(3)
    video, goal_video, frames, nig = idx["video"], idx["goal_video"], idx["frames"], idx["next_is_goal"]
    lengths = sampler.lengths
    final_goal = frames[:, 1] == lengths[goal_video] - 1
    swapped = goal_video != video
    # only final-frame goals of final_goal_ok videos are swapped, and only to final_goal_ok videos of the same group
    assert swapped.any()
    assert np.all(final_goal[swapped]) and np.all(np.asarray(ok)[video[swapped]]) and np.all(np.asarray(ok)[goal_video[swapped]])
    assert np.all(np.asarray(groups)[video[swapped]] == np.asarray(groups)[goal_video[swapped]])
    # s' reaches the goal exactly when s' is a good video's last frame and the goal a good final frame of its group
    expect = (frames[:, 3] == lengths[video] - 1) & final_goal & np.asarray(ok)[video] & np.asarray(ok)[goal_video]
    np.testing.assert_array_equal(nig, expect)
    assert sampler.batch(3).next_is_goal is not None
    assert TupleSampler(videos, batch_size=8, image_size=8).batch(0).next_is_goal is None  # VIP modes: not defined


def test_recon_loss_matches_plain_transcription() -> None:
    from vip_rl.pretrain import recon_loss

    g = torch.Generator().manual_seed(0)
    decoded, pixels = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    total = 0.0
    for b in range(2):
        for c in range(3):
            for i in range(4):
                for j in range(4):
                    block = pixels[b, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean()
                    total += float(decoded[b, c, i, j] - block) ** 2
    assert recon_loss(decoded, pixels).item() == pytest.approx(total / (2 * 3 * 4 * 4), rel=1e-5)


def test_focused_recon_loss_matches_plain_transcription() -> None:
    from vip_rl.pretrain import recon_loss

    g = torch.Generator().manual_seed(1)
    decoded, pixels, first = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    weighted = changes = plain = 0.0
    for b in range(2):
        for i in range(4):
            for j in range(4):
                now = [float(pixels[b, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean()) for c in range(3)]
                then = [float(first[b, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean()) for c in range(3)]
                error = [(float(decoded[b, c, i, j]) - now[c]) ** 2 for c in range(3)]
                change = sum(abs(now[c] - then[c]) for c in range(3)) / 3
                weighted += change * sum(error) / 3
                changes += change
                plain += sum(error)
    plain /= 2 * 3 * 4 * 4
    expected = 0.25 * plain + 0.75 * weighted / changes
    assert recon_loss(decoded, pixels, first, 0.75).item() == pytest.approx(expected, rel=1e-5)
    assert recon_loss(decoded, pixels, first, 0.0).item() == pytest.approx(plain, rel=1e-5)  # focus 0: the plain error
    # unchanged pixels carry no focused weight: only the changed corner counts
    same = pixels.clone()
    same[:, :, :2, :2] += 1.0
    corner = ((decoded - torch.nn.functional.avg_pool2d(pixels, 2)) ** 2)[:, :, 0, 0].mean()
    assert recon_loss(decoded, pixels, same, 1.0).item() == pytest.approx(corner.item(), rel=1e-5)
    with pytest.raises(ValueError, match="recon_loss with focus > 0 needs the first frames"):
        recon_loss(decoded, pixels, None, 0.5)


def test_full_size_recon_loss_matches_plain_transcription() -> None:
    from vip_rl.pretrain import ReconDecoder, recon_loss

    g = torch.Generator().manual_seed(2)
    decoded, pixels, first = (torch.randn(2, 3, 4, 4, generator=g) for _ in range(3))
    weighted = changes = plain = 0.0
    for b in range(2):
        for i in range(4):
            for j in range(4):
                error = [(float(decoded[b, c, i, j]) - float(pixels[b, c, i, j])) ** 2 for c in range(3)]
                change = sum(abs(float(pixels[b, c, i, j]) - float(first[b, c, i, j])) for c in range(3)) / 3
                weighted += change * sum(error) / 3
                changes += change
                plain += sum(error)
    plain /= 2 * 3 * 4 * 4
    assert recon_loss(decoded, pixels).item() == pytest.approx(plain, rel=1e-5)  # same side: no pooling
    assert recon_loss(decoded, pixels, first, 0.5).item() == pytest.approx(0.5 * plain + 0.5 * weighted / changes, rel=1e-5)
    with pytest.raises(ValueError, match=r"decodes at the frames' side or half of it, got \(2, 3, 4, 4\) for frames \(2, 3, 16, 16\)"):
        recon_loss(decoded, torch.zeros(2, 3, 16, 16))
    z = torch.zeros(5, 8)
    assert ReconDecoder(8, 32)(z).shape == (5, 3, 16, 16)
    assert ReconDecoder(8, 32, full_size=True)(z).shape == (5, 3, 32, 32)


@pytest.mark.slow
def test_tdist_full_size_recon_trains_its_larger_decoder(tmp_path: Path) -> None:
    import csv

    config = _tiny_tdist(recon_weight=1.0, recon_focus=0.5, recon_full_size=True, image_size=32, steps=20, log_every=10,
                         eval_every=0, ckpt_every=0)
    pretrain(config, _synthetic(), out_dir=tmp_path, progress=False)
    with open(tmp_path / "log.csv") as handle:
        recon = [float(r["value"]) for r in csv.DictReader(handle) if r["tag"] == "train/recon_loss"]
    assert len(recon) == 2 and all(np.isfinite(recon)) and recon[-1] < recon[0]
    decoder = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)["decoder"]
    assert decoder["net.5.weight"].shape == (32, 16, 4, 4) and decoder["net.7.weight"].shape == (16, 3, 4, 4)


def test_geometric_sampler_gives_each_tuple_its_videos_first_frame_as_o0() -> None:
    videos = _videos(n=4)
    sampler = TupleSampler(videos, batch_size=64, image_size=8, crop_scale=(1, 1), crop_ratio=(1, 1), goal_mode="geometric",
                           geometric_p=0.2, seed=0)
    idx = sampler.sample_indices(0)
    assert np.all(idx["frames"][:, 0] == 0) and np.any(idx["frames"][:, 2] > 0)
    batch = sampler.batch(0)
    first = torch.stack([torch.from_numpy(videos[int(v)][0]) for v in batch.video_index])
    assert torch.equal(batch.initial, first)


@pytest.mark.slow
def test_tdist_focused_recon_trains(tmp_path: Path) -> None:
    import csv

    config = _tiny_tdist(recon_weight=1.0, recon_focus=0.9, image_size=32, steps=40, log_every=10, eval_every=0, ckpt_every=0)
    pretrain(config, _synthetic(), out_dir=tmp_path, progress=False)
    with open(tmp_path / "log.csv") as handle:
        recon = [float(r["value"]) for r in csv.DictReader(handle) if r["tag"] == "train/recon_loss"]
    assert len(recon) == 4 and all(np.isfinite(recon)) and recon[-1] < recon[0]


def test_tdist_recon_trains_its_decoder_and_exports_the_encoder_alone(tmp_path: Path) -> None:
    import csv

    from vip_rl.encoders import load_encoder

    videos = _synthetic()
    config = _tiny_tdist(recon_weight=1.0, image_size=32, steps=40, log_every=10, eval_every=0, ckpt_every=0)
    encoder = pretrain(config, videos, out_dir=tmp_path, progress=False)
    with open(tmp_path / "log.csv") as handle:
        recon = [float(r["value"]) for r in csv.DictReader(handle) if r["tag"] == "train/recon_loss"]
    assert len(recon) == 4 and recon[-1] < 0.7 * recon[0]
    state = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    assert "decoder" in state and not any(k.startswith("decoder") for k in state["model"])
    assert load_encoder(tmp_path / "encoder").state_dict().keys() == encoder.state_dict().keys()
    with pytest.raises(ValueError, match="recon_weight needs an image_size divisible by 16, got 24"):
        pretrain(_tiny_tdist(recon_weight=1.0), videos, out_dir=tmp_path / "bad", progress=False)


@pytest.mark.slow  # three short training runs (uninterrupted, interrupted, resumed)
def test_tdist_recon_resumes_exactly(tmp_path: Path) -> None:
    videos = _synthetic()
    config = _tiny_tdist(recon_weight=1.0, image_size=32)
    straight = pretrain(config, videos, out_dir=tmp_path / "straight", progress=False)
    pretrain(config, videos, out_dir=tmp_path / "sliced", progress=False, stop_after=4)
    resumed = pretrain(config, videos, out_dir=tmp_path / "sliced", progress=False)
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    a = torch.load(tmp_path / "straight" / CHECKPOINT_FILE, weights_only=True)["decoder"]
    b = torch.load(tmp_path / "sliced" / CHECKPOINT_FILE, weights_only=True)
    assert all(torch.equal(v, b["decoder"][k]) for k, v in a.items())
    del b["decoder"]  # a recon checkpoint without its decoder is refused by name
    torch.save(b, tmp_path / "sliced" / CHECKPOINT_FILE)
    with pytest.raises(ValueError, match="must hold the decoder"):
        pretrain(dataclasses.replace(config, steps=12), videos, out_dir=tmp_path / "sliced", progress=False)
