"""The contract every model of the study keeps, and the wrapper that enforces it.

An *inner* network (one of the twelve architectures) maps ``(N, C_in, H, W)`` to logits. In
training mode it may return a list ``[main, aux1, aux2, ...]`` and then carries the attribute
``output_weights`` (same length) with the loss weight of each output, as its reference
implementation trains it. Outputs may be at a lower resolution than the input.

:class:`SegmentationModel` wraps an inner network so that any input size works: it pads the
input to the multiple the architecture needs, upsamples every output to the padded size and
crops back. In evaluation mode it always returns the main ``(N, num_classes, H, W)`` logits;
in training mode it returns a :class:`MultiOutput` (logits plus weights; a single output has
weight 1.0), which the loss module consumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
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
    """Pad-to-multiple, resize-outputs, crop-back wrapper around an inner network."""

    def __init__(self, net: nn.Module, *, name: str, pad_multiple: int = 1,
                 num_classes: int = 20, in_channels: int = 1) -> None:
        super().__init__()
        if pad_multiple < 1:
            raise ValueError(f"pad_multiple must be >= 1, got {pad_multiple}")
        self.net = net
        self.name = name
        self.pad_multiple = pad_multiple
        self.num_classes = num_classes
        self.in_channels = in_channels

    def forward(self, x: Tensor) -> Tensor | MultiOutput:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self.name}: expected input (N, {self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        m = self.pad_multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            # Zero padding: inputs are normalised so that background air is ~0.
            x = F.pad(x, (0, pw, 0, ph))
        out = self.net(x)
        outs: Sequence[Tensor] = out if isinstance(out, (list, tuple)) else [out]
        if not self.training:
            outs = outs[:1]  # evaluation scores the main output only: resize just that one
        size = x.shape[-2:]
        outs = [o if o.shape[-2:] == size else
                F.interpolate(o, size=size, mode="bilinear", align_corners=False) for o in outs]
        outs = [o[..., :h, :w] for o in outs]
        if not self.training:
            return outs[0]
        weights = tuple(getattr(self.net, "output_weights", None) or (1.0,) * len(outs))
        if len(weights) != len(outs):
            raise RuntimeError(f"{self.name}: {len(outs)} outputs but {len(weights)} weights")
        return MultiOutput(tuple(outs), tuple(float(w) for w in weights))

    def init_kwargs(self) -> dict:
        """Arguments that rebuild this model with :func:`build_model` (stored in checkpoints)."""
        return dict(getattr(self, "_build_kwargs", {}))
