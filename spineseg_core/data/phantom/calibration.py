"""Tissue statistics of a T2 volume, computed one way for the phantom and for a real scan.

The phantom is calibrated by comparing a few numbers that describe how a sagittal T2 spine
looks: the brightness of CSF, disc and posterior elements relative to the vertebral body, how
textured the marrow and the canal are, and how much pixel-to-pixel variation (noise) sits on
top. Every number comes from :func:`calibration_stats`, whatever the volume: regions are eroded
by one voxel (so edges and partial volume do not count), intensities are taken as fractions of
the volume's 99.5th percentile, and a coefficient of variation is ``sd / mean`` over the eroded
region.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd
from scipy.ndimage import binary_erosion

from spineseg_core.data.phantom.render import TissueCode
from spineseg_core.errors import DataError
from spineseg_core.labels import DISC_VALUES, VERTEBRA_VALUES

__all__ = ["COMPARISON_COLUMNS", "NORMALISING_PERCENTILE", "Region", "RegionStats", "STATISTICS",
           "calibration_stats", "comparison_table", "phantom_regions", "region_stats"]

NORMALISING_PERCENTILE = 99.5
"""Intensities are reported as fractions of this percentile of the whole volume."""
MIN_VOXELS = 20
"""An eroded region with fewer voxels than this has no statistics (NaN)."""
_MAD_TO_SD = 1.4826


class Region(StrEnum):
    """Tissue regions compared between phantom and real scan."""

    BODY = "body"              # vertebral bodies (marrow), without the sacrum
    CSF = "csf"                # the spinal canal's fluid, without the cord
    DISC = "disc"              # intervertebral discs (nucleus and annulus)
    POSTERIOR = "posterior"    # posterior elements: laminae, spinous and articular processes


@dataclass(frozen=True)
class RegionStats:
    """Statistics of one eroded region; ``mean`` as a fraction of the normalising percentile."""

    voxels: int
    mean: float
    cv: float
    hf_cv: float   # robust sd of neighbour differences along rows / sqrt(2), over the mean


STATISTICS: dict[str, str] = {
    "csf_body_ratio": "mean CSF / mean vertebral body",
    "disc_body_ratio": "mean disc / mean vertebral body",
    "posterior_body_ratio": "mean posterior elements / mean vertebral body",
    "body_mean": "mean vertebral body, fraction of the 99.5th percentile",
    "csf_mean": "mean CSF, fraction of the 99.5th percentile",
    "marrow_cv": "coefficient of variation inside vertebral bodies",
    "canal_cv": "coefficient of variation inside the CSF",
    "disc_cv": "coefficient of variation inside discs",
    "marrow_hf_cv": "noise proxy: robust sd of row-neighbour differences / sqrt(2) / mean, bodies",
}
"""The compared statistics, in table order, with what each one is."""


def region_stats(image: np.ndarray, region: np.ndarray, scale: float,
                 erode: int = 1) -> RegionStats:
    """Statistics of ``image / scale`` inside ``region`` eroded ``erode`` times.

    Erosion uses scipy's 6-connected cross in 3D (the same in any volume). ``hf_cv`` is a
    robust noise estimate: for pairs of row neighbours that are both inside the eroded region,
    the median absolute difference times 1.4826 / sqrt(2), relative to the region's mean;
    it is insensitive to smooth texture and to a few outliers (vessels).
    """
    if image.shape != region.shape:
        raise ValueError(f"image {image.shape} and region {region.shape} differ in shape")
    inner = binary_erosion(region.astype(bool), iterations=erode) if erode else region.astype(bool)
    n = int(inner.sum())
    if n < MIN_VOXELS:
        return RegionStats(n, float("nan"), float("nan"), float("nan"))
    x = image.astype(np.float64) / scale
    vals = x[inner]
    mean = float(vals.mean())
    pairs = inner[:, 1:, :] & inner[:, :-1, :]
    diff = (x[:, 1:, :] - x[:, :-1, :])[pairs]
    hf = float(np.median(np.abs(diff)) * _MAD_TO_SD / np.sqrt(2.0)) if diff.size else float("nan")
    return RegionStats(n, mean, float(vals.std() / mean), hf / mean)


def calibration_stats(image: np.ndarray, regions: Mapping[Region, np.ndarray],
                      erode: int = 1) -> dict[str, float]:
    """The :data:`STATISTICS` of one volume, from its image and its tissue regions.

    ``image`` and every region share one shape; regions missing from ``regions`` give NaN
    for the statistics that need them. Raises :class:`DataError` when the image has no
    positive percentile to normalise by.
    """
    scale = float(np.percentile(image, NORMALISING_PERCENTILE))
    if not scale > 0:
        raise DataError("<array>", f"the {NORMALISING_PERCENTILE}th percentile of the image is "
                                   f"{scale}; expected a positive intensity to normalise by")
    nan = RegionStats(0, float("nan"), float("nan"), float("nan"))
    st = {r: (region_stats(image, regions[r], scale, erode) if r in regions else nan)
          for r in Region}
    body = st[Region.BODY].mean
    out = {
        "csf_body_ratio": st[Region.CSF].mean / body,
        "disc_body_ratio": st[Region.DISC].mean / body,
        "posterior_body_ratio": st[Region.POSTERIOR].mean / body,
        "body_mean": body,
        "csf_mean": st[Region.CSF].mean,
        "marrow_cv": st[Region.BODY].cv,
        "canal_cv": st[Region.CSF].cv,
        "disc_cv": st[Region.DISC].cv,
        "marrow_hf_cv": st[Region.BODY].hf_cv,
    }
    assert list(out) == list(STATISTICS)
    return out


def phantom_regions(mask: np.ndarray, tissue: np.ndarray) -> dict[Region, np.ndarray]:
    """The :class:`Region` masks of a phantom case from its labels and tissue codes.

    Bodies are the vertebra labels without the sacrum (the real sample has none), discs the
    disc labels; CSF and posterior elements come from the phantom's tissue codes, since the
    study's labels leave them out.
    """
    return {Region.BODY: np.isin(mask, [v for v in VERTEBRA_VALUES if v != 1]),
            Region.DISC: np.isin(mask, DISC_VALUES),
            Region.CSF: tissue == TissueCode.CSF,
            Region.POSTERIOR: tissue == TissueCode.POSTERIOR}


COMPARISON_COLUMNS = ("statistic", "description", "real", "phantom_mean", "phantom_sd",
                      "phantom_min", "phantom_max", "phantom_cases")
"""Columns of the phantom-vs-real table (``results/phantom_vs_real.csv``)."""


def comparison_table(real: Mapping[str, float],
                     phantom: list[Mapping[str, float]]) -> pd.DataFrame:
    """One row per statistic: the real value beside the phantom's mean, sd, min and max."""
    if not phantom:
        raise ValueError("comparison_table needs at least one phantom case")
    rows = []
    for name, what in STATISTICS.items():
        vals = np.array([p[name] for p in phantom], dtype=float)
        ok = vals[np.isfinite(vals)]
        rows.append({"statistic": name, "description": what, "real": float(real[name]),
                     "phantom_mean": float(ok.mean()) if ok.size else float("nan"),
                     "phantom_sd": float(ok.std(ddof=1)) if ok.size > 1 else float("nan"),
                     "phantom_min": float(ok.min()) if ok.size else float("nan"),
                     "phantom_max": float(ok.max()) if ok.size else float("nan"),
                     "phantom_cases": int(ok.size)})
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
