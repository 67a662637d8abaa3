"""Relabel a label file in place: what ``spineseg predict --relabel`` does to each output.

The file is read with the study's readers, brought to the study's orientation from its affine
(:func:`spineseg_core.data.orientation.to_study`: rows superior→inferior, which the count
needs), relabelled (:func:`spineseg_core.levels.relabel.relabel`), brought back and written
over itself with the same header (NIfTI) or the same origin, spacing and direction (``.mha``),
atomically. A file the relabelling cannot count is left untouched; the status says why.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from spineseg_core import io
from spineseg_core.data.orientation import axcodes, from_study, to_study
from spineseg_core.errors import DataError
from spineseg_core.labels import NUM_CLASSES
from spineseg_core.levels.relabel import Relabelling, relabel


def _as_labels(data: np.ndarray, path: Path) -> np.ndarray:
    if data.dtype.kind == "f" and np.array_equal(data, np.round(data)):
        data = data.astype(np.int64)
    if data.dtype.kind not in "iu" or (data.size and (data.min() < 0
                                                      or data.max() >= NUM_CLASSES)):
        raise DataError(path, f"expected a label volume with values 0..{NUM_CLASSES - 1}")
    return data.astype(np.uint8)


def _write_like(path: Path, labels: np.ndarray) -> None:
    """Write ``labels`` (the file's own array layout) over ``path``, keeping its geometry."""
    suffix = next(s for s in (".nii.gz", ".nii", ".mha") if path.name.endswith(s))
    with io.atomic_path(path) as tmp:
        named = tmp.with_name(tmp.name + suffix)  # the writers choose the format by suffix
        if suffix == ".mha":
            import SimpleITK as sitk

            ref = sitk.ReadImage(str(path))
            img = sitk.GetImageFromArray(np.ascontiguousarray(labels.transpose(2, 1, 0)))
            img.CopyInformation(ref)
            sitk.WriteImage(img, str(named), useCompression=True)
        else:
            import nibabel as nib

            ref = nib.load(str(path))
            out = type(ref)(labels.reshape(ref.shape).astype(np.uint8), ref.affine,
                            ref.header.copy())
            out.header.set_data_dtype(np.uint8)
            out.header.set_slope_inter(1.0, 0.0)
            nib.save(out, str(named))
        os.replace(named, tmp)


def relabel_file(path: str | Path) -> Relabelling:
    """Relabel the label file ``path`` in place (unless its status is not ok); returns the
    :class:`~spineseg_core.levels.relabel.Relabelling` (its volume in the study's layout)."""
    from spineseg_core.data.readers import read_array

    path = Path(path)
    if not any(path.name.endswith(s) for s in (".nii.gz", ".nii", ".mha")):
        raise DataError(path, "expected a .nii.gz, .nii or .mha label file")
    data, affine = read_array(path)
    study, study_aff = to_study(_as_labels(data, path), affine)
    result = relabel(study)
    if result.ok:
        back, _ = from_study(result.volume, study_aff, axcodes(affine))
        _write_like(path, back)
    return result
