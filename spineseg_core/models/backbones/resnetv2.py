"""ResNetV2 with weight-standardised convolutions and GroupNorm (the BiT / R50-ViT stem).

This is the convolutional half of TransUNet's R50-ViT-B/16 hybrid: a 7x7 stride-2 root
(conv, GroupNorm, ReLU) and max-pool, then stages of bottleneck units whose convolutions
standardise their weights (zero mean, unit variance per output filter) and are followed by
GroupNorm with 32 groups. TransUNet uses three stages of (3, 4, 9) units, which end at 1/16
resolution with 1024 channels. Never pretrained here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spineseg_core.errors import ConfigError


class StdConv2d(nn.Conv2d):
    """Conv2d whose weight is standardised per output channel at every call."""

    eps = 1e-5

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight
        var, mean = torch.var_mean(w, dim=(1, 2, 3), keepdim=True, correction=0)
        w = (w - mean) / (var + self.eps).sqrt()
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


def group_norm(channels: int, groups: int = 32) -> nn.GroupNorm:
    """GroupNorm with BiT's epsilon."""
    return nn.GroupNorm(groups, channels, eps=1e-6)


class StdConvBottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1 standardised convs, each with GroupNorm; ReLU after the sum.

    A projection shortcut (1x1 standardised conv + GroupNorm) is used when the shape changes.
    """

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int,
                 stride: int = 1) -> None:
        super().__init__()
        self.conv1 = StdConv2d(in_channels, mid_channels, 1, bias=False)
        self.gn1 = group_norm(mid_channels)
        self.conv2 = StdConv2d(mid_channels, mid_channels, 3, stride, 1, bias=False)
        self.gn2 = group_norm(mid_channels)
        self.conv3 = StdConv2d(mid_channels, out_channels, 1, bias=False)
        self.gn3 = group_norm(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                StdConv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.GroupNorm(out_channels, out_channels, eps=1e-5))

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.gn1(self.conv1(x)))
        y = self.relu(self.gn2(self.conv2(y)))
        y = self.gn3(self.conv3(y))
        return self.relu(self.shortcut(x) + y)


class ResNetV2(nn.Module):
    """Root + stages; :meth:`forward` returns the maps at strides 2, 4, 8, ..., 2**(k+1).

    Stage ``i`` has ``layers[i]`` units of width ``4 * width * 2**i`` (bottleneck width
    ``width * 2**i``); the first stage keeps the stride-4 resolution of the root's max-pool,
    the others halve it. ``out_channels`` lists the channels of the returned maps.
    """

    def __init__(self, in_channels: int = 1, layers: Sequence[int] = (3, 4, 9),
                 width: int = 64) -> None:
        super().__init__()
        if not layers or min(layers) < 1 or width < 32 or width % 32:
            raise ConfigError(f"resnetv2: layers must be positive and width a multiple of 32, "
                              f"got layers={layers!r}, width={width}")
        self.root = nn.Sequential(StdConv2d(in_channels, width, 7, 2, 3, bias=False),
                                  group_norm(width), nn.ReLU(inplace=True))
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        stages = []
        cin = width
        for i, n in enumerate(layers):
            mid, cout = width * 2**i, 4 * width * 2**i
            units = [StdConvBottleneck(cin, cout, mid, stride=1 if i == 0 else 2)]
            units += [StdConvBottleneck(cout, cout, mid) for _ in range(n - 1)]
            stages.append(nn.Sequential(*units))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.out_channels: tuple[int, ...] = (width,) + tuple(4 * width * 2**i
                                                               for i in range(len(layers)))

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = [self.root(x)]
        y = self.pool(feats[0])
        for stage in self.stages:
            y = stage(y)
            feats.append(y)
        return feats
