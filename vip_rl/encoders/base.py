"""The `Encoder` interface every downstream module (wrappers, MPPI, policies) uses.

An encoder maps uint8 HWC images (and, when it has a text tower, strings) into one
embedding space whose distance to a goal embedding is a value: ``V(o; g) = -d(phi(o), phi(g))``.
Conversion to float CHW, resizing and normalisation happen here, once.
"""
from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

Metric = Literal["l2", "cos"]
ImageBatch = "np.ndarray | torch.Tensor"


def check_images(images: Any, name: str = "images") -> torch.Tensor:
    """Validate a uint8 ``[B, H, W, 3]`` (or single ``[H, W, 3]``) batch and return it as a tensor.

    Raises:
        TypeError: if ``images`` is not a numpy array / tensor or not uint8.
        ValueError: if the shape is not ``[B, H, W, 3]`` or ``[H, W, 3]``.
    """
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise TypeError(f"{name} must be uint8 [B, H, W, 3], got {images.dtype} {list(images.shape)}")
        tensor = torch.from_numpy(np.ascontiguousarray(images))
    elif isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8:
            raise TypeError(f"{name} must be uint8 [B, H, W, 3], got {images.dtype} {list(images.shape)}")
        tensor = images
    else:
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(images).__name__}")
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 4 or tensor.shape[-1] != 3:
        raise ValueError(f"{name} must be uint8 [B, H, W, 3] or [H, W, 3], got shape {list(tensor.shape)}")
    return tensor


class Encoder(nn.Module):
    """A vision backbone (+ optional text tower) with the metric it was trained with.

    Args:
        vision: module mapping float ``[B, 3, S, S]`` normalised images to ``[B, D]``.
        embed_dim: D.
        metric: ``"l2"`` (VIP) or ``"cos"`` (LIV).
        image_size: S, the side the backbone expects; other sizes are resized bilinearly.
        mean, std: per-channel normalisation applied after scaling to [0, 1].
        text: optional module mapping ``list[str]`` to ``[B, D]``.
        config: JSON-serialisable description used to rebuild the encoder from a checkpoint.

    Example:
        >>> import numpy as np
        >>> from vip_rl.encoders import load_encoder
        >>> enc = load_encoder("td-sim")
        >>> frames, goal = np.zeros((2, 96, 96, 3), np.uint8), np.full((1, 96, 96, 3), 255, np.uint8)
        >>> z = enc.encode_images(frames)                       # uint8 [B, H, W, 3] -> [B, D]
        >>> enc.distance(z, enc.encode_images(goal)).shape      # [B]
        torch.Size([2])
    """

    def __init__(
        self,
        vision: nn.Module,
        *,
        embed_dim: int,
        metric: Metric,
        image_size: int,
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
        text: nn.Module | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if metric not in ("l2", "cos"):
            raise ValueError(f"metric must be 'l2' or 'cos', got {metric!r}")
        if image_size <= 0:
            raise ValueError(f"image_size must be positive, got {image_size}")
        self.vision = vision
        self.text = text
        self.embed_dim = int(embed_dim)
        self.metric: Metric = metric
        self.image_size = int(image_size)
        self.config = dict(config or {})
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @property
    def has_text(self) -> bool:
        return self.text is not None

    def preprocess(self, images: Any) -> torch.Tensor:
        """uint8 ``[B, H, W, 3]`` -> normalised float ``[B, 3, S, S]`` on the encoder's device."""
        tensor = check_images(images).to(self.device, non_blocking=True)
        x = tensor.permute(0, 3, 1, 2)  # a channels-last view, no copy
        size = (self.image_size, self.image_size)
        if x.device.type == "cpu" and x.shape[-2] > size[0] and x.shape[-1] > size[1]:
            # downsampling: torch's uint8 antialiased resize (about 9x faster on CPU than in float);
            # it rounds to uint8 like the training pipeline's stored frames (vip_rl.data.samplers).
            # Upsampling stays in float, where rounding would lose information.
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        x = x.float().div_(255.0)
        if x.shape[-2:] != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        return (x - self.mean) / self.std

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Embed preprocessed float ``[B, 3, S, S]`` pixels (differentiable; used by trainers)."""
        return self.vision(pixels)

    def encode_images(self, images: Any, *, batch_size: int = 256, grad: bool = False) -> torch.Tensor:
        """Embed uint8 ``[B, H, W, 3]`` (or one ``[H, W, 3]``) images -> ``[B, D]``.

        Raises:
            TypeError / ValueError: wrong dtype or shape (see :func:`check_images`).
        """
        tensor = check_images(images)
        with torch.set_grad_enabled(grad):
            chunks = [self.forward(self.preprocess(tensor[i : i + batch_size])) for i in range(0, tensor.shape[0], batch_size)]
        if not chunks:
            return torch.zeros(0, self.embed_dim, device=self.device)
        return torch.cat(chunks, 0)

    def encode_text(self, texts: Sequence[str], *, grad: bool = False) -> torch.Tensor:
        """Embed a list of strings -> ``[B, D]``.

        Raises:
            ValueError: if this encoder has no text tower, or ``texts`` is not a list of strings.
        """
        if self.text is None:
            raise ValueError(
                f"encoder {self.config.get('name', '<unnamed>')!r} has no text tower; "
                "use an image goal or a language encoder such as 'liv-sim'"
            )
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"texts must be a list of strings, got {texts!r}")
        with torch.set_grad_enabled(grad):
            return self.text(list(texts))

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distance under the training metric, broadcasting over leading dims: ``[..., D] x [..., D] -> [...]``.

        ``l2``: Euclidean norm. ``cos``: ``1 - cosine similarity`` (in [0, 2]).
        """
        if self.metric == "l2":
            return torch.linalg.vector_norm(a - b, dim=-1)
        return 1.0 - F.cosine_similarity(a, b, dim=-1, eps=1e-8)
