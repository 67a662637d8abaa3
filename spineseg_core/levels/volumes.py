"""A group's committed records as subject volumes: each run's predictions and the reference.

A record keeps its test predictions slice by slice (``predictions.npz``) and its group keeps the
reference once (``test_set.npz``); :func:`spineseg_core.study.records.load_predictions` joins
them. Every slice of a test subject is there, so stacking a subject's slices in
``slice_index`` order gives its 3D volumes ``(S, H, W)`` back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spineseg_core import io
from spineseg_core.errors import DataError
from spineseg_core.training.run_folder import RunFolder, find_runs


@dataclass(frozen=True)
class Record:
    """One finished run's record: its model, seed and folder."""

    model: str
    seed: int
    path: Path


def find_records(runs_dir: str | Path, group: str) -> list[Record]:
    """The finished records of ``<runs_dir>/<group>/<model>/seed_<s>/fold_<f>/``, sorted by
    model and seed; a missing folder or a group without records is a :class:`DataError`."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise DataError(runs_dir, "missing: expected a folder of run records "
                        "(<group>/<model>/seed_<s>/fold_<f>/), e.g. results/cpu/runs")
    folder = runs_dir / group
    if not folder.is_dir():
        groups = sorted(p.name for p in runs_dir.iterdir() if p.is_dir())
        raise DataError(folder, f"missing: no group {group!r} here (groups: "
                        f"{', '.join(groups) or 'none'})")
    found = []
    for path in find_runs(folder):
        metrics = io.read_json(RunFolder(path).metrics)
        found.append(Record(str(metrics["model"]), int(metrics["seed"]), path))
    if not found:
        raise DataError(folder, "no finished record (no <model>/seed_<s>/fold_<f>/metrics.json)")
    return sorted(found, key=lambda r: (r.model, r.seed, str(r.path)))


def subject_volumes(pred: dict[str, np.ndarray], where: str | Path = "<predictions>"
                    ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(case_id, predicted volume, reference volume)`` per subject of a run's predictions
    (``pred``, ``mask``, ``case_id``, ``slice_index``), subjects in sorted order. A subject
    whose slices are not ``0..n-1`` exactly once is a :class:`DataError` naming ``where``."""
    missing = [k for k in ("pred", "mask", "case_id", "slice_index") if k not in pred]
    if missing:
        raise DataError(where, f"missing arrays {missing}")
    cases = pred["case_id"].astype(str)
    for case in sorted(set(cases)):
        rows = np.flatnonzero(cases == case)
        rows = rows[np.argsort(pred["slice_index"][rows], kind="stable")]
        if not np.array_equal(pred["slice_index"][rows], np.arange(len(rows))):
            raise DataError(where, f"{case}: slices {pred['slice_index'][rows].tolist()} are not "
                            f"0..{len(rows) - 1} once each; its volume cannot be rebuilt")
        yield case, pred["pred"][rows], pred["mask"][rows]


def record_volumes(record: Record) -> tuple[dict[str, np.ndarray],
                                            Iterator[tuple[str, np.ndarray, np.ndarray]]]:
    """A record's predictions joined with its group's test set, and its subject volumes."""
    from spineseg_core.study.records import load_predictions

    p = load_predictions(record.path)
    if p is None:
        raise DataError(RunFolder(record.path).predictions, "missing: the record keeps no test "
                        "predictions, so its levels cannot be measured")
    return p, subject_volumes(p, RunFolder(record.path).predictions)
