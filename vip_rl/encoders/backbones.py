"""Vision backbones in plain torch (torchvision does not import with the CPU wheel here).

* :class:`SmallCNN`: a small conv net that is fast on CPU at 64-96 px (default for the bundled weights).
* :class:`ResNet`: ResNet18/34/50/101 with torchvision's exact parameter names
  (``conv1, bn1, layer1.0.conv1, ..., layer2.0.downsample.0/1, fc``), so torchvision, R3M and VIP
  state dicts load unchanged. ``fc`` is the embedding head: ``Linear(feature_dim, embed_dim)``
  (VIP: ``Linear(2048, 1024)``) or ``Identity`` (R3M: the pooled feature is the embedding).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

#: ResNet depth -> (block type, blocks per stage), as in torchvision.
RESNET_LAYERS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}

DEFAULT_CNN_CHANNELS: tuple[int, ...] = (32, 64, 128, 128)


def mlp(width: int, hidden: Sequence[int], out: int, *, activation: type[nn.Module] = nn.GELU) -> nn.Sequential:
    """``Linear + LayerNorm + activation`` per ``hidden`` width (GELU: HILP's value MLPs), then ``Linear`` to ``out``:
    the layout of :class:`SmallCNN`'s MLP head and value head and of the policies' MLPs (ReLU), parameter names
    ``0.weight, 1.weight, ...``."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(width, h), nn.LayerNorm(h), activation()]
        width = h
    layers.append(nn.Linear(width, out))
    return nn.Sequential(*layers)


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class SmallCNN(nn.Module):
    """Conv(3x3, stride 2) + GroupNorm + ReLU blocks, then flatten -> head -> ``embed_dim``.

    Input ``[B, 3, S, S]`` normalised float; output ``[B, embed_dim]``. With the default
    4 stride-2 stages a 96 px input becomes a ``[C, 6, 6]`` map before the head.

    Args:
        embed_dim: output dimension D.
        image_size: input side S (fixes the head's input size).
        channels: output channels of each stride-2 stage.
        head_hidden: hidden widths of an MLP head (Linear + LayerNorm + GELU per layer, as HILP's
            value MLPs); empty (default): one ``Linear`` (parameter names ``head.weight``/``head.bias``).
        value_dim: > 0 adds a second MLP, ``value``, on the head's last hidden layer (needs ``head_hidden``), whose
            ``value_dim`` outputs follow the head's ``embed_dim`` in the embedding (``embed_dim + value_dim`` in all):
            the value head that :func:`vip_rl.pretrain.fit_value_head` fits on the frozen features of a trained CNN.
        value_hidden: hidden widths of that MLP (Linear + LayerNorm + GELU per layer).
    """

    def __init__(self, embed_dim: int = 128, *, image_size: int = 96, channels: Sequence[int] = DEFAULT_CNN_CHANNELS,
                 head_hidden: Sequence[int] = (), value_dim: int = 0, value_hidden: Sequence[int] = ()) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if not channels or any(c <= 0 for c in channels):
            raise ValueError(f"channels must be a non-empty sequence of positive ints, got {channels!r}")
        if embed_dim <= 0:
            raise ValueError(f"embed_dim must be positive, got {embed_dim}")
        if image_size <= 0:
            raise ValueError(f"image_size must be positive, got {image_size}")
        side = int(image_size)
        for _ in channels:
            side = (side + 1) // 2  # conv k3 s2 p1
        layers: list[nn.Module] = []
        in_ch = 3
        for out_ch in channels:
            layers += [nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1, bias=False), _group_norm(out_ch), nn.ReLU(inplace=True)]
            in_ch = out_ch
        self.convs = nn.Sequential(*layers)
        self.feature_shape = (in_ch, side, side)
        head_hidden = tuple(int(h) for h in head_hidden)
        if any(h <= 0 for h in head_hidden):
            raise ValueError(f"head_hidden must be positive ints, got {head_hidden!r}")
        self.head: nn.Module
        if not head_hidden:
            self.head = nn.Linear(in_ch * side * side, embed_dim)
        else:
            self.head = mlp(in_ch * side * side, head_hidden, embed_dim)
        value_hidden = tuple(int(h) for h in value_hidden)
        if isinstance(value_dim, bool) or not isinstance(value_dim, int) or value_dim < 0 or any(h <= 0 for h in value_hidden):
            raise ValueError(f"value_dim must be an int >= 0 and value_hidden positive ints, got {value_dim!r} and {value_hidden!r}")
        if (value_dim or value_hidden) and not (head_hidden and value_dim):
            raise ValueError(f"a value head needs value_dim > 0 and an MLP head (head_hidden), got value_dim={value_dim!r}, "
                             f"value_hidden={value_hidden!r}, head_hidden={head_hidden!r}")
        self.value: nn.Module | None = None
        if value_dim:
            self.value = mlp(head_hidden[-1], value_hidden, value_dim)
        self.embed_dim = int(embed_dim) + int(value_dim)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` -> ``[B, embed_dim]`` (with a value head: the head's outputs, then the value head's)."""
        flat = self.convs(pixels).flatten(1)
        if self.value is None:
            return self.head(flat)
        hidden = self.features(flat)
        return torch.cat([self.head[-1](hidden), self.value(hidden)], 1)

    def features(self, flat: torch.Tensor) -> torch.Tensor:
        """The MLP head's last hidden layer (after its activation) for the flattened conv map ``flat``: the input of
        the head's output layer and of the value head."""
        if not isinstance(self.head, nn.Sequential):
            raise ValueError("features need an MLP head (head_hidden); this SmallCNN has a single linear head")
        return self.head[:-1](flat)


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_ch, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision's v1.5 bottleneck: the stride sits on the 3x3 conv."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv1x1(in_ch, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * 4)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision-compatible ResNet whose ``fc`` is the embedding head.

    Args:
        depth: 18, 34, 50 or 101.
        embed_dim: ``fc = Linear(feature_dim, embed_dim)``; ``None`` -> ``fc = Identity``
            and the embedding is the pooled ``feature_dim`` feature (512 for 18/34, 2048 for 50/101).

    Input ``[B, 3, S, S]`` (any S >= 32; 224 for pretrained weights) -> ``[B, D]``.
    """

    def __init__(self, depth: int = 50, *, embed_dim: int | None = None) -> None:
        super().__init__()
        if depth not in RESNET_LAYERS:
            raise ValueError(f"depth must be one of {sorted(RESNET_LAYERS)}, got {depth!r}")
        kind, blocks = RESNET_LAYERS[depth]
        block: type[BasicBlock] | type[Bottleneck] = BasicBlock if kind == "basic" else Bottleneck
        self.depth = depth
        self.in_ch = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, blocks[0])
        self.layer2 = self._make_layer(block, 128, blocks[1], stride=2)
        self.layer3 = self._make_layer(block, 256, blocks[2], stride=2)
        self.layer4 = self._make_layer(block, 512, blocks[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.feature_dim = 512 * block.expansion
        self.fc: nn.Module = nn.Identity() if embed_dim is None else nn.Linear(self.feature_dim, int(embed_dim))
        self.embed_dim = self.feature_dim if embed_dim is None else int(embed_dim)
        for module in self.modules():  # torchvision's init
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        del self.in_ch

    def _make_layer(self, block: type[BasicBlock] | type[Bottleneck], planes: int, count: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.in_ch != planes * block.expansion:
            downsample = nn.Sequential(_conv1x1(self.in_ch, planes * block.expansion, stride), nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.in_ch, planes, stride, downsample)]
        self.in_ch = planes * block.expansion
        layers += [block(self.in_ch, planes) for _ in range(1, count)]
        return nn.Sequential(*layers)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` -> ``[B, D]``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(pixels))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def infer_resnet_depth(state_dict: dict[str, torch.Tensor], *, source: str = "state_dict") -> int:
    """Infer the ResNet depth from torchvision-named keys (no prefix).

    Raises:
        ValueError: if the keys are not a torchvision ResNet's.
    """
    if "conv1.weight" not in state_dict or "layer4.0.conv1.weight" not in state_dict:
        raise ValueError(f"{source}: not a torchvision ResNet state dict (no 'conv1.weight'/'layer4.0.conv1.weight'); keys start {sorted(state_dict)[:5]}")
    kind = "bottleneck" if "layer1.0.conv3.weight" in state_dict else "basic"
    counts = []
    for stage in range(1, 5):
        prefix = f"layer{stage}."
        counts.append(len({key.split(".")[1] for key in state_dict if key.startswith(prefix)}))
    for depth, (k, blocks) in RESNET_LAYERS.items():
        if k == kind and tuple(counts) == blocks:
            return depth
    raise ValueError(f"{source}: ResNet with {kind} blocks {tuple(counts)} per stage is not one of ResNet{sorted(RESNET_LAYERS)}")
