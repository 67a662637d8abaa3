"""The measuring half of ``scripts/gpu_check.sh``: what the study's models cost on one GPU.

    python scripts/gpu_check.py train --device cuda --size 880 --batch 4 --steps 30 --out results/gpu
    python scripts/gpu_check.py data  --device cuda --size 880 --batch 4 --steps 30 --out results/gpu
    python scripts/gpu_check.py predict-result --run RUN --input FILE --output FILE --seconds S --out results/gpu

``train`` writes ``train_<size>.csv``: per model, the paper profile's training step (the
trainer's own :class:`~spineseg_core.training.step.TrainStep`: bf16 autocast, channels-last, the
Dice loss, Adam), timed over ``steps`` steps after warm-up: images per second, the nominal
FLOPs of one step, achieved TFLOP/s, MFU against the card's dense bf16 peak
(:func:`~spineseg_core.measure.timing.theoretical_peak`), the ``max_memory_reserved`` peak of one
step after warm-up, whether it fits the paper's 24 GB card and what the paper's Table 3 says.
``data`` writes ``data_<size>.csv``: training fed by the batched augmentation on the device
against the model alone (``data_ratio``), on a few phantom cases written at ``size`` px.
``predict-result`` records one ``spineseg predict`` (the shell script times it) in
``predict.csv``. Every CSV is written atomically; ``env.json`` says on what.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from spineseg_core.measure.speed import (BenchSettings, bench_model, build_data_pipe,
                                       data_throughput)
from spineseg_core.measure.timing import (backend_like_trainer, bench_loss, random_batch,
                                        theoretical_peak, timed, train_step_flops)
from spineseg_core.training.device import resolve_device
from spineseg_core.measure.efficiency import (CudaMemory, MemMethod, fits_24gb,
                                      step_peak_memory, train_step_memory)
from spineseg_core.envinfo import env_stamp
from spineseg_core.io import write_json, write_with
from spineseg_core.models import build_model, list_models, model_info
from spineseg_core.study.paper import table3_efficiency
from spineseg_core.training.precision import Precision
from spineseg_core.training.config import resolve_config
from spineseg_core.training.step import TrainStep

TRAIN_COLUMNS: tuple[str, ...] = (
    "model", "display_name", "device", "gpu", "size", "batch", "precision", "steps", "img_s",
    "step_flops", "achieved_tflop_s", "peak_tflop_s", "mfu", "peak_basis", "max_reserved_mb",
    "mem_method", "fits_24gb", "paper_memory_gb", "paper_fits_24gb", "seconds")
"""Columns of ``train_<size>.csv``."""


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_with(path, lambda p: frame.to_csv(p, index=False))
    print(f"wrote {path}", flush=True)


def train_rows(models: list[str], device: torch.device, size: int, batch: int, steps: int,
               warmup: int) -> pd.DataFrame:
    """One row per model of :data:`TRAIN_COLUMNS` (see the module docstring)."""
    paper = table3_efficiency().set_index("model")["memory_gb"]
    peak = theoretical_peak(device, Precision.BF16)
    gpu = env_stamp(device)["gpu"]
    rows = []
    with backend_like_trainer(device):
        for name in models:
            t0 = time.perf_counter()
            cfg = resolve_config("paper", model=name, image_size=size, batch_size=batch,
                                 device=device.type)
            info = model_info(name)
            torch.manual_seed(cfg.seed)
            model = build_model(name)
            loss_fn = bench_loss(cfg.loss)
            flops = train_step_flops(model, loss_fn, size, batch, device=device)
            step = TrainStep.create(model, loss_fn, device, precision=Precision.BF16,
                                    channels_last=cfg.channels_last, lr=cfg.lr)
            x, y = random_batch(batch, size, device)
            x = step.prepare(x)
            if device.type == "cuda":
                mem_mb = step_peak_memory(step, x, y, CudaMemory(device), warmup=warmup)
                method = str(MemMethod.CUDA_PEAK)
            else:  # the dry run: the named estimate
                report = train_step_memory(model, size, batch, device)
                mem_mb, method = report.peak_mb, str(report.method)
            seconds, _ = timed(lambda: step(x, y, prepared=True), steps, warmup, device)
            achieved = flops / seconds
            paper_gb = paper.get(info.display_name, float("nan"))
            rows.append(dict(
                model=name, display_name=info.display_name, device=str(device), gpu=gpu,
                size=size, batch=batch, precision=str(step.precision), steps=steps,
                img_s=batch / seconds, step_flops=flops, achieved_tflop_s=achieved / 1e12,
                peak_tflop_s=peak.flops / 1e12, mfu=achieved / peak.flops, peak_basis=peak.basis,
                max_reserved_mb=mem_mb, mem_method=method, fits_24gb=fits_24gb(mem_mb),
                paper_memory_gb=paper_gb,
                paper_fits_24gb=bool(paper_gb <= 24) if np.isfinite(paper_gb) else pd.NA,
                seconds=time.perf_counter() - t0))
            r = rows[-1]
            print(f"{name}: {r['img_s']:.1f} img/s, {r['achieved_tflop_s']:.1f} TFLOP/s, "
                  f"MFU {r['mfu']:.1%}, reserved {mem_mb:.0f} MiB [{r['seconds']:.0f} s]",
                  flush=True)
            del step, model, x, y
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return pd.DataFrame(rows, columns=list(TRAIN_COLUMNS))


def data_rows(models: list[str], device: torch.device, size: int, batch: int, steps: int,
              warmup: int, cases: int) -> pd.DataFrame:
    """The bench's rows for ``models`` fed by the batched augmentation on ``device``, on
    ``cases`` phantom cases written at ``size`` px (the paper profile's data path)."""
    settings = BenchSettings(steps=steps, warmup=warmup)
    base = resolve_config("paper", image_size=size, batch_size=batch, phantom_cases=cases,
                          phantom_size=size, device=device.type)
    pipe = build_data_pipe(base, device, "batched")
    data_sps = data_throughput(pipe, settings)
    rows = []
    with backend_like_trainer(device):
        for name in models:
            cfg = resolve_config("paper", model=name, image_size=size, batch_size=batch,
                                 phantom_cases=cases, phantom_size=size, device=device.type)
            row = bench_model(name, cfg, device, settings,
                              lambda p: theoretical_peak(device, p), pipe, data_sps)
            rows.append({k: row[k] for k in ("model", "device", "size", "width", "batch",
                                              "precision", "train_img_s", "data_slices_s",
                                              "epoch_img_s", "data_ratio", "data_path")})
            print(f"{name}: model only {row['train_img_s']:.1f} img/s, fed by the batched "
                  f"augmentation {row['epoch_img_s']:.1f} img/s (ratio {row['data_ratio']:.2f})",
                  flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("train", "data", "predict-result"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", type=int, default=880)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--cases", type=int, default=4, help="phantom cases of the data part")
    parser.add_argument("--out", type=Path, default=Path("results/gpu"))
    parser.add_argument("--run", type=Path)
    parser.add_argument("--input", type=Path)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--seconds", type=float)
    args = parser.parse_args()
    device = resolve_device(args.device)
    write_json(args.out / "env.json", env_stamp(device))
    if args.part == "train":
        frame = train_rows(args.models or list_models(), device, args.size, args.batch,
                           args.steps, args.warmup)
        _write_csv(frame, args.out / f"train_{args.size}.csv")
    elif args.part == "data":
        frame = data_rows(args.models or ["unet", "miniseg"], device, args.size, args.batch,
                          args.steps, args.warmup, args.cases)
        _write_csv(frame, args.out / f"data_{args.size}.csv")
    else:
        import nibabel as nib

        labels = np.asanyarray(nib.load(str(args.output)).dataobj)
        image = nib.load(str(args.input))
        params = json.loads((args.run / "params.json").read_text())
        frame = pd.DataFrame([dict(
            input=args.input.name, shape="x".join(map(str, image.shape)),
            output_shape="x".join(map(str, labels.shape)),
            same_shape=labels.shape == image.shape, labels_found=int(len(np.unique(labels))),
            run_precision=params.get("precision"), device=str(device),
            seconds=args.seconds)])
        _write_csv(frame, args.out / "predict.csv")


if __name__ == "__main__":
    main()
