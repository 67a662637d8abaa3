"""Mixed precision: where bf16 autocast pays, and the one autocast context every step uses.

bf16 autocast runs convolutions and matmuls in bfloat16 with fp32 weights, optimiser and loss.
It is used where the hardware runs bf16 faster than fp32, decided by a documented rule on what
the device has (not by a timing, so a run resumed on the same machine keeps its precision):

* CUDA: a GPU whose bf16 is native (``torch.cuda.is_bf16_supported(including_emulation=False)``:
  compute capability 8.0 and later). A V100 or T4 only emulates bf16, slower than fp32.
* CPU: AMX-bf16 tiles (Intel Sapphire Rapids and later) or the AVX512-BF16 dot-product
  instructions (Intel Cooper Lake, AMD Zen 4 and later), where oneDNN runs bf16 convolutions
  natively. Measured, training step, torch 2.13, 2 threads, the cpu profile's 128x64 inputs
  (``scripts/precision_probe.py``): on an AMX Xeon 1.3-2.8x faster than fp32 for eleven of the
  twelve models; on an AMD EPYC with AVX512-BF16 and no AMX, U-Net 1.48x, Attention U-Net 1.69x,
  TransUNet 1.65x, DeepLabv3+ 1.32x. MiniSeg's depthwise convolutions ran 0.75x (AMX) and 0.84x
  (AVX512-BF16) as fast, so the cpu profile turns ``amp`` off for it. Without either feature
  bf16 is emulated and slower, so ``amp`` then means fp32.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from enum import StrEnum

import torch


class Precision(StrEnum):
    """What a training or evaluation step computes in (recorded in ``params.json``)."""

    BF16 = "bf16-autocast"
    FP32 = "fp32"


CPU_BF16_FEATURES: tuple[str, ...] = ("amx_bf16", "avx512_bf16")
"""``torch.cpu.get_capabilities()`` flags of a CPU that runs bf16 matmuls natively."""


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 natively: a CUDA GPU with bf16 units (emulation does not
    count), or a CPU with one of :data:`CPU_BF16_FEATURES`."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(
            including_emulation=False)
    if device.type == "cpu":
        caps = torch.cpu.get_capabilities()
        return any(bool(caps.get(flag, False)) for flag in CPU_BF16_FEATURES)
    return False


def precision_for(device: torch.device, amp: bool) -> Precision:
    """bf16 autocast when ``amp`` is asked for and ``device`` runs bf16 natively (the module's
    rule), else fp32."""
    return Precision.BF16 if amp and native_bf16(device) else Precision.FP32


def autocast(device: torch.device, precision: Precision) -> AbstractContextManager:
    """The forward pass's context: ``torch.autocast`` to bf16, or nothing for fp32."""
    if precision is Precision.BF16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
