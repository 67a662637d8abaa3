"""Where bf16 autocast is used, and that the context really computes in bf16."""

import pytest
import torch
from torch import nn

from spineseg_core.training.precision import Precision, autocast, native_bf16, precision_for

CPU = torch.device("cpu")


def test_cpu_bf16_follows_amx(monkeypatch):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True})
    assert native_bf16(CPU) and precision_for(CPU, amp=True) is Precision.BF16
    assert precision_for(CPU, amp=False) is Precision.FP32
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_f": True})
    assert not native_bf16(CPU) and precision_for(CPU, amp=True) is Precision.FP32


def test_other_devices_stay_fp32():
    assert precision_for(torch.device("meta"), amp=True) is Precision.FP32
    if not torch.cuda.is_available():
        assert not native_bf16(torch.device("cuda"))


@pytest.mark.parametrize("precision, dtype", [(Precision.BF16, torch.bfloat16),
                                              (Precision.FP32, torch.float32)])
def test_autocast_runs_convolutions_in_the_chosen_dtype(precision, dtype):
    conv = nn.Conv2d(1, 4, 3)
    with autocast(CPU, precision):
        out = conv(torch.randn(2, 1, 8, 8))
    assert out.dtype == dtype
    assert conv.weight.dtype == torch.float32  # weights stay fp32



def test_a_3d_model_stays_fp32_on_the_cpu_even_with_amx(monkeypatch):
    """oneDNN's AMX bf16 Conv3d backward crashes or hangs on thin volumes (the module's rule):
    a volumetric model computes in fp32 on every CPU, a 2D one still in bf16."""
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True})
    assert precision_for(CPU, amp=True, volumetric=True) is Precision.FP32
    assert precision_for(CPU, amp=True, volumetric=False) is Precision.BF16
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert precision_for(torch.device("cuda"), amp=True, volumetric=True) is Precision.BF16


def test_the_trainer_and_the_step_apply_the_3d_rule(monkeypatch):
    from spineseg_core.losses import build_loss
    from spineseg_core.models import build_model
    from spineseg_core.training.config import resolve_config
    from spineseg_core.training.loop import run_mode
    from spineseg_core.training.step import TrainStep

    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True})
    assert run_mode(resolve_config("smoke", model="unet3d"), CPU)["precision"] == "fp32"
    assert run_mode(resolve_config("smoke", model="unet_25d3"), CPU)["precision"] == (
        "bf16-autocast")
    tiny = {"base_width": 4, "depth": 2}
    step = TrainStep.create(build_model("unet3d", **tiny), build_loss("ce"), CPU,
                            channels_last=False)
    assert step.precision is Precision.FP32
    assert TrainStep.create(build_model("unet", **tiny), build_loss("ce"),
                            CPU).precision is Precision.BF16
