"""DenseNet-121/161/169/201 feature extractors in plain torch, with dilation for dense prediction.

Each dense layer is BN-ReLU-1x1 conv (``bn_size * growth`` channels) - BN-ReLU-3x3 conv
(``growth`` channels) and its output is concatenated to its input; transitions halve the
channels (compression 0.5) and average-pool by 2. For ``output_stride`` 16 the last
transition keeps its resolution and the last dense block is dilated by 2; for 8 the last two
transitions keep theirs and the last two blocks are dilated by 2 and 4 (DenseASPP's recipe).

:meth:`DenseNet.forward` returns ``[stem, b1, b2, b3, b4]``: the stem after its ReLU
(stride 2) and the output of each dense block (before its transition; the last one after
the final BatchNorm and ReLU). Widths in :attr:`DenseNet.channels`, strides in
:attr:`DenseNet.reductions`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spineseg_core.errors import ConfigError

__all__ = ["DENSENET_CONFIGS", "DenseBlock", "DenseLayer", "DenseNet", "Transition", "densenet"]


DENSENET_CONFIGS: dict[int, tuple[int, tuple[int, int, int, int], int]] = {
    121: (32, (6, 12, 24, 16), 64),
    161: (48, (6, 12, 36, 24), 96),
    169: (32, (6, 12, 32, 32), 64),
    201: (32, (6, 12, 48, 32), 64),
}
"""Growth rate, layers per block and stem width of each supported depth."""

_POOL_DILATION: dict[int, tuple[tuple[bool, bool, bool], tuple[int, int, int, int]]] = {
    32: ((True, True, True), (1, 1, 1, 1)),
    16: ((True, True, False), (1, 1, 1, 2)),
    8: ((True, False, False), (1, 1, 2, 4)),
}


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv → BN-ReLU-3x3 conv (dilated); returns input ⊕ ``growth`` new maps."""

    def __init__(self, in_channels: int, growth: int, bn_size: int, dilation: int = 1) -> None:
        super().__init__()
        inner = bn_size * growth
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, inner, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(inner, growth, 3, padding=dilation, dilation=dilation, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv1(self.relu(self.norm1(x)))
        y = self.conv2(self.relu(self.norm2(y)))
        return torch.cat([x, y], dim=1)


class DenseBlock(nn.Sequential):
    """``n`` dense layers; output width ``in_channels + n * growth``."""

    def __init__(self, n: int, in_channels: int, growth: int, bn_size: int,
                 dilation: int = 1) -> None:
        super().__init__(*(DenseLayer(in_channels + i * growth, growth, bn_size, dilation)
                           for i in range(n)))
        self.out_channels = in_channels + n * growth


class Transition(nn.Sequential):
    """BN-ReLU-1x1 conv to ``out_channels``, then 2x2 average pooling if ``pool``."""

    def __init__(self, in_channels: int, out_channels: int, pool: bool = True) -> None:
        layers: list[nn.Module] = [nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True),
                                   nn.Conv2d(in_channels, out_channels, 1, bias=False)]
        if pool:
            layers.append(nn.AvgPool2d(2, 2))
        super().__init__(*layers)


class DenseNet(nn.Module):
    """DenseNet trunk without classifier; ``forward`` returns five feature maps.

    Args:
        growth: channels added by each dense layer.
        blocks: dense layers per block.
        stem_channels: width of the 7x7 stem convolution.
        in_channels: input channels (1 for MRI).
        bn_size: bottleneck factor of the 1x1 convolution.
        compression: channel factor of the transitions.
        output_stride: 8, 16 or 32.
    """

    def __init__(self, growth: int, blocks: tuple[int, ...], stem_channels: int,
                 in_channels: int = 1, bn_size: int = 4, compression: float = 0.5,
                 output_stride: int = 32) -> None:
        super().__init__()
        if in_channels < 1:
            raise ConfigError(f"in_channels must be >= 1, got {in_channels}")
        if not 0 < compression <= 1:
            raise ConfigError(f"compression must be in (0, 1], got {compression}")
        try:
            pools, dilations = _POOL_DILATION[output_stride]
        except KeyError:
            raise ConfigError(f"output_stride must be one of {sorted(_POOL_DILATION)}, "
                              f"got {output_stride!r}") from None
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 7, 2, 3, bias=False),
            nn.BatchNorm2d(stem_channels), nn.ReLU(inplace=True))
        self.pool = nn.MaxPool2d(3, 2, 1)
        width = stem_channels
        self.blocks = nn.ModuleList()
        self.transitions = nn.ModuleList()
        widths = [stem_channels]
        for i, n in enumerate(blocks):
            block = DenseBlock(n, width, growth, bn_size, dilations[i])
            self.blocks.append(block)
            width = block.out_channels
            widths.append(width)
            if i < len(blocks) - 1:
                out = int(width * compression)
                self.transitions.append(Transition(width, out, pools[i]))
                width = out
        self.final = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.channels: tuple[int, ...] = tuple(widths)
        """Widths of ``[stem, b1, b2, b3, b4]``."""
        r = [2, 4]
        for p in pools:
            r.append(r[-1] * (2 if p else 1))
        self.reductions: tuple[int, ...] = tuple(r)
        """Strides of ``[stem, b1, b2, b3, b4]`` relative to the input."""
        self.output_stride = output_stride
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        stem = self.stem(x)
        feats = [stem]
        y = self.pool(stem)
        for i, block in enumerate(self.blocks):
            y = block(y)
            if i < len(self.transitions):
                feats.append(y)
                y = self.transitions[i](y)
        feats.append(self.final(y))
        return feats


def densenet(depth: int = 169, in_channels: int = 1, output_stride: int = 32,
             bn_size: int = 4, compression: float = 0.5) -> DenseNet:
    """DenseNet-``depth`` trunk (121, 161, 169 or 201), randomly initialised."""
    try:
        growth, blocks, stem = DENSENET_CONFIGS[depth]
    except KeyError:
        raise ConfigError(f"DenseNet depth must be one of {sorted(DENSENET_CONFIGS)}, "
                          f"got {depth!r}") from None
    return DenseNet(growth, blocks, stem, in_channels, bn_size, compression, output_stride)
