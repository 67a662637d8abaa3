"""Hard-case phantom sets: presets of the hard-case knobs and the per-case manifest.

The knobs themselves live in :class:`~spineseg_core.data.phantom.params.PhantomParams`
(``sacralised_l5_rate``, ``lumbarised_s1_rate``, ``fov_cut_rate``) and the anatomy in
:mod:`.geometry`. This module names the sets a user asks for (``spineseg phantom
--hard lstv|fov|all``) and describes each written case in ``hard_cases.csv`` at the phantom's
root: which hard case it has, which vertebra is transitional and which label it carries, how
the labels relate to the anatomy, and where the field of view is cut.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path

import pandas as pd

from spineseg_core.data.phantom.geometry import (
    FovCut,
    HardCase,
    SpineGeometry,
    present_labels,
    sample_geometry,
)
from spineseg_core.data.phantom.params import PhantomParams
from spineseg_core.errors import DataError
from spineseg_core.io import write_with

MANIFEST = "hard_cases.csv"
"""Name of the manifest at the root of a phantom written with a hard-case rate above 0."""


class HardPreset(StrEnum):
    """Hard-case sets of ``spineseg phantom --hard``."""

    LSTV = "lstv"   # half sacralised L5, half lumbarised S1
    FOV = "fov"     # every field cut (half through the sacrum, half above it)
    ALL = "all"     # a third of each: sacralised L5, lumbarised S1, cut field


HARD_PRESETS: dict[HardPreset, dict[str, float]] = {
    HardPreset.LSTV: {"sacralised_l5_rate": 0.5, "lumbarised_s1_rate": 0.5},
    HardPreset.FOV: {"fov_cut_rate": 1.0},
    HardPreset.ALL: {"sacralised_l5_rate": 1 / 3, "lumbarised_s1_rate": 1 / 3,
                     "fov_cut_rate": 1 / 3},
}
"""The hard-case rates of each preset; every case of a preset set is a hard case."""


def hard_params(preset: HardPreset | str, base: PhantomParams | None = None) -> PhantomParams:
    """``base`` (default: the study's defaults) with the hard-case rates of ``preset``."""
    return replace(base or PhantomParams(), **HARD_PRESETS[HardPreset(preset)])


_TRANSITIONAL: dict[HardCase, tuple[str, int, int]] = {
    HardCase.SACRALISED_L5: ("L5", 1, 1),
    HardCase.LUMBARISED_S1: ("S1", 2, -1),
}
"""Per complete transitional vertebra: its anatomical name, the label it carries (the fused L5
is part of ``S``; the mobile S1 is counted as ``L5``) and the label offset of the levels above
(+1: each is labelled one level lower than its anatomy, e.g. anatomical L4 labelled L5)."""


@dataclass(frozen=True)
class HardCaseRecord:
    """One row of the manifest."""

    split: str                   # train (labelled) or test1 (unlabelled)
    case_id: int
    hard_case: str               # a HardCase value
    transitional_vertebra: str   # "L5" (sacralised), "S1" (lumbarised) or ""
    transitional_label: int      # label it carries in the mask (1 or 2), 0 if none
    label_offset: int            # +1 / -1: levels above are labelled one lower / higher; 0
    fov_cut: str                 # a FovCut value
    sacrum_in_view_mm: float     # how far the field reaches below the sacrum's top (<= 0: none)
    lowest_label: int            # the most inferior label in view (1 when the sacrum is)


def describe(split: str, case_id: int, geom: SpineGeometry) -> HardCaseRecord:
    """The manifest row of one case, from its geometry (no rasterisation)."""
    name, label, offset = _TRANSITIONAL.get(geom.hard_case, ("", 0, 0))
    present = present_labels(geom)
    bottom_up = [1, *(st.label for st in geom.structures if st.label)]
    lowest = next((lab for lab in bottom_up if lab in present), 0)
    return HardCaseRecord(split, int(case_id), geom.hard_case.value, name, label, offset,
                          geom.fov_cut.value, round(geom.fov_mm - geom.sacrum_top_z(), 1),
                          int(lowest))


def write_manifest(root: str | Path, seed: int, params: PhantomParams,
                   ids: Mapping[str, Iterable[int]]) -> Path:
    """Write ``<root>/hard_cases.csv`` for the case ids of each split; return its path."""
    rows = [asdict(describe(split, cid, sample_geometry(cid, seed, params)))
            for split, cids in ids.items() for cid in cids]
    path = Path(root) / MANIFEST
    frame = pd.DataFrame(rows, columns=[f for f in HardCaseRecord.__dataclass_fields__])
    write_with(path, lambda tmp: frame.to_csv(tmp, index=False))
    return path


def read_manifest(root: str | Path) -> pd.DataFrame:
    """The manifest of a hard-case phantom as a frame (one row per case, types restored).

    A missing file, or one without the manifest's columns, is one :class:`DataError`.
    """
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise DataError(path, "no hard-case manifest: write the phantom with a hard-case rate "
                              "above 0 (spineseg phantom --hard ...)")
    frame = pd.read_csv(path, keep_default_na=False)
    missing = [f for f in HardCaseRecord.__dataclass_fields__ if f not in frame.columns]
    if missing:
        raise DataError(path, f"expected the columns {list(HardCaseRecord.__dataclass_fields__)},"
                              f" missing {missing}")
    for col in ("hard_case", "fov_cut"):
        enum = HardCase if col == "hard_case" else FovCut
        bad = sorted(set(frame[col]) - {e.value for e in enum})
        if bad:
            raise DataError(path, f"column {col} holds unknown values {bad}")
    return frame
