"""Tests of vip_rl.policies: networks, the data path, BC/RWR trainers, evaluation and the CLI.

A tiny point-reaching env (registered here as ``vip_policy_test/Point-v0``) keeps everything fast:
the state is a 2-D position, the frame draws it as a bright square, success is reaching the origin.
"""
from __future__ import annotations

import dataclasses
import json
import math
import types

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from vip_rl.data import Episode, write_episodes
from vip_rl.encoders import build_encoder
from vip_rl.policies import (
    BCConfig,
    Policy,
    PolicyConfig,
    PolicyDataset,
    PolicyEnsemble,
    RWRConfig,
    evaluate_policy,
    load_policy,
    rwr_weights,
    save_policy,
    train_bc,
    train_rwr,
)
from vip_rl.policies.trainers import _standardized_returns

SIZE = 32
ENV_ID = "vip_policy_test/Point-v0"
STEP = 0.15


class PointEnv(gym.Env):
    """Reach the origin from a random start in [-1, 1]^2; action = 4-d (only the first 2 move)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, render_mode: str | None = None, obs_mode: str = "pixels", cameras=("front",), image_size: int = SIZE) -> None:
        self.render_mode = render_mode
        self.image_size = image_size
        self.cameras = tuple(cameras)
        self.observation_space = spaces.Dict({
            "pixels": spaces.Box(0, 255, (image_size, image_size, 3), np.uint8),
            **{f"pixels_{cam}": spaces.Box(0, 255, (image_size, image_size, 3), np.uint8) for cam in self.cameras[1:]},
            "state": spaces.Box(-np.inf, np.inf, (2,), np.float32),
        })
        self.action_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.pos = np.zeros(2)

    def render(self) -> np.ndarray:
        image = np.zeros((self.image_size, self.image_size, 3), np.uint8)
        image[..., 2] = 60
        c = ((self.pos + 1.0) / 2.0 * (self.image_size - 5)).astype(int)
        image[c[1] : c[1] + 5, c[0] : c[0] + 5] = (255, 200, 0)
        return image

    def _obs(self) -> dict:
        image = self.render()
        # any other camera sees the frame inverted (as _two_camera_episodes writes 'wrist')
        return {"pixels": image, **{f"pixels_{cam}": 255 - image for cam in self.cameras[1:]}, "state": self.pos.astype(np.float32)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-1, 1, 2)
        while np.linalg.norm(self.pos) < 0.5:
            self.pos = self.np_random.uniform(-1, 1, 2)
        return self._obs(), {"success": False, "task_progress": 0.0}

    def step(self, action):
        action = np.asarray(action, np.float64)
        self.pos = np.clip(self.pos + STEP * np.clip(action[:2], -1, 1), -1, 1)
        dist = float(np.linalg.norm(self.pos))
        success = dist < STEP
        info = {"success": success, "task_progress": float(max(0.0, 1.0 - dist))}
        return self._obs(), -dist, success, False, info


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=PointEnv, max_episode_steps=30)


def expert_action(pos: np.ndarray) -> np.ndarray:
    return np.concatenate([np.clip(-pos / STEP, -1, 1), [0.0, 0.0]]).astype(np.float32)


def rollout(seed: int, *, kind: str = "expert", noise: float = 0.0, max_steps: int = 30, env=None) -> Episode:
    """One episode of the point env: expert (+noise) or uniformly random actions."""
    env = env or gym.make(ENV_ID, render_mode="rgb_array")
    rng = np.random.default_rng(seed + 12345)
    obs, _ = env.reset(seed=seed)
    frames, states, actions, rewards, dones, progress = [obs["pixels"]], [obs["state"]], [], [], [], [0.0]
    success = False
    for _ in range(max_steps):
        if kind == "random":
            action = rng.uniform(-1, 1, 4).astype(np.float32)
        else:
            action = np.clip(expert_action(obs["state"]) + noise * rng.normal(size=4), -1, 1).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        frames.append(obs["pixels"]); states.append(obs["state"]); actions.append(action)
        rewards.append(reward); dones.append(terminated or truncated); progress.append(info["task_progress"])
        success = success or info["success"]
        if terminated or truncated:
            break
    return Episode(
        frames={"front": np.stack(frames)}, states=np.stack(states), task_progress=np.asarray(progress, np.float32),
        actions=np.stack(actions), rewards=np.asarray(rewards, np.float32), dones=np.asarray(dones),
        attrs={"env_id": ENV_ID, "task": "Point", "instruction": "reach the centre", "seed": seed, "success": success},
    )


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: one intra-op thread is faster than two on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def encoder():
    return build_encoder("cnn", embed_dim=16, image_size=SIZE, cnn_channels=(8, 16), seed=0)


@pytest.fixture(scope="module")
def expert_episodes():
    return [rollout(seed) for seed in range(12)]


@pytest.fixture(scope="module")
def mixed_episodes():
    return [rollout(s) for s in range(4)] + [rollout(100 + s, kind="random") for s in range(8)]


@pytest.fixture(scope="module")
def dataset(encoder, mixed_episodes):
    return PolicyDataset.from_episodes(mixed_episodes, encoder, goal="final", mode="progress")


# ------------------------------------------------------------------------------------ networks


@pytest.mark.parametrize("arch,head", [("mlp", "deterministic"), ("mlp", "gaussian"), ("cnn", "deterministic"), ("cnn", "gaussian")])
def test_save_load_round_trip(tmp_path, arch, head):
    cfg = PolicyConfig(arch=arch, head=head, embed_dim=16 if arch == "mlp" else 0, state_dim=2, image_size=SIZE,
                       hidden=(32,), cnn_channels=(8, 8), encoder="vip-sim")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        policy = Policy(cfg)
    policy.set_normalization(state=np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32))
    save_policy(policy, tmp_path / "p", metadata={"note": "x"})
    loaded = load_policy(tmp_path / "p")
    assert loaded.config == cfg
    state = torch.randn(3, 2, generator=torch.Generator().manual_seed(1))
    kwargs = {"embedding": torch.randn(3, 16)} if arch == "mlp" else {"pixels": torch.randint(0, 255, (3, SIZE, SIZE, 3), dtype=torch.uint8)}
    for a, b in zip(policy(state, **kwargs), loaded(state, **kwargs)):
        assert (a is None and b is None) or torch.equal(a, b)
    actions = loaded.act(state, deterministic=False, generator=torch.Generator().manual_seed(0), **kwargs)
    assert actions.shape == (3, 4) and bool((actions.abs() <= 1).all())
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["policy.json", "policy.safetensors"]


def test_load_policy_corrupt_and_missing(tmp_path):
    policy = Policy(PolicyConfig(embed_dim=4, state_dim=2, hidden=(8,)))
    save_policy(policy, tmp_path / "p")
    (tmp_path / "p" / "policy.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_policy(tmp_path / "p")
    save_policy(policy, tmp_path / "q")
    (tmp_path / "q" / "policy.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_policy(tmp_path / "q")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_policy(tmp_path / "nope")
    save_policy(Policy(PolicyConfig(embed_dim=8, state_dim=2, hidden=(8,))), tmp_path / "r")
    (tmp_path / "r" / "policy.safetensors").write_bytes((tmp_path / "q" / "policy.safetensors").read_bytes())
    with pytest.raises(ValueError, match="has shape"):
        load_policy(tmp_path / "r")


@pytest.mark.parametrize("kwargs,match", [
    ({"arch": "rnn"}, "arch must be"), ({"head": "beta"}, "head must be"),
    ({"embed_dim": 0, "state_dim": 0}, "needs embeddings or state"), ({"state_dim": 3, "state_indices": (0, 5)}, "state_indices"), ({"hidden": ()}, "hidden must be"),
])
def test_policy_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PolicyConfig(**{"embed_dim": 4, **kwargs})


# ------------------------------------------------------------------------------------ data path


def test_relabel_matches_goal_reward_wrapper(encoder):
    """Progress rewards relabelled from stored frames == GoalReward's rewards on the same frames."""
    wrappers = pytest.importorskip("vip_rl.wrappers")
    goal = rollout(999).frames["front"][-1]
    env = wrappers.GoalReward(gym.make(ENV_ID, render_mode="rgb_array"), encoder, goal, mode="progress")
    episode = rollout(3, noise=0.5, env=env)
    wrapper_rewards = []
    env.reset(seed=3)
    for action in episode.actions:
        _, reward, *_ = env.step(action)
        wrapper_rewards.append(reward)
    data = PolicyDataset.from_episodes([episode], encoder, goal=goal, mode="progress")
    np.testing.assert_allclose(data.rewards, np.asarray(wrapper_rewards, np.float32), atol=1e-4)
    # and the direct definition, for the other modes
    z = encoder.encode_images(episode.frames["front"])
    d = encoder.distance(z, encoder.encode_images(goal)).numpy()
    np.testing.assert_allclose(data.rewards, d[:-1] - d[1:], atol=1e-5)
    dist = PolicyDataset.from_episodes([episode], encoder, goal=goal, mode="distance")
    np.testing.assert_allclose(dist.rewards, -d[1:], atol=1e-5)
    success = PolicyDataset.from_episodes([episode, rollout(4)], encoder, goal="success")
    winners = [e for e in (episode, rollout(4)) if e.success]
    g = encoder.encode_images(np.stack([e.frames["front"][-1] for e in winners])).mean(0)
    d_success = encoder.distance(z, g).numpy()
    np.testing.assert_allclose(success.rewards[: len(episode.actions)], d_success[:-1] - d_success[1:], atol=1e-5)
    failed = rollout(5, kind="random", max_steps=3)
    with pytest.raises(ValueError, match="no episode has attrs"):
        PolicyDataset.from_episodes([failed], encoder, goal="success")
    final = PolicyDataset.from_episodes([episode], encoder, goal="final", mode="progress")
    d_final = encoder.distance(z, z[-1]).numpy()
    np.testing.assert_allclose(final.rewards, d_final[:-1] - d_final[1:], atol=1e-5)


def test_instruction_goal_needs_text_tower(encoder, expert_episodes):
    with pytest.raises(ValueError, match="no text tower"):
        PolicyDataset.from_episodes(expert_episodes[:2], encoder, goal="reach the centre")
    text_encoder = build_encoder("cnn", embed_dim=16, image_size=SIZE, cnn_channels=(8,), text="hashing", seed=0)
    data = PolicyDataset.from_episodes(expert_episodes[:2], text_encoder, goal="instruction")
    assert np.isfinite(data.rewards).all() and data.metadata["goal"] == "instruction"


def test_from_file_cache_and_errors(tmp_path, encoder, expert_episodes, monkeypatch):
    path = tmp_path / "demos.h5"
    write_episodes(path, expert_episodes[:3], env_id=ENV_ID, cameras=["front"], image_size=SIZE)
    cache = tmp_path / "cache"
    first = PolicyDataset.from_file(path, encoder, cache_dir=cache, progress=False)
    assert len(list(cache.glob("*.npz"))) == 1
    assert len(first) == sum(len(e.actions) for e in expert_episodes[:3])

    def boom(*args, **kwargs):
        raise AssertionError("should have used the cache")

    monkeypatch.setattr(encoder, "encode_images", boom)
    second = PolicyDataset.from_file(path, encoder, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(first.embeddings, second.embeddings)
    monkeypatch.undo()
    cached = next(cache.glob("*.npz"))
    cached.write_bytes(b"corrupt")
    third = PolicyDataset.from_file(path, encoder, cache_dir=cache, progress=False)  # recomputed and rewritten
    np.testing.assert_array_equal(first.embeddings, third.embeddings)
    assert cached.stat().st_size > 100
    other = build_encoder("cnn", embed_dim=16, image_size=SIZE, cnn_channels=(8, 16), seed=1)
    PolicyDataset.from_file(path, other, cache_dir=cache, progress=False)
    assert len(list(cache.glob("*.npz"))) == 2  # another encoder -> another key

    with pytest.raises(ValueError, match="camera='left' not found"):
        PolicyDataset.from_file(path, encoder, camera="left")
    with pytest.raises(ValueError, match="expected 64x64"):
        PolicyDataset.from_file(path, encoder, image_size=64)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        PolicyDataset.from_file(tmp_path / "missing.h5", encoder)
    (tmp_path / "bad.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(ValueError, match="corrupt|not a readable|HDF5"):
        PolicyDataset.from_file(tmp_path / "bad.h5", encoder)
    import h5py

    with h5py.File(tmp_path / "nokey.h5", "w") as handle:
        group = handle.create_group("data/demo_0")
        group.create_dataset("obs/front", data=np.zeros((3, SIZE, SIZE, 3), np.uint8))
    with pytest.raises(ValueError, match="actions"):
        PolicyDataset.from_file(tmp_path / "nokey.h5", encoder)


def test_bad_datasets(encoder, expert_episodes):
    with pytest.raises(ValueError, match="empty"):
        PolicyDataset.from_episodes([], encoder)
    nan_ep = rollout(5)
    nan_ep.rewards[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        PolicyDataset.from_episodes([nan_ep], encoder, mode="true")
    data = PolicyDataset.from_episodes([nan_ep], encoder, mode="progress")  # embedding rewards are fine
    with pytest.raises(ValueError, match="NaN"):
        train_rwr(RWRConfig(steps=2, reward_source="true"), data, progress=False)
    with pytest.raises(ValueError, match="mode must be"):
        PolicyDataset.from_episodes(expert_episodes[:1], encoder, mode="sparse")
    with pytest.raises(ValueError, match="needs|relabels"):
        PolicyDataset.from_episodes(expert_episodes[:1], None, mode="progress")
    with pytest.raises(ValueError, match="action dim 4, but env 'X' expects 7"):
        PolicyDataset.from_episodes(expert_episodes[:1], encoder).check_action_dim(7, env_id="X")
    with pytest.raises(ValueError, match="goal image must be uint8"):
        PolicyDataset.from_episodes(expert_episodes[:1], encoder, goal=np.zeros((SIZE, SIZE), np.uint8))


def test_returns_kinds(dataset):
    r = dataset.rewards.astype(np.float64)
    first = dataset.episode_ids == 0
    np.testing.assert_allclose(dataset.returns("reward"), r)
    np.testing.assert_allclose(dataset.returns("return")[first], r[first].sum())
    rtg = dataset.returns("reward_to_go", gamma=1.0)[first]
    np.testing.assert_allclose(rtg, np.cumsum(r[first][::-1])[::-1])
    sub = dataset.select_episodes([2, 0])
    assert sub.num_episodes == 2 and len(sub) == int((dataset.episode_ids == 2).sum() + first.sum())


# ------------------------------------------------------------------------------------ trainers


def test_rwr_infinite_temperature_equals_bc(dataset):
    common = dict(steps=5, batch_size=32, hidden=(32, 32), log_every=1)
    bc = train_bc(BCConfig(**common), dataset, seed=3, progress=False)
    rwr = train_rwr(RWRConfig(**common, temperature=math.inf), dataset, seed=3, progress=False)
    for (name, a), (_, b) in zip(bc.policy.state_dict().items(), rwr.policy.state_dict().items()):
        assert torch.equal(a, b), name
    # gradients on one batch: BC vs RWR at a huge finite temperature
    policy = Policy(PolicyConfig(embed_dim=dataset.embed_dim, state_dim=2, hidden=(32,)))
    idx = torch.arange(64)
    emb, st, act = (torch.from_numpy(x[:64]) for x in (dataset.embeddings, dataset.states, dataset.actions))
    returns = torch.from_numpy(_standardized_returns(RWRConfig(), dataset)[:64])
    grads = []
    for weights in (torch.ones(64), rwr_weights(returns, temperature=1e12)):
        policy.zero_grad()
        (weights * policy.loss(act, st, embedding=emb)).mean().backward()
        grads.append([p.grad.clone() for p in policy.parameters()])
    for g_bc, g_rwr in zip(*grads):
        torch.testing.assert_close(g_bc, g_rwr, rtol=1e-6, atol=1e-9)
    assert idx.numel() == 64


@pytest.mark.parametrize("temperature", [1e-6, 1e-3, 1.0, 1e6])
@pytest.mark.parametrize("max_weight", [1.5, 3.0, 20.0, math.inf])
def test_rwr_weights_extreme_returns(temperature, max_weight):
    returns = torch.tensor([1e6, -1e6, 0.0, 5.0, -3.0, 2.0, 1.0, -1.0], dtype=torch.float64)
    weights = rwr_weights(returns, temperature=temperature, max_weight=max_weight)
    assert torch.isfinite(weights).all() and (weights >= 0).all() and (weights <= max_weight + 1e-5).all()
    torch.testing.assert_close(weights.double().mean(), torch.tensor(1.0, dtype=torch.float64), rtol=1e-5, atol=1e-5)
    order = torch.argsort(returns, descending=True)
    assert (weights[order].diff() <= 1e-6).all()  # monotone in the return
    with pytest.raises(ValueError, match="finite"):
        rwr_weights(torch.tensor([1.0, float("nan")]), temperature=temperature)


def test_rwr_weights_match_softmax_without_clipping():
    returns = torch.randn(64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = 64 * torch.softmax(returns / 0.7, 0)
    torch.testing.assert_close(rwr_weights(returns, temperature=0.7).double(), expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(rwr_weights(returns, temperature=math.inf), torch.ones(64))
    with pytest.raises(ValueError, match="max_weight"):
        rwr_weights(returns, temperature=1.0, max_weight=0.5)


def test_rwr_trains_finite_on_extreme_true_rewards(encoder, expert_episodes):
    episodes = [rollout(s) for s in range(3)]
    for ep, value in zip(episodes, (1e6, -1e6, 0.0)):
        ep.rewards[:] = value
    data = PolicyDataset.from_episodes(episodes, encoder)
    result = train_rwr(RWRConfig(steps=20, batch_size=32, hidden=(16,), reward_source="true", standardize=False,
                                 temperature=1.0, log_every=5), data, progress=False)
    assert all(math.isfinite(row["train/loss"]) and math.isfinite(row["train/weighted_loss"]) for row in result.history)


@pytest.mark.parametrize("kwargs,match", [
    ({"temperature": 0.0}, "temperature"), ({"temperature": float("nan")}, "temperature"),
    ({"returns": "q"}, "returns must be"), ({"max_weight": 0.5}, "max_weight"), ({"steps": 0}, "steps"),
    ({"reward_source": "oracle"}, "reward_source"), ({"gamma": 1.5}, "gamma"),
])
def test_rwr_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RWRConfig(**kwargs)


def test_cnn_policy_needs_frames(dataset):
    with pytest.raises(ValueError, match="keep_frames"):
        train_bc(BCConfig(arch="cnn", steps=2), dataset, progress=False)


# ------------------------------------------------------------------------------------ evaluation


def test_trained_policy_beats_random(encoder, expert_episodes, tmp_path):
    data = PolicyDataset.from_episodes(expert_episodes, encoder, goal="final")
    result = train_bc(BCConfig(steps=200, batch_size=64, hidden=(64, 64), lr=3e-3), data, seed=0, progress=False,
                      log_dir=tmp_path)
    assert (tmp_path / "train_log.csv").read_text().startswith("step,train/loss")
    trained = evaluate_policy(result.policy, ENV_ID, episodes=10, seed=500, encoder=encoder, progress=False)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        untrained = Policy(result.policy.config)
    baseline = evaluate_policy(untrained, ENV_ID, episodes=10, seed=500, encoder=encoder, progress=False)
    assert trained["success_rate"] >= 0.8, trained["success_rate"]
    assert trained["success_rate"] >= baseline["success_rate"] + 0.4
    assert len(trained["per_episode"]) == 10 and trained["per_episode"][0]["seed"] == 500


def test_rwr_beats_bc_on_mixed_demos(encoder, dataset):
    """4 expert + 8 random episodes: weighting by the true reward-to-go recovers the expert."""
    common = dict(steps=200, batch_size=64, hidden=(64, 64), lr=3e-3)
    bc = train_bc(BCConfig(**common), dataset, seed=0, progress=False)
    rwr = train_rwr(RWRConfig(**common, temperature=0.3, reward_source="true", returns="reward_to_go"), dataset, seed=0, progress=False)
    s_bc = evaluate_policy(bc.policy, ENV_ID, episodes=10, seed=700, encoder=encoder, progress=False)["success_rate"]
    s_rwr = evaluate_policy(rwr.policy, ENV_ID, episodes=10, seed=700, encoder=encoder, progress=False)["success_rate"]
    assert s_rwr > s_bc, (s_rwr, s_bc)


def test_evaluate_errors(encoder, dataset):
    policy3 = Policy(PolicyConfig(embed_dim=16, state_dim=2, action_dim=3, image_size=SIZE, hidden=(8,)))
    with pytest.raises(ValueError, match="action shape"):
        evaluate_policy(policy3, ENV_ID, episodes=1, encoder=encoder, progress=False)
    policy = train_bc(BCConfig(steps=2, hidden=(8,)), dataset, progress=False).policy
    with pytest.raises(ValueError, match="pass encoder="):
        evaluate_policy(policy, ENV_ID, episodes=1, progress=False)
    other = build_encoder("cnn", embed_dim=16, image_size=SIZE, cnn_channels=(8, 16), seed=7)
    with pytest.raises(ValueError, match="fingerprint"):
        evaluate_policy(policy, ENV_ID, episodes=1, encoder=other, progress=False)
    with pytest.raises(ValueError, match="conflicts"):
        evaluate_policy(policy, ENV_ID, episodes=1, encoder=encoder, env_kwargs={"image_size": 64}, progress=False)
    policy_state = Policy(PolicyConfig(embed_dim=16, state_dim=5, image_size=SIZE, hidden=(8,)))
    with pytest.raises(ValueError, match="state shape"):
        evaluate_policy(policy_state, ENV_ID, episodes=1, encoder=encoder, progress=False)


def test_ensemble_members_are_the_single_policies_of_their_seeds(dataset, tmp_path):
    """Member i of an ensemble of seed s is the single policy of seed s*N+i; the ensemble acts with their mean."""
    common = dict(steps=4, batch_size=16, hidden=(16,), log_every=2)
    result = train_rwr(RWRConfig(**common, ensemble=3), dataset, seed=1, progress=False, log_dir=tmp_path)
    ensemble = result.policy
    assert isinstance(ensemble, PolicyEnsemble) and len(ensemble) == 3 and not ensemble.training
    for i, member in enumerate(ensemble.members):
        single = train_rwr(RWRConfig(**common), dataset, seed=3 + i, progress=False).policy
        for (name, a), (_, b) in zip(single.state_dict().items(), member.state_dict().items()):
            assert torch.equal(a, b), (i, name)
    assert [(row["member"], row["step"]) for row in result.history] == [(m, s) for m in range(3) for s in (2, 4)]
    assert (tmp_path / "train_log.csv").read_text().splitlines()[0].startswith("member,step,")
    emb, st = torch.from_numpy(dataset.embeddings[:5]), torch.from_numpy(dataset.states[:5])
    expected = torch.stack([m.act(st, embedding=emb) for m in ensemble.members]).mean(0)
    torch.testing.assert_close(ensemble.act(st, embedding=emb), expected)
    # stochastic: each row is one member's action (deterministic head: that member's mean)
    sampled = ensemble.act(st, embedding=emb, deterministic=False, generator=torch.Generator().manual_seed(0))
    per_member = torch.stack([m.act(st, embedding=emb) for m in ensemble.members])
    assert all(any(torch.equal(sampled[r], per_member[k, r]) for k in range(3)) for r in range(5))
    # saved as one directory, loaded back as an ensemble that acts the same
    save_policy(ensemble, tmp_path / "p")
    assert json.loads((tmp_path / "p" / "policy.json").read_text())["ensemble"] == 3
    loaded = load_policy(tmp_path / "p")
    assert isinstance(loaded, PolicyEnsemble) and len(loaded) == 3
    torch.testing.assert_close(loaded.act(st, embedding=emb), expected)
    # ensemble=1 is the single policy, bit for bit
    one = train_rwr(RWRConfig(**common, ensemble=1), dataset, seed=1, progress=False).policy
    two = train_rwr(RWRConfig(**common), dataset, seed=1, progress=False).policy
    assert isinstance(one, Policy) and all(torch.equal(a, b) for a, b in zip(one.state_dict().values(), two.state_dict().values()))


def test_ensemble_samples_a_member_per_row_with_gaussian_heads():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        members = [Policy(PolicyConfig(embed_dim=4, state_dim=0, hidden=(8,), head="gaussian")) for _ in range(2)]
    ensemble, emb = PolicyEnsemble(members), torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    sampled = ensemble.act(embedding=emb, deterministic=False, generator=torch.Generator().manual_seed(2))
    # the same generator draws each member's noise in turn, then the member of each row
    generator = torch.Generator().manual_seed(2)
    per_member = torch.stack([m.act(embedding=emb, deterministic=False, generator=generator) for m in members])
    pick = torch.randint(2, (6,), generator=generator)
    torch.testing.assert_close(sampled, per_member[pick, torch.arange(6)])
    assert bool((sampled.abs() <= 1).all()) and not torch.allclose(sampled, ensemble.act(embedding=emb))


def test_ensemble_errors(dataset, tmp_path):
    with pytest.raises(ValueError, match="ensemble must be a positive int"):
        BCConfig(ensemble=0)
    small, other = Policy(PolicyConfig(embed_dim=4, hidden=(8,))), Policy(PolicyConfig(embed_dim=4, hidden=(16,)))
    with pytest.raises(ValueError, match="at least 2 Policy members"):
        PolicyEnsemble([small])
    with pytest.raises(ValueError, match="member 1 has another config"):
        PolicyEnsemble([small, other])
    save_policy(PolicyEnsemble([small, Policy(small.config)]), tmp_path / "p")
    doc = json.loads((tmp_path / "p" / "policy.json").read_text())
    (tmp_path / "p" / "policy.json").write_text(json.dumps(dict(doc, ensemble=3)))
    with pytest.raises(ValueError, match="does not match its config: missing"):
        load_policy(tmp_path / "p")
    (tmp_path / "p" / "policy.json").write_text(json.dumps(dict(doc, ensemble="two")))
    with pytest.raises(ValueError, match="ensemble='two'; expected the member count"):
        load_policy(tmp_path / "p")


# ------------------------------------------------------------------------------------ CLI


def test_cli_train_and_evaluate(tmp_path, expert_episodes, capsys):
    from vip_rl.policies.cli import evaluate_cli, train_cli

    data = tmp_path / "demos.h5"
    write_episodes(data, expert_episodes[:4], env_id=ENV_ID, cameras=["front"], image_size=SIZE)
    out = tmp_path / "rwr"
    rc = train_cli(["rwr", "--data", str(data), "--encoder", "random", "--out", str(out), "--steps", "30",
                    "--hidden", "16", "--temperature", "0.5", "--state", "all", "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0
    assert {"policy.json", "policy.safetensors", "train_log.csv", "encoder", "train_summary.json"} <= {p.name for p in out.iterdir()}
    rc = evaluate_cli([str(out), "--env", ENV_ID, "--episodes", "2", "--video", str(tmp_path / "videos"), "--seed", "900"])
    assert rc == 0
    result = json.loads((out / "eval_Point.json").read_text())
    assert result["episodes"] == 2 and 0.0 <= result["success_rate"] <= 1.0
    assert len(list((tmp_path / "videos").glob("*.mp4"))) == 2
    rc = train_cli(["bc", "--data", str(data), "--encoder", "random", "--out", str(tmp_path / "ens"), "--steps", "4",
                    "--hidden", "16", "--state", "all", "--ensemble", "2", "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0 and json.loads((tmp_path / "ens" / "policy.json").read_text())["ensemble"] == 2
    assert evaluate_cli([str(tmp_path / "ens"), "--env", ENV_ID, "--episodes", "1", "--seed", "900"]) == 0
    rc = train_cli(["bc", "--data", str(data), "--encoder", "random", "--out", str(tmp_path / "ens0"), "--ensemble", "0"])
    assert rc == 2 and "ensemble must be a positive int" in capsys.readouterr().err and not (tmp_path / "ens0").exists()
    # written atomically (vip_rl.data.write_video): nothing but the finished files is left behind
    assert sorted(p.suffix for p in (tmp_path / "videos").iterdir()) == [".mp4", ".mp4"]
    rc = train_cli(["bc", "--data", str(tmp_path / "missing.h5"), "--encoder", "random", "--out", str(tmp_path / "x")])
    assert rc == 2 and "does not exist" in capsys.readouterr().err
    # a missing goal file is an error, not an instruction (the same goal-file rule as vip-rl mppi)
    rc = train_cli(["bc", "--data", str(data), "--encoder", "random", "--goal", str(tmp_path / "goal.png"),
                    "--out", str(tmp_path / "y")])
    assert rc == 2 and "--goal file" in capsys.readouterr().err and not (tmp_path / "y").exists()


def test_goal_arg_keywords_files_and_text(tmp_path):
    from vip_rl.policies.cli import load_goal_arg

    assert [load_goal_arg(k) for k in ("success", "final", "instruction")] == ["success", "final", "instruction"]
    assert load_goal_arg("press the button") == "press the button"
    video = np.stack([np.full((SIZE, SIZE, 3), v, np.uint8) for v in (0, 90)])
    np.save(tmp_path / "demo.npy", video)  # a video file: its last frame
    np.testing.assert_array_equal(load_goal_arg(str(tmp_path / "demo.npy")), video[-1])
    with pytest.raises(FileNotFoundError, match="--goal file .*missing.jpg' does not exist"):
        load_goal_arg(str(tmp_path / "missing.jpg"))


def test_from_file_d4rl_flat(tmp_path, encoder, expert_episodes):
    from vip_rl.data import export_d4rl

    suite = tmp_path / "demos.h5"
    write_episodes(suite, expert_episodes[:3], env_id=ENV_ID, cameras=["front"], image_size=SIZE)
    flat = export_d4rl(suite, tmp_path / "flat.h5", camera="front")
    a = PolicyDataset.from_file(suite, encoder, progress=False)
    b = PolicyDataset.from_file(flat, encoder, progress=False)
    np.testing.assert_allclose(a.embeddings, b.embeddings, atol=1e-6)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_allclose(a.rewards, b.rewards, atol=1e-6)


def test_state_indices_round_trip_and_eval(tmp_path, encoder, expert_episodes):
    data = PolicyDataset.from_episodes(expert_episodes[:4], encoder)
    result = train_bc(BCConfig(steps=5, hidden=(8,), state_indices=(1,)), data, progress=False)
    assert result.policy.config.state_indices == (1,) and result.policy.state_mean.shape == (1,)
    save_policy(result.policy, tmp_path / "p")
    loaded = load_policy(tmp_path / "p")
    assert loaded.config == result.policy.config
    out = evaluate_policy(loaded, ENV_ID, episodes=2, encoder=encoder, progress=False)
    assert len(out["per_episode"]) == 2


@pytest.mark.parametrize("head", ["deterministic", "gaussian"])
def test_cnn_end_to_end_and_gaussian_training(encoder, expert_episodes, head):
    data = PolicyDataset.from_episodes(expert_episodes[:3], encoder, keep_frames=True)
    assert data.frames is not None and data.frames.shape[1:] == (SIZE, SIZE, 3)
    cnn = train_bc(BCConfig(arch="cnn", head=head, steps=3, batch_size=16, hidden=(16,), cnn_channels=(8, 8)), data, progress=False)
    assert cnn.policy.config.arch == "cnn" and math.isfinite(cnn.history[-1]["train/loss"])
    out = evaluate_policy(cnn.policy, ENV_ID, episodes=1, progress=False, deterministic=False)
    assert out["episodes"] == 1
    mlp = train_rwr(RWRConfig(head=head, steps=3, batch_size=16, hidden=(16,)), data, progress=False)
    assert math.isfinite(mlp.history[-1]["train/weighted_loss"])


def test_evaluate_unknown_env(encoder, dataset):
    policy = train_bc(BCConfig(steps=1, hidden=(8,)), dataset, progress=False).policy
    with pytest.raises(ValueError, match="could not be made"):
        evaluate_policy(policy, "CartPole-v1", episodes=1, encoder=encoder, progress=False)


# ------------------------------------------------------------------------------------ pixel policies: pooling, shifts, a second camera
def test_random_shift_is_an_edge_padded_crop():
    from vip_rl.policies.trainers import random_shift

    frames = torch.randint(0, 256, (64, 12, 10, 3), dtype=torch.uint8)
    assert random_shift(frames, 0) is frames
    out = random_shift(frames, 2, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == frames.shape
    used = set()
    for b in range(len(frames)):
        padded = np.pad(frames[b].numpy(), ((2, 2), (2, 2), (0, 0)), mode="edge")  # plain transcription of DrQ's shift
        crops = {(dy, dx) for dy in range(5) for dx in range(5) if np.array_equal(padded[dy:dy + 12, dx:dx + 10], out[b].numpy())}
        assert crops, f"frame {b} is not a crop of its edge-padded frame"
        used |= crops
    assert len(used) >= 10  # offsets vary per frame
    again = random_shift(frames, 2, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # seeded


def test_pixel_pool_sees_the_average_pooled_frame(tmp_path):
    cfg = PolicyConfig(arch="cnn", state_dim=2, image_size=SIZE, hidden=(16,), cnn_channels=(8, 8), pixel_pool=2)
    pooled = Policy(cfg)
    plain = Policy(dataclasses.replace(cfg, image_size=SIZE // 2, pixel_pool=1))
    plain.load_state_dict(pooled.state_dict())  # same weights: the conv stack sees 16 px either way
    frames = torch.randint(0, 256, (3, SIZE, SIZE, 3), dtype=torch.uint8)
    small = torch.nn.functional.avg_pool2d(frames.permute(0, 3, 1, 2).float(), 2).permute(0, 2, 3, 1)
    state = torch.zeros(3, 2)
    # the plain policy's input is the pooled frame, so feed its trunk the same float image
    x = small.permute(0, 3, 1, 2) / 255.0 - 0.5
    expected = plain.net(torch.cat([plain.pixel_trunk.convs(x).flatten(1), state], -1))
    torch.testing.assert_close(pooled(state, pixels=frames)[0], torch.tanh(expected))
    save_policy(pooled, tmp_path / "p")
    assert load_policy(tmp_path / "p").config.pixel_pool == 2
    for kwargs, match in (({"pixel_pool": 0}, "pixel_pool must be"), ({"pixel_pool": 3}, "must divide"),
                          ({"pixel_pool": 4}, ">= 16 px")):
        with pytest.raises(ValueError, match=match):
            dataclasses.replace(cfg, **kwargs)
    with pytest.raises(ValueError, match="random_shift"):
        BCConfig(random_shift=-1)
    # stride-1 stages keep a finer map: 32 px pooled to 16, then stride 2 (8 x 8) and stride 1 (8 x 8)
    fine = Policy(dataclasses.replace(cfg, cnn_strides=(2, 1)))
    assert fine.pixel_trunk.out_dim == 8 * 8 * 8 and pooled.pixel_trunk.out_dim == 8 * 4 * 4
    assert fine(state, pixels=frames)[0].shape == (3, 4)
    save_policy(fine, tmp_path / "fine")
    assert load_policy(tmp_path / "fine").config.cnn_strides == (2, 1)
    with pytest.raises(ValueError, match="cnn_strides must be None or one positive stride per conv stage"):
        dataclasses.replace(cfg, cnn_strides=(2,))


class _OneViewPointEnv(PointEnv):
    """The point env that renders only its first camera, whatever ``cameras`` asks for."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.observation_space = spaces.Dict({"pixels": self.observation_space["pixels"], "state": self.observation_space["state"]})

    def _obs(self) -> dict:
        return {"pixels": self.render(), "state": self.pos.astype(np.float32)}


ONE_VIEW_ID = "vip_policy_test/PointOneView-v0"
if ONE_VIEW_ID not in gym.registry:
    gym.register(ONE_VIEW_ID, entry_point=_OneViewPointEnv, max_episode_steps=30)


def _two_camera_episodes(episodes):
    """The point env's episodes with a second camera, 'wrist', whose frames are the front frames inverted."""
    return [dataclasses.replace(ep, frames={"front": ep.frames["front"], "wrist": 255 - ep.frames["front"]}) for ep in episodes]


def test_mlp_policy_on_the_embeddings_of_two_cameras(tmp_path, encoder, expert_episodes):
    episodes = _two_camera_episodes(expert_episodes[:4])
    front = PolicyDataset.from_episodes(episodes, encoder)
    both = PolicyDataset.from_episodes(episodes, encoder, extra_cameras=("wrist",))
    assert both.embed_dim == 2 * encoder.embed_dim and both.metadata["extra_cameras"] == ["wrist"]
    np.testing.assert_array_equal(both.embeddings[:, :encoder.embed_dim], front.embeddings)  # the front view first ...
    with torch.no_grad():
        wrist = encoder.encode_images(np.concatenate([ep.frames["wrist"][:-1] for ep in episodes])).numpy()
    np.testing.assert_allclose(both.embeddings[:, encoder.embed_dim:], wrist, atol=1e-6)  # ... then the wrist view's
    np.testing.assert_array_equal(both.rewards, front.rewards)  # rewards from the front camera alone
    result = train_bc(BCConfig(steps=3, batch_size=8, hidden=(8,)), both, progress=False)
    cfg = result.policy.config
    assert cfg.extra_cameras == ("wrist",) and cfg.cameras == ("front", "wrist") and cfg.embed_dim == 2 * encoder.embed_dim
    save_policy(result.policy, tmp_path / "p")
    assert load_policy(tmp_path / "p").config.extra_cameras == ("wrist",)
    # evaluation renders both cameras and feeds the policy the two embeddings in the training order
    seen = []
    act = result.policy.act
    result.policy.act = lambda state, *, embedding=None, **kw: (seen.append((state, embedding)), act(state, embedding=embedding, **kw))[1]
    out = evaluate_policy(result.policy, ENV_ID, episodes=2, seed=40, encoder=encoder, progress=False)
    assert out["episodes"] == 2 and seen
    env = gym.make(ENV_ID, render_mode="rgb_array")
    obs, _ = env.reset(seed=40)
    with torch.no_grad():
        expected = torch.cat([encoder.encode_images(obs["pixels"][None]), encoder.encode_images(255 - obs["pixels"][None])], 1)
    torch.testing.assert_close(seen[0][1][:1], expected)
    wide = build_encoder("cnn", embed_dim=32, image_size=SIZE, cnn_channels=(8,), seed=1)  # 2 x 32 != the policy's 32
    with pytest.raises(ValueError, match="encoder.embed_dim=32 but the policy expects 32 \\(2 cameras \\['front', 'wrist'\\]\\)"):
        evaluate_policy(result.policy, ENV_ID, episodes=1, encoder=wide, progress=False)
    with pytest.raises(ValueError, match="conflicts with the policy, trained on cameras \\['front', 'wrist'\\]"):
        evaluate_policy(result.policy, ENV_ID, episodes=1, encoder=encoder, env_kwargs={"cameras": ("front",)}, progress=False)
    with pytest.raises(ValueError, match="returns no \\['pixels_wrist'\\] observation, but the policy sees cameras \\['front', 'wrist'\\]"):
        evaluate_policy(result.policy, ONE_VIEW_ID, episodes=1, encoder=encoder, progress=False)
    # bad requests name the problem
    with pytest.raises(ValueError, match="extra camera 'left' not found in episode 0 .* cameras \\['front', 'wrist'\\]"):
        PolicyDataset.from_episodes(episodes, encoder, extra_cameras=("left",))
    with pytest.raises(ValueError, match="extra_cameras must be distinct camera names other than camera='front'"):
        PolicyDataset.from_episodes(episodes, encoder, extra_cameras=("front",))
    # (Episode itself refuses views of another length, so a plain object with the same fields stands in)
    short = [types.SimpleNamespace(frames={**ep.frames, "wrist": ep.frames["wrist"][:-1]}, states=ep.states, actions=ep.actions,
                                   rewards=ep.rewards, attrs=ep.attrs) for ep in episodes]
    with pytest.raises(ValueError, match="episode 0 of '<memory>': frames\\['wrist'\\] and frames\\['front'\\] differ in length"):
        PolicyDataset.from_episodes(short, encoder, extra_cameras=("wrist",))
    with pytest.raises(ValueError, match="must be a sequence of camera names, got the string 'wrist'"):
        PolicyDataset.from_episodes(episodes, encoder, extra_cameras="wrist")
    with pytest.raises(ValueError, match="are embedded by the encoder; pass encoder="):
        PolicyDataset.from_episodes(episodes, None, mode="true", extra_cameras=("wrist",))
    with pytest.raises(ValueError, match="extra_cameras only apply to an 'mlp' policy on embeddings"):
        PolicyConfig(arch="cnn", extra_cameras=("wrist",))
    with pytest.raises(ValueError, match="embed_dim=15 must be a multiple of the 2 cameras' count"):
        PolicyConfig(embed_dim=15, extra_cameras=("wrist",))
    with pytest.raises(ValueError, match="extra_cameras must be distinct camera names other than camera='front', got \\['wrist', 'wrist'\\]"):
        PolicyConfig(embed_dim=32, extra_cameras=("wrist", "wrist"))


@pytest.mark.slow  # over a second: two CLI trainings and an evaluation
def test_cli_extra_cameras(tmp_path, expert_episodes, capsys):
    from vip_rl.policies.cli import evaluate_cli, train_cli

    episodes = _two_camera_episodes(expert_episodes[:4])
    data = tmp_path / "demos.h5"
    write_episodes(data, episodes, env_id=ENV_ID, cameras=["front", "wrist"], image_size=SIZE)
    out = tmp_path / "mlp2"
    args = ["bc", "--data", str(data), "--encoder", "random", "--out", str(out), "--extra-cameras", "wrist", "--steps", "3",
            "--hidden", "8", "--state", "all", "--cache-dir", str(tmp_path / "cache")]
    assert train_cli(args) == 0
    saved = json.loads((out / "policy.json").read_text())
    assert saved["config"]["extra_cameras"] == ["wrist"] and saved["metadata"]["dataset"]["extra_cameras"] == ["wrist"]
    assert len(list((tmp_path / "cache").glob("demos.wrist.*.npz"))) == 1
    assert evaluate_cli([str(out), "--env", ENV_ID, "--episodes", "1"]) == 0
    front_only = tmp_path / "front.h5"  # a file without the camera: one line, nothing written
    write_episodes(front_only, episodes, env_id=ENV_ID, cameras=["front"], image_size=SIZE)
    rc = train_cli(["bc", "--data", str(front_only), *args[3:5], "--out", str(tmp_path / "bad"), *args[7:]])
    assert rc == 2 and "extra camera 'wrist' not found in episode 0" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    for extra, message in ((["--arch", "cnn"], "--extra-cameras only applies to --arch mlp"),
                           (["--camera", "wrist"], "must name distinct cameras other than --camera wrist")):
        rc = train_cli([*args[:5], "--out", str(tmp_path / "bad"), *args[7:], *extra])
        assert rc == 2 and message in capsys.readouterr().err
        assert not (tmp_path / "bad").exists()


def test_frames_from_another_camera(tmp_path, encoder, expert_episodes, capsys):
    episodes = _two_camera_episodes(expert_episodes[:4])
    front = PolicyDataset.from_episodes(episodes, encoder, keep_frames=True)
    wrist = PolicyDataset.from_episodes(episodes, encoder, keep_frames=True, frames_camera="wrist")
    np.testing.assert_array_equal(wrist.frames, 255 - front.frames)  # the policy's frames come from the wrist ...
    np.testing.assert_array_equal(wrist.rewards, front.rewards)     # ... the rewards still from the front camera
    np.testing.assert_array_equal(wrist.embeddings, front.embeddings)
    assert wrist.metadata["frames_camera"] == "wrist" and wrist.metadata["camera"] == "front"
    result = train_bc(BCConfig(arch="cnn", steps=3, batch_size=8, hidden=(8,), cnn_channels=(8, 8), random_shift=2), wrist,
                      progress=False)
    assert result.policy.config.camera == "wrist" and math.isfinite(result.history[-1]["train/loss"])
    with pytest.raises(ValueError, match="frames_camera='left' not found .* cameras \\['front', 'wrist'\\]"):
        PolicyDataset.from_episodes(episodes, encoder, keep_frames=True, frames_camera="left")
    # from a file, through the CLI
    from vip_rl.policies.cli import train_cli

    data = tmp_path / "demos.h5"
    write_episodes(data, episodes, env_id=ENV_ID, cameras=["front", "wrist"], image_size=SIZE)
    out = tmp_path / "cnn"
    rc = train_cli(["bc", "--data", str(data), "--encoder", "random", "--out", str(out), "--arch", "cnn", "--policy-camera",
                    "wrist", "--pixel-pool", "2", "--random-shift", "2", "--steps", "3", "--hidden", "8", "--state", "all",
                    "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0
    saved = json.loads((out / "policy.json").read_text())
    assert saved["config"]["camera"] == "wrist" and saved["config"]["pixel_pool"] == 2
    assert saved["metadata"]["train_config"]["random_shift"] == 2
    rc = train_cli(["bc", "--data", str(data), "--encoder", "random", "--out", str(tmp_path / "mlp"), "--random-shift", "2"])
    assert rc == 2 and "--random-shift only apply to --arch cnn" in capsys.readouterr().err
    assert not (tmp_path / "mlp").exists()
    # the conv stages: widths and strides from the command line, refused before anything is written
    out = tmp_path / "fine"
    rc = train_cli(["bc", "--data", str(data), "--encoder", "random", "--out", str(out), "--arch", "cnn", "--pixel-pool", "2",
                    "--cnn-channels", "8,8,8", "--cnn-strides", "2,1,2", "--steps", "3", "--hidden", "8", "--state", "all",
                    "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0
    saved = json.loads((out / "policy.json").read_text())
    assert saved["config"]["cnn_channels"] == [8, 8, 8] and saved["config"]["cnn_strides"] == [2, 1, 2]
    assert load_policy(out).pixel_trunk.out_dim == 8 * 4 * 4  # 16 px after pooling -> 8 -> 8 -> 4
    for extra, message in ((["--arch", "cnn", "--cnn-strides", "2,1"], "--cnn-strides gives 2 strides for 4 conv stages"),
                           (["--arch", "cnn", "--cnn-channels", "8,x"], "--cnn-channels must be comma-separated positive ints"),
                           (["--arch", "cnn", "--cnn-strides", "0,1,2,1"], "--cnn-strides must be comma-separated positive ints"),
                           (["--cnn-strides", "2,1,2,1"], "--cnn-strides only apply to --arch cnn")):
        rc = train_cli(["bc", "--data", str(data), "--encoder", "random", "--out", str(tmp_path / "bad"), *extra])
        assert rc == 2 and message in capsys.readouterr().err
        assert not (tmp_path / "bad").exists()
    # the default --state proprio on data whose state has fewer entries: refused before the encoder copy is written
    rc = train_cli(["bc", "--data", str(data), "--encoder", "random", "--out", str(tmp_path / "bad"), "--steps", "3",
                    "--cache-dir", str(tmp_path / "cache")])
    assert rc == 2 and "--state proprio feeds state entries 0-7" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    # any config the network cannot take for this data is refused before anything is written too
    rc = train_cli(["bc", "--data", str(data), "--encoder", "random", "--out", str(tmp_path / "bad"), "--steps", "3",
                    "--state", "all", "--arch", "cnn", "--pixel-pool", "3", "--cache-dir", str(tmp_path / "cache")])
    assert rc == 2 and f"pixel_pool=3 must divide image_size={SIZE}" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="one positive stride per conv stage \\(2\\)"):
        BCConfig(arch="cnn", cnn_channels=(8, 8), cnn_strides=(2,))
