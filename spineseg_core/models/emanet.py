"""EMANet (Li et al., ICCV 2019): expectation-maximisation attention on a ResNet-101 at stride 8.

The backbone's last map is reduced to 512 channels (3x3 ConvBNReLU) and passed through the
EM attention unit (:class:`EMAttention`): a 1x1 conv, then ``T = 3`` EM iterations against
``K = 64`` bases — E-step ``z = softmax_k(x^T mu)``, M-step ``mu = l2norm(x z / sum z)`` —
the reconstruction ``relu(mu z^T)``, a 1x1 conv + BN, and a residual sum with ReLU. A 3x3
ConvBNReLU to 256, dropout and a 1x1 classifier follow; one output at stride 8.

As in the authors' code the EM iterations run without gradient (so the unit's first 1x1 conv
is not reached by back-propagation; the residual path carries the gradient), and the
initial bases ``mu`` are a buffer, not a parameter: every training-mode forward moves them
towards the batch mean of the final bases, ``mu <- 0.9 mu + 0.1 mean_b(mu_b)``, then
re-normalises them. Evaluation-mode forwards leave them untouched. The update is therefore
part of the training step, and the bases are saved and restored with the ``state_dict``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spineseg_core.errors import ConfigError
from spineseg_core.models.backbones.resnet import resnet
from spineseg_core.models.blocks import ConvBNReLU
from spineseg_core.models.registry import Family, register_model

__all__ = ["EMANet", "EMAttention", "emanet"]


def _l2norm(x: Tensor, dim: int) -> Tensor:
    return x / (1e-6 + x.norm(dim=dim, keepdim=True))


class EMAttention(nn.Module):
    """The EM attention unit (EMAU) with ``bases`` bases of ``channels`` dimensions.

    Args:
        channels: input and output channels.
        bases: number of bases ``K``.
        iterations: EM iterations ``T``.
        momentum: weight of the old bases in the moving-average update.
    """

    def __init__(self, channels: int, bases: int = 64, iterations: int = 3,
                 momentum: float = 0.9) -> None:
        super().__init__()
        if iterations < 1:
            raise ConfigError(f"emanet: iterations must be >= 1, got {iterations}")
        if not 0.0 <= momentum <= 1.0:
            raise ConfigError(f"emanet: momentum must be in [0, 1], got {momentum}")
        self.iterations = iterations
        self.momentum = momentum
        mu = torch.randn(1, channels, bases) * math.sqrt(2.0 / bases)
        self.register_buffer("mu", _l2norm(mu, dim=1))
        self.conv1 = nn.Conv2d(channels, channels, 1)
        self.conv2 = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False),
                                   nn.BatchNorm2d(channels))

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        n, c, h, w = x.shape
        feat = self.conv1(x).flatten(2)
        with torch.no_grad():
            mu = self.mu.expand(n, -1, -1)
            for _ in range(self.iterations):
                z = torch.softmax(torch.bmm(feat.transpose(1, 2), mu), dim=2)
                z_norm = z / (1e-6 + z.sum(dim=1, keepdim=True))
                mu = _l2norm(torch.bmm(feat, z_norm), dim=1)
            if self.training:
                update = _l2norm(mu.mean(dim=0, keepdim=True), dim=1)
                self.mu.mul_(self.momentum).add_(update, alpha=1.0 - self.momentum)
                self.mu.copy_(_l2norm(self.mu, dim=1))
        y = F.relu(torch.bmm(mu, z.transpose(1, 2)).reshape(n, c, h, w))
        return F.relu(self.conv2(y) + identity)


class EMANet(nn.Module):
    """Dilated ResNet → 3x3 to 512 → :class:`EMAttention` → 3x3 to 256 → classifier."""

    def __init__(self, in_channels: int = 1, num_classes: int = 20, backbone_depth: int = 101,
                 output_stride: int = 8, channels: int = 512, bases: int = 64,
                 iterations: int = 3, momentum: float = 0.9, deep_stem: bool = True) -> None:
        super().__init__()
        self.backbone = resnet(backbone_depth, in_channels, output_stride, deep_stem=deep_stem)
        self.reduce = ConvBNReLU(self.backbone.channels[-1], channels, 3)
        self.emau = EMAttention(channels, bases, iterations, momentum)
        self.head = nn.Sequential(ConvBNReLU(channels, 256, 3), nn.Dropout2d(0.1),
                                  nn.Conv2d(256, num_classes, 1))
        self.pad_multiple = output_stride

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.emau(self.reduce(self.backbone(x)[-1])))


@register_model("emanet", display_name="EMANet", family=Family.BACKBONE, pad_multiple=8,
                backbone="ResNet-101")
def emanet(in_channels: int = 1, num_classes: int = 20, **overrides) -> nn.Module:
    """EMANet on a dilated ResNet-101 (stride 8), 512 channels, K=64 bases, T=3 iterations."""
    return EMANet(in_channels, num_classes, **overrides)
