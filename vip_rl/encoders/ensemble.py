"""An ensemble of L2 encoders as one encoder: the RMS of the members' distances.

``ensemble_encoder([a, b, ...])`` concatenates the members' embeddings scaled by ``1 / sqrt(n)``, so the L2 distance
of the ensemble is ``sqrt(mean_i d_i^2)``, the root mean square of the members' distances, in the members' own units
(for temporal-distance encoders: steps). Images and instructions both go through every member. It is an ordinary
:class:`~vip_rl.encoders.Encoder` (``config["arch"] == "ensemble"``, the members' configs under ``config["members"]``),
so it saves, loads, plans and rewards like any other. Averaging several independently trained values is the usual
cure for a planner that exploits one value's idiosyncratic errors (deep ensembles: Lakshminarayanan et al., NeurIPS
2017; snapshot ensembles of one run: Huang et al., ICLR 2017).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
from torch import nn

from .base import Encoder

__all__ = ["EnsembleText", "EnsembleVision", "ensemble_encoder"]

#: Config keys every member must share (the ensemble preprocesses once for all of them; the metric is L2 for each).
_SHARED = ("image_size", "normalisation")


class EnsembleVision(nn.Module):
    """Members' image towers side by side: ``[B, 3, S, S] -> [B, sum_i D_i]``, scaled by ``1 / sqrt(n)``."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.scale = 1.0 / math.sqrt(len(self.members))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.cat([member(pixels) for member in self.members], dim=-1) * self.scale


class EnsembleText(nn.Module):
    """Members' text towers side by side: ``list[str] -> [B, sum_i D_i]``, scaled by ``1 / sqrt(n)``."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.scale = 1.0 / math.sqrt(len(self.members))

    def forward(self, texts: list[str]) -> torch.Tensor:
        return torch.cat([member(texts) for member in self.members], dim=-1) * self.scale


def _member_config(config: dict[str, Any]) -> dict[str, Any]:
    """A member's config as stored in the ensemble's (with its training record: the ensemble's provenance)."""
    return {key: value for key, value in config.items() if key != "embed_dim_out"}


def check_members(configs: Sequence[dict[str, Any]]) -> None:
    """Raise ``ValueError`` naming the problem unless ``configs`` can form an ensemble (see :func:`ensemble_encoder`)."""
    if len(configs) < 2:
        raise ValueError(f"ensemble: an ensemble needs at least 2 members, got {len(configs)}")
    for index, config in enumerate(configs):
        if not isinstance(config, dict):
            raise ValueError(f"ensemble: member {index} config must be a JSON object, got {type(config).__name__}")
        if config.get("arch") == "ensemble":
            raise ValueError(f"ensemble: member {index} is itself an ensemble; list its members instead")
        if config.get("metric") != "l2":
            raise ValueError(f"ensemble: member {index} has metric {config.get('metric')!r}; only L2 encoders can be "
                             "ensembled (the ensemble's distance is the RMS of the members' L2 distances)")
        for key in _SHARED:
            if config.get(key) != configs[0].get(key):
                raise ValueError(f"ensemble: members disagree on {key}: member 0 has {configs[0].get(key)!r}, member "
                                 f"{index} has {config.get(key)!r}")
    has_text = [config.get("text") is not None for config in configs]
    if any(has_text) and not all(has_text):
        raise ValueError(f"ensemble: either every member has a text tower or none does, got text={[c.get('text') for c in configs]}")


def ensemble_from_config(config: dict[str, Any], device: torch.device, *, build: Callable[..., Encoder]) -> Encoder:
    """Rebuild an ``arch="ensemble"`` config's (randomly initialised) members with ``build`` (the factory's
    ``encoder_from_config``, passed in so that this module does not import the factory) and wrap them."""
    members = config.get("members")
    if not isinstance(members, list):
        raise ValueError(f"config['members'] must be a list of member configs, got {type(members).__name__}")
    check_members(members)
    built = [build(member, device=device) for member in members]
    return _wrap(built, dict(config))


def _wrap(members: Sequence[Encoder], config: dict[str, Any]) -> Encoder:
    first = members[0]
    vision = EnsembleVision([member.vision for member in members])
    text = EnsembleText([member.text for member in members]) if first.text is not None else None
    return Encoder(vision, embed_dim=sum(member.embed_dim for member in members), metric="l2", image_size=first.image_size,
                   mean=first.mean.flatten().tolist(), std=first.std.flatten().tolist(), text=text, config=config)


def ensemble_encoder(members: Sequence[Encoder], *, name: str | None = None) -> Encoder:
    """One encoder whose L2 distance is the RMS of ``members``' L2 distances (their weights are shared, not copied).

    Args:
        members: at least 2 L2 encoders with the same image size and normalisation (e.g. several training runs of one
            recipe), all with a text tower or none.
        name: stored in ``config["name"]``.

    Raises:
        ValueError: fewer than 2 members, a cosine member, a nested ensemble, or members that disagree on input.

    Example:
        >>> from vip_rl.encoders import load_encoder, save_encoder
        >>> both = ensemble_encoder([load_encoder("td-sim"), load_encoder("runs/weights/final/td-sim.safetensors")])  # doctest: +SKIP
        >>> save_encoder(both, "runs/td-ens.safetensors")                                                       # doctest: +SKIP
    """
    members = list(members)
    for index, member in enumerate(members):
        if not isinstance(member, Encoder):
            raise TypeError(f"member {index} must be a vip_rl.encoders.Encoder, got {type(member).__name__}")
    configs = [_member_config(member.config) for member in members]
    check_members(configs)
    devices = {member.device for member in members}
    if len(devices) > 1:
        raise ValueError(f"members live on different devices {sorted(map(str, devices))}; move them to one first")
    config = {"format_version": configs[0].get("format_version", 1), "name": name, "arch": "ensemble", "metric": "l2",
              "image_size": configs[0]["image_size"], "normalisation": configs[0]["normalisation"],
              "text": configs[0].get("text"), "members": configs}
    return _wrap(members, config)
