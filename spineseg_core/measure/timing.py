"""The measuring instruments of the benchmark: the trainer's own training step
(:class:`~spineseg_core.training.step.TrainStep`), its FLOPs, the device's peak, the memory of a
step, and clocks that wait for the device; with what both tables share: input sizes
(:func:`spatial`), meta copies (:func:`meta_copy`), how long to measure (:class:`BenchSettings`)
and the timing of a step on a fixed batch (:func:`model_throughput`).

Kept apart from the tables (:mod:`.speed`, :mod:`.vs_monai`) so that every comparison times
exactly the same step as the trainer: forward under the run's precision, channels-last inputs
when the profile says so, the profile's loss summed over the model's outputs with their
weights, backward, Adam step.

The *peak* a step is compared with is theoretical, so that the fraction of peak is a bound:
cores x FLOPs per cycle x clock (:func:`theoretical_peak`, its basis stated in the result).
The FLOPs of a step are *nominal*: those of direct convolutions and matmuls as
``FlopCounterMode`` counts them. A library may run fewer (oneDNN's and cuDNN's Winograd
convolutions do 3x3 convolutions with ~2.25-4x fewer multiplies), so a step's nominal rate can
exceed what the units executed; against the theoretical peak it still stays below 1 unless a
Winograd-heavy model runs near the peak.
"""

from __future__ import annotations

import contextlib
import copy
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from spineseg_core.errors import ConfigError
from spineseg_core.losses import LossName, build_loss, total_loss
from spineseg_core.training.device import configure_backend
from spineseg_core.training.precision import Precision
from spineseg_core.training.step import TrainStep, float_outputs

__all__ = ["BenchSettings", "meta_copy", "model_throughput", "spatial", "theoretical_peak",
           "matmul_peak_flops", "timed", "train_step_flops"]

T = TypeVar("T")

CPU_PEAK_N = 4096
"""Side of the fp32 matmul that measures a CPU's peak (2 x 4096^3 = 137 GFLOP per product)."""

CUDA_PEAK_N = 8192
"""Side of the bf16 matmul that measures a GPU's peak (1.1 TFLOP per product)."""


def spatial(size: int | tuple[int, int]) -> tuple[int, int]:
    """``(H, W)`` of an input size given as one side (square) or as ``(H, W)``."""
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def meta_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose parameters and buffers live on the meta device (no data copied)."""
    memo: dict[int, object] = {}
    for t in list(model.parameters()) + list(model.buffers()):
        meta = torch.empty_like(t, device="meta")
        memo[id(t)] = nn.Parameter(meta, requires_grad=t.requires_grad) \
            if isinstance(t, nn.Parameter) else meta
    return copy.deepcopy(model, memo)


@dataclass(frozen=True)
class BenchSettings:
    """How long to measure: ``steps`` timed after ``warmup`` untimed, for every measurement.
    ``data_batches`` timed batches of the data path alone (default ``max(4, 2 * steps)``);
    ``peak_size`` the side of the peak matmul (default: 4096 on CPU, 8192 on CUDA)."""

    steps: int = 2
    warmup: int = 1
    data_batches: int | None = None
    peak_size: int | None = None

    def __post_init__(self) -> None:
        if self.steps < 1 or self.warmup < 0:
            raise ConfigError(f"steps must be >= 1 and warmup >= 0, got steps={self.steps}, "
                              f"warmup={self.warmup}")
        if self.data_batches is not None and self.data_batches < 1:
            raise ConfigError(f"data_batches must be >= 1, got {self.data_batches}")

    @property
    def n_data_batches(self) -> int:
        return self.data_batches or max(4, 2 * self.steps)


def sync(device: torch.device) -> None:
    """Wait for queued work on ``device`` (a no-op on the CPU) before a clock is read."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], T], repeats: int, warmup: int = 1,
          device: torch.device | None = None) -> tuple[float, T]:
    """Median wall seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls, and the
    last result. With a CUDA ``device`` every call is synchronised before the clock stops."""
    if repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {repeats}")
    dev = device or torch.device("cpu")
    result = None
    for _ in range(warmup):
        result = fn()
    sync(dev)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        sync(dev)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result  # type: ignore[return-value]


def interleaved_medians(calls: Sequence[Callable[[], object]], rounds: int, warmup: int = 1,
                        device: torch.device | None = None) -> list[float]:
    """Median wall seconds of each of ``calls``, timed one call of each in turn for ``rounds``
    rounds after ``warmup`` untimed calls of each: a shared machine's drifting load then shifts
    every median alike, so their ratios stay meaningful."""
    if rounds < 1:
        raise ConfigError(f"rounds must be >= 1, got {rounds}")
    dev = device or torch.device("cpu")
    for _ in range(warmup):
        for fn in calls:
            fn()
    sync(dev)
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(rounds):
        for i, fn in enumerate(calls):
            t0 = time.perf_counter()
            fn()
            sync(dev)
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def matmul_peak_flops(device: torch.device | str = "cpu", n: int | None = None,
                      repeats: int = 3, precision: Precision | None = None) -> float:
    """FLOP/s of the best of ``repeats`` square matmuls on ``device``: the attainable peak.

    In the dtype the training step multiplies in: bf16 for :attr:`Precision.BF16` (default on
    CUDA), fp32 for :attr:`Precision.FP32` (default on the CPU); ``4096``-sided on the CPU,
    ``8192``-sided on CUDA. Measured in the same process as the models, so the ratio
    achieved/peak is immune to the machine's clock and load of the day; and in the step's
    dtype, so a bf16 step is not flattered by an fp32 peak.
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    n = n or (CUDA_PEAK_N if cuda else CPU_PEAK_N)
    if precision is None:
        precision = Precision.BF16 if cuda else Precision.FP32
    dtype = torch.bfloat16 if precision is Precision.BF16 else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    reps = repeats * (10 if cuda or dtype == torch.bfloat16 else 1)
    a @ b
    sync(device)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


@dataclass(frozen=True)
class Peak:
    """A device's theoretical peak in one precision and how it was computed (``basis``)."""

    flops: float
    basis: str


CUDA_BF16_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.5), ("H100 NVL", 835.5), ("H100", 989.4), ("H200", 989.4),
    ("GH200", 989.4), ("A100", 312.0), ("L40S", 362.1), ("L40", 181.0), ("L4", 121.0),
    ("A10G", 70.0), ("A10", 125.0), ("RTX 4090", 165.2), ("RTX 3090", 71.0),
    ("RTX A6000", 154.8))
"""Dense bf16 tensor-core peaks (fp32 accumulation) from the vendor's data sheets, matched by
the first name fragment the device name contains (so "H100 PCIe" before "H100")."""

CUDA_BF16_FLOP_PER_SM_CYCLE: dict[int, int] = {7: 1024, 8: 2048, 9: 4096, 10: 8192, 12: 8192}
"""Dense bf16 FLOPs per SM per cycle by compute-capability major (8.x other than 8.0 does
half: :func:`cuda_peak`), for a card the data-sheet table does not name."""

CUDA_FALLBACK_CLOCK_HZ = 2.5e9
"""An SM clock above any data-centre GPU's boost, used when ``nvidia-smi`` cannot say."""


CPU_BOUND_CLOCK_HZ = 4.5e9
"""The clock assumed when the machine reports no maximum (a VM's ``/proc/cpuinfo`` gives its
nominal clock, below its boost: on a 2.6 GHz-nominal EPYC VM here an fp32 GEMM ran at 423
GFLOP/s, above 2 threads x 64 FLOP x 2.6 GHz): above the boost clock of any server CPU, so the
peak stays a bound."""


def _cpu_clock_hz() -> float | None:
    """The highest clock this Linux machine reports as a maximum (``cpuinfo_max_freq`` of any
    core), or ``None``: ``cpu MHz`` in ``/proc/cpuinfo`` is a current or nominal clock, not a
    maximum, so it is not used."""
    best = 0.0
    for f in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/cpuinfo_max_freq"):
        with contextlib.suppress(OSError, ValueError):
            best = max(best, float(f.read_text()) * 1e3)
    return best or None


def cpu_flop_per_cycle(precision: Precision, capabilities: Mapping[str, object]) -> int:
    """FLOPs one core can issue per cycle, counted generously: two FMA units of the widest
    vector the CPU has (an FMA is 2 FLOPs; AVX-512 16, AVX2 8, SSE 4 fp32 lanes), whether or
    not the core splits a 512-bit FMA in two (AMD Zen 4 does, so this is 2x its rate). bf16:
    AMX-bf16 tiles 1024 per cycle; AVX512-BF16 dot products twice the fp32 rate; otherwise
    emulated, at the fp32 rate."""
    lanes = 16 if capabilities.get("avx512_f") else \
        8 if capabilities.get("avx2") else 4
    fp32 = 2 * 2 * lanes
    if precision is Precision.BF16:
        if capabilities.get("amx_bf16"):
            return 1024
        if capabilities.get("avx512_bf16"):
            return 2 * fp32
    return fp32


def cpu_peak(precision: Precision, *, threads: int | None = None,
             clock_hz: float | None = None,
             capabilities: Mapping[str, object] | None = None) -> Peak:
    """Theoretical CPU peak: ``threads x`` :func:`cpu_flop_per_cycle` ``x clock``. Threads,
    not physical cores, so two hyper-threads of one core count twice (a bound, not an
    estimate); the clock is :func:`_cpu_clock_hz`, or :data:`CPU_BOUND_CLOCK_HZ` when the
    machine reports no maximum."""
    threads = threads or torch.get_num_threads()
    caps = capabilities if capabilities is not None else torch.cpu.get_capabilities()
    clock = clock_hz or _cpu_clock_hz() or CPU_BOUND_CLOCK_HZ
    per_cycle = cpu_flop_per_cycle(precision, caps)
    return Peak(threads * per_cycle * clock,
                f"{threads} threads x {per_cycle} {precision} FLOP/cycle x {clock / 1e9:.2f} GHz")


def _nvidia_smi_max_clock_hz(index: int) -> float | None:
    try:
        out = subprocess.run(["nvidia-smi", "-i", str(index), "--query-gpu=clocks.max.sm",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True,
                             timeout=20, check=True)
        return float(out.stdout.strip().splitlines()[0]) * 1e6
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def cuda_peak(precision: Precision, *, name: str, capability: tuple[int, int], sms: int,
              clock_hz: float | None = None) -> Peak:
    """Theoretical GPU peak: the data sheet's dense bf16 figure when ``name`` is in
    :data:`CUDA_BF16_PEAK_TFLOPS`, else ``sms x`` FLOPs per SM-cycle ``x clock``. fp32 is
    half of it: cuDNN runs fp32 convolutions on the tensor cores in TF32."""
    bf16 = next((t * 1e12 for frag, t in CUDA_BF16_PEAK_TFLOPS if frag in name), None)
    if bf16 is not None:
        basis = f"{name}: {bf16 / 1e12:.1f} TFLOP/s dense bf16 (data sheet)"
    else:
        major, minor = capability
        per = CUDA_BF16_FLOP_PER_SM_CYCLE.get(major, max(CUDA_BF16_FLOP_PER_SM_CYCLE.values()))
        per = per // 2 if major == 8 and minor != 0 else per
        clock = clock_hz or CUDA_FALLBACK_CLOCK_HZ
        bf16 = sms * per * clock
        basis = (f"{name}: {sms} SMs x {per} bf16 FLOP/cycle x {clock / 1e9:.2f} GHz "
                 f"(sm_{major}{minor})")
    if precision is Precision.FP32:
        return Peak(bf16 / 2, basis + ", fp32 as TF32: half")
    return Peak(bf16, basis)


def theoretical_peak(device: torch.device | str, precision: Precision) -> Peak:
    """The theoretical peak of ``device`` in ``precision`` (:func:`cpu_peak`,
    :func:`cuda_peak`)."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return cuda_peak(precision, name=props.name, capability=(props.major, props.minor),
                         sms=props.multi_processor_count,
                         clock_hz=_nvidia_smi_max_clock_hz(index))
    return cpu_peak(precision)


def model_throughput(step: TrainStep, x: Tensor, y: Tensor,
                     settings: BenchSettings) -> tuple[float, float]:
    """Median seconds per training step and per evaluation forward on the fixed batch."""
    x = step.prepare(x)
    train_s, _ = timed(lambda: step(x, y, prepared=True), settings.steps, settings.warmup,
                       step.device)
    infer_s, _ = timed(lambda: step.infer(x), settings.steps, settings.warmup, step.device)
    return train_s, infer_s


def bench_loss(name: str, num_classes: int = 20) -> nn.Module:
    """The training loss ``name``; ``weighted_ce`` gets uniform weights (the timing is the
    same and the benchmark has no label statistics)."""
    weights = torch.ones(num_classes) if LossName(name) is LossName.WEIGHTED_CE else None
    return build_loss(name, class_weights=weights)


def random_batch(batch: int, size: int, device: torch.device, in_channels: int = 1,
                 num_classes: int = 20, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A fixed ``(image, mask)`` batch: normal images, uniform labels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, in_channels, *spatial(size), generator=g)
    y = torch.randint(0, num_classes, (batch, *spatial(size)), generator=g)
    return x.to(device), y.to(device)


def train_step_flops(model: nn.Module, loss_fn: nn.Module, size: int, batch: int,
                     in_channels: int = 1, num_classes: int = 20,
                     device: torch.device | str = "cpu") -> int:
    """FLOPs of one training forward + loss + backward at ``batch`` x ``size``^2.

    Counted by ``FlopCounterMode`` (matmuls and convolutions, 2 per multiply-accumulate) on a
    meta copy of ``model`` and of ``loss_fn``, so nothing is computed and neither is touched. Should an op
    refuse the meta device, one real step on a deep copy on ``device`` is counted instead.
    The optimiser step (element-wise) is not counted.
    """

    def loss_copy(dev: torch.device | str) -> nn.Module:  # the caller's loss stays where it is
        return meta_copy(loss_fn) if dev == "meta" else copy.deepcopy(loss_fn).to(dev)

    def count(m: nn.Module, dev: torch.device | str) -> int:
        m.train()
        x = torch.randn(batch, in_channels, *spatial(size), device=dev) if dev != "meta" else \
            torch.empty(batch, in_channels, *spatial(size), device=dev)
        y = torch.randint(0, num_classes, (batch, *spatial(size)), device=dev) if dev != "meta" \
            else torch.zeros(batch, *spatial(size), dtype=torch.long, device=dev)
        x.requires_grad_(False)
        with FlopCounterMode(display=False) as counter:
            loss = total_loss(float_outputs(m(x)), y, loss_copy(dev))
            loss.backward()
        return int(counter.get_total_flops())

    try:
        return count(meta_copy(model), "meta")
    except (RuntimeError, NotImplementedError, TypeError, ValueError):
        return count(copy.deepcopy(model).to(device), torch.device(device))


@contextlib.contextmanager
def backend_like_trainer(device: torch.device) -> Iterator[None]:
    """The trainer's backend settings (:func:`~spineseg_core.training.device.configure_backend`)
    for the duration of a measurement, then restored."""
    det = torch.are_deterministic_algorithms_enabled()
    det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn_bench = torch.backends.cudnn.benchmark
    fill = torch.utils.deterministic.fill_uninitialized_memory  # type: ignore[attr-defined]
    try:
        configure_backend(device)
        yield
    finally:
        torch.use_deterministic_algorithms(det, warn_only=det_warn)
        torch.backends.cudnn.benchmark = cudnn_bench
        torch.utils.deterministic.fill_uninitialized_memory = fill  # type: ignore[attr-defined]
