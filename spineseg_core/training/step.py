"""One training step, and how an epoch is fed: the single definition that the trainer
(:func:`spineseg_core.training.loop._train_epoch`), the benchmark (:mod:`spineseg_core.measure.speed`) and the
efficiency table's memory and throughput figures (:mod:`spineseg_core.measure.efficiency`) share.

A step is: the batch on the device, the batched augmentation when the run uses it, channels-last
when the run says so, the forward pass under the run's precision
(:mod:`~spineseg_core.training.precision`), the loss in fp32 summed over the model's outputs with their
weights, backward and the optimiser step. It returns the loss as a device tensor without
reading it, so a GPU never waits for the host inside an epoch.

The epoch's randomness comes from one formula, :func:`epoch_seed`: the loader's shuffling and
the batched augmentation are re-seeded from ``(seed, epoch)``, so a resumed run draws what an
uninterrupted one would.

The loaders live here too: :func:`train_loader` for an epoch, :func:`eval_loader` for a scored
set (validation, test, a hard-case set), and :func:`batch_augmentation`, the run's batched
augmentation when its :class:`AugmentPath` is batched. The datasets they load come from
:func:`spineseg_core.data.prepare.prepare_data`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from enum import StrEnum
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, RandomSampler

from spineseg_core.data.batch_augment import BatchAugment
from spineseg_core.data.prepare import batch_augment
from spineseg_core.losses import total_loss
from spineseg_core.models import MultiOutput, VolumeSegmentationModel, model_info
from spineseg_core.training.precision import Precision, autocast, precision_for
from spineseg_core.training.state import seed_worker

if TYPE_CHECKING:
    from spineseg_core.training.config import TrainConfig

EPOCH_SEED_STRIDE = 100_003
"""A prime larger than any epoch count: ``seed * stride + epoch`` never repeats across seeds."""


class AugmentPath(StrEnum):
    """Where a run's training augmentation runs: nowhere, per slice with TorchIO inside the data
    loader, or batched as tensor operations on the training device
    (:class:`~spineseg_core.data.batch_augment.BatchAugment`)."""

    NONE = "none"
    SLICE = "slice"
    BATCHED = "batched"


def augment_path(cfg: TrainConfig, device: torch.device) -> AugmentPath:
    """The augmentation path of ``cfg`` on ``device``: ``gpu_augment=None`` (the default) means
    batched on CUDA (TorchIO per slice would starve a GPU) and per slice elsewhere; ``True``
    asks for the batched path on any device (how CI runs the GPU's code on a CPU); ``False``
    keeps TorchIO per slice everywhere. A 3D model's volumes always take the slice path (the
    batched augmentation works on slice batches): each of their slices is augmented as a 2D
    run's slice is (:class:`~spineseg_core.data.slices.VolumeDataset`)."""
    if not cfg.augment:
        return AugmentPath.NONE
    batched = device.type == "cuda" if cfg.gpu_augment is None else cfg.gpu_augment
    if batched and model_info(cfg.model).volumetric:
        return AugmentPath.SLICE
    return AugmentPath.BATCHED if batched else AugmentPath.SLICE


def uses_channels_last(cfg: TrainConfig) -> bool:
    """Whether a run's model and batches are channels-last: as ``cfg.channels_last`` says, but
    never for a 3D model (its 5D tensors have their own layout, left at torch's default)."""
    return bool(cfg.channels_last) and not model_info(cfg.model).volumetric


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch`` of a run seeded ``seed`` (shuffling and batched
    augmentation)."""
    return seed * EPOCH_SEED_STRIDE + epoch


def epoch_generator(seed: int, epoch: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on ``device`` seeded with :func:`epoch_seed`."""
    return torch.Generator(device=device).manual_seed(epoch_seed(seed, epoch))


def train_loader(dataset: Dataset, cfg: TrainConfig, epoch: int, pin: bool) -> DataLoader:
    """The training loader of epoch ``epoch``: ``max_train_slices_per_epoch`` (or all) slices
    drawn by a sampler seeded with :func:`epoch_seed`, the run's batch size and workers, pinned
    memory for a GPU; ``drop_last`` unless the epoch is a single batch (a batch of one cannot
    train BatchNorm after global pooling)."""
    g = epoch_generator(cfg.seed, epoch)
    n = len(dataset)  # type: ignore[arg-type]
    num = min(cfg.max_train_slices_per_epoch or n, n)
    sampler = RandomSampler(dataset, num_samples=num, generator=g)  # type: ignore[arg-type]
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler,
                      num_workers=cfg.num_workers, worker_init_fn=seed_worker, generator=g,
                      drop_last=num > cfg.batch_size, pin_memory=pin)


def eval_loader(dataset: Dataset, cfg: TrainConfig, pin: bool = False,
                num_workers: int | None = None) -> DataLoader:
    """The loader of a scored set (validation, test, a hard-case set): in order, at the run's
    batch size or the set's own :attr:`batch_limit` if smaller (one whole volume at a time)."""
    limit = getattr(dataset, "batch_limit", None)
    return DataLoader(dataset, batch_size=min(cfg.batch_size, limit or cfg.batch_size),
                      shuffle=False,
                      num_workers=cfg.num_workers if num_workers is None else num_workers,
                      worker_init_fn=seed_worker, pin_memory=pin)


def batch_augmentation(cfg: TrainConfig, device: torch.device) -> BatchAugment | None:
    """The batched augmentation of ``cfg`` on ``device`` when its augmentation path is
    :attr:`AugmentPath.BATCHED` (by default on CUDA, where TorchIO per slice would starve the
    GPU; on any device with ``gpu_augment=True``), else ``None``: the data loader then applies
    TorchIO's transforms per slice. Like the TorchIO path, it works in pixel units (slices carry
    no spacing), and so does the benchmark's batched data path."""
    if augment_path(cfg, device) is not AugmentPath.BATCHED:
        return None
    return batch_augment(cfg)


def float_outputs(out: Tensor | MultiOutput) -> Tensor | MultiOutput:
    """The model's outputs in fp32 (the loss is never computed in bf16)."""
    if isinstance(out, MultiOutput):
        return MultiOutput(tuple(o.float() for o in out.logits), out.weights)
    return out.float()


Augment = Callable[..., Tensor]
"""A batched augmentation: ``augment(x, generator=g) -> x'`` on the batch's device."""


class TrainStep:
    """One optimisation step of ``model`` on ``device`` in ``precision``.

    :meth:`__call__` moves the batch to the device, augments it (``augment``, with the given
    generator), makes it channels-last when ``channels_last``, runs the forward pass under
    :func:`~spineseg_core.training.precision.autocast`, the loss in fp32, backward and
    ``optimizer.step()``, and returns the detached loss without reading it. ``model`` may be a
    ``torch.compile`` wrapper of the module whose parameters ``optimizer`` updates.
    """

    def __init__(self, model: nn.Module, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
                 device: torch.device, *, precision: Precision, channels_last: bool = True,
                 augment: Augment | None = None) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.opt = optimizer
        self.device = torch.device(device)
        self.precision = Precision(precision)
        self.channels_last = channels_last
        self.augment = augment

    @classmethod
    def create(cls, model: nn.Module, loss_fn: nn.Module, device: torch.device | str, *,
               precision: Precision | None = None, amp: bool = True,
               channels_last: bool = True, lr: float = 5e-4,
               augment: Augment | None = None) -> TrainStep:
        """The step as the trainer sets it up: ``model`` and ``loss_fn`` moved to ``device``
        (the model channels-last when asked), Adam at ``lr``, and ``precision`` (default
        :func:`~spineseg_core.training.precision.precision_for` of the device, ``amp`` and
        whether ``model`` is 3D)."""
        device = torch.device(device)
        model = model.to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        precision = precision or precision_for(
            device, amp, volumetric=isinstance(model, VolumeSegmentationModel))
        return cls(model, loss_fn.to(device), torch.optim.Adam(model.parameters(), lr=lr),
                   device, precision=precision, channels_last=channels_last, augment=augment)

    def autocast(self) -> AbstractContextManager:
        """The forward pass's precision context."""
        return autocast(self.device, self.precision)

    def prepare(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``x`` on the device, augmented when the step augments, channels-last if configured:
        what the model is fed."""
        x = x.to(self.device, non_blocking=True)
        if self.augment is not None:
            x = self.augment(x, generator=generator)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def __call__(self, x: Tensor, y: Tensor, generator: torch.Generator | None = None,
                 *, prepared: bool = False) -> Tensor:
        """One step on ``(x, y)``; ``prepared=True`` skips :meth:`prepare` (a batch already
        on the device in its final layout, as the benchmark's fixed batch is)."""
        if not prepared:
            x = self.prepare(x, generator)
        y = y.to(self.device, non_blocking=True)
        self.model.train()
        with self.autocast():
            out = self.model(x)
        loss = total_loss(float_outputs(out), y, self.loss_fn)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def infer(self, x: Tensor) -> Tensor:
        """Evaluation forward without gradients (main output only) on a prepared batch."""
        self.model.eval()
        with torch.no_grad(), self.autocast():
            return self.model(x)
