"""Array orientation: the study's one convention, and conversion from/to any file's affine.

Inside the study a volume is a ``(S, H, W)`` array: ``S`` sagittal slices from the patient's
left to right, ``H`` rows from superior to inferior (the head at the top of a displayed
slice), ``W`` columns from anterior to posterior. In nibabel's axis codes (the direction each
axis increases towards) that is ``("R", "I", "P")``. Readers bring every file to it from its
affine, never by assumption; writers (the phantom, predictions) go back the same way.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
from nibabel import orientations as ornt

STUDY_AXCODES: tuple[str, str, str] = ("R", "I", "P")
"""Axis codes of the study's ``(S, H, W)`` arrays."""

MRSPINESEG_AXCODES: tuple[str, str, str] = ("P", "I", "R")
"""Axis codes the phantom writes: like MRSpineSeg's ``(880, 880, 12)`` files, axis 0 is
anterior-posterior, axis 1 superior-inferior and axis 2 the sagittal slice axis."""


def axcodes(affine: np.ndarray) -> tuple[str, str, str]:
    """Axis codes of an affine (e.g. ``("P", "I", "R")``)."""
    return tuple(nib.aff2axcodes(affine))  # type: ignore[return-value]


def to_study(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorient a file's 3D array to the study's ``(S, H, W)`` layout.

    Returns the reoriented array and the affine that maps its voxel indices to world space.
    """
    if array.ndim != 3:
        raise ValueError(f"expected a 3D array, got shape {array.shape}")
    src = ornt.io_orientation(affine)
    dst = ornt.axcodes2ornt(STUDY_AXCODES)
    tf = ornt.ornt_transform(src, dst)
    out = ornt.apply_orientation(array, tf)
    new_affine = affine @ ornt.inv_ornt_aff(tf, array.shape)
    return np.ascontiguousarray(out), new_affine


def from_study(array: np.ndarray, study_affine: np.ndarray,
               target_axcodes: tuple[str, str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`to_study`: bring a ``(S, H, W)`` array to ``target_axcodes``."""
    src = ornt.axcodes2ornt(STUDY_AXCODES)
    dst = ornt.axcodes2ornt(target_axcodes)
    tf = ornt.ornt_transform(src, dst)
    out = ornt.apply_orientation(array, tf)
    new_affine = study_affine @ ornt.inv_ornt_aff(tf, array.shape)
    return np.ascontiguousarray(out), new_affine


def study_affine(spacing: tuple[float, float, float]) -> np.ndarray:
    """Affine of a ``(S, H, W)`` array with voxel ``spacing`` (slice, row, col) in mm.

    Axis 0 runs to the right (+x), axis 1 inferior (-z), axis 2 posterior (-y), in RAS+ world
    coordinates as NIfTI defines them; the origin is at voxel (0, 0, 0).
    """
    ds, dh, dw = spacing
    aff = np.zeros((4, 4))
    aff[0, 0] = ds       # S -> +x (right)
    aff[2, 1] = -dh      # H -> -z (inferior)
    aff[1, 2] = -dw      # W -> -y (posterior)
    aff[3, 3] = 1.0
    return aff


def spacing_of(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel spacing (mm) along each array axis of ``affine``."""
    return tuple(float(v) for v in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))  # type: ignore
