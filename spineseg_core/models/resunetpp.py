"""ResUNet++ (Jha et al., ISM 2019) as the paper's Table 3 counts it.

A residual stem and three strided residual blocks with squeeze-and-excitation; an ConcatASPP bridge
(rates 6/12/18); on the way up an attention block on every skip, x2 upsampling and residual
blocks; an ConcatASPP and a 1x1 head at full resolution. Two designs, one parameter apart
(:class:`ResUNetVariant`):

* ``port`` (default) -- the widely used PyTorch port: widths 32-64-128-256-512, SE (r=16)
  before each strided block, 3x3 conv shortcuts, three concatenated ConcatASPP branches fused by a
  1x1 conv, one-channel attention maps (no sigmoid), bilinear upsampling: 14.5 M parameters,
  ~834 GMACs at 880x880 (the paper's 14 M / 837 G).
* ``authors`` -- the original authors' Keras model: widths 16-32-64-128-256, SE (r=8) after
  the stem and after every residual block, 1x1 conv + BN shortcuts, four summed ConcatASPP branches
  (with BN), full-width attention maps, nearest upsampling: 4.06 M parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import torch
from torch import Tensor, nn

from spineseg_core.errors import ConfigError
from spineseg_core.models.registry import Family, register_model


class ResUNetVariant(StrEnum):
    """Which ResUNet++ design to build."""

    PORT = "port"
    AUTHORS = "authors"


@dataclass(frozen=True)
class Design:
    """The choices on which the two variants differ."""

    widths: tuple[int, ...]
    se_ratio: int
    se_after_blocks: bool
    shortcut_kernel: int
    aspp_sum: bool
    attention_full_width: bool
    upsample_mode: str


DESIGNS: dict[ResUNetVariant, Design] = {
    ResUNetVariant.PORT: Design((32, 64, 128, 256, 512), 16, False, 3, False, False, "bilinear"),
    ResUNetVariant.AUTHORS: Design((16, 32, 64, 128, 256), 8, True, 1, True, True, "nearest"),
}


class ResidualConv(nn.Module):
    """Pre-activation residual block: (BN, ReLU, 3x3 conv) x2 plus a conv + BN shortcut.

    With ``se_ratio`` the sum is re-weighted by :class:`SqueezeExcite` (authors' design).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 shortcut_kernel: int = 3, se_ratio: int | None = None) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, shortcut_kernel, stride=stride,
                      padding=shortcut_kernel // 2),
            nn.BatchNorm2d(out_channels),
        )
        self.se: nn.Module = (SqueezeExcite(out_channels, se_ratio) if se_ratio
                              else nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        return self.se(self.body(x) + self.shortcut(x))


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


class ConcatASPP(nn.Module):
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


class SummedASPP(nn.Module):
    """The authors' ConcatASPP: dilated 3x3 convs + BN at each rate and an undilated one, summed,
    then a 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int,
                 rates: Sequence[int] = (6, 12, 18)) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=r, dilation=r),
                          nn.BatchNorm2d(out_channels))
            for r in (*rates, 1))
        self.fuse = nn.Conv2d(out_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fuse(sum(b(x) for b in self.branches))


class AttentionBlock(nn.Module):
    """Weights the decoder map by a map computed from it and the (pooled) encoder skip.

    As in ResUNet++, the map is the raw output of a conv (no sigmoid): one channel from a 1x1
    conv (port) or one per channel from a 3x3 conv (``full_width``, the authors' design).
    """

    def __init__(self, skip_channels: int, decoder_channels: int,
                 full_width: bool = False) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.BatchNorm2d(skip_channels), nn.ReLU(inplace=True),
            nn.Conv2d(skip_channels, decoder_channels, 3, padding=1), nn.MaxPool2d(2))
        self.decoder = nn.Sequential(
            nn.BatchNorm2d(decoder_channels), nn.ReLU(inplace=True),
            nn.Conv2d(decoder_channels, decoder_channels, 3, padding=1))
        self.attn = nn.Sequential(
            nn.BatchNorm2d(decoder_channels), nn.ReLU(inplace=True),
            nn.Conv2d(decoder_channels, decoder_channels, 3, padding=1) if full_width
            else nn.Conv2d(decoder_channels, 1, 1))

    def forward(self, skip: Tensor, x: Tensor) -> Tensor:
        return self.attn(self.encoder(skip) + self.decoder(x)) * x


class ResUNetPlusPlus(nn.Module):
    """ResUNet++ with five widths: stem, three encoder levels, ConcatASPP bridge (1/8 resolution).

    ``widths`` and ``se_ratio`` default to those of the chosen ``variant``.
    """

    pad_multiple = 8

    def __init__(self, in_channels: int = 1, num_classes: int = 20, *,
                 variant: ResUNetVariant | str = ResUNetVariant.PORT, widths: Sequence[int] | None = None,
                 se_ratio: int | None = None, rates: Sequence[int] = (6, 12, 18)) -> None:
        super().__init__()
        try:
            design = DESIGNS[ResUNetVariant(variant)]
        except ValueError:
            raise ConfigError(f"resunetpp: variant must be one of "
                              f"{', '.join(v.value for v in ResUNetVariant)}, got {variant!r}") from None
        w = tuple(int(c) for c in (widths if widths is not None else design.widths))
        if len(w) != 5 or min(w) < 1:
            raise ConfigError(f"resunetpp: widths must be 5 positive ints, got {widths!r}")
        ratio = se_ratio or design.se_ratio
        after = ratio if design.se_after_blocks else None
        k = design.shortcut_kernel
        aspp = SummedASPP if design.aspp_sum else ConcatASPP
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, w[0], 3, padding=1), nn.BatchNorm2d(w[0]),
            nn.ReLU(inplace=True), nn.Conv2d(w[0], w[0], 3, padding=1))
        self.stem_skip: nn.Module = (nn.Conv2d(in_channels, w[0], 3, padding=1) if k == 3 else
                                     nn.Sequential(nn.Conv2d(in_channels, w[0], 1),
                                                   nn.BatchNorm2d(w[0])))
        self.stem_se: nn.Module = SqueezeExcite(w[0], ratio) if after else nn.Identity()
        self.encoder = nn.ModuleList(
            nn.Sequential(nn.Identity() if after else SqueezeExcite(w[i], ratio),
                          ResidualConv(w[i], w[i + 1], 2, k, after))
            for i in range(3))
        self.bridge = aspp(w[3], w[4], rates)
        # Decoder level k attends skip w[2-k] and outputs w[3-k].
        below = [w[4], w[3], w[2]]
        self.attention = nn.ModuleList(
            AttentionBlock(w[2 - j], below[j], design.attention_full_width) for j in range(3))
        self.up = nn.Upsample(scale_factor=2, mode=design.upsample_mode)
        self.decoder = nn.ModuleList(ResidualConv(below[j] + w[2 - j], w[3 - j], 1, k, after)
                                     for j in range(3))
        self.out_aspp = aspp(w[1], w[0], rates)
        self.head = nn.Conv2d(w[0], num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips = [self.stem_se(self.stem(x) + self.stem_skip(x))]
        for enc in self.encoder:
            skips.append(enc(skips[-1]))
        y = self.bridge(skips.pop())
        for attn, dec in zip(self.attention, self.decoder):
            skip = skips.pop()
            y = dec(torch.cat([self.up(attn(skip, y)), skip], dim=1))
        return self.head(self.out_aspp(y))


@register_model("resunetpp", display_name="ResUNet++", family=Family.UNET, pad_multiple=8)
def resunetpp(in_channels: int = 1, num_classes: int = 20, **overrides) -> nn.Module:
    """ResUNet++, PyTorch-port design, widths 32-512 (14.5 M); ``variant="authors"``: 4.06 M."""
    return ResUNetPlusPlus(in_channels, num_classes, **overrides)
