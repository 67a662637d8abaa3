"""A no-learning baseline for every test set: one training subject's mask pasted on every test
subject (issue 24, part 7).

A model that learned nothing but where the spine usually lies can still score: the spine sits
near the middle of every sagittal field of view. The baseline measures that floor on the
study's own metric. Each subject of the training pool (the training and validation subjects)
is an *atlas*: its reference mask, centred on each test subject's grid (cropped or padded
equally on both sides of every axis, :func:`paste`), is scored against that subject's
reference exactly as a run's predictions are (per-subject counts, pooled over the test
subjects, Dice averaged over the foreground classes evaluated,
:func:`spineseg_core.study.stats.pooled_scores`).
The baseline is the best atlas's score: the most a pasted mask reaches, chosen on the test set
itself, so it is generous to the baseline and strict for the runs measured against it.

``spineseg aggregate --baseline`` writes every atlas's score to ``baseline.csv``
(:func:`data_tables`); :func:`baseline_dice` reads the best and
:func:`weak_runs` lists the main runs that do not beat it by :data:`MARGIN`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from spineseg_core.errors import ConfigError, DataError
from spineseg_core.labels import FOREGROUND
from spineseg_core.metrics import confusion_matrix, counts_from_confusion
from spineseg_core.study.stats import pooled_scores

MARGIN = 0.20
"""How far (Dice, 0-1) a main run must score above the baseline not to be flagged: 20 points."""

BASELINE_COLUMNS: tuple[str, ...] = ("atlas", "dice", "n_test_cases")
"""Columns of ``baseline.csv``: one row per atlas (training-pool subject), best first."""


def paste(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``mask`` centred on an array of ``shape`` (background elsewhere): each axis cropped or
    padded by the same amount on both sides (the odd voxel at the end)."""
    if mask.ndim != len(shape):
        raise ConfigError(f"paste: a mask of {mask.ndim} axes cannot go on a grid of "
                          f"{len(shape)}")
    out = np.zeros(shape, dtype=mask.dtype)
    src, dst = [], []
    for have, want in zip(mask.shape, shape):
        if have >= want:
            start = (have - want) // 2
            src.append(slice(start, start + want))
            dst.append(slice(0, want))
        else:
            start = (want - have) // 2
            src.append(slice(0, have))
            dst.append(slice(start, start + have))
    out[tuple(dst)] = mask[tuple(src)]
    return out


def subject_counts(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Counts ``(19, 4)`` (tp, fp, fn, tn) of the foreground classes of one subject, as the
    runs count theirs (:func:`spineseg_core.metrics.confusion_matrix`)."""
    if pred.shape != ref.shape:
        raise ConfigError(f"subject_counts: prediction {pred.shape} and reference {ref.shape} "
                          "differ in shape")
    c = counts_from_confusion(confusion_matrix(pred.astype(np.int64), ref.astype(np.int64)))
    fg = list(FOREGROUND)
    return np.stack([c.tp[fg].numpy(), c.fp[fg].numpy(), c.fn[fg].numpy(), c.tn[fg].numpy()],
                    axis=-1)


def atlas_scores(atlases: Mapping[str, np.ndarray], test: Mapping[str, np.ndarray]
                 ) -> pd.DataFrame:
    """Every atlas's Dice on the test subjects (:data:`BASELINE_COLUMNS`), best first: its
    mask pasted on each test subject's grid, counts pooled over the test subjects, the mean
    over the classes evaluated (as a run's test Dice)."""
    if not atlases or not test:
        raise ConfigError("baseline: need at least one atlas and one test subject")
    rows = []
    for atlas, mask in atlases.items():
        counts = np.stack([subject_counts(paste(mask, ref.shape), ref) for ref in test.values()])
        dice = float(pooled_scores(counts.sum(axis=0))["dice"])
        rows.append({"atlas": str(atlas), "dice": dice, "n_test_cases": len(test)})
    table = pd.DataFrame(rows, columns=list(BASELINE_COLUMNS))
    return table.sort_values(["dice", "atlas"], ascending=[False, True], ignore_index=True)


def data_tables(cfg) -> tuple[pd.DataFrame, pd.DataFrame]:
    """From one preparation of a run configuration's data (``TrainConfig``): the baseline
    (:func:`atlas_scores` of its training pool, training and validation subjects, as atlases on
    its test set, at the grid the runs train and score on) and the presence of each class
    among its validation subjects (:func:`spineseg_core.study.validation.presence`,
    ``validation_classes.csv``)."""
    from spineseg_core.data.prepare import prepare_data
    from spineseg_core.models import model_info
    from spineseg_core.study.validation import presence

    data = prepare_data(cfg, model_info(cfg.model), slice_augment=False)
    pool = {v.case_id: v.mask for v in [*data.train.volumes, *data.val_volumes]}
    test = {v.case_id: v.mask for v in data.test_volumes}
    return atlas_scores(pool, test), presence({v.case_id: v.mask for v in data.val_volumes})


def baseline_dice(table: pd.DataFrame) -> float:
    """The baseline: the best atlas's Dice in ``baseline.csv``."""
    if "dice" not in table or not len(table):
        raise DataError("baseline.csv", "expected a column 'dice' and at least one atlas")
    return float(table["dice"].max())


def weak_runs(runs: pd.DataFrame, baseline: float, margin: float = MARGIN) -> pd.DataFrame:
    """The runs of ``runs.csv`` (``model``, ``seed``, ``dice``) whose test Dice is not above
    the baseline by ``margin``, with ``baseline`` and ``above_baseline`` (Dice minus baseline);
    empty when every run clears it. Not yet shown in the book: the re-run's bundle brings
    ``baseline.csv`` (``spineseg aggregate --baseline``)."""
    lacking = [c for c in ("model", "seed", "dice") if c not in runs]
    if lacking:
        raise DataError("runs.csv", f"lacks the columns {lacking}")
    out = runs[["model", "seed", "dice"]].copy()
    out["baseline"] = baseline
    out["above_baseline"] = out["dice"] - baseline
    return out[out["above_baseline"] < margin].reset_index(drop=True)
