"""Where a training step's time goes: one model's step under ``torch.profiler``, by op kind.

Usage: python scripts/profile_step.py [--profile cpu] [--models unet psanet] [--steps 3]
                                      [--out FILE.csv]

Times the trainer's own step (:class:`spineseg_core.training.step.TrainStep`: the profile's
batch and input size, its precision, channels-last) and groups the profiler's self time into
a few kinds (convolution, matmul/attention, normalisation, element-wise, resampling, optimiser,
copies and casts, other), printing per model the share of each. ``--out`` also writes the
per-op table (model, op, kind, self seconds per step, calls per step) as CSV.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd
import torch
from torch.profiler import ProfilerActivity, profile

from spineseg_core.io import write_with
from spineseg_core.measure.speed import input_size
from spineseg_core.measure.timing import bench_loss, random_batch
from spineseg_core.models import build_model
from spineseg_core.training.config import resolve_config
from spineseg_core.training.device import resolve_device
from spineseg_core.training.step import TrainStep

KINDS: tuple[tuple[str, str], ...] = (
    ("convolution", r"conv|mkldnn_convolution|convolution_backward"),
    ("matmul/attention", r"mm|matmul|linear|addmm|bmm|attention|baddbmm|softmax"),
    ("normalisation", r"batch_norm|layer_norm|group_norm|native_norm"),
    ("resampling", r"upsample|interpolate|pool|grid_sampler"),
    ("optimiser", r"_foreach|adam|lerp|addcdiv|addcmul|sqrt"),
    ("copies/casts", r"copy_|to_copy|contiguous|clone|cat|_to_dense|empty|fill_|zero_|pad"),
    ("element-wise", r"relu|gelu|sigmoid|add|mul|sub|div|threshold|tanh|hardtanh|silu|neg|exp"),
)
"""Op-name patterns, first match wins."""


def kind_of(op: str) -> str:
    """The kind of a profiler op name (``aten::cudnn_convolution`` -> ``convolution``)."""
    name = op.split("::")[-1].lower()
    for kind, pattern in KINDS:
        if re.search(pattern, name):
            return kind
    return "other"


def profile_model(name: str, profile_name: str, steps: int) -> pd.DataFrame:
    """Self time per op of ``steps`` training steps of ``name`` (after two warm-up steps)."""
    cfg = resolve_config(profile_name, model=name)
    device = resolve_device(cfg.device)
    size = input_size(cfg)
    step = TrainStep.create(build_model(name), bench_loss(cfg.loss), device,
                            channels_last=cfg.channels_last, amp=cfg.amp, lr=cfg.lr)
    x, y = random_batch(cfg.batch_size, size, device)
    x = step.prepare(x)
    for _ in range(2):
        step(x, y, prepared=True)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda"
                                           else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step(x, y, prepared=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    rows = []
    for ev in prof.key_averages():
        self_us = ev.self_device_time_total if device.type == "cuda" else ev.self_cpu_time_total
        if self_us > 0:
            rows.append(dict(model=name, precision=str(step.precision), op=ev.key,
                             kind=kind_of(ev.key), self_s_per_step=self_us / 1e6 / steps,
                             calls_per_step=ev.count / steps))
    return pd.DataFrame(rows).sort_values("self_s_per_step", ascending=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--models", nargs="+", default=["unet", "psanet"])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    tables = []
    for name in args.models:
        table = profile_model(name, args.profile, args.steps)
        tables.append(table)
        total = table["self_s_per_step"].sum()
        shares = table.groupby("kind")["self_s_per_step"].sum().sort_values(ascending=False)
        print(f"{name} ({table['precision'].iloc[0]}): {total:.3f} s per step")
        for kind, sec in shares.items():
            print(f"  {kind:18s} {sec:7.3f} s  {sec / total:6.1%}")
        print("  top ops: " + ", ".join(f"{r.op} {r.self_s_per_step / total:.0%}"
                                        for r in table.head(5).itertuples()))
    if args.out:
        frame = pd.concat(tables, ignore_index=True)
        write_with(args.out, lambda p: frame.to_csv(p, index=False))


if __name__ == "__main__":
    main()
