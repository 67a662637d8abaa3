"""PSPNet (Zhao et al., CVPR 2017): pyramid pooling on a dilated ResNet at output stride 8.

Two heads, one parameter apart:

- ``PSPHead.UPSAMPLING`` (default with ResNet-34): a pyramid of 1x1 projections without
  normalisation (bins 1, 2, 3, 6), fused by a 1x1 conv to 1024 channels, then three stages of
  x2 bilinear upsampling + 3x3 conv + BN + PReLU (1024→256→64→64) and a 1x1 classifier. This
  compact PSPNet is the configuration that gives Table 3's 27 M parameters / 470 GMACs.
- ``PSPHead.CLASSIC`` (default with ResNet-50/101): the authors' head — pyramid branches of
  ``C/4`` channels with BatchNorm, 3x3 conv to 512, dropout, 1x1 classifier, output at 1/8 —
  with its auxiliary head on ``c3`` trained at loss weight 0.4. ``pspnet(backbone_depth=101)``
  is PSPNet-101 (65.7 M parameters without the auxiliary head, 787 GMACs).

The auxiliary head (submodule ``aux``) only runs in training, so inference-time parameter
counts (``efficiency.count_params(scope="inference")``) leave it out, as the paper's 65.7 M
for PSPNet-101 does (68.1 M with it).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import torch
from torch import Tensor, nn

from spineseg_core.errors import ConfigError
from spineseg_core.models.backbones.resnet import resnet
from spineseg_core.models.blocks import ConvBNReLU, PooledBranch, resize_to
from spineseg_core.models.registry import Family, register_model

__all__ = ["PSPHead", "PSPNet", "PyramidPooling", "pspnet"]


class PSPHead(StrEnum):
    """Which decoder follows the pyramid pooling module."""

    UPSAMPLING = "upsampling"
    CLASSIC = "classic"


class PyramidPooling(nn.Module):
    """Concatenate the input with its pooled-and-projected versions at each bin size."""

    def __init__(self, in_channels: int, branch_channels: int, bins: Sequence[int],
                 norm: bool = True) -> None:
        super().__init__()
        if norm:
            self.branches = nn.ModuleList(PooledBranch(in_channels, branch_channels, b)
                                          for b in bins)
        else:
            self.branches = nn.ModuleList(
                nn.Sequential(nn.AdaptiveAvgPool2d(b),
                              nn.Conv2d(in_channels, branch_channels, 1, bias=False))
                for b in bins)
        self.out_channels = in_channels + branch_channels * len(bins)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x] + [resize_to(b(x), x) for b in self.branches], dim=1)


class _UpStage(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                         nn.Conv2d(in_channels, out_channels, 3, padding=1),
                         nn.BatchNorm2d(out_channels), nn.PReLU())


class PSPNet(nn.Module):
    """Dilated ResNet → pyramid pooling → :class:`PSPHead` decoder (see the module doc)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 20, backbone_depth: int = 34,
                 head: PSPHead | str | None = None, bins: Sequence[int] = (1, 2, 3, 6),
                 deep_stem: bool | None = None, aux_weight: float | None = None,
                 dropout: float = 0.1) -> None:
        super().__init__()
        small = backbone_depth in (18, 34)
        try:
            self.head_kind = PSPHead(head) if head is not None else (
                PSPHead.UPSAMPLING if small else PSPHead.CLASSIC)
        except ValueError:
            raise ConfigError(f"pspnet: head must be one of {[h.value for h in PSPHead]}, "
                              f"got {head!r}") from None
        classic = self.head_kind is PSPHead.CLASSIC
        deep_stem = (not small) if deep_stem is None else deep_stem
        aux_weight = (0.4 if classic else 0.0) if aux_weight is None else float(aux_weight)
        if aux_weight < 0:
            raise ConfigError(f"pspnet: aux_weight must be >= 0, got {aux_weight}")
        self.backbone = resnet(backbone_depth, in_channels, output_stride=8, deep_stem=deep_stem)
        c3, c4 = self.backbone.channels[3:]
        if classic:
            self.ppm = PyramidPooling(c4, c4 // len(bins), bins, norm=True)
            self.head = nn.Sequential(ConvBNReLU(self.ppm.out_channels, 512, 3),
                                      nn.Dropout2d(dropout), nn.Conv2d(512, num_classes, 1))
        else:
            self.ppm = PyramidPooling(c4, c4, bins, norm=False)
            self.head = nn.Sequential(
                nn.Conv2d(self.ppm.out_channels, 1024, 1), nn.ReLU(inplace=True),
                nn.Dropout2d(0.3),
                _UpStage(1024, 256), nn.Dropout2d(0.15),
                _UpStage(256, 64), nn.Dropout2d(0.15),
                _UpStage(64, 64), nn.Dropout2d(0.15),
                nn.Conv2d(64, num_classes, 1))
        self.aux: nn.Module | None = None
        self.output_weights: tuple[float, ...] = (1.0,)
        if aux_weight > 0:
            self.aux = nn.Sequential(ConvBNReLU(c3, 256, 3), nn.Dropout2d(dropout),
                                     nn.Conv2d(256, num_classes, 1))
            self.output_weights = (1.0, aux_weight)
        self.pad_multiple = 8

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        *_, c3, c4 = self.backbone(x)
        out = self.head(self.ppm(c4))
        if self.training and self.aux is not None:
            return [out, self.aux(c3)]
        return out


@register_model("pspnet", display_name="PSPNet", family=Family.BACKBONE, pad_multiple=8,
                backbone="ResNet-34")
def pspnet(in_channels: int = 1, num_classes: int = 20, **overrides) -> nn.Module:
    """PSPNet on a dilated ResNet-34 (stride 8), bins 1-2-3-6, three upsampling stages.

    ``backbone_depth=101`` gives the authors' PSPNet-101 (classic head, deep stem, 0.4 x
    auxiliary loss on c3).
    """
    return PSPNet(in_channels, num_classes, **overrides)
