"""Level identification: which label does the prediction give each reference vertebra and disc?

For every vertebra and disc present in a subject's reference volume (3D), the *answer* is the
label the prediction gives most of its voxels, background included (an answer of background
means the level was missed). Ties go to the lower label value (``numpy.argmax``). The answer is
then one of five :class:`Outcome` values, judged along the anatomical order of its kind
(:mod:`spineseg_core.levels.anatomy`): the right label; the label of the next structure of the
same kind above or below (an off-by-one shift, the error Dice cannot tell from a miss); any
other label (two levels off, the other kind, the sacrum); or background.

Everything comes from one confusion matrix per subject
(:func:`spineseg_core.metrics.confusion_matrix`), which also gives the subject's Dice counts.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pandas as pd

from spineseg_core.errors import ConfigError
from spineseg_core.labels import NUM_CLASSES
from spineseg_core.levels.anatomy import BACKGROUND, LEVELS, kind_of, rank


class Outcome(StrEnum):
    """What a reference level's answer is."""

    CORRECT = "correct"
    SHIFT_UP = "shift_up"        # the label of the next structure of its kind above
    SHIFT_DOWN = "shift_down"    # ... below
    OTHER = "other"              # any other label: further off, the other kind, the sacrum
    MISSED = "missed"            # background


OUTCOME_TEXT: dict[Outcome, str] = {
    Outcome.CORRECT: "correct", Outcome.SHIFT_UP: "one level up",
    Outcome.SHIFT_DOWN: "one level down", Outcome.OTHER: "other wrong label",
    Outcome.MISSED: "missed"}
"""How the book names each outcome."""

IDENTIFY_COLUMNS: tuple[str, ...] = ("class_value", "n_ref", "answer", "answer_share", "outcome")
"""Columns of :func:`identify`'s table."""


def outcome(reference: int, answer: int) -> Outcome:
    """The outcome of ``answer`` for reference level ``reference`` (a vertebra or disc)."""
    if answer == reference:
        return Outcome.CORRECT
    if answer == BACKGROUND:
        return Outcome.MISSED
    if kind_of(answer) is kind_of(reference):
        step = rank(answer) - rank(reference)
        if step == 1:
            return Outcome.SHIFT_UP
        if step == -1:
            return Outcome.SHIFT_DOWN
    return Outcome.OTHER


def confusion(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The subject's ``(20, 20)`` confusion matrix (rows: reference), for volumes of one shape."""
    from spineseg_core.metrics import confusion_matrix

    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise ConfigError(f"pred and ref: expected volumes of one shape, got {pred.shape} and "
                          f"{ref.shape}")
    try:
        return confusion_matrix(pred, ref).numpy()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def identify_confusion(cm: np.ndarray) -> pd.DataFrame:
    """Per reference level present (anatomical order): its voxels ``n_ref``, the ``answer``,
    the share of its voxels given that answer, and the :class:`Outcome`."""
    cm = np.asarray(cm)
    if cm.shape != (NUM_CLASSES, NUM_CLASSES):
        raise ConfigError(f"confusion matrix: expected shape {(NUM_CLASSES, NUM_CLASSES)}, "
                          f"got {cm.shape}")
    rows = []
    for level in LEVELS:
        n = int(cm[level].sum())
        if n == 0:
            continue
        answer = int(np.argmax(cm[level]))
        rows.append((level, n, answer, cm[level, answer] / n, str(outcome(level, answer))))
    return pd.DataFrame(rows, columns=list(IDENTIFY_COLUMNS))


def identify(pred: np.ndarray, ref: np.ndarray) -> pd.DataFrame:
    """:func:`identify_confusion` of two label volumes ``(S, H, W)`` of one subject."""
    return identify_confusion(confusion(pred, ref))


def all_right(table: pd.DataFrame) -> bool:
    """Whether every present level of one subject's :func:`identify` table is correct (a
    subject without any level counts as not right: there was nothing to get right)."""
    return bool(len(table)) and bool((table["outcome"] == Outcome.CORRECT).all())
