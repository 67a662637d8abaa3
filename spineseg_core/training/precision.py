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
  TransUNet 1.65x, DeepLabv3+ 1.32x. MiniSeg trains in fp32 on every profile
  (``training.budgets``): torch 2.13's CPU bf16 weight gradient of its dilated depthwise
  convolutions in channels-last layout is wrong on maps of 32 px or more
  (``scripts/dwconv_bf16_probe.py``). Without either feature
  bf16 is emulated and slower, so ``amp`` then means fp32.
* CPU, 3D models (:attr:`~spineseg_core.models.registry.ModelInfo.volumetric`): fp32 always.
  oneDNN's AMX kernel for the backward pass of a bf16 ``Conv3d`` (torch 2.13) segfaults, never
  returns, or returns NaN weight gradients on thin, wide volumes (depth 4-6 at 80-128 px,
  batch 2: ``scripts/conv3d_bf16_probe.py --check`` on an AMX Xeon,
  ``results/probes/conv3d_bf16_amx.txt``); the same shapes pass, with gradients within bf16
  rounding (0.3 %) of fp32, when AMX is masked off (``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16``,
  ``conv3d_bf16_amx_masked.txt``). The failing shapes follow no simple rule (depth 4 passes
  at 64 px, depth 7 at 128) and a hang in C++ cannot be timed out from Python, so the rule
  does not guess shapes. Its cost: the 3D U-Net's training step on the cpu profile's grid (4
  volumes of 16x128x64) is 2.6-2.9x slower in fp32 than in bf16 on that machine. The context
  runs recorded before this rule trained in bf16 (their ``params.json`` says so) on volumes
  of depth 12 and 16; their layers' shapes (depth 3-16 at the in-plane size of each level)
  pass the probe with errors of 0.3 % (``conv3d_bf16_amx_context_layers.txt``).
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


def precision_for(device: torch.device, amp: bool, *, volumetric: bool = False) -> Precision:
    """bf16 autocast when ``amp`` is asked for and ``device`` runs bf16 natively, except for a
    3D (``volumetric``) model on the CPU (the module's rule); else fp32."""
    if volumetric and device.type == "cpu":
        return Precision.FP32
    return Precision.BF16 if amp and native_bf16(device) else Precision.FP32


def autocast(device: torch.device, precision: Precision) -> AbstractContextManager:
    """The forward pass's context: ``torch.autocast`` to bf16, or nothing for fp32."""
    if precision is Precision.BF16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
