"""Shared helpers of the book's chapters: where the results are, reading them, glue, plots.

Chapters never train: they read the aggregated files of one profile under ``results/``. The
profile is ``$SPINESEG_BOOK_PROFILE`` (default ``cpu``); when that folder has no bundle, the
first profile that has one is used. ``$SPINESEG_RESULTS_DIR`` moves the whole results folder
(the book's test points it at a fixture bundle).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue as _glue

from spineseg_core.report.bundle import MISSING, Bundle, missing, num, pct  # noqa: F401
from spineseg_core.report.tables import columns_for, table_html  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
PROFILE_ENV = "SPINESEG_BOOK_PROFILE"
RESULTS_ENV = "SPINESEG_RESULTS_DIR"
PREFERRED = ("cpu", "paper", "smoke")


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


def glue(name: str, value: Any) -> None:
    """Glue ``value`` for a ``{glue:text}`` role without showing it in place."""
    _glue(name, value, display=False)


def note(text: str, kind: str = "note") -> None:
    """Show an admonition (e.g. a file the chapter needs is missing)."""
    display(Markdown(f":::{{{kind}}}\n{text}\n:::"))


def no_results(what: str) -> None:
    where = RESULTS or results_root()
    note(f"`{what}` is not in `{where}` yet, so this part is empty. Run `make main` (or "
         "`spineseg study --profile cpu`) and rebuild the book.", "warning")




def glue_figure(name: str, fig: Any | None, missing_file: str = "") -> None:
    """Glue ``fig`` for a ``{glue:figure}`` (closed afterwards, so it is not shown twice); when
    the results are missing, glue a placeholder figure that says which file is missing."""
    if fig is None:
        fig, ax = plt.subplots(figsize=(6, 0.8))
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"missing from this results bundle: {missing_file or 'no results'}",
                ha="center", va="center")
    _glue(name, fig, display=False)
    plt.close(fig)


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


def show_setup(study: str | None = None) -> None:
    """The bundle's setup (:func:`spineseg_core.report.facts.setup_markdown`): every results
    chapter opens with it; ``study`` (``context``) gives a separate study's own runs."""
    from spineseg_core.errors import DataError
    from spineseg_core.report.facts import read_setup, setup_markdown

    if RESULTS is None:
        no_results("bundle.json")
        return
    try:  # read_setup names the file it lacks: bundle.json, dataset.json or <study>.csv
        setup = read_setup(RESULTS, study)
    except DataError as err:
        no_results(err.path.name)
        return
    display(Markdown(setup_markdown(setup)))


def show_optional_sections(chapter: str) -> None:
    """The sections of ``chapter`` whose measurement exists (efficiency: the GPU check);
    nothing at all for those that do not."""
    from spineseg_core.report.pages.efficiency import optional_sections

    if chapter != "efficiency":
        raise KeyError(f"no optional sections for chapter {chapter!r}")
    for text, table in optional_sections(BUNDLE, results_root() / "gpu"):
        if text:
            display(Markdown(text))
        display(table)


BUNDLE = Bundle(RESULTS, results_root())
"""The chosen profile's bundle, as the page functions read it."""


def glue_page(name: str) -> None:
    """Glue every value of chapter ``name`` (:mod:`spineseg_core.report.pages`): text for
    ``{glue:text}``, figures and tables for ``{glue:figure}``."""
    from matplotlib.figure import Figure

    from spineseg_core.report.pages import as_glue_value, build_page

    for key, value in build_page(name, BUNDLE).items():
        value = as_glue_value(value)
        if isinstance(value, Figure):
            glue_figure(key, value)
        else:
            _glue(key, value, display=False)


def data_note() -> None:
    """Say whether the chosen bundle's results come from the phantom or from real data."""
    bundle = read_json("bundle.json") or {}
    if bundle.get("data_kind") == "phantom":
        note("These results come from the project's **procedural spine phantom**, not from the "
             "paper's MRSpineSeg data, which is licensed for research only and cannot ship with "
             "the project. They are a miniature of the paper's protocol (smaller images, fewer "
             "cases and epochs, the architectures unchanged). Where they differ from the paper, "
             "both are shown. To use the real data, pass its folder as `-p data_dir PATH`.",
             "important")
    elif bundle.get("data_kind") == "real":
        note("These results come from **real data** given to the study (see the dataset chapter).")
    else:
        no_results("bundle.json")
