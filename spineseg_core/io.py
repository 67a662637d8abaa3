"""Atomic writes: a result file is either its old content or its complete new content.

Everything the study writes (checkpoints, CSVs, JSON) goes through a temporary file in the
same folder, flushed and then renamed over the target, so an interrupted run never leaves a
truncated file behind.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success rename it onto ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o644)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(target: str | Path, text: str) -> None:
    """Atomically write ``text`` to ``target``."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_json(target: str | Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    write_text(target, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_with(target: str | Path, writer: Callable[[Path], None]) -> None:
    """Atomically write ``target`` with ``writer(tmp_path)`` (e.g. ``df.to_csv``)."""
    with atomic_path(target) as tmp:
        writer(tmp)


GZIP_SUFFIX = ".gz"
"""A results file named ``*.csv.gz`` is a gzip-compressed CSV (pandas reads it by its name)."""


def gzip_bytes(data: bytes) -> bytes:
    """``data`` gzip-compressed the same way every time: no file name, time 0, level 9, so a
    re-made results file has the bytes (and SHA-256) of the committed one."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def write_csv(target: str | Path, df: Any, **to_csv: Any) -> None:
    """Atomically write the DataFrame ``df`` as CSV (``df.to_csv(**to_csv)``), gzip-compressed
    by :func:`gzip_bytes` when ``target`` ends in ``.gz``."""
    if not str(target).endswith(GZIP_SUFFIX):
        write_with(target, lambda tmp: df.to_csv(tmp, **to_csv))
        return
    data = gzip_bytes(df.to_csv(**to_csv).encode())
    write_with(target, lambda tmp: tmp.write_bytes(data))


def finite_or_none(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with each non-finite float (NaN, inf) made ``None``: strict JSON has no NaN,
    and a metric that is undefined (no such structure in any case) must read as missing."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in values.items()}


def read_json(path: str | Path, missing: str = "missing") -> Any:
    """The JSON object in ``path``; a missing file or invalid JSON is one
    :class:`~spineseg_core.errors.DataError` naming the file (``missing`` says what to do)."""
    from spineseg_core.errors import DataError

    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(path, missing) from None
    except json.JSONDecodeError as exc:
        raise DataError(path, f"not valid JSON ({exc})") from None
