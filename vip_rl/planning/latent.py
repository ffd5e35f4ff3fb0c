"""Latent dynamics ``z' = f(z, a)`` over frozen embeddings, for planning without a simulator.

Train on demo episodes (frames + actions) embedded once by a frozen encoder, then plan with
:class:`~vip_rl.planning.mppi.MPPI` over :class:`~vip_rl.planning.dynamics.TorchDynamics`
(fully on device, no rendering), scoring latent states with :func:`latent_goal_cost`.

Example:
    >>> model = train_latent_dynamics(encoder, episodes, config=LatentTrainConfig(steps=2000), seed=0)  # doctest: +SKIP
    >>> dyn = TorchDynamics(model.step)                                            # doctest: +SKIP
    >>> cost = latent_goal_cost(encoder, goal_image)                               # doctest: +SKIP
    >>> planner = MPPI(MPPIConfig(action_dim=4, horizon=30), dyn, cost)            # doctest: +SKIP
    >>> action = planner.command(encoder.encode_images(frame)[0])                  # doctest: +SKIP
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from vip_rl.planning.costs import StateCost, goal_embedding

__all__ = ["LatentDynamics", "LatentTrainConfig", "train_latent_dynamics", "latent_goal_cost"]


class LatentDynamics(nn.Module):
    """Residual MLP ``z' = z + g([z, a])`` (parameters and ``forward`` only).

    Args:
        embed_dim: D.
        action_dim: A.
        hidden: width of the two hidden layers.
    """

    def __init__(self, embed_dim: int, action_dim: int, *, hidden: int = 256) -> None:
        super().__init__()
        if embed_dim <= 0 or action_dim <= 0 or hidden <= 0:
            raise ValueError(f"embed_dim, action_dim and hidden must be positive, got {embed_dim}, {action_dim}, {hidden}")
        self.embed_dim, self.action_dim = int(embed_dim), int(action_dim)
        self.net = nn.Sequential(
            nn.Linear(embed_dim + action_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, embed_dim)
        )

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """``z [N, D]``, ``a [N, A]`` -> next ``z [N, D]``."""
        return z + self.net(torch.cat([z, a], -1))

    @torch.no_grad()
    def step(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """No-grad :meth:`forward`, the function to hand to ``TorchDynamics``."""
        return self.forward(z, a)


@dataclass(frozen=True)
class LatentTrainConfig:
    """Options of :func:`train_latent_dynamics`."""

    steps: int = 2000
    """Gradient steps."""
    batch_size: int = 256
    """Transitions per step."""
    lr: float = 1e-3
    """Adam learning rate."""
    hidden: int = 256
    """Hidden width of the model."""
    rollout_length: int = 1
    """Train on k-step open-loop predictions (k >= 1) to limit compounding error."""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "hidden", "rollout_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")


def _episode_arrays(episode: Any, camera: str) -> tuple[np.ndarray, np.ndarray]:
    frames = episode.frames[camera] if isinstance(getattr(episode, "frames", None), dict) else episode["frames"]
    actions = episode.actions if hasattr(episode, "actions") else episode["actions"]
    frames, actions = np.asarray(frames), np.asarray(actions, dtype=np.float32)
    if frames.dtype != np.uint8 or frames.ndim != 4 or len(frames) != len(actions) + 1:
        raise ValueError(
            f"an episode needs uint8 frames [T+1, H, W, 3] and actions [T, A], got {frames.dtype} {list(frames.shape)} "
            f"and {list(actions.shape)}"
        )
    return frames, actions


def train_latent_dynamics(
    encoder: Any,
    episodes: Sequence[Any],
    *,
    config: LatentTrainConfig | None = None,
    camera: str = "front",
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> LatentDynamics:
    """Fit :class:`LatentDynamics` on demo episodes embedded once by the frozen ``encoder``.

    Args:
        encoder: the frozen :class:`~vip_rl.encoders.base.Encoder`.
        episodes: ``vip_rl.data.Episode`` objects (``frames[camera]`` [T+1, H, W, 3], ``actions`` [T, A]) or
            dicts with ``"frames"`` and ``"actions"``.
        config: :class:`LatentTrainConfig`.
        camera: which camera's frames to embed.
        device: where the model trains and lives.
        seed: seeds the model init and the batch sampling (own generators).

    Returns:
        The trained model in eval mode; ``model.train_losses`` holds the k-step training loss at 20
        evenly spaced steps (first to last), to check that it converged.

    Warns:
        UserWarning: when episodes shorter than ``rollout_length`` steps are skipped.
    """
    cfg = config or LatentTrainConfig()
    if not episodes:
        raise ValueError("episodes must not be empty")
    device = torch.device(device)
    k = cfg.rollout_length
    latents, acts = [], []
    skipped = 0
    for episode in episodes:
        frames, actions = _episode_arrays(episode, camera)
        if len(actions) < k:
            skipped += 1
            continue
        with torch.no_grad():
            latents.append(encoder.encode_images(frames).to(device))
        acts.append(torch.from_numpy(actions).to(device))
    if not latents:
        raise ValueError(f"no episode has at least rollout_length={k} steps")
    if skipped:
        warnings.warn(f"train_latent_dynamics: skipped {skipped} of {len(episodes)} episodes shorter than rollout_length={k} steps",
                      UserWarning, stacklevel=2)
    # every usable start (episode, t) with t + k <= T, gathered once: z_t [M, D], a [M, k, A], z_{t+1..t+k} [M, k, D]
    z0, a_seq, z_next = [], [], []
    for z_ep, a_ep in zip(latents, acts):
        count = len(a_ep) - k + 1
        if count <= 0:
            continue
        window = torch.arange(count, device=device)[:, None] + torch.arange(k, device=device)[None]
        z0.append(z_ep[:count])
        a_seq.append(a_ep[window])
        z_next.append(z_ep[window + 1])
    z0_all, a_all, next_all = torch.cat(z0), torch.cat(a_seq), torch.cat(z_next)
    gen = torch.Generator().manual_seed(seed)
    init_gen = torch.Generator().manual_seed(seed)
    model = LatentDynamics(z0_all.shape[-1], a_all.shape[-1], hidden=cfg.hidden)
    with torch.no_grad():  # seeded init without touching the global RNG
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=init_gen) * (0.02 if p.ndim > 1 else 0.0))
    model.to(device).train()
    optim = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    record = set(np.linspace(0, cfg.steps - 1, min(20, cfg.steps)).round().astype(int).tolist())
    losses: list[float] = []
    for step in range(cfg.steps):
        pick = torch.randint(len(z0_all), (cfg.batch_size,), generator=gen).to(device)
        z, actions, targets = z0_all[pick], a_all[pick], next_all[pick]
        loss = torch.zeros((), device=device)
        for j in range(k):  # k-step open-loop prediction
            z = model(z, actions[:, j])
            loss = loss + (z - targets[:, j]).square().sum(-1).mean()
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        if step in record:
            losses.append(float(loss.detach()))
    model.train_losses = losses
    return model.eval()


def latent_goal_cost(encoder: Any, goal: Any, *, when: str = "final", discount: float = 1.0) -> StateCost:
    """Cost on latent states ``[E, K, T, D]``: the encoder's distance to the goal embedding
    (goal: uint8 image, instruction or embedding, as :class:`~vip_rl.planning.costs.EmbeddingGoalCost`)."""
    goals = goal_embedding(encoder, goal)
    if goals.shape[0] != 1:
        raise ValueError(f"latent_goal_cost takes one goal (an image, an instruction or one embedding), got {goals.shape[0]}")
    goal_z = goals[0]
    return StateCost(lambda z: encoder.distance(z, goal_z.to(z.device)), when=when, discount=discount)  # type: ignore[arg-type]
