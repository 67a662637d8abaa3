"""One call from a dataset folder to the training and validation slice datasets of a fold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, DataError
from .augment import AugmentConfig, build_augmentation
from .cache import VolumeCache
from .preprocess import crop_spine_band
from .layout import Layout, detect_layout, scan_cases
from .readers import Volume
from .slices import SliceDataset
from .splits import Split, get_or_create_splits


@dataclass
class DataBundle:
    """What a training run needs: slice datasets, validation volumes (for 3D metrics), ids."""

    train: SliceDataset
    val: SliceDataset
    val_volumes: list[Volume]
    train_ids: list[str]
    val_ids: list[str]
    layout: Layout
    split: Split
    skipped: list[tuple[str, str]] = field(default_factory=list)


def build_datasets(data_dir: str | Path, *, image_size: int, cache_dir: str | Path,
                   splits_path: str | Path, seed: int, fold: int, k_folds: int | None = None,
                   augment: AugmentConfig | None = None, max_cases: int | None = None,
                   skip_bad: bool = False, sequences: Sequence[str] = ("t2",),
                   crop_width: float | None = None) -> DataBundle:
    """Load (through the cache) the labelled cases of ``data_dir`` and split them by patient.

    Only labelled cases take part (MRSpineSeg's ``train`` subset). ``max_cases`` keeps the first
    cases in natural order. With ``skip_bad`` a bad case is skipped and listed in
    ``DataBundle.skipped`` as ``(case or file, reason)``; otherwise the first one raises
    :class:`DataError`. ``k_folds=None`` means one 8:2 split (``fold`` must be 0).
    ``train_ids``/``val_ids`` are case ids; the split itself holds patient ids.
    ``crop_width`` (a fraction of the slice width) crops every volume, after the cache, to a
    full-height band around the spine (:func:`~spineseg_core.data.preprocess.crop_spine_band`).
    """
    if max_cases is not None and max_cases < 2:
        raise ConfigError(f"max_cases must be at least 2, got {max_cases}")
    data_dir = Path(data_dir)
    layout = detect_layout(data_dir)
    refs, problems = scan_cases(data_dir, layout, sequences=sequences)
    skipped: list[tuple[str, str]] = []
    if problems:
        if not skip_bad:
            raise problems[0]
        skipped += [(str(p.path), p.problem) for p in problems]
    refs = [r for r in refs if r.labelled]
    if max_cases is not None:
        refs = refs[:max_cases]
    cache = VolumeCache(cache_dir, image_size)
    volumes: list[Volume] = []
    for ref in refs:
        try:
            volumes.append(cache.get(ref))
        except DataError as exc:
            if not skip_bad:
                raise
            skipped.append((ref.case_id, f"{exc.path.name}: {exc.problem}"))
    if crop_width is not None:
        volumes = [crop_spine_band(v, crop_width) for v in volumes]
    if len(volumes) < 2:
        raise DataError(data_dir, f"need at least 2 usable labelled cases, found {len(volumes)}")
    splits = get_or_create_splits(splits_path, [v.patient_id for v in volumes], seed, k=k_folds)
    if not 0 <= fold < len(splits):
        raise ConfigError(f"fold must be between 0 and {len(splits) - 1}, got {fold}")
    split = splits[fold]
    val_patients = set(split.val)
    train_vols = [v for v in volumes if v.patient_id not in val_patients]
    val_vols = [v for v in volumes if v.patient_id in val_patients]
    transform = build_augmentation(augment) if augment is not None and augment.enabled else None
    return DataBundle(
        train=SliceDataset(train_vols, transform), val=SliceDataset(val_vols),
        val_volumes=val_vols, train_ids=[v.case_id for v in train_vols],
        val_ids=[v.case_id for v in val_vols], layout=layout, split=split, skipped=skipped)
