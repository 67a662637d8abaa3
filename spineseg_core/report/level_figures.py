"""The level chapter's figures, drawn from ``spineseg levels``'s tables (returned, never shown).

Layouts follow :mod:`spineseg_core.report.figures`: page width, legends outside the data, the
labels' colour key where labels are drawn.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from spineseg_core.levels.anatomy import BACKGROUND, LEVELS, SACRUM, name
from spineseg_core.report.figures import PAGE_WIDTH_IN, label_key, show_labels

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


def confusion_grid(confusion: pd.DataFrame, model: str, stage: str) -> pd.DataFrame:
    """One heatmap's numbers: rows the reference levels top-down (T9 first, L5/S last),
    columns :data:`ANSWERS`, each cell the share (percent) of the row level's instances of
    ``model`` at ``stage`` given that answer (``confusion``: ``confusion.csv``); a level no
    subject has is a row of NaN."""
    one = confusion[(confusion["model"] == model) & (confusion["stage"] == stage)]
    grid = (one.pivot_table(index="class_value", columns="answer", values="n", aggfunc="sum")
            .reindex(index=list(LEVELS)[::-1], columns=list(ANSWERS)).fillna(0))
    return 100 * grid.div(grid.sum(axis=1).replace(0, np.nan), axis=0)


def confusion_heatmaps(confusion: pd.DataFrame, models: Sequence[str],
                       stages: Sequence[str] = ("predicted", "relabelled")) -> Figure:
    """Level-confusion heatmaps, one row of panels per stage and one column per model: rows
    the reference levels (the lowest at the bottom, as in a sagittal image), columns the answer
    (background, sacrum, the levels bottom-up), each cell the share (percent) of the reference
    level's instances given that answer. A one-level shift of the same kind sits two cells off
    the diagonal (levels alternate disc and vertebra)."""
    import seaborn as sns

    nrows, ncols = len(stages), len(models)
    fig, axes = plt.subplots(nrows, ncols, figsize=(PAGE_WIDTH_IN, 4.6 * nrows + 0.4),
                             squeeze=False)
    rows = list(LEVELS)[::-1]
    for i, stage in enumerate(stages):
        for j, model in enumerate(models):
            one = confusion[(confusion["model"] == model) & (confusion["stage"] == stage)]
            share = confusion_grid(confusion, model, stage)
            ax = axes[i, j]
            sns.heatmap(share, ax=ax, vmin=0, vmax=100, cmap="viridis", cbar=(j == ncols - 1),
                        cbar_kws={"label": "share of the level's instances (%)"},
                        annot=np.where(share >= 1, share.round().fillna(0).astype(int)
                                       .astype(str), ""), fmt="",
                        annot_kws={"fontsize": 5}, linewidths=0.2, linecolor="white")
            ax.set_xticks(np.arange(len(ANSWERS)) + 0.5,
                          ["bg" if a == BACKGROUND else name(a) for a in ANSWERS],
                          rotation=90, fontsize=6)
            ax.set_yticks(np.arange(len(rows)) + 0.5, [name(r) for r in rows], rotation=0,
                          fontsize=6)
            name_ = one["display_name"].iloc[0] if len(one) else model
            ax.set_title(f"{name_}, {stage}", fontsize=9)
            ax.set(xlabel="answer (label given to most voxels)" if i == nrows - 1 else "",
                   ylabel="reference level" if j == 0 else "")
    fig.tight_layout()
    return fig


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
