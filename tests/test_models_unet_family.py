"""The U-Net family: U-Net, Attention U-Net, ResUNet++, MiniSeg, TransUNet.

Real forward/backward passes run at small sizes on the CPU; parameter and MAC counts at
880x880 run on the meta device (no memory, no arithmetic), against models.md's figures.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from spineseg_core.errors import ConfigError
from spineseg_core.models import Family, MultiOutput, build_model, model_info
from spineseg_core.models.attention_unet import AttentionGate
from spineseg_core.models.backbones.resnetv2 import ResNetV2, StdConv2d
from spineseg_core.models.transunet import ViTEncoder

MODELS = ("unet", "attention_unet", "resunetpp", "miniseg", "transunet")

# models.md: parameters (M) and GMACs at 880x880 of the configurations matching Table 3.
EXPECTED = {
    "unet": (13.40, 365.0),
    "attention_unet": (34.88, 785.0),
    "resunetpp": (14.48, 834.0),
    "miniseg": (0.085, 1.53),
    "transunet": (107.45, 610.0),  # with the attention matmuls (the paper's 514 has none)
}

_CACHE: dict[str, nn.Module] = {}


def _model(name: str) -> nn.Module:
    """One default model per name for the whole module (TransUNet alone is 107 M weights)."""
    if name not in _CACHE:
        torch.manual_seed(0)
        _CACHE[name] = build_model(name)
    return _CACHE[name]


def _count(name: str, size: int = 880, **overrides) -> tuple[float, float]:
    """(params in M, GMACs) at ``size`` on the meta device."""
    with torch.device("meta"):
        model = build_model(name, **overrides).eval()
        x = torch.empty(1, 1, size, size)
    params = sum(p.numel() for p in model.parameters())
    with FlopCounterMode(display=False) as counter:
        model(x)
    return params / 1e6, counter.get_total_flops() / 2e9


def _first_conv(model: nn.Module) -> nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("name", MODELS)
def test_registry_entry(name: str) -> None:
    info = model_info(name)
    assert info.family is Family.UNET
    assert info.display_name == {"unet": "U-Net", "attention_unet": "Attention U-Net",
                                 "resunetpp": "ResUNet++", "miniseg": "MiniSeg",
                                 "transunet": "TransUNet"}[name]
    assert info.backbone == ("R50-ViT-B/16" if name == "transunet" else "")


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("batch,size", [(1, (64, 64)), (2, (72, 88))])
def test_train_step_shapes_and_gradients(name: str, batch: int, size: tuple[int, int]) -> None:
    model = _model(name).train()
    torch.manual_seed(1)
    x = torch.randn(batch, 1, *size)
    target = torch.randint(0, 20, (batch, *size))
    out = model(x)
    assert isinstance(out, MultiOutput)
    assert len(out.logits) == len(out.weights)
    for logits in out.logits:
        assert logits.shape == (batch, 20, *size)
        assert torch.isfinite(logits).all()
    loss = sum(w * F.cross_entropy(lg, target) for lg, w in zip(out.logits, out.weights))
    model.zero_grad(set_to_none=True)
    loss.backward()
    first = _first_conv(model)
    assert first.in_channels == 1
    assert first.weight.grad is not None
    assert torch.isfinite(first.weight.grad).all() and first.weight.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("batch,size", [(2, (64, 64)), (1, (72, 88))])
def test_eval_returns_main_logits(name: str, batch: int, size: tuple[int, int]) -> None:
    model = _model(name).eval()
    x = torch.randn(batch, 1, *size)
    with torch.no_grad():
        first, second = model(x), model(x)
    assert isinstance(first, torch.Tensor) and first.shape == (batch, 20, *size)
    assert torch.isfinite(first).all()
    assert torch.equal(first, second)  # no dropout or other randomness at evaluation


def test_miniseg_deep_supervision_weights() -> None:
    out = _model("miniseg").train()(torch.randn(1, 1, 64, 64))
    assert out.weights == (1.0, 0.4, 0.4, 0.4)
    assert len(out.logits) == 4
    assert build_model("miniseg", aux_weight=0.25).net.output_weights == (1.0, 0.25, 0.25, 0.25)


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_round_trip(name: str) -> None:
    source = _model(name)
    source.train()(torch.randn(2, 1, 64, 64))  # move BatchNorm statistics off their defaults
    source.eval()
    torch.manual_seed(123)
    copy = build_model(name).eval()
    copy.load_state_dict(source.state_dict())
    x = torch.randn(1, 1, 48, 80)
    with torch.no_grad():
        assert torch.equal(source(x), copy(x))


@pytest.mark.parametrize("name", MODELS)
def test_params_and_macs_match_models_md(name: str) -> None:
    params_m, gmacs = _count(name)
    want_params, want_gmacs = EXPECTED[name]
    assert params_m == pytest.approx(want_params, rel=0.03)
    assert gmacs == pytest.approx(want_gmacs, rel=0.05)


def test_named_variants_are_one_parameter_away() -> None:
    classic, _ = _count("unet", size=64, bilinear=False)
    assert classic == pytest.approx(31.04, rel=0.01)  # transposed convs, 1024 bottleneck
    authors, _ = _count("resunetpp", size=64, variant="authors")
    assert authors == pytest.approx(4.06, rel=0.01)  # the authors' Keras design, widths 16-256
    port_small, _ = _count("resunetpp", size=64, widths=(16, 32, 64, 128, 256))
    assert port_small == pytest.approx(3.63, rel=0.01)
    vit224, _ = _count("transunet", size=64, img_ref_size=224)
    assert vit224 == pytest.approx(107.45 - (55**2 - 14**2) * 768 / 1e6, rel=1e-4)


def test_resunetpp_authors_variant_trains() -> None:
    model = build_model("resunetpp", variant="authors").train()
    out = model(torch.randn(1, 1, 40, 56))
    out.main.mean().backward()
    assert out.main.shape == (1, 20, 40, 56)
    assert _first_conv(model).weight.grad.abs().sum() > 0


def test_unet_depth_changes_padding_multiple() -> None:
    model = build_model("unet", base_width=4, depth=2)
    assert model.pad_multiple == 4
    assert model.eval()(torch.randn(1, 1, 10, 14)).shape == (1, 20, 10, 14)


@pytest.mark.parametrize("name,overrides,word", [
    ("unet", {"depth": 0}, "depth"),
    ("attention_unet", {"base_width": 1}, "base_width"),
    ("resunetpp", {"widths": (8, 16)}, "widths"),
    ("resunetpp", {"variant": "keras"}, "variant must be one of port, authors"),
    ("miniseg", {"channels": (8, 22, 32, 64)}, "channels"),
    ("transunet", {"img_ref_size": 100}, "img_ref_size"),
    ("transunet", {"hidden": 100}, "divisible"),
    ("unet", {"no_such_option": 1}, "no_such_option"),
])
def test_bad_overrides_raise_config_error(name: str, overrides: dict, word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        build_model(name, **overrides)


def test_attention_gate_with_zero_logits_halves_the_skip() -> None:
    gate = AttentionGate(gate_channels=3, skip_channels=2, inner_channels=1).eval()
    conv = gate.psi[0]
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    x = torch.randn(1, 2, 4, 4)
    # psi = sigmoid(BN(0)) = sigmoid(0) = 0.5 everywhere with default BN statistics.
    torch.testing.assert_close(gate(torch.randn(1, 3, 4, 4), x), 0.5 * x)


def test_std_conv_standardises_each_filter() -> None:
    conv = StdConv2d(2, 3, 3, padding=1, bias=False)
    with torch.no_grad():  # weights large enough that the 1e-5 epsilon does not matter
        conv.weight.normal_(0.0, 3.0)
    x = torch.randn(1, 2, 5, 5)
    w = conv.weight.detach()
    mean = w.mean(dim=(1, 2, 3), keepdim=True)
    std = w.var(dim=(1, 2, 3), keepdim=True, unbiased=False).add(1e-5).sqrt()
    torch.testing.assert_close(conv(x), F.conv2d(x, (w - mean) / std, padding=1))
    with torch.no_grad():  # an affine change of the weights leaves the output (almost) unchanged
        y = conv(x)
        conv.weight.mul_(7.0).add_(3.0)
        torch.testing.assert_close(conv(x), y, atol=1e-5, rtol=1e-5)


def test_resnetv2_feature_strides_and_channels() -> None:
    net = ResNetV2(in_channels=1, layers=(1, 1, 1), width=32)
    feats = net(torch.randn(1, 1, 64, 96))
    assert [f.shape[1] for f in feats] == list(net.out_channels) == [32, 128, 256, 512]
    assert [tuple(f.shape[-2:]) for f in feats] == [(32, 48), (16, 24), (8, 12), (4, 6)]


def test_position_embeddings_resize_to_any_grid() -> None:
    vit = ViTEncoder(in_channels=4, ref_grid=5, hidden=8, layers=1, heads=2, mlp_dim=16)
    assert vit.position_embedding(5, 5) is vit.position
    with torch.no_grad():
        vit.position.fill_(0.25)
    resized = vit.position_embedding(3, 7)
    assert resized.shape == (1, 21, 8)
    torch.testing.assert_close(resized, torch.full((1, 21, 8), 0.25))
    assert vit(torch.randn(2, 4, 3, 7)).shape == (2, 8, 3, 7)
