"""The python half of ``scripts/gpu_check.sh``: the device's tests and what the models cost on it.

    python scripts/gpu_check.py tests tests/test_cuda.py tests/test_metrics.py
    python scripts/gpu_check.py train --device cuda --size 880 --steps 20 --out results/gpu
    python scripts/gpu_check.py data  --device cuda --size 880 --data-dir DIR --out results/gpu
    python scripts/gpu_check.py predict-result --run RUN --input FILE --output FILE --seconds S \
        --out results/gpu

``tests`` runs ``pytest -m cuda`` on the given files and fails when a test was skipped (there is
no GPU check in a skipped test) or none ran; ``--allow-skips`` is the CPU dry run's.
``train`` writes ``train_<size>.csv``: per model, its paper-profile training step as the
training configuration resolves it for that model (:func:`~spineseg_core.training.config.resolve_config`
with ``model=``: batch, precision, ``model_kwargs``; ``--batch`` overrides the batch, for the
dry run), through the trainer's own :class:`~spineseg_core.training.step.TrainStep`, timed over
``steps`` steps after warm-up: images per second, the nominal FLOPs of one step, achieved
TFLOP/s, MFU against the card's dense peak for the step's precision
(:func:`~spineseg_core.measure.timing.theoretical_peak`), the ``max_memory_reserved`` peak of one
step after warm-up, whether it fits the paper's 24 GB card and what the paper's Table 3 says.
``data`` writes ``data_<size>.csv``: training fed by the batched augmentation on the device
against the model alone (``data_ratio``), on the labelled cases of ``--data-dir`` (a phantom
the shell script writes at ``size`` px; its train, validation and test cases are all read).
``predict-result`` records one ``spineseg predict`` (the shell script times it) in
``predict.csv``. Every CSV is written atomically; ``env.json`` says on what. A bad value is one
line, as from the command line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from spineseg_core.envinfo import env_stamp
from spineseg_core.errors import SpinesegError
from spineseg_core.io import write_csv, write_json
from spineseg_core.measure.efficiency import (
    CudaMemory,
    MemMethod,
    fits_24gb,
    step_peak_memory,
    train_step_memory,
)
from spineseg_core.measure.speed import (
    BenchSettings,
    bench_model,
    build_data_pipe,
    data_throughput,
    input_size,
)
from spineseg_core.measure.timing import (
    backend_like_trainer,
    bench_loss,
    random_batch,
    theoretical_peak,
    timed,
    train_step_flops,
)
from spineseg_core.models import build_model, list_models, model_info
from spineseg_core.study.paper import table3_efficiency
from spineseg_core.training.config import TrainConfig, resolve_config
from spineseg_core.training.device import resolve_device
from spineseg_core.training.step import TrainStep

TRAIN_COLUMNS: tuple[str, ...] = (
    "model", "display_name", "device", "gpu", "size", "batch", "precision", "model_kwargs",
    "steps", "img_s", "step_flops", "achieved_tflop_s", "peak_tflop_s", "mfu", "peak_basis",
    "max_reserved_mb", "mem_method", "fits_24gb", "paper_memory_gb", "paper_fits_24gb",
    "seconds")
"""Columns of ``train_<size>.csv``."""

DATA_MODELS: tuple[str, ...] = ("unet", "miniseg")
"""The data part's models: the cheapest step of each family's extremes, where a slow data path
shows most."""


class SkipsFail:
    """A pytest plugin: the session fails when a test was skipped (on the GPU a skipped CUDA
    test checked nothing) or when no test ran, each said in one line."""

    def __init__(self) -> None:
        self.skipped: list[str] = []
        self.ran = 0

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped:
            self.skipped.append(report.nodeid)
        elif report.when == "call":
            self.ran += 1

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if exitstatus != 0:
            return
        if self.skipped:
            print(f"\ngpu_check: {len(self.skipped)} device test(s) skipped, which counts as "
                  f"failed here: {', '.join(self.skipped)}", file=sys.stderr)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        elif not self.ran:
            print("\ngpu_check: no device test ran", file=sys.stderr)
            session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED


def run_tests(paths: Sequence[str], allow_skips: bool = False) -> int:
    """``pytest -m cuda`` on ``paths``; its exit status, non-zero also for a skip unless
    ``allow_skips`` (the CPU dry run, where the GPU-only tests skip by design)."""
    args = ["-q", "-m", "cuda", "-p", "no:cacheprovider", *paths]
    return int(pytest.main(args, plugins=[] if allow_skips else [SkipsFail()]))


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(path, frame, index=False)
    print(f"wrote {path}", flush=True)


NO_DATA: dict[str, object] = {"phantom": True}
"""What tells the paper profile, where it asks for real data or an explicit phantom, that no
data is read (the train part times random batches)."""


def model_config(name: str, size: int, device: torch.device, batch: int | None = None,
                 **overrides: object) -> TrainConfig:
    """The paper profile's configuration of model ``name`` as every entry point resolves it
    (its per-model values included), at ``size`` px on ``device``; ``batch`` overrides the
    batch (the dry run's tiny sizes). Without ``data_dir`` it is the configuration of a step
    on random batches (:data:`NO_DATA`)."""
    data = {} if overrides.get("data_dir") is not None else NO_DATA
    return resolve_config("paper", model=name, image_size=size, batch_size=batch,
                          device=device.type, **data, **overrides)


def train_rows(models: Sequence[str], device: torch.device, size: int, steps: int,
               warmup: int, batch: int | None = None,
               budget_s: float | None = None) -> pd.DataFrame:
    """One row per model of :data:`TRAIN_COLUMNS` (see the module docstring). With
    ``budget_s`` the part measures no further model once the slowest so far would take it past
    that many seconds, and says which it left out (the check's time limit holds even where the
    estimate in ``gpu_check.sh`` is wrong)."""
    paper = table3_efficiency().set_index("model")["memory_gb"]
    gpu = env_stamp(device)["gpu"]
    rows: list[dict] = []
    start = time.perf_counter()
    with backend_like_trainer(device):
        for i, name in enumerate(models):
            t0 = time.perf_counter()
            slowest = max((r["seconds"] for r in rows), default=0.0)
            if budget_s is not None and rows and t0 - start + slowest > budget_s:
                print(f"train: {len(rows)} of {len(models)} models measured; left out "
                      f"{', '.join(models[i:])}: the next would pass the part's "
                      f"{budget_s:.0f} s", flush=True)
                break
            cfg = model_config(name, size, device, batch)
            info = model_info(name)
            torch.manual_seed(cfg.seed)
            model = build_model(name, **(cfg.model_kwargs or {}))
            in_ch = int(getattr(model, "in_channels", 1))
            hw, n = input_size(cfg), cfg.batch_size
            loss_fn = bench_loss(cfg.loss)
            flops = train_step_flops(model, loss_fn, hw, n, in_channels=in_ch, device=device)
            step = TrainStep.create(model, loss_fn, device, amp=cfg.amp,
                                    channels_last=cfg.channels_last, lr=cfg.lr)
            peak = theoretical_peak(device, step.precision)
            x, y = random_batch(n, hw, device, in_channels=in_ch)
            x = step.prepare(x)
            if device.type == "cuda":
                mem_mb = step_peak_memory(step, x, y, CudaMemory(device), warmup=warmup)
                method = str(MemMethod.CUDA_PEAK)
            else:  # the dry run: the named estimate
                report = train_step_memory(model, hw, n, device)
                mem_mb, method = report.peak_mb, str(report.method)
            seconds, _ = timed(lambda s=step, x=x, y=y: s(x, y, prepared=True), steps, warmup,
                               device)
            achieved = flops / seconds
            paper_gb = paper.get(info.display_name, float("nan"))
            rows.append(dict(
                model=name, display_name=info.display_name, device=str(device), gpu=gpu,
                size=size, batch=n, precision=str(step.precision),
                model_kwargs=json.dumps(cfg.model_kwargs or {}, sort_keys=True), steps=steps,
                img_s=n / seconds, step_flops=flops, achieved_tflop_s=achieved / 1e12,
                peak_tflop_s=peak.flops / 1e12, mfu=achieved / peak.flops, peak_basis=peak.basis,
                max_reserved_mb=mem_mb, mem_method=method, fits_24gb=fits_24gb(mem_mb),
                paper_memory_gb=paper_gb,
                paper_fits_24gb=bool(paper_gb <= 24) if np.isfinite(paper_gb) else pd.NA,
                seconds=time.perf_counter() - t0))
            r = rows[-1]
            print(f"{name}: batch {n}, {r['precision']}, {r['img_s']:.1f} img/s, "
                  f"{r['achieved_tflop_s']:.1f} TFLOP/s, MFU {r['mfu']:.1%}, reserved "
                  f"{mem_mb:.0f} MiB [{r['seconds']:.0f} s]", flush=True)
            del step, model, x, y
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return pd.DataFrame(rows, columns=list(TRAIN_COLUMNS))


def data_rows(models: Sequence[str], device: torch.device, size: int, steps: int, warmup: int,
              data_dir: Path, batch: int | None = None) -> pd.DataFrame:
    """The bench's rows for ``models`` fed by the batched augmentation on ``device``, on the
    labelled cases of ``data_dir`` resampled to ``size`` px (the paper profile's data path)."""
    settings = BenchSettings(steps=steps, warmup=warmup)
    rows = []
    pipes: dict[int, tuple] = {}  # one data path per batch size
    with backend_like_trainer(device):
        for name in models:
            cfg = model_config(name, size, device, batch, data_dir=data_dir)
            if cfg.batch_size not in pipes:
                pipe = build_data_pipe(cfg, device, "batched")
                pipes[cfg.batch_size] = (pipe, data_throughput(pipe, settings))
            pipe, data_sps = pipes[cfg.batch_size]
            row = bench_model(name, cfg, device, settings,
                              lambda p: theoretical_peak(device, p), pipe, data_sps)
            rows.append({k: row[k] for k in ("model", "device", "size", "width", "batch",
                                              "precision", "train_img_s", "data_slices_s",
                                              "epoch_img_s", "data_ratio", "data_path")})
            print(f"{name}: model only {row['train_img_s']:.1f} img/s, fed by the batched "
                  f"augmentation {row['epoch_img_s']:.1f} img/s (ratio {row['data_ratio']:.2f})",
                  flush=True)
    return pd.DataFrame(rows)


def predict_row(device: torch.device, run: Path, image_file: Path, output: Path,
                seconds: float) -> pd.DataFrame:
    """One ``spineseg predict`` of ``image_file`` with the run in ``run``: shapes, labels
    found, the run's precision and the time it took."""
    import nibabel as nib

    labels = np.asanyarray(nib.load(str(output)).dataobj)
    image = nib.load(str(image_file))
    params = json.loads((run / "params.json").read_text())
    return pd.DataFrame([dict(
        input=image_file.name, shape="x".join(map(str, image.shape)),
        output_shape="x".join(map(str, labels.shape)),
        same_shape=labels.shape == image.shape, labels_found=len(np.unique(labels)),
        run_precision=params.get("precision"), device=str(device), seconds=seconds)])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("tests", "train", "data", "predict-result"))
    parser.add_argument("paths", nargs="*", help="test files (part tests)")
    parser.add_argument("--allow-skips", action="store_true",
                        help="part tests: a skipped test does not fail (the CPU dry run)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", type=int, default=880)
    parser.add_argument("--batch", type=int, default=None,
                        help="every model's batch (default: each model's resolved one)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--budget-s", type=float, default=None,
                        help="part train: measure no model that would end past this")
    parser.add_argument("--data-dir", type=Path, help="labelled cases of the data part")
    parser.add_argument("--out", type=Path, default=Path("results/gpu"))
    parser.add_argument("--run", type=Path)
    parser.add_argument("--input", type=Path)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--seconds", type=float)
    args = parser.parse_intermixed_args(argv)
    if args.part == "tests":
        return run_tests(args.paths, args.allow_skips)
    device = resolve_device(args.device)
    write_json(args.out / "env.json", env_stamp(device))
    if args.part == "train":
        frame = train_rows(args.models or list_models(), device, args.size, args.steps,
                           args.warmup, args.batch, args.budget_s)
        _write_csv(frame, args.out / f"train_{args.size}.csv")
    elif args.part == "data":
        if args.data_dir is None:
            parser.error("part data needs --data-dir")
        frame = data_rows(args.models or DATA_MODELS, device, args.size, args.steps,
                          args.warmup, args.data_dir, args.batch)
        _write_csv(frame, args.out / f"data_{args.size}.csv")
    else:
        frame = predict_row(device, args.run, args.input, args.output, args.seconds)
        _write_csv(frame, args.out / "predict.csv")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SpinesegError as exc:  # one line, as from the command line
        sys.exit(f"gpu_check: {type(exc).__name__}: {exc}")
