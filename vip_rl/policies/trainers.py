"""Behaviour cloning and reward-weighted regression on a :class:`~vip_rl.policies.dataset.PolicyDataset`.

RWR minimises ``mean_i w_i * loss_i`` over a batch, with ``loss`` the per-sample MSE (deterministic
head) or Gaussian NLL and

    w_i = min(c * exp(R_i / temperature), max_weight),   c such that mean_i w_i = 1

i.e. ``exp(R_i / temperature)`` normalised per batch to mean 1 and clipped at ``max_weight`` (the
clipped mass is redistributed, so the mean stays 1: see :func:`rwr_weights`). ``R`` is the
per-step reward, the reward-to-go or the episode return of the relabelled (embedding) reward or of
the file's true env reward, optionally standardised over the dataset so that one temperature means
the same thing for every reward source. ``temperature=inf`` gives ``w = 1`` exactly: the same loss
and gradients as BC.

Example:
    >>> ds = PolicyDataset.from_file("demos.h5", load_encoder("td-sim"))          # doctest: +SKIP
    >>> result = train_rwr(RWRConfig(steps=2000, temperature=0.5), ds, seed=0)     # doctest: +SKIP
    >>> save_policy(result.policy, "runs/rwr")                                     # doctest: +SKIP
"""
from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from vip_rl._io import atomic_path

from .dataset import RETURN_KINDS, PolicyDataset
from .networks import AnyPolicy, Policy, PolicyConfig, PolicyEnsemble, checked_cnn_strides

#: ``vip_envs`` state entries that are proprioceptive (end-effector position, velocity, fingers); the
#: rest (drawer, door, button, switch, block pose, target) is privileged object state.
PROPRIO_INDICES: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7)


@dataclass(frozen=True)
class BCConfig:
    """Behaviour cloning (and the shared part of RWR).

    Attributes:
        steps: gradient steps.
        batch_size: transitions per step (sampled uniformly with replacement).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        hidden: hidden layer widths of the policy MLP.
        head: ``"deterministic"`` (MSE) or ``"gaussian"`` (NLL).
        arch: ``"mlp"`` on frozen embeddings or ``"cnn"`` end to end on frames (needs ``keep_frames=True``).
        use_state: append the state to the policy input.
        state_indices: which entries of the dataset's state to use (``None`` = all), e.g. ``PROPRIO_INDICES``.
        grad_clip: max global gradient norm (0 disables clipping).
        log_every: steps between CSV log rows / progress-bar updates.
        cnn_channels: conv stage widths for ``arch="cnn"``.
        cnn_strides: their strides (``None``: 2 each; :class:`~vip_rl.policies.PolicyConfig`).
        pixel_pool: ``arch="cnn"``: average-pool the frames by this factor before the CNN (2: 96 px seen at 48 px).
        random_shift: ``arch="cnn"``: shift each training frame by up to this many pixels in x and y, edges
            repeated (the pad-and-crop augmentation of DrQ, Kostrikov et al. 2021); 0 = off. With few demos it
            is what lets a pixel policy generalise over object positions (``benchmarks/few_shot_wrist.py``).
        ensemble: train this many policies, one after the other, and return them as one
            :class:`~vip_rl.policies.PolicyEnsemble` that averages their actions (1: a single :class:`Policy`).
            Member ``i`` is trained exactly as a single policy of seed ``seed * ensemble + i`` would be, so the
            members of seeds 0 and 1 never overlap; the cost is ``ensemble`` times one policy's.
    """

    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    hidden: tuple[int, ...] = (256, 256)
    head: Literal["deterministic", "gaussian"] = "deterministic"
    arch: Literal["mlp", "cnn"] = "mlp"
    use_state: bool = True
    state_indices: tuple[int, ...] | None = None
    grad_clip: float = 10.0
    log_every: int = 100
    cnn_channels: tuple[int, ...] = (32, 64, 64, 64)
    cnn_strides: tuple[int, ...] | None = None
    pixel_pool: int = 1
    random_shift: int = 0
    ensemble: int = 1

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "pixel_pool", "ensemble"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite float > 0, got {self.lr!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite float >= 0, got {self.weight_decay!r}")
        if not (math.isfinite(self.grad_clip) and self.grad_clip >= 0):
            raise ValueError(f"grad_clip must be a finite float >= 0 (0 = off), got {self.grad_clip!r}")
        if isinstance(self.random_shift, bool) or not isinstance(self.random_shift, int) or self.random_shift < 0:
            raise ValueError(f"random_shift must be an int >= 0 (pixels; 0 = off), got {self.random_shift!r}")
        if self.head not in ("deterministic", "gaussian"):
            raise ValueError(f"head must be 'deterministic' or 'gaussian', got {self.head!r}")
        if self.arch not in ("mlp", "cnn"):
            raise ValueError(f"arch must be 'mlp' or 'cnn', got {self.arch!r}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "cnn_channels", tuple(int(c) for c in self.cnn_channels))
        object.__setattr__(self, "cnn_strides", checked_cnn_strides(self.cnn_strides, self.cnn_channels))
        if not self.hidden or any(h <= 0 for h in self.hidden):
            raise ValueError(f"hidden must be a non-empty sequence of positive ints, got {self.hidden!r}")
        if self.state_indices is not None:
            object.__setattr__(self, "state_indices", tuple(int(i) for i in self.state_indices))


@dataclass(frozen=True)
class RWRConfig(BCConfig):
    """Reward-weighted regression: :class:`BCConfig` plus the weighting.

    Attributes:
        temperature: ``w = exp(R / temperature)``; ``float("inf")`` reduces exactly to BC. Must be > 0.
        returns: ``"return"`` (the episode return, the same weight for every step of a demo; the default),
            ``"reward"`` (per-step r_t; for the VIP progress reward the one-step advantage
            ``V(o_{t+1}) - V(o_t)`` under the embedding value, but noisy frame to frame) or ``"reward_to_go"``
            (``sum_k gamma^k r_{t+k}``). The reward-to-go of a progress reward telescopes to about
            ``d(o_t, g) - d(o_T, g)``, the distance still to cover: it ranks *states* (early ones first), not
            demos, so RWR on it learns to approach and not to finish; the episode return
            ``d(o_0, g) - d(o_T, g)`` ranks whole demos (see ``benchmarks/few_shot.py``).
        reward_source: ``"relabelled"`` (the dataset's encoder reward) or ``"true"`` (the file's env reward).
        gamma: discount of ``"reward_to_go"``.
        max_weight: weights above this (after normalising to batch mean 1) are clipped.
        standardize: standardise ``R`` over the dataset (zero mean, unit std) before dividing by the
            temperature, so one temperature is comparable across reward sources and encoders.
    """

    temperature: float = 0.5
    returns: Literal["reward", "reward_to_go", "return"] = "return"
    reward_source: Literal["relabelled", "true"] = "relabelled"
    gamma: float = 0.99
    max_weight: float = 20.0
    standardize: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (isinstance(self.temperature, (int, float)) and not math.isnan(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be > 0 (float('inf') = BC), got {self.temperature!r}")
        if self.returns not in RETURN_KINDS:
            raise ValueError(f"returns must be one of {RETURN_KINDS}, got {self.returns!r}")
        if self.reward_source not in ("relabelled", "true"):
            raise ValueError(f"reward_source must be 'relabelled' or 'true', got {self.reward_source!r}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma!r}")
        if not (self.max_weight >= 1.0):
            raise ValueError(f"max_weight must be >= 1 (weights have batch mean 1), got {self.max_weight!r}")


@dataclass
class TrainResult:
    """What a trainer returns: the trained policy or ensemble (eval mode) and the logged rows (with a
    ``member`` column when ``config.ensemble > 1``)."""

    policy: AnyPolicy
    history: list[dict[str, float]] = field(default_factory=list)
    config: BCConfig | None = None


def rwr_weights(returns: torch.Tensor, *, temperature: float, max_weight: float = math.inf, check: bool = True) -> torch.Tensor:
    """RWR weights for one batch: ``w_i = min(c * exp(R_i / temperature), max_weight)`` with ``mean(w) = 1``.

    ``c`` is chosen so that the batch mean weight is exactly 1 *after* clipping (water-filling: the
    largest weights are clipped to ``max_weight`` and the mass they lose is spread over the others in
    proportion to ``exp(R / temperature)``). Without clipping this is ``B * softmax(R / temperature)``.
    Keeping the mean at 1 keeps the loss scale (and the effective learning rate) the same as BC's, and
    ``temperature=inf`` returns exactly ones. Everything runs in log space (float64), so returns of
    +-1e6 and any temperature > 0 give finite weights.

    Args:
        returns: ``[B]`` float returns.
        temperature: > 0, or ``inf``.
        max_weight: clip value (>= 1; ``inf`` = no clipping).
        check: validate that ``returns`` is finite (one host sync; the trainer checks once up front instead).

    Returns:
        ``[B]`` float32 weights, mean 1, each in ``[0, max_weight]``, ordered like ``returns``.

    Raises:
        ValueError: non-finite returns (when ``check``), temperature <= 0 or NaN, max_weight < 1.
    """
    if not (temperature > 0):
        raise ValueError(f"temperature must be > 0 (float('inf') = BC), got {temperature!r}")
    if not (max_weight >= 1.0):
        raise ValueError(f"max_weight must be >= 1 (weights have batch mean 1), got {max_weight!r}")
    if returns.ndim != 1 or returns.shape[0] < 1:
        raise ValueError(f"returns must be [B] with B >= 1, got shape {list(returns.shape)}")
    if check and not bool(torch.isfinite(returns).all()):
        raise ValueError(f"returns must be finite, got {returns[~torch.isfinite(returns)][:5].tolist()} among them")
    if math.isinf(temperature):
        return torch.ones(returns.shape, dtype=torch.float32, device=returns.device)
    batch = returns.shape[0]
    logits = returns.double() / temperature
    logits = logits - logits.max()  # [B], <= 0: keeps log c and the logits on the same small scale
    ordered, _ = torch.sort(logits, descending=True)  # [B]
    # suffix log-sum-exp: lse[k] = log sum_{i >= k} exp(ordered[i])
    suffix_lse = torch.logcumsumexp(ordered.flip(0), dim=0).flip(0)  # [B]
    clipped = torch.arange(batch, device=returns.device, dtype=torch.float64)  # k = number of clipped weights
    remaining = batch - clipped * max_weight if math.isfinite(max_weight) else torch.full_like(clipped, float(batch))
    log_scale = torch.log(remaining.clamp_min(1e-300)) - suffix_lse  # log c_k  [B]
    # smallest feasible k whose (k+1)-th largest weight stays under the clip
    ok = (remaining > 0) & (log_scale + ordered <= math.log(max_weight))
    k = torch.argmax(ok.to(torch.int8))
    weights = torch.exp(log_scale[k] + logits).clamp(max=max_weight)
    return weights.float()


def policy_config_for(config: BCConfig, dataset: PolicyDataset, *, encoder: str | None = None) -> PolicyConfig:
    """The :class:`PolicyConfig` a trainer builds for ``dataset`` under ``config``."""
    return PolicyConfig(
        arch=config.arch,
        head=config.head,
        embed_dim=dataset.embed_dim if config.arch == "mlp" else 0,
        state_dim=dataset.state_dim if config.use_state else 0,
        state_indices=config.state_indices if config.use_state else None,
        action_dim=dataset.action_dim,
        hidden=config.hidden,
        image_size=int(dataset.metadata.get("image_size", 96)),
        cnn_channels=config.cnn_channels,
        cnn_strides=config.cnn_strides,
        pixel_pool=config.pixel_pool,
        camera=str(dataset.metadata.get("frames_camera" if config.arch == "cnn" else "camera")
                   or dataset.metadata.get("camera", "front")),
        extra_cameras=tuple(dataset.metadata.get("extra_cameras") or ()) if config.arch == "mlp" else (),
        encoder=encoder,
        encoder_fingerprint=dataset.metadata.get("encoder_fingerprint") if config.arch == "mlp" else None,
    )


def random_shift(frames: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each uint8 frame ``[B, H, W, C]`` by its own random offset in ``[-pad, pad]`` pixels along y and x.

    The pixels shifted in repeat the edge row / column, as padding by ``pad`` with edge values and cropping
    back to ``H x W`` at a random place does (DrQ's augmentation). Offsets are drawn on the CPU from
    ``generator``; ``pad=0`` returns ``frames`` and draws nothing.
    """
    if pad == 0:
        return frames
    batch, height, width = frames.shape[:3]
    offsets = torch.randint(-pad, pad + 1, (2, batch, 1), generator=generator).to(frames.device)
    rows = (torch.arange(height, device=frames.device)[None] + offsets[0]).clamp_(0, height - 1)
    cols = (torch.arange(width, device=frames.device)[None] + offsets[1]).clamp_(0, width - 1)
    index = torch.arange(batch, device=frames.device)[:, None, None]
    return frames[index, rows[:, :, None], cols[:, None, :]]


def _standardized_returns(config: RWRConfig, dataset: PolicyDataset) -> np.ndarray:
    returns = dataset.returns(config.returns, source=config.reward_source, gamma=config.gamma)
    if config.standardize:
        std = returns.std()
        returns = (returns - returns.mean()) / (std if std > 1e-12 else 1.0)
    return returns


def _train(
    config: BCConfig,
    dataset: PolicyDataset,
    *,
    weighting: RWRConfig | None,
    returns: np.ndarray | None,
    device: str | torch.device,
    seed: int,
    encoder: str | None,
    log_dir: str | os.PathLike[str] | None,
    progress: bool,
    desc: str,
) -> TrainResult:
    """The loop BC and RWR share. ``weighting`` holds the RWR options and ``returns`` the standardised
    per-transition returns ``[N]`` they weigh; both None for BC (every weight 1)."""
    if (weighting is None) != (returns is None):
        raise ValueError("weighting and returns go together: both for RWR, neither for BC")
    if not isinstance(dataset, PolicyDataset):
        raise TypeError(f"dataset must be a PolicyDataset, got {type(dataset).__name__}")
    if len(dataset) == 0:
        raise ValueError("dataset is empty: no transitions to train on")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if config.arch == "cnn" and dataset.frames is None:
        raise ValueError("arch='cnn' trains on frames: build the dataset with keep_frames=True")
    if config.arch == "mlp" and dataset.embed_dim == 0 and not (config.use_state and dataset.state_dim):
        raise ValueError("arch='mlp' needs embeddings (an encoder) or use_state=True with a state in the dataset")
    device = torch.device(device)
    history: list[dict[str, float]] = []
    log_path = Path(log_dir) / "train_log.csv" if log_dir is not None else None
    # the training tensors, made once for every member
    tensors = {
        "embeddings": torch.from_numpy(dataset.embeddings).to(device),
        "states": torch.from_numpy(dataset.states).to(device),
        "actions": torch.from_numpy(np.clip(dataset.actions, -1.0, 1.0)).to(device),
        "frames": torch.from_numpy(dataset.frames).to(device) if config.arch == "cnn" and dataset.frames is not None else None,
        "returns": torch.from_numpy(returns).to(device) if returns is not None else None,
    }
    policy_config = policy_config_for(config, dataset, encoder=encoder)
    start = time.perf_counter()  # time_s in the log counts from here, over every member
    members = [
        _train_member(config, dataset, policy_config, tensors, weighting=weighting, device=device,
                      seed=seed * config.ensemble + i, member=i if config.ensemble > 1 else None,
                      history=history, log_path=log_path, start=start, progress=progress, desc=desc)
        for i in range(config.ensemble)
    ]
    policy = members[0] if len(members) == 1 else PolicyEnsemble(members)
    return TrainResult(policy=policy.eval(), history=history, config=config)


def _train_member(
    config: BCConfig,
    dataset: PolicyDataset,
    policy_config: PolicyConfig,
    tensors: dict[str, torch.Tensor | None],
    *,
    weighting: RWRConfig | None,
    device: torch.device,
    seed: int,
    member: int | None,
    history: list[dict[str, float]],
    log_path: Path | None,
    start: float,
    progress: bool,
    desc: str,
) -> Policy:
    """Train one policy of ``policy_config`` from ``seed`` on ``tensors`` (``_train``'s, on ``device``); its log rows
    are appended to ``history`` (and the CSV rewritten)."""
    from tqdm.auto import tqdm

    # ---- seed -> build
    generator = torch.Generator(device="cpu").manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        policy = Policy(policy_config)
    policy.set_normalization(
        embedding=dataset.embeddings if policy.config.embed_dim else None,
        state=dataset.states if policy.config.state_dim else None,
    )
    policy = policy.to(device).train()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    embeddings, states, actions, frames, returns_t = (tensors[k] for k in ("embeddings", "states", "actions", "frames", "returns"))
    use_state = policy.config.input_state_dim > 0
    use_embed = policy.config.arch == "mlp" and policy.config.embed_dim > 0
    num = len(dataset)

    running = torch.zeros(3, device=device)  # loss, weighted loss, max weight, summed since the last log
    bar = tqdm(total=config.steps, desc=desc if member is None else f"{desc} {member + 1}/{config.ensemble}", unit="step",
               disable=not progress, leave=False)
    # ---- loop: batch -> loss -> step -> log
    for step in range(1, config.steps + 1):
        index = torch.randint(num, (config.batch_size,), generator=generator).to(device)
        per_sample = policy.loss(
            actions[index],
            states[index] if use_state else None,
            embedding=embeddings[index] if use_embed else None,
            pixels=random_shift(frames[index], config.random_shift, generator) if frames is not None else None,
        )
        if returns_t is None:
            loss = per_sample.mean()
            weights_max = torch.ones((), device=device)
        else:
            weights = rwr_weights(returns_t[index], temperature=weighting.temperature, max_weight=weighting.max_weight,
                                  check=False)
            loss = (weights * per_sample).mean()
            weights_max = weights.max()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(policy.parameters(), config.grad_clip)
        optimizer.step()
        running += torch.stack([per_sample.detach().mean(), loss.detach(), weights_max.detach()])
        if step % config.log_every == 0 or step == config.steps:
            count = config.log_every if step % config.log_every == 0 else step % config.log_every
            values = (running / count).tolist()
            running.zero_()
            row = {
                **({} if member is None else {"member": member}),
                "step": step,
                "train/loss": values[0],
                "train/weighted_loss": values[1],
                "train/max_weight": values[2],
                "time_s": time.perf_counter() - start,
            }
            history.append(row)
            bar.set_postfix(loss=f"{values[0]:.4f}")
            if log_path is not None:  # rewritten whole and atomically: a killed run leaves a complete log
                with atomic_path(log_path) as tmp, open(tmp, "w", newline="") as handle:
                    writer = csv.DictWriter(handle, fieldnames=list(history[0]))
                    writer.writeheader()
                    writer.writerows(history)
        bar.update(1)
    bar.close()
    return policy.eval()


def train_bc(
    config: BCConfig,
    dataset: PolicyDataset,
    *,
    device: str | torch.device = "cpu",
    seed: int = 0,
    encoder: str | None = None,
    log_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Behaviour cloning: minimise the mean per-sample loss over uniformly sampled transitions.

    Args:
        config: :class:`BCConfig` (an :class:`RWRConfig` is accepted and trained as BC, weights ignored).
        dataset: the transitions.
        device: where to train.
        seed: seeds initialisation and batch sampling (the global RNG is untouched).
        encoder: recorded in the policy config (how evaluation rebuilds the encoder).
        log_dir: if given, ``<log_dir>/train_log.csv`` is (re)written atomically at every log step.
        progress: show a tqdm bar.

    Returns:
        :class:`TrainResult` with the policy in eval mode.

    Raises:
        TypeError / ValueError: bad config, empty dataset, arch needs missing inputs.
    """
    if not isinstance(config, BCConfig):
        raise TypeError(f"config must be a BCConfig, got {type(config).__name__}")
    return _train(config, dataset, weighting=None, returns=None, device=device, seed=seed, encoder=encoder,
                  log_dir=log_dir, progress=progress, desc="bc")


def train_rwr(
    config: RWRConfig,
    dataset: PolicyDataset,
    *,
    device: str | torch.device = "cpu",
    seed: int = 0,
    encoder: str | None = None,
    log_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Reward-weighted regression (see the module docstring for the weights).

    Same arguments as :func:`train_bc`; ``config.reward_source="true"`` weights by the file's env reward
    (the oracle anchor) instead of the dataset's relabelled reward.

    Raises:
        ValueError: NaN/inf in the chosen rewards, plus everything :func:`train_bc` raises.
    """
    if not isinstance(config, RWRConfig):
        raise TypeError(f"config must be an RWRConfig, got {type(config).__name__}")
    returns = _standardized_returns(config, dataset)
    return _train(config, dataset, weighting=config, returns=returns, device=device, seed=seed, encoder=encoder,
                  log_dir=log_dir, progress=progress, desc="rwr")


def config_to_dict(config: BCConfig) -> dict[str, Any]:
    """JSON-friendly dict of a config (tuples -> lists, inf -> "inf")."""
    out: dict[str, Any] = {"type": type(config).__name__}
    for key, value in asdict(config).items():
        if isinstance(value, tuple):
            value = list(value)
        if isinstance(value, float) and math.isinf(value):
            value = "inf"
        out[key] = value
    return out
