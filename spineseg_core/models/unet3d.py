"""A 3D U-Net (Çiçek et al., MICCAI 2016) over whole sagittal volumes.

The paper's future work names 3D context (V-Net, nnU-Net) as what 2D slices lack. This is the
smallest honest answer on the study's grid: a U-Net whose convolutions are 3D, trained and
scored on whole volumes at the profile's in-plane size. The volumes are thin across the
sagittal axis (a lumbar MRI has 12-15 slices of 4 mm at 2.4 mm pixels on the cpu profile's
128 px grid), so, as nnU-Net does for anisotropic data, the network pools in-plane at every
level and across slices only at the deeper levels (:data:`DEPTH_POOLED` of them): a volume's
depth is padded to a multiple of 4, its height and width to 16. Widths 32-64-128-256 with a
256 bottleneck (trilinear upsampling) keep it near the 2D U-Net's cost per slice.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spineseg_core.errors import ConfigError
from spineseg_core.models.registry import Family, InputKind, register_model
from spineseg_core.models.unet import SkipEncoderDecoder

DEPTH_POOLED = 2
"""How many of the poolings (the deepest ones) also halve the depth (across slices)."""


class DoubleConv3d(nn.Sequential):
    """Two 3x3x3 conv + BatchNorm + ReLU layers."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm3d(out_channels), nn.ReLU(inplace=True),
            nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm3d(out_channels), nn.ReLU(inplace=True))


class UNet3D(SkipEncoderDecoder):
    """Encoder of ``depth`` max-poolings (in-plane always, across slices at the deepest
    ``depth_pooled``), symmetric decoder with skip concatenation and trilinear upsampling."""

    def __init__(self, in_channels: int = 1, num_classes: int = 20, *, base_width: int = 32,
                 depth: int = 4, depth_pooled: int = DEPTH_POOLED) -> None:
        super().__init__()
        if depth < 1 or not 0 <= depth_pooled <= depth:
            raise ConfigError(f"unet3d: need depth >= 1 and 0 <= depth_pooled <= depth, got "
                              f"depth={depth}, depth_pooled={depth_pooled}")
        if base_width < 2:
            raise ConfigError(f"unet3d: base_width must be >= 2, got {base_width}")
        widths = [base_width * 2**i for i in range(depth + 1)]
        widths[-1] = widths[-2]
        self.scales = [(2 if i >= depth - depth_pooled else 1, 2, 2) for i in range(depth)]
        self.pad_multiple = (2**depth_pooled, 2**depth, 2**depth)
        self.stem = DoubleConv3d(in_channels, widths[0])
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool3d(self.scales[i]), DoubleConv3d(widths[i], widths[i + 1]))
            for i in range(depth))
        self.up = nn.ModuleList()
        below = widths[-1]
        for level in reversed(range(depth)):
            out = widths[max(level - 1, 0)]
            self.up.append(DoubleConv3d(below + widths[level], out))
            below = out
        self.head = nn.Conv3d(below, num_classes, 1)

    def decode(self, up: nn.Module, below: Tensor, skip: Tensor) -> Tensor:
        # trilinear to the skip's own size: depth is not halved at every level
        below = nn.functional.interpolate(below, size=skip.shape[2:], mode="trilinear",
                                          align_corners=False)
        return up(torch.cat([skip, below], dim=1))


@register_model("unet3d", display_name="3D U-Net", family=Family.CONTEXT,
                pad_multiple=(2**DEPTH_POOLED, 16, 16), input_kind=InputKind.VOLUME)
def unet3d(in_channels: int = 1, num_classes: int = 20, **overrides) -> nn.Module:
    """3D U-Net over whole volumes, widths 32-256, pooling across slices at the 2 deepest
    levels."""
    return UNet3D(in_channels, num_classes, **overrides)
