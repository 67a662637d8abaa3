"""Read one case (image + mask) into the study's ``(S, H, W)`` layout, validating as it goes.

NIfTI files are read with nibabel, ``.mha`` files with SimpleITK (whose LPS geometry becomes a
NIfTI-style RAS affine). Every array is reoriented from its affine with
:func:`~spineseg_core.data.orientation.to_study`, never by assumption. SPIDER label values are
mapped onto the study's 20 classes with a lookup table. Every problem is a :class:`DataError`
naming the file and what was expected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from spineseg_core.data.layout import CaseRef
from spineseg_core.data.orientation import STUDY_AXCODES, axcodes, spacing_of, to_study
from spineseg_core.errors import DataError
from spineseg_core.labels import NUM_CLASSES

AFFINE_TOLERANCE = 1e-3
"""Absolute tolerance (mm) when comparing the affines of an image and its mask."""


@dataclass
class Volume:
    """One case in the study layout.

    ``image`` is float32 ``(S, H, W)``; ``mask`` uint8 ``(S, H, W)`` with values 0..19, or
    ``None`` for unlabelled cases; ``spacing`` is (slice, row, col) in mm; ``affine`` maps the
    study array's voxel indices to RAS world coordinates; ``source_axcodes`` is the file's own
    orientation (needed to write predictions back).
    """

    case_id: str
    image: np.ndarray
    mask: np.ndarray | None
    spacing: tuple[float, float, float]
    affine: np.ndarray
    source: Path
    patient_id: str = ""
    subset: str = "train"
    source_axcodes: tuple[str, str, str] = STUDY_AXCODES

    def __post_init__(self) -> None:
        if not self.patient_id:
            self.patient_id = self.case_id

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.image.shape)  # type: ignore[return-value]

    @property
    def num_slices(self) -> int:
        return int(self.image.shape[0])


def _spider_lut() -> np.ndarray:
    lut = np.zeros(256, dtype=np.uint8)
    for k in range(1, 10):
        lut[k] = k + 1          # vertebra k (L5 = 1) -> study vertebra value
        lut[100 + k] = k + 1    # partially visible vertebra, same level
        lut[200 + k] = 10 + k   # disc below vertebra k (L5/S = 201)
    return lut


SPIDER_LUT: np.ndarray = _spider_lut()
"""SPIDER mask value -> study label value (0 for everything not in the study's 20 classes)."""


def map_spider_labels(mask: np.ndarray, path: str | Path = "<array>") -> np.ndarray:
    """Map a SPIDER label array onto the study's classes (vectorised lookup)."""
    mask = np.asarray(mask)
    if mask.size and (mask.min() < 0 or mask.max() >= SPIDER_LUT.size):
        bad = np.unique(mask[(mask < 0) | (mask >= SPIDER_LUT.size)])
        raise DataError(path, f"SPIDER mask values outside 0..{SPIDER_LUT.size - 1}: "
                              f"{_list_values(bad)}")
    return SPIDER_LUT[mask.astype(np.intp)]


def _list_values(values: np.ndarray, limit: int = 10) -> str:
    shown = ", ".join(str(v) for v in values[:limit].tolist())
    return shown + (f", ... ({values.size} values)" if values.size > limit else "")


def _read_nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel, gzip and zlib raise many types for broken files
        raise DataError(path, f"unreadable NIfTI file ({type(exc).__name__}: {exc})") from None
    return data, np.asarray(img.affine, dtype=float)


def _read_itk(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import SimpleITK as sitk

    try:
        img = sitk.ReadImage(str(path))
    except Exception as exc:
        raise DataError(path, f"unreadable image file ({type(exc).__name__}: "
                              f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else ''})"
                        ) from None
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise DataError(path, f"expected a scalar image, got "
                              f"{img.GetNumberOfComponentsPerPixel()} components per voxel")
    data = sitk.GetArrayFromImage(img)
    dim = img.GetDimension()
    data = data.transpose(tuple(range(data.ndim))[::-1])  # ITK arrays are (z, y, x)
    direction = np.asarray(img.GetDirection(), dtype=float).reshape(dim, dim)
    spacing = np.asarray(img.GetSpacing(), dtype=float)
    origin = np.asarray(img.GetOrigin(), dtype=float)
    affine = np.eye(4)
    n = min(dim, 3)
    affine[:n, :n] = (direction @ np.diag(spacing))[:n, :n]
    affine[:n, 3] = origin[:n]
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine  # ITK world is LPS, NIfTI is RAS
    return data, affine


_READERS: dict[str, Callable[[Path], tuple[np.ndarray, np.ndarray]]] = {
    ".nii.gz": _read_nifti,
    ".nii": _read_nifti,
    ".mha": _read_itk,
    ".mhd": _read_itk,
    ".nrrd": _read_itk,
}


def read_array(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a 3D array and its RAS affine from ``path`` (no reorientation).

    A 4D array with a singleton last axis is squeezed; anything else that is not 3D raises.
    """
    path = Path(path)
    reader = next((r for suffix, r in _READERS.items() if path.name.endswith(suffix)), None)
    if reader is None:
        raise DataError(path, f"unsupported file type; expected one of {', '.join(_READERS)}")
    if not path.is_file():
        raise DataError(path, "file does not exist")
    data, affine = reader(path)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DataError(path, f"expected a 3D volume, got a {data.ndim}D array of shape "
                              f"{tuple(data.shape)}")
    if min(data.shape) < 1:
        raise DataError(path, f"empty volume of shape {tuple(data.shape)}")
    return data, affine


def _as_label_array(data: np.ndarray, path: Path) -> np.ndarray:
    if data.dtype.kind == "f":
        if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
            raise DataError(path, f"mask holds non-integer values (dtype {data.dtype}); "
                                  "expected integer labels")
        data = data.astype(np.int64)
    elif data.dtype.kind not in "iub":
        raise DataError(path, f"mask has dtype {data.dtype}; expected integer labels")
    return data


def _check_labels(mask: np.ndarray, path: Path) -> np.ndarray:
    lo, hi = (int(mask.min()), int(mask.max())) if mask.size else (0, 0)
    if lo < 0 or hi >= NUM_CLASSES:
        values = np.unique(mask)
        bad = values[(values < 0) | (values >= NUM_CLASSES)]
        raise DataError(path, f"mask label values outside 0..{NUM_CLASSES - 1}: "
                              f"{_list_values(bad)}")
    return mask.astype(np.uint8)


def load_case(ref: CaseRef, *, spider_labels: bool | None = None) -> Volume:
    """Read, validate and reorient one case.

    ``spider_labels`` maps SPIDER mask values onto the study's classes; by default it is on for
    ``.mha`` masks and off for NIfTI masks (MRSpineSeg and the phantom already use 0..19).
    """
    image, affine = read_array(ref.image_path)
    if not np.issubdtype(image.dtype, np.number) or image.dtype.kind == "c":
        raise DataError(ref.image_path, f"image has dtype {image.dtype}; expected real numbers")
    image = image.astype(np.float32, copy=False)
    if not np.all(np.isfinite(image)):
        raise DataError(ref.image_path, "image holds NaN or infinite values")
    mask: np.ndarray | None = None
    if ref.mask_path is not None:
        raw, mask_affine = read_array(ref.mask_path)
        if raw.shape != image.shape:
            raise DataError(ref.mask_path, f"mask shape {tuple(raw.shape)} differs from its image "
                                           f"{ref.image_path.name} shape {tuple(image.shape)}")
        if not np.allclose(mask_affine, affine, atol=AFFINE_TOLERANCE):
            raise DataError(ref.mask_path, f"mask affine differs from its image "
                                           f"{ref.image_path.name} (tolerance {AFFINE_TOLERANCE} mm)")
        raw = _as_label_array(raw, ref.mask_path)
        use_spider = ref.mask_path.name.endswith(".mha") if spider_labels is None else spider_labels
        if use_spider:
            raw = map_spider_labels(raw, ref.mask_path)
        mask = _check_labels(raw, ref.mask_path)
    source_axcodes = axcodes(affine)
    image_s, study_aff = to_study(image, affine)
    mask_s = to_study(mask, affine)[0] if mask is not None else None
    return Volume(case_id=ref.case_id, image=image_s, mask=mask_s, spacing=spacing_of(study_aff),
                  affine=study_aff, source=ref.image_path, patient_id=ref.patient_id,
                  subset=ref.subset, source_axcodes=source_axcodes)
