"""Every registered model keeps the model contract; the twelve match their reference budget.

One parametrised test per contract item runs over every registered model (the paper's twelve and
the context family: 2.5D stacks, the 3D U-Net), each fed what its registry entry says, at small
sizes on the CPU. Parameter and MAC budgets are counted on the meta device at 880x880
against ``resources/model_budget.csv`` (models.md's figures).
"""

from __future__ import annotations

from importlib import resources

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spineseg_core.errors import ConfigError
from spineseg_core.measure.efficiency import ParamScope, count_macs, count_params
from spineseg_core.models import (
    CONTEXT_MODEL_NAMES,
    MODEL_NAMES,
    Family,
    InputKind,
    MultiOutput,
    VolumeSegmentationModel,
    build_model,
    list_models,
    model_info,
)

NUM_CLASSES = 20
PARAMS_TOLERANCE = 0.03
MACS_TOLERANCE = 0.05


def _budget() -> pd.DataFrame:
    path = resources.files("spineseg_core") / "resources" / "model_budget.csv"
    with resources.as_file(path) as p:
        return pd.read_csv(p).set_index("model")


BUDGET = _budget()
REGISTERED = list_models(None)
DEPTH = 6
"""Slices of the small volumes a 3D model is fed (not a multiple of its depth padding)."""


def _input(name: str, batch: int, h: int, w: int) -> Tensor:
    """A random input of the shape model ``name`` is fed: slices, stacks or volumes."""
    info = model_info(name)
    if info.volumetric:
        return torch.randn(batch, 1, DEPTH, h, w)
    return torch.randn(batch, info.in_channels, h, w)


def _first_layer(model: nn.Module, x: Tensor) -> nn.Module:
    """The first convolution or linear layer that the forward pass calls."""
    order: list[nn.Module] = []
    hooks = [m.register_forward_pre_hook(lambda mod, args: order.append(mod))
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.Linear))]
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    assert order, "the model calls no convolution or linear layer"
    return order[0]


def _train_step(model: nn.Module, x: Tensor) -> MultiOutput:
    model.train()
    model.zero_grad(set_to_none=True)
    out = model(x)
    assert isinstance(out, MultiOutput), f"train mode returned {type(out).__name__}"
    target = torch.randint(0, NUM_CLASSES, (x.shape[0], *x.shape[2:]))
    loss = sum(w * F.cross_entropy(o, target) for o, w in zip(out.logits, out.weights))
    assert torch.isfinite(loss)
    loss.backward()
    return out


@pytest.mark.parametrize("name", REGISTERED)
def test_model_contract(name: str) -> None:
    """Train outputs, gradients, eval output and a state-dict round trip, at two sizes."""
    torch.manual_seed(0)
    model = build_model(name)
    first = _first_layer(model, _input(name, 1, 64, 64))
    for h, w in ((64, 64), (72, 88)):
        for batch in (1, 2):
            x = _input(name, batch, h, w)
            out = _train_step(model, x)
            assert len(out.logits) == len(out.weights) >= 1
            assert all(wt > 0 for wt in out.weights), out.weights
            for logits in out.logits:
                assert logits.shape == (batch, NUM_CLASSES, *x.shape[2:])
                assert torch.isfinite(logits).all()
            grad = first.weight.grad
            assert grad is not None, f"{name}: no gradient at the first layer"
            assert torch.isfinite(grad).all() and grad.abs().sum() > 0

    model.eval()
    x = _input(name, 2, 72, 88)
    with torch.no_grad():
        ref = model(x)
    assert isinstance(ref, Tensor) and ref.shape == (2, NUM_CLASSES, *x.shape[2:])
    assert torch.isfinite(ref).all()

    torch.manual_seed(1)
    fresh = build_model(name).eval()
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        again = fresh(x)
    torch.testing.assert_close(again, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", [n for n in REGISTERED if n in BUDGET.index])
def test_parameter_budget(name: str) -> None:
    """Parameters within 3 % of models.md's figure, in the scope that figure counts."""
    row = BUDGET.loc[name]
    with torch.device("meta"):
        model = build_model(name)
    params_m = count_params(model, scope=ParamScope(row.params_scope)) / 1e6
    assert params_m == pytest.approx(row.params_m_ref, rel=PARAMS_TOLERANCE), \
        f"{name}: {params_m:.3f} M parameters ({row.params_scope}), reference {row.params_m_ref} M"


MACS_CHECKED = [n for n in REGISTERED
                if n in BUDGET.index and BUDGET.loc[n, "macs_match_paper"] == "yes"]


@pytest.mark.parametrize("name", MACS_CHECKED)
def test_macs_budget(name: str) -> None:
    """MACs at 880x880 within 5 % where models.md's figure also matches the paper."""
    gmacs = count_macs(name, size=880) / 1e9
    ref = BUDGET.loc[name, "gmacs_880_ref"]
    assert gmacs == pytest.approx(ref, rel=MACS_TOLERANCE), \
        f"{name}: {gmacs:.1f} GMACs, reference {ref}"


def test_all_twelve_registered_in_order() -> None:
    """The study's twelve models are what it lists by default, in the paper's order; the
    context family follows when every model is asked for."""
    assert list_models() == list(MODEL_NAMES)
    assert list_models(None) == [*MODEL_NAMES, *CONTEXT_MODEL_NAMES]
    assert list_models([Family.CONTEXT]) == list(CONTEXT_MODEL_NAMES)


def test_context_models_are_fed_what_their_entry_says() -> None:
    """2.5D models take their context as channels and refuse one slice; the 3D U-Net takes
    volumes of any depth (padded inside, cropped back) and refuses slices."""
    for name, context in (("unet_25d3", 3), ("unet_25d5", 5), ("deeplabv3plus_25d3", 3),
                          ("deeplabv3plus_25d5", 5)):
        info = model_info(name)
        assert (info.input_kind, info.context, info.in_channels) == (InputKind.STACK, context,
                                                                     context)
        assert build_model(name).in_channels == context
        with pytest.raises(ValueError, match=f"expected input \\(N, {context}, H, W\\)"):
            build_model(name).eval()(torch.randn(1, 1, 32, 32))
    info = model_info("unet3d")
    assert info.volumetric and info.in_channels == 1 and info.family is Family.CONTEXT
    model = build_model("unet3d", base_width=4).eval()
    assert isinstance(model, VolumeSegmentationModel)
    with torch.no_grad():
        for depth in (1, 5, 13):
            assert model(torch.randn(1, 1, depth, 40, 24)).shape == (1, NUM_CLASSES, depth, 40, 24)
    with pytest.raises(ValueError, match="expected input \\(N, 1, D, H, W\\)"):
        model(torch.randn(1, 1, 32, 32))


def test_the_3d_unet_pools_across_slices_at_its_deepest_levels_only() -> None:
    from spineseg_core.models.unet3d import UNet3D

    net = UNet3D(base_width=4, depth=4, depth_pooled=2)
    assert net.scales == [(1, 2, 2), (1, 2, 2), (2, 2, 2), (2, 2, 2)]
    assert net.pad_multiple == (4, 16, 16)
    with pytest.raises(ConfigError, match="depth_pooled"):
        UNet3D(depth=2, depth_pooled=3)


def test_budget_file_lists_the_twelve() -> None:
    assert list(BUDGET.index) == list(MODEL_NAMES)
    assert set(BUDGET["macs_match_paper"]) <= {"yes", "no"}
    assert set(BUDGET["params_scope"]) <= {s.value for s in ParamScope}
    assert (BUDGET[["params_m_ref", "gmacs_880_ref"]] > 0).all().all()


def test_registry_entries_are_complete() -> None:
    for name in REGISTERED:
        info = model_info(name)
        assert info.name == name and info.display_name
        assert min((info.pad_multiple,) if isinstance(info.pad_multiple, int)
                   else info.pad_multiple) >= 1


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(ConfigError) as exc:
        build_model("no_such_net")
    msg = str(exc.value)
    assert "no_such_net" in msg
    assert all(n in msg for n in REGISTERED)
