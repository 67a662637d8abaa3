"""The results bundle as one deterministic zip, offered for download by the book.

A reader of the published book should be able to take the numbers home: the bundle files of
``results/<profile>/`` and the run records under ``results/<profile>/runs/``. The zip is made at
book build time, so it must not differ between two builds of the same bundle: entries are
sorted, every timestamp is :data:`FIXED_DATE_TIME` and every mode is :data:`FILE_MODE`, so the
archive's bytes depend only on the files' paths and contents (and zlib's compressor).

The stdlib's :mod:`zipfile` is used with fixed :class:`zipfile.ZipInfo` headers; the small
``repro-zipfile`` package does the same and was not worth a dependency.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from spineseg_core import io
from spineseg_core.errors import DataError

FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
"""The timestamp of every entry (the earliest a zip header can hold)."""

FILE_MODE = 0o100644
"""Unix mode of every entry: a regular file, readable by all."""

COMPRESS_LEVEL = 9
"""Deflate level: fixed, since the level changes the bytes."""

MARKER = "bundle.json"
"""The file that makes a folder a results bundle (written by ``spineseg aggregate``)."""


def _skipped(rel: Path) -> bool:
    """Hidden files or folders (``.ipynb_checkpoints``...) and atomic-write leftovers."""
    return any(part.startswith(".") for part in rel.parts) or rel.suffix == ".tmp"


def bundle_members(results_dir: str | Path) -> list[Path]:
    """Every file of a results bundle folder, relative to it, in sorted (POSIX path) order.

    Raises :class:`DataError` when the folder is not a bundle (no :data:`MARKER`)."""
    results_dir = Path(results_dir)
    if not (results_dir / MARKER).is_file():
        raise DataError(results_dir, f"not a results bundle: no {MARKER} (run `spineseg "
                        "aggregate` first)")
    files = (p.relative_to(results_dir) for p in results_dir.rglob("*") if p.is_file())
    return sorted((rel for rel in files if not _skipped(rel)), key=Path.as_posix)


def write_bundle_zip(results_dir: str | Path, target: str | Path,
                     prefix: str | None = None) -> list[str]:
    """Write the bundle folder ``results_dir`` to the zip ``target``, atomically.

    Entries are named ``<prefix>/<path in the folder>``; the default prefix is
    ``results/<folder name>``, so that unzipping at a clone's root puts the files where the
    book and ``spineseg aggregate`` look for them. Returns the entry names, in archive order.
    """
    results_dir = Path(results_dir)
    prefix = (prefix if prefix is not None else f"results/{results_dir.name}").strip("/")
    members = bundle_members(results_dir)
    names = [f"{prefix}/{rel.as_posix()}" if prefix else rel.as_posix() for rel in members]

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w") as zf:
            for rel, name in zip(members, names):
                info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
                info.create_system = 3  # Unix, whatever the building machine: same bytes
                info.external_attr = FILE_MODE << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, (results_dir / rel).read_bytes(),
                            compresslevel=COMPRESS_LEVEL)

    io.write_with(target, write)
    return names
