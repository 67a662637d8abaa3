"""The anatomical order of the labels along the spine, bottom-up, from :mod:`spineseg_core.labels`.

Counting from the sacrum upwards the spine alternates disc and vertebra: sacrum, L5/S, L5,
L4/L5, L4, ... T9/T10, T9. The order is built from the label table's own facts
(:data:`~spineseg_core.labels.VERTEBRA_VALUES` bottom-up, each after
:func:`~spineseg_core.labels.disc_below` it), so it has
one definition.
"""

from __future__ import annotations

from spineseg_core.labels import DISC_VALUES, LABELS, VERTEBRA_VALUES, LabelKind, disc_below

SACRUM: int = next(lab.value for lab in LABELS if lab.kind is LabelKind.SACRUM)
"""Label value of the sacrum, the anchor of the count."""

BACKGROUND: int = next(lab.value for lab in LABELS if lab.kind is LabelKind.BACKGROUND)


def _spine_order() -> tuple[int, ...]:
    order = [SACRUM]
    for v in VERTEBRA_VALUES:
        order += [disc_below(v), v]
    return tuple(order)


SPINE_ORDER: tuple[int, ...] = _spine_order()
"""Label values from the sacrum upwards: sacrum, L5/S, L5, L4/L5, L4, ..., T9/T10, T9."""

LEVELS: tuple[int, ...] = SPINE_ORDER[1:]
"""The vertebrae and discs (the levels a model must name), bottom-up."""

LEVEL_KINDS: tuple[LabelKind, ...] = (LabelKind.VERTEBRA, LabelKind.DISC)

_RANK = {v: i for values in (VERTEBRA_VALUES, DISC_VALUES) for i, v in enumerate(values)}


def kind_of(value: int) -> LabelKind:
    """What label ``value`` marks (background, sacrum, vertebra or disc)."""
    return LABELS[int(value)].kind


def rank(value: int) -> int:
    """Position of a vertebra or disc among those of its kind, bottom-up (L5 and L5/S: 0)."""
    try:
        return _RANK[int(value)]
    except KeyError:
        raise ValueError(f"label {value} is not a vertebra or a disc") from None


def name(value: int) -> str:
    """Short name of label ``value`` (``"L4"``, ``"L4/L5"``, ``"background"``)."""
    return LABELS[int(value)].name
