"""How many pixels a structure spans at a profile's grid, and how large the encoders' maps are.

The resolution check of the study starts from these facts: at 128 px a thoracic disc of the
phantom is a couple of pixels high, and a stride-32 encoder sees a map of a few pixels. The
heights are measured on the reference masks of the (training) volumes, along the image rows
(superior-inferior), per slice and column: the run length of a label in each column where it
appears, whose median over columns and slices is the structure's height there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from spineseg_core.labels import LABELS, LabelKind

STRIDES: tuple[int, ...] = (8, 16, 32)
"""Output strides of the encoders in the study (dilated backbones stop at 8 or 16, the
undilated ones and the U-Net bottom at 16 or 32)."""


def column_heights(mask: np.ndarray, value: int) -> np.ndarray:
    """Heights in pixels of ``value`` in every (slice, column) of a ``(S, H, W)`` mask where it
    appears: the number of its pixels in that column (a disc or vertebra is one run per column)."""
    counts = (mask == value).sum(axis=1)  # (S, W)
    return counts[counts > 0].astype(np.int64)


def structure_heights(masks: Iterable[np.ndarray], spacing_mm: float | None = None
                      ) -> pd.DataFrame:
    """Median column height per kind of structure (thoracic/lumbar discs and vertebrae, sacrum)
    over ``masks``: ``kind, median_px, p10_px, p90_px`` (and ``median_mm`` with a row spacing)."""
    groups: dict[str, list[np.ndarray]] = {}
    for mask in masks:
        for label in LABELS:
            if label.kind is LabelKind.BACKGROUND:
                continue
            region = "thoracic" if label.name.startswith("T") else "lumbar"
            if label.kind is LabelKind.DISC:
                kind = f"{region} disc"
            elif label.kind is LabelKind.VERTEBRA:
                kind = f"{region} vertebra"
            else:
                kind = str(label.kind)
            h = column_heights(mask, label.value)
            if h.size:
                groups.setdefault(kind, []).append(h)
    rows = []
    for kind, parts in sorted(groups.items()):
        h = np.concatenate(parts)
        row = {"kind": kind, "median_px": float(np.median(h)),
               "p10_px": float(np.percentile(h, 10)), "p90_px": float(np.percentile(h, 90)),
               "n_columns": int(h.size)}
        if spacing_mm is not None:
            row["median_mm"] = row["median_px"] * spacing_mm
        rows.append(row)
    return pd.DataFrame(rows)


def feature_map_sizes(height: int, width: int, strides: Sequence[int] = STRIDES
                      ) -> pd.DataFrame:
    """``stride, rows, cols`` of an encoder's map for a ``height x width`` input (ceil, as
    padded convolutions give)."""
    return pd.DataFrame([{"stride": s, "rows": -(-height // s), "cols": -(-width // s)}
                         for s in strides])
