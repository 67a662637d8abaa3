"""How big and how fast each model is: parameters, MACs, training memory, throughput.

* Parameters and MACs are counted on the ``meta`` device (shapes only, no memory, no compute),
  so a 900-GMAC model at 880x880 is counted in about a second on any machine. MACs are
  ``FlopCounterMode``'s FLOPs / 2: the paper's "FLOPs" are multiply-accumulates (see
  ``resources/model_budget.md``).
* Training memory is the peak of one real training step (forward, backward, Adam step) from
  ``torch.cuda.max_memory_allocated`` on a GPU. Without a GPU it is an *estimate*, named as such
  in the ``mem_method`` column: the bytes of every tensor autograd saves for the backward pass
  of one forward on the meta device (deduplicated by storage, parameters excluded), plus
  parameters, their gradients and Adam's two moments. It leaves out allocator slack and
  short-lived buffers, so it is a lower bound of what a GPU would report.
* Throughput is images per second of real training steps and of inference on the given device.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from .errors import ConfigError, parse_choice
from .models import MultiOutput, build_model, list_models, model_info

PAPER_SIZE = 880
"""The slice size of the paper's Table 3 (the most common MRSpineSeg size)."""

EFFICIENCY_COLUMNS: tuple[str, ...] = (
    "model", "display_name", "family", "backbone", "params", "params_m", "params_inference_m",
    "gmacs_880", "size", "gmacs_size", "train_peak_mem_mb", "mem_device", "mem_method",
    "measure_size", "batch", "fits_24gb", "train_img_s", "infer_img_s", "device")
"""Columns of :func:`efficiency_table` (CONTRIBUTING's list plus scope and method columns)."""

CARD_24GB_MIB = 24 * 1024
"""Memory of the paper's card (an RTX 3090: 24 GiB)."""

CARD_RESERVE_MIB = 1024
"""What a 24 GiB card keeps from a training step: the CUDA context and the allocator's slack."""


def fits_24gb(peak_mb: float) -> bool:
    """Whether a training step peaking at ``peak_mb`` MiB fits the paper's 24 GiB card, leaving
    :data:`CARD_RESERVE_MIB` for the CUDA context and fragmentation."""
    return bool(peak_mb <= CARD_24GB_MIB - CARD_RESERVE_MIB)


def spatial(size: int | tuple[int, int]) -> tuple[int, int]:
    """``(H, W)`` of an input size given as one side (square) or as ``(H, W)``."""
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


class ParamScope(StrEnum):
    """Which parameters to count: all of them, or only those an evaluation forward uses."""

    ALL = "all"
    INFERENCE = "inference"


class MemMethod(StrEnum):
    """How a training-memory figure was obtained."""

    CUDA_PEAK = "cuda max_memory_allocated, one train step"
    SAVED_TENSORS = "estimate: saved activations (meta) + params + grads + Adam moments"


@dataclass(frozen=True)
class MemoryReport:
    """Peak training memory of one step, with where and how it was obtained."""

    peak_mb: float
    device: str
    method: MemMethod
    size: int
    batch: int


def resolve_device(device: torch.device | str) -> torch.device:
    """``device`` as a :class:`torch.device` (``"auto"``: CUDA when available, else the CPU);
    a bad name or a missing GPU is a ConfigError."""
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be e.g. 'cpu' or 'cuda', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but no CUDA GPU is available")
    return dev


def _in_channels(model: nn.Module, default: int = 1) -> int:
    return int(getattr(model, "in_channels", default))


def meta_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose parameters and buffers live on the meta device (no data copied)."""
    memo: dict[int, object] = {}
    for t in list(model.parameters()) + list(model.buffers()):
        meta = torch.empty_like(t, device="meta")
        memo[id(t)] = nn.Parameter(meta, requires_grad=t.requires_grad) \
            if isinstance(t, nn.Parameter) else meta
    return copy.deepcopy(model, memo)


def _resolve_meta(name_or_model: str | nn.Module, in_channels: int) -> nn.Module:
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


def count_macs(name_or_model: str | nn.Module, size: int = PAPER_SIZE, in_channels: int = 1,
               batch: int = 1) -> int:
    """Multiply-accumulates of one evaluation forward pass at ``size`` x ``size`` (meta device).

    A name builds the registered model (unknown names raise a :class:`ConfigError` that lists
    the valid ones); a module is counted through a meta copy, leaving it untouched.
    """
    if size < 1 or batch < 1:
        raise ConfigError(f"size and batch must be >= 1, got size={size}, batch={batch}")
    model = _resolve_meta(name_or_model, in_channels).eval()
    if not isinstance(name_or_model, str):
        in_channels = _in_channels(name_or_model, in_channels)
    x = torch.empty(batch, in_channels, *spatial(size), device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def _loss(out: Tensor | MultiOutput, target: Tensor) -> Tensor:
    if isinstance(out, MultiOutput):
        return sum(w * F.cross_entropy(o, target) for o, w in zip(out.logits, out.weights))
    return F.cross_entropy(out, target)


def _batch(model: nn.Module, size: int, batch: int, device: torch.device | str,
           num_classes: int) -> tuple[Tensor, Tensor]:
    x = torch.randn(batch, _in_channels(model), *spatial(size), device=device)
    y = torch.randint(0, num_classes, (batch, *spatial(size)), device=device)
    return x, y


def _train_step(model: nn.Module, opt: torch.optim.Optimizer, x: Tensor, y: Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    _loss(model(x), y).backward()
    opt.step()


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


def train_step_memory(model: nn.Module, size: int, batch: int,
                      device: torch.device | str = "cpu") -> MemoryReport:
    """Peak memory of one training step (forward, backward, Adam) at ``batch`` x ``size``².

    On CUDA: the real peak from ``torch.cuda.max_memory_allocated``. Elsewhere: the
    saved-tensor estimate of the module docstring (computed on a meta copy, so any size is
    cheap), reported with ``device="meta"``.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return MemoryReport(_saved_tensor_estimate(model, size, batch), "meta",
                            MemMethod.SAVED_TENSORS, size, batch)
    model = model.to(device).train()
    opt = torch.optim.Adam(model.parameters())
    x, y = _batch(model, size, batch, device, int(getattr(model, "num_classes", 20)))
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    _train_step(model, opt, x, y)
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) / 2**20
    return MemoryReport(peak, str(device), MemMethod.CUDA_PEAK, size, batch)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(model: nn.Module, size: int, batch: int, device: torch.device | str = "cpu",
               steps: int = 3, warmup: int = 1) -> tuple[float, float]:
    """Images per second of ``(training steps, inference forwards)`` after ``warmup`` untimed steps.

    Training is forward + cross-entropy over all outputs + backward + Adam step; inference is
    an evaluation forward without gradients. The model is left in evaluation mode.
    """
    if steps < 1 or warmup < 0:
        raise ConfigError(f"steps must be >= 1 and warmup >= 0, got {steps}, {warmup}")
    device = torch.device(device)
    model = model.to(device).train()
    opt = torch.optim.Adam(model.parameters())
    x, y = _batch(model, size, batch, device, int(getattr(model, "num_classes", 20)))
    for _ in range(warmup):
        _train_step(model, opt, x, y)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        _train_step(model, opt, x, y)
    _sync(device)
    train_s = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            model(x)
        _sync(device)
        infer_s = time.perf_counter() - t0
    return steps * batch / train_s, steps * batch / infer_s


def efficiency_table(models: Sequence[str] | None = None, size: int = PAPER_SIZE, *,
                     measure_size: int = 128, batch: int = 2, device: torch.device | str = "cpu",
                     with_throughput: bool = True, steps: int = 3,
                     warmup: int = 1) -> pd.DataFrame:
    """One row per model with :data:`EFFICIENCY_COLUMNS`.

    Parameters and MACs (at 880 and at ``size``) are counted on the meta device; training
    memory is measured at ``size`` (real on CUDA, estimated elsewhere: see ``mem_method``);
    throughput is measured at ``measure_size`` on ``device`` unless ``with_throughput`` is off.
    """
    names = list(models) if models else list_models()
    for n in names:
        model_info(n)  # unknown names fail before any work, listing the valid ones
    if min(size, measure_size, batch) < 1:
        raise ConfigError(f"size, measure_size and batch must be >= 1, got "
                          f"{size}, {measure_size}, {batch}")
    device = resolve_device(device)
    rows = []
    for name in names:
        info = model_info(name)
        with torch.device("meta"):
            meta = build_model(name)
        params = count_params(meta)
        mem = train_step_memory(meta if device.type != "cuda" else build_model(name),
                                size, batch, device)
        train_ips = infer_ips = float("nan")
        if with_throughput:
            torch.manual_seed(0)
            train_ips, infer_ips = throughput(build_model(name), measure_size, batch, device,
                                              steps, warmup)
        gmacs_880 = count_macs(meta, PAPER_SIZE) / 1e9
        rows.append(dict(
            model=name, display_name=info.display_name, family=str(info.family),
            backbone=info.backbone, params=params, params_m=params / 1e6,
            params_inference_m=count_params(meta, scope=ParamScope.INFERENCE) / 1e6,
            gmacs_880=gmacs_880,
            size=size, gmacs_size=gmacs_880 if size == PAPER_SIZE else count_macs(meta, size) / 1e9,
            train_peak_mem_mb=mem.peak_mb, mem_device=mem.device, mem_method=str(mem.method),
            measure_size=measure_size if with_throughput else pd.NA, batch=batch,
            fits_24gb=fits_24gb(mem.peak_mb), train_img_s=train_ips, infer_img_s=infer_ips,
            device=str(device)))
    return pd.DataFrame(rows, columns=list(EFFICIENCY_COLUMNS))
