"""Patient-level, seeded train/validation splits and a held-out test set, frozen to JSON (the
former like nnU-Net's splits_final.json).

Splitting happens on patient ids before slicing, so that no patient (nor any of its series:
SPIDER's T1 and T2 share a mask) is on both sides.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spineseg_core.errors import ConfigError, DataError
from spineseg_core.io import write_json


@dataclass(frozen=True)
class Split:
    """The patient ids of one train/validation split."""

    train: tuple[str, ...]
    val: tuple[str, ...]

    def to_json(self) -> dict[str, list[str]]:
        return {"train": list(self.train), "val": list(self.val)}


def _unique(patient_ids: Iterable[str]) -> list[str]:
    ids = sorted({str(p) for p in patient_ids})
    if len(ids) < 2:
        raise ConfigError(f"need at least 2 patients to split, got {len(ids)}")
    return ids


def make_split(patient_ids: Iterable[str], seed: int, val_fraction: float = 0.2) -> Split:
    """One seeded split; ``val_fraction`` of the patients (at least one) go to validation."""
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
    ids = _unique(patient_ids)
    perm = np.random.default_rng(seed).permutation(len(ids))
    n_val = min(max(1, round(len(ids) * val_fraction)), len(ids) - 1)
    val = sorted(ids[i] for i in perm[:n_val])
    train = sorted(ids[i] for i in perm[n_val:])
    return Split(tuple(train), tuple(val))


def make_folds(patient_ids: Iterable[str], k: int, seed: int) -> list[Split]:
    """``k`` seeded folds: the validation sets partition the patients."""
    ids = _unique(patient_ids)
    if not 2 <= k <= len(ids):
        raise ConfigError(f"k_folds must be between 2 and the number of patients "
                          f"({len(ids)}), got {k}")
    perm = np.random.default_rng(seed).permutation(len(ids))
    folds = []
    for part in np.array_split(perm, k):
        val = {ids[i] for i in part}
        folds.append(Split(tuple(p for p in ids if p not in val), tuple(sorted(val))))
    return folds


def save_splits(path: str | Path, splits: Sequence[Split]) -> None:
    """Write ``splits`` as a JSON list of ``{"train": [...], "val": [...]}`` (atomically)."""
    write_json(path, [s.to_json() for s in splits])


def load_splits(path: str | Path) -> list[Split]:
    """Read splits written by :func:`save_splits` (or nnU-Net's ``splits_final.json``)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(path, f"unreadable splits file ({exc})") from None
    if not isinstance(raw, list) or not raw or not all(
            isinstance(s, dict) and isinstance(s.get("train"), list) and isinstance(s.get("val"), list)
            for s in raw):
        raise DataError(path, 'expected a non-empty JSON list of {"train": [...], "val": [...]}')
    splits = [Split(tuple(map(str, s["train"])), tuple(map(str, s["val"]))) for s in raw]
    for i, s in enumerate(splits):
        both = set(s.train) & set(s.val)
        if both:
            raise DataError(path, f"split {i} has patients on both sides: {sorted(both)[:10]}")
    return splits


def get_or_create_splits(path: str | Path, patient_ids: Iterable[str], seed: int,
                         k: int | None = None, val_fraction: float = 0.2) -> list[Split]:
    """Reuse the frozen splits at ``path``, or make them (one 8:2 split, or ``k`` folds) and save.

    A frozen file must cover exactly ``patient_ids``; if it names patients that no longer exist,
    or misses some, it raises :class:`DataError` (delete the file to re-split).
    """
    path = Path(path)
    ids = _unique(patient_ids)
    if path.is_file():
        splits = load_splits(path)
        named = set().union(*(set(s.train) | set(s.val) for s in splits))
        gone, new = sorted(named - set(ids)), sorted(set(ids) - named)
        if gone:
            raise DataError(path, f"frozen splits name {len(gone)} patient(s) that no longer "
                                  f"exist: {', '.join(gone[:10])}; delete the file to re-split")
        if new:
            raise DataError(path, f"frozen splits do not cover {len(new)} patient(s): "
                                  f"{', '.join(new[:10])}; delete the file to re-split")
        if k is not None and len(splits) != k:
            raise ConfigError(f"k_folds={k} but the frozen splits {path} hold {len(splits)} split(s)")
        return splits
    splits = make_folds(ids, k, seed) if k is not None else [make_split(ids, seed, val_fraction)]
    save_splits(path, splits)
    return splits


TEST_SPLIT_SEED = 20220627
"""Seed of the held-out test draw: fixed, so every run seed and fold scores the same test
patients (the paper's conference date; any constant would do, as long as it never changes)."""


def get_or_create_test_split(path: str | Path, patient_ids: Iterable[str],
                             fraction: float = 0.2) -> tuple[str, ...]:
    """The held-out test patients, frozen to ``path`` (``{"test": [...]}``) on first use.

    The draw uses :data:`TEST_SPLIT_SEED`, never a run's seed, and the frozen file always wins:
    no choice of the study (seed, fold, tuning) can move a patient in or out of the test set. A
    frozen file naming a patient that no longer exists raises :class:`DataError`; new patients
    stay out of the test set (they can only join training or validation).
    """
    path = Path(path)
    ids = _unique(patient_ids)
    if path.is_file():
        try:
            raw = json.loads(path.read_text())
            test = tuple(str(p) for p in raw["test"])
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(path, f'expected {{"test": [patient ids]}} ({exc})') from None
        gone = sorted(set(test) - set(ids))
        if gone:
            raise DataError(path, f"the frozen test set names {len(gone)} patient(s) that no "
                                  f"longer exist: {', '.join(gone[:10])}")
        return test
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"test_fraction: expected a fraction in (0, 1), got {fraction}")
    if len(ids) < 3:
        raise ConfigError(f"need at least 3 patients to hold out a test set, got {len(ids)}")
    perm = np.random.default_rng(TEST_SPLIT_SEED).permutation(len(ids))
    n_test = min(max(1, round(len(ids) * fraction)), len(ids) - 2)
    test = tuple(sorted(ids[i] for i in perm[:n_test]))
    write_json(path, {"test": list(test), "seed": TEST_SPLIT_SEED})
    return test
