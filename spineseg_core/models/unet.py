"""U-Net (Ronneberger et al., MICCAI 2015) as the paper's Table 3 counts it.

The default is the widely used bilinear variant: four poolings, widths 64-128-256-512 with the
bottleneck capped at 512, bilinear x2 upsampling and double 3x3 conv+BN+ReLU blocks whose
output halves the width on the way up (13.4 M parameters, ~365 GMACs at 880x880, the
paper's 13 M / 367 G). ``bilinear=False`` gives the classic U-Net with transposed
convolutions and a 1024-wide bottleneck (31.0 M).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spineseg_core.errors import ConfigError
from spineseg_core.models.registry import Family, register_model


class DoubleConv(nn.Sequential):
    """Two 3x3 conv + BatchNorm + ReLU layers (the U-Net's basic block)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UpBlock(nn.Module):
    """Upsample the deeper map x2, concatenate the skip, then a :class:`DoubleConv`."""

    def __init__(self, below_channels: int, skip_channels: int, out_channels: int,
                 bilinear: bool) -> None:
        super().__init__()
        if bilinear:
            self.up: nn.Module = nn.Upsample(scale_factor=2, mode="bilinear",
                                             align_corners=True)
            up_channels = below_channels
        else:
            up_channels = below_channels // 2
            self.up = nn.ConvTranspose2d(below_channels, up_channels, 2, stride=2)
        self.conv = DoubleConv(up_channels + skip_channels, out_channels)

    def forward(self, below: Tensor, skip: Tensor) -> Tensor:
        return self.conv(torch.cat([skip, self.up(below)], dim=1))


class SkipEncoderDecoder(nn.Module):
    """The U-Net's skeleton: ``stem``, ``down`` blocks whose outputs are kept as skips, ``up``
    blocks that each merge the map below with one skip (deepest first), and a 1x1 ``head``.

    Subclasses build the modules and say in :meth:`decode` how one ``up`` block merges; the 2D
    and 3D U-Nets share this forward pass.
    """

    stem: nn.Module
    down: nn.ModuleList
    up: nn.ModuleList
    head: nn.Module

    def decode(self, up: nn.Module, below: Tensor, skip: Tensor) -> Tensor:
        """One decoder step: ``up`` merges the deeper map ``below`` with ``skip``."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for up in self.up:
            y = self.decode(up, y, skips.pop())
        return self.head(y)


class UNet(SkipEncoderDecoder):
    """Encoder of ``depth`` max-poolings, symmetric decoder with skip concatenation.

    Widths are ``base_width * 2**i``. With ``bilinear=True`` the bottleneck keeps the width
    of the deepest encoder level and each decoder block outputs the width of the level above
    (the parameter-free upsampling cannot halve channels itself).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 20, *, base_width: int = 64,
                 depth: int = 4, bilinear: bool = True) -> None:
        super().__init__()
        if depth < 1:
            raise ConfigError(f"unet: depth must be >= 1, got {depth}")
        if base_width < 2:
            raise ConfigError(f"unet: base_width must be >= 2, got {base_width}")
        widths = [base_width * 2**i for i in range(depth + 1)]
        if bilinear:
            widths[-1] = widths[-2]
        self.pad_multiple = 2**depth
        self.stem = DoubleConv(in_channels, widths[0])
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), DoubleConv(widths[i], widths[i + 1]))
            for i in range(depth))
        self.up = nn.ModuleList()
        below = widths[-1]
        for level in reversed(range(depth)):
            out = widths[max(level - 1, 0)] if bilinear else widths[level]
            self.up.append(UpBlock(below, widths[level], out, bilinear))
            below = out
        self.head = nn.Conv2d(below, num_classes, 1)

    def decode(self, up: nn.Module, below: Tensor, skip: Tensor) -> Tensor:
        return up(below, skip)  # an UpBlock: upsample x2, concatenate, DoubleConv


@register_model("unet", display_name="U-Net", family=Family.UNET, pad_multiple=16)
def unet(in_channels: int = 1, num_classes: int = 20, **overrides) -> nn.Module:
    """U-Net, bilinear upsampling, widths 64-512 (13.4 M parameters)."""
    return UNet(in_channels, num_classes, **overrides)
