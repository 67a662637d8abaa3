"""Res2Net-101 backbone, Inf-Net's multi-class reverse attention and PSANet's mask re-indexing."""

from __future__ import annotations

import pytest
import torch

from spineseg_core.measure.efficiency import count_macs
from spineseg_core.models import build_model
from spineseg_core.models.backbones.res2net import RES2NET_DEPTHS, Res2Net, res2net101_v1b
from spineseg_core.models.infnet import ReverseAttention
from spineseg_core.models.psanet import psa_attention, psa_indices, psa_mask_size


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_res2net_matches_published_sizes() -> None:
    # Published ImageNet models (3 channels, 1000-way fc = 2048*1000 + 1000 parameters):
    # Res2Net-50 v1b 26w4s 25.72 M, Res2Net-101 v1b 26w4s 45.21 M.
    fc = 2048 * 1000 + 1000
    with torch.device("meta"):
        r50 = Res2Net(RES2NET_DEPTHS[50], in_channels=3)
        r101 = res2net101_v1b(in_channels=3)
    assert (_n_params(r50) + fc) / 1e6 == pytest.approx(25.72, abs=0.01)
    assert (_n_params(r101) + fc) / 1e6 == pytest.approx(45.21, rel=0.002)


@pytest.mark.parametrize("output_stride, strides", [(32, (4, 4, 8, 16, 32)),
                                                    (16, (4, 4, 8, 16, 16)),
                                                    (8, (4, 4, 8, 8, 8))])
def test_res2net_output_stride(output_stride: int, strides: tuple[int, ...]) -> None:
    with torch.device("meta"):
        net = res2net101_v1b(output_stride=output_stride).eval()
        feats = net(torch.empty(1, 1, 256, 256))
    assert [f.shape[1] for f in feats] == [64, 256, 512, 1024, 2048]
    assert [256 // f.shape[-1] for f in feats] == list(strides)


def test_res2net_rejects_bad_stride() -> None:
    with pytest.raises(ValueError, match="output_stride"):
        res2net101_v1b(output_stride=4)


def test_reverse_attention_reduces_to_binary_reference() -> None:
    # With logits [0, p] (background, one class), 1 - max fg softmax = 1 - sigmoid(p).
    p = torch.randn(2, 1, 5, 5)
    logits = torch.cat([torch.zeros_like(p), p], dim=1)
    torch.testing.assert_close(ReverseAttention.reverse_map(logits), 1 - torch.sigmoid(p))


def test_reverse_attention_erases_confident_structures() -> None:
    logits = torch.zeros(1, 20, 1, 3)
    logits[0, 5, 0, 0] = 20.0   # confidently vertebra -> erased
    logits[0, 0, 0, 1] = 20.0   # confidently background -> kept
    logits[0, 3, 0, 2] = logits[0, 4, 0, 2] = 20.0  # torn between two classes -> half kept
    r = ReverseAttention.reverse_map(logits)[0, 0, 0]
    assert r[0] < 1e-6 and r[1] > 1 - 1e-6 and r[2] == pytest.approx(0.5, abs=1e-6)


def test_infnet_five_outputs_with_unit_weights() -> None:
    torch.manual_seed(0)
    model = build_model("infnet").train()
    out = model(torch.randn(1, 1, 64, 64))
    assert len(out.logits) == 5 and out.weights == (1.0,) * 5


def _psa_mask_loop(y: torch.Tensor, kind: int, mask_h: int, mask_w: int) -> torch.Tensor:
    """The reference CUDA op's semantics, written as loops (kind 0 collect, 1 distribute)."""
    n, _, h, w = y.shape
    out = torch.zeros(n, h * w, h, w)
    half_h, half_w = (mask_h - 1) // 2, (mask_w - 1) // 2
    for i in range(h):
        for j in range(w):
            for a in range(mask_h):
                for b in range(mask_w):
                    i2, j2 = i + a - half_h, j + b - half_w
                    if 0 <= i2 < h and 0 <= j2 < w:
                        if kind == 0:
                            out[:, i2 * w + j2, i, j] = y[:, a * mask_w + b, i, j]
                        else:
                            out[:, i * w + j, i2, j2] = y[:, a * mask_w + b, i, j]
    return out.view(n, h * w, h * w)


@pytest.mark.parametrize("h, w, mask_h, mask_w", [(3, 4, 5, 7), (4, 4, 3, 3), (5, 3, 9, 5)])
@pytest.mark.parametrize("kind", [0, 1])
def test_psa_gather_matches_reference_op(h: int, w: int, mask_h: int, mask_w: int,
                                         kind: int) -> None:
    torch.manual_seed(0)
    y = torch.randn(2, mask_h * mask_w, h, w)
    got = psa_attention(y, psa_indices(h, w, mask_h, mask_w)[kind])
    assert torch.equal(got, _psa_mask_loop(y, kind, mask_h, mask_w))


def test_psa_mask_size_rule() -> None:
    # 880 px -> stride-8 features 110 -> shrunk 55 -> mask 109; the reference's 473 crop -> 59.
    assert psa_mask_size(880) == 109
    assert psa_mask_size(473) == 59


def test_psanet_counts_on_meta_and_weights() -> None:
    assert count_macs("psanet", size=880) / 1e9 == pytest.approx(843.6, rel=0.01)
    torch.manual_seed(0)
    out = build_model("psanet").train()(torch.randn(1, 1, 64, 64))
    assert out.weights == (1.0, 0.4)
