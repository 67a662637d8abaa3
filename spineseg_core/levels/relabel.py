"""Relabelling by counting from the sacrum: name the predicted levels by their place in the row.

A 2D model names each level from what it sees in one slice, and a lumbar vertebra looks much
like its neighbours, so a whole column of well-drawn levels can come out shifted by one. The
classic repair ignores the names the model gave and counts instead: starting at the sacrum,
the first disc above it is L5/S, the next vertebra L5, and so on upwards.

**The count** (:func:`relabel`). In a label volume ``(S, H, W)`` (rows superior→inferior, the
study's convention), the predicted vertebrae (any vertebra label) and the predicted discs are
split into 3D connected components (``scipy.ndimage.label``, face connectivity). Components
smaller than :data:`SPECK_SHARE` of the largest of their kind are *specks*: left as they are
and not counted. The others are ordered by the row of their centre, from the sacrum upwards,
and must alternate disc, vertebra, disc...; the ``i``-th gets the ``i``-th label of
:data:`~spineseg_core.levels.anatomy.SPINE_ORDER` above the sacrum.

**Where it cannot work** it says so, in :class:`Status`, and returns the volume unchanged
rather than guess: no sacrum predicted; no vertebra or disc; a component whose centre lies
below the sacrum's; two components of one kind in a row, or a vertebra first (a split
component, or a structure missed in between); a component more than :data:`MERGE_RATIO` times
as tall as the taller of its neighbours of the same kind (two levels merged through a missed
disc); more components than there are labels.

**What it cannot see.** The count trusts the predicted sacrum. MRSpineSeg's masks (and the
phantom's hard cases, :mod:`spineseg_core.data.phantom.hard`) name the levels by counting up
from the sacrum too: a sacralised L5 is part of ``S`` and the anatomical L4 is labelled L5. So
with a transitional vertebra the count agrees with the reference as long as the model paints
the fused vertebra as sacrum (then it even repairs a model that named the levels by their
anatomy); a model that paints it as a mobile L5 gives one more disc and vertebra above its
sacrum, every check passes, and every name stays one level above the reference's. The tests
show both on hand-made volumes (``tests/test_levels.py``). A field of view without the sacrum
gives :attr:`Status.NO_SACRUM`: nothing to count from.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy import ndimage

from spineseg_core.errors import ConfigError
from spineseg_core.labels import DISC_VALUES, NUM_CLASSES, VERTEBRA_VALUES, LabelKind
from spineseg_core.levels.anatomy import SACRUM, SPINE_ORDER, kind_of

SPECK_SHARE = 0.05
"""A component with fewer voxels than this share of the largest of its kind is a speck (a
stray blob, a fragment of a neighbour), left as predicted and not counted. At the cpu
profile's grid a lumbar vertebra holds about 1,500 voxels, a speck a few dozen; the sliver of a
level cut by the top of the field of view can be a speck too (it then keeps its label)."""

MERGE_RATIO = 1.5
"""A component taller (in rows) than this multiple of the taller of its neighbours of the same
kind is taken for two levels merged through a missed structure. Neighbouring levels differ by
well under this (about 1.1 between L5 and L4 with their tilt); two vertebrae and a disc are
over twice one vertebra."""


class Status(StrEnum):
    """Whether the count could be made, and if not, why."""

    OK = "ok"
    NO_SACRUM = "no_sacrum"
    NO_LEVELS = "no_levels"
    BELOW_SACRUM = "below_sacrum"
    NOT_ALTERNATING = "not_alternating"
    MERGED = "merged"
    TOO_MANY = "too_many"


STATUS_TEXT: dict[Status, str] = {
    Status.OK: "relabelled",
    Status.NO_SACRUM: "no sacrum predicted",
    Status.NO_LEVELS: "no vertebra or disc predicted",
    Status.BELOW_SACRUM: "a component below the sacrum",
    Status.NOT_ALTERNATING: "split or missing component (order not disc, vertebra, ...)",
    Status.MERGED: "merged components",
    Status.TOO_MANY: "more components than labels",
}
"""How the book names each status."""

_KIND_VALUES: dict[LabelKind, tuple[int, ...]] = {LabelKind.VERTEBRA: VERTEBRA_VALUES,
                                                  LabelKind.DISC: DISC_VALUES}


_PLURAL: dict[LabelKind, str] = {LabelKind.VERTEBRA: "vertebrae", LabelKind.DISC: "discs"}


@dataclass(frozen=True)
class Component:
    """One connected component of predicted vertebrae or discs."""

    kind: LabelKind
    index: int        # its number in the kind's ``ndimage.label`` map
    voxels: int
    row: float        # row of its centre (rows grow towards inferior)
    height: int       # rows it spans


@dataclass(frozen=True)
class Relabelling:
    """The result of :func:`relabel`: the volume (the input itself unless ``status`` is ok),
    the status with a one-line ``detail``, and what was counted."""

    volume: np.ndarray
    status: Status
    detail: str
    n_vertebrae: int = 0
    n_discs: int = 0
    n_specks: int = 0

    @property
    def ok(self) -> bool:
        return self.status is Status.OK


def _check_volume(pred: np.ndarray) -> np.ndarray:
    pred = np.asarray(pred)
    if pred.ndim != 3 or pred.dtype.kind not in "iu":
        raise ConfigError(f"pred: expected a 3D integer label volume (S, H, W), got a "
                          f"{pred.ndim}D array of {pred.dtype}")
    if pred.size and (pred.min() < 0 or pred.max() >= NUM_CLASSES):
        raise ConfigError(f"pred: label values must lie in 0..{NUM_CLASSES - 1}, found "
                          f"{int(pred.min())}..{int(pred.max())}")
    return pred


def components(pred: np.ndarray, kind: LabelKind) -> tuple[np.ndarray, list[Component]]:
    """The ``ndimage.label`` map of the voxels predicted as any label of ``kind`` and its
    components (their size, centre row and height)."""
    lab, n = ndimage.label(np.isin(pred, _KIND_VALUES[kind]))
    if n == 0:
        return lab, []
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    centres = ndimage.center_of_mass(lab > 0, lab, range(1, n + 1))
    boxes = ndimage.find_objects(lab)
    return lab, [Component(kind, i + 1, int(sizes[i + 1]), float(centres[i][1]),
                           int(boxes[i][1].stop - boxes[i][1].start)) for i in range(n)]


def _ordinal(i: int) -> str:
    return f"{i}{'th' if 10 <= i % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(i % 10, 'th')}"


def _sacrum(pred: np.ndarray) -> float | None:
    """Row of the centre of the largest predicted sacrum component, None without one."""
    lab, n = ndimage.label(pred == SACRUM)
    if n == 0:
        return None
    biggest = int(np.argmax(np.bincount(lab.ravel())[1:])) + 1
    return float(ndimage.center_of_mass(lab == biggest)[1])


def _merged(order: list[Component], ratio: float) -> str | None:
    for kind in _KIND_VALUES:
        same = [c for c in order if c.kind is kind]
        for j, c in enumerate(same):
            near = [same[k].height for k in (j - 1, j + 1) if 0 <= k < len(same)]
            if near and c.height > ratio * max(near):
                return (f"the {_ordinal(j + 1)} {kind} component above the sacrum spans "
                        f"{c.height} rows against at most {max(near)} for its neighbours "
                        "(levels merged through a missed structure)")
    return None


def relabel(pred: np.ndarray, speck_share: float = SPECK_SHARE,
            merge_ratio: float = MERGE_RATIO) -> Relabelling:
    """Rename the predicted vertebrae and discs of ``pred`` ``(S, H, W)`` by counting them
    from the sacrum upwards (module docstring); the status says whether it could."""
    pred = _check_volume(pred)
    if not 0 <= speck_share < 1:
        raise ConfigError(f"speck_share: expected a share in [0, 1), got {speck_share}")
    if merge_ratio <= 1:
        raise ConfigError(f"merge_ratio: expected a ratio above 1, got {merge_ratio}")

    def fail(status: Status, detail: str, **counts: int) -> Relabelling:
        return Relabelling(pred, status, detail, **counts)

    sac = _sacrum(pred)
    if sac is None:
        return fail(Status.NO_SACRUM, "no voxel is predicted as sacrum: nothing to count from")
    maps, counted, specks = {}, [], 0
    for kind in _KIND_VALUES:
        lab, comps = components(pred, kind)
        maps[kind] = lab
        biggest = max((c.voxels for c in comps), default=0)
        kept = [c for c in comps if c.voxels >= speck_share * biggest]
        specks += len(comps) - len(kept)
        counted += kept
    n_v = sum(c.kind is LabelKind.VERTEBRA for c in counted)
    counts = {"n_vertebrae": n_v, "n_discs": len(counted) - n_v, "n_specks": specks}
    if not counted:
        return fail(Status.NO_LEVELS, "no vertebra or disc is predicted", **counts)
    below = [c for c in counted if c.row >= sac]
    if below:
        return fail(Status.BELOW_SACRUM, f"{len(below)} component(s) ({below[0].kind} first) "
                    f"centred at or below the sacrum's centre (row {sac:.1f})", **counts)
    order = sorted(counted, key=lambda c: -c.row)  # inferior first: from the sacrum upwards
    targets = SPINE_ORDER[1:]
    for i, c in enumerate(order):
        if i >= len(targets):
            return fail(Status.TOO_MANY, f"{len(order)} components above the sacrum, but only "
                        f"{len(targets)} labels to give", **counts)
        if kind_of(targets[i]) is not c.kind:
            where = ("the first component above the sacrum is a vertebra, not the L5/S disc"
                     if i == 0 else f"the {_ordinal(i)} and {_ordinal(i + 1)} components above "
                     f"the sacrum are both {_PLURAL[c.kind]}")
            return fail(Status.NOT_ALTERNATING, f"{where} (a split component, or a structure "
                        "missed in between)", **counts)
    merged = _merged(order, merge_ratio)
    if merged:
        return fail(Status.MERGED, merged, **counts)
    out = pred.copy()
    for c, target in zip(order, targets):
        out[maps[c.kind] == c.index] = target
    return Relabelling(out, Status.OK, f"{counts['n_discs']} discs and {n_v} vertebrae counted "
                       f"from the sacrum, {specks} specks left as predicted", **counts)
