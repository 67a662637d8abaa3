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

