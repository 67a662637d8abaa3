"""Attention U-Net (Oktay et al., MIDL 2018) in the 2D form the paper's Table 3 counts.

The original authors' code is 3D only; the common 2D port has widths 64-1024, four
poolings, nearest-neighbour x2 upsampling followed by a 3x3 conv, and an additive attention
gate on every skip connection (34.9 M parameters, ~785 GMACs at 880x880; the paper's 34 M /
787 G).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spineseg_core.errors import ConfigError
from spineseg_core.models.registry import Family, register_model


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3) -> list[nn.Module]:
    """Conv (with bias, as the 2D port) + BatchNorm + ReLU, as a list of layers."""
    return [nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class ConvBlock(nn.Sequential):
    """Two 3x3 conv + BN + ReLU layers."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(*conv_bn_relu(in_channels, out_channels),
                         *conv_bn_relu(out_channels, out_channels))


class UpConv(nn.Sequential):
    """Nearest x2 upsampling, then a 3x3 conv + BN + ReLU that sets the width."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"),
                         *conv_bn_relu(in_channels, out_channels))


class AttentionGate(nn.Module):
    """Additive attention gate: weights the skip ``x`` by a map computed from ``x`` and ``g``.

    ``alpha = sigmoid(BN(psi(relu(BN(W_g g) + BN(W_x x)))))`` with 1x1 convolutions to
    ``inner_channels`` and then to one channel; the gate returns ``x * alpha``.
    """

    def __init__(self, gate_channels: int, skip_channels: int, inner_channels: int) -> None:
        super().__init__()
        self.w_g = nn.Sequential(nn.Conv2d(gate_channels, inner_channels, 1),
                                 nn.BatchNorm2d(inner_channels))
        self.w_x = nn.Sequential(nn.Conv2d(skip_channels, inner_channels, 1),
                                 nn.BatchNorm2d(inner_channels))
        self.psi = nn.Sequential(nn.Conv2d(inner_channels, 1, 1), nn.BatchNorm2d(1),
                                 nn.Sigmoid())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, g: Tensor, x: Tensor) -> Tensor:
        return x * self.psi(self.relu(self.w_g(g) + self.w_x(x)))


class AttentionUNet(nn.Module):
    """U-Net whose skip connections pass through :class:`AttentionGate`s."""

    def __init__(self, in_channels: int = 1, num_classes: int = 20, *, base_width: int = 64,
                 depth: int = 4) -> None:
        super().__init__()
        if depth < 1 or base_width < 2:
            raise ConfigError(f"attention_unet: need depth >= 1 and base_width >= 2, got "
                              f"depth={depth}, base_width={base_width}")
        widths = [base_width * 2**i for i in range(depth + 1)]
        self.pad_multiple = 2**depth
        self.stem = ConvBlock(in_channels, widths[0])
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), ConvBlock(widths[i], widths[i + 1]))
            for i in range(depth))
        levels = list(reversed(range(depth)))
        self.up = nn.ModuleList(UpConv(widths[i + 1], widths[i]) for i in levels)
        self.gates = nn.ModuleList(AttentionGate(widths[i], widths[i], widths[i] // 2)
                                   for i in levels)
        self.fuse = nn.ModuleList(ConvBlock(2 * widths[i], widths[i]) for i in levels)
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for up, gate, fuse in zip(self.up, self.gates, self.fuse):
            skip = skips.pop()
            y = up(y)
            y = fuse(torch.cat([gate(y, skip), y], dim=1))
        return self.head(y)


@register_model("attention_unet", display_name="Attention U-Net", family=Family.UNET,
                pad_multiple=16)
def attention_unet(in_channels: int = 1, num_classes: int = 20, **overrides) -> nn.Module:
    """Attention U-Net, widths 64-1024, attention gates on all skips (34.9 M parameters)."""
    return AttentionUNet(in_channels, num_classes, **overrides)
