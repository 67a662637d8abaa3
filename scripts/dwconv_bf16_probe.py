#!/usr/bin/env python
"""Is the bf16 weight gradient of a depthwise convolution right on this CPU? The evidence
behind MiniSeg's fp32 budget exception (:mod:`spineseg_core.training.budgets`).

Each case runs one forward pass of a depthwise 3x3 convolution under CPU bf16 autocast and a
backward pass, and compares the weight gradient with fp32's on the same input (relative max
error; bf16 rounding alone gives about 0.5 %). With torch 2.13 the dilated ones in
channels-last layout on maps of 32 px and more came out wrong (2x to 1e31, or NaN) on an AMX
CPU, also with AMX masked off (``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16``).

    python scripts/dwconv_bf16_probe.py
"""

from __future__ import annotations

import torch

CASES = (  # dilation, channels, map side: MiniSeg's decoder and AHSP layers at 64 px input
    (1, 8, 32), (2, 8, 16), (2, 8, 32), (2, 8, 64), (2, 6, 32), (4, 8, 32), (8, 16, 16))


def weight_grad_error(dilation: int, channels: int, side: int, channels_last: bool,
                      batch: int = 4) -> float:
    """Relative max error of the bf16-autocast weight gradient against fp32's."""
    conv = torch.nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation,
                           groups=channels, bias=False)
    x = torch.randn(batch, channels, side, side)
    grad = torch.randn(batch, channels, side, side)
    if channels_last:
        conv = conv.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(x)
    out.float().backward(grad)
    bf16 = conv.weight.grad.clone()
    conv.weight.grad = None
    conv(x).backward(grad)
    return ((bf16 - conv.weight.grad).abs().max() / conv.weight.grad.abs().max()).item()


def main() -> None:
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, capabilities: "
          f"{sorted(k for k, v in torch.cpu.get_capabilities().items() if v and 'bf16' in k)}")
    for dilation, channels, side in CASES:
        errors = {layout: max(weight_grad_error(dilation, channels, side, layout == "nhwc")
                              for _ in range(5)) for layout in ("nhwc", "nchw")}
        print(f"dilation {dilation}, {channels} channels, {side}x{side}: worst relative error "
              f"channels-last {errors['nhwc']:.3g}, channels-first {errors['nchw']:.3g}")


if __name__ == "__main__":
    main()
