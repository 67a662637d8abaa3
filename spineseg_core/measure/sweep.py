"""Which step settings make each model's training step cheapest on this machine (issue 24, part 8).

For every model, the training step (:class:`~spineseg_core.training.step.TrainStep`, on the
profile's batch and size, the model's budget exception applied) is timed under each
:class:`StepSettings` of a sweep: memory layout (channels-last or not), precision (bf16
autocast or fp32) and whether fresh memory is filled (the trainer before and after part 8). The
settings are timed *interleaved*, one step of each in turn for ``rounds`` rounds, and each gets the
median, so a shared machine's drifting load shifts them all alike instead of favouring whichever
ran in a quiet minute.

The achieved rate (nominal FLOPs of the step / step time) is set against the same process's
matrix-multiply rate in bf16 and in fp32 (:func:`~.timing.matmul_peak_flops`): the ratio says
how far a model's step is from what the machine does on its best-shaped work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from spineseg_core.measure.speed import input_size
from spineseg_core.measure.timing import (
    backend_like_trainer,
    bench_loss,
    interleaved_medians,
    matmul_peak_flops,
    random_batch,
    train_step_flops,
)
from spineseg_core.models import build_model, list_models, model_info
from spineseg_core.training.config import resolve_config
from spineseg_core.training.device import resolve_device
from spineseg_core.training.precision import Precision, precision_for
from spineseg_core.training.step import TrainStep


@dataclass(frozen=True)
class StepSettings:
    """One point of the sweep."""

    channels_last: bool
    precision: Precision
    fill_memory: bool = False
    """``torch.utils.deterministic.fill_uninitialized_memory`` (the trainer leaves it off)."""

    @property
    def label(self) -> str:
        layout = "channels-last" if self.channels_last else "channels-first"
        fill = ", fresh memory filled" if self.fill_memory else ""
        return f"{layout}, {self.precision}{fill}"


DEFAULT_SWEEP: tuple[StepSettings, ...] = tuple(
    StepSettings(cl, p) for p in (Precision.BF16, Precision.FP32) for cl in (True, False))
"""Layout x precision, under the trainer's backend (deterministic algorithms on the CPU)."""


def trainer_settings(precision: Precision, channels_last: bool = True) -> tuple[StepSettings, ...]:
    """The trainer's settings before and after part 8 of issue 24 (fresh memory filled or
    not), for a model of ``precision``: the change's own before/after on one machine."""
    return (StepSettings(channels_last, precision, fill_memory=True),
            StepSettings(channels_last, precision))

SWEEP_COLUMNS: tuple[str, ...] = (
    "model", "settings", "channels_last", "precision", "fill_memory", "step_s", "img_s",
    "step_flops", "achieved_gflop_s", "gemm_bf16_gflop_s", "gemm_fp32_gflop_s",
    "ratio_to_gemm", "profile_precision", "profile_channels_last", "threads", "rounds")


def step_settings_sweep(profile: str = "cpu", models: Sequence[str] | None = None, *,
                        sweep: Sequence[StepSettings] | Callable[[Precision], Sequence[StepSettings]]
                        = DEFAULT_SWEEP, rounds: int = 5,
                        warmup: int = 2, device: str = "auto", gemm_n: int | None = None,
                        progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """One row per model and setting with :data:`SWEEP_COLUMNS` (see the module docstring);
    ``sweep`` may be a function of the model's own precision (e.g. :func:`trainer_settings`);
    ``gemm_n`` the side of the matmuls (default: :func:`~.timing.matmul_peak_flops`')."""
    dev = resolve_device(device)
    names = [n for n in (models or list_models()) if not model_info(n).volumetric]
    gemm = {p: matmul_peak_flops(dev, gemm_n, precision=p) for p in (Precision.BF16, Precision.FP32)}
    rows = []
    with backend_like_trainer(dev):  # the trainer's backend, restored after
        for name in names:
            cfg = resolve_config(profile, model=name, device=str(dev), phantom=True)
            size = input_size(cfg)
            torch.manual_seed(cfg.seed)
            proto = build_model(name, **(cfg.model_kwargs or {}))
            loss_fn = bench_loss(cfg.loss)
            in_ch = int(getattr(proto, "in_channels", 1))
            flops = train_step_flops(proto, loss_fn, size, cfg.batch_size, in_channels=in_ch,
                                     device=dev)
            x, y = random_batch(cfg.batch_size, size, dev, in_channels=in_ch)
            default = precision_for(dev, cfg.amp)
            settings = sweep(default) if callable(sweep) else tuple(sweep)
            calls = []
            for s in settings:
                model = build_model(name, **(cfg.model_kwargs or {}))
                model.load_state_dict(proto.state_dict())
                step = TrainStep.create(model, bench_loss(cfg.loss), dev, precision=s.precision,
                                        channels_last=s.channels_last, lr=cfg.lr)
                xp = step.prepare(x)

                def call(step: TrainStep = step, xp: torch.Tensor = xp, y: torch.Tensor = y,
                         fill: bool = s.fill_memory) -> object:
                    torch.utils.deterministic.fill_uninitialized_memory = fill  # type: ignore[attr-defined]
                    return step(xp, y, prepared=True)
                calls.append(call)
            medians = interleaved_medians(calls, rounds, warmup, dev)
            for s, sec in zip(settings, medians, strict=True):
                achieved = flops / sec
                rows.append(dict(
                    model=name, settings=s.label, channels_last=s.channels_last,
                    precision=str(s.precision), fill_memory=s.fill_memory, step_s=sec,
                    img_s=cfg.batch_size / sec, step_flops=flops,
                    achieved_gflop_s=achieved / 1e9,
                    gemm_bf16_gflop_s=gemm[Precision.BF16] / 1e9,
                    gemm_fp32_gflop_s=gemm[Precision.FP32] / 1e9,
                    ratio_to_gemm=achieved / gemm[s.precision],
                    profile_precision=str(default),
                    profile_channels_last=cfg.channels_last, threads=torch.get_num_threads(),
                    rounds=rounds))
            if progress is not None:
                best = min(zip(medians, settings, strict=True), key=lambda t: t[0])
                progress(f"{name}: " + ", ".join(f"{s.label} {1000 * m:.0f} ms"
                                                 for m, s in zip(medians, settings, strict=True))
                         + f"; fastest {best[1].label}")
    return pd.DataFrame(rows, columns=list(SWEEP_COLUMNS))
