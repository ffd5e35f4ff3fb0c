"""Loaders for the official VIP / R3M checkpoint layouts from a local file.

* VIP (``facebookresearch/vip``): ``torch.save({'vip': state_dict})`` of a ``DataParallel`` model whose
  ``convnet`` is torchvision's ResNet50 with ``fc = Linear(2048, 1024)``: keys
  ``module.convnet.conv1.weight ... module.convnet.fc.weight/bias``. Metric L2, ImageNet
  normalisation, 224 px.
* R3M (``facebookresearch/r3m``): ``{'r3m': state_dict}`` with ``module.convnet.*`` keys of a
  ResNet18/34/50 whose ``fc`` is ``Identity`` (the pooled feature is the embedding); the depth is
  inferred from the keys. Language-reward keys (``module.lang_enc.*``, ``module.lang_rew.*``) are ignored.
* A plain torchvision ResNet state dict (``conv1.weight ... fc.weight``) loads the same way.
* LIV (``penn-pal-lab/LIV``): ``{'liv': state_dict, ...}`` of ``DataParallel(LIV)``, whose ``model`` is
  ``clip.load("RN50")``: keys ``module.model.visual.conv1.weight ... module.model.visual.attnpool.c_proj.bias``
  (image tower) and ``module.model.token_embedding.weight``, ``module.model.positional_embedding``,
  ``module.model.transformer.resblocks.N.*``, ``module.model.ln_final.*``, ``module.model.text_projection``,
  ``module.model.logit_scale`` (text tower). The released ``model.pt`` has the ``module.`` prefix (``load_liv``
  loads it into the ``DataParallel`` wrapper); LIV's own training snapshots (``model.module.state_dict()``) do not.
  Cosine metric, CLIP's normalisation, 224 px, image and text goals (:mod:`.clip`).
* A plain OpenAI CLIP ResNet state dict (``visual.conv1.weight``, ``token_embedding.weight``, ...; what
  ``model.state_dict()`` of ``clip.load("RN50", jit=False)`` holds, or the TorchScript file's ``state_dict()``
  with its three int entries ``input_resolution/context_length/vocab_size``) loads the same way (RN50, RN101 and
  the RN50xN widths: the dimensions are read from the shapes). ViT CLIP models are refused.

``module.`` is stripped. Files are read with ``torch.load(weights_only=True)`` only. Half-precision weights
(LIV's GPU snapshots store convolutions and linear layers in fp16) are converted to float32.

Note: the official code resizes to 256 and centre-crops 224 (LIV and CLIP: shorter side to 224, centre crop;
CLIP's PIL pipeline resizes bicubically, LIV's tensor pipeline bilinearly); :class:`Encoder` resizes the whole frame
to 224 (bilinear, antialiased, no crop), so embeddings of non-square or non-224 inputs differ slightly from the
official pipelines. A 224 x 224 frame goes through unchanged.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from .backbones import infer_resnet_depth
from .base import Encoder
from .factory import CONFIG_VERSION, check_device, clip_config, encoder_from_config

#: top-level keys that mark a plain OpenAI CLIP ResNet state dict
CLIP_MARKERS = ("visual.conv1.weight", "token_embedding.weight")


def load_torch_file(path: str | os.PathLike[str]) -> Any:
    """``torch.load(path, weights_only=True)`` with clear errors (never unpickles arbitrary objects).

    Raises:
        FileNotFoundError: missing file. ValueError: corrupt file, a TorchScript archive, or one that needs unsafe unpickling.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message is a paragraph that suggests weights_only=False; keep the line naming what was refused
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
        reason = next((line for line in lines if "GLOBAL" in line or "Unsupported" in line), lines[0])
        raise ValueError(f"{path}: refused to load: the file holds objects other than tensors/containers, and only weights_only loading is allowed ({reason})") from exc
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        if "torch.jit.load" in str(exc) or "TorchScript" in str(exc):
            raise ValueError(
                f"{path}: a TorchScript archive (such as OpenAI's RN50.pt), not a state dict; convert it once with "
                "torch.save(torch.jit.load(PATH, map_location='cpu').state_dict(), 'rn50_state_dict.pt') and load that"
            ) from exc
        raise ValueError(f"{path}: corrupt or unreadable torch checkpoint ({exc})") from exc


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
        ValueError: unknown layout or mismatching keys/shapes.
    """
    if "vip" in obj:
        return _encoder_from_resnet_state(_convnet_state(obj["vip"], layout="vip", source=source), name="vip-official", source=source, require_fc=True, device=device)
    if "r3m" in obj:
        return _encoder_from_resnet_state(_convnet_state(obj["r3m"], layout="r3m", source=source), name="r3m-official", source=source, require_fc=False, device=device)
    if "liv" in obj:
        return _encoder_from_clip_state(_liv_clip_state(obj["liv"], source=source), name="liv-official", source=source, prefix="module.model.", device=device)
    if all(key in obj for key in CLIP_MARKERS):
        return _encoder_from_clip_state(obj, name="clip-official", source=source, prefix="", device=device)
    if "conv1.weight" in obj:
        state = {key: value for key, value in obj.items() if isinstance(value, torch.Tensor)}
        return _encoder_from_resnet_state(state, name="torchvision-resnet", source=source, require_fc=False, device=device)
    raise ValueError(f"{source}: not an official VIP/R3M/LIV/CLIP checkpoint: top-level keys {sorted(map(str, obj))[:10]}")


def is_official_layout(obj: Any) -> bool:
    """Whether a ``weights_only``-loaded object is one of the layouts :func:`encoder_from_official` reads."""
    return isinstance(obj, dict) and ("vip" in obj or "r3m" in obj or "liv" in obj or "conv1.weight" in obj or all(k in obj for k in CLIP_MARKERS))


def _liv_clip_state(state: Any, *, source: str) -> dict[str, Any]:
    """LIV's ``{'module.model.<clip key>'}`` (or ``model.<clip key>``) -> ``{<clip key>}``."""
    if not isinstance(state, dict):
        raise ValueError(f"{source}: 'liv' entry must be a state dict, got {type(state).__name__}")
    keys = sorted(map(str, state))
    stripped = {key[len("module."):] if key.startswith("module.") else key: value for key, value in state.items()}
    outside = sorted(key for key in stripped if not key.startswith("model."))
    if outside:
        raise ValueError(f"{source}: the 'liv' state dict must hold LIV's CLIP model under 'module.model.' "
                         f"(DataParallel(LIV).state_dict()); unexpected prefix on {len(outside)} keys such as {outside[:5]}; keys start {keys[:3]}")
    return {key[len("model."):]: value for key, value in stripped.items()}


def _encoder_from_clip_state(state: dict[str, Any], *, name: str, source: str, prefix: str, device: str | torch.device) -> Encoder:
    """CLIP-named state dict -> CLIP ``Encoder`` (strict: every key, every shape). ``prefix`` only names keys in errors."""
    from .clip import CLIP_SCALAR_KEYS, ClipDims, clip_to_encoder_state

    state = {key: value for key, value in state.items() if key not in CLIP_SCALAR_KEYS}
    bad = sorted(f"{prefix}{k}" for k, v in state.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise ValueError(f"{source}: non-tensor values for keys {bad[:5]}")
    dims = ClipDims.infer(state, source=source)
    encoder = encoder_from_config(clip_config(dims, name=name, source=source), device="cpu")
    ours = clip_to_encoder_state(state)
    expected = encoder.state_dict()
    for key in expected:  # BatchNorm step counters do not affect eval outputs; files saved without them still load
        if key.endswith("num_batches_tracked") and key not in ours:
            ours[key] = expected[key]
    to_clip = lambda key: prefix + (f"visual.{key[len('vision.'):]}" if key.startswith("vision.") else key[len("text."):])  # noqa: E731
    missing = sorted(to_clip(k) for k in set(expected) - set(ours))
    unexpected = sorted(to_clip(k) for k in set(ours) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{source}: CLIP ResNet keys do not match ({dims.vision_layers} bottlenecks, {dims.transformer_layers} text blocks): "
                         f"missing {missing[:5]} ({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)})")
    shapes = [f"{to_clip(k)}: expected {list(v.shape)}, got {list(ours[k].shape)}" for k, v in expected.items() if tuple(ours[k].shape) != tuple(v.shape)]
    if shapes:
        raise ValueError(f"{source}: shape mismatch for {len(shapes)} tensors: {'; '.join(shapes[:5])}")
    encoder.load_state_dict({k: v.to(expected[k].dtype) if v.is_floating_point() else v for k, v in ours.items()}, strict=True)
    return encoder.to(check_device(device)).eval()


def _load(path: str | os.PathLike[str], key: str, device: str | torch.device) -> Encoder:
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
    """Load the official LIV model (``model.pt``: ``{'liv': {module.model.*}}``) -> CLIP RN50 image + text towers.

    The encoder embeds uint8 images (CLIP normalisation, 224 px) and strings (CLIP's tokenizer) into LIV's
    1024-d space; metric ``cos``. It works wherever ``liv-sim`` does (text goals in the wrappers, MPPI, RWR).

    Raises:
        FileNotFoundError: missing file. ValueError: corrupt file, wrong layout (no ``'liv'`` key, keys outside
        ``module.model.``), missing/unexpected keys or shape mismatch.

    Example:
        >>> enc = load_official_liv("~/.liv/resnet50/model.pt")          # doctest: +SKIP
        >>> enc.distance(enc.encode_images(frames), enc.encode_text(["open the microwave"]))   # doctest: +SKIP
    """
    return _load(path, "liv", device)


def load_official_clip(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> Encoder:
    """Load an OpenAI CLIP ResNet state dict (``visual.*``, ``token_embedding.weight``, ...; e.g. RN50) -> encoder.

    Same encoder as :func:`load_official_liv` (cosine metric, image and text towers) with CLIP's weights: the
    starting point of LIV's pretraining. The TorchScript ``RN50.pt`` must first be saved as a state dict
    (``torch.save(torch.jit.load(PATH, map_location="cpu").state_dict(), OUT)``).

    Raises:
        FileNotFoundError: missing file. ValueError: not a CLIP ResNet state dict, key or shape mismatch.
    """
    check_device(device)
    obj = load_torch_file(path)
    if not isinstance(obj, dict) or not all(key in obj for key in CLIP_MARKERS):
        keys = sorted(map(str, obj))[:10] if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{os.fspath(path)}: expected an OpenAI CLIP state dict with keys {list(CLIP_MARKERS)}, got {keys}")
    return encoder_from_official(obj, source=os.fspath(path), device=device)
