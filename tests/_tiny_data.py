"""A tiny labelled dataset in the MRSpineSeg layout, for fast training and prediction tests.

Each case is a stack of horizontal label bands (all 19 foreground classes) with noisy
intensities proportional to the label, written in MRSpineSeg's own axis order so that readers
have to reorient it.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from spineseg_core.data.orientation import MRSPINESEG_AXCODES, from_study, study_affine


def make_case_arrays(rng: np.random.Generator, slices: int, size: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Study-layout ``(S, H, W)`` image (int16) and mask (uint8) of one case."""
    mask = np.zeros((slices, size, size), np.uint8)
    band = max(size // 24, 1)
    for lab in range(1, 20):
        r0 = 2 + (lab - 1) * band
        c0 = size // 5 + int(rng.integers(0, 3))
        mask[:, r0:r0 + band, c0:c0 + size // 2] = lab
    image = (mask.astype(np.float64) * 50 + rng.normal(100, 20, mask.shape)).astype(np.int16)
    return image, mask


def make_tiny_dataset(root: Path, cases: int = 5, slices: int = 3, size: int = 48,
                      seed: int = 0) -> Path:
    """Write ``cases`` labelled cases under ``root/train/{MR,Mask}``; returns ``root``."""
    rng = np.random.default_rng(seed)
    (root / "train" / "MR").mkdir(parents=True, exist_ok=True)
    (root / "train" / "Mask").mkdir(parents=True, exist_ok=True)
    affine = study_affine((4.4, 1.0, 1.0))
    for c in range(1, cases + 1):
        image, mask = make_case_arrays(rng, slices, size)
        im, aff = from_study(image, affine, MRSPINESEG_AXCODES)
        mk, _ = from_study(mask, affine, MRSPINESEG_AXCODES)
        nib.save(nib.Nifti1Image(im, aff), root / "train" / "MR" / f"Case{c}.nii.gz")
        nib.save(nib.Nifti1Image(mk, aff), root / "train" / "Mask" / f"mask_case{c}.nii.gz")
    return root
