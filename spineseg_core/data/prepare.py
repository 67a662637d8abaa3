"""Finding and preparing one run's data: which folders, which cache, which augmentation.

A run names its data by configuration fields (:class:`RunData`, which
:class:`~spineseg_core.training.config.TrainConfig` satisfies): a dataset folder, or the
phantom generated once into the cache; a held-out test folder, or test patients frozen out of
the dataset. :func:`prepare_data` turns them into the three sets of a
:class:`~spineseg_core.data.bundle.DataBundle`. The model's part, its input shape, comes in as
:class:`ModelInput` (which :class:`~spineseg_core.models.registry.ModelInfo` satisfies), so the
data side knows nothing of models or training.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

from spineseg_core.data.augment import AugmentConfig
from spineseg_core.data.batch_augment import BatchAugment, BatchAugmentConfig
from spineseg_core.data.bundle import DataBundle, build_datasets
from spineseg_core.data.cache import cache_root
from spineseg_core.data.phantom import ensure_phantom

__all__ = ["ModelInput", "RunData", "augment_config", "batch_augment", "data_root",
           "phantom_root", "prepare_data", "test_root"]


class RunData(Protocol):
    """The fields of a run's configuration that say where its data is and how it is cut and
    augmented (see :class:`~spineseg_core.training.config.TrainConfig` for their meaning)."""

    data_dir: Path | None
    test_dir: Path | None
    phantom_cases: int
    phantom_size: int
    phantom_seed: int
    phantom_test_seed: int
    test_cases: int
    image_size: int
    seed: int
    fold: int
    k_folds: int | None
    max_cases: int | None
    skip_bad: bool
    crop_width: float | None
    test_fraction: float
    augment: bool
    p_noise: float
    p_blur: float
    p_motion: float
    p_ghosting: float


class ModelInput(Protocol):
    """What the data must look like for a model: channels of a slice (its context for a 2.5D
    model, else 1) and whether it takes whole volumes."""

    @property
    def in_channels(self) -> int: ...

    @property
    def volumetric(self) -> bool: ...


def _data_key(root: Path) -> str:
    """Cache key of a dataset folder: its name and a hash of its resolved path."""
    root = root.resolve()
    return f"{root.name}-{hashlib.sha1(str(root).encode()).hexdigest()[:10]}"


def phantom_root(cases: int, size: int, seed: int) -> Path:
    """The phantom of ``cases`` cases at ``size`` px from ``seed``, generated once into the cache
    (``<cache>/phantom/n<cases>_px<size>_seed<seed>``) and reused afterwards."""
    root = cache_root() / "phantom" / f"n{cases}_px{size}_seed{seed}"
    return Path(ensure_phantom(root, cases=cases, seed=seed, size=size))


def data_root(cfg: RunData) -> Path:
    """The dataset folder of a run: ``cfg.data_dir``, or the phantom generated once into the
    cache (:func:`phantom_root`)."""
    if cfg.data_dir is not None:
        return cfg.data_dir
    return phantom_root(cfg.phantom_cases, cfg.phantom_size, cfg.phantom_seed)


def test_root(cfg: RunData) -> Path | None:
    """The folder of the held-out test cases: ``cfg.test_dir``; on the phantom, ``test_cases``
    fresh cases of their own seed; ``None`` on real data without ``test_dir`` (the test
    patients are then held out of ``data_dir``)."""
    if cfg.test_dir is not None:
        return cfg.test_dir
    if cfg.data_dir is None:
        return phantom_root(cfg.test_cases, cfg.phantom_size, cfg.phantom_test_seed)
    return None


def augment_config(cfg: RunData, *, enabled: bool = True) -> AugmentConfig:
    """The per-slice (TorchIO) augmentation of ``cfg``: its four probabilities, on when
    ``cfg.augment`` and ``enabled`` both say so."""
    return AugmentConfig(p_noise=cfg.p_noise, p_blur=cfg.p_blur, p_motion=cfg.p_motion,
                         p_ghosting=cfg.p_ghosting, enabled=cfg.augment and enabled)


def batch_augment(cfg: RunData) -> BatchAugment:
    """The batched augmentation with ``cfg``'s four probabilities (whether a run uses it is the
    trainer's choice: :func:`~spineseg_core.training.step.batch_augmentation`)."""
    return BatchAugment(BatchAugmentConfig(p_noise=cfg.p_noise, p_blur=cfg.p_blur,
                                           p_motion=cfg.p_motion, p_ghosting=cfg.p_ghosting))


def prepare_data(cfg: RunData, model: ModelInput, *, slice_augment: bool = True) -> DataBundle:
    """Build the training, validation and test datasets of ``cfg`` for ``model``'s input.

    ``slice_augment=False`` leaves the training slices un-augmented: the trainer then augments
    whole batches on its device (:func:`batch_augment`).
    """
    root = data_root(cfg)
    key = _data_key(root)
    folds = f"k{cfg.k_folds}" if cfg.k_folds else "8to2"
    splits = cache_root() / "splits" / key
    return build_datasets(root, image_size=cfg.image_size,
                          cache_dir=cache_root() / "volumes" / key,
                          splits_path=splits / f"seed_{cfg.seed}_{folds}.json",
                          seed=cfg.seed, fold=cfg.fold, k_folds=cfg.k_folds,
                          augment=augment_config(cfg, enabled=slice_augment),
                          max_cases=cfg.max_cases, skip_bad=cfg.skip_bad,
                          crop_width=cfg.crop_width, test_dir=test_root(cfg),
                          test_split_path=splits / "test.json",
                          test_fraction=cfg.test_fraction,
                          context=model.in_channels, volumetric=model.volumetric)
