"""DenseASPP (Yang et al., CVPR 2018) on a DenseNet-169 at output stride 16.

As in the authors' code, the DenseNet ends with one more transition without pooling
(1x1 conv halving the channels, 1664 → 832, then BN); with ``output_stride=16`` these
features are upsampled x2, so the atrous head always runs at stride 8. Five atrous branches
(rates 3, 6, 12, 18, 24) are densely connected: branch ``i`` reads the features concatenated
with the outputs of every earlier branch. A branch is [BN-ReLU] - 1x1 conv to ``d_feature0``
(336) - BN-ReLU - dilated 3x3 conv to ``d_feature1`` (168) - dropout; the first branch reads
the transition's output after a ReLU and skips the leading BN-ReLU. The classifier is
dropout + 1x1 conv over all ``832 + 5 * 168`` channels; the wrapper upsamples the stride-8
logits. This gives Table 3's 18 M parameters / 124 GMACs; ``output_stride=8`` (backbone
dilated from the third block) costs ~236 GMACs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spineseg_core.errors import ConfigError
from spineseg_core.models.backbones.densenet import densenet
from spineseg_core.models.registry import Family, register_model

__all__ = ["DenseASPP", "DenseASPPBranch", "denseaspp"]


class DenseASPPBranch(nn.Sequential):
    """[BN-ReLU] → 1x1 conv → BN-ReLU → dilated 3x3 conv → dropout (convs with bias)."""

    def __init__(self, in_channels: int, inner: int, out_channels: int, dilation: int,
                 dropout: float = 0.1, bn_start: bool = True) -> None:
        layers: list[nn.Module] = ([nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True)]
                                   if bn_start else [])
        layers += [nn.Conv2d(in_channels, inner, 1), nn.BatchNorm2d(inner),
                   nn.ReLU(inplace=True),
                   nn.Conv2d(inner, out_channels, 3, padding=dilation, dilation=dilation),
                   nn.Dropout2d(dropout)]
        super().__init__(*layers)


class DenseASPP(nn.Module):
    """DenseNet → transition → (x2 at OS 16) → densely connected atrous branches → 1x1."""

    def __init__(self, in_channels: int = 1, num_classes: int = 20, backbone_depth: int = 169,
                 output_stride: int = 16, rates: Sequence[int] = (3, 6, 12, 18, 24),
                 d_feature0: int = 336, d_feature1: int = 168,
                 transition_channels: int | None = None, dropout: float = 0.1) -> None:
        super().__init__()
        if output_stride not in (8, 16):
            raise ConfigError(f"denseaspp: output_stride must be 8 or 16, got {output_stride!r}")
        self.backbone = densenet(backbone_depth, in_channels, output_stride)
        width = transition_channels or self.backbone.channels[-1] // 2
        self.transition = nn.Sequential(
            nn.Conv2d(self.backbone.channels[-1], width, 1, bias=False), nn.BatchNorm2d(width))
        self.upsample = output_stride // 8
        self.branches = nn.ModuleList()
        for i, r in enumerate(rates):
            self.branches.append(DenseASPPBranch(width, d_feature0, d_feature1, r, dropout,
                                                 bn_start=i > 0))
            width += d_feature1
        self.classifier = nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(width, num_classes, 1))
        self.pad_multiple = output_stride

    def forward(self, x: Tensor) -> Tensor:
        feature = self.transition(self.backbone(x)[-1])
        if self.upsample > 1:
            feature = F.interpolate(feature, scale_factor=self.upsample, mode="bilinear",
                                    align_corners=False)
        feature = F.relu(feature)
        for branch in self.branches:
            feature = torch.cat([feature, branch(feature)], dim=1)
        return self.classifier(feature)


@register_model("denseaspp", display_name="DenseASPP", family=Family.BACKBONE,
                pad_multiple=16, backbone="DenseNet-169")
def denseaspp(in_channels: int = 1, num_classes: int = 20, **overrides) -> nn.Module:
    """DenseASPP on DenseNet-169 (OS 16, head at 1/8), rates 3-6-12-18-24, widths 336 → 168."""
    return DenseASPP(in_channels, num_classes, **overrides)
