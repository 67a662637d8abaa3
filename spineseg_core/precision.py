"""Mixed precision: where bf16 autocast pays, and the one autocast context every step uses.

bf16 autocast runs convolutions and matmuls in bfloat16 with fp32 weights, optimiser and loss.
It pays where the hardware multiplies bf16 natively: every CUDA GPU with bf16 support, and a
CPU with AMX-bf16 tiles (Intel Sapphire Rapids and later), where oneDNN runs bf16
convolutions on the tile units. Measured on this project's 2-core CPU machine (AMX-bf16,
torch 2.13, batch 8 at 128x64, training step): 1.3-2.8x faster than fp32 for eleven of the
twelve models, while MiniSeg's depthwise convolutions ran 0.75x as fast (the cpu profile
turns autocast off for it). On a CPU without AMX bf16 is emulated and slower, so ``amp``
then means fp32.
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


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 natively (CUDA with bf16, or a CPU with AMX-bf16)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.cpu.get_capabilities().get("amx_bf16", False))
    return False


def precision_for(device: torch.device, amp: bool) -> Precision:
    """bf16 autocast when ``amp`` is asked for and ``device`` runs bf16 natively, else fp32."""
    return Precision.BF16 if amp and native_bf16(device) else Precision.FP32


def autocast(device: torch.device, precision: Precision) -> AbstractContextManager:
    """The forward pass's context: ``torch.autocast`` to bf16, or nothing for fp32."""
    if precision is Precision.BF16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
