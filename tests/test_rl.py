"""Tests for vip_rl.rl (`vip-rl rl`): a tiny end-to-end run, its outputs, and bad input."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from vip_rl.rl import RLConfig, cli, run

SIZE = 32  # rendered frame side: small keeps the run fast (the encoder resizes frames itself)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow  # a PPO run end to end: train, evaluate, write the curve and video (~4 s)
def test_ppo_run_writes_curve_video_and_logs(tmp_path):
    import imageio.v2 as imageio
    import matplotlib.image

    out = tmp_path / "run"
    # 2 envs x 128 steps: each env's episode is truncated at 100 steps, so 2 training episodes end
    config = RLConfig(task="OpenDrawer", algo="ppo", encoder="random", num_envs=2, total_steps=256,
                      image_size=SIZE, eval_episodes=1, seed=0, out=str(out))
    summary = run(config)

    for name in ("episodes.csv", "learning_curve.png", "eval.mp4", "summary.json", "goal.png", "model.zip"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]  # atomic writes

    rows = read_csv(out / "episodes.csv")
    assert list(rows[0]) == ["timestep", "embed_return", "env_return", "success", "task_progress",
                             "final_goal_distance"]
    assert len(rows) == 2
    for row in rows:
        assert float(row["success"]) in (0.0, 1.0)
        assert 0.0 <= float(row["task_progress"]) <= 1.0
        assert np.isfinite(float(row["embed_return"])) and np.isfinite(float(row["env_return"]))
        assert float(row["final_goal_distance"]) >= 0.0
        assert 0 < int(row["timestep"]) <= 256
    assert len({row["embed_return"] for row in rows}) == 2  # per-env sums, not a shared accumulator

    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["config"]["algo"] == "ppo" and on_disk["train_episodes"] == 2
    assert on_disk["train_embed_return_last20"] == pytest.approx(np.mean([float(r["embed_return"]) for r in rows]))
    assert on_disk["train_success_rate_last20"] == pytest.approx(np.mean([float(r["success"]) for r in rows]))
    assert on_disk["goal"] == "goal.png" and isinstance(on_disk["goal_demo_succeeded"], bool)
    assert len(on_disk["eval"]) == 1 and set(on_disk["eval"][0]) == {"embed_return", "env_return", "success",
                                                                      "task_progress"}
    assert set(on_disk["files"]) >= {"episodes.csv", "learning_curve.png", "eval.mp4", "summary.json"}

    curve = matplotlib.image.imread(out / "learning_curve.png")
    assert curve.ndim == 3 and curve.shape[0] > 200 and curve.shape[1] > 200
    assert imageio.imread(out / "goal.png").shape == (SIZE, SIZE, 3)
    frames = imageio.mimread(out / "eval.mp4")
    # reset frame + one frame per step; the deterministic episode lasts at most 100 steps
    assert 2 <= len(frames) <= 101 and frames[0].shape == (SIZE, SIZE, 3)


@pytest.mark.slow  # over a second: make test runs it, make test-fast skips it
def test_cli_sac_text_goal(tmp_path, capsys):
    out = tmp_path / "sac"
    code = cli(["--task", "PressButton", "--algo", "sac", "--encoder", "random", "--goal", "text",
                "--instruction", "press the button", "--mode", "similarity", "--num-envs", "2",
                "--total-steps", "64", "--image-size", str(SIZE), "--eval-episodes", "0", "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["goal"] == "press the button" and summary["config"]["mode"] == "similarity"
    assert summary["eval"] == [] and summary["eval_success_rate"] is None
    assert (out / "learning_curve.png").is_file() and (out / "episodes.csv").is_file()
    assert not (out / "eval.mp4").exists() and not (out / "goal.png").exists()  # no eval episodes, no image goal
    assert str(out) in capsys.readouterr().out


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(task="OpenFridge"), "task must be one of"),
        (dict(algo="dqn"), "algo must be one of"),
        (dict(goal="video"), "goal must be one of"),
        (dict(mode="reward"), "mode must be one of"),
        (dict(num_envs=0), "num_envs must be a positive int, got 0"),
        (dict(total_steps=2.5), "total_steps must be a positive int, got 2.5"),
        (dict(image_size=True), "image_size must be a positive int, got True"),
        (dict(eval_episodes=-1), "eval_episodes must be an int >= 0, got -1"),
        (dict(instruction="open it"), "instruction is only used with goal='text'"),
        (dict(goal="text", instruction="  "), "instruction must be a non-empty string"),
        (dict(goal="text", mode="success"), "mode='success' needs a success threshold"),
        (dict(scale=float("inf")), "scale must be a finite number, got inf"),
        (dict(seed=-1), "seed must be an int >= 0, got -1"),
        (dict(encoder=""), "encoder must be"),
    ],
)
def test_config_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RLConfig(**kwargs)


def test_bad_encoder_fails_before_writing(tmp_path):
    out = tmp_path / "never"
    with pytest.raises(FileNotFoundError, match="not found"):
        run(RLConfig(encoder=str(tmp_path / "missing.safetensors"), out=str(out)))
    with pytest.raises(ValueError, match="unknown encoder name"):
        run(RLConfig(encoder="no-such-encoder", out=str(out)))
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--algo", "dqn"], "invalid choice: 'dqn'"),
        (["--task", "OpenFridge"], "task must be one of"),
        (["--num-envs", "0"], "num_envs must be a positive int, got 0"),
        (["--total-steps", "many"], "invalid int value: 'many'"),
        (["--device", "tpu:x"], "tpu:x"),
    ],
)
def test_cli_bad_input(argv, message, capsys):
    with pytest.raises(SystemExit, match="^2$") as exit_info:  # argparse's usage error; the message is on stderr
        cli(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
