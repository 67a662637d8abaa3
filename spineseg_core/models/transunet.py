"""TransUNet (Chen et al., 2021), R50-ViT-B/16 hybrid, trained from scratch.

A ResNetV2 (3, 4, 9) maps the image to a 1/16 grid of 1024 channels; a 1x1 patch embedding
turns every cell into a token for a ViT-B encoder (hidden 768, 12 layers, 12 heads, MLP 3072);
a cascaded upsampler (256, 128, 64, 16) with three ResNet skips (1/8, 1/4, 1/2) and a 3x3 head
gives full-resolution logits. 107.4 M parameters with position embeddings for an 880 px image;
~610 GMACs at 880 including the attention matmuls (the paper's 514 G, see models.md).

Learned position embeddings are stored for a reference grid (``img_ref_size / 16`` squared)
and resized bicubically to the actual grid, so any input size works. Attention runs through
``F.scaled_dot_product_attention``: at 880 px every layer attends over 3025 tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spineseg_core.errors import ConfigError
from spineseg_core.models.backbones.resnetv2 import ResNetV2
from spineseg_core.models.blocks import ConvBNReLU
from spineseg_core.models.registry import Family, register_model


class SelfAttention(nn.Module):
    """Multi-head self-attention with separate query, key, value and output projections."""

    def __init__(self, dim: int, heads: int, attn_dropout: float = 0.0,
                 proj_dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(f"transunet: hidden size {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.query, self.key, self.value, self.out = (nn.Linear(dim, dim) for _ in range(4))
        self.attn_dropout = attn_dropout
        self.proj_dropout = nn.Dropout(proj_dropout)

    def _split(self, t: Tensor) -> Tensor:
        n, length, dim = t.shape
        return t.view(n, length, self.heads, dim // self.heads).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = (self._split(f(x)) for f in (self.query, self.key, self.value))
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(x.shape)
        return self.proj_dropout(self.out(y))


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + attn(LN(x))``, then ``x + MLP(LN(x))`` with GELU."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float,
                 attn_dropout: float) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim, eps=1e-6)
        self.attention = SelfAttention(dim, heads, attn_dropout)
        self.ffn_norm = nn.LayerNorm(dim, eps=1e-6)
        self.ffn = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(mlp_dim, dim), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attention(self.attention_norm(x))
        return x + self.ffn(self.ffn_norm(x))


class ViTEncoder(nn.Module):
    """1x1 patch embedding of a feature map, resizable learned positions, transformer blocks."""

    def __init__(self, in_channels: int, ref_grid: int, *, hidden: int = 768, layers: int = 12,
                 heads: int = 12, mlp_dim: int = 3072, dropout: float = 0.1,
                 attn_dropout: float = 0.0) -> None:
        super().__init__()
        self.ref_grid = ref_grid
        self.patch_embed = nn.Conv2d(in_channels, hidden, 1)
        self.position = nn.Parameter(torch.zeros(1, ref_grid * ref_grid, hidden))
        nn.init.trunc_normal_(self.position, std=0.02)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(TransformerBlock(hidden, heads, mlp_dim, dropout,
                                                     attn_dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden, eps=1e-6)

    def position_embedding(self, h: int, w: int) -> Tensor:
        """Position embeddings for an ``h x w`` grid, ``(1, h*w, hidden)``."""
        pos = self.position
        if (h, w) == (self.ref_grid, self.ref_grid):
            return pos
        grid = pos.reshape(1, self.ref_grid, self.ref_grid, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
        return grid.flatten(2).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        tokens = self.dropout(tokens + self.position_embedding(h, w))
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens).transpose(1, 2).reshape(n, -1, h, w)


class DecoderBlock(nn.Module):
    """Bilinear x2, concatenate the skip (if any), two 3x3
    :class:`~spineseg_core.models.blocks.ConvBNReLU`."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(ConvBNReLU(in_channels + skip_channels, out_channels),
                                  ConvBNReLU(out_channels, out_channels))

    def forward(self, x: Tensor, skip: Tensor | None) -> Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv(x)


class TransUNet(nn.Module):
    """R50-ViT-B/16 TransUNet: ResNetV2 features, ViT on the 1/16 grid, cascaded upsampler."""

    pad_multiple = 16

    def __init__(self, in_channels: int = 1, num_classes: int = 20, *, img_ref_size: int = 880,
                 resnet_layers: Sequence[int] = (3, 4, 9), hidden: int = 768,
                 vit_layers: int = 12, heads: int = 12, mlp_dim: int = 3072,
                 decoder_channels: Sequence[int] = (256, 128, 64, 16), n_skip: int = 3,
                 dropout: float = 0.1) -> None:
        super().__init__()
        if len(resnet_layers) != 3:
            raise ConfigError(f"transunet: resnet_layers must have 3 stages (1/16 map), got "
                              f"{resnet_layers!r}")
        if img_ref_size < 16 or img_ref_size % 16:
            raise ConfigError(f"transunet: img_ref_size must be a positive multiple of 16, got "
                              f"{img_ref_size}")
        if len(decoder_channels) != 4 or not 0 <= n_skip <= 3:
            raise ConfigError(f"transunet: need 4 decoder_channels and 0 <= n_skip <= 3, got "
                              f"{decoder_channels!r}, n_skip={n_skip}")
        self.backbone = ResNetV2(in_channels, resnet_layers)
        self.n_skip = n_skip
        self.vit = ViTEncoder(self.backbone.out_channels[-1], img_ref_size // 16, hidden=hidden,
                              layers=vit_layers, heads=heads, mlp_dim=mlp_dim, dropout=dropout)
        self.conv_more = ConvBNReLU(hidden, 512)
        # Skips at 1/8, 1/4, 1/2 (the ResNet maps), none at full resolution.
        skip_channels = list(reversed(self.backbone.out_channels[:3])) + [0]
        skip_channels = [c if i < n_skip else 0 for i, c in enumerate(skip_channels)]
        ins = [512, *decoder_channels[:-1]]
        self.decoder = nn.ModuleList(DecoderBlock(i, s, o) for i, s, o in
                                     zip(ins, skip_channels, decoder_channels))
        self.head = nn.Conv2d(decoder_channels[-1], num_classes, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        feats = self.backbone(x)
        y = self.conv_more(self.vit(feats[-1]))
        skips: list[Tensor | None] = [*reversed(feats[:3]), None]
        for i, block in enumerate(self.decoder):
            y = block(y, skips[i] if i < self.n_skip else None)
        return self.head(y)


@register_model("transunet", display_name="TransUNet", family=Family.UNET, pad_multiple=16,
                backbone="R50-ViT-B/16")
def transunet(in_channels: int = 1, num_classes: int = 20, **overrides) -> nn.Module:
    """TransUNet R50-ViT-B/16, position embeddings for 880 px (107.4 M parameters)."""
    return TransUNet(in_channels, num_classes, **overrides)
