"""The contract every model of the study keeps, and the wrapper that enforces it.

An *inner* network (one of the twelve architectures) maps ``(N, C_in, H, W)`` to logits. In
training mode it may return a list ``[main, aux1, aux2, ...]`` and then carries the attribute
``output_weights`` (same length) with the loss weight of each output, as its reference
implementation trains it. Outputs may be at a lower resolution than the input.

:class:`SegmentationModel` wraps an inner network so that any input size works: it pads the
input to the multiple the architecture needs, upsamples every output to the padded size and
crops back. In evaluation mode it always returns the main ``(N, num_classes, H, W)`` logits;
in training mode it returns a :class:`MultiOutput` (logits plus weights; a single output has
weight 1.0), which the loss module consumes. :class:`VolumeSegmentationModel` keeps the same
contract for a 3D network, over ``(N, C_in, D, H, W)`` volumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor, nn


class MultiOutput(NamedTuple):
    """Training-time outputs: logits at input size, each with its loss weight."""

    logits: tuple[Tensor, ...]
    weights: tuple[float, ...]

    @property
    def main(self) -> Tensor:
        return self.logits[0]


class SegmentationModel(nn.Module):
    """Pad-to-multiple, resize-outputs, crop-back wrapper around an inner 2D network.

    ``pad_multiple`` is one multiple for every spatial axis, or one per axis."""

    spatial_dims = 2
    _AXES = "H, W"
    _RESIZE = "bilinear"

    def __init__(self, net: nn.Module, *, name: str, pad_multiple: int | Sequence[int] = 1,
                 num_classes: int = 20, in_channels: int = 1) -> None:
        super().__init__()
        multiples = ((int(pad_multiple),) * self.spatial_dims if isinstance(pad_multiple, int)
                     else tuple(int(m) for m in pad_multiple))
        if len(multiples) != self.spatial_dims or min(multiples) < 1:
            raise ValueError(f"pad_multiple must be >= 1 (one, or one per axis of "
                             f"{self._AXES}), got {pad_multiple}")
        self.net = net
        self.name = name
        self.pad_multiple = pad_multiple
        self._multiples = multiples
        self.num_classes = num_classes
        self.in_channels = in_channels

    def forward(self, x: Tensor) -> Tensor | MultiOutput:
        if x.ndim != 2 + self.spatial_dims or x.shape[1] != self.in_channels:
            raise ValueError(f"{self.name}: expected input (N, {self.in_channels}, "
                             f"{self._AXES}), got {tuple(x.shape)}")
        shape = tuple(x.shape[2:])
        pads = self._pads(shape)
        if any(pads):
            # Zero padding: inputs are normalised so that background air is ~0. F.pad takes
            # (before, after) pairs from the last axis backwards.
            x = F.pad(x, [v for p in reversed(pads) for v in (0, p)])
        out = self.net(x)
        outs: Sequence[Tensor] = out if isinstance(out, (list, tuple)) else [out]
        if not self.training:
            outs = outs[:1]  # evaluation scores the main output only: resize just that one
        size = x.shape[2:]
        outs = [o if o.shape[2:] == size else
                F.interpolate(o, size=size, mode=self._RESIZE, align_corners=False)
                for o in outs]
        crop = (slice(None), slice(None), *(slice(0, n) for n in shape))
        outs = [o[crop] for o in outs]
        if not self.training:
            return outs[0]
        weights = tuple(getattr(self.net, "output_weights", None) or (1.0,) * len(outs))
        if len(weights) != len(outs):
            raise RuntimeError(f"{self.name}: {len(outs)} outputs but {len(weights)} weights")
        return MultiOutput(tuple(outs), tuple(float(w) for w in weights))

    def _pads(self, shape: tuple[int, ...]) -> list[int]:
        """Zeros added after each spatial axis of an input of ``shape``."""
        return [(-n) % m for n, m in zip(shape, self._multiples)]

    def init_kwargs(self) -> dict:
        """Arguments that rebuild this model with :func:`build_model` (stored in checkpoints)."""
        return dict(getattr(self, "_build_kwargs", {}))


class VolumeSegmentationModel(SegmentationModel):
    """The same wrapper around an inner 3D network: ``(N, C_in, D, H, W)`` volumes in, logits of
    the same size out (trilinear resize of lower-resolution outputs)."""

    spatial_dims = 3
    _AXES = "D, H, W"
    _RESIZE = "trilinear"

    def __init__(self, net: nn.Module, *, name: str, pad_multiple: int | Sequence[int] = 1,
                 num_classes: int = 20, in_channels: int = 1, min_depth: int = 1) -> None:
        """``min_depth``: a volume of fewer slices gets zero slices after its own up to this
        depth before the multiple's padding. Training pads every volume of a batch to the
        deepest training volume (:class:`~spineseg_core.data.slices.VolumeDataset`), so the
        network only ever saw a shallower volume followed by zero slices; a scored volume
        comes alone at its own depth, and without this padding its last slices meet a
        boundary the network never trained on (a 12-slice volume's last slice was painted
        with levels by a 3D U-Net trained among 15-slice ones). The trainer sets it to the
        training depth, and the checkpoint's build arguments carry it to prediction."""
        super().__init__(net, name=name, pad_multiple=pad_multiple, num_classes=num_classes,
                         in_channels=in_channels)
        if int(min_depth) < 1:
            raise ValueError(f"{name}: min_depth must be >= 1, got {min_depth}")
        self.min_depth = int(min_depth)

    def _pads(self, shape: tuple[int, ...]) -> list[int]:
        depth = max(shape[0], self.min_depth)
        return [depth - shape[0] + (-depth) % self._multiples[0], *super()._pads(shape)[1:]]
