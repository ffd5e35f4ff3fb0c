"""CLIP's ResNet image tower and text transformer in plain torch, with CLIP's parameter names.

This is the model of the official LIV release (CLIP RN50 fine-tuned with the LIV objective) and of OpenAI's
CLIP ResNets. torchvision (hence open_clip and the ``clip`` package) does not import with the CPU torch wheel,
so the architecture is written here from the references, which were studied and not copied:

* OpenAI CLIP ``clip/model.py`` (https://github.com/openai/CLIP, MIT): ``ModifiedResNet`` (3-conv stem with an
  average pool; bottlenecks that average-pool before strided 1x1 convolutions, "anti-aliased"; a QKV attention
  pool over the 7x7 grid plus its mean token, to ``embed_dim``), the text ``Transformer`` (pre-LayerNorm residual
  blocks, QuickGELU MLPs, a causal mask), ``CLIP.encode_text`` (features of the EOT position, which holds the
  largest token id, through ``ln_final`` and ``text_projection``), ``initialize_parameters`` and ``build_model``
  (the dimensions read back from a state dict; heads are ``width / 64`` by CLIP's convention).
* LIV ``liv/models/model_liv.py`` (https://github.com/penn-pal-lab/LIV, MIT): ``LIV.model = clip.load("RN50")``,
  cosine similarity as the value, CLIP's normalisation at 224 px.

Key names are CLIP's under each tower: the image tower's ``conv1.weight ... attnpool.c_proj.bias`` are CLIP's
``visual.*`` keys, the text tower's ``token_embedding.weight``, ``positional_embedding``,
``transformer.resblocks.N.attn.in_proj_weight``, ``ln_final.*``, ``text_projection`` and ``logit_scale`` are CLIP's
top-level keys. Inside an :class:`~vip_rl.encoders.base.Encoder` they sit under ``vision.`` and ``text.``
(:func:`clip_to_encoder_state` / :func:`encoder_to_clip_state` map between the two layouts).

Shapes: images ``[B, 3, S, S]`` (normalised, S = ``image_resolution``) -> ``[B, embed_dim]``; token ids
``[B, L]`` (L <= ``context_length``) -> ``[B, embed_dim]``; strings go through :mod:`.clip_tokenizer`.
"""
from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .clip_tokenizer import CONTEXT_LENGTH, VOCAB_SIZE, default_tokenizer

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: Keys of CLIP's TorchScript state dict that are Python ints, not weights (``build_model`` drops them too).
CLIP_SCALAR_KEYS = ("input_resolution", "context_length", "vocab_size")


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


@dataclass(frozen=True)
class ClipDims:
    """Dimensions of a CLIP ResNet model (defaults: RN50, the LIV release)."""

    embed_dim: int = 1024
    """Joint embedding dimension D (the attention pool's and the text projection's output)."""
    image_resolution: int = 224
    """Input side S; a multiple of 32 (the attention pool's grid is S / 32)."""
    vision_layers: tuple[int, int, int, int] = (3, 4, 6, 3)
    """Bottlenecks per stage (RN50: 3, 4, 6, 3; RN101: 3, 4, 23, 3)."""
    vision_width: int = 64
    """Stem width; stage widths are 1, 2, 4, 8 times it (x4 after each bottleneck), the feature is 32 times it."""
    vision_heads: int = 32
    """Attention-pool heads (CLIP: ``vision_width * 32 // 64``)."""
    context_length: int = CONTEXT_LENGTH
    """Token positions (77)."""
    vocab_size: int = VOCAB_SIZE
    """Token embedding rows: CLIP's BPE vocabulary (49,408); the tokenizer's ids must fit."""
    transformer_width: int = 512
    """Text transformer width."""
    transformer_heads: int = 8
    """Text attention heads (CLIP: ``transformer_width // 64``)."""
    transformer_layers: int = 12
    """Text residual blocks."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if field.name != "vision_layers":
                _positive(getattr(self, field.name), field.name)
        layers = tuple(self.vision_layers)
        if len(layers) != 4 or any(isinstance(n, bool) or not isinstance(n, int) or n <= 0 for n in layers):
            raise ValueError(f"vision_layers must be 4 positive ints, got {self.vision_layers!r}")
        object.__setattr__(self, "vision_layers", layers)
        if self.image_resolution % 32:
            raise ValueError(f"image_resolution must be a multiple of 32, got {self.image_resolution}")
        if self.vision_width % 2:
            raise ValueError(f"vision_width must be even (the stem starts at half of it), got {self.vision_width}")
        if (self.vision_width * 32) % self.vision_heads:
            raise ValueError(f"vision_heads={self.vision_heads} must divide the attention-pool width {self.vision_width * 32}")
        if self.transformer_width % self.transformer_heads:
            raise ValueError(f"transformer_heads={self.transformer_heads} must divide transformer_width={self.transformer_width}")
        if self.vocab_size != VOCAB_SIZE:
            raise ValueError(f"vocab_size must be CLIP's {VOCAB_SIZE} (the tokenizer's ids index it), got {self.vocab_size}")
        if self.context_length < 2:
            raise ValueError(f"context_length must be >= 2 (SOT and EOT), got {self.context_length}")

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ClipDims":
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: unknown fields or invalid values.
        """
        if not isinstance(values, dict):
            raise ValueError(f"CLIP dims must be a dict, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown CLIP dims {unknown}; known: {sorted(known)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()})

    @classmethod
    def infer(cls, state: dict[str, torch.Tensor], *, source: str = "state_dict") -> "ClipDims":
        """Read the dimensions of a CLIP ResNet state dict with CLIP's key names (no prefix), as ``build_model`` does.

        Raises:
            ValueError: a ViT CLIP, or keys/shapes that are not a CLIP ResNet's.
        """
        if "visual.proj" in state or "visual.class_embedding" in state:
            raise ValueError(f"{source}: a ViT CLIP checkpoint ('visual.proj'); only CLIP's ResNet image towers (RN50, the LIV model) are supported")
        needed = ["visual.layer1.0.conv1.weight", "visual.attnpool.positional_embedding", "text_projection",
                  "positional_embedding", "token_embedding.weight", "ln_final.weight"]
        missing = [key for key in needed if key not in state]
        if missing:
            raise ValueError(f"{source}: not a CLIP ResNet state dict: missing keys {missing}; keys start {sorted(state)[:5]}")
        try:
            layers = tuple(len({k.split(".")[2] for k in state if k.startswith(f"visual.layer{stage}.")}) for stage in range(1, 5))
            tokens = int(state["visual.attnpool.positional_embedding"].shape[0])
            grid = round(math.sqrt(tokens - 1))
            if grid * grid + 1 != tokens:
                raise ValueError(f"visual.attnpool.positional_embedding has {tokens} rows, expected grid * grid + 1")
            vision_width = int(state["visual.layer1.0.conv1.weight"].shape[0])
            width = int(state["ln_final.weight"].shape[0])
            blocks = len({k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")})
            return cls(
                embed_dim=int(state["text_projection"].shape[1]), image_resolution=grid * 32, vision_layers=layers,  # type: ignore[arg-type]
                vision_width=vision_width, vision_heads=max(1, vision_width * 32 // 64),
                context_length=int(state["positional_embedding"].shape[0]), vocab_size=int(state["token_embedding.weight"].shape[0]),
                transformer_width=width, transformer_heads=max(1, width // 64), transformer_layers=blocks,
            )
        except (ValueError, IndexError) as exc:
            raise ValueError(f"{source}: cannot read CLIP ResNet dimensions from the state dict ({exc})") from exc


RN50 = ClipDims()


# ------------------------------------------------------------------------------------------------ image tower
class ClipBottleneck(nn.Module):
    """CLIP's bottleneck: all convolutions stride 1; a stride-s block average-pools by s after ``conv2`` and
    before the 1x1 projection of the shortcut (``downsample = [-1: AvgPool(s), 0: conv1x1, 1: BatchNorm]``)."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.avgpool: nn.Module = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Module | None = None
        if stride > 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(OrderedDict([
                ("-1", nn.AvgPool2d(stride)),
                ("0", nn.Conv2d(in_channels, out_channels, 1, bias=False)),
                ("1", nn.BatchNorm2d(out_channels)),
            ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, 4 * planes, H / stride, W / stride]``."""
        shortcut = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.avgpool(F.relu(self.bn2(self.conv2(out)), inplace=True))
        out = self.bn3(self.conv3(out))
        return F.relu(out + shortcut, inplace=True)


class ClipAttentionPool(nn.Module):
    """Multi-head attention of the mean token over ``[mean, 49 grid tokens]`` (with learned positions) -> ``output_dim``.

    Parameter names: ``positional_embedding [grid^2 + 1, width]``, ``q_proj``, ``k_proj``, ``v_proj`` (width -> width),
    ``c_proj`` (width -> output_dim), as CLIP's ``AttentionPool2d``.
    """

    def __init__(self, grid: int, width: int, heads: int, output_dim: int) -> None:
        super().__init__()
        self.heads = heads
        self.positional_embedding = nn.Parameter(torch.randn(grid * grid + 1, width) / width**0.5)
        self.k_proj = nn.Linear(width, width)
        self.q_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.c_proj = nn.Linear(width, output_dim)
        for proj in (self.q_proj, self.k_proj, self.v_proj, self.c_proj):  # CLIP's initialize_parameters
            nn.init.normal_(proj.weight, std=width**-0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, width, grid, grid]`` -> ``[B, output_dim]``."""
        batch, width = x.shape[:2]
        tokens = x.flatten(2).transpose(1, 2)  # [B, HW, width]
        tokens = torch.cat([tokens.mean(1, keepdim=True), tokens], 1) + self.positional_embedding  # [B, HW + 1, width]
        head_dim = width // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:  # [B, L, width] -> [B, heads, L, head_dim]
            return t.unflatten(-1, (self.heads, head_dim)).transpose(1, 2)

        pooled = F.scaled_dot_product_attention(split(self.q_proj(tokens[:, :1])), split(self.k_proj(tokens)), split(self.v_proj(tokens)))
        return self.c_proj(pooled.transpose(1, 2).reshape(batch, width))


class ModifiedResNet(nn.Module):
    """CLIP's image tower: normalised ``[B, 3, S, S]`` -> ``[B, embed_dim]``.

    Stem: three 3x3 convolutions (stride 2, 1, 1; widths w/2, w/2, w) with BatchNorm + ReLU, then a 2x2 average
    pool; four stages of :class:`ClipBottleneck` (stride 1, 2, 2, 2); :class:`ClipAttentionPool` on the S/32 grid.

    BatchNorm layers whose parameters are frozen (``requires_grad=False``, e.g. by :func:`set_trainable_blocks`)
    stay in eval mode under ``.train()``, so a partial fine-tune leaves their running statistics alone.
    """

    def __init__(self, dims: ClipDims = RN50) -> None:
        super().__init__()
        width = dims.vision_width
        self.embed_dim = dims.embed_dim
        self.conv1 = nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.conv2 = nn.Conv2d(width // 2, width // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.conv3 = nn.Conv2d(width // 2, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.avgpool = nn.AvgPool2d(2)
        channels = width
        stages = []
        for index, count in enumerate(dims.vision_layers):
            planes = width * 2**index
            blocks = [ClipBottleneck(channels, planes, 1 if index == 0 else 2)]
            channels = planes * ClipBottleneck.expansion
            blocks += [ClipBottleneck(channels, planes) for _ in range(1, count)]
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.attnpool = ClipAttentionPool(dims.image_resolution // 32, width * 32, dims.vision_heads, dims.embed_dim)
        for stage in stages:  # CLIP's initialize_parameters: each residual branch starts at zero
            for block in stage:
                nn.init.zeros_(block.bn3.weight)

    def blocks(self) -> list[ClipBottleneck]:
        """The bottlenecks in forward order (RN50: 16)."""
        return [block for stage in (self.layer1, self.layer2, self.layer3, self.layer4) for block in stage]  # type: ignore[misc]

    def train(self, mode: bool = True) -> "ModifiedResNet":
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d) and module.weight is not None and not module.weight.requires_grad:
                module.eval()
        return self

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` -> ``[B, embed_dim]``."""
        x = F.relu(self.bn1(self.conv1(pixels)), inplace=True)
        x = F.relu(self.bn2(self.conv2(x)), inplace=True)
        x = self.avgpool(F.relu(self.bn3(self.conv3(x)), inplace=True))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.attnpool(x)


# ------------------------------------------------------------------------------------------------ text tower
class QuickGELU(nn.Module):
    """CLIP's activation ``x * sigmoid(1.702 x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class CausalSelfAttention(nn.Module):
    """Causal multi-head self-attention with ``nn.MultiheadAttention``'s parameter names
    (``in_proj_weight [3W, W]``, ``in_proj_bias [3W]``, ``out_proj``), batch-first."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)  # as nn.MultiheadAttention
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, L, W]`` -> ``[B, L, W]``; position i attends to positions <= i."""
        batch, length, width = x.shape
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).unflatten(-1, (3, self.heads, width // self.heads)).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, heads, L, head_dim]
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, width))


class ResidualAttentionBlock(nn.Module):
    """Pre-LayerNorm block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))`` with a 4x QuickGELU MLP."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = CausalSelfAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, 4 * width)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(4 * width, width))]))
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, L, W]`` -> ``[B, L, W]``."""
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class ClipTransformer(nn.Module):
    """``resblocks``: the stack of :class:`ResidualAttentionBlock` (CLIP's ``Transformer``)."""

    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resblocks(x)


class ClipTextTower(nn.Module):
    """CLIP's text encoder: ``list[str]`` (B) -> ``[B, embed_dim]`` (the text tower of an ``Encoder``).

    Strings are tokenized by :func:`~vip_rl.encoders.clip_tokenizer.default_tokenizer` (a text longer than the
    77-token context raises ``ValueError``). The forward runs only up to the batch's longest text: with a causal
    mask and EOT pooling the padded positions never reach the output, so this equals CLIP's 77-token forward.
    ``logit_scale`` is kept for a faithful round trip of the checkpoint; the cosine metric does not use it and it
    is never trained (``requires_grad=False``).
    """

    def __init__(self, dims: ClipDims = RN50) -> None:
        super().__init__()
        width, layers = dims.transformer_width, dims.transformer_layers
        self.context_length = dims.context_length
        self.embed_dim = dims.embed_dim
        self.transformer = ClipTransformer(width, layers, dims.transformer_heads)
        self.token_embedding = nn.Embedding(dims.vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(dims.context_length, width))
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, dims.embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)), requires_grad=False)
        # CLIP's initialize_parameters
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        proj_std = width**-0.5 * (2 * layers) ** -0.5
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=width**-0.5)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=(2 * width) ** -0.5)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=width**-0.5)

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids ``[B, L]`` (``[SOT, ..., EOT, 0...]``, L <= context_length) -> ``[B, embed_dim]``.

        Raises:
            ValueError: ``tokens`` is not an integer ``[B, L]`` tensor with L <= context_length.
        """
        if tokens.ndim != 2 or tokens.dtype not in (torch.int32, torch.int64) or not 0 < tokens.shape[1] <= self.context_length:
            raise ValueError(f"tokens must be int64 [B, L] with 0 < L <= {self.context_length}, got {tokens.dtype} {list(tokens.shape)}")
        length = tokens.shape[1]
        x = self.token_embedding(tokens) + self.positional_embedding[:length]
        x = self.ln_final(self.transformer(x))  # [B, L, width]
        eot = tokens.argmax(dim=-1)  # the EOT token has the largest id
        return x[torch.arange(x.shape[0], device=x.device), eot] @ self.text_projection

    def forward(self, texts: list[str]) -> torch.Tensor:
        """``list[str]`` (B) -> ``[B, embed_dim]``.

        Raises:
            TypeError: non-string texts. ValueError: a text longer than the context.
        """
        rows = default_tokenizer().token_lists(texts, context_length=self.context_length)
        device = self.text_projection.device
        if not rows:
            return torch.zeros(0, self.embed_dim, device=device, dtype=self.text_projection.dtype)
        tokens = torch.zeros(len(rows), max(len(r) for r in rows), dtype=torch.long)
        for i, row in enumerate(rows):
            tokens[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return self.encode_tokens(tokens.to(device))


# ------------------------------------------------------------------------------------------------ layouts
def clip_to_encoder_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CLIP keys (``visual.*`` and the text keys) -> an ``Encoder``'s (``vision.*``, ``text.*``)."""
    return {(f"vision.{key[len('visual.'):]}" if key.startswith("visual.") else f"text.{key}"): value for key, value in state.items()}


def encoder_to_clip_state(encoder: nn.Module) -> dict[str, torch.Tensor]:
    """An ``Encoder`` built on CLIP -> a state dict with OpenAI CLIP's key names (``CLIP.load_state_dict`` reads it)."""
    out = {}
    for key, value in encoder.state_dict().items():
        if key.startswith("vision."):
            out[f"visual.{key[len('vision.'):]}"] = value
        elif key.startswith("text."):
            out[key[len("text."):]] = value
    return out


def set_trainable_blocks(vision: ModifiedResNet, text: ClipTextTower | None, blocks: int, *, freeze_text: bool = False) -> None:
    """Choose what a fine-tune trains (sets ``requires_grad``; the optimizer takes the trainable ones).

    Args:
        vision, text: the towers of a CLIP ``Encoder``.
        blocks: 0 trains everything (except ``logit_scale``); N > 0 trains the last N bottlenecks and the attention
            pool of the image tower, and the last N residual blocks, ``ln_final`` and ``text_projection`` of the text
            tower (stem, earlier blocks and the token/position embeddings stay frozen).
        freeze_text: freeze the whole text tower (LIV's ``grad_text=False``).

    Raises:
        ValueError: ``blocks`` is not an int >= 0.
    """
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 0:
        raise ValueError(f"blocks must be an int >= 0, got {blocks!r}")
    vision.requires_grad_(blocks == 0)
    if blocks:
        for module in [*vision.blocks()[-blocks:], vision.attnpool]:
            module.requires_grad_(True)
    if text is not None:
        text.requires_grad_(blocks == 0 and not freeze_text)
        if blocks and not freeze_text:
            for module in [*list(text.transformer.resblocks)[-blocks:], text.ln_final]:
                module.requires_grad_(True)
            text.text_projection.requires_grad_(True)
        text.logit_scale.requires_grad_(False)
    vision.train(vision.training)  # re-applies the eval mode of frozen BatchNorm layers
