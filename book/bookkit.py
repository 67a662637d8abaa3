"""Shared helpers of the book's chapters: where the results are, reading them, glue, plots.

Chapters never train: they read the aggregated files of one profile under ``results/``. The
profile is ``$SPINESEG_BOOK_PROFILE`` (default ``cpu``); when that folder has no bundle, the
first profile that has one is used. ``$SPINESEG_RESULTS_DIR`` moves the whole results folder
(the book's test points it at a fixture bundle).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from matplotlib.colors import ListedColormap
from myst_nb import glue as _glue

from spineseg_core.fingerprint import describe, short
from spineseg_core.labels import LABELS

REPO = Path(__file__).resolve().parent.parent
PROFILE_ENV = "SPINESEG_BOOK_PROFILE"
RESULTS_ENV = "SPINESEG_RESULTS_DIR"
PREFERRED = ("cpu", "paper", "smoke")
MISSING = "n/a"


def results_root() -> Path:
    return Path(os.environ.get(RESULTS_ENV) or REPO / "results")


def choose_profile() -> str | None:
    """The configured profile if it has a bundle, else the first one that has."""
    root = results_root()
    wanted = os.environ.get(PROFILE_ENV, "cpu")
    if (root / wanted / "bundle.json").is_file():
        return wanted
    found = sorted(p.parent.name for p in root.glob("*/bundle.json"))
    for name in PREFERRED:
        if name in found:
            return name
    return found[0] if found else None


PROFILE = choose_profile()
RESULTS = results_root() / PROFILE if PROFILE else None


def path(name: str) -> Path | None:
    """Path of a results file of the chosen profile, or None when it does not exist."""
    if RESULTS is None:
        return None
    p = RESULTS / name
    return p if p.is_file() else None


def read_csv(name: str) -> pd.DataFrame | None:
    p = path(name)
    return pd.read_csv(p) if p else None


def read_json(name: str) -> dict[str, Any] | None:
    p = path(name)
    return json.loads(p.read_text()) if p else None


def read_npz(name: str) -> dict[str, np.ndarray] | None:
    p = path(name)
    if p is None:
        return None
    with np.load(p) as z:
        return {k: z[k] for k in z.files}


def glue(name: str, value: Any) -> None:
    """Glue ``value`` for a ``{glue:text}`` role without showing it in place."""
    _glue(name, value, display=False)


def missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def pct(x: Any, digits: int = 1) -> str:
    """A fraction as percent text (no sign), ``n/a`` when missing."""
    return MISSING if missing(x) else f"{100 * float(x):.{digits}f}"


def num(x: Any, digits: int = 2) -> str:
    return MISSING if missing(x) else f"{float(x):.{digits}f}"


def mean_sd(mean: Any, sd: Any, n: Any, digits: int = 2, scale: float = 100.0) -> str:
    """``"76.88 ± 0.52"`` over ``n`` >= 2 seeds; ``"76.88 (n = 1)"`` for one, whose spread is
    not measured (never ``± 0.00``). Fractions become percent (``scale``)."""
    if missing(mean):
        return MISSING
    text = f"{scale * float(mean):.{digits}f}"
    if missing(n) or int(n) < 2 or missing(sd):
        return f"{text} (n = {1 if missing(n) else int(n)})"
    return f"{text} ± {scale * float(sd):.{digits}f}"


def note(text: str, kind: str = "note") -> None:
    """Show an admonition (e.g. a file the chapter needs is missing)."""
    display(Markdown(f":::{{{kind}}}\n{text}\n:::"))


def no_results(what: str) -> None:
    where = RESULTS or results_root()
    note(f"`{what}` is not in `{where}` yet, so this part is empty. Run `make main` (or "
         "`spineseg study --profile cpu`) and rebuild the book.", "warning")


LABEL_CMAP = ListedColormap(plt.get_cmap("tab20")(np.arange(20)))
CLASS_NAMES = [lab.name for lab in LABELS]


def show_labels(ax, image: np.ndarray, labels: np.ndarray | None = None, title: str = "") -> None:
    """An MR slice in grey with a label map over it (background transparent)."""
    ax.imshow(image.astype(np.float32), cmap="gray")
    if labels is not None:
        ax.imshow(np.ma.masked_equal(labels, 0), cmap=LABEL_CMAP, vmin=-0.5, vmax=19.5,
                  alpha=0.55, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()


def percent_table(df: pd.DataFrame, cols: list[str], digits: int = 1) -> pd.DataFrame:
    out = df.copy()
    for c in cols:
        out[c] = (100 * out[c]).round(digits)
    return out


def protocol_note() -> None:
    """A warning on every results chapter when the bundle's runs were not scored on a held-out
    test set (bundles made before the study's three-set protocol scored the validation set,
    which also chose their checkpoints, and trained with the foreground-only Dice loss)."""
    bundle = read_json("bundle.json") or {}
    scored = bundle.get("evaluated_on") or ["validation"]
    if scored != ["test"]:
        note("These results were made **before the study's protocol** (CONTRIBUTING.md, "
             "\"Protocol\"): they are scores on the validation set that also chose each "
             "checkpoint, with one seed, and their default loss let most models paint the "
             "background with absent levels. They are kept to show that defect, not as "
             "findings; the re-run under the protocol replaces them.", "warning")
