"""MiniSeg (Qiu et al., AAAI 2021): an 83 K-parameter two-path segmentation network.

Each of the four encoder stages halves the resolution with two parallel paths: a "long" path
of cheap downsampler blocks (1x1 conv + depthwise 5x5) and a main path of AHSP blocks
(attentive hierarchical spatial pyramid: 1x1 to C/4, depthwise 3x3 at dilations 1, 2, 4, 8
plus an average-pool branch, hierarchical sums, four sigmoid attention maps, grouped 1x1
fuse). The two paths are merged and split again between stages. A light decoder adds 1x1
projections of the encoder maps level by level; four heads give deep supervision, trained with
weights 1.0 (main) and 0.4 for each of the three side outputs. Channels (8, 24, 32, 64) and
blocks (2, 3, 8, 6): 0.085 M parameters, ~1.53 GMACs at 880x880 (paper: 83 K / 1.5 G).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spineseg_core.errors import ConfigError
from spineseg_core.models.registry import Family, register_model


class ConvBNPReLU(nn.Sequential):
    """3x3 conv (no bias) + BatchNorm + PReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.PReLU(out_channels))


class Downsampler(nn.Sequential):
    """The long path's block: 1x1 conv, depthwise 5x5 (strided or not), BN, PReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.Conv2d(out_channels, out_channels, 5, stride, 2, groups=out_channels, bias=False),
            nn.BatchNorm2d(out_channels), nn.PReLU(out_channels))


class AHSP(nn.Module):
    """Attentive hierarchical spatial pyramid block.

    Four depthwise 3x3 branches at dilations 1, 2, 4, 8 on a C/4 projection are summed
    hierarchically (the average-pool branch joins the first); a grouped 1x1 conv predicts one
    sigmoid map per branch, each branch is boosted by ``d + d * a`` and a grouped 1x1 conv
    fuses them, followed by BN and PReLU.
    """

    dilations = (1, 2, 4, 8)

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        if out_channels % 4:
            raise ConfigError(f"miniseg: AHSP width must be a multiple of 4, got {out_channels}")
        inner = out_channels // 4
        self.reduce = nn.Conv2d(in_channels, inner, 1, bias=False)
        self.branches = nn.ModuleList(
            nn.Conv2d(inner, inner, 3, stride, padding=d, dilation=d, groups=inner, bias=False)
            for d in self.dilations)
        self.pool = nn.AvgPool2d(3, stride, padding=1)
        self.attention = nn.Conv2d(out_channels, 4, 1, groups=4, bias=False)
        self.fuse = nn.Conv2d(out_channels, out_channels, 1, groups=4, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.PReLU(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        x = self.reduce(x)
        levels: list[Tensor] = []
        acc = self.pool(x)
        for branch in self.branches:
            acc = acc + branch(x)
            levels.append(acc)
        att = torch.sigmoid(self.attention(torch.cat(levels, dim=1)))
        levels = [d + d * att[:, i:i + 1] for i, d in enumerate(levels)]
        return self.act(self.bn(self.fuse(torch.cat(levels, dim=1))))


class DecoderConv(nn.Module):
    """1x1 projection then depthwise 3x3 at dilations 1 and 2, summed, and BN."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.d1 = nn.Conv2d(out_channels, out_channels, 3, padding=1, groups=out_channels,
                            bias=False)
        self.d2 = nn.Conv2d(out_channels, out_channels, 3, padding=2, dilation=2,
                            groups=out_channels, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        x = self.reduce(x)
        return self.bn(self.d1(x) + self.d2(x))


class EncoderStage(nn.Module):
    """One encoder stage: a strided entry on each path, then ``blocks`` AHSP blocks.

    The first ``blocks // 2`` AHSP blocks each pair with a stride-1 downsampler block on the
    long path; every block sees the sum of both paths and adds its output residually.
    """

    def __init__(self, in_channels: int, out_channels: int, blocks: int, first: bool) -> None:
        super().__init__()
        self.long_entry = Downsampler(in_channels, out_channels, stride=2)
        self.main_entry = (ConvBNPReLU(in_channels, out_channels, stride=2) if first
                           else AHSP(in_channels, out_channels, stride=2))
        block = ConvBNPReLU if first else AHSP
        self.main = nn.ModuleList(block(out_channels, out_channels) for _ in range(blocks))
        self.long = nn.ModuleList(Downsampler(out_channels, out_channels, stride=1)
                                  for _ in range(blocks // 2))

    def forward(self, long_in: Tensor, main_in: Tensor) -> tuple[Tensor, Tensor]:
        long = self.long_entry(long_in)
        main = self.main_entry(main_in)
        both = main + long
        for i, layer in enumerate(self.main):
            main = layer(both) + main
            if i < len(self.long):
                long = self.long[i](both) + long
            both = main + long
        return long, main


class MiniSeg(nn.Module):
    """MiniSeg; returns ``[main, side 1/2, side 1/4, side 1/8]`` (weights 1, 0.4, 0.4, 0.4)."""

    pad_multiple = 16

    def __init__(self, in_channels: int = 1, num_classes: int = 20, *,
                 channels: Sequence[int] = (8, 24, 32, 64),
                 blocks: Sequence[int] = (2, 3, 8, 6), aux_weight: float = 0.4) -> None:
        super().__init__()
        c, n = tuple(channels), tuple(blocks)
        if len(c) != 4 or len(n) != 4 or any(ci % 4 for ci in c[1:]) or c[0] % 2:
            raise ConfigError(f"miniseg: need 4 channels (first even, others multiples of 4) "
                              f"and 4 block counts, got channels={channels!r}, "
                              f"blocks={blocks!r}")
        self.stages = nn.ModuleList(
            EncoderStage(in_channels if i == 0 else c[i - 1], c[i], n[i], first=i == 0)
            for i in range(4))
        self.merge = nn.ModuleList(
            nn.Sequential(nn.Conv2d(2 * c[i], 2 * c[i], 1, bias=False), nn.BatchNorm2d(2 * c[i]))
            for i in range(3))
        self.top = nn.Sequential(nn.Conv2d(c[3], c[3], 1), nn.BatchNorm2d(c[3]),
                                 nn.PReLU(c[3]))
        self.up_conv = nn.ModuleList(DecoderConv(c[i + 1], c[i]) for i in range(3))
        self.lateral = nn.ModuleList(nn.Sequential(nn.Conv2d(c[i], c[i], 1), nn.BatchNorm2d(c[i]))
                                     for i in range(3))
        self.up_act = nn.ModuleList(nn.PReLU(c[i]) for i in range(3))
        self.heads = nn.ModuleList(nn.Sequential(nn.Dropout2d(0.01), nn.Conv2d(ci, num_classes, 1))
                                   for ci in c)
        self.output_weights = (1.0,) + (float(aux_weight),) * 3

    def forward(self, x: Tensor) -> list[Tensor]:
        long, main = x, x
        mains: list[Tensor] = []
        for i, stage in enumerate(self.stages):
            long, main = stage(long, main)
            mains.append(main)
            if i < 3:
                left, right = self.merge[i](torch.cat([long, main], dim=1)).chunk(2, dim=1)
                long, main = left + long, right + main
        y = self.top(mains[3])
        upsampled: list[Tensor] = []
        for i in reversed(range(3)):
            y = F.interpolate(y, size=mains[i].shape[-2:], mode="bilinear", align_corners=False)
            upsampled.append(y)
            y = self.up_act[i](self.up_conv[i](y) + self.lateral[i](mains[i]))
        # Side heads read the upsampled decoder inputs: 24 ch at 1/2, 32 at 1/4, 64 at 1/8.
        # They run in evaluation too, as in the reference network, whose cost (the paper's
        # 1.5 GMACs) includes them; the wrapper then keeps the main output only.
        return [self.heads[0](y), *(self.heads[k](upsampled[3 - k]) for k in (1, 2, 3))]


@register_model("miniseg", display_name="MiniSeg", family=Family.UNET, pad_multiple=16)
def miniseg(in_channels: int = 1, num_classes: int = 20, **overrides) -> nn.Module:
    """MiniSeg, channels (8, 24, 32, 64), blocks (2, 3, 8, 6), 4 deep-supervision heads."""
    return MiniSeg(in_channels, num_classes, **overrides)
