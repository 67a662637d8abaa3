"""ResUNet++ (Jha et al., ISM 2019) as the paper's Table 3 counts it.

A residual stem and three strided residual blocks, each preceded by squeeze-and-excitation;
an ASPP bridge (rates 6/12/18); on the way up an attention block on every skip, bilinear x2
upsampling and residual blocks; an ASPP and a 1x1 head at full resolution. The widely used
PyTorch port's widths 32-64-128-256-512 give 14.5 M parameters and ~834 GMACs at 880x880
(the paper's 14 M / 837 G); the original authors' widths ``(16, 32, 64, 128, 256)`` give 4.06 M.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .registry import Family, register_model


class ResidualConv(nn.Module):
    """Pre-activation residual block: (BN, ReLU, 3x3 conv) x2 plus a 3x3 conv + BN shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.shortcut(x)


class SqueezeExcite(nn.Module):
    """Channel re-weighting from globally pooled features (reduction ``ratio``)."""

    def __init__(self, channels: int, ratio: int = 16) -> None:
        super().__init__()
        hidden = max(channels // ratio, 1)
        self.fc = nn.Sequential(nn.Linear(channels, hidden, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(hidden, channels, bias=False), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        w = self.fc(x.mean(dim=(2, 3)))
        return x * w[:, :, None, None]


class ASPP(nn.Module):
    """Parallel dilated 3x3 convs (conv, ReLU, BN each), concatenated and fused by a 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int,
                 rates: Sequence[int] = (6, 12, 18)) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=r, dilation=r),
                          nn.ReLU(inplace=True), nn.BatchNorm2d(out_channels))
            for r in rates)
        self.fuse = nn.Conv2d(len(rates) * out_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fuse(torch.cat([b(x) for b in self.branches], dim=1))


class AttentionBlock(nn.Module):
    """Weights the decoder map by a one-channel map from it and the (pooled) encoder skip.

    As in ResUNet++, the map is the raw output of a 1x1 conv (no sigmoid).
    """

    def __init__(self, skip_channels: int, decoder_channels: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.BatchNorm2d(skip_channels), nn.ReLU(inplace=True),
            nn.Conv2d(skip_channels, decoder_channels, 3, padding=1), nn.MaxPool2d(2))
        self.decoder = nn.Sequential(
            nn.BatchNorm2d(decoder_channels), nn.ReLU(inplace=True),
            nn.Conv2d(decoder_channels, decoder_channels, 3, padding=1))
        self.attn = nn.Sequential(
            nn.BatchNorm2d(decoder_channels), nn.ReLU(inplace=True),
            nn.Conv2d(decoder_channels, 1, 1))

    def forward(self, skip: Tensor, x: Tensor) -> Tensor:
        return self.attn(self.encoder(skip) + self.decoder(x)) * x


class ResUNetPlusPlus(nn.Module):
    """ResUNet++ with five widths: stem, three encoder levels, ASPP bridge (1/8 resolution)."""

    pad_multiple = 8

    def __init__(self, in_channels: int = 1, num_classes: int = 20, *,
                 widths: Sequence[int] = (32, 64, 128, 256, 512), se_ratio: int = 16,
                 rates: Sequence[int] = (6, 12, 18)) -> None:
        super().__init__()
        w = tuple(int(c) for c in widths)
        if len(w) != 5 or min(w) < 1:
            raise ConfigError(f"resunetpp: widths must be 5 positive ints, got {widths!r}")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, w[0], 3, padding=1), nn.BatchNorm2d(w[0]),
            nn.ReLU(inplace=True), nn.Conv2d(w[0], w[0], 3, padding=1))
        self.stem_skip = nn.Conv2d(in_channels, w[0], 3, padding=1)
        self.encoder = nn.ModuleList(
            nn.Sequential(SqueezeExcite(w[i], se_ratio), ResidualConv(w[i], w[i + 1], stride=2))
            for i in range(3))
        self.bridge = ASPP(w[3], w[4], rates)
        # Decoder level k attends skip w[2-k] and outputs w[3-k].
        below = [w[4], w[3], w[2]]
        self.attention = nn.ModuleList(AttentionBlock(w[2 - k], below[k]) for k in range(3))
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.decoder = nn.ModuleList(ResidualConv(below[k] + w[2 - k], w[3 - k])
                                     for k in range(3))
        self.out_aspp = ASPP(w[1], w[0], rates)
        self.head = nn.Conv2d(w[0], num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips = [self.stem(x) + self.stem_skip(x)]
        for enc in self.encoder:
            skips.append(enc(skips[-1]))
        y = self.bridge(skips.pop())
        for attn, dec in zip(self.attention, self.decoder):
            skip = skips.pop()
            y = dec(torch.cat([self.up(attn(skip, y)), skip], dim=1))
        return self.head(self.out_aspp(y))


@register_model("resunetpp", display_name="ResUNet++", family=Family.UNET, pad_multiple=8)
def resunetpp(in_channels: int = 1, num_classes: int = 20, **overrides) -> nn.Module:
    """ResUNet++, widths 32-512, SE + ASPP + attention (14.5 M parameters)."""
    return ResUNetPlusPlus(in_channels, num_classes, **overrides)
