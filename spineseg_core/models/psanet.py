"""PSANet (Zhao et al., ECCV 2018) on a dilated Res2Net-101 v1b, in plain PyTorch.

Point-wise spatial attention, bi-directional ("collect" + "distribute", ``psa_type=2`` of the
reference): two branches reduce the stride-8 features to 512 channels, shrink them by 2, and
predict at every position ``p`` a mask of ``mask_h x mask_w`` logits centred on ``p``. The
reference re-indexes that mask into an ``(H*W) x (H*W)`` attention matrix with a custom CUDA op
(``psa_mask``). Here the same re-indexing is an index gather with indices precomputed once per
feature size (:func:`psa_indices`) and kept in non-persistent buffers of the module, so the
model runs on any device, including ``meta`` for counting; the buffers move with the module,
are built once per feature size outside ``torch.compile``'s graph (not rebuilt and copied every
step) and die with the model (no global cache holding GPU memory across models):

* collect: ``A[q, p] = y[mask(q - p), p]`` — position ``p`` gathers from ``q``;
* distribute: ``A[q, p] = y[mask(p - q), q]`` — position ``q`` hands its value out to ``p``;

where ``mask(d)`` is the mask channel of offset ``d`` from the centre. Offsets outside the mask
get logit 0, as the reference's zero-initialised buffer does, then a softmax runs over ``q``.

The mask size follows the reference's rule from the training crop (``crop_size``, 880 by
default, the study's most common slice size): features ``ceil(880/8) = 110``, shrunk to
``(110 - 1) // 2 + 1 = 55``, mask ``2 * 55 - 1 = 109`` — every position sees the whole map.
An auxiliary FCN head on stage 3 is trained with weight 0.4, as the reference does. Its
2.37 M parameters are not in the paper's 78.96 M (Table 3 matches the model without it), so the
project's budget compares PSANet's *inference* parameters.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spineseg_core.models.backbones.res2net import res2net101_v1b
from spineseg_core.models.registry import Family, register_model


def psa_indices(h: int, w: int, mask_h: int, mask_w: int,
                device: str = "cpu") -> tuple[Tensor, Tensor]:
    """Flat gather indices ``(collect, distribute)`` of the PSA mask re-indexing.

    For a mask tensor ``y`` of shape ``(N, mask_h * mask_w, h, w)`` flattened to
    ``(N, mask_h * mask_w * h * w)`` with one zero appended, ``y_flat[:, idx].view(N, L, L)``
    (``L = h * w``) is the attention matrix ``A[q, p]`` of the module docstring. On the ``meta``
    device the indices are shape-only.
    """
    n = h * w
    if torch.device(device).type == "meta":
        empty = torch.empty(n * n, dtype=torch.long, device=device)
        return empty, empty
    rows = torch.arange(h).repeat_interleave(w)
    cols = torch.arange(w).repeat(h)
    dh = rows[:, None] - rows[None, :] + (mask_h - 1) // 2   # [q, p]: offset of q from p
    dw = cols[:, None] - cols[None, :] + (mask_w - 1) // 2
    valid = (dh >= 0) & (dh < mask_h) & (dw >= 0) & (dw < mask_w)
    channel = dh * mask_w + dw
    zero_slot = mask_h * mask_w * n
    pos = torch.arange(n)
    collect = torch.where(valid, channel * n + pos[None, :], zero_slot)
    distribute = torch.where(valid.T, channel.T * n + pos[:, None], zero_slot)
    return collect.reshape(-1).to(device), distribute.reshape(-1).to(device)


def psa_attention(y: Tensor, index: Tensor) -> Tensor:
    """Re-index mask logits ``(N, M, h, w)`` into the ``(N, h*w, h*w)`` attention matrix."""
    n_batch, _, h, w = y.shape
    flat = torch.cat([y.reshape(n_batch, -1), y.new_zeros(n_batch, 1)], dim=1)
    return flat.index_select(1, index).view(n_batch, h * w, h * w)


def _conv_bn_relu(cin: int, cout: int, kernel: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class PointwiseSpatialAttention(nn.Module):
    """Bi-directional PSA module; returns ``cat(x, proj(cat(collect, distribute)))``."""

    def __init__(self, in_channels: int = 2048, mid_channels: int = 512, *,
                 mask_size: tuple[int, int] = (109, 109), shrink_factor: int = 2,
                 normalization_factor: float = 1.0) -> None:
        super().__init__()
        mask_h, mask_w = mask_size
        if mask_h % 2 == 0 or mask_w % 2 == 0 or min(mask_size) < 3:
            raise ValueError(f"PSA mask size must be odd and >= 3, got {mask_size}")
        if shrink_factor < 1:
            raise ValueError(f"shrink_factor must be >= 1, got {shrink_factor}")
        self.mask_size = (mask_h, mask_w)
        self.shrink_factor = shrink_factor
        self.normalization_factor = normalization_factor
        self.reduce_collect = _conv_bn_relu(in_channels, mid_channels)
        self.reduce_distribute = _conv_bn_relu(in_channels, mid_channels)
        self.attention_collect = nn.Sequential(
            _conv_bn_relu(mid_channels, mid_channels),
            nn.Conv2d(mid_channels, mask_h * mask_w, 1, bias=False))
        self.attention_distribute = nn.Sequential(
            _conv_bn_relu(mid_channels, mid_channels),
            nn.Conv2d(mid_channels, mask_h * mask_w, 1, bias=False))
        self.proj = _conv_bn_relu(2 * mid_channels, in_channels)
        # The gather indices of the current feature size (psa_indices); not in the state dict.
        self.register_buffer("index_collect", torch.empty(0, dtype=torch.long), persistent=False)
        self.register_buffer("index_distribute", torch.empty(0, dtype=torch.long),
                             persistent=False)
        self.index_size: tuple[int, int] | None = None

    @torch.compiler.disable
    def _build_indices(self, h: int, w: int, device: torch.device) -> None:
        self.index_collect, self.index_distribute = psa_indices(h, w, *self.mask_size,
                                                                device=str(device))
        self.index_size = (h, w)

    def indices(self, h: int, w: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """The ``(collect, distribute)`` indices of an ``h`` x ``w`` shrunk feature map on
        ``device``, built into the buffers when the size or device changed."""
        if self.index_size != (h, w) or self.index_collect.device != device:
            self._build_indices(h, w, device)
        return self.index_collect, self.index_distribute

    def _branch(self, x: Tensor, reduce: nn.Module, attention: nn.Module, which: int) -> Tensor:
        x = reduce(x)
        h, w = x.shape[-2:]
        s = self.shrink_factor
        if s != 1:
            h, w = (h - 1) // s + 1, (w - 1) // s + 1
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=True)
        index = self.indices(h, w, x.device)[which]
        attn = torch.softmax(psa_attention(attention(x), index), dim=1)
        n, c = x.shape[:2]
        out = torch.bmm(x.reshape(n, c, h * w), attn).view(n, c, h, w)
        return out * (1.0 / self.normalization_factor)

    def forward(self, x: Tensor) -> Tensor:
        collect = self._branch(x, self.reduce_collect, self.attention_collect, 0)
        distribute = self._branch(x, self.reduce_distribute, self.attention_distribute, 1)
        y = self.proj(torch.cat([collect, distribute], dim=1))
        y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=True)
        return torch.cat([x, y], dim=1)


def _fcn_head(cin: int, mid: int, num_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(_conv_bn_relu(cin, mid, 3), nn.Dropout2d(dropout),
                         nn.Conv2d(mid, num_classes, 1))


def psa_mask_size(crop_size: int, output_stride: int = 8, shrink_factor: int = 2) -> int:
    """The reference's mask size for a square training crop: ``2 * shrunk_feature - 1``."""
    feature = math.ceil(crop_size / output_stride)
    return 2 * ((feature - 1) // shrink_factor + 1) - 1


class PSANet(nn.Module):
    """PSANet: dilated Res2Net-101 (stride 8), bi-directional PSA, FCN classifier, aux head."""

    def __init__(self, in_channels: int = 1, num_classes: int = 20, *, crop_size: int = 880,
                 output_stride: int = 8, shrink_factor: int = 2, mid_channels: int = 512,
                 dropout: float = 0.1, aux_weight: float = 0.4) -> None:
        super().__init__()
        self.backbone = res2net101_v1b(in_channels=in_channels, output_stride=output_stride)
        mask = psa_mask_size(crop_size, output_stride, shrink_factor)
        self.psa = PointwiseSpatialAttention(2048, mid_channels, mask_size=(mask, mask),
                                             shrink_factor=shrink_factor)
        self.cls = _fcn_head(4096, 512, num_classes, dropout)
        self.aux = _fcn_head(1024, 256, num_classes, dropout)
        self.output_weights: list[float] = [1.0, aux_weight]

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        *_, c3, c4 = self.backbone(x)
        main = self.cls(self.psa(c4))
        if not self.training:
            return main
        return [main, self.aux(c3)]


@register_model("psanet", display_name="PSANet", family=Family.BACKBONE, pad_multiple=8,
                backbone="Res2Net-101")
def psanet(in_channels: int = 1, num_classes: int = 20, **overrides) -> nn.Module:
    """PSANet: dilated Res2Net-101 v1b (stride 8), bi-directional point-wise spatial attention."""
    return PSANet(in_channels=in_channels, num_classes=num_classes, **overrides)
