"""How big and how fast each model is: parameters, MACs, training memory, throughput.

* Parameters and MACs are counted on the ``meta`` device (shapes only, no memory, no compute),
  so a 900-GMAC model at 880x880 is counted in about a second on any machine. MACs are
  ``FlopCounterMode``'s FLOPs / 2: the paper's "FLOPs" are multiply-accumulates (see
  ``resources/model_budget.md``).
* Training memory is the peak of one real training step on a GPU: the trainer's own step
  (:class:`~spineseg_core.training.step.TrainStep`: its precision, channels-last, the Dice loss,
  Adam), measured after a warm-up step (so cuDNN's autotuning is not in it) as
  ``torch.cuda.max_memory_reserved``, what the card must hold, not the smaller
  ``max_memory_allocated``. Without a GPU it is an *estimate*, named as such
  in the ``mem_method`` column: the bytes of every tensor autograd saves for the backward pass
  of one forward on the meta device (deduplicated by storage, parameters excluded), plus
  parameters, their gradients and Adam's two moments. It leaves out allocator slack and
  short-lived buffers, so it is a lower bound of what a GPU would report.
* Throughput is images per second of the same step and of inference on the given device,
  timed exactly as ``spineseg bench`` times them (:func:`spineseg_core.measure.timing.model_throughput`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from spineseg_core.errors import ConfigError, parse_choice
from spineseg_core.measure.timing import (
    BenchSettings,
    backend_like_trainer,
    bench_loss,
    meta_copy,
    model_throughput,
    random_batch,
    spatial,
)
from spineseg_core.models import MultiOutput, build_model, list_models, model_info
from spineseg_core.training.config import TrainConfig, resolve_config
from spineseg_core.training.device import resolve_device
from spineseg_core.training.precision import Precision, precision_for
from spineseg_core.training.step import TrainStep

PAPER_SIZE = 880
"""The slice size of the paper's Table 3 (the most common MRSpineSeg size)."""

EFFICIENCY_COLUMNS: tuple[str, ...] = (
    "model", "display_name", "family", "backbone", "params", "params_m", "params_inference_m",
    "gmacs_880", "size", "gmacs_size", "train_peak_mem_mb", "mem_device", "mem_method",
    "measure_size", "measure_width", "batch", "fits_24gb", "train_img_s", "infer_img_s", "device",
    "precision")
"""Columns of :func:`efficiency_table` (CONTRIBUTING's list plus scope and method columns)."""

CARD_24GB_MIB = 24 * 1024
"""Memory of the paper's card (an RTX 3090: 24 GiB)."""

CARD_RESERVE_MIB = 1024
"""What a 24 GiB card keeps from a training step: the CUDA context and the allocator's slack."""


def fits_24gb(peak_mb: float) -> bool:
    """Whether a training step peaking at ``peak_mb`` MiB fits the paper's 24 GiB card, leaving
    :data:`CARD_RESERVE_MIB` for the CUDA context and fragmentation."""
    return bool(peak_mb <= CARD_24GB_MIB - CARD_RESERVE_MIB)


class ParamScope(StrEnum):
    """Which parameters to count: all of them, or only those an evaluation forward uses."""

    ALL = "all"
    INFERENCE = "inference"


class MemMethod(StrEnum):
    """How a training-memory figure was obtained."""

    CUDA_PEAK = "cuda max_memory_reserved, one train step after warm-up"
    SAVED_TENSORS = "estimate: saved activations (meta) + params + grads + Adam moments"


@dataclass(frozen=True)
class MemoryReport:
    """Peak training memory of one step, with where and how it was obtained."""

    peak_mb: float
    device: str
    method: MemMethod
    size: int
    batch: int


def _in_channels(model: nn.Module, default: int = 1) -> int:
    return int(getattr(model, "in_channels", default))


def _resolve_meta(name_or_model: str | nn.Module, in_channels: int | None) -> nn.Module:
    if isinstance(name_or_model, str):
        with torch.device("meta"):
            return build_model(name_or_model, in_channels=in_channels)
    return meta_copy(name_or_model)


def count_params(model: nn.Module, *, scope: ParamScope | str = ParamScope.ALL,
                 size: int = 64) -> int:
    """Number of parameters of ``model`` (shared tensors once).

    ``scope="inference"`` counts only the parameters of modules that an evaluation forward
    pass (at ``size`` x ``size``, on a meta copy) actually calls, leaving out heads that only
    serve the training loss.
    """
    scope = parse_choice(ParamScope, scope, "scope")
    if scope is ParamScope.ALL:
        return sum(p.numel() for p in model.parameters())
    meta = meta_copy(model).eval()
    called: set[str] = set()
    handles = [m.register_forward_pre_hook(lambda mod, args, name=name: called.add(name))
               for name, m in meta.named_modules()]
    try:
        with torch.no_grad():
            meta(torch.empty(1, _in_channels(model), *spatial(size), device="meta"))
    finally:
        for h in handles:
            h.remove()
    seen: set[int] = set()
    total = 0
    for name, m in model.named_modules():
        if name not in called:
            continue
        for p in m.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
    return total


def count_macs(name_or_model: str | nn.Module, size: int = PAPER_SIZE,
               in_channels: int | None = None, batch: int = 1) -> int:
    """Multiply-accumulates of one evaluation forward pass at ``size`` x ``size`` (meta device).

    A name builds the registered model (unknown names raise a :class:`ConfigError` that lists
    the valid ones); a module is counted through a meta copy, leaving it untouched.
    ``in_channels`` defaults to the model's own (a 2.5D model's context, else 1).
    """
    if size < 1 or batch < 1:
        raise ConfigError(f"size and batch must be >= 1, got size={size}, batch={batch}")
    model = _resolve_meta(name_or_model, in_channels).eval()
    in_channels = _in_channels(model, 1) if in_channels is None else in_channels
    x = torch.empty(batch, in_channels, *spatial(size), device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def _loss(out: Tensor | MultiOutput, target: Tensor) -> Tensor:
    if isinstance(out, MultiOutput):
        return sum(w * F.cross_entropy(o, target) for o, w in zip(out.logits, out.weights))
    return F.cross_entropy(out, target)


def _saved_tensor_estimate(model: nn.Module, size: int, batch: int) -> float:
    meta = meta_copy(model).train()
    param_storages = {p.untyped_storage()._cdata for p in meta.parameters()}
    saved: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        st = t.untyped_storage()
        if st._cdata not in param_storages:
            saved[st._cdata] = st.nbytes()
        return t

    x = torch.empty(batch, _in_channels(model), *spatial(size), device="meta")
    y = torch.zeros(batch, *spatial(size), dtype=torch.long, device="meta")
    num_classes = int(getattr(model, "num_classes", 20))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = meta(x)
        _loss(out, y.clamp(max=num_classes - 1))
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return (sum(saved.values()) + 4 * param_bytes) / 2**20


class MemoryProbe(Protocol):
    """Reads a device's memory around one step: :meth:`reset` before it, :meth:`peak_mb`
    after it (injectable, so the order of the measurement is testable without a GPU)."""

    def reset(self) -> None: ...

    def peak_mb(self) -> float: ...


@dataclass(frozen=True)
class CudaMemory:
    """:class:`MemoryProbe` of a CUDA device: ``reset`` waits for the device, returns the
    cached blocks (what warm-up left, e.g. cuDNN's autotuning workspaces) and resets the peak;
    ``peak_mb`` is ``max_memory_reserved`` in MiB."""

    device: torch.device

    def reset(self) -> None:
        torch.cuda.synchronize(self.device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(self.device)

    def peak_mb(self) -> float:
        torch.cuda.synchronize(self.device)
        return torch.cuda.max_memory_reserved(self.device) / 2**20


def step_peak_memory(step: TrainStep, x: Tensor, y: Tensor, probe: MemoryProbe, *,
                     warmup: int = 1) -> float:
    """Peak MiB of one step of ``step`` on the prepared batch ``(x, y)``, read by ``probe``
    after ``warmup`` (at least one) unmeasured steps: the first step's autotuning and lazy
    allocations are not a training step's steady peak."""
    for _ in range(max(warmup, 1)):
        step(x, y, prepared=True)
    probe.reset()
    step(x, y, prepared=True)
    return probe.peak_mb()


def _bench_step(model: nn.Module, size: int | tuple[int, int], batch: int,
                device: torch.device, *, loss: str, precision: Precision,
                channels_last: bool) -> tuple[TrainStep, Tensor, Tensor]:

    step = TrainStep.create(model, bench_loss(loss), device, precision=precision,
                            channels_last=channels_last)
    x, y = random_batch(batch, size, device, in_channels=_in_channels(model),
                        num_classes=int(getattr(model, "num_classes", 20)))
    return step, step.prepare(x), y


def train_step_memory(model: nn.Module, size: int, batch: int,
                      device: torch.device | str = "cpu", *, loss: str = TrainConfig.loss,
                      precision: Precision | None = None, channels_last: bool = True,
                      warmup: int = 1, probe: MemoryProbe | None = None) -> MemoryReport:
    """Peak memory of one training step (the trainer's: forward in ``precision``, ``loss``,
    backward, Adam) at ``batch`` x ``size``².

    On CUDA (or with an explicit ``probe``): :func:`step_peak_memory` of a real step after
    ``warmup`` steps, ``max_memory_reserved``. Elsewhere: the saved-tensor estimate of the
    module docstring (computed on a meta copy, so any size is cheap), reported with
    ``device="meta"``.
    """
    device = torch.device(device)
    if probe is None and device.type != "cuda":
        return MemoryReport(_saved_tensor_estimate(model, size, batch), "meta",
                            MemMethod.SAVED_TENSORS, size, batch)
    probe = probe or CudaMemory(device)
    step, x, y = _bench_step(model, size, batch, device, loss=loss,
                             precision=precision or precision_for(device, True),
                             channels_last=channels_last)
    peak = step_peak_memory(step, x, y, probe, warmup=warmup)
    return MemoryReport(peak, str(device), MemMethod.CUDA_PEAK, size, batch)


def throughput(model: nn.Module, size: int | tuple[int, int], batch: int, device: torch.device | str = "cpu",
               steps: int = 3, warmup: int = 1, *, loss: str = TrainConfig.loss,
               precision: Precision | None = None,
               channels_last: bool = True) -> tuple[float, float]:
    """Images per second of ``(training steps, inference forwards)``: the trainer's step
    (:class:`~spineseg_core.training.step.TrainStep`, ``precision`` by default the device's
    choice for ``amp``), medians of ``steps`` after ``warmup``, exactly as ``spineseg bench``
    times them (:func:`spineseg_core.measure.timing.model_throughput`)."""
    if steps < 1 or warmup < 0:
        raise ConfigError(f"steps must be >= 1 and warmup >= 0, got {steps}, {warmup}")

    device = torch.device(device)
    step, x, y = _bench_step(model, size, batch, device, loss=loss,
                             precision=precision or precision_for(device, True),
                             channels_last=channels_last)
    # The trainer's backend settings (deterministic algorithms on the CPU, cuDNN autotuning on
    # CUDA), as `spineseg bench` sets them: they change which kernels run, and so the speed.
    with backend_like_trainer(device):
        train_s, infer_s = model_throughput(step, x, y, BenchSettings(steps=steps,
                                                                      warmup=warmup))
    return batch / train_s, batch / infer_s


def efficiency_table(models: Sequence[str] | None = None, size: int = PAPER_SIZE, *,
                     measure_size: int = 128, measure_width: int | None = None,
                     batch: int | None = 2,
                     device: torch.device | str = "cpu",
                     with_throughput: bool = True, steps: int = 3,
                     warmup: int = 1, amp: bool = True, channels_last: bool = True,
                     loss: str = TrainConfig.loss, profile: str | None = None) -> pd.DataFrame:
    """One row per model with :data:`EFFICIENCY_COLUMNS`.

    Parameters and MACs (at 880 and at ``size``) are counted on the meta device; training
    memory is measured at ``size`` (real on CUDA, estimated elsewhere: see ``mem_method``);
    throughput is measured at ``measure_size`` x ``measure_width`` (default square) on
    ``device`` unless ``with_throughput`` is off.
    Memory and throughput run the trainer's step in the precision ``amp`` gives on ``device``
    (the ``precision`` column), channels-last and with ``loss`` as the paper profile does.
    With ``profile``, each model is built, batched and run in the precision of its resolved
    configuration on that profile (its budget exception:
    :mod:`spineseg_core.training.budgets`), ``batch`` overriding the batch when given.
    """
    names = list(models) if models else list_models()
    for n in names:
        if model_info(n).volumetric:  # unknown names fail before any work, listing them all
            raise ConfigError(f"efficiency: {n} is fed whole volumes; this table measures slice "
                              f"models (2D and 2.5D) only, a volume's cost is not measured yet")
    measure_width = measure_size if measure_width is None else measure_width
    if batch is None and profile is None:
        raise ConfigError("efficiency: give a batch, or a profile whose batch to use")
    if min(size, measure_size, measure_width, batch or 1) < 1:
        raise ConfigError(f"size, measure_size and batch must be >= 1, got "
                          f"{size}, {measure_size}, {batch}")
    device = resolve_device(device)
    precision = precision_for(device, amp)
    rows = []
    given_batch = batch
    for name in names:
        info = model_info(name)
        kwargs: dict = {}
        if profile is not None:  # random batches: phantom=True only quiets the data check
            cfg = resolve_config(profile, model=name, batch_size=given_batch, phantom=True)
            kwargs, batch = dict(cfg.model_kwargs or {}), cfg.batch_size
            precision = precision_for(device, cfg.amp)
        with torch.device("meta"):
            meta = build_model(name, **kwargs)
        params = count_params(meta)
        mem = train_step_memory(meta if device.type != "cuda" else build_model(name, **kwargs),
                                size, batch, device, loss=loss, precision=precision,
                                channels_last=channels_last, warmup=warmup)
        train_ips = infer_ips = float("nan")
        if with_throughput:
            torch.manual_seed(0)
            train_ips, infer_ips = throughput(build_model(name, **kwargs),
                                              (measure_size, measure_width),
                                              batch, device,
                                              steps, warmup, loss=loss, precision=precision,
                                              channels_last=channels_last)
        gmacs_880 = count_macs(meta, PAPER_SIZE) / 1e9
        rows.append(dict(
            model=name, display_name=info.display_name, family=str(info.family),
            backbone=info.backbone, params=params, params_m=params / 1e6,
            params_inference_m=count_params(meta, scope=ParamScope.INFERENCE) / 1e6,
            gmacs_880=gmacs_880,
            size=size, gmacs_size=gmacs_880 if size == PAPER_SIZE else count_macs(meta, size) / 1e9,
            train_peak_mem_mb=mem.peak_mb, mem_device=mem.device, mem_method=str(mem.method),
            measure_size=measure_size if with_throughput else pd.NA,
            measure_width=measure_width if with_throughput else pd.NA, batch=batch,
            fits_24gb=fits_24gb(mem.peak_mb), train_img_s=train_ips, infer_img_s=infer_ips,
            device=str(device), precision=str(precision)))
    return pd.DataFrame(rows, columns=list(EFFICIENCY_COLUMNS))
