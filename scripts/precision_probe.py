"""fp32 against bf16 autocast: the trainer's training step of each named model at the cpu
profile's input size and batch, timed alternately so both see the same machine load.

    .venv/bin/python scripts/precision_probe.py unet transunet deeplabv3plus miniseg

The measurements behind :mod:`spineseg_core.training.precision`'s rule (bf16 on AMX or AVX512-BF16).
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from spineseg_core.measure.speed import input_size
from spineseg_core.measure.timing import backend_like_trainer, bench_loss, random_batch
from spineseg_core.models import build_model
from spineseg_core.training.config import resolve_config
from spineseg_core.training.precision import Precision
from spineseg_core.training.step import TrainStep


def main(names: list[str], rounds: int = 4) -> None:
    device = torch.device("cpu")
    for name in names:
        cfg = resolve_config("cpu", model=name)
        steps = {}
        for p in Precision:
            torch.manual_seed(0)
            steps[p] = TrainStep.create(build_model(name), bench_loss(cfg.loss), device,
                                        precision=p, channels_last=True)
        x, y = random_batch(cfg.batch_size, input_size(cfg), device)
        x = x.contiguous(memory_format=torch.channels_last)
        times: dict[Precision, list[float]] = {p: [] for p in steps}
        with backend_like_trainer(device):
            for step in steps.values():  # warm-up
                step(x, y, prepared=True)
            for _ in range(rounds):
                for p, step in steps.items():
                    t0 = time.perf_counter()
                    step(x, y, prepared=True)
                    times[p].append(time.perf_counter() - t0)
        f32, b16 = (statistics.median(times[p]) for p in (Precision.FP32, Precision.BF16))
        h, w = input_size(cfg)
        print(f"{name} batch {cfg.batch_size} {h}x{w}: fp32 {cfg.batch_size / f32:.2f} img/s, "
              f"bf16 {cfg.batch_size / b16:.2f} img/s, bf16/fp32 speed {f32 / b16:.2f}x",
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["unet"])
