"""Encoders: vision backbones, text towers, the `Encoder` interface, checkpoints and official loaders.

Several L2 encoders (e.g. training runs of one recipe) combine into one with ``ensemble_encoder``: its distance is the
RMS of theirs (:mod:`.ensemble`).

Official checkpoints: VIP / R3M ResNets, and the LIV model (CLIP RN50 image + text towers, :mod:`.clip`) or an
OpenAI CLIP ResNet state dict, all through ``load_encoder(path)``.

Example:
    >>> from vip_rl.encoders import build_encoder, load_encoder, save_encoder
    >>> enc = build_encoder("cnn", metric="l2", embed_dim=64, seed=0)   # random encoder anchor
    >>> save_encoder(enc, "runs/enc")                                   # doctest: +SKIP
    >>> enc = load_encoder("runs/enc")                                  # doctest: +SKIP
"""
from .backbones import ResNet, SmallCNN
from .base import Encoder, Metric, check_images
from .ensemble import ensemble_encoder
from .checkpoint import BUNDLED_ENCODERS, list_encoders, load_encoder, save_encoder, weights_dir
from .factory import ARCHS, IMAGENET_MEAN, IMAGENET_STD, build_encoder, encoder_from_config
from .official import load_official_clip, load_official_liv, load_official_r3m, load_official_vip
from .text import HashingTextTower, MiniLMTextTower

__all__ = [
    "ARCHS",
    "BUNDLED_ENCODERS",
    "Encoder",
    "HashingTextTower",
    "MiniLMTextTower",
    "ResNet",
    "SmallCNN",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Metric",
    "build_encoder",
    "check_images",
    "encoder_from_config",
    "ensemble_encoder",
    "list_encoders",
    "load_encoder",
    "load_official_clip",
    "load_official_liv",
    "load_official_r3m",
    "load_official_vip",
    "save_encoder",
    "weights_dir",
]
