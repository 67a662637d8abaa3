"""Res2Net-v1b backbone (Gao et al., TPAMI 2021), written in plain torch, never pretrained.

The ``v1b`` variant has a deep stem (three 3x3 convolutions instead of one 7x7) and an
average-pooling shortcut when a block changes resolution. Each bottleneck splits its
``width * scale`` channels into ``scale`` groups; group ``i`` goes through a 3x3 convolution
after adding the output of group ``i - 1`` ("hierarchical residual"), which widens the
receptive field inside one block. ``26w x 4s`` means a base width of 26 and 4 scales.

:class:`Res2Net` returns the feature list ``[stem, stage1, stage2, stage3, stage4]`` with
strides ``4, 4, 8, 16, 32`` (the last two become dilated for ``output_stride`` 8 or 16).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

RES2NET_DEPTHS: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
"""Blocks per stage of each Res2Net depth."""


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


class Bottle2neck(nn.Module):
    """Res2Net bottleneck: 1x1 -> hierarchical 3x3 over ``scale`` groups -> 1x1, plus shortcut.

    The first block of a stage (``first=True``) does not chain the groups (every group is
    convolved on its own, with the stage's stride) and average-pools the last group, as the
    reference does.
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, *, stride: int = 1, dilation: int = 1,
                 base_width: int = 26, scale: int = 4, first: bool = False,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        if scale < 2:
            raise ValueError(f"Res2Net scale must be >= 2, got {scale}")
        width = int(math.floor(planes * base_width / 64.0))
        self.width, self.scale, self.first = width, scale, first
        self.conv1 = nn.Conv2d(inplanes, width * scale, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width * scale)
        self.convs = nn.ModuleList(
            nn.Conv2d(width, width, 3, stride, padding=dilation, dilation=dilation, bias=False)
            for _ in range(scale - 1))
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(scale - 1))
        self.pool = nn.AvgPool2d(3, stride, 1) if first else None
        self.conv3 = nn.Conv2d(width * scale, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        groups = torch.split(out, self.width, dim=1)
        parts: list[Tensor] = []
        sp = groups[0]
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            sp = groups[i] if (i == 0 or self.first) else sp + groups[i]
            sp = self.relu(bn(conv(sp)))
            parts.append(sp)
        last = groups[-1]
        parts.append(self.pool(last) if self.pool is not None else last)
        out = self.bn3(self.conv3(torch.cat(parts, dim=1)))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class Res2Net(nn.Module):
    """Res2Net-v1b feature extractor (no classifier head).

    Args:
        depths: blocks per stage, e.g. ``(3, 4, 23, 3)`` for Res2Net-101.
        in_channels: input channels (1 for MRI).
        base_width, scale: the ``26w x 4s`` of the name.
        output_stride: 32 (plain), 16 (stage 4 dilated by 2) or 8 (stages 3 and 4 dilated
            by 2 and 4, every block of the stage, as dilated segmentation networks do).
    """

    def __init__(self, depths: Sequence[int] = RES2NET_DEPTHS[101], *, in_channels: int = 1,
                 base_width: int = 26, scale: int = 4, output_stride: int = 32) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        if len(depths) != 4:
            raise ValueError(f"depths must list 4 stages, got {tuple(depths)}")
        self.base_width, self.scale = base_width, scale
        self.output_stride = output_stride
        self.stem = nn.Sequential(
            *_conv_bn_relu(in_channels, 32, stride=2), *_conv_bn_relu(32, 32),
            *_conv_bn_relu(32, 64), nn.MaxPool2d(3, 2, 1))
        dilations = {32: (1, 1), 16: (1, 2), 8: (2, 4)}[output_stride]
        self.inplanes = 64
        self.layer1 = self._make_layer(64, depths[0], stride=1, dilation=1)
        self.layer2 = self._make_layer(128, depths[1], stride=2, dilation=1)
        self.layer3 = self._make_layer(256, depths[2], stride=2, dilation=dilations[0])
        self.layer4 = self._make_layer(512, depths[3], stride=2, dilation=dilations[1])
        self.channels: tuple[int, ...] = (64, 256, 512, 1024, 2048)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, planes: int, blocks: int, *, stride: int, dilation: int) -> nn.Sequential:
        if dilation > 1:
            stride = 1  # dilation replaces the stage's downsampling
        out_ch = planes * Bottle2neck.expansion
        downsample = None
        if stride != 1 or self.inplanes != out_ch:
            pool: list[nn.Module] = ([nn.AvgPool2d(stride, stride, ceil_mode=True,
                                                   count_include_pad=False)]
                                     if stride != 1 else [])
            downsample = nn.Sequential(*pool, nn.Conv2d(self.inplanes, out_ch, 1, bias=False),
                                       nn.BatchNorm2d(out_ch))
        layers = [Bottle2neck(self.inplanes, planes, stride=stride, dilation=dilation,
                              base_width=self.base_width, scale=self.scale, first=True,
                              downsample=downsample)]
        self.inplanes = out_ch
        layers += [Bottle2neck(out_ch, planes, dilation=dilation, base_width=self.base_width,
                               scale=self.scale) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Features ``[stem (64 ch, /4), c1 (256, /4), c2 (512, /8), c3 (1024), c4 (2048)]``."""
        x0 = self.stem(x)
        c1 = self.layer1(x0)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return [x0, c1, c2, c3, c4]


def res2net101_v1b(in_channels: int = 1, output_stride: int = 32) -> Res2Net:
    """Res2Net-101 v1b 26w x 4s, randomly initialised."""
    return Res2Net(RES2NET_DEPTHS[101], in_channels=in_channels, base_width=26, scale=4,
                   output_stride=output_stride)
