"""One call from a dataset folder to the training, validation and test slice datasets of a fold.

The three sets of the study's protocol:

* **test** — subjects no decision ever sees: a separate labelled folder (``test_dir``; the
  phantom's is generated from its own seed), or else a fraction of the patients held out once
  and frozen to a file (:func:`~spineseg_core.data.splits.get_or_create_test_split`);
* **validation** — for checkpoint choice and any tuning;
* **train** — the rest.

Only training slices may be cropped with help of their masks (a random band around the spine);
validation and test slices are the full field of view at the profile's grid, so that nothing
of the reference reaches evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from spineseg_core.data.augment import AugmentConfig, build_augmentation
from spineseg_core.data.cache import VolumeCache
from spineseg_core.data.layout import Layout, detect_layout, scan_cases
from spineseg_core.data.preprocess import RandomSpineBand
from spineseg_core.data.readers import Volume
from spineseg_core.data.slices import SliceDataset, VolumeDataset
from spineseg_core.data.splits import Split, get_or_create_splits, get_or_create_test_split
from spineseg_core.errors import ConfigError, DataError


@dataclass
class DataBundle:
    """What a training run needs: slice (or, for a 3D model, volume) datasets, validation and
    test volumes (for 3D metrics), ids."""

    train: SliceDataset | VolumeDataset
    val: SliceDataset | VolumeDataset
    test: SliceDataset | VolumeDataset
    val_volumes: list[Volume]
    test_volumes: list[Volume]
    train_ids: list[str]
    val_ids: list[str]
    test_ids: list[str]
    layout: Layout
    split: Split
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _load_labelled(data_dir: Path, cache: VolumeCache, *, sequences: Sequence[str],
                   skip_bad: bool, max_cases: int | None, skipped: list[tuple[str, str]]
                   ) -> tuple[Layout, list[Volume]]:
    layout = detect_layout(data_dir)
    refs, problems = scan_cases(data_dir, layout, sequences=sequences)
    if problems:
        if not skip_bad:
            raise problems[0]
        skipped += [(str(p.path), p.problem) for p in problems]
    refs = [r for r in refs if r.labelled]
    if max_cases is not None:
        refs = refs[:max_cases]
    volumes: list[Volume] = []
    for ref in refs:
        try:
            volumes.append(cache.get(ref))
        except DataError as exc:
            if not skip_bad:
                raise
            skipped.append((ref.case_id, f"{exc.path.name}: {exc.problem}"))
    return layout, volumes


def build_datasets(data_dir: str | Path, *, image_size: int, cache_dir: str | Path,
                   splits_path: str | Path, seed: int, fold: int, k_folds: int | None = None,
                   augment: AugmentConfig | None = None, max_cases: int | None = None,
                   skip_bad: bool = False, sequences: Sequence[str] = ("t2",),
                   crop_width: float | None = None, test_dir: str | Path | None = None,
                   test_split_path: str | Path | None = None,
                   test_fraction: float = 0.2, context: int = 1,
                   volumetric: bool = False) -> DataBundle:
    """Load (through the cache) the labelled cases of ``data_dir`` and split them by patient.

    Only labelled cases take part (MRSpineSeg's ``train`` subset). ``max_cases`` keeps the first
    cases in natural order. With ``skip_bad`` a bad case is skipped and listed in
    ``DataBundle.skipped`` as ``(case or file, reason)``; otherwise the first one raises
    :class:`DataError`. ``k_folds=None`` means one 8:2 split (``fold`` must be 0).
    ``train_ids``/``val_ids``/``test_ids`` are case ids; the split holds patient ids.

    The test set is every labelled case of ``test_dir`` when given; otherwise ``test_fraction``
    of ``data_dir``'s patients, frozen to ``test_split_path``. Train and validation split the
    remaining patients (``splits_path``). ``crop_width`` (a fraction of the slice width) crops
    training slices only, to a random band around the spine (:class:`RandomSpineBand`).
    ``context`` > 1 stacks each slice's neighbours as channels (a 2.5D model's input);
    ``volumetric`` gives whole volumes instead of slices (a 3D model's).
    """
    if max_cases is not None and max_cases < 2:
        raise ConfigError(f"max_cases must be at least 2, got {max_cases}")
    data_dir = Path(data_dir)
    cache = VolumeCache(cache_dir, image_size)
    skipped: list[tuple[str, str]] = []
    opts = dict(sequences=sequences, skip_bad=skip_bad, skipped=skipped)
    layout, volumes = _load_labelled(data_dir, cache, max_cases=max_cases, **opts)
    if test_dir is not None:
        _, test_vols = _load_labelled(Path(test_dir), VolumeCache(Path(cache_dir) / "test",
                                                                  image_size),
                                      max_cases=None, **opts)
        if not test_vols:
            raise DataError(Path(test_dir), "the test folder holds no usable labelled case")
    else:
        if test_split_path is None:
            raise ConfigError("build_datasets: give test_dir or test_split_path "
                              "(where the held-out test patients are frozen)")
        if len({v.patient_id for v in volumes}) < 3:
            raise DataError(data_dir, f"need at least 3 usable labelled patients for "
                                      f"train, validation and test, found "
                                      f"{len({v.patient_id for v in volumes})}")
        test_patients = set(get_or_create_test_split(
            test_split_path, [v.patient_id for v in volumes], test_fraction))
        test_vols = [v for v in volumes if v.patient_id in test_patients]
        volumes = [v for v in volumes if v.patient_id not in test_patients]
    if len(volumes) < 2:
        raise DataError(data_dir, f"need at least 2 usable labelled cases for training and "
                                  f"validation, found {len(volumes)}")
    splits = get_or_create_splits(splits_path, [v.patient_id for v in volumes], seed, k=k_folds)
    if not 0 <= fold < len(splits):
        raise ConfigError(f"fold must be between 0 and {len(splits) - 1}, got {fold}")
    split = splits[fold]
    val_patients = set(split.val)
    train_vols = [v for v in volumes if v.patient_id not in val_patients]
    val_vols = [v for v in volumes if v.patient_id in val_patients]
    transform = build_augmentation(augment) if augment is not None and augment.enabled else None
    crop = RandomSpineBand(crop_width) if crop_width is not None else None
    if volumetric:
        if context != 1:
            raise ConfigError(f"a volume dataset takes no slice context, got context={context}")
        sets = (VolumeDataset(train_vols, transform, crop=crop),
                VolumeDataset(val_vols, own_depth=True), VolumeDataset(test_vols, own_depth=True))
    else:
        sets = (SliceDataset(train_vols, transform, crop=crop, context=context),
                SliceDataset(val_vols, context=context), SliceDataset(test_vols, context=context))
    return DataBundle(
        train=sets[0], val=sets[1], test=sets[2], val_volumes=val_vols, test_volumes=test_vols,
        train_ids=[v.case_id for v in train_vols], val_ids=[v.case_id for v in val_vols],
        test_ids=[v.case_id for v in test_vols], layout=layout, split=split, skipped=skipped)
