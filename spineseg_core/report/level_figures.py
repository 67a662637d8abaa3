"""The level chapter's figures, drawn from ``spineseg levels``'s tables (returned, never shown);
the level-confusion heatmaps are HTML tables whose cells give their values on hover.

Layouts follow :mod:`spineseg_core.report.figures`: page width, legends outside the data, the
labels' colour key where labels are drawn.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from spineseg_core.labels import LABELS
from spineseg_core.levels.anatomy import BACKGROUND, LEVELS, SACRUM, name
from spineseg_core.report.figures import PAGE_WIDTH_IN, label_key, show_labels
from spineseg_core.report.tables import HTMLTable, heatmap_html

STAGE_COLOURS = {"predicted": "tab:gray", "relabelled": "tab:blue"}
ANSWERS: tuple[int, ...] = (BACKGROUND, SACRUM, *LEVELS)
"""Columns of a level-confusion heatmap: background, sacrum, then the levels bottom-up."""


def stage_dots(summary: pd.DataFrame, metric: str, xlabel: str) -> Figure:
    """Per model (rows, in the table's order) ``metric`` as predicted and relabelled: a dot
    with its 95 % interval each (percent)."""
    sub = summary[(summary["metric"] == metric) & summary["stage"].isin(STAGE_COLOURS)]
    names = list(dict.fromkeys(sub["display_name"]))
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH_IN * 0.7, 0.42 * len(names) + 1.4))
    y = np.arange(len(names))[::-1]
    for k, (stage, colour) in enumerate(STAGE_COLOURS.items()):
        one = sub[sub["stage"] == stage].set_index("display_name").reindex(names)
        p, lo, hi = (100 * one[c].to_numpy(float) for c in ("point", "ci_low", "ci_high"))
        ax.errorbar(p, y + (0.15 if k == 0 else -0.15), xerr=[p - lo, hi - p], fmt="o",
                    color=colour, capsize=3, ms=5, label=stage)
    ax.set_yticks(y, names)
    ax.set(xlabel=xlabel, xlim=(-2, 102))
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def confusion_counts(confusion: pd.DataFrame, model: str, stage: str) -> pd.DataFrame:
    """One heatmap's counts: rows the reference levels top-down (T9 first, L5/S last), columns
    :data:`ANSWERS`, each cell the instances (over seeds and subjects) of the row level of
    ``model`` at ``stage`` given that answer (``confusion``: ``confusion.csv``)."""
    one = confusion[(confusion["model"] == model) & (confusion["stage"] == stage)]
    return (one.pivot_table(index="class_value", columns="answer", values="n", aggfunc="sum")
            .reindex(index=list(LEVELS)[::-1], columns=list(ANSWERS)).fillna(0))


def confusion_grid(confusion: pd.DataFrame, model: str, stage: str) -> pd.DataFrame:
    """One heatmap's numbers: :func:`confusion_counts` as the share (percent) of each row
    level's instances given each answer; a level no subject has is a row of NaN."""
    grid = confusion_counts(confusion, model, stage)
    return 100 * grid.div(grid.sum(axis=1).replace(0, np.nan), axis=0)


def answer_name(value: int) -> str:
    """An answer's header: "bg" for background, else the label's short name."""
    return "bg" if value == BACKGROUND else name(value)


ANSWER_TITLES: dict[str, str] = {answer_name(a): ("background: the level missed" if a == BACKGROUND
                                                  else LABELS[a].long_name) for a in ANSWERS}
"""The full name of each answer, the hover text of its abbreviated column header."""


def confusion_tooltips(counts: pd.DataFrame, label: str) -> pd.DataFrame:
    """Each cell's hover text of a level-confusion heatmap (``counts``:
    :func:`confusion_counts`; ``label``: the model and stage): "U-Net, predicted: L3 as L4 in
    12.5 % (3 of 24)", the share of the reference level's instances and their counts."""
    totals = counts.sum(axis=1)

    def one(level: int, answer: int) -> str:
        total = int(totals[level])
        if not total:
            return f"{label}: no subject has {name(level)} in its reference"
        n = int(counts.at[level, answer])
        said = "missed" if answer == BACKGROUND else f"as {name(answer)}"
        return f"{label}: {name(level)} {said} in {100 * n / total:.1f} % ({n} of {total})"

    return pd.DataFrame([[one(r, a) for a in counts.columns] for r in counts.index],
                        index=counts.index, columns=counts.columns)


def confusion_heatmaps(confusion: pd.DataFrame, models: Sequence[str],
                       stages: Sequence[str] = ("predicted", "relabelled")) -> HTMLTable:
    """Level-confusion heatmaps as HTML tables, one per model and stage (models in turn, each
    with its stages side by side where the page is wide enough): rows the reference levels
    (the lowest at the bottom, as in a sagittal image), columns the answer (background,
    sacrum, the levels bottom-up), each cell coloured by the share (percent) of the reference
    level's instances given that answer and showing it when at least 1 %; hovering a cell gives
    the share and the counts. A one-level shift of the same kind sits two cells off the
    diagonal (levels alternate disc and vertebra)."""
    panels = []
    for model in models:
        one = confusion[confusion["model"] == model]
        shown_name = one["display_name"].iloc[0] if len(one) else model
        for stage in stages:
            counts = confusion_counts(confusion, model, stage)
            share = confusion_grid(confusion, model, stage)
            label = f"{shown_name}, {stage}"
            tips = confusion_tooltips(counts, label)
            rename = {"index": {r: name(r) for r in share.index},
                      "columns": {a: answer_name(a) for a in share.columns}}
            panels.append(heatmap_html(
                share.rename(**rename), tips.rename(**rename),
                write=lambda v: f"{v:.0f}" if v >= 1 else "", missing_text="",
                column_titles=ANSWER_TITLES, row_header="Reference", title=label))
    return HTMLTable(f'<div class="spineseg-heat-grid">{"".join(map(str, panels))}</div>')


def example_figure(example: dict[str, np.ndarray]) -> Figure:
    """The example subject's middle slice: image, reference, the prediction and its
    relabelling, with the labels' colour key."""
    panels = (("image", None), ("reference", example["mask"]),
              (f"{example['display_name']}, as predicted", example["pred"]),
              ("relabelled from the sacrum", example["relabelled"]))
    fig, axes = plt.subplots(1, 4, figsize=(PAGE_WIDTH_IN, PAGE_WIDTH_IN / 4 + 1.2))
    image = example["image"] if np.size(example["image"]) else np.zeros_like(example["mask"])
    for ax, (title, labels) in zip(axes, panels):
        show_labels(ax, image, labels, title)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.9, bottom=0.2, wspace=0.04)
    label_key(fig)
    return fig
