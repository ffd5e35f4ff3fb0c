"""Tests for vip_rl.collect: on a tiny fake suite (always) and on the real vip_envs suite (when importable)."""
from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import gymnasium
import h5py
import numpy as np
import pytest
from gymnasium import spaces

from vip_rl.collect import cli, collect
from vip_rl.data import EpisodeFile, read_d4rl, read_episodes, read_video_file

FAKE_ID = "vip_envs/Fake-v0"


class FakeEnv(gymnasium.Env):
    """1-D 'drawer': x moves by 0.1 * action[0] per step; success when x >= 1."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, render_mode=None, obs_mode="state", cameras=("front",), image_size=96, embodiment="gripper",
                 fail_at_episode: int | None = None):
        self.render_mode, self.cameras, self.image_size = render_mode, tuple(cameras), image_size
        self.observation_space = spaces.Box(-np.inf, np.inf, (3,), np.float32)
        self.action_space = spaces.Box(-1, 1, (4,), np.float32)
        self.x, self.t, self.resets, self.fail_at_episode = 0.0, 0, 0, fail_at_episode

    def _obs(self):
        return np.array([self.x, self.t / 100, 1.0], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = float(self.np_random.uniform(0, 0.3)), 0
        self.resets += 1
        return self._obs(), {"success": False, "task_progress": min(self.x, 1.0)}

    def step(self, action):
        if self.fail_at_episode is not None and self.resets > self.fail_at_episode:
            raise RuntimeError("simulated env crash")
        self.x = float(np.clip(self.x + 0.1 * float(action[0]), 0, 1.2))
        self.t += 1
        info = {"success": self.x >= 1.0, "task_progress": min(self.x, 1.0)}
        return self._obs(), float(self.x), False, False, info

    def get_state(self):
        return np.array([self.x, self.t], np.float64)

    def set_state(self, state):
        self.x, self.t = float(state[0]), int(state[1])

    def render_states(self, states, camera=None):
        camera = camera or self.cameras[0]
        offset = {"front": 0, "left": 1, "right": 2}[camera]
        images = np.zeros((len(states), self.image_size, self.image_size, 3), np.uint8)
        images[..., offset] = np.clip(np.asarray(states)[:, 0] * 200, 0, 255).astype(np.uint8)[:, None, None]
        return images

    def evaluate_states(self, states):
        x = np.asarray(states)[:, 0]
        return {"success": x >= 1.0, "task_progress": np.minimum(x, 1.0), "reward": x}

    def render(self):
        return self.render_states(self.get_state()[None])[0]


def _expert(env, noise=0.0, seed=None):
    rng = np.random.default_rng(seed)

    def act(obs):
        action = np.array([1.0, 0, 0, 0]) + noise * rng.normal(size=4)
        return np.clip(action, -1, 1).astype(np.float32)

    return act


def _play(env, seed=None):
    rng = np.random.default_rng(seed)
    return lambda obs: rng.uniform(-1, 1, 4).astype(np.float32)


@pytest.fixture
def fake_suite(monkeypatch):
    module = types.ModuleType("vip_envs")
    module.TASKS = ("Fake",)
    module.CAMERAS = ("front", "left", "right")
    module.expert = _expert
    module.play_policy = _play
    module.instructions = lambda task, split="train": (["push it", "slide it open", "open it"] if split == "train"
                                                       else ["heldout"])
    monkeypatch.setitem(sys.modules, "vip_envs", module)
    gymnasium.register(FAKE_ID, entry_point=FakeEnv, max_episode_steps=20)
    yield module
    gymnasium.registry.pop(FAKE_ID, None)


def test_collect_cli_fake(fake_suite, tmp_path: Path, capsys) -> None:
    out, preview, flat = tmp_path / "demos.h5", tmp_path / "preview", tmp_path / "flat.h5"
    code = cli(["Fake", "--episodes", "3", "--camera", "front", "--camera", "left", "--size", "16", "--seed", "1",
                "--out", str(out), "--preview", str(preview), "--d4rl", str(flat), "--no-progress"])
    assert code == 0
    summary = capsys.readouterr().out
    assert "collected 3 episodes" in summary and "success rate 100%" in summary and str(out) in summary
    with h5py.File(out) as f:
        assert list(f["data"].attrs["cameras"]) == ["front", "left"] and f["data"].attrs["image_size"] == 16
        assert f["data/demo_0/obs/front"].shape == (21, 16, 16, 3) and f["data/demo_0/actions"].shape == (20, 4)
    episodes = read_episodes(out)
    for ep in episodes:
        assert ep.attrs["env_id"] == FAKE_ID and ep.task == "Fake" and ep.success and ep.attrs["policy"] == "expert"
        assert ep.instruction in ("push it", "slide it open", "open it") and ep.attrs["noise"] == 0.0
        assert ep.dones[-1] and not ep.dones[:-1].any() and ep.successes[-1]
        np.testing.assert_allclose(ep.states[:, 0], ep.sim_states[:, 0], rtol=1e-6)
        np.testing.assert_allclose(ep.task_progress, np.minimum(ep.sim_states[:, 0], 1.0), rtol=1e-6)
        expected_green = np.clip(ep.sim_states[:, 0] * 200, 0, 255).astype(np.uint8)[:, None, None]
        assert (ep.frames["left"][..., 1] == expected_green).all()
    assert len({ep.attrs["seed"] for ep in episodes}) == 3
    assert sorted(os.listdir(preview)) == ["demo_0.mp4", "demo_1.mp4", "demo_2.mp4"]
    assert read_video_file(preview / "demo_0.mp4").shape == (21, 16, 32, 3)  # cameras side by side
    assert [e.num_steps for e in read_d4rl(flat)] == [20, 20, 20]


def test_collect_is_deterministic(fake_suite, tmp_path: Path) -> None:
    kwargs = dict(episodes=3, policy="noisy", noise=0.5, image_size=8, progress=False)
    a = read_episodes(collect("Fake", seed=3, out=tmp_path / "a.h5", **kwargs))
    b = read_episodes(collect("Fake", seed=3, out=tmp_path / "b.h5", **kwargs))
    c = read_episodes(collect("Fake", seed=4, out=tmp_path / "c.h5", **kwargs))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.actions, y.actions)
        assert x.attrs == y.attrs
    assert not np.array_equal(a[0].actions, c[0].actions)
    assert all(ep.attrs["policy"] == "noisy" and ep.attrs["noise"] == 0.5 for ep in a)


def test_collect_mixed_and_early_stop(fake_suite, tmp_path: Path) -> None:
    out = collect("Fake", episodes=12, policy="mixed", image_size=8, seed=0, out=tmp_path / "mixed.h5", progress=False)
    episodes = read_episodes(out, load_images=False)
    kinds = [ep.attrs["mixed_kind"] for ep in episodes]
    assert set(kinds) == {"expert", "noisy", "failed"}
    assert all(ep.attrs["noise"] == (0.0 if kind == "expert" else 0.3) for ep, kind in zip(episodes, kinds))
    for ep in episodes:
        if ep.attrs["mixed_kind"] == "failed":
            assert ep.attrs["early_stopped"] and not ep.success and not ep.successes.any() and ep.dones[-1]
            assert ep.num_steps < 20
        else:
            assert not ep.attrs["early_stopped"] and ep.num_steps == 20
    stopped = read_episodes(collect("Fake", episodes=3, policy="play", early_stop_prob=1.0, max_steps=8, image_size=8,
                                    out=tmp_path / "play.h5", progress=False), load_images=False)
    assert all(ep.attrs["early_stopped"] and ep.num_steps < 8 for ep in stopped)
    short = read_episodes(collect("Fake", episodes=1, stop_on_success=True, image_size=8, out=tmp_path / "s.h5",
                                  progress=False), load_images=False)[0]
    assert short.success and short.successes.sum() == 1 and short.num_steps < 20


def test_collect_bad_input_leaves_nothing(fake_suite, tmp_path: Path, capsys) -> None:
    out = tmp_path / "x.h5"
    with pytest.raises(ValueError, match=r"task must be one of \('Fake',\), got 'Nope'"):
        collect("Nope", episodes=1, out=out, progress=False)
    assert cli(["Fake", "--episodes", "1", "--camera", "top", "--out", str(out), "--no-progress"]) == 2
    assert "camera must be one of ('front', 'left', 'right'), got 'top'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
        collect("Fake", episodes=1, seed=-1, out=out, progress=False)
    with pytest.raises(ValueError, match="episodes must be an int >= 1"):
        collect("Fake", episodes=0, out=out, progress=False)
    with pytest.raises(ValueError, match="policy must be one of"):
        collect("Fake", episodes=1, policy="random", out=out, progress=False)
    with pytest.raises(ValueError, match="mix must be 3 or 4 non-negative weights"):
        collect("Fake", episodes=1, policy="mixed", mix=(1, -1, 0), out=out, progress=False)
    with pytest.raises(FileNotFoundError, match="output directory"):
        collect("Fake", episodes=1, out=tmp_path / "missing" / "x.h5", progress=False)
    assert os.listdir(tmp_path) == []


def test_collect_crash_leaves_no_file(fake_suite, tmp_path: Path) -> None:
    gymnasium.registry.pop(FAKE_ID)
    gymnasium.register(FAKE_ID, entry_point=FakeEnv, max_episode_steps=20, kwargs={"fail_at_episode": 2})
    with pytest.raises(RuntimeError, match="simulated env crash"):
        collect("Fake", episodes=4, image_size=8, out=tmp_path / "crash.h5", progress=False)
    assert os.listdir(tmp_path) == []


def _real_suite_available() -> bool:
    try:
        import vip_envs
    except ImportError:
        return False
    return all(hasattr(vip_envs, name) for name in ("TASKS", "CAMERAS", "expert", "play_policy", "instructions"))


@pytest.mark.skipif(not _real_suite_available(), reason="vip_envs suite not importable yet")
def test_collect_cli_real_suite(tmp_path: Path, capsys) -> None:
    out = tmp_path / "drawer.h5"
    code = cli(["OpenDrawer", "--episodes", "2", "--size", "64", "--seed", "0", "--out", str(out), "--no-progress"])
    assert code == 0 and "collected 2 episodes" in capsys.readouterr().out
    with EpisodeFile(out) as f:
        assert f.env_id == "vip_envs/OpenDrawer-v0" and f.num_episodes == 2
        ep = f.episode(0)
    assert ep.frames["front"].shape[1:] == (64, 64, 3) and ep.frames["front"].shape[0] == ep.num_steps + 1
    assert ep.actions.shape[1] == 4 and ep.sim_states is not None and ep.instruction
    assert ep.frames["front"][0].std() > 0  # a rendered scene, not a blank image


def test_collect_expert_task_bad_input(fake_suite, tmp_path: Path) -> None:
    out = tmp_path / "x.h5"
    with pytest.raises(ValueError, match=r"expert_task must be None or one of \('Fake',\), got 'Nope'"):
        collect("Fake", episodes=1, expert_task="Nope", out=out, progress=False)
    with pytest.raises(ValueError, match="expert_task='Fake' needs policy 'expert' or 'noisy', got policy='play'"):
        collect("Fake", episodes=1, policy="play", expert_task="Fake", out=out, progress=False)
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not _real_suite_available(), reason="vip_envs suite not importable yet")
def test_collect_wrong_task_demos_real_suite(tmp_path: Path, capsys) -> None:
    """The expert of another task in this task's scene: ends when that task is done, never this task's success."""
    from vip_envs.tasks import task_metrics

    out = tmp_path / "wrong.h5"
    code = cli(["OpenDrawer", "--episodes", "2", "--expert-task", "PressButton", "--size", "16", "--seed", "0",
                "--out", str(out), "--no-progress"])
    assert code == 0 and "collected 2 episodes" in capsys.readouterr().out
    own = read_episodes(collect("OpenDrawer", episodes=2, image_size=16, seed=0, out=tmp_path / "own.h5", progress=False),
                        load_images=False)
    import gymnasium as gym

    unwrapped = gym.make("vip_envs/OpenDrawer-v0").unwrapped
    nq = unwrapped.model.nq
    for ep, own_ep in zip(read_episodes(out, load_images=False), own):
        assert ep.attrs["expert_task"] == "PressButton" and ep.attrs["expert_task_success"]
        assert ep.attrs["policy"] == "expert" and ep.attrs["noise"] == 0.0 and ep.task == "OpenDrawer"
        assert not ep.success and not ep.successes.any() and ep.dones[-1] and ep.num_steps < 100
        assert ep.attrs["seed"] == own_ep.attrs["seed"]  # same scene as this task's own expert demo ...
        n = min(ep.num_steps, own_ep.num_steps)
        assert not np.allclose(ep.actions[:n], own_ep.actions[:n])  # ... but another task's behaviour
        qpos = ep.sim_states[:, 1:1 + nq]  # mjSTATE_FULLPHYSICS: time, qpos, qvel, ...
        pressed = task_metrics("PressButton", unwrapped.layout, qpos)[0]
        assert pressed[-1] and not pressed[:-1].any()  # ends at the first step the button is pressed
    assert "expert_task" not in own[0].attrs  # the default behaviour and attrs are unchanged


@pytest.mark.skipif(not _real_suite_available(), reason="vip_envs suite not importable yet")
def test_collect_mixed_with_wrong_task_share(tmp_path: Path) -> None:
    """mix with a 4th weight draws wrong-task demos: clean experts of another object's task, never this task's success."""
    from vip_rl.collect import wrong_task_choices

    assert "OpenDrawer" not in wrong_task_choices("CloseDrawer") and "CloseDrawer" not in wrong_task_choices("SlideDoor")
    assert all(t not in ("OpenDrawer", "CloseDrawer") for t in wrong_task_choices("OpenDrawer"))
    with pytest.raises(ValueError, match="task must be one of"):
        wrong_task_choices("Nope")
    out = collect("OpenDrawer", episodes=3, policy="mixed", mix=(0, 0, 0, 1), image_size=16, seed=1,
                  out=tmp_path / "m.h5", progress=False)
    for ep in read_episodes(out, load_images=False):
        assert ep.attrs["mixed_kind"] == "wrong-task" and ep.attrs["expert_task"] in wrong_task_choices("OpenDrawer")
        assert ep.attrs["policy"] == "expert" and ep.attrs["noise"] == 0.0 and not ep.success
    with pytest.raises(ValueError, match="mix must be 3 or 4"):
        collect("OpenDrawer", episodes=1, policy="mixed", mix=(1, 1), out=tmp_path / "bad.h5", progress=False)
    assert not (tmp_path / "bad.h5").exists()
