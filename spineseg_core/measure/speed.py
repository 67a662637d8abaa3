"""``spineseg bench``: how fast each model trains on this machine, and whether the data keeps up.

Per model, at a profile's image size and batch, on the current device:

* ``train_img_s`` / ``infer_img_s`` — model-only throughput on one fixed random batch
  (:class:`~spineseg_core.training.step.TrainStep`: the trainer's step, channels-last, bf16 autocast where the
  device runs bf16 natively — ``precision`` says which, per model as the profile trains it);
* ``step_flops`` — nominal FLOPs of one training forward + backward (``FlopCounterMode`` on a
  meta copy), ``achieved_gflop_s = step_flops / step time`` and ``peak_ratio`` against the
  device's theoretical peak in the step's precision (``peak_gflop_s``, computed as
  ``peak_basis`` says: :func:`~.timing.theoretical_peak`), a bound by construction; and, for
  scale, the rate of a large matmul measured in the same process (``gemm_gflop_s``). Nominal
  FLOPs count direct convolutions: where the library runs Winograd, fewer are executed
  (:mod:`.timing`);
* ``data_slices_s`` — the training data path alone: cache hit -> ``SliceDataset`` -> the
  augmentation -> ``DataLoader`` with the model's batch and the profile's workers (measured once
  per batch size: it does not depend on the model otherwise);
* ``epoch_img_s`` — training fed by that data path, and ``data_ratio = epoch_img_s /
  train_img_s``: 1 means the data costs nothing, below 0.9 the data path is a bottleneck.
  Model-only and data-fed steps are timed alternately (:func:`paired_step_times`) so that a
  shared machine's drifting load does not masquerade as data cost;
* ``peak_mem_mb`` — one training step's peak after warm-up (``max_memory_reserved`` on CUDA,
  :func:`~spineseg_core.measure.efficiency.step_peak_memory`; the named estimate of
  :func:`~spineseg_core.measure.efficiency.train_step_memory` elsewhere).

The data path is the trainer's by default (:class:`DataPath`, resolved by
:func:`~spineseg_core.training.step.augment_path`): TorchIO per slice inside the loader on the CPU,
the trainer's :class:`~spineseg_core.data.batch_augment.BatchAugment` (pixel units, seeded per
epoch) on the batch on a GPU.
Timings are medians of few steps: they compare models on one machine, they are not constants.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import Dataset

from spineseg_core.errors import ConfigError, parse_choice
from spineseg_core.measure.efficiency import (
    CudaMemory,
    MemMethod,
    MemoryProbe,
    step_peak_memory,
    train_step_memory,
)
from spineseg_core.measure.timing import (
    BenchSettings,
    Peak,
    backend_like_trainer,
    bench_loss,
    interleaved_medians,
    matmul_peak_flops,
    model_throughput,
    random_batch,
    sync,
    theoretical_peak,
    timed,
    train_step_flops,
)
from spineseg_core.models import build_model, list_models, model_info
from spineseg_core.training.config import DeviceChoice, TrainConfig, resolve_config
from spineseg_core.training.device import resolve_device
from spineseg_core.training.precision import Precision
from spineseg_core.training.step import AugmentPath, TrainStep, augment_path, epoch_generator, train_loader

BENCH_COLUMNS: tuple[str, ...] = (
    "model", "display_name", "device", "size", "width", "batch", "train_img_s", "infer_img_s",
    "step_flops", "achieved_gflop_s", "peak_gflop_s", "peak_ratio", "data_slices_s",
    "epoch_img_s", "data_ratio", "peak_mem_mb", "mem_method", "precision", "threads", "torch",
    "data_path", "num_workers", "gemm_gflop_s", "peak_basis")
"""Columns of :func:`bench_table` (the issue's list, then how the data was fed)."""

DATA_COLUMNS: tuple[str, ...] = ("data_slices_s", "epoch_img_s", "data_ratio")
"""Columns left empty by ``with_data=False``."""


class DataPath(StrEnum):
    """Where the training augmentation runs.

    ``auto`` is the trainer's choice for the device: ``slice`` on the CPU, ``batched`` on CUDA.
    ``slice``: TorchIO per slice inside the dataset, i.e. in the ``DataLoader`` (and its
    workers). ``batched``: the loader only reads slices; :class:`BatchAugment` transforms the
    whole batch as tensor operations on the training device.
    """

    AUTO = "auto"
    SLICE = "slice"
    BATCHED = "batched"


@dataclass
class DataPipe:
    """The training data path of one configuration, as an endless stream of device batches."""

    dataset: Dataset
    cfg: TrainConfig
    device: torch.device
    path: DataPath
    augment: Callable[..., Tensor] | None = None

    def batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        """``(image, mask)`` on the device, augmented, epoch after epoch (a new loader per epoch
        as in the trainer, so worker start-up is part of the cost; the batched augmentation
        seeded per epoch as in the trainer)."""
        pin = self.device.type == "cuda"
        for epoch in itertools.count(1):
            gen = (epoch_generator(self.cfg.seed, epoch, self.device)
                   if self.augment is not None else None)
            for item in train_loader(self.dataset, self.cfg, epoch, pin):
                x = item["image"].to(self.device, non_blocking=True)
                y = item["mask"].to(self.device, non_blocking=True)
                if self.augment is not None:
                    x = self.augment(x, generator=gen)
                yield x, y


def build_data_pipe(cfg: TrainConfig, device: torch.device,
                    path: DataPath | str = DataPath.AUTO) -> DataPipe:
    """The data path of ``cfg`` (phantom or ``data_dir``, through the volume cache, as the
    trainer prepares it) with the augmentation placed as ``path`` says, made by the trainer's
    own functions (``prepare_data``, ``batch_augmentation``)."""
    from dataclasses import replace

    from spineseg_core.data.prepare import prepare_data
    from spineseg_core.training.step import batch_augmentation

    path = parse_choice(DataPath, path, "data_path")
    if path is not DataPath.AUTO:
        cfg = replace(cfg, gpu_augment=path is DataPath.BATCHED)
    chosen = augment_path(cfg, device)
    path = DataPath.BATCHED if chosen is AugmentPath.BATCHED else DataPath.SLICE if \
        path is DataPath.AUTO else path
    bundle = prepare_data(cfg, model_info(cfg.model), slice_augment=chosen is AugmentPath.SLICE)
    if len(bundle.train) < cfg.batch_size:
        raise ConfigError(f"data: {len(bundle.train)} training slices, fewer than one batch "
                          f"of {cfg.batch_size}")
    return DataPipe(bundle.train, cfg, device, path, augment=batch_augmentation(cfg, device))


def data_throughput(pipe: DataPipe, settings: BenchSettings) -> float:
    """Slices per second of the data path alone (loader + augmentation), after warm-up."""
    it = pipe.batches()
    for _ in range(max(settings.warmup, 1)):  # the first batch pays the workers' start-up
        next(it)
    sync(pipe.device)
    n = 0
    t0 = time.perf_counter()
    for _ in range(settings.n_data_batches):
        x, _y = next(it)
        n += x.shape[0]
    sync(pipe.device)
    return n / (time.perf_counter() - t0)


def paired_step_times(step: TrainStep, x: Tensor, y: Tensor, pipe: DataPipe,
                      settings: BenchSettings) -> tuple[float, float]:
    """Median seconds of a model-only step on ``(x, y)`` and of a data-fed step (fetch a batch
    from ``pipe``, then the same step), measured *alternately*.

    Alternating makes both medians see the same machine load, so their ratio stays meaningful
    on a shared machine where the load drifts between two separate measurements. (With
    ``num_workers > 0`` the workers also prefetch during the model-only steps, as they do
    during any step of an epoch.)
    """
    x = step.prepare(x)
    it = pipe.batches()

    def fed() -> None:
        xb, yb = next(it)
        step(xb, yb)

    model_s, fed_s = interleaved_medians([lambda: step(x, y, prepared=True), fed],
                                         settings.steps, max(settings.warmup, 1), step.device)
    return model_s, fed_s


def input_size(cfg: TrainConfig) -> tuple[int, int]:
    """``(H, W)`` of the training inputs of ``cfg``: square, or the spine band of
    ``crop_width`` (as :func:`spineseg_core.data.preprocess.spine_band_box` cuts it)."""
    w = cfg.image_size
    if cfg.crop_width is not None:
        w = max(1, int(round(cfg.image_size * cfg.crop_width)))
    return cfg.image_size, w


def bench_model(name: str, cfg: TrainConfig, device: torch.device, settings: BenchSettings,
                peak_flops: float | Peak | Callable[[Precision], float | Peak],
                pipe: DataPipe | None = None,
                data_slices_s: float = float("nan"), *,
                memory: MemoryProbe | None = None,
                gemm_flops: Callable[[Precision], float] | None = None) -> dict[str, Any]:
    """One row of :func:`bench_table` for model ``name`` at ``cfg``'s size and batch.

    ``peak_flops`` is the device's theoretical peak, or a function giving it for the step's
    precision; ``gemm_flops`` the measured matmul rate for the same (``gemm_gflop_s``; empty
    without it); ``pipe`` must deliver batches of ``cfg.batch_size`` (the data-fed step is
    compared with the model-only step at that batch). ``memory`` reads the real peak of one
    step after warm-up (default: :class:`~spineseg_core.measure.efficiency.CudaMemory` on CUDA; on
    the CPU the saved-tensor estimate)."""
    if pipe is not None and pipe.cfg.batch_size != cfg.batch_size:
        raise ConfigError(f"bench of {name}: the data path delivers batches of "
                          f"{pipe.cfg.batch_size}, the model is timed at {cfg.batch_size}")
    info = model_info(name)
    size, batch = input_size(cfg), cfg.batch_size
    torch.manual_seed(cfg.seed)
    model = build_model(name, **(cfg.model_kwargs or {}))
    loss_fn = bench_loss(cfg.loss)
    in_ch = int(getattr(model, "in_channels", 1))
    flops = train_step_flops(model, loss_fn, size, batch, in_channels=in_ch, device=device)
    if memory is None and device.type == "cuda":
        memory = CudaMemory(device)
    if memory is None:
        mem = train_step_memory(model, size, batch, device)
        mem_mb, mem_method = mem.peak_mb, str(mem.method)
    step = TrainStep.create(model, loss_fn, device, channels_last=cfg.channels_last,
                            amp=cfg.amp, lr=cfg.lr)
    peak = peak_flops(step.precision) if callable(peak_flops) else peak_flops
    if not isinstance(peak, Peak):
        peak = Peak(float(peak), "given")
    gemm = gemm_flops(step.precision) if gemm_flops is not None else float("nan")
    x, y = random_batch(batch, size, device, in_channels=in_ch)
    if memory is not None:  # before the timing: warm-up, reset, one step
        mem_mb = step_peak_memory(step, step.prepare(x), y, memory, warmup=settings.warmup)
        mem_method = str(MemMethod.CUDA_PEAK) + f" ({step.precision})"
    if pipe is not None:
        train_s, fed_s = paired_step_times(step, x, y, pipe, settings)
        xp = step.prepare(x)
        infer_s, _ = timed(lambda: step.infer(xp), settings.steps, settings.warmup, device)
    else:
        train_s, infer_s = model_throughput(step, x, y, settings)
        fed_s = float("nan")
    epoch_ips = batch / fed_s
    train_ips = batch / train_s
    achieved = flops / train_s
    return dict(
        model=name, display_name=info.display_name, device=str(device), size=size[0],
        width=size[1], batch=batch, train_img_s=train_ips, infer_img_s=batch / infer_s, step_flops=flops,
        achieved_gflop_s=achieved / 1e9, peak_gflop_s=peak.flops / 1e9,
        peak_ratio=achieved / peak.flops, data_slices_s=data_slices_s, epoch_img_s=epoch_ips,
        data_ratio=epoch_ips / train_ips, peak_mem_mb=mem_mb, mem_method=mem_method,
        precision=str(step.precision), threads=torch.get_num_threads(), torch=torch.__version__,
        data_path=str(pipe.path) if pipe is not None else pd.NA,
        num_workers=cfg.num_workers, gemm_gflop_s=gemm / 1e9, peak_basis=peak.basis)


def bench_table(profile: str = "cpu", models: Sequence[str] | None = None, *,
                size: int | None = None, batch: int | None = None,
                device: DeviceChoice | str = DeviceChoice.AUTO, settings: BenchSettings | None = None,
                with_data: bool = True, data_path: DataPath | str = DataPath.AUTO,
                num_workers: int | None = None, threads: int | None = None,
                progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """One row per model with :data:`BENCH_COLUMNS`, measured in this process.

    ``size``, ``batch``, ``num_workers`` and ``threads`` override the profile's values (read
    with :func:`~spineseg_core.training.config.resolve_config`). ``with_data=False`` leaves the
    data-path columns empty and builds no dataset. ``progress`` receives one line per model.
    """
    settings = settings or BenchSettings()
    names = list(models) if models else list_models()
    for n in names:
        if model_info(n).volumetric:  # unknown names fail before any work, listing them all
            raise ConfigError(f"bench: {n} is fed whole volumes; this table measures slice "
                              f"models (2D and 2.5D) only, a volume's cost is not measured yet")
    dev = resolve_device(device)
    # The bench measures the phantom's data path (and random batches): phantom=True says so
    # on the paper profile, which otherwise asks for real data.
    cfg = resolve_config(profile, image_size=size, batch_size=batch, num_workers=num_workers,
                         threads=threads, device=str(dev), phantom=True)
    if cfg.threads and cfg.threads != torch.get_num_threads():
        torch.set_num_threads(cfg.threads)
    rows = []
    gemms: dict[Precision, float] = {}

    def peak(precision: Precision) -> Peak:
        return theoretical_peak(dev, precision)

    def gemm(precision: Precision) -> float:  # measured once per precision the models use
        if precision not in gemms:
            gemms[precision] = matmul_peak_flops(dev, settings.peak_size, precision=precision)
        return gemms[precision]

    pipes: dict[int, tuple[DataPipe, float]] = {}

    def data_for(model_cfg: TrainConfig) -> tuple[DataPipe | None, float]:
        """The data path at the model's batch (built and timed once per batch size)."""
        if not with_data:
            return None, float("nan")
        if model_cfg.batch_size not in pipes:
            pipe = build_data_pipe(model_cfg, dev, data_path)
            pipes[model_cfg.batch_size] = pipe, data_throughput(pipe, settings)
        return pipes[model_cfg.batch_size]

    with backend_like_trainer(dev):
        for name in names:
            t0 = time.perf_counter()
            # The model's own values on the profile, its budget exception included
            # (training.budgets: e.g. MiniSeg in fp32, DANet at stride 8 on the cpu profile).
            model_cfg = resolve_config(profile, model=name, image_size=size, batch_size=batch,
                                       num_workers=num_workers, threads=threads,
                                       device=str(dev), phantom=True)
            pipe, data_sps = data_for(model_cfg)
            row = bench_model(name, model_cfg, dev, settings, peak, pipe, data_sps,
                              gemm_flops=gemm)
            rows.append(row)
            if progress is not None:
                progress(f"{name}: train {row['train_img_s']:.2f} img/s, "
                         f"{row['achieved_gflop_s']:.1f} GFLOP/s ({row['peak_ratio']:.0%} of "
                         f"peak), data ratio {row['data_ratio']:.2f} "
                         f"[{time.perf_counter() - t0:.0f} s]")
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    table = pd.DataFrame(rows, columns=list(BENCH_COLUMNS))
    if not with_data:
        table[list(DATA_COLUMNS)] = float("nan")
    return table


def bench_seconds_per_step(bench: pd.DataFrame) -> dict[str, float]:
    """Model-only seconds per optimiser step of each model of ``bench.csv``
    (:func:`bench_table`'s rows: batch over training images a second)."""
    return dict(zip(bench["model"], bench["batch"] / bench["train_img_s"], strict=True))
