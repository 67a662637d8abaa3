"""The procedural spine phantom: the study's embedded default dataset.

Nothing real can ship with the project, so the study runs end to end on synthetic sagittal T2
spine volumes written in exactly the MRSpineSeg layout and label values (one loader serves
both). Each case is a pure function of ``(seed, case_id, size, params)``: the geometry comes
from :mod:`.geometry` (its own random stream, so label presence can be sampled without
rasterising), the pixels from :mod:`.render`.

Files: ``train/MR/Case<N>.nii.gz`` (int16), ``train/Mask/mask_case<N>.nii.gz`` (uint8),
``test1/MR/Case<N>.nii.gz`` (unlabelled) and a ``phantom.json`` marker at the root, written
last, which the layout detector uses to recognise a phantom folder. A phantom with hard cases
(a hard-case rate of :class:`PhantomParams` above 0) also gets ``hard_cases.csv``, one row per
case (:mod:`.hard`).
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from spineseg_core import __version__
from spineseg_core.data.orientation import MRSPINESEG_AXCODES, from_study, study_affine
from spineseg_core.data.phantom.geometry import SpineGeometry, present_labels, sample_geometry
from spineseg_core.data.phantom.hard import MANIFEST, write_manifest
from spineseg_core.data.phantom.params import DEFAULT_PRESENCE, PhantomParams
from spineseg_core.data.phantom.render import TissueCode, finish_image, jitter_image, render_slices
from spineseg_core.errors import ConfigError, DataError
from spineseg_core.io import write_json, write_with

__all__ = [
    "DEFAULT_PRESENCE", "GENERATOR", "MARKER", "PHANTOM_VERSION", "PhantomCase", "PhantomParams",
    "TissueCode",
    "ensure_phantom", "generate_case", "phantom_config", "sample_presence", "write_phantom",
]

GENERATOR = "spineseg-phantom"
"""Value of ``generator`` in the marker file."""
MARKER = "phantom.json"
"""Name of the marker file at a phantom's root."""
PHANTOM_VERSION = 3
"""Version of the generator's output, recorded in the marker: bump it whenever the same
``(seed, case_id, size, params)`` gives different pixels, so cached phantoms regenerate.
2: calibrated against a real T2 scan (partial volume across the slice, marrow texture and a
basivertebral vein, posterior elements with a cortex, annotation jitter, lateral curvature).
3: darker muscle and abdomen, so the marrow stands out of them about as in the real scan."""
_PARTIAL = ".phantom.partial.json"
MIN_SIZE = 32


@dataclass(frozen=True)
class PhantomCase:
    """One generated case in the study's ``(S, H, W)`` orientation."""

    case_id: int
    image: np.ndarray                      # int16 (S, H, W)
    mask: np.ndarray                       # uint8 (S, H, W), values 0..19
    spacing: tuple[float, float, float]    # (slice_mm, row_mm, col_mm)
    geometry: SpineGeometry
    tissue: np.ndarray                     # uint8 (S, H, W) TissueCode (CSF, posterior elements)

    @property
    def affine(self) -> np.ndarray:
        """Study-orientation affine carrying the spacing."""
        return study_affine(self.spacing)


def _check(size: int, case_id: int | None = None) -> None:
    if int(size) < MIN_SIZE:
        raise ConfigError(f"phantom size must be at least {MIN_SIZE} pixels, got {size}")
    if case_id is not None and int(case_id) < 0:
        raise ConfigError(f"phantom case_id must be >= 0, got {case_id}")


def generate_case(case_id: int, seed: int, size: int = 256,
                  params: PhantomParams | None = None) -> PhantomCase:
    """Generate case ``case_id`` of the phantom with ``seed`` on a ``size`` x ``size`` grid.

    Reproducible from ``(seed, case_id)`` alone, whatever else was generated before.
    """
    _check(size, case_id)
    params = params or PhantomParams()
    geom = sample_geometry(case_id, seed, params)
    rng = np.random.default_rng([int(seed), int(case_id), 1])
    rendered = render_slices(geom, int(size), params, rng)
    raw = jitter_image(rendered.image, geom, params, rng)
    image = finish_image(raw, geom, params, rng)
    px = params.fov_mm / size
    return PhantomCase(int(case_id), image, rendered.mask, (params.slice_mm, px, px), geom,
                       rendered.tissue)


def sample_presence(case_id: int, seed: int,
                    params: PhantomParams | None = None) -> frozenset[int]:
    """Labels present in case ``case_id`` from its geometry alone (no rasterisation)."""
    return present_labels(sample_geometry(case_id, seed, params or PhantomParams()))


# --- files ---------------------------------------------------------------------------------
def image_path(root: Path, split: str, case_id: int) -> Path:
    """``<root>/<split>/MR/Case<N>.nii.gz``."""
    return Path(root) / split / "MR" / f"Case{case_id}.nii.gz"


def mask_path(root: Path, split: str, case_id: int) -> Path:
    """``<root>/<split>/Mask/mask_case<N>.nii.gz``."""
    return Path(root) / split / "Mask" / f"mask_case{case_id}.nii.gz"


def _save_nifti(path: Path, study_array: np.ndarray, spacing: tuple[float, float, float],
                dtype: type) -> None:
    """Write a study-orientation array in MRSpineSeg axis order, gzip with mtime 0.

    Going through ``gzip.compress`` rather than a named gzip file keeps the file name and the
    time out of the gzip header, so equal arrays give byte-identical files.
    """
    arr, aff = from_study(study_array.astype(dtype), study_affine(spacing), MRSPINESEG_AXCODES)
    img = nib.Nifti1Image(arr, aff)
    img.header.set_data_dtype(dtype)
    img.header.set_xyzt_units("mm")
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=1)
    data = gzip.compress(img.to_bytes(), compresslevel=6, mtime=0)
    write_with(path, lambda tmp: tmp.write_bytes(data))


def _loads(path: Path) -> bool:
    try:
        np.asanyarray(nib.load(path).dataobj)
    except Exception:  # noqa: BLE001 - any unreadable file is regenerated
        return False
    return True


def phantom_config(cases: int, seed: int, size: int, params: PhantomParams | None,
                   test_cases: int) -> dict[str, Any]:
    """The content of ``phantom.json`` for these arguments."""
    return {"generator": GENERATOR, "version": __version__, "phantom_version": PHANTOM_VERSION,
            "seed": int(seed),
            "cases": int(cases), "test_cases": int(test_cases), "size": int(size),
            "params": (params or PhantomParams()).to_dict()}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


_CASE_FILE = re.compile(r"^(?:mask_case|Case)(\d+)\.nii\.gz$")


def _remove_stale(root: Path, keep: dict[str, set[int]]) -> None:
    """Remove phantom case files of another configuration (only names the phantom writes)."""
    for split in ("train", "test1"):
        for sub in ("MR", "Mask"):
            folder = root / split / sub
            if not folder.is_dir():
                continue
            for f in folder.iterdir():
                m = _CASE_FILE.match(f.name)
                if m and int(m.group(1)) not in keep.get(split, set()):
                    f.unlink()


def write_phantom(out_dir: str | Path, cases: int, seed: int, size: int = 256,
                  params: PhantomParams | None = None, test_cases: int | None = None,
                  progress: Callable[[str, PhantomCase | None, Path], None] | None = None,
                  ) -> Path:
    """Write a phantom dataset in the MRSpineSeg layout under ``out_dir`` and return it.

    Training cases get ids ``1..cases``, the unlabelled ``test1`` cases the ids after them.
    Resumable: a case whose files already exist and load is skipped, provided they were made
    with the same configuration (recorded in a partial marker while writing); files of another
    configuration are replaced. ``progress(split, case_or_None_if_skipped, image_path)`` is
    called after each case. With a hard-case rate above 0 the per-case manifest
    ``hard_cases.csv`` is written before the marker; otherwise a left-over one is removed.
    """
    if int(cases) < 1:
        raise ConfigError(f"phantom cases must be at least 1, got {cases}")
    _check(size)
    test_cases = max(2, int(cases) // 10) if test_cases is None else int(test_cases)
    if test_cases < 0:
        raise ConfigError(f"phantom test_cases must be >= 0, got {test_cases}")
    params = params or PhantomParams()
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise DataError(root, "expected a folder for the phantom, found a file")
    config = phantom_config(cases, seed, size, params, test_cases)
    previous = _read_json(root / MARKER) or _read_json(root / _PARTIAL)
    reuse = previous == config
    train_ids = list(range(1, int(cases) + 1))
    test_ids = list(range(int(cases) + 1, int(cases) + 1 + test_cases))
    if not reuse:
        (root / MARKER).unlink(missing_ok=True)
        _remove_stale(root, {"train": set(), "test1": set()})
    write_json(root / _PARTIAL, config)

    for split, ids, labelled in (("train", train_ids, True), ("test1", test_ids, False)):
        for cid in ids:
            img_p = image_path(root, split, cid)
            msk_p = mask_path(root, split, cid)
            if reuse and _loads(img_p) and (not labelled or _loads(msk_p)):
                if progress:
                    progress(split, None, img_p)
                continue
            case = generate_case(cid, seed, size, params)
            if labelled:
                _save_nifti(msk_p, case.mask, case.spacing, np.uint8)
            _save_nifti(img_p, case.image, case.spacing, np.int16)
            if progress:
                progress(split, case, img_p)
    if params.has_hard_cases:
        write_manifest(root, seed, params, {"train": train_ids, "test1": test_ids})
    else:
        (root / MANIFEST).unlink(missing_ok=True)
    write_json(root / MARKER, config)
    (root / _PARTIAL).unlink(missing_ok=True)
    return root


def ensure_phantom(root: str | Path, cases: int, seed: int, size: int,
                   params: PhantomParams | None = None, test_cases: int | None = None) -> Path:
    """Return ``root`` holding this phantom, generating it only if its marker does not match."""
    root = Path(root)
    tc = max(2, int(cases) // 10) if test_cases is None else int(test_cases)
    if _read_json(root / MARKER) == phantom_config(cases, seed, size, params, tc):
        return root
    return write_phantom(root, cases, seed, size, params, tc)
