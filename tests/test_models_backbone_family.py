"""The backbone models PSPNet, DeepLabv3+, DenseASPP, DANet, EMANet and their backbones.

Real forward/backward passes run at 64x64 and 72x88 on the CPU; parameter and MAC counts at
880x880 run on the meta device, against models.md's figures (params within 3 %, MACs 5 %).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from spineseg_core.errors import ConfigError
from spineseg_core.measure.efficiency import count_params
from spineseg_core.models import Family, MultiOutput, build_model, model_info
from spineseg_core.models.backbones.densenet import densenet
from spineseg_core.models.backbones.resnet import resnet
from spineseg_core.models.blocks import ASPP, PooledBranch
from spineseg_core.models.danet import ChannelAttention, PositionAttention
from spineseg_core.models.emanet import EMAttention

MODELS = ("pspnet", "deeplabv3plus", "denseaspp", "danet", "emanet")
DISPLAY = {"pspnet": "PSPNet", "deeplabv3plus": "DeepLabv3+", "denseaspp": "DenseASPP",
           "danet": "DANet", "emanet": "EMANet"}

# (name, overrides): configurations exercised by the forward tests (PSPNet-101's full run is
# slow on a CPU; its head is the classic one, checked quickly in test_pspnet101_aux_head).
CONFIGS = [pytest.param(m, {}, id=m) for m in MODELS] + [
    pytest.param("pspnet", {"backbone_depth": 101}, id="pspnet-101", marks=pytest.mark.slow)]
WEIGHTS = {"pspnet": (1.0,), "deeplabv3plus": (1.0,), "denseaspp": (1.0,),
           "danet": (1.0, 1.0, 1.0), "emanet": (1.0,), "pspnet-101": (1.0, 0.4)}

# models.md: inference parameters (M) and GMACs at 880x880; None where it gives no figure.
EXPECTED = [
    ("pspnet", {}, 27.57, 470.0),
    ("pspnet", {"backbone_depth": 101}, 65.7, 787.0),
    ("deeplabv3plus", {}, 59.34, 261.0),
    ("denseaspp", {}, 18.42, 123.0),
    ("denseaspp", {"output_stride": 8}, None, 236.0),
    ("danet", {}, 66.45, 139.0),
    ("danet", {"output_stride": 8}, 66.45, 904.0),
    ("emanet", {}, 53.77, 682.0),
]


def _key(name: str, overrides: dict) -> str:
    return "pspnet-101" if overrides.get("backbone_depth") == 101 else name


def _ids(configs: list) -> list[str]:
    return [_key(c[0], c[1]) + "".join(f"-{k}={v}" for k, v in c[1].items()
                                       if k != "backbone_depth") for c in configs]


_CACHE: dict[str, nn.Module] = {}


def _model(name: str, overrides: dict) -> nn.Module:
    key = _key(name, overrides)
    if key not in _CACHE:
        torch.manual_seed(0)
        _CACHE[key] = build_model(name, **overrides)
    return _CACHE[key]


@pytest.mark.parametrize("name", MODELS)
def test_registry_entry(name: str) -> None:
    info = model_info(name)
    assert info.display_name == DISPLAY[name]
    assert info.family is Family.BACKBONE
    assert info.backbone


@pytest.mark.parametrize(("name", "overrides"), CONFIGS)
def test_forward_shapes_weights_finite_and_gradients(name: str, overrides: dict) -> None:
    """Eval and train forwards at (N, H, W) = (2, 64, 64) and (1, 72, 88); one backward."""
    model = _model(name, overrides)
    weights = WEIGHTS[_key(name, overrides)]
    torch.manual_seed(1)
    for n, h, w in ((2, 64, 64), (1, 72, 88)):
        x = torch.randn(n, 1, h, w)
        with torch.no_grad():
            model.eval()
            y = model(x)
            assert isinstance(y, torch.Tensor) and y.shape == (n, 20, h, w)
            assert torch.isfinite(y).all()
            model.train()
            out = model(torch.randn(3 - n, 1, h, w))
            assert isinstance(out, MultiOutput) and out.weights == weights
            assert all(lg.shape == (3 - n, 20, h, w) and torch.isfinite(lg).all()
                       for lg in out.logits)
    model.zero_grad()
    out = model(torch.randn(1, 1, 64, 64))
    target = torch.randint(0, 20, (1, 64, 64))
    loss = sum(wt * F.cross_entropy(lg, target) for lg, wt in zip(out.logits, out.weights))
    loss.backward()
    first = model.net.backbone.stem[0]
    assert isinstance(first, nn.Conv2d) and first.in_channels == 1
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0
    model.zero_grad()
    model.eval()


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_round_trip(name: str) -> None:
    model = _model(name, {}).eval()
    torch.manual_seed(123)
    other = build_model(name).eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        before = model(x)
        assert not torch.equal(before, other(x))
        other.load_state_dict(model.state_dict())
        assert torch.equal(before, other(x))


def test_pspnet101_aux_head() -> None:
    model = _model("pspnet", {"backbone_depth": 101})
    aux = sum(p.numel() for p in model.net.aux.parameters())
    assert aux == 1024 * 256 * 9 + 2 * 256 + 256 * 20 + 20
    assert count_params(model) - count_params(model, scope="inference") == aux
    with torch.no_grad():
        out = model.train()(torch.randn(1, 1, 48, 40))
        assert out.weights == (1.0, 0.4)
        assert [lg.shape for lg in out.logits] == [(1, 20, 48, 40)] * 2
        assert not torch.allclose(out.logits[0], out.logits[1])
        assert model.eval()(torch.randn(1, 1, 48, 40)).shape == (1, 20, 48, 40)
    default = _model("pspnet", {})
    assert default.net.aux is None


def test_danet_aux_outputs_are_the_two_branches() -> None:
    model = _model("danet", {}).train()
    torch.manual_seed(3)
    x = torch.randn(2, 1, 64, 64)
    out = model(x)
    assert len(out.logits) == 3
    assert not torch.allclose(out.logits[1], out.logits[2])
    model.eval()


def test_emanet_bases_move_in_training_only() -> None:
    model = _model("emanet", {})
    emau = model.net.emau
    assert "net.emau.mu" in model.state_dict()
    assert not emau.mu.requires_grad
    torch.manual_seed(4)
    x = torch.randn(2, 1, 64, 64)
    model.eval()
    before = emau.mu.clone()
    with torch.no_grad():
        model(x)
    assert torch.equal(emau.mu, before)
    model.train()
    with torch.no_grad():
        model(x)
    assert not torch.allclose(emau.mu, before)
    assert torch.allclose(emau.mu.norm(dim=1), torch.ones(1, emau.mu.shape[2]), atol=1e-4)
    model.eval()


def test_em_attention_update_is_the_moving_average() -> None:
    torch.manual_seed(5)
    unit = EMAttention(8, bases=4, iterations=1, momentum=0.9)
    old = unit.mu.clone()
    x = torch.randn(2, 8, 3, 5)
    unit.train()
    with torch.no_grad():
        feat = unit.conv1(x).flatten(2)
        z = torch.softmax(torch.einsum("bcn,bck->bnk", feat, old.expand(2, -1, -1)), dim=2)
        mu = torch.einsum("bcn,bnk->bck", feat, z / z.sum(dim=1, keepdim=True))
        mu = mu / mu.norm(dim=1, keepdim=True)
        mean = mu.mean(dim=0, keepdim=True)
        expected = 0.9 * old + 0.1 * mean / mean.norm(dim=1, keepdim=True)
        expected = expected / expected.norm(dim=1, keepdim=True)
        unit(x)
    torch.testing.assert_close(unit.mu, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("name", "overrides", "params_m", "gmacs"), EXPECTED,
                         ids=_ids([(e[0], e[1]) for e in EXPECTED]))
def test_params_and_macs_match_models_md(name: str, overrides: dict, params_m: float | None,
                                         gmacs: float) -> None:
    with torch.device("meta"):
        model = build_model(name, **overrides).eval()
        x = torch.empty(1, 1, 880, 880)
    if params_m is not None:
        params = count_params(model, scope="inference") / 1e6
        assert params == pytest.approx(params_m, rel=0.03)
    with FlopCounterMode(display=False) as counter:
        model(x)
    assert counter.get_total_flops() / 2e9 == pytest.approx(gmacs, rel=0.05)


def test_position_attention_is_unscaled_softmax_attention() -> None:
    torch.manual_seed(6)
    pam = PositionAttention(16, key_channels=4)
    nn.init.constant_(pam.gamma, 0.5)
    x = torch.randn(2, 16, 3, 4)
    q = pam.query(x).flatten(2)
    k = pam.key(x).flatten(2)
    v = pam.value(x).flatten(2)
    attention = torch.softmax(q.transpose(1, 2) @ k, dim=-1)
    expected = x + 0.5 * (v @ attention.transpose(1, 2)).reshape(2, 16, 3, 4)
    torch.testing.assert_close(pam(x), expected)


def test_channel_attention_matches_the_max_minus_energy_form() -> None:
    torch.manual_seed(7)
    cam = ChannelAttention()
    nn.init.constant_(cam.gamma, 2.0)
    x = torch.randn(2, 6, 3, 4)
    f = x.flatten(2)
    energy = f @ f.transpose(1, 2)
    attention = torch.softmax(energy.max(dim=-1, keepdim=True).values - energy, dim=-1)
    expected = x + 2.0 * (attention @ f).reshape(2, 6, 3, 4)
    torch.testing.assert_close(cam(x), expected)


@pytest.mark.parametrize(("stride", "sizes"), [(32, (32, 16, 8, 4, 2)), (16, (32, 16, 8, 4, 4)),
                                               (8, (32, 16, 8, 8, 8))])
def test_resnet_output_stride(stride: int, sizes: tuple[int, ...]) -> None:
    with torch.device("meta"):
        net = resnet(50, in_channels=1, output_stride=stride)
        feats = net(torch.empty(1, 1, 64, 64))
    assert [f.shape[-1] for f in feats] == list(sizes)
    assert [f.shape[1] for f in feats] == list(net.channels) == [64, 256, 512, 1024, 2048]
    assert tuple(64 // r for r in net.reductions) == sizes


def test_resnet_dilation_and_multi_grid() -> None:
    net = resnet(101, output_stride=16, multi_grid=(1, 2, 4))
    assert [b.conv2.dilation[0] for b in net.layer4] == [2, 4, 8]
    assert {b.conv2.dilation[0] for b in net.layer3} == {1}
    net = resnet(34, output_stride=8)
    assert [b.conv1.dilation[0] for b in net.layer3][:2] == [1, 2]
    assert [b.conv1.dilation[0] for b in net.layer4] == [2, 4, 4]
    deep = resnet(18, in_channels=3, deep_stem=True)
    assert deep.channels[0] == 128 and deep.stem[0].in_channels == 3


def test_resnet_params_match_the_classic_counts() -> None:
    # torchvision's ResNet-34/101 have 21.80 M / 44.55 M with the 1000-class fc (513,000 /
    # 2,049,000) and an RGB 7x7 stem (9,408; 3,136 with one channel).
    assert sum(p.numel() for p in resnet(34, in_channels=3).parameters()) == 21_797_672 - 513_000
    assert sum(p.numel() for p in resnet(101, in_channels=1).parameters()) == \
        44_549_160 - 2_049_000 - 6_272


def test_densenet169_matches_the_classic_count_and_strides() -> None:
    # torchvision's DenseNet-169: 14,149,480 parameters, classifier 1664 * 1000 + 1000.
    with torch.device("meta"):
        net = densenet(169, in_channels=3)
    assert sum(p.numel() for p in net.parameters()) == 14_149_480 - 1_665_000
    for stride, last in ((32, 2), (16, 4), (8, 8)):
        with torch.device("meta"):
            feats = densenet(121, output_stride=stride)(torch.empty(1, 1, 64, 64))
        assert feats[-1].shape[-1] == last
        assert [f.shape[1] for f in feats] == [64, 256, 512, 1024, 1024]


def test_pooled_branch_and_aspp_train_at_batch_one() -> None:
    branch = PooledBranch(8, 4, bins=1).train()
    assert isinstance(branch.norm, nn.Identity) and branch.conv.bias is not None
    y = branch(torch.randn(1, 8, 5, 7))
    assert y.shape == (1, 4, 5, 7)
    aspp = ASPP(8, 6, rates=(1, 2)).train()
    assert aspp(torch.randn(1, 8, 5, 7)).shape == (1, 6, 5, 7)


@pytest.mark.parametrize(("name", "overrides", "word"), [
    ("pspnet", {"backbone_depth": 33}, "depth"),
    ("pspnet", {"head": "fancy"}, "head"),
    ("deeplabv3plus", {"output_stride": 32}, "output_stride"),
    ("deeplabv3plus", {"multi_grid": (1, 2)}, "multi_grid"),
    ("denseaspp", {"output_stride": 4}, "output_stride"),
    ("danet", {"output_stride": 12}, "output_stride"),
    ("emanet", {"iterations": 0}, "iterations"),
    ("emanet", {"colour": "red"}, "colour"),
])
def test_bad_overrides_raise_config_errors(name: str, overrides: dict, word: str) -> None:
    with torch.device("meta"), pytest.raises(ConfigError, match=word):
        build_model(name, **overrides)
