"""The 20-class label table of MRSpineSeg, in the order of the paper's Table 2.

This module is the single place where label values, names and kinds are defined; every other
module (phantom, loaders, metrics, book) imports them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class LabelKind(StrEnum):
    """What a label marks."""

    BACKGROUND = "background"
    SACRUM = "sacrum"
    VERTEBRA = "vertebra"
    DISC = "disc"


@dataclass(frozen=True)
class Label:
    """One class of the segmentation: its mask value, short name, long name and kind."""

    value: int
    name: str
    long_name: str
    kind: LabelKind


_VERTEBRAE = ("L5", "L4", "L3", "L2", "L1", "T12", "T11", "T10", "T9")
_DISCS = ("L5/S", "L4/L5", "L3/L4", "L2/L3", "L1/L2", "T12/L1", "T11/T12", "T10/T11", "T9/T10")

LABELS: tuple[Label, ...] = (
    Label(0, "background", "background", LabelKind.BACKGROUND),
    Label(1, "S", "sacrum", LabelKind.SACRUM),
    *(Label(2 + i, n, f"vertebra {n}", LabelKind.VERTEBRA) for i, n in enumerate(_VERTEBRAE)),
    *(Label(11 + i, n, f"disc {n}", LabelKind.DISC) for i, n in enumerate(_DISCS)),
)

NUM_CLASSES: int = len(LABELS)
"""Number of output classes of every model (20)."""

FOREGROUND: tuple[int, ...] = tuple(lab.value for lab in LABELS if lab.value != 0)
"""The 19 foreground label values (1..19); means over classes are taken over these."""

LABEL_NAMES: tuple[str, ...] = tuple(lab.name for lab in LABELS)
"""Short names indexed by label value, as the paper's Table 2 spells them."""

VERTEBRA_VALUES: tuple[int, ...] = tuple(l.value for l in LABELS if l.kind is LabelKind.VERTEBRA)
DISC_VALUES: tuple[int, ...] = tuple(l.value for l in LABELS if l.kind is LabelKind.DISC)


def disc_below(vertebra: int) -> int:
    """Label value of the disc just below vertebra value ``vertebra`` (2..10)."""
    if vertebra not in VERTEBRA_VALUES:
        raise ValueError(f"vertebra must be one of {VERTEBRA_VALUES}, got {vertebra}")
    return 10 + vertebra - 1


def disc_above(vertebra: int) -> int:
    """Label value of the disc just above vertebra value ``vertebra`` (2..10)."""
    if vertebra not in VERTEBRA_VALUES:
        raise ValueError(f"vertebra must be one of {VERTEBRA_VALUES}, got {vertebra}")
    return 10 + vertebra


def label_by_name(name: str) -> Label:
    """Look a label up by its short name (``"L5/S"``, ``"T12"``...)."""
    for lab in LABELS:
        if lab.name == name:
            return lab
    raise KeyError(f"unknown label {name!r}; valid names: {', '.join(LABEL_NAMES)}")
