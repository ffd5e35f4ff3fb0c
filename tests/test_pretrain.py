"""Tests of the VIP/LIV trainer (vip_rl.pretrain): resume after a kill, DDP == single process, CLI."""
from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from vip_rl.data import Video
from vip_rl.encoders import load_encoder
from vip_rl.pretrain import CHECKPOINT_FILE, PretrainConfig, ResumeMismatchError, cli, pretrain

ROOT = Path(__file__).resolve().parents[1]


def synthetic_videos(n: int = 10, length: int = 14, size: int = 24, seed: int = 0) -> list[Video]:
    """A red square moving right over a blue background: progress is visible."""
    rng = np.random.default_rng(seed)
    videos = []
    for i in range(n):
        # textured background in every channel (a constant channel leaves directions with ~0 gradient,
        # where Adam turns float noise into +-lr steps and runs stop being comparable)
        frames = np.repeat(rng.integers(0, 120, (1, size, size, 3), dtype=np.uint8), length, axis=0)
        x0 = int(rng.integers(0, size // 3))
        for t in range(length):
            x = x0 + (size - 6 - x0) * t // (length - 1)
            frames[t, 8:14, x : x + 6, 0] = 255
        videos.append(Video(frames, text=f"move the square right {'quickly' if i % 2 else 'now'}", source=f"synthetic.npz:{i}"))
    return videos


def tiny_config(**kw) -> PretrainConfig:
    base = dict(steps=12, batch_size=8, image_size=24, embed_dim=8, cnn_channels=(4, 8), eval_every=6, ckpt_every=6, eval_videos=3,
                log_every=3, lr=1e-3, prefetch=0, num_negatives=1, seed=0)
    base.update(kw)
    return PretrainConfig(**base)


def _weights(encoder: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in encoder.state_dict().items()}


def test_training_writes_checkpoint_logs_and_encoder(tmp_path: Path) -> None:
    encoder = pretrain(tiny_config(), synthetic_videos(), out_dir=tmp_path, progress=False)
    assert (tmp_path / CHECKPOINT_FILE).is_file() and (tmp_path / "encoder" / "model.safetensors").is_file()
    with open(tmp_path / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    tags = {r["tag"] for r in rows}
    assert {"train/loss", "train/samples_per_s", "train/data_time_share", "eval/voc_own", "eval/voc_other"} <= tags
    reloaded = load_encoder(tmp_path / "encoder")
    frames = synthetic_videos(1)[0].frames
    assert torch.allclose(reloaded.encode_images(frames), encoder.encode_images(frames), atol=1e-6)
    # the trainer checkpoint itself loads as an encoder too
    assert torch.allclose(load_encoder(tmp_path / CHECKPOINT_FILE).encode_images(frames), encoder.encode_images(frames), atol=1e-6)


@pytest.mark.slow  # three training runs and a SIGKILLed process (~12 s)
def test_kill_and_resume_gives_identical_weights(tmp_path: Path) -> None:
    """2N steps uninterrupted == N steps, SIGKILL (mid-way to 2N), resume to 2N."""
    videos = synthetic_videos()
    config = tiny_config(prefetch=2)
    straight = pretrain(config, videos, out_dir=tmp_path / "straight", progress=False)
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        import torch
        # same intra-op thread count as this process: a different one changes float reduction order
        torch.set_num_threads({torch.get_num_threads()})
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_pretrain import synthetic_videos, tiny_config
        from vip_rl.pretrain import pretrain
        def die(step, metrics):
            if step >= 9:  # after the step-6 checkpoint, before the next one
                os.kill(os.getpid(), signal.SIGKILL)
        pretrain(tiny_config(prefetch=2), synthetic_videos(), out_dir={str(tmp_path / 'killed')!r}, progress=False, on_step=die)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    state = torch.load(tmp_path / "killed" / CHECKPOINT_FILE, weights_only=True)
    assert state["step"] == 6
    resumed = pretrain(config, videos, out_dir=tmp_path / "killed", progress=False)
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    with open(tmp_path / "killed" / "log.csv") as handle:
        steps = [int(r["step"]) for r in csv.DictReader(handle) if r["tag"] == "train/loss"]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # rows of the killed run past step 6 dropped


def test_stop_after_time_slices(tmp_path: Path) -> None:
    videos = synthetic_videos()
    config = tiny_config(lr_schedule="cosine", warmup_steps=3)
    straight = pretrain(config, videos, out_dir=tmp_path / "a", progress=False)
    pretrain(config, videos, out_dir=tmp_path / "b", progress=False, stop_after=5)
    first_slice = float(torch.load(tmp_path / "b" / CHECKPOINT_FILE, weights_only=True)["train_seconds"])
    sliced = pretrain(config, videos, out_dir=tmp_path / "b", progress=False)
    for key, value in _weights(straight).items():
        assert torch.equal(value, sliced.state_dict()[key]), key
    # the run's recorded seconds count both calls: the resumed one adds to what the first slice recorded
    final = float(torch.load(tmp_path / "b" / CHECKPOINT_FILE, weights_only=True)["train_seconds"])
    recorded = json.loads((tmp_path / "b" / "encoder" / "config.json").read_text())["training"]["train_seconds"]
    assert 0 < first_slice < final and recorded == pytest.approx(final, abs=0.1)
    assert sliced.config["training"]["train_seconds"] == recorded
    # a finished run called again trains nothing and adds nothing (a recipe resumed over its finished stages)
    again = pretrain(config, videos, out_dir=tmp_path / "b", progress=False)
    assert again.config["training"]["train_seconds"] == recorded
    assert json.loads((tmp_path / "b" / "encoder" / "config.json").read_text())["training"]["train_seconds"] == recorded


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out_dir: str, objective: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    pretrain(tiny_config(objective=objective, text="hashing" if objective == "liv" else "auto", eval_every=0),
             synthetic_videos(), out_dir=out_dir, progress=False)


@pytest.mark.slow  # two torchrun-style processes per objective (~20 s each)
@pytest.mark.parametrize("objective", ["vip", "liv", "tdist"])
def test_ddp_two_processes_match_single_process(tmp_path: Path, objective: str) -> None:
    import torch.multiprocessing as mp

    text = "hashing" if objective == "liv" else "auto"
    single = pretrain(tiny_config(objective=objective, text=text, eval_every=0), synthetic_videos(), out_dir=tmp_path / "single", progress=False)
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path / "ddp"), objective), nprocs=2, join=True)
    ddp = load_encoder(tmp_path / "ddp" / "encoder")
    for key, value in single.state_dict().items():
        if objective in ("vip", "tdist") and key == "vision.head.bias":
            # L2 distances are invariant to a shared bias: its true gradient is exactly 0, and Adam
            # turns the float noise (~1e-8) of either run into +-lr steps, so it is not comparable.
            continue
        assert torch.allclose(value, ddp.state_dict()[key], atol=1e-5, rtol=1e-4), key


def test_liv_and_fine_tuning(tmp_path: Path) -> None:
    videos = synthetic_videos()
    liv = pretrain(tiny_config(objective="liv", text="hashing"), videos, out_dir=tmp_path / "liv", progress=False)
    assert liv.metric == "cos" and liv.has_text
    with open(tmp_path / "liv" / "log.csv") as handle:
        tags = {r["tag"] for r in csv.DictReader(handle)}
    assert {"train/nce", "train/vip_text", "eval/voc_text"} <= tags
    tuned = pretrain(tiny_config(objective="liv", text="hashing", steps=3, seed=1), videos, out_dir=tmp_path / "tuned",
                     init_from=tmp_path / "liv", progress=False)
    # started from the LIV weights, not from scratch: the text tower's projection moved only a little
    assert tuned.config["arch"] == "cnn"
    with pytest.raises(ValueError, match="metric"):
        pretrain(tiny_config(steps=2), videos, out_dir=tmp_path / "bad", init_from=tmp_path / "liv" / "encoder", progress=False)


def test_resume_refuses_a_different_config(tmp_path: Path) -> None:
    pretrain(tiny_config(steps=3), synthetic_videos(), out_dir=tmp_path, progress=False)
    with pytest.raises(ResumeMismatchError, match="differs"):
        pretrain(tiny_config(steps=6, lr=0.5), synthetic_videos(), out_dir=tmp_path, progress=False)
    pretrain(tiny_config(steps=6), synthetic_videos(), out_dir=tmp_path, progress=False)  # more steps is fine
    with pytest.raises(ResumeMismatchError, match="other videos"):
        pretrain(tiny_config(steps=9), synthetic_videos(seed=1), out_dir=tmp_path, progress=False)


def test_cli_on_an_npz_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    videos = synthetic_videos(6)
    np.savez(tmp_path / "clips.npz", **{f"v{i}": v.frames for i, v in enumerate(videos)})
    rc = cli(["--data", str(tmp_path / "clips.npz"), "--out", str(tmp_path / "run"), "--steps", "4", "--batch-size", "4",
              "--image-size", "24", "--embed-dim", "8", "--cnn-channels", "4,8", "--eval-videos", "2", "--no-progress", "--prefetch", "0",
              "--colour-gain-prob", "0.5", "--colour-gain-range", "0.8,1.2"])
    assert rc == 0 and (tmp_path / "run" / "encoder" / "config.json").is_file()
    assert "encoder written" in capsys.readouterr().out
    recorded = json.loads((tmp_path / "run" / "encoder" / "config.json").read_text())["training"]["pretrain_config"]
    assert recorded["colour_gain_prob"] == 0.5 and recorded["colour_gain_range"] == [0.8, 1.2]


@pytest.mark.slow  # two CLI training runs (~3 s): make test runs it, make test-fast skips it
def test_cli_refuses_a_run_it_cannot_resume_in_its_own_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`vip-rl pretrain` over a run of another config: one line naming what differs and what to do in this command's
    flags (--no-resume, --out), not pretrain()'s keyword arguments; exit 2, and the earlier checkpoint is untouched."""
    from vip_rl.cli import main

    videos = synthetic_videos(6)
    np.savez(tmp_path / "clips.npz", **{f"v{i}": v.frames for i, v in enumerate(videos)})
    flags = ["pretrain", "--data", str(tmp_path / "clips.npz"), "--out", str(tmp_path / "run"), "--steps", "2", "--batch-size", "4",
             "--image-size", "24", "--embed-dim", "8", "--cnn-channels", "4,8", "--eval-videos", "2", "--no-progress", "--prefetch", "0"]
    assert main(flags) == 0
    before = (tmp_path / "run" / CHECKPOINT_FILE).read_bytes()
    capsys.readouterr()
    assert main([*flags, "--lr", "0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "checkpoint config differs from this run's" in err and "'lr'" in err
    assert err.endswith("; pass --no-resume or another --out") and "resume=False" not in err
    assert (tmp_path / "run" / CHECKPOINT_FILE).read_bytes() == before


def _eval_rows(out: Path) -> dict[str, list[float]]:
    with open(out / "log.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r["tag"].startswith("eval/")]
    return {tag: [float(r["value"]) for r in rows if r["tag"] == tag] for tag in {r["tag"] for r in rows}}


@pytest.mark.parametrize("num_videos, eval_videos, why", [(3, 3, r"3 videos, not more than eval_videos=3"), (5, 0, "eval_videos=0")])
def test_evaluating_on_training_videos_warns_and_is_recorded(tmp_path: Path, num_videos: int, eval_videos: int, why: str) -> None:
    import json

    config = tiny_config(steps=4, eval_every=2, ckpt_every=4, eval_videos=eval_videos)
    with pytest.warns(UserWarning, match=rf"pretrain evaluates on its training videos \({why}.*\): the eval/ metrics measure fit") as caught:
        pretrain(config, synthetic_videos(num_videos), out_dir=tmp_path, progress=False)
    assert [w.category.__name__ for w in caught if "training videos" in str(w.message)] == ["EvalOnTrainingVideosWarning"]
    assert _eval_rows(tmp_path)["eval/on_training_videos"] == [1.0, 1.0]  # beside every eval
    assert json.loads((tmp_path / "encoder" / "config.json").read_text())["training"]["eval_on_training_videos"] is True


@pytest.mark.parametrize("held_out", ["split", "eval_data"])
def test_held_out_eval_videos_do_not_warn(tmp_path: Path, held_out: str) -> None:
    import json
    import warnings

    from vip_rl.pretrain import EvalOnTrainingVideosWarning

    config = tiny_config(steps=2, eval_every=2, ckpt_every=2, eval_videos=3)
    videos = synthetic_videos(4 if held_out == "split" else 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EvalOnTrainingVideosWarning)
        pretrain(config, videos, out_dir=tmp_path, progress=False,
                 eval_data=synthetic_videos(2, seed=1) if held_out == "eval_data" else None)
    assert _eval_rows(tmp_path)["eval/on_training_videos"] == [0.0]
    assert json.loads((tmp_path / "encoder" / "config.json").read_text())["training"]["eval_on_training_videos"] is False


def test_cli_warns_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "clip.npy", synthetic_videos(1)[0].frames)
    rc = cli(["--data", str(tmp_path / "clip.npy"), "--out", str(tmp_path / "run"), "--steps", "2", "--batch-size", "4",
              "--image-size", "24", "--embed-dim", "8", "--cnn-channels", "4,8", "--no-progress", "--prefetch", "0"])
    err = capsys.readouterr().err
    assert rc == 0
    assert [line for line in err.splitlines() if "training videos" in line] == [
        "vip-rl pretrain: warning: pretrain evaluates on its training videos (1 video, not more than eval_videos=8, so "
        "none is held out): the eval/ metrics measure fit, not generalisation to new videos; give held-out videos "
        "(eval_data, --eval-data) or more than eval_videos videos"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"objective": "clip"}, "objective"),
        ({"objective": "liv", "text": "none"}, "text tower"),
        ({"steps": 0}, "steps"),
        ({"batch_size": -1}, "batch_size"),
        ({"gamma": 1.0}, "gamma"),
        ({"lr": 0.0}, "lr"),
        ({"crop_scale": (0.5, 1.2)}, "crop_scale"),
        ({"channel_shuffle_prob": -0.1}, "channel_shuffle_prob"),
        ({"colour_gain_prob": 1.1}, "colour_gain_prob"),
        ({"colour_gain_range": (1.2, 0.8)}, "colour_gain_range"),
        ({"num_negatives": -1}, "num_negatives"),
        ({"goal_mode": "end"}, "goal_mode"),
        ({"lr_schedule": "step"}, "lr_schedule"),
        ({"warmup_steps": -1}, "warmup_steps"),
    ],
)
def test_config_is_checked(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PretrainConfig(**kwargs)


def test_lr_schedule() -> None:
    config = PretrainConfig(lr=1e-3, steps=100, lr_schedule="cosine", warmup_steps=10)
    assert config.lr_at(0) == pytest.approx(1e-4) and config.lr_at(9) == pytest.approx(1e-3)
    assert config.lr_at(10) == pytest.approx(1e-3) and config.lr_at(100) == pytest.approx(1e-4)
    assert PretrainConfig(lr=2e-4).lr_at(12345) == 2e-4


def test_bad_data_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="data\\[0\\]"):
        pretrain(tiny_config(), [np.zeros((4, 8, 8, 3), np.uint8)], out_dir=tmp_path, progress=False)
    with pytest.raises(FileNotFoundError, match=r"'.*missing\.hdf5' does not exist"):
        pretrain(tiny_config(), str(tmp_path / "missing.hdf5"), out_dir=tmp_path, progress=False)
    with pytest.raises(TypeError, match="PretrainConfig"):
        pretrain({"steps": 3}, synthetic_videos(), out_dir=tmp_path)  # type: ignore[arg-type]


def test_fit_text_tower_fits_only_the_text_head_deterministically(tmp_path: Path) -> None:
    import copy

    from vip_rl.pretrain import TextFitConfig, fit_text_tower

    videos = synthetic_videos(n=6)
    encoder = pretrain(tiny_config(objective="tdist", text="hashing", steps=2, eval_every=0), videos,
                       out_dir=tmp_path / "td", progress=False)
    ok = [i % 3 != 2 for i in range(len(videos))]
    config = TextFitConfig(steps=60, batch_size=16, lr=1e-2, seed=3)
    first, second = copy.deepcopy(encoder), copy.deepcopy(encoder)
    modes = []  # the loop runs on PyTorch's deterministic kernels, and the caller's setting comes back after it
    distance = first.distance
    first.distance = lambda *a, **kw: modes.append(torch.are_deterministic_algorithms_enabled()) or distance(*a, **kw)
    assert not torch.are_deterministic_algorithms_enabled()
    cleared = []  # and embeds the instructions afresh: a cached embedding carries the bits of the batch it came in
    first.text.clear_cache = lambda: cleared.append(True)
    stats = fit_text_tower(first, videos, final_goal_ok=ok, config=config)
    del first.distance, first.text.clear_cache
    assert cleared == [True]
    assert True in modes and not torch.are_deterministic_algorithms_enabled()
    fit_text_tower(second, videos, final_goal_ok=ok, config=config)
    # 4 ok videos x ceil(0.05 * 14) = 1 goal frame each; two instructions
    assert stats["pairs"] == 4 and stats["instructions"] == 2
    assert stats["loss_after"] < stats["loss_before"]
    before, after = _weights(encoder), _weights(first)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("text.") for k in changed), changed  # the image tower is untouched
    for key, value in _weights(second).items():  # same image tower, videos and seed: the same head
        assert torch.equal(value, after[key]), key
    # the text lands nearer its goal frames than before
    goal = first.encode_images(videos[0].frames[-1:])
    assert float(first.distance(first.encode_text([videos[0].text]), goal)) < float(encoder.distance(encoder.encode_text([videos[0].text]), goal))


def test_fit_text_tower_loss_is_its_formula_and_the_regression_moves_the_far_frames(tmp_path: Path) -> None:
    """The steps-to-success regression (value_weight) against a plain transcription of TextFitConfig's loss on the
    initial head (reinit=False: loss_before is the loss of the tower as given)."""
    import copy

    from vip_rl.pretrain import TextFitConfig, fit_text_tower

    videos = synthetic_videos(n=4)
    encoder = pretrain(tiny_config(objective="tdist", text="hashing", steps=2, eval_every=0), videos,
                       out_dir=tmp_path / "td", progress=False)
    ok = [True, True, False, True]
    config = TextFitConfig(steps=80, batch_size=16, lr=1e-2, seed=1, reinit=False, goal_weight=0.5, value_weight=2.0,
                           gamma=0.9, expectile=0.8, frame_stride=3)
    with torch.no_grad():
        goal_d, terms = [], []
        for video, flag in zip(videos, ok):
            if not flag:
                continue
            length = len(video.frames)  # 14: the last ceil(0.05 * 14) = 1 frame is the goal
            index = sorted(set(range(0, length - 1, 3)) | {length - 1})
            d = encoder.distance(encoder.encode_text([video.text] * len(index)), encoder.encode_images(video.frames[index]))
            for i, di in zip(index, d.tolist()):
                target = (1 - 0.9 ** (length - 1 - i)) / (1 - 0.9)
                terms.append((0.8 if di > target else 0.2) * (di - target) ** 2)
                if i == length - 1:
                    goal_d.append(di)
        expected = 0.5 * np.mean(goal_d) + 2.0 * np.mean(terms)
    fitted = copy.deepcopy(encoder)
    stats = fit_text_tower(fitted, videos, final_goal_ok=ok, config=config)
    assert stats["pairs"] == len(terms) == 3 * 6 and stats["goal_pairs"] == 3
    assert stats["loss_before"] == pytest.approx(expected, rel=1e-5)
    assert stats["goal_distance_before"] == pytest.approx(np.mean(goal_d), rel=1e-5)
    assert stats["loss_after"] < stats["loss_before"]
    # the goal term alone (value_weight=0) sees only the goal frames: the old fit
    only_goals = fit_text_tower(copy.deepcopy(encoder), videos, final_goal_ok=ok,
                                config=TextFitConfig(steps=1, batch_size=4, reinit=False))
    assert only_goals["pairs"] == only_goals["goal_pairs"] == 3


@pytest.mark.parametrize("case, match", [
    ("no_text", "has no text tower"),
    ("flags", "one flag per video"),
    ("no_goal", "at least one video with an instruction"),
])
def test_fit_text_tower_refuses_what_it_cannot_fit(tmp_path: Path, case: str, match: str) -> None:
    from vip_rl.pretrain import fit_text_tower

    videos = synthetic_videos(n=4)
    encoder = pretrain(tiny_config(objective="tdist", text="none" if case == "no_text" else "hashing", steps=1, eval_every=0),
                       videos, out_dir=tmp_path / "td", progress=False)
    ok = {"no_text": [True] * 4, "flags": [True] * 3, "no_goal": [False] * 4}[case]
    with pytest.raises(ValueError, match=match):
        fit_text_tower(encoder, videos, final_goal_ok=ok)


@pytest.mark.parametrize("kwargs, match", [({"steps": 0}, "steps must be"), ({"lr": 0.0}, "lr must be"),
                                           ({"goal_fraction": 1.5}, "goal_fraction must be"),
                                           ({"frame_stride": 0}, "frame_stride must be"),
                                           ({"value_weight": -1.0}, "value_weight must be"),
                                           ({"goal_weight": float("nan")}, "goal_weight must be"),
                                           ({"goal_weight": 0.0}, "nothing to fit"),
                                           ({"gamma": 1.0}, "gamma must be"), ({"expectile": 0.0}, "expectile must be")])
def test_text_fit_config_is_checked(kwargs: dict, match: str) -> None:
    from vip_rl.pretrain import TextFitConfig

    with pytest.raises(ValueError, match=match):
        TextFitConfig(**kwargs)


def test_frame_stride_keeps_every_nth_frame_ending_at_the_last(tmp_path: Path) -> None:
    from vip_rl.pretrain import _strided

    video = synthetic_videos(n=1, length=14)[0]
    (strided,) = _strided([video], 3)
    assert np.array_equal(strided.frames, video.frames[[1, 4, 7, 10, 13]]) and strided.text == video.text
    assert _strided([video], 1)[0] is video
    with pytest.raises(ValueError, match="frame_stride must be an int >= 1, got 0"):
        tiny_config(frame_stride=0)
    # a strided run trains and records the stride
    pretrain(tiny_config(objective="tdist", frame_stride=2, steps=2, eval_every=0), synthetic_videos(n=4),
                       out_dir=tmp_path / "strided", progress=False)
    assert load_encoder(tmp_path / "strided" / "encoder").config["training"]["pretrain_config"]["frame_stride"] == 2


# ---------------------------------------------------------------------------------------------- the value head
def _small_cnn(seed: int = 3):
    from vip_rl.encoders import build_encoder

    return build_encoder("cnn", embed_dim=8, image_size=32, cnn_channels=(4, 8), head_hidden=(16,), seed=seed)


def _chain_videos(n: int = 6, length: int = 10) -> list[Video]:
    """``n`` copies of one chain of ``length`` distinct frames (a bright square moving across the image)."""
    frames = np.zeros((length, 32, 32, 3), np.uint8)
    for t in range(length):
        frames[t, 10:20, 2 + 2 * t : 10 + 2 * t] = 255
    return [Video(frames.copy(), text="go right", source=f"chain:{i}") for i in range(n)]


@pytest.mark.slow
def test_fit_value_head_keeps_the_embedding_beside_the_value_and_is_deterministic(tmp_path: Path) -> None:
    from vip_rl.encoders import save_encoder
    from vip_rl.pretrain import ValueHeadConfig, cnn_features, fit_value_head

    encoder = _small_cnn()
    videos = _chain_videos(3, 6)
    config = ValueHeadConfig(steps=20, batch_size=8, hidden=(8,), dim=4)
    new, stats = fit_value_head(encoder, videos, groups=["a"] * 3, final_goal_ok=[True] * 3, config=config)
    again, _ = fit_value_head(encoder, videos, groups=["a"] * 3, final_goal_ok=[True] * 3, config=config)
    other, _ = fit_value_head(encoder, videos, groups=["a"] * 3, final_goal_ok=[True] * 3,
                              config=ValueHeadConfig(steps=20, batch_size=8, hidden=(8,), dim=4, seed=1))
    frames = videos[0].frames
    z, z_old = new.encode_images(frames), encoder.encode_images(frames)
    assert new.embed_dim == 12 and not new.has_text and new.config["value_dim"] == 4 and new.config["value_hidden"] == [8]
    # the old embedding first, then the value's, each scaled by 1/sqrt(2): the distance is the RMS of the two parts'
    assert torch.allclose(z[:, :8], z_old / 2**0.5, atol=1e-6)
    value = new.vision.value(cnn_features(encoder, frames))
    assert torch.allclose(z[:, 8:], value, atol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(new.state_dict().values(), again.state_dict().values()))
    assert not torch.equal(new.vision.value[0].weight, other.vision.value[0].weight)
    assert stats["frames"] == 18 and stats["videos"] == 3 and stats["feature_dim"] == 16
    loaded = load_encoder(save_encoder(new, tmp_path / "vh"))
    assert torch.equal(loaded.encode_images(frames), z)


@pytest.mark.slow
def test_fit_value_head_counts_the_steps_of_a_chain() -> None:
    """On a chain of frames the fitted value's distance to the last frame falls step by step (the toy check of the
    temporal-distance objective, now on frozen CNN features)."""
    from vip_rl.diagnostics import spearman
    from vip_rl.pretrain import ValueHeadConfig, fit_value_head

    encoder = _small_cnn()
    videos = _chain_videos(6, 10)
    new, stats = fit_value_head(encoder, videos, groups=["a"] * 6, final_goal_ok=[True] * 6,
                                config=ValueHeadConfig(steps=600, batch_size=64, hidden=(32, 32), dim=8, random_goal_prob=0.0,
                                                       goal_swap_prob=0.0))
    z = new.encode_images(videos[0].frames)[:, 8:]  # the value's part
    d = torch.linalg.vector_norm(z - z[-1], dim=-1).numpy()
    assert spearman(np.arange(10), -d) > 0.95 and d[0] > 3 * d[-2] > 0


@pytest.mark.slow
def test_fit_value_head_views_train_on_crops_deterministically() -> None:
    """``views > 1``: the value also reads crops of the frames (drawn from the seed): the same fit twice gives the same
    tensors, another than the frames alone, and the embedding part kept from the encoder is untouched."""
    from vip_rl.pretrain import ValueHeadConfig, fit_value_head

    encoder, videos = _small_cnn(), _chain_videos(3, 6)
    fits = [fit_value_head(encoder, videos, groups=["a"] * 3, final_goal_ok=[True] * 3,
                           config=ValueHeadConfig(steps=20, batch_size=8, hidden=(8,), dim=4, views=views))[0]
            for views in (3, 3, 1)]
    frames = videos[0].frames
    z = [fit.encode_images(frames) for fit in fits]
    assert torch.equal(z[0], z[1]) and not torch.allclose(z[0][:, 8:], z[2][:, 8:])
    assert torch.equal(z[0][:, :8], z[2][:, :8])


@pytest.mark.parametrize("case, match", [
    ("twice", "has a value head already"),
    ("groups", r"groups must have one entry per video \(3\), got 2"),
    ("linear head", "needs an L2 SmallCNN encoder with an MLP head"),
    ("short", "every video needs at least 2 frames"),
])
def test_fit_value_head_refuses_what_it_cannot_fit(case: str, match: str) -> None:
    from vip_rl.encoders import build_encoder
    from vip_rl.pretrain import ValueHeadConfig, fit_value_head

    encoder, videos, groups = _small_cnn(), _chain_videos(3, 6), ["a"] * 3
    config = ValueHeadConfig(steps=2, batch_size=4, hidden=(8,), dim=4)
    if case == "twice":
        encoder, _ = fit_value_head(encoder, videos, groups=groups, final_goal_ok=[True] * 3, config=config)
    elif case == "groups":
        groups = ["a"] * 2
    elif case == "linear head":
        encoder = build_encoder("cnn", embed_dim=8, image_size=32, cnn_channels=(4, 8), seed=0)
    else:
        videos = [*videos[:2], Video(videos[0].frames[:1], text="x", source="short")]
    with pytest.raises(ValueError, match=match):
        fit_value_head(encoder, videos, groups=groups, final_goal_ok=[True] * 3, config=config)


@pytest.mark.parametrize("kwargs, match", [
    ({"dim": 6, "value_heads": 4}, "value_heads=4 must divide dim=6"),
    ({"expectile": 0.3}, r"expectile must be in \[0.5, 1\)"),
    ({"hidden": (8, 0)}, "hidden must be positive ints"),
    ({"goal_swap_prob": 1.5}, r"goal_swap_prob must be in \[0, 1\]"),
    ({"target_tau": 0.0}, r"target_tau must be in \(0, 1\]"),
    ({"views": 0}, "views must be a positive int"),
    ({"crop_scale": (0.9, 0.5)}, r"crop_scale must satisfy 0 < min <= max <= 1"),
])
def test_value_head_config_names_a_bad_value(kwargs: dict, match: str) -> None:
    from vip_rl.pretrain import ValueHeadConfig

    with pytest.raises(ValueError, match=match):
        ValueHeadConfig(**kwargs)
