"""Encoder checkpoints: safetensors weights + JSON config, bundled-name registry, loading by path.

Layouts accepted by :func:`load_encoder`:

* a bundled name (``"vip-sim"``, ``"liv-sim"``) -> ``vip_rl/weights/<name>.safetensors`` + ``<name>.json``;
* a directory written by :func:`save_encoder` (``model.safetensors`` + ``config.json``);
* a ``.safetensors`` file with a sibling ``<stem>.json`` (or ``config.json``, or the config stored in the
  file's safetensors metadata under ``"config"``);
* a ``.pt`` / ``.pth`` file, read with ``torch.load(weights_only=True)`` only (never unpickling
  arbitrary objects): our ``{"config": ..., "state_dict"|"model": ...}``, the official VIP
  ``{"vip": ...}`` / R3M ``{"r3m": ...}`` / LIV ``{"liv": ...}`` layouts, a plain OpenAI CLIP ResNet state dict
  (``visual.*`` + text keys), or a plain torchvision ResNet state dict (:mod:`.official`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_dir, atomic_path
from .base import Encoder
from .factory import check_device, encoder_from_config
from .official import encoder_from_official, is_official_layout, load_torch_file

__all__ = ["BUNDLED_ENCODERS", "encoder_from_state", "list_encoders", "load_encoder", "load_torch_file", "save_encoder", "weights_dir"]

#: Bundled encoder name -> description. Weights are produced by ``make weights``.
BUNDLED_ENCODERS: dict[str, str] = {
    "vip-sim": "VIP (L2 metric), small CNN, trained on suite videos: image goals",
    "liv-sim": "LIV (cosine metric), small CNN + frozen MiniLM text tower with trained projection: image and text goals",
    "td-sim": "temporal distance (L2 metric that counts steps to the goal; HILP-style expectile TD), small CNN + MLP head "
              "+ frozen MiniLM text tower regressed onto goal frames: image and text goals (the recommended encoder)",
}
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
_TORCH_SUFFIXES = (".pt", ".pth")


def weights_dir() -> Path:
    """Folder holding the bundled ``<name>.safetensors`` + ``<name>.json`` files."""
    return Path(__file__).resolve().parent.parent / "weights"


def list_encoders(*, available_only: bool = False) -> list[str]:
    """Names accepted by :func:`load_encoder`; ``available_only`` keeps those whose files exist."""
    names = sorted(BUNDLED_ENCODERS)
    if available_only:
        names = [n for n in names if (weights_dir() / f"{n}.safetensors").is_file()]
    return names


def _json_config(encoder: Encoder, training: dict[str, Any] | None) -> str:
    config = dict(encoder.config)
    if "arch" not in config:
        raise ValueError(
            "encoder.config has no 'arch': only encoders made by build_encoder/load_encoder/load_official_* "
            f"can be saved and rebuilt, got config {config!r}"
        )
    config["embed_dim_out"] = encoder.embed_dim
    if training is not None:
        config["training"] = training
    try:
        return json.dumps(config, indent=2, sort_keys=True)
    except TypeError as exc:
        raise ValueError(f"encoder.config must be JSON-serialisable: {exc}") from exc


def _state_for_saving(encoder: Encoder) -> dict[str, torch.Tensor]:
    return {key: value.detach().to("cpu").contiguous().clone() for key, value in encoder.state_dict().items()}


def save_encoder(encoder: Encoder, path: str | os.PathLike[str], *, training: dict[str, Any] | None = None) -> Path:
    """Write an encoder checkpoint atomically.

    ``path`` ending in ``.safetensors`` -> that file + sibling ``<stem>.json`` (the bundled layout);
    otherwise a directory ``<path>/`` with ``model.safetensors`` + ``config.json``, written in a temp
    directory next to it and renamed into place (an existing checkpoint there is replaced).
    The config is also stored in the safetensors metadata, so the weights file alone rebuilds it.

    Args:
        encoder: an encoder made by :func:`build_encoder` / :func:`load_encoder`.
        path: target directory, or ``.safetensors`` file.
        training: optional JSON-serialisable training info stored as ``config["training"]``.

    Returns:
        The written directory (or ``.safetensors`` file).

    Raises:
        ValueError: if the config is not JSON-serialisable or lacks ``arch``.
    """
    from safetensors.torch import save_file

    if not isinstance(encoder, Encoder):
        raise TypeError(f"encoder must be a vip_rl.encoders.Encoder, got {type(encoder).__name__}")
    target = Path(path)
    config_text = _json_config(encoder, training)
    state = _state_for_saving(encoder)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix == ".safetensors":
        # the inner block exits first: the weights replace ``target`` before the config lands
        with atomic_path(target.with_suffix(".json")) as tmp_j, atomic_path(target) as tmp_w:
            tmp_j.write_text(config_text)
            save_file(state, str(tmp_w), metadata={"config": config_text})
        return target
    # atomic_dir replaces an existing checkpoint there; both give the umask's permissions (save_file alone makes 0600)
    with atomic_dir(target) as tmp_dir:
        with atomic_path(tmp_dir / WEIGHTS_FILE) as tmp_w:
            save_file(state, str(tmp_w), metadata={"config": config_text})
        (tmp_dir / CONFIG_FILE).write_text(config_text)
    return target


def _read_json(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: corrupt encoder config (not valid JSON: {exc})") from exc
    if not isinstance(config, dict):
        raise ValueError(f"{path}: encoder config must be a JSON object, got {type(config).__name__}")
    return config


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{path}: corrupt or unreadable safetensors file ({exc})") from exc
    return state, metadata


def encoder_from_state(
    config: dict[str, Any], state: dict[str, torch.Tensor], *, source: str, device: str | torch.device = "cpu"
) -> Encoder:
    """Rebuild an encoder from its config and load ``state`` strictly.

    Raises:
        ValueError: naming ``source`` on invalid config, missing/unexpected keys or shape mismatches.
    """
    try:
        encoder = encoder_from_config(config, device="cpu")
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{source}: invalid encoder config ({exc})") from exc
    expected = encoder.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{source}: checkpoint does not match its config (arch={config.get('arch')!r}): "
            f"missing keys {missing[:5]}{'...' if len(missing) > 5 else ''} ({len(missing)}), "
            f"unexpected keys {unexpected[:5]}{'...' if len(unexpected) > 5 else ''} ({len(unexpected)})"
        )
    bad = [f"{k}: expected {list(v.shape)}, got {list(state[k].shape)}" for k, v in expected.items() if tuple(state[k].shape) != tuple(v.shape)]
    if bad:
        raise ValueError(f"{source}: shape mismatch for {len(bad)} tensors: {'; '.join(bad[:5])}")
    encoder.load_state_dict(state, strict=True)
    return encoder.to(check_device(device)).eval()


def _load_safetensors_checkpoint(weights: Path, config_candidates: list[Path], device: str | torch.device) -> Encoder:
    state, metadata = _read_safetensors(weights)
    for candidate in config_candidates:
        if candidate.is_file():
            config = _read_json(candidate)
            break
    else:
        if "config" not in metadata:
            raise FileNotFoundError(f"{weights}: no config found (looked for {[str(c) for c in config_candidates]} and safetensors metadata)")
        try:
            config = json.loads(metadata["config"])
        except json.JSONDecodeError as exc:
            raise ValueError(f"{weights}: corrupt config in safetensors metadata ({exc})") from exc
    return encoder_from_state(config, state, source=str(weights), device=device)


def _load_torch_checkpoint(path: Path, device: str | torch.device) -> Encoder:
    obj = load_torch_file(path)
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict checkpoint, got {type(obj).__name__}")
    if is_official_layout(obj):
        return encoder_from_official(obj, source=str(path), device=device)
    if "config" in obj and ("state_dict" in obj or "model" in obj):
        config = obj["config"]
        if isinstance(config, str):
            try:
                config = json.loads(config)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: corrupt 'config' entry ({exc})") from exc
        state = obj.get("state_dict", obj.get("model"))
        if not isinstance(config, dict) or not isinstance(state, dict):
            raise ValueError(f"{path}: 'config' and 'state_dict' must be dicts")
        return encoder_from_state(config, state, source=str(path), device=device)
    raise ValueError(
        f"{path}: unknown checkpoint layout with top-level keys {sorted(map(str, obj))[:10]}; expected "
        "{'config', 'state_dict'|'model'}, the official {'vip'} / {'r3m'} / {'liv'} layouts, an OpenAI CLIP ResNet "
        "or a torchvision ResNet state dict"
    )


def load_encoder(name_or_path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> Encoder:
    """Load an encoder by bundled name or checkpoint path (see the module docstring for layouts).

    Args:
        name_or_path: ``"vip-sim"``, ``"liv-sim"`` or a directory / ``.safetensors`` / ``.pt`` / ``.pth`` path.
        device: where the encoder lives.

    Returns:
        The encoder in eval mode; ``config["name"]`` is the bundled name or the path.

    Raises:
        ValueError: unknown name (lists the known ones), corrupt file, missing keys or shape mismatch.
        FileNotFoundError: missing path, or bundled weights not built yet (``make weights``).

    Example:
        >>> enc = load_encoder("vip-sim")                       # doctest: +SKIP
        >>> enc = load_encoder("runs/pretrain/encoder")         # doctest: +SKIP
        >>> enc = load_encoder("~/.liv/resnet50/model.pt")      # official LIV, image + text  # doctest: +SKIP
    """
    check_device(device)
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a str or path, got {type(name_or_path).__name__}")
    text = os.fspath(name_or_path)
    if text in BUNDLED_ENCODERS:
        weights = weights_dir() / f"{text}.safetensors"
        if not weights.is_file():
            raise FileNotFoundError(
                f"bundled encoder {text!r} has no weights file at {weights}; build it with `make weights` "
                "(runs python -m vip_rl.weights_recipe)"
            )
        encoder = _load_safetensors_checkpoint(weights, [weights.with_suffix(".json")], device)
        encoder.config["name"] = text
        return encoder
    path = Path(text)
    if not path.exists():
        looks_like_path = os.sep in text or "/" in text or path.suffix in (".safetensors", *_TORCH_SUFFIXES)
        if looks_like_path:
            raise FileNotFoundError(f"encoder checkpoint not found: {text}")
        raise ValueError(f"unknown encoder name {text!r}; known names: {list_encoders()} (or pass a checkpoint path)")
    if path.is_dir():
        weights = path / WEIGHTS_FILE
        if not weights.is_file():
            raise FileNotFoundError(f"{path}: not an encoder checkpoint directory (no {WEIGHTS_FILE})")
        encoder = _load_safetensors_checkpoint(weights, [path / CONFIG_FILE], device)
    elif path.suffix == ".safetensors":
        encoder = _load_safetensors_checkpoint(path, [path.with_suffix(".json"), path.parent / CONFIG_FILE], device)
    elif path.suffix in _TORCH_SUFFIXES:
        encoder = _load_torch_checkpoint(path, device)
    else:
        raise ValueError(f"name_or_path={text!r}: expected a checkpoint directory, .safetensors, .pt or .pth file")
    if not encoder.config.get("name"):
        encoder.config["name"] = text
    return encoder
