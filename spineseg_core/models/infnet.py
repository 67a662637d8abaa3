"""Inf-Net (Fan et al., IEEE TMI 2020) on a Res2Net-101 v1b backbone, adapted to 20 classes.

Structure (as the reference, ``channel=32``): receptive-field blocks (RFB) squeeze stages 2-4
to 32 channels; a parallel partial decoder aggregates them into a coarse map at stride 8; three
reverse-attention (RA) branches refine it top-down at strides 32, 16 and 8, each fed with the
backbone stage erased by the reverse attention and with the edge-guidance features (64 ch,
from stage 1); each RA branch predicts a residual added to the upsampled previous map.

**Multi-class reverse attention (our adaptation).** The reference is binary: it erases the
predicted foreground with ``1 - sigmoid(p)``. Here the erasing map is
``r = 1 - max_{c >= 1} softmax(p)_c`` — one minus the probability of the most likely
*foreground* class. Pixels confidently given to one structure are erased, while background
and pixels torn between classes (e.g. between two neighbouring vertebrae) stay, so each RA
branch again works on what the previous map missed. With one foreground class and a zero
background logit this reduces exactly to the reference's ``1 - sigmoid(p)``. The map is a single
channel broadcast over the stage's channels, so parameters are those of the reference.

**Outputs and loss weights.** Five outputs, all 20-class logits: ``[ra2 (main, stride 8),
partial decoder (stride 8), ra4 (stride 32), ra3 (stride 16), edge (stride 4)]``. The
reference sums the losses of all of them with weight 1.0; so do we. The reference supervises
the edge head with a binary edge map; the study's loss has one target, the label map, so here
the edge head is a 20-class deep-supervision head on the stage-1 features (its 64-channel
features still guide the RA branches, as in the reference). Evaluation uses ``ra2`` only, as the
reference's test script does.

**Input size.** Every resize inside the network goes to the size of the feature it meets, so
any input size works without padding (``pad_multiple=1``); at 880 px the stage sizes are
440, 220, 110, 55 and 28.

**Output stride.** The reference's encoder is undilated (stride 32, the default here);
``output_stride=16`` or ``8`` dilates the last one or two Res2Net stages instead of striding
them (as DANet's and PSANet's encoders do), so the reverse-attention branches of stages 3 and 4
work at stride 16 or 8: the study's one stride rule for every encoder
(:mod:`spineseg_core.models.stride`) needs the option on a small grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spineseg_core.models.backbones.res2net import res2net101_v1b
from spineseg_core.models.registry import Family, register_model


class ConvBN(nn.Sequential):
    """Convolution without bias followed by BatchNorm (no activation, as the reference)."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int],
                 padding: int | tuple[int, int] = 0, dilation: int = 1) -> None:
        super().__init__(nn.Conv2d(cin, cout, kernel, padding=padding, dilation=dilation,
                                   bias=False), nn.BatchNorm2d(cout))


class RFB(nn.Module):
    """Receptive-field block: four branches (1x1; 1xk, kx1, 3x3 at dilation k for k=3,5,7)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList([nn.Sequential(ConvBN(cin, cout, 1))])
        for k in (3, 5, 7):
            self.branches.append(nn.Sequential(
                ConvBN(cin, cout, 1),
                ConvBN(cout, cout, (1, k), padding=(0, k // 2)),
                ConvBN(cout, cout, (k, 1), padding=(k // 2, 0)),
                ConvBN(cout, cout, 3, padding=k, dilation=k)))
        self.fuse = ConvBN(4 * cout, cout, 3, padding=1)
        self.shortcut = ConvBN(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        y = self.fuse(torch.cat([b(x) for b in self.branches], dim=1))
        return F.relu(y + self.shortcut(x))


def _up(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=True)


class PartialDecoder(nn.Module):
    """Parallel partial decoder: multiplicative fusion of the three RFB outputs at stride 8."""

    def __init__(self, channel: int, num_classes: int) -> None:
        super().__init__()
        c = channel
        self.up1, self.up2, self.up3, self.up4 = (ConvBN(c, c, 3, padding=1) for _ in range(4))
        self.up5 = ConvBN(2 * c, 2 * c, 3, padding=1)
        self.cat2 = ConvBN(2 * c, 2 * c, 3, padding=1)
        self.cat3 = ConvBN(3 * c, 3 * c, 3, padding=1)
        self.conv4 = ConvBN(3 * c, 3 * c, 3, padding=1)
        self.conv5 = nn.Conv2d(3 * c, num_classes, 1)

    def forward(self, x4: Tensor, x3: Tensor, x2: Tensor) -> Tensor:
        x3_1 = self.up1(_up(x4, x3)) * x3
        x2_1 = self.up2(_up(x4, x2)) * self.up3(_up(x3, x2)) * x2
        x3_2 = self.cat2(torch.cat([x3_1, self.up4(_up(x4, x3))], dim=1))
        x2_2 = self.cat3(torch.cat([x2_1, self.up5(_up(x3_2, x2))], dim=1))
        return self.conv5(self.conv4(x2_2))


class ReverseAttention(nn.Module):
    """One RA branch: erase the stage by the reverse map, add edge features, predict a residual."""

    def __init__(self, cin: int, width: int, kernel: int, n_convs: int, num_classes: int,
                 edge_channels: int = 64) -> None:
        super().__init__()
        self.reduce = ConvBN(cin, width, 1)
        convs: list[nn.Module] = [ConvBN(width + edge_channels, width, kernel, padding=kernel // 2)]
        convs += [ConvBN(width, width, kernel, padding=kernel // 2) for _ in range(n_convs - 1)]
        self.convs = nn.ModuleList(convs)
        # The deepest branch ends with a 1x1 conv+BN, the others with a 3x3 conv+BN (reference).
        k_out = 1 if kernel == 5 else 3
        self.out = ConvBN(width, num_classes, k_out, padding=k_out // 2)

    @staticmethod
    def reverse_map(prior: Tensor) -> Tensor:
        """``1 - max_{c>=1} softmax(prior)_c``: erase what is confidently one structure."""
        return 1.0 - torch.softmax(prior, dim=1)[:, 1:].amax(dim=1, keepdim=True)

    def forward(self, feat: Tensor, prior: Tensor, edge: Tensor) -> Tensor:
        prior = F.interpolate(prior, size=feat.shape[-2:], mode="bilinear", align_corners=False)
        x = feat * self.reverse_map(prior)
        edge = F.interpolate(edge, size=feat.shape[-2:], mode="bilinear", align_corners=False)
        x = torch.cat([self.reduce(x), edge], dim=1)
        for conv in self.convs:
            x = F.relu(conv(x))
        return self.out(x) + prior


class InfNet(nn.Module):
    """Inf-Net with a Res2Net-101 v1b encoder; see the module docstring for the 20-class choices."""

    def __init__(self, in_channels: int = 1, num_classes: int = 20, channel: int = 32,
                 output_stride: int = 32) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"Inf-Net here needs num_classes >= 2 (background + classes), "
                             f"got {num_classes}")
        self.backbone = res2net101_v1b(in_channels=in_channels, output_stride=output_stride)
        self.rfb2, self.rfb3, self.rfb4 = RFB(512, channel), RFB(1024, channel), RFB(2048, channel)
        self.decoder = PartialDecoder(channel, num_classes)
        self.ra4 = ReverseAttention(2048, 256, kernel=5, n_convs=3, num_classes=num_classes)
        self.ra3 = ReverseAttention(1024, 64, kernel=3, n_convs=2, num_classes=num_classes)
        self.ra2 = ReverseAttention(512, 64, kernel=3, n_convs=2, num_classes=num_classes)
        self.edge = nn.Sequential(ConvBN(256, 64, 1), ConvBN(64, 64, 3, padding=1),
                                  ConvBN(64, 64, 3, padding=1))
        self.edge_head = ConvBN(64, num_classes, 3, padding=1)
        self.output_weights: list[float] = [1.0] * 5

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        _, c1, c2, c3, c4 = self.backbone(x)
        edge = self.edge(c1)
        coarse = self.decoder(self.rfb4(c4), self.rfb3(c3), self.rfb2(c2))
        p4 = self.ra4(c4, coarse, edge)
        p3 = self.ra3(c3, p4, edge)
        p2 = self.ra2(c2, p3, edge)
        if not self.training:
            return p2
        return [p2, coarse, p4, p3, self.edge_head(edge)]


@register_model("infnet", display_name="Inf-Net", family=Family.BACKBONE, pad_multiple=1,
                backbone="Res2Net-101")
def infnet(in_channels: int = 1, num_classes: int = 20, **overrides) -> nn.Module:
    """Inf-Net: Res2Net-101 v1b, RFB, partial decoder, 3 reverse-attention levels, edge branch."""
    return InfNet(in_channels=in_channels, num_classes=num_classes, **overrides)
