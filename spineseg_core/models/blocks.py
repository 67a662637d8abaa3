"""Small building blocks shared by the architectures; the names here are stable.

- :class:`ConvBNReLU` — convolution, BatchNorm, ReLU: the unit of almost every head.
- :class:`PooledBranch` — adaptive average pooling to a ``bins x bins`` grid, a 1x1
  projection, upsampled back: one branch of PSPNet's pyramid and DeepLab's image pooling.
- :class:`ASPP` — DeepLabv3's atrous spatial pyramid pooling (1x1, three dilated 3x3, image
  pooling, 1x1 projection).
- :func:`resize_to` — bilinear resize of a map to another map's (or a given) size.

BatchNorm on a pooled ``1x1`` map normalises over the batch alone: at batch size 1 in
training there is one value per channel and BatchNorm fails (and at batch 2-4 its statistics
are noise). :class:`PooledBranch` therefore has no normalisation when its grid is ``1x1``:
the projection gets a bias instead. Larger grids keep BatchNorm as in the references.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ASPP", "ConvBNReLU", "PooledBranch", "resize_to"]


def resize_to(x: Tensor, size: Tensor | Sequence[int]) -> Tensor:
    """Bilinear resize of ``x`` to ``size`` (or to a reference tensor's spatial size)."""
    target = tuple(size.shape[-2:]) if isinstance(size, Tensor) else tuple(size)
    if tuple(x.shape[-2:]) == target:
        return x
    return F.interpolate(x, size=target, mode="bilinear", align_corners=False)


class ConvBNReLU(nn.Sequential):
    """``Conv2d`` (no bias, "same" padding for odd kernels) → ``BatchNorm2d`` → ``ReLU``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, dilation: int = 1, groups: int = 1) -> None:
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation,
                      groups, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True))


class PooledBranch(nn.Module):
    """Average-pool to ``bins x bins``, project with a 1x1 conv (+BN unless 1x1) and ReLU, upsample.

    The output has ``out_channels`` channels at the input's spatial size.
    """

    def __init__(self, in_channels: int, out_channels: int, bins: int = 1) -> None:
        super().__init__()
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        self.bins = bins
        self.pool = nn.AdaptiveAvgPool2d(bins)
        norm = bins > 1
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=not norm)
        self.norm = nn.BatchNorm2d(out_channels) if norm else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.norm(self.conv(self.pool(x))))
        return resize_to(y, x)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLabv3): 1x1, 3x3 at each rate, image pooling, fuse.

    Every branch has ``out_channels`` channels; their concatenation is projected back to
    ``out_channels`` by a 1x1 ConvBNReLU followed by dropout (0.5 in DeepLabv3+).
    """

    def __init__(self, in_channels: int, out_channels: int = 256,
                 rates: Sequence[int] = (6, 12, 18), dropout: float = 0.5) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [ConvBNReLU(in_channels, out_channels, 1)]
            + [ConvBNReLU(in_channels, out_channels, 3, dilation=r) for r in rates]
            + [PooledBranch(in_channels, out_channels, 1)])
        self.project = nn.Sequential(
            ConvBNReLU(out_channels * (len(rates) + 2), out_channels, 1), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        return self.project(torch.cat([b(x) for b in self.branches], dim=1))
