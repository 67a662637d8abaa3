"""The measuring instruments of the benchmark: a training step like the trainer's, its FLOPs,
the device's matmul peak, and clocks that wait for the device.

Kept apart from the tables (:mod:`.speed`, :mod:`.vs_monai`) so that every comparison times
exactly the same step: forward (bf16 autocast on CUDA, channels-last inputs when the profile
says so), the profile's loss summed over the model's outputs with their weights, backward,
Adam step.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TypeVar

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from ..efficiency import meta_copy, spatial
from ..errors import ConfigError
from ..losses import LossName, build_loss, total_loss
from ..models import MultiOutput
from ..precision import Precision, autocast, precision_for

T = TypeVar("T")

CPU_PEAK_N = 4096
"""Side of the fp32 matmul that measures a CPU's peak (2 x 4096^3 = 137 GFLOP per product)."""

CUDA_PEAK_N = 8192
"""Side of the bf16 matmul that measures a GPU's peak (1.1 TFLOP per product)."""


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


def _float_outputs(out: Tensor | MultiOutput) -> Tensor | MultiOutput:
    if isinstance(out, MultiOutput):
        return MultiOutput(tuple(o.float() for o in out.logits), out.weights)
    return out.float()


def bench_loss(name: str, num_classes: int = 20) -> nn.Module:
    """The training loss ``name``; ``weighted_ce`` gets uniform weights (the timing is the
    same and the benchmark has no label statistics)."""
    weights = torch.ones(num_classes) if LossName(name) is LossName.WEIGHTED_CE else None
    return build_loss(name, class_weights=weights)


class TrainStep:
    """One optimisation step of ``model`` as the trainer does it, on ``device``.

    The model is moved to ``device`` (channels-last when ``channels_last``) and an Adam
    optimiser is created; :meth:`__call__` runs forward under bf16 autocast when ``amp`` and the
    device runs bf16 natively (``precision``, from
    :func:`~spineseg_core.precision.precision_for`), the loss in fp32, backward and the Adam
    step, and returns the loss without reading it (no device sync).
    """

    def __init__(self, model: nn.Module, loss_fn: nn.Module, device: torch.device, *,
                 channels_last: bool = True, amp: bool = True, lr: float = 5e-4) -> None:
        self.device = device
        self.channels_last = channels_last
        self.precision = precision_for(device, amp)
        self.model = model.to(device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.loss_fn = loss_fn.to(device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr)

    def autocast(self) -> AbstractContextManager:
        """bf16 autocast when ``amp`` and the device runs it natively; nothing otherwise."""
        return autocast(self.device, self.precision)

    def prepare(self, x: Tensor) -> Tensor:
        """``x`` on the device, channels-last if configured (what the trainer feeds)."""
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        self.model.train()
        with self.autocast():
            out = self.model(x)
        loss = total_loss(_float_outputs(out), y, self.loss_fn)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def infer(self, x: Tensor) -> Tensor:
        """Evaluation forward without gradients (main output only)."""
        self.model.eval()
        with torch.no_grad(), self.autocast():
            return self.model(x)


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
    meta copy of ``model``, so nothing is computed and ``model`` is untouched. Should an op
    refuse the meta device, one real step on a deep copy on ``device`` is counted instead.
    The optimiser step (element-wise) is not counted.
    """

    def count(m: nn.Module, dev: torch.device | str) -> int:
        m.train()
        x = torch.randn(batch, in_channels, *spatial(size), device=dev) if dev != "meta" else \
            torch.empty(batch, in_channels, *spatial(size), device=dev)
        y = torch.randint(0, num_classes, (batch, *spatial(size)), device=dev) if dev != "meta" \
            else torch.zeros(batch, *spatial(size), dtype=torch.long, device=dev)
        x.requires_grad_(False)
        with FlopCounterMode(display=False) as counter:
            loss = total_loss(_float_outputs(m(x)), y, loss_fn.to(dev))
            loss.backward()
        return int(counter.get_total_flops())

    try:
        return count(meta_copy(model), "meta")
    except (RuntimeError, NotImplementedError, TypeError, ValueError):
        import copy

        return count(copy.deepcopy(model).to(device), torch.device(device))


@contextlib.contextmanager
def backend_like_trainer(device: torch.device) -> Iterator[None]:
    """The trainer's backend settings for the duration of a measurement, then restored:
    deterministic algorithms (warn only) on the CPU, cuDNN autotuning on CUDA."""
    det = torch.are_deterministic_algorithms_enabled()
    det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn_bench = torch.backends.cudnn.benchmark
    try:
        if device.type == "cuda":
            torch.use_deterministic_algorithms(False)
            torch.backends.cudnn.benchmark = True
        else:
            torch.use_deterministic_algorithms(True, warn_only=True)
        yield
    finally:
        torch.use_deterministic_algorithms(det, warn_only=det_warn)
        torch.backends.cudnn.benchmark = cudnn_bench
