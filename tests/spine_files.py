"""Small MRSpineSeg- and SPIDER-layout datasets written by the tests themselves.

A study-layout volume ``(S, H, W)`` (left->right, superior->inferior, anterior->posterior) is
written to disk in MRSpineSeg's axis order ("P", "I", "R") or any other, with an affine built
by hand, so that the readers' reorientation is checked against hand-computed positions.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np


def pir_affine(spacing: tuple[float, float, float]) -> np.ndarray:
    """Affine of a file array (W, H, S) with axes P, I, R (MRSpineSeg's order)."""
    ds, dh, dw = spacing
    aff = np.eye(4)
    aff[:3, :3] = 0
    aff[1, 0] = -dw   # axis 0 -> posterior (-y)
    aff[2, 1] = -dh   # axis 1 -> inferior (-z)
    aff[0, 2] = ds    # axis 2 -> right (+x)
    aff[:3, 3] = (-20.0, 100.0, 150.0)
    return aff


def study_volume(slices: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic (S, H, W) int16 image and uint8 mask with labels 0..19 as horizontal bands."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 50, size=(slices, size, size)).astype(np.int16)
    mask = np.zeros((slices, size, size), dtype=np.uint8)
    band = max(1, size // 24)
    c0, c1 = size // 3, 2 * size // 3
    for k in range(1, 20):
        r0 = (k + 1) * band
        mask[1:-1, r0:r0 + band, c0:c1] = k
    image[mask > 0] += (mask[mask > 0].astype(np.int16) * 50 + 200)
    return image, mask


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path


def write_mrspineseg_case(root: Path, num: int, slices: int, size: int, *,
                          spacing: tuple[float, float, float] | None = None,
                          subset: str = "train", labelled: bool = True, seed: int = 0
                          ) -> tuple[Path, Path | None]:
    """Write ``Case<num>`` in the real axis order; returns (image path, mask path)."""
    image, mask = study_volume(slices, size, seed=seed or num)
    spacing = spacing or (4.4, 303.4 / size, 303.4 / size)
    aff = pir_affine(spacing)
    img_path = write_nifti(root / subset / "MR" / f"Case{num}.nii.gz", image.transpose(2, 1, 0), aff)
    mask_path = None
    if labelled:
        mask_path = write_nifti(root / subset / "Mask" / f"mask_case{num}.nii.gz",
                                mask.transpose(2, 1, 0), aff)
    return img_path, mask_path


def write_spider_case(root: Path, pid: str, seq: str, study_mask: np.ndarray,
                      spacing: tuple[float, float, float] = (3.0, 1.0, 1.0),
                      direction: tuple[float, ...] | None = None) -> tuple[Path, Path]:
    """Write ``images/<pid>_<seq>.mha`` and its mask from a SPIDER-valued array in ITK order.

    ``study_mask`` is given in ITK index order (x, y, z); the image is the mask scaled.
    """
    import SimpleITK as sitk

    paths = []
    for sub, arr in (("images", (study_mask.astype(np.int16) * 3 + 7)), ("masks", study_mask)):
        img = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(2, 1, 0)))
        img.SetSpacing(spacing)
        img.SetOrigin((10.0, -5.0, 2.0))
        if direction is not None:
            img.SetDirection(direction)
        p = root / sub / f"{pid}_{seq}.mha"
        p.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(img, str(p))
        paths.append(p)
    return paths[0], paths[1]
