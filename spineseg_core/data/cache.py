"""A per-volume cache of preprocessed cases: decode, resample and normalise once.

Each entry is an uncompressed ``.npz`` named after the case and a key that hashes everything its
content depends on: the source files' paths, sizes and modification times, the target size, the
normalisation and :data:`~spineseg_core.data.preprocess.PREPROCESS_VERSION`. Changing any of
them makes a new entry; an entry made for an older version of the same source files (same
settings) is deleted when its replacement is written, while entries of other sizes stay, so
profiles can share one cache folder. Entries are written atomically; an unreadable entry is
rebuilt.
Images are stored as float16 (values in ``[0, 1]``, resolution ~5e-4) to halve the disk
footprint at 880 px, and returned as float32.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from spineseg_core.data.layout import CaseRef
from spineseg_core.data.preprocess import PREPROCESS_VERSION, PercentileNormalisation, preprocess_volume
from spineseg_core.data.readers import Volume, load_case
from spineseg_core.fingerprint import REPO
from spineseg_core.io import atomic_path

CACHE_SUFFIX = ".npz"


def cache_root() -> Path:
    """Folder for generated data and caches: ``$SPINESEG_CACHE``, else ``<repo>/.cache`` when
    running from a checkout, else ``~/.cache/spineseg``."""
    env = os.environ.get("SPINESEG_CACHE")
    if env:
        return Path(env).expanduser()
    repo = REPO
    if (repo / "pyproject.toml").is_file() and (repo / "spineseg_core").is_dir():
        return repo / ".cache"
    return Path.home() / ".cache" / "spineseg"


def _file_stamp(path: Path | None) -> list:
    if path is None:
        return [None]
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


class VolumeCache:
    """Preprocessed volumes on disk, keyed on their sources and the preprocessing parameters."""

    def __init__(self, cache_dir: str | Path, size: int,
                 normalise: PercentileNormalisation | None = PercentileNormalisation(),
                 *, image_dtype: type = np.float16) -> None:
        self.cache_dir = Path(cache_dir)
        self.size = int(size)
        self.normalise = normalise
        self.image_dtype = np.dtype(image_dtype)

    def settings_key(self) -> str:
        """Hash of the preprocessing settings (size, normalisation, dtype, version)."""
        payload = {
            "size": self.size,
            "normalise": self.normalise.key if self.normalise is not None else None,
            "dtype": self.image_dtype.name,
            "version": PREPROCESS_VERSION,
        }
        return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:8]

    def key(self, ref: CaseRef) -> str:
        """Hash of everything the cached content of ``ref`` depends on."""
        payload = {"image": _file_stamp(ref.image_path), "mask": _file_stamp(ref.mask_path),
                   "settings": self.settings_key()}
        return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def _prefix(self, ref: CaseRef) -> str:
        return f"{ref.subset}_{ref.case_id}-{self.size}px-{self.settings_key()}-"

    def path_for(self, ref: CaseRef) -> Path:
        """The entry of ``ref``: ``<subset>_<case>-<size>px-<settings>-<key>.npz``."""
        return self.cache_dir / f"{self._prefix(ref)}{self.key(ref)}{CACHE_SUFFIX}"

    def get(self, ref: CaseRef) -> Volume:
        """The preprocessed volume of ``ref``: from disk if cached, else built and stored."""
        path = self.path_for(ref)
        if path.is_file():
            volume = self._read(path, ref)
            if volume is not None:
                return volume
        volume = preprocess_volume(load_case(ref), self.size, self.normalise)
        self._write(path, ref, volume)
        # Hand back what a later hit will read (stored precision), so a run that filled the
        # cache sees exactly the images of every later or resumed run.
        stored = volume.image.astype(self.image_dtype).astype(np.float32)
        return dataclasses.replace(volume, image=stored)

    def clear(self) -> int:
        """Delete every cache entry; return how many were removed."""
        if not self.cache_dir.is_dir():
            return 0
        removed = 0
        for p in self.cache_dir.glob(f"*{CACHE_SUFFIX}"):
            p.unlink(missing_ok=True)
            removed += 1
        return removed

    def _write(self, path: Path, ref: CaseRef, volume: Volume) -> None:
        meta = {
            "case_id": volume.case_id, "patient_id": volume.patient_id, "subset": volume.subset,
            "source": str(volume.source), "spacing": list(volume.spacing),
            "source_axcodes": list(volume.source_axcodes),
        }
        arrays = {
            "image": volume.image.astype(self.image_dtype),
            "affine": np.asarray(volume.affine, dtype=np.float64),
            "meta": np.array(json.dumps(meta)),
        }
        if volume.mask is not None:
            arrays["mask"] = volume.mask
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        for stale in self.cache_dir.glob(f"{self._prefix(ref)}*{CACHE_SUFFIX}"):
            if stale != path:
                stale.unlink(missing_ok=True)

    @staticmethod
    def _read(path: Path, ref: CaseRef) -> Volume | None:
        try:
            with np.load(path, allow_pickle=False) as npz:
                meta = json.loads(str(npz["meta"]))
                image = npz["image"].astype(np.float32)
                mask = npz["mask"] if "mask" in npz.files else None
                affine = npz["affine"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError):
            return None
        if (ref.mask_path is None) != (mask is None) or image.ndim != 3:
            return None
        return Volume(case_id=meta["case_id"], image=image, mask=mask,
                      spacing=tuple(meta["spacing"]), affine=affine, source=Path(meta["source"]),
                      patient_id=meta["patient_id"], subset=meta["subset"],
                      source_axcodes=tuple(meta["source_axcodes"]))
