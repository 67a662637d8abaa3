"""DANet (Fu et al., CVPR 2019): position and channel attention on a ResNet-101.

The backbone's last map goes into two branches of 512 channels (3x3 ConvBNReLU each): the
position attention module (PAM) mixes every position with all others, ``softmax(Q K^T) V``
with 64-channel queries and keys and no ``1/sqrt(d)`` scaling (computed with
``F.scaled_dot_product_attention(..., scale=1.0)``); the channel attention module (CAM) mixes
channels by ``softmax(rowmax(X X^T) - X X^T) X``. Each module adds its result to its input
through a learnt scale initialised at 0. After another 3x3 ConvBNReLU per branch, three 1x1
classifiers read the sum of both branches, the PAM branch and the CAM branch: training
returns all three with equal loss weights, evaluation the sum only.

Default: an undilated stride-32 backbone, the only configuration that gives Table 3's
139 GMACs; ``output_stride=8`` is the authors' dilated setting (~904 GMACs at 880 x 880).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spineseg_core.models.backbones.resnet import resnet
from spineseg_core.models.blocks import ConvBNReLU
from spineseg_core.models.registry import Family, register_model

__all__ = ["ChannelAttention", "DANet", "DANetHead", "PositionAttention", "danet"]


class PositionAttention(nn.Module):
    """PAM: ``x + gamma * V softmax(Q^T K)^T`` over all ``H*W`` positions."""

    def __init__(self, channels: int, key_channels: int | None = None) -> None:
        super().__init__()
        key_channels = key_channels or channels // 8
        self.query = nn.Conv2d(channels, key_channels, 1)
        self.key = nn.Conv2d(channels, key_channels, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)
        k = self.key(x).flatten(2).transpose(1, 2)
        v = self.value(x).flatten(2).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0)
        return x + self.gamma * out.transpose(1, 2).reshape(n, c, h, w)


class ChannelAttention(nn.Module):
    """CAM: ``x + gamma * softmax(rowmax(E) - E) X`` with the ``C x C`` Gram matrix ``E``.

    ``softmax(rowmax(E) - E)`` equals ``softmax(-E)`` (softmax ignores a per-row shift), which
    is what is computed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        feat = x.flatten(2)
        energy = torch.bmm(feat, feat.transpose(1, 2))
        attention = torch.softmax(-energy, dim=-1)
        out = torch.bmm(attention, feat).reshape(n, c, h, w)
        return x + self.gamma * out


class DANetHead(nn.Module):
    """Two attention branches and three classifiers (sum, PAM, CAM)."""

    def __init__(self, in_channels: int, num_classes: int, inter_channels: int = 512,
                 key_channels: int = 64, dropout: float = 0.1) -> None:
        super().__init__()
        self.pam_in = ConvBNReLU(in_channels, inter_channels, 3)
        self.cam_in = ConvBNReLU(in_channels, inter_channels, 3)
        self.pam = PositionAttention(inter_channels, key_channels)
        self.cam = ChannelAttention()
        self.pam_out = ConvBNReLU(inter_channels, inter_channels, 3)
        self.cam_out = ConvBNReLU(inter_channels, inter_channels, 3)
        self.classifiers = nn.ModuleList(
            nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(inter_channels, num_classes, 1))
            for _ in range(3))

    def forward(self, x: Tensor, all_outputs: bool = True) -> list[Tensor]:
        p = self.pam_out(self.pam(self.pam_in(x)))
        c = self.cam_out(self.cam(self.cam_in(x)))
        feats = (p + c, p, c) if all_outputs else (p + c,)
        return [cls(f) for cls, f in zip(self.classifiers, feats)]


class DANet(nn.Module):
    """ResNet → :class:`DANetHead`; three outputs in training, the fused one in evaluation."""

    output_weights = (1.0, 1.0, 1.0)

    def __init__(self, in_channels: int = 1, num_classes: int = 20, backbone_depth: int = 101,
                 output_stride: int = 32, inter_channels: int = 512, key_channels: int = 64,
                 deep_stem: bool = False) -> None:
        super().__init__()
        self.backbone = resnet(backbone_depth, in_channels, output_stride, deep_stem=deep_stem)
        self.head = DANetHead(self.backbone.channels[-1], num_classes, inter_channels,
                              key_channels)
        self.pad_multiple = output_stride

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        outs = self.head(self.backbone(x)[-1], all_outputs=self.training)
        return outs if self.training else outs[0]


@register_model("danet", display_name="DANet", family=Family.BACKBONE, pad_multiple=32,
                backbone="ResNet-101")
def danet(in_channels: int = 1, num_classes: int = 20, **overrides) -> nn.Module:
    """DANet on ResNet-101 (stride 32 by default; ``output_stride=8`` is the original)."""
    return DANet(in_channels, num_classes, **overrides)
