"""Loaders for the official VIP / R3M checkpoint layouts from a local file.

* VIP (``facebookresearch/vip``): ``torch.save({'vip': state_dict})`` of a ``DataParallel`` model whose
  ``convnet`` is torchvision's ResNet50 with ``fc = Linear(2048, 1024)``: keys
  ``module.convnet.conv1.weight ... module.convnet.fc.weight/bias``. Metric L2, ImageNet
  normalisation, 224 px.
* R3M (``facebookresearch/r3m``): ``{'r3m': state_dict}`` with ``module.convnet.*`` keys of a
  ResNet18/34/50 whose ``fc`` is ``Identity`` (the pooled feature is the embedding); the depth is
  inferred from the keys. Language-reward keys (``module.lang_enc.*``, ``module.lang_rew.*``) are ignored.
* A plain torchvision ResNet state dict (``conv1.weight ... fc.weight``) loads the same way.
* LIV (``{'liv': ...}``, CLIP RN50 + CLIP text transformer): not implemented.

``module.`` is stripped. Files are read with ``torch.load(weights_only=True)`` only.

Note: the official code resizes to 256 and centre-crops 224; :class:`Encoder` resizes the whole frame
to 224 (no crop), so embeddings of non-224 inputs differ slightly from the official pipeline.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from .backbones import infer_resnet_depth
from .base import Encoder
from .factory import CONFIG_VERSION, check_device, encoder_from_config


def _strip(state: dict[str, Any], prefix: str) -> dict[str, torch.Tensor]:
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def _convnet_state(state: Any, *, layout: str, source: str) -> dict[str, torch.Tensor]:
    if not isinstance(state, dict):
        raise ValueError(f"{source}: {layout!r} entry must be a state dict, got {type(state).__name__}")
    state = {key[len("module."):] if key.startswith("module.") else key: value for key, value in state.items()}
    convnet = _strip(state, "convnet.")
    if not convnet:
        raise ValueError(f"{source}: no 'module.convnet.*' keys in the {layout!r} state dict; keys start {sorted(state)[:5]}")
    bad = [k for k, v in convnet.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{source}: non-tensor values for keys {bad[:5]}")
    return convnet


def _encoder_from_resnet_state(
    convnet: dict[str, torch.Tensor], *, name: str, source: str, require_fc: bool, device: str | torch.device
) -> Encoder:
    depth = infer_resnet_depth(convnet, source=source)
    if require_fc and "fc.weight" not in convnet:
        raise ValueError(f"{source}: expected 'module.convnet.fc.weight' (VIP's Linear(2048, 1024) head), not found")
    embed_dim = None
    if "fc.weight" in convnet:
        if convnet["fc.weight"].ndim != 2 or "fc.bias" not in convnet:
            raise ValueError(f"{source}: 'fc' must be a Linear layer (2-D weight + bias), got weight shape {list(convnet['fc.weight'].shape)}")
        embed_dim = int(convnet["fc.weight"].shape[0])
    config = {
        "format_version": CONFIG_VERSION,
        "name": name,
        "arch": f"resnet{depth}",
        "metric": "l2",
        "embed_dim": embed_dim,
        "image_size": 224,
        "normalisation": "imagenet",
        "text": None,
        "seed": 0,
        "source": source,
    }
    encoder = encoder_from_config(config, device="cpu")
    expected = encoder.vision.state_dict()
    # Older torchvision checkpoints have no BatchNorm step counters; they do not affect eval outputs.
    for key in expected:
        if key.endswith("num_batches_tracked") and key not in convnet:
            convnet[key] = expected[key]
    missing = sorted(set(expected) - set(convnet))
    unexpected = sorted(set(convnet) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{source}: ResNet{depth} keys do not match: missing {missing[:5]} ({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)})")
    bad = [f"{k}: expected {list(v.shape)}, got {list(convnet[k].shape)}" for k, v in expected.items() if tuple(convnet[k].shape) != tuple(v.shape)]
    if bad:
        raise ValueError(f"{source}: shape mismatch for {len(bad)} tensors: {'; '.join(bad[:5])}")
    encoder.vision.load_state_dict(convnet, strict=True)
    return encoder.to(check_device(device)).eval()


def encoder_from_official(obj: dict[str, Any], *, source: str, device: str | torch.device = "cpu") -> Encoder:
    """Dispatch an already ``weights_only``-loaded official checkpoint dict on its top-level key.

    Raises:
        ValueError: unknown layout or mismatching keys/shapes. NotImplementedError: LIV.
    """
    if "vip" in obj:
        return _encoder_from_resnet_state(_convnet_state(obj["vip"], layout="vip", source=source), name="vip-official", source=source, require_fc=True, device=device)
    if "r3m" in obj:
        return _encoder_from_resnet_state(_convnet_state(obj["r3m"], layout="r3m", source=source), name="r3m-official", source=source, require_fc=False, device=device)
    if "liv" in obj:
        raise NotImplementedError(
            f"{source}: the official LIV layout (CLIP RN50 + CLIP text transformer) is not supported yet; "
            "use a VIP/R3M checkpoint, or pretrain LIV with `vip-rl pretrain --objective liv`"
        )
    if "conv1.weight" in obj:
        state = {key: value for key, value in obj.items() if isinstance(value, torch.Tensor)}
        return _encoder_from_resnet_state(state, name="torchvision-resnet", source=source, require_fc=False, device=device)
    raise ValueError(f"{source}: not an official VIP/R3M/LIV checkpoint: top-level keys {sorted(map(str, obj))[:10]}")


def _load(path: str | os.PathLike[str], key: str, device: str | torch.device) -> Encoder:
    from .checkpoint import load_torch_file

    check_device(device)
    obj = load_torch_file(path)
    if not isinstance(obj, dict) or key not in obj:
        keys = sorted(map(str, obj))[:10] if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{os.fspath(path)}: expected an official checkpoint with top-level key {key!r}, got {keys}")
    return encoder_from_official({key: obj[key]}, source=os.fspath(path), device=device)


def load_official_vip(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> Encoder:
    """Load the official VIP ResNet50 checkpoint (``{'vip': {module.convnet.*}}``) -> 1024-d, L2 encoder.

    Raises:
        FileNotFoundError: missing file. ValueError: corrupt file, wrong layout, key or shape mismatch.
    """
    return _load(path, "vip", device)


def load_official_r3m(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> Encoder:
    """Load an official R3M checkpoint (``{'r3m': {module.convnet.*}}``, ResNet18/34/50 inferred).

    The embedding is the pooled feature (512 or 2048-d; R3M's ``fc`` is Identity); metric L2.
    """
    return _load(path, "r3m", device)


def load_official_liv(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> Encoder:
    """Official LIV (CLIP RN50) checkpoints: not implemented.

    Raises:
        NotImplementedError: always (after checking the file exists and holds a ``'liv'`` key).
    """
    return _load(path, "liv", device)
