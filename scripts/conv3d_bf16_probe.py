#!/usr/bin/env python
"""Does a bf16 ``Conv3d`` train on this CPU? The evidence behind the 3D rule of
:mod:`spineseg_core.training.precision`.

Each shape runs one forward and backward pass of a 3x3x3 convolution under CPU bf16 autocast,
in its own process with a time limit, because oneDNN's AMX kernel (torch 2.13) may segfault
or never return, which no Python timeout can stop. With ``--check`` a shape that passes also
compares its input and weight gradients with fp32 (relative L2 error; bf16 rounding alone
gives about 0.3 %). With ``--isa`` the children run with ``ONEDNN_MAX_CPU_ISA`` set (e.g.
``AVX512_CORE_BF16`` masks AMX off).

    python scripts/conv3d_bf16_probe.py                  # the default shapes
    python scripts/conv3d_bf16_probe.py --shape 2,1,32,4,128,128 --check
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

DEFAULT_SHAPES = (
    # batch, in, out, depth, height, width: the 3D U-Net's first layer on thin and deep volumes
    (2, 1, 32, 4, 64, 64), (2, 1, 32, 4, 80, 80), (2, 1, 32, 4, 96, 96),
    (2, 1, 32, 4, 128, 128), (2, 1, 32, 6, 128, 128), (2, 1, 32, 7, 128, 128),
    (2, 1, 32, 8, 128, 128), (2, 1, 32, 12, 128, 128), (2, 32, 32, 16, 128, 128),
    (4, 1, 32, 16, 128, 64),
)

CHILD = r"""
import sys, torch
torch.set_num_threads(int(sys.argv[2])); torch.manual_seed(0)
n, cin, cout, d, h, w = map(int, sys.argv[1].split(","))
conv = torch.nn.Conv3d(cin, cout, 3, padding=1, bias=False)
x, g = torch.randn(n, cin, d, h, w), torch.randn(n, cout, d, h, w)

def grads(bf16):
    conv.zero_grad()
    xx = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = conv(xx)
    (out.float() * g).sum().backward()
    return xx.grad, conv.weight.grad

bf = grads(True)
if sys.argv[3] == "1":
    fp = grads(False)
    print(" ".join(f"{float((a - b).norm() / a.norm()):.4f}" for a, b in zip(fp, bf)))
else:
    print("ok")
"""


def probe(shape: tuple[int, ...], threads: int, check: bool, timeout: float,
          isa: str | None) -> str:
    """``"passes"`` (with the gradients' relative errors when ``check``), ``"hangs"`` or
    ``"crashes (signal N)"`` / ``"fails (exit N)"``."""
    env = dict(os.environ, **({"ONEDNN_MAX_CPU_ISA": isa} if isa else {}))
    arg = ",".join(map(str, shape))
    try:
        done = subprocess.run([sys.executable, "-c", CHILD, arg, str(threads), str(int(check))],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return f"hangs (no result in {timeout:g} s)"
    if done.returncode < 0:
        return f"crashes (signal {-done.returncode})"
    if done.returncode != 0:
        return f"fails (exit {done.returncode}): {done.stderr.strip().splitlines()[-1]}"
    out = done.stdout.strip()
    if check:
        dx, dw = out.split()
        return f"passes; gradient error vs fp32: input {float(dx):.2%}, weight {float(dw):.2%}"
    return "passes"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", action="append", metavar="N,CIN,COUT,D,H,W",
                    help="a shape to probe (repeatable); default: a fixed set")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per shape")
    ap.add_argument("--check", action="store_true", help="compare passing shapes with fp32")
    ap.add_argument("--isa", help="ONEDNN_MAX_CPU_ISA for the children, e.g. AVX512_CORE_BF16")
    args = ap.parse_args(argv)
    try:
        shapes = ([tuple(int(v) for v in s.split(",")) for s in args.shape] if args.shape
                  else list(DEFAULT_SHAPES))
    except ValueError:
        ap.error("--shape: expected six integers N,CIN,COUT,D,H,W")
    if any(len(s) != 6 for s in shapes):
        ap.error("--shape: expected six integers N,CIN,COUT,D,H,W")
    import torch

    caps = torch.cpu.get_capabilities()
    flags = [f for f in ("amx_bf16", "avx512_bf16") if caps.get(f)]
    print(f"torch {torch.__version__}, CPU bf16 features: {', '.join(flags) or 'none'}, "
          f"ONEDNN_MAX_CPU_ISA={args.isa or 'default'}")
    for shape in shapes:
        print(f"{'x'.join(map(str, shape)):>22}: "
              f"{probe(shape, args.threads, args.check, args.timeout, args.isa)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
