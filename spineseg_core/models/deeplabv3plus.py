"""DeepLabv3+ (Chen et al., ECCV 2018) on a ResNet-101 at output stride 16.

Encoder: ResNet-101 with the last stage dilated (rate 2, multi-grid 1-2-4 → rates 2-4-8),
then :class:`~spineseg_core.models.blocks.ASPP` (1x1, rates 6-12-18 at stride 16, doubled at
stride 8, image pooling) to 256 channels. Decoder: the ASPP output upsampled to stride 4 and
concatenated with a 48-channel projection of ``c1``, two 3x3 ConvBNReLU (256) with dropout
0.5 and 0.1, and a 1x1 classifier; the wrapper upsamples the stride-4 logits by 4.

The image-pooling branch has no BatchNorm (a biased 1x1 conv instead, see
:mod:`~spineseg_core.models.blocks`), so that batch size 1 trains.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from spineseg_core.errors import ConfigError
from spineseg_core.models.backbones.resnet import resnet
from spineseg_core.models.blocks import ASPP, ConvBNReLU, resize_to
from spineseg_core.models.registry import Family, register_model

__all__ = ["DeepLabV3Plus", "deeplabv3plus"]


class DeepLabV3Plus(nn.Module):
    """ResNet encoder + ASPP + low-level decoder; one output at stride 4."""

    def __init__(self, in_channels: int = 1, num_classes: int = 20, backbone_depth: int = 101,
                 output_stride: int = 16, multi_grid: Sequence[int] | None = (1, 2, 4),
                 aspp_rates: Sequence[int] | None = None, aspp_channels: int = 256,
                 low_level_channels: int = 48, deep_stem: bool = False) -> None:
        super().__init__()
        if output_stride not in (8, 16):
            raise ConfigError(f"deeplabv3plus: output_stride must be 8 or 16, "
                              f"got {output_stride!r}")
        rates = tuple(aspp_rates) if aspp_rates is not None else (
            (6, 12, 18) if output_stride == 16 else (12, 24, 36))
        self.backbone = resnet(backbone_depth, in_channels, output_stride, multi_grid,
                               deep_stem)
        low, high = self.backbone.channels[1], self.backbone.channels[4]
        self.aspp = ASPP(high, aspp_channels, rates, dropout=0.5)
        self.low_level = ConvBNReLU(low, low_level_channels, 1)
        self.decoder = nn.Sequential(
            ConvBNReLU(aspp_channels + low_level_channels, 256, 3), nn.Dropout(0.5),
            ConvBNReLU(256, 256, 3), nn.Dropout(0.1),
            nn.Conv2d(256, num_classes, 1))
        self.pad_multiple = output_stride

    def forward(self, x: Tensor) -> Tensor:
        _, c1, _, _, c4 = self.backbone(x)
        low = self.low_level(c1)
        high = resize_to(self.aspp(c4), low)
        return self.decoder(torch.cat([high, low], dim=1))


@register_model("deeplabv3plus", display_name="DeepLabv3+", family=Family.BACKBONE,
                pad_multiple=16, backbone="ResNet-101")
def deeplabv3plus(in_channels: int = 1, num_classes: int = 20, **overrides) -> nn.Module:
    """DeepLabv3+ with ResNet-101 (OS 16, multi-grid 1-2-4), ASPP 6-12-18 + image pooling."""
    return DeepLabV3Plus(in_channels, num_classes, **overrides)
