"""ResNet-18/34/50/101/152 feature extractors in plain torch, with dilation for dense prediction.

Segmentation models keep spatial detail by replacing the stride of the last stages with
dilation (``output_stride`` 16 or 8), and DeepLab spreads the rates of the last stage with a
``multi_grid``. Following torchvision, the first block of a dilated stage keeps the previous
dilation and the following blocks use the new one; a multi-grid multiplies the stage's rate
block by block, as DeepLabv3 does. ``deep_stem`` swaps the 7x7 stem for three 3x3 convolutions
(64-64-128), the "ResNet-C" stem of PSPNet's and EMANet's references.

:meth:`ResNet.forward` returns every level ``[stem, c1, c2, c3, c4]`` (strides 2, 4, 8, and
those of the last two stages), so decoders pick the low-level features they need; the widths
are in :attr:`ResNet.channels`, the strides in :attr:`ResNet.reductions`. No weights are ever
downloaded: every network starts from a Kaiming initialisation.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from spineseg_core.errors import ConfigError

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "RESNET_DEPTHS", "resnet", "stage_dilations"]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride, padding=dilation,
                               dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, dilated), 1x1 expand by 4 (ResNet-50/101/152; stride on 3x3)."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=dilation, dilation=dilation,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


RESNET_DEPTHS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}
"""Block type and blocks per stage of each supported depth."""

_STRIDES_DILATIONS: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {
    32: ((1, 2, 2, 2), (1, 1, 1, 1)),
    16: ((1, 2, 2, 1), (1, 1, 1, 2)),
    8: ((1, 2, 1, 1), (1, 1, 2, 4)),
}


def stage_dilations(output_stride: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Strides and dilations of the four stages for an output stride of 8, 16 or 32."""
    try:
        return _STRIDES_DILATIONS[output_stride]
    except KeyError:
        raise ConfigError(f"output_stride must be one of {sorted(_STRIDES_DILATIONS)}, "
                          f"got {output_stride!r}") from None


class ResNet(nn.Module):
    """ResNet trunk without pooling head or classifier; ``forward`` returns five feature maps.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: blocks per stage.
        in_channels: input channels (1 for MRI).
        output_stride: 8, 16 or 32; strides of the later stages become dilations.
        multi_grid: per-block multipliers of the last stage's dilation (one per block).
        deep_stem: three 3x3 convolutions (64-64-128) instead of one 7x7 (64).
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: Sequence[int],
                 in_channels: int = 1, output_stride: int = 32,
                 multi_grid: Sequence[int] | None = None, deep_stem: bool = False) -> None:
        super().__init__()
        if in_channels < 1:
            raise ConfigError(f"in_channels must be >= 1, got {in_channels}")
        if len(layers) != 4:
            raise ConfigError(f"layers must give 4 stages, got {tuple(layers)}")
        strides, dilations = stage_dilations(output_stride)
        grid = tuple(multi_grid) if multi_grid is not None else (1,) * layers[3]
        if len(grid) != layers[3] or min(grid) < 1:
            raise ConfigError(f"multi_grid must give {layers[3]} positive rates (one per block "
                              f"of the last stage), got {grid}")
        stem_width = 128 if deep_stem else 64
        if deep_stem:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, 64, 3, 2, 1, bias=False), nn.BatchNorm2d(64),
                nn.ReLU(inplace=True),
                nn.Conv2d(64, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                nn.Conv2d(64, 128, 3, 1, 1, bias=False), nn.BatchNorm2d(128),
                nn.ReLU(inplace=True))
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self._in = stem_width
        previous = 1
        stages = []
        for i, (width, n) in enumerate(zip((64, 128, 256, 512), layers)):
            rates = [dilations[i] * g for g in grid] if i == 3 else [dilations[i]] * n
            if i < 3 or multi_grid is None:
                rates[0] = previous if strides[i] == 1 and dilations[i] > previous else rates[0]
            stages.append(self._make_stage(block, width, n, strides[i], rates))
            previous = dilations[i]
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        e = block.expansion
        self.channels: tuple[int, ...] = (stem_width, 64 * e, 128 * e, 256 * e, 512 * e)
        """Widths of ``[stem, c1, c2, c3, c4]``."""
        r = [2, 4]
        for s in strides[1:]:
            r.append(r[-1] * s)
        self.reductions: tuple[int, ...] = tuple(r)
        """Strides of ``[stem, c1, c2, c3, c4]`` relative to the input."""
        self.output_stride = output_stride
        _init_weights(self)

    def _make_stage(self, block: type[BasicBlock] | type[Bottleneck], width: int, n: int,
                    stride: int, rates: Sequence[int]) -> nn.Sequential:
        out = width * block.expansion
        downsample = None
        if stride != 1 or self._in != out:
            downsample = nn.Sequential(nn.Conv2d(self._in, out, 1, stride, bias=False),
                                       nn.BatchNorm2d(out))
        blocks = [block(self._in, width, stride, rates[0], downsample)]
        self._in = out
        blocks += [block(out, width, 1, r) for r in rates[1:]]
        return nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> list[Tensor]:
        stem = self.stem(x)
        c1 = self.layer1(self.maxpool(stem))
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return [stem, c1, c2, c3, c4]


def _init_weights(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def resnet(depth: int, in_channels: int = 1, output_stride: int = 32,
           multi_grid: Sequence[int] | None = None, deep_stem: bool = False) -> ResNet:
    """ResNet-``depth`` trunk (18, 34, 50, 101 or 152), randomly initialised."""
    try:
        block, layers = RESNET_DEPTHS[depth]
    except KeyError:
        raise ConfigError(f"ResNet depth must be one of {sorted(RESNET_DEPTHS)}, "
                          f"got {depth!r}") from None
    return ResNet(block, layers, in_channels, output_stride, multi_grid, deep_stem)
