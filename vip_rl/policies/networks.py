"""Policy networks: an MLP on frozen embeddings (+ proprioceptive state) and a small end-to-end CNN.

Both produce actions squashed into ``[-1, 1]`` (``tanh`` on the mean). Two heads:

* ``"deterministic"``: ``a = tanh(f(x))``; trained with (weighted) MSE.
* ``"gaussian"``: ``N(tanh(f(x)), diag(exp(log_std(x))^2))``; trained with (weighted) NLL; samples are
  clipped to ``[-1, 1]``; :meth:`Policy.act` with ``deterministic=True`` returns the mean.

A policy is saved as a directory holding ``policy.safetensors`` (weights, including the input
normalisation buffers) and ``policy.json`` (the :class:`PolicyConfig`, a format version and free
metadata), written atomically. Loading never unpickles anything.

A :class:`PolicyEnsemble` (``vip-rl train --ensemble N``) is N policies of one config, trained from different
seeds, whose mean actions are averaged (a deep ensemble, Lakshminarayanan et al. 2017). It is saved the same way,
its members' weights under ``members.<i>.`` in one file and ``"ensemble": N`` in ``policy.json``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch import nn

from vip_rl._io import atomic_write_bytes, atomic_write_json
from vip_rl.encoders.backbones import mlp

FORMAT_VERSION = 1
WEIGHTS_FILE = "policy.safetensors"
CONFIG_FILE = "policy.json"

Arch = Literal["mlp", "cnn"]
Head = Literal["deterministic", "gaussian"]


def checked_cnn_strides(strides: Sequence[int] | None, channels: Sequence[int]) -> tuple[int, ...] | None:
    """``strides`` as a tuple of ints (``None`` stays ``None``: stride 2 everywhere).

    Example:
        >>> checked_cnn_strides([2, 1], channels=(32, 32))
        (2, 1)

    Raises:
        ValueError: not one positive stride per conv stage of ``channels``.
    """
    if strides is None:
        return None
    strides = tuple(int(x) for x in strides)
    if len(strides) != len(channels) or any(x < 1 for x in strides):
        raise ValueError(f"cnn_strides must be None or one positive stride per conv stage ({len(channels)}), got {strides!r}")
    return strides


def checked_extra_cameras(extra_cameras: Sequence[str], camera: str) -> tuple[str, ...]:
    """``extra_cameras`` as a tuple: distinct, non-empty camera names other than ``camera`` (the policy input's
    views after ``camera``'s; :attr:`PolicyConfig.extra_cameras`). Raises ValueError otherwise."""
    if isinstance(extra_cameras, str):
        raise ValueError(f"extra_cameras must be a sequence of camera names, got the string {extra_cameras!r}")
    extra = tuple(extra_cameras)
    if any(not isinstance(c, str) or not c for c in extra) or len(set((camera, *extra))) != len(extra) + 1:
        raise ValueError(f"extra_cameras must be distinct camera names other than camera={camera!r}, got {list(extra)!r}")
    return extra


@dataclass(frozen=True)
class PolicyConfig:
    """Everything needed to rebuild a policy network (stored in ``policy.json``).

    Attributes:
        arch: ``"mlp"`` on frozen encoder embeddings (+ state) or ``"cnn"`` end to end on uint8 pixels (+ state).
        head: ``"deterministic"`` (MSE) or ``"gaussian"`` (NLL, state-dependent log std).
        embed_dim: embedding size D the MLP consumes (ignored, may be 0, for ``"cnn"``).
        state_dim: size S of the raw state the policy is given (the env's ``obs["state"]``; 0 = no state).
        state_indices: which entries of the raw state feed the network (``None`` = all ``S``), e.g. only the
            proprioceptive ones (``vip_envs``: ``(0, ..., 7)`` = end-effector position/velocity + fingers).
        action_dim: action size A (the suite uses 4).
        hidden: widths of the hidden layers of the MLP trunk / head.
        image_size: side of the square uint8 frames (``"cnn"`` input, and the frames evaluation renders).
        cnn_channels: output channels of the CNN's conv stages.
        cnn_strides: the stride of each conv stage (``None``: 2 for every stage). Stride-1 stages keep a finer
            feature map: a front-view policy must see the block *and* its target precisely.
        pixel_pool: the CNN first averages ``pixel_pool x pixel_pool`` blocks of the frame (2: a 96 px frame is
            seen at 48 px, about 4x cheaper to train); ``image_size`` must be a multiple of it.
        camera: the camera the training frames came from (evaluation renders the same one).
        extra_cameras: ``"mlp"`` only: more cameras whose embeddings (by the same frozen encoder) follow
            ``camera``'s in the input, e.g. ``("wrist",)``; ``embed_dim`` is then the encoder's size times
            ``1 + len(extra_cameras)``. Evaluation renders every one of them.
        encoder: how to rebuild the frozen encoder for ``"mlp"`` (a bundled name, or a path relative to the
            policy directory), or ``None``.
        encoder_fingerprint: hash of the encoder's weights + config the embeddings came from (checked at evaluation).
        min_log_std, max_log_std: clamp range of the Gaussian head's log std.
    """

    arch: Arch = "mlp"
    head: Head = "deterministic"
    embed_dim: int = 0
    state_dim: int = 0
    state_indices: tuple[int, ...] | None = None
    action_dim: int = 4
    hidden: tuple[int, ...] = (256, 256)
    image_size: int = 96
    cnn_channels: tuple[int, ...] = (32, 64, 64, 64)
    cnn_strides: tuple[int, ...] | None = None
    pixel_pool: int = 1
    camera: str = "front"
    extra_cameras: tuple[str, ...] = ()
    encoder: str | None = None
    encoder_fingerprint: str | None = None
    min_log_std: float = -5.0
    max_log_std: float = 1.0

    def __post_init__(self) -> None:
        if self.arch not in ("mlp", "cnn"):
            raise ValueError(f"arch must be 'mlp' or 'cnn', got {self.arch!r}")
        if self.head not in ("deterministic", "gaussian"):
            raise ValueError(f"head must be 'deterministic' or 'gaussian', got {self.head!r}")
        for name in ("embed_dim", "state_dim", "action_dim", "image_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if self.action_dim < 1:
            raise ValueError(f"action_dim must be >= 1, got {self.action_dim}")
        if isinstance(self.pixel_pool, bool) or not isinstance(self.pixel_pool, (int, np.integer)) or self.pixel_pool < 1:
            raise ValueError(f"pixel_pool must be a positive int, got {self.pixel_pool!r}")
        if self.arch == "cnn" and self.image_size < 16:
            raise ValueError(f"image_size must be >= 16 for arch='cnn', got {self.image_size}")
        if self.arch == "cnn" and (self.image_size % self.pixel_pool or self.image_size // self.pixel_pool < 16):
            raise ValueError(
                f"pixel_pool={self.pixel_pool} must divide image_size={self.image_size} and leave >= 16 px for arch='cnn'"
            )
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "cnn_channels", tuple(int(c) for c in self.cnn_channels))
        if self.state_indices is not None:
            object.__setattr__(self, "state_indices", tuple(int(i) for i in self.state_indices))
            bad = [i for i in self.state_indices if not 0 <= i < self.state_dim]
            if bad or len(set(self.state_indices)) != len(self.state_indices):
                raise ValueError(
                    f"state_indices must be distinct indices in [0, state_dim={self.state_dim}), got {self.state_indices!r}"
                )
        if self.arch == "mlp" and self.embed_dim + self.input_state_dim < 1:
            raise ValueError(f"an 'mlp' policy needs embeddings or state inputs, got embed_dim={self.embed_dim}, no state")
        if not self.hidden or any(h <= 0 for h in self.hidden):
            raise ValueError(f"hidden must be a non-empty sequence of positive ints, got {self.hidden!r}")
        if not self.cnn_channels or any(c <= 0 for c in self.cnn_channels):
            raise ValueError(f"cnn_channels must be a non-empty sequence of positive ints, got {self.cnn_channels!r}")
        object.__setattr__(self, "cnn_strides", checked_cnn_strides(self.cnn_strides, self.cnn_channels))
        object.__setattr__(self, "extra_cameras", checked_extra_cameras(self.extra_cameras, self.camera))
        if self.extra_cameras:
            views = self.cameras
            if self.arch != "mlp" or self.embed_dim == 0:
                raise ValueError("extra_cameras only apply to an 'mlp' policy on embeddings (embed_dim > 0), "
                                 f"got arch={self.arch!r}, embed_dim={self.embed_dim}")
            if self.embed_dim % len(views):
                raise ValueError(f"embed_dim={self.embed_dim} must be a multiple of the {len(views)} cameras' count "
                                 f"(one encoder embedding per camera: {views})")
        if not self.min_log_std < self.max_log_std:
            raise ValueError(f"min_log_std must be < max_log_std, got {self.min_log_std} >= {self.max_log_std}")

    @property
    def cameras(self) -> tuple[str, ...]:
        """Every camera the policy sees, in input order: ``camera``, then ``extra_cameras``."""
        return (self.camera, *self.extra_cameras)

    @property
    def input_state_dim(self) -> int:
        """How many state entries feed the network."""
        return self.state_dim if self.state_indices is None else len(self.state_indices)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PolicyConfig":
        """Rebuild from :meth:`to_dict` output. Raises ValueError on unknown or invalid fields."""
        if not isinstance(data, dict):
            raise ValueError(f"policy config must be a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"policy config has unknown fields {unknown}; expected a subset of {sorted(names)}")
        kwargs = dict(data)
        for key in ("hidden", "cnn_channels", "cnn_strides", "state_indices", "extra_cameras"):
            if kwargs.get(key) is not None:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)


def _mlp(in_dim: int, hidden: Sequence[int], out_dim: int) -> nn.Sequential:
    return mlp(in_dim, hidden, out_dim, activation=nn.ReLU)


class _PixelTrunk(nn.Module):
    """uint8 ``[B, H, W, 3]`` -> ``[B, F]``: optional ``pool x pool`` average pooling, then 3x3 conv (stride 2
    unless ``strides`` says otherwise) + GroupNorm + ReLU stages."""

    def __init__(self, image_size: int, channels: Sequence[int], pool: int = 1, strides: Sequence[int] | None = None) -> None:
        super().__init__()
        self.pool = int(pool)
        layers: list[nn.Module] = []
        in_ch, side = 3, image_size // self.pool
        for out_ch, stride in zip(channels, strides or [2] * len(channels)):
            layers += [nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1), nn.GroupNorm(min(8, out_ch), out_ch), nn.ReLU()]
            in_ch, side = out_ch, (side - 1) // stride + 1
        self.convs = nn.Sequential(*layers)
        self.out_dim = in_ch * side * side

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.permute(0, 3, 1, 2).float().div(255.0) - 0.5
        if self.pool > 1:
            x = nn.functional.avg_pool2d(x, self.pool)
        return self.convs(x).flatten(1)


class Policy(nn.Module):
    """A policy ``pi(a | embedding, state)`` (``arch="mlp"``) or ``pi(a | pixels, state)`` (``arch="cnn"``).

    Inputs are standardised with the ``embed_mean/embed_std`` and ``state_mean/state_std`` buffers
    (set from the training data by :meth:`set_normalization`; saved with the weights).

    Example:
        >>> policy = Policy(PolicyConfig(embed_dim=128, state_dim=10))
        >>> action = policy.act(torch.zeros(2, 10), embedding=torch.zeros(2, 128))   # [2, 4] in [-1, 1]
    """

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        if not isinstance(config, PolicyConfig):
            raise TypeError(f"config must be a PolicyConfig, got {type(config).__name__}")
        self.config = config
        out_dim = config.action_dim * (2 if config.head == "gaussian" else 1)
        if config.arch == "cnn":
            self.pixel_trunk: _PixelTrunk | None = _PixelTrunk(config.image_size, config.cnn_channels, config.pixel_pool,
                                                                      config.cnn_strides)
            in_dim = self.pixel_trunk.out_dim + config.input_state_dim
        else:
            self.pixel_trunk = None
            in_dim = config.embed_dim + config.input_state_dim
        self.net = _mlp(in_dim, config.hidden, out_dim)
        self.register_buffer("embed_mean", torch.zeros(config.embed_dim))
        self.register_buffer("embed_std", torch.ones(config.embed_dim))
        self.register_buffer("state_mean", torch.zeros(config.input_state_dim))
        self.register_buffer("state_std", torch.ones(config.input_state_dim))
        self._state_index = None if config.state_indices is None else torch.tensor(config.state_indices, dtype=torch.long)

    @property
    def device(self) -> torch.device:
        return self.embed_mean.device

    def set_normalization(
        self,
        *,
        embedding: torch.Tensor | np.ndarray | None = None,
        state: torch.Tensor | np.ndarray | None = None,
    ) -> None:
        """Set the input standardisation from training data: embedding ``[N, D]``, raw state ``[N, S]``."""
        for name, data in (("embed", embedding), ("state", state)):
            if data is None:
                continue
            tensor = torch.as_tensor(np.asarray(data, dtype=np.float32) if isinstance(data, np.ndarray) else data).float()
            if name == "state" and self._state_index is not None:
                tensor = tensor[:, self._state_index]
            getattr(self, f"{name}_mean").copy_(tensor.mean(0))
            getattr(self, f"{name}_std").copy_(tensor.std(0, unbiased=False).clamp_min(1e-3))

    def _features(self, state: torch.Tensor | None, embedding: torch.Tensor | None, pixels: torch.Tensor | None) -> torch.Tensor:
        cfg = self.config
        parts: list[torch.Tensor] = []
        if cfg.arch == "cnn":
            if pixels is None:
                raise ValueError("an arch='cnn' policy needs pixels= (uint8 [B, H, W, 3])")
            if pixels.dtype != torch.uint8 or pixels.ndim != 4 or tuple(pixels.shape[1:]) != (cfg.image_size, cfg.image_size, 3):
                raise ValueError(
                    f"pixels must be uint8 [B, {cfg.image_size}, {cfg.image_size}, 3], got {pixels.dtype} {list(pixels.shape)}"
                )
            assert self.pixel_trunk is not None
            parts.append(self.pixel_trunk(pixels))
        elif cfg.embed_dim:
            if embedding is None or embedding.ndim != 2 or embedding.shape[1] != cfg.embed_dim:
                got = None if embedding is None else list(embedding.shape)
                raise ValueError(f"embedding must be float [B, {cfg.embed_dim}], got {got}")
            parts.append((embedding.float() - self.embed_mean) / self.embed_std)
        if cfg.input_state_dim:
            if state is None or state.ndim != 2 or state.shape[1] != cfg.state_dim:
                got = None if state is None else list(state.shape)
                raise ValueError(f"state must be float [B, {cfg.state_dim}], got {got}")
            if self._state_index is not None:
                state = state[:, self._state_index.to(state.device)]
            parts.append((state.float() - self.state_mean) / self.state_std)
        return torch.cat(parts, -1)

    def forward(
        self,
        state: torch.Tensor | None = None,
        *,
        embedding: torch.Tensor | None = None,
        pixels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return ``(mean [B, A] in [-1, 1], log_std [B, A] or None for the deterministic head)``.

        Args:
            state: float ``[B, S]`` (when ``state_dim > 0``).
            embedding: float ``[B, D]`` (``arch="mlp"``).
            pixels: uint8 ``[B, H, W, 3]`` (``arch="cnn"``).
        """
        out = self.net(self._features(state, embedding, pixels))
        cfg = self.config
        if cfg.head == "gaussian":
            mean_raw, log_std = out.split(cfg.action_dim, dim=-1)
            return torch.tanh(mean_raw), log_std.clamp(cfg.min_log_std, cfg.max_log_std)
        return torch.tanh(out), None

    def loss(
        self,
        actions: torch.Tensor,
        state: torch.Tensor | None = None,
        *,
        embedding: torch.Tensor | None = None,
        pixels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-sample loss ``[B]``: squared error summed over action dims (deterministic) or Gaussian NLL."""
        mean, log_std = self.forward(state, embedding=embedding, pixels=pixels)
        if log_std is None:
            return (mean - actions).pow(2).sum(-1)
        z = (actions - mean) * torch.exp(-log_std)
        return (0.5 * z.pow(2) + log_std + 0.5 * math.log(2.0 * math.pi)).sum(-1)

    @torch.no_grad()
    def act(
        self,
        state: torch.Tensor | None = None,
        *,
        embedding: torch.Tensor | None = None,
        pixels: torch.Tensor | None = None,
        deterministic: bool = True,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Actions ``[B, A]`` in ``[-1, 1]``: the mean, or (Gaussian head, ``deterministic=False``) a clipped sample."""
        if deterministic:
            return self.forward(state, embedding=embedding, pixels=pixels)[0]
        return self._sample(state, embedding, pixels, generator)

    def _sample(self, state: torch.Tensor | None, embedding: torch.Tensor | None, pixels: torch.Tensor | None,
                generator: torch.Generator | None) -> torch.Tensor:
        mean, log_std = self.forward(state, embedding=embedding, pixels=pixels)
        if log_std is None:
            return mean
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return (mean + noise * log_std.exp()).clamp(-1.0, 1.0)


class PolicyEnsemble(nn.Module):
    """N :class:`Policy` members of one config acting as one: the action is the mean of the members' actions.

    With a handful of demos, policies trained from different seeds differ a lot in where they fail; averaging
    their actions cancels part of that (``benchmarks/results/few_shot_wrist_ensemble.md``: PushBlock from 20 mixed
    demos, three RWR CNNs 32% held out, the same CNNs alone 15-20%).
    ``act(deterministic=False)`` samples the mixture: each row follows one member drawn uniformly.

    Example:
        >>> members = [Policy(PolicyConfig(embed_dim=8, state_dim=0)) for _ in range(3)]
        >>> PolicyEnsemble(members).act(embedding=torch.zeros(2, 8)).shape
        torch.Size([2, 4])
    """

    def __init__(self, members: Sequence[Policy]) -> None:
        super().__init__()
        members = list(members)
        if len(members) < 2 or not all(isinstance(m, Policy) for m in members):
            raise ValueError(f"an ensemble needs at least 2 Policy members, got {[type(m).__name__ for m in members]}")
        config = members[0].config.to_dict()
        for i, member in enumerate(members[1:], 1):
            if member.config.to_dict() != config:
                raise ValueError(f"ensemble member {i} has another config than member 0: members must share one PolicyConfig")
        self.members = nn.ModuleList(members)
        self.config = members[0].config

    def __len__(self) -> int:
        return len(self.members)

    @property
    def device(self) -> torch.device:
        return self.members[0].device

    def forward(
        self,
        state: torch.Tensor | None = None,
        *,
        embedding: torch.Tensor | None = None,
        pixels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, None]:
        """``(mean action [B, A] over the members, None)``."""
        means = [member(state, embedding=embedding, pixels=pixels)[0] for member in self.members]
        return torch.stack(means).mean(0), None

    #: the same ``act`` as :class:`Policy` (mean action, or a sample): here the members' mean action, or
    #: (``deterministic=False``) one member's sample per row, a sample of the mixture
    act = Policy.act

    def _sample(self, state: torch.Tensor | None, embedding: torch.Tensor | None, pixels: torch.Tensor | None,
                generator: torch.Generator | None) -> torch.Tensor:
        actions = torch.stack([member._sample(state, embedding, pixels, generator) for member in self.members])
        pick = torch.randint(len(self.members), (actions.shape[1],), generator=generator).to(actions.device)
        return actions[pick, torch.arange(actions.shape[1], device=actions.device)]


AnyPolicy = Policy | PolicyEnsemble


# ---------------------------------------------------------------------------------------- save / load


def save_policy(policy: AnyPolicy, path: str | os.PathLike[str], *, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``policy.safetensors`` + ``policy.json`` into directory ``path`` (created; each file atomic).

    Args:
        policy: the policy (or :class:`PolicyEnsemble`) to save.
        path: output directory.
        metadata: extra JSON-serialisable information (training config, dataset, step, ...).

    Returns:
        The directory.
    """
    from safetensors.torch import save as st_save

    if not isinstance(policy, AnyPolicy):
        raise TypeError(f"policy must be a Policy or PolicyEnsemble, got {type(policy).__name__}")
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"path must be a directory (or not exist yet), got existing file {str(out)!r}")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in policy.state_dict().items()}
    doc = {"format_version": FORMAT_VERSION, "kind": "vip_rl.policy", "config": policy.config.to_dict(), "metadata": dict(metadata or {})}
    if isinstance(policy, PolicyEnsemble):
        doc["ensemble"] = len(policy)
    atomic_write_bytes(out / WEIGHTS_FILE, st_save(tensors))
    atomic_write_json(out / CONFIG_FILE, doc, sort_keys=True)  # strict JSON: a NaN in the metadata is null
    return out


def read_policy_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate ``<path>/policy.json``. Raises FileNotFoundError / ValueError."""
    directory = Path(path)
    config_path = directory / CONFIG_FILE
    if not directory.is_dir():
        raise FileNotFoundError(f"policy path {str(directory)!r} is not a directory holding {CONFIG_FILE} and {WEIGHTS_FILE}")
    if not config_path.is_file():
        raise FileNotFoundError(f"policy directory {str(directory)!r} has no {CONFIG_FILE}")
    try:
        doc = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{str(config_path)!r} is not valid JSON (corrupt policy file?): {exc}") from exc
    if not isinstance(doc, dict) or doc.get("kind") != "vip_rl.policy" or "config" not in doc:
        raise ValueError(f"{str(config_path)!r} is not a vip_rl policy config (expected kind='vip_rl.policy' and a 'config')")
    if doc.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{str(config_path)!r} has format_version {doc.get('format_version')!r}; this vip_rl reads {FORMAT_VERSION}")
    members = doc.get("ensemble", 1)
    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise ValueError(f"{str(config_path)!r} has ensemble={members!r}; expected the member count, an int >= 1 (absent for one policy)")
    return doc


def load_policy(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> AnyPolicy:
    """Load a policy saved by :func:`save_policy` (safetensors only; nothing is unpickled): a :class:`Policy`,
    or a :class:`PolicyEnsemble` when ``policy.json`` names ``"ensemble": N``.

    Raises:
        FileNotFoundError: ``path`` or one of its two files is missing.
        ValueError: a corrupt/truncated file, a config that does not validate, or weights that do not match it.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    doc = read_policy_json(path)
    config = PolicyConfig.from_dict(doc["config"])
    weights_path = Path(path) / WEIGHTS_FILE
    if not weights_path.is_file():
        raise FileNotFoundError(f"policy directory {str(path)!r} has no {WEIGHTS_FILE}")
    try:
        tensors = st_load(weights_path.read_bytes())
    except SafetensorError as exc:
        raise ValueError(f"{str(weights_path)!r} is not a readable safetensors file (corrupt or truncated?): {exc}") from exc
    members = doc.get("ensemble", 1)
    policy: AnyPolicy = Policy(config) if members == 1 else PolicyEnsemble([Policy(config) for _ in range(members)])
    expected = policy.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{str(weights_path)!r} does not match its config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for key, value in expected.items():
        if tuple(tensors[key].shape) != tuple(value.shape):
            raise ValueError(f"{str(weights_path)!r}: tensor {key!r} has shape {list(tensors[key].shape)}, config expects {list(value.shape)}")
    policy.load_state_dict(tensors)
    return policy.to(device).eval()
