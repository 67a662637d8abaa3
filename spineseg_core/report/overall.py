"""Table 1 beside the paper's: our mean ± sd over seeds with its interval, the paper's value.

The bundle's ``models.csv`` holds fractions (``<m>_mean``, ``<m>_std``, ``<m>_ci_low``,
``<m>_ci_high``, ``n_seeds``); the paper's Table 1 holds percent. :func:`table1` joins them by
model and :func:`table1_columns` describes how the book shows one group of metrics.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from spineseg_core.report.tables import DASH, Column, Kind, is_missing
from spineseg_core.study.paper import table1_overall

METRICS: dict[str, tuple[str, str]] = {
    "dice": ("Dice", "dice"),
    "miou": ("mIoU", "miou"),
    "fnr": ("FN rate", "fn_rate"),
    "fpr": ("FP rate", "fp_rate"),
    "recall": ("Recall", "recall"),
}
"""Our metric → (its name in the book, the paper's Table 1 column)."""


def mean_sd_text(mean: object, sd: object, n: object, digits: int = 2) -> str:
    """A fraction as percent ``"76.88 ± 0.52"`` over ``n`` >= 2 seeds; ``"76.88 (n = 1)"`` for
    one seed, whose spread is not measured (never ``± 0.00``); a dash when missing."""
    if is_missing(mean):
        return DASH
    text = f"{100 * float(mean):.{digits}f}"
    seeds = 1 if is_missing(n) else int(n)  # type: ignore[arg-type]
    if seeds < 2 or is_missing(sd):
        return f"{text} (n = {seeds})"
    return f"{text} ± {100 * float(sd):.{digits}f}"


def interval_text(low: object, high: object, digits: int = 2) -> str:
    """A 95 % interval of fractions as percent ``"56.90–64.80"``; a dash when missing."""
    if is_missing(low) or is_missing(high):
        return DASH
    return f"{100 * float(low):.{digits}f}–{100 * float(high):.{digits}f}"


def table1(models: pd.DataFrame) -> pd.DataFrame:
    """Our models (``models.csv``) with the paper's Table 1 columns and ``paper_rank`` (the
    model's place by Dice among the paper's twelve), sorted by our mean Dice, best first;
    models the paper has and we have not run are left out (a chapter says how many)."""
    paper = table1_overall().rename(columns={"model": "display_name"})
    paper["paper_rank"] = paper["dice"].rank(ascending=False, method="min")
    both = models.merge(paper, on="display_name", how="left", suffixes=("", "_paper"))
    return both.sort_values("dice_mean", ascending=False, ignore_index=True)


def with_interval(mean: str, low: object, high: object, digits: int = 1) -> str:
    """A cell with our mean (± sd) and, on a lighter second line, its 95 % interval (HTML:
    the table stays narrow enough for the page)."""
    ci = interval_text(low, high, digits)
    if ci == DASH:
        return mean
    return f'<span class="spineseg-num">{mean}</span><br><span class="spineseg-ci">{ci}</span>'


def table1_columns(metrics: Sequence[str], digits: int = 1) -> list[Column]:
    """Model, the paper's rank by Dice and our seeds (models may have run with different
    numbers of seeds while a study is under way), then per metric: the paper's value and ours
    (mean ± sd over seeds, its 95 % interval over seeds and subjects under it), percent with
    one decimal."""
    cols = [Column("display_name", "Model"),
            Column("paper_rank", "Paper's rank", Kind.INTEGER),
            Column("n_seeds", "Seeds (ours)", Kind.INTEGER)]
    for m in metrics:
        name, paper_col = METRICS[m]
        d = 2 if m == "fpr" else digits
        cols += [
            Column(paper_col, f"{name} paper (%)", Kind.NUMBER, d),
            Column(f"{m}_mean", f"{name} ours (%)",
                   write=lambda r, m=m, d=d: with_interval(
                       mean_sd_text(r[f"{m}_mean"], r[f"{m}_std"], r.get("n_seeds"), d),
                       r[f"{m}_ci_low"], r[f"{m}_ci_high"], d)),
        ]
    return cols
