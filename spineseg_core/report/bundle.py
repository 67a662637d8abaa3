"""A results bundle (``results/<profile>/``) read for the book: each file or ``None``.

The chapters and :mod:`spineseg_core.report.pages` read only through this class, so a bundle
that lacks a file (a benchmark never run, no loss comparison yet) gives ``None`` and the page
says what is missing instead of failing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MISSING = "n/a"
"""What a glued number shows when the bundle cannot give it."""


def missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def pct(x: Any, digits: int = 1) -> str:
    """A fraction as percent text (no sign), :data:`MISSING` when missing."""
    return MISSING if missing(x) else f"{100 * float(x):.{digits}f}"


def and_join(items: Sequence[str]) -> str:
    """``"A"``, ``"A and B"``, ``"A, B and C"``: a list in a sentence."""
    items = list(items)
    if not items:
        return ""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def num(x: Any, digits: int = 2) -> str:
    return MISSING if missing(x) else f"{float(x):.{digits}f}"


class Bundle:
    """The files of one results folder; ``folder=None`` is a bundle with no files."""

    def __init__(self, folder: str | Path | None, root: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.root = Path(root) if root is not None else (
            self.folder.parent if self.folder is not None else None)

    def path(self, name: str) -> Path | None:
        if self.folder is None:
            return None
        p = self.folder / name
        return p if p.is_file() else None

    @cache  # noqa: B019 - one bundle per page build; the files do not change meanwhile
    def csv(self, name: str) -> pd.DataFrame | None:
        p = self.path(name)
        return pd.read_csv(p) if p else None

    @cache  # noqa: B019
    def json(self, name: str) -> dict[str, Any] | None:
        p = self.path(name)
        return json.loads(p.read_text()) if p else None

    @cache  # noqa: B019
    def npz(self, name: str) -> dict[str, np.ndarray] | None:
        p = self.path(name)
        if p is None:
            return None
        with np.load(p) as z:
            return {k: z[k] for k in z.files}

    def has_bundle(self) -> bool:
        return self.path("bundle.json") is not None

    def profile(self, default: str = "<profile>") -> str:
        """The profile whose runs the bundle holds (``bundle.json``'s, else the folder's name,
        ``results/<profile>/``), or ``default`` for a bundle with no folder: the groups a
        chapter names (``<profile>-context``...) are the profile's."""
        if self.folder is None:
            return default
        return str((self.json("bundle.json") or {}).get("profile") or self.folder.name)
