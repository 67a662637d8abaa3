"""Validation that holds the rare levels, and the validation-test gap it explains (issue 24,
part 3).

The study's Dice skips a class absent from both reference and prediction
(:mod:`spineseg_core.metrics`), so a set's score averages over the classes its subjects hold.
The rarest levels (T9, T9/T10, ...) are absent from most subjects: with few validation
subjects they are usually missing from validation altogether, while the 40 test subjects hold
them and every model scores them near 0. Validation Dice then averages over easier classes than
test Dice, and part of the gap between them is class composition, not optimism.
:func:`validation_gap` lays that out per class; :func:`validation_subjects` gives the
validation subjects a configuration will have, without generating any data, so the profile can
be checked to hold at least :data:`MIN_VALIDATION_SUBJECTS`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from spineseg_core.errors import DataError
from spineseg_core.labels import FOREGROUND, LABELS

MIN_VALIDATION_SUBJECTS = 16
"""Validation subjects the cpu profile must hold: a level present in 10 % of subjects is then
missing from validation with probability 0.9^16 = 0.19 (0.43 with 8)."""

GAP_COLUMNS: tuple[str, ...] = ("class_value", "class_name", "validation_share", "test_share",
                                "p_absent_from_validation", "mostly_absent_from_validation")
"""Columns of :func:`validation_gap`."""


def validation_subjects(cfg) -> int | None:
    """Validation subjects of ``cfg`` (a ``TrainConfig``) on the phantom, from its split rule
    (:func:`spineseg_core.data.splits.make_split` or ``make_folds`` over ``phantom_cases``
    patients, one case each); ``None`` on real data, whose patients are only known from the
    files."""
    from spineseg_core.data.splits import make_folds, make_split

    if cfg.data_dir is not None:
        return None
    ids = [f"Case{i}" for i in range(cfg.phantom_cases)]
    split = (make_split(ids, cfg.seed) if cfg.k_folds is None
             else make_folds(ids, cfg.k_folds, cfg.seed)[cfg.fold])
    return len(split.val)


def presence(masks: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Per foreground class the share of the subjects (``masks``: case id -> label volume)
    whose reference holds it: ``class_value``, ``share``, ``n_subjects``."""
    if not masks:
        raise DataError("masks", "no subject to count classes in")
    held = np.array([[np.any(m == v) for v in FOREGROUND] for m in masks.values()])
    return pd.DataFrame({"class_value": list(FOREGROUND), "share": held.mean(axis=0),
                         "n_subjects": len(masks)})


def validation_gap(validation: pd.DataFrame, test: pd.DataFrame,
                   pool_share: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per foreground class: the share of validation and of test subjects that hold it
    (``validation`` from :func:`presence`; ``test`` from :func:`presence` or ``classes.csv``,
    whose ``subjects_present`` it reads), the chance that a class of its prevalence is absent
    from all the validation subjects (``(1 - p)^n``, ``p`` from ``pool_share`` when given, else
    the test share), and whether it is absent from most validation subjects (share below one
    half while the test set holds it): the classes behind the validation-test gap."""
    val = _shares(validation, "validation")
    tst = _shares(test, "test")
    n_val = int(validation["n_subjects"].iloc[0]) if "n_subjects" in validation else len(val)
    prevalence = _shares(pool_share, "pool") if pool_share is not None else tst
    rows = []
    names = {lab.value: lab.name for lab in LABELS}
    for v in FOREGROUND:
        vs, ts = float(val.get(v, np.nan)), float(tst.get(v, np.nan))
        p = float(prevalence.get(v, np.nan))
        rows.append({"class_value": v, "class_name": names[v], "validation_share": vs,
                     "test_share": ts, "p_absent_from_validation": (1 - p) ** n_val,
                     "mostly_absent_from_validation": bool(vs < 0.5 and ts > 0)})
    return pd.DataFrame(rows, columns=list(GAP_COLUMNS))


def _shares(table: pd.DataFrame, name: str) -> pd.Series:
    column = "share" if "share" in table else "subjects_present"
    if column not in table or "class_value" not in table:
        raise DataError(name, "expected columns class_value and share (or subjects_present)")
    return table.set_index("class_value")[column].astype(float)


GAP_PARTS_COLUMNS: tuple[str, ...] = ("model", "display_name", "val_dice", "test_dice",
                                      "test_dice_held_classes", "gap", "composition")
"""Columns of :func:`gap_parts`."""


def held_classes(validation: pd.DataFrame, threshold: float = 0.5) -> list[int]:
    """The foreground classes that at least ``threshold`` of the validation subjects hold
    (``validation_classes.csv``: ``class_value``, ``share``)."""
    shares = _shares(validation, "validation")
    return [int(v) for v in FOREGROUND if float(shares.get(v, 0.0)) >= threshold]


def gap_parts(runs: pd.DataFrame, per_class: pd.DataFrame, validation: pd.DataFrame
              ) -> pd.DataFrame:
    """Per model, how much of the gap between validation and test Dice is class composition:
    ``gap`` = mean best validation Dice (``runs.csv``'s ``val_dice``) minus mean test Dice
    (``dice``); ``test_dice_held_classes`` = the mean of the per-class test Dice
    (``per_class.csv``) over the classes most validation subjects hold (:func:`held_classes`),
    and ``composition`` = that minus the mean over every foreground class scored on the test
    set: the part of the gap that scoring the test set on validation's classes closes. The
    rest is the validation score's own optimism (the checkpoint was chosen on it) and the
    difference of the subjects."""
    lacking = [c for c in ("model", "val_dice", "dice") if c not in runs]
    if lacking:
        raise DataError("runs.csv", f"lacks the columns {lacking}")
    held = set(held_classes(validation))
    fg = per_class[per_class["class_value"].isin(FOREGROUND)].dropna(subset=["dice"])
    names = (dict(zip(runs["model"], runs["display_name"], strict=True))
             if "display_name" in runs else {})
    rows = []
    for model, own in runs.groupby("model", sort=False):
        classes = fg[fg["model"] == model]
        every = float(classes["dice"].mean()) if len(classes) else np.nan
        on_held = classes[classes["class_value"].isin(held)]["dice"]
        val, test = float(own["val_dice"].mean()), float(own["dice"].mean())
        on = float(on_held.mean()) if len(on_held) else np.nan
        rows.append({"model": model, "display_name": names.get(model, model), "val_dice": val,
                     "test_dice": test, "test_dice_held_classes": on, "gap": val - test,
                     "composition": on - every})
    return pd.DataFrame(rows, columns=list(GAP_PARTS_COLUMNS))
