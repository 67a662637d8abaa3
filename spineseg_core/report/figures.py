"""The book's figures, drawn from the bundle's files and returned (never shown here).

Each function returns a matplotlib ``Figure``; the chapter glues it and places it with a
caption and alt text (``{glue:figure}``). Layouts are chosen to read at page width: small
multiples rather than one crowded panel, legends outside the data, a colour key for the labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from spineseg_core.labels import LABELS
from spineseg_core.report.tables import HTMLTable


def level_colours() -> np.ndarray:
    """One colour per label value (RGBA rows, indexed by value) in which neighbours along the
    spine differ, so that a one-level shift shows: the sacrum and the vertebrae bottom-up take
    tab10's ten hues in order (dark, from tab20), and each disc the light tint of the hue five
    places on, unlike both vertebrae around it and the discs next to it. Background (drawn
    transparent) is white."""
    from spineseg_core.labels import VERTEBRA_VALUES, disc_below
    from spineseg_core.levels.anatomy import SACRUM

    tab20 = plt.get_cmap("tab20")(np.arange(20))
    colours = np.ones((len(LABELS), 4))
    for k, v in enumerate((SACRUM, *VERTEBRA_VALUES)):
        colours[v] = tab20[2 * (k % 10)]
        if k:  # the disc below vertebra v, between bone k - 1 and bone k
            colours[disc_below(v)] = tab20[2 * ((k - 1 + 5) % 10) + 1]
    return colours


LABEL_COLOURS = level_colours()
"""One colour per label value (:func:`level_colours`), background included but drawn
transparent."""
LABEL_CMAP = ListedColormap(LABEL_COLOURS)
PAGE_WIDTH_IN = 12.0
"""Figure width that renders at the book's page width without shrinking text too much."""


def show_labels(ax, image: np.ndarray, labels: np.ndarray | None = None, title: str = "") -> None:
    """An MR slice in grey with a label map over it (background transparent)."""
    ax.imshow(np.asarray(image, dtype=np.float32), cmap="gray")
    if labels is not None:
        ax.imshow(np.ma.masked_equal(labels, 0), cmap=LABEL_CMAP, vmin=-0.5,
                  vmax=len(LABELS) - 0.5, alpha=0.55, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def label_key(fig: Figure, ncol: int = 10) -> None:
    """A colour key of the 19 structures under the figure's panels."""
    handles = [Patch(facecolor=LABEL_COLOURS[lab.value], label=lab.name)
               for lab in LABELS if lab.value != 0]
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.0))


def figure18_slice(fig18: dict[str, np.ndarray], row: int, ncols: int = 5) -> Figure:
    """One of Figure 18's slices: the image, the reference and every model's prediction (its
    Dice on the slice in the title), in rows of ``ncols`` panels, with the colour key."""
    names = [str(n) for n in fig18["display_names"]]
    panels = 2 + len(names)
    nrows = -(-panels // ncols)
    panel = PAGE_WIDTH_IN / ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(PAGE_WIDTH_IN, panel * nrows * 1.08 + 0.9),
                             squeeze=False)
    flat = axes.ravel()
    image = fig18["image"][row]
    show_labels(flat[0], image, None, "image")
    show_labels(flat[1], image, fig18["mask"][row], "reference")
    for j, name in enumerate(names):
        dice = float(fig18["dice"][j, row])
        text = "–" if not np.isfinite(dice) else f"{100 * dice:.1f} %"
        show_labels(flat[j + 2], image, fig18["pred"][j, row], f"{name}\nDice {text}")
    for ax in flat[panels:]:
        ax.set_axis_off()
    fig.subplots_adjust(left=0.01, right=0.99, top=0.95, bottom=0.9 / fig.get_figheight() + 0.02,
                        wspace=0.05, hspace=0.25)
    label_key(fig)
    return fig


CURVE_NAMES: dict[str, str] = {"dice": "Dice, mean over the 19 structures",
                               "bg_recall": "background recall: background pixels predicted as "
                                            "background"}
"""The legend of :func:`learning_curves`: each validation metric in words."""


def learning_curves(history: pd.DataFrame, metrics: Sequence[str] = ("dice", "bg_recall"),
                    ncols: int = 4) -> Figure:
    """Figure 19 as small multiples: one panel per model, validation ``metrics`` (percent)
    against the epochs that model trained, one thin line per seed and the mean in bold, the
    epoch of the best validation Dice marked."""
    order = list(dict.fromkeys(history["display_name"]))
    nrows = -(-len(order) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(PAGE_WIDTH_IN, 2.3 * nrows + 0.6),
                             sharey=True, squeeze=False)
    colours = dict(zip(metrics, ("tab:blue", "tab:orange", "tab:green", "tab:red")))
    for ax, name in zip(axes.ravel(), order):
        runs = history[history["display_name"] == name]
        for metric in metrics:
            if metric not in runs:
                continue
            for _, one in runs.groupby("seed"):
                ax.plot(one["epoch"], 100 * one[metric], color=colours[metric], lw=0.6, alpha=0.4)
            mean = runs.groupby("epoch")[metric].mean()
            ax.plot(mean.index, 100 * mean.values, color=colours[metric], lw=2)
        mean_dice = runs.groupby("epoch")["dice"].mean()
        best = int(mean_dice.idxmax())
        ax.axvline(best, color="grey", ls=":", lw=1)
        epochs = int(runs["epoch"].max())
        ax.set_title(f"{name} ({epochs} epochs, best {best})", fontsize=9)
        ax.set_xticks(range(1, epochs + 1))
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(order):]:
        ax.set_axis_off()
    for ax in axes[:, 0]:
        ax.set_ylabel("validation (%)")
    for ax in axes[-1, :]:
        ax.set_xlabel("epoch")
    handles = [plt.Line2D([], [], color=colours[m], lw=2, label=CURVE_NAMES.get(m, m))
               for m in metrics]
    fig.legend(handles=handles, loc="lower center", ncol=len(metrics), frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def loss_bars(runs: pd.DataFrame, sane: pd.Series) -> Figure:
    """Test Dice (%) per model (``display_name``) and ``loss``: the mean over seeds, with their
    standard deviation when there are two or more. A bar is hatched when a run of it fails the
    background check (``sane``, on ``runs``' index): its Dice then comes with background
    painted as structures. The legend, in words (:func:`~spineseg_core.study.loss_study.loss_name`),
    sits above the axes, so it covers no bar."""
    from spineseg_core.study.loss_study import loss_name

    models = list(dict.fromkeys(runs["display_name"]))
    losses = list(dict.fromkeys(runs["loss"]))
    width = 0.8 / len(losses)
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH_IN * 0.8, 3.8))
    colors = plt.get_cmap("tab10").colors
    for j, loss in enumerate(losses):
        for i, model in enumerate(models):
            sel = (runs["display_name"] == model) & (runs["loss"] == loss)
            dice = 100 * runs.loc[sel, "dice"]
            if dice.empty:
                continue
            sd = dice.std(ddof=1) if len(dice) > 1 else None
            ax.bar(i - 0.4 + (j + 0.5) * width, dice.mean(), width * 0.95, yerr=sd,
                   capsize=3, color=colors[j % len(colors)], edgecolor="black", linewidth=0.5,
                   hatch="//" if not sane[sel].all() else None)
    handles = [Patch(facecolor=colors[j % len(colors)], label=loss_name(loss))
               for j, loss in enumerate(losses)]
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="//",
                         label="fails the background check"))
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0),
              ncol=len(handles), frameon=False, fontsize=8)
    ax.set_xticks(np.arange(len(models)), models)
    ax.set(ylabel="test Dice (%)", ylim=(0, 100))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def spread_labels(y: Sequence[float], min_gap: float) -> np.ndarray:
    """Label heights near ``y`` at least ``min_gap`` apart, keeping their order (labels of
    nearby points in a scatter plot would otherwise collide)."""
    y = np.asarray(y, dtype=float)
    order = np.argsort(y)
    placed = y[order].copy()
    for i in range(1, len(placed)):
        placed[i] = max(placed[i], placed[i - 1] + min_gap)
    shift = (placed - y[order]).mean()  # centre the block on the points again
    placed -= shift
    for i in range(1, len(placed)):
        placed[i] = max(placed[i], placed[i - 1] + min_gap)
    out = np.empty_like(placed)
    out[order] = placed
    return out


FAMILY_COLOURS = {"U-Net family": "tab:blue", "backbone models": "tab:orange"}


def point_gid(panel: int, k: int) -> str:
    """The SVG id of the ``k``-th model's point in panel ``panel`` of :func:`cost_scatter`."""
    return f"cost-{panel}-{k}"


def cost_scatter(df: pd.DataFrame) -> Figure:
    """Our mean Dice against parameters (M) and GMACs at 880 px, log scales, one point per
    model; labels sit to the right of their points, spread apart vertically so none collide,
    with a thin line back to the point when moved. Each point is its own artist with the id
    :func:`point_gid` (panel, row of ``df``), so the SVG can carry its values
    (:func:`cost_scatter_html`)."""
    fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH_IN, 4.8))
    y = 100 * df["dice_mean"].to_numpy(dtype=float)
    span = (np.nanmax(y) - np.nanmin(y)) if len(y) else 1.0
    label_y = spread_labels(y, max(span, 5.0) * 0.07)
    colours = [FAMILY_COLOURS.get(f, "tab:gray") for f in df.get("family", [""] * len(df))]
    for panel, (ax, col, label) in enumerate(((axes[0], "params_m", "parameters (M)"),
                                              (axes[1], "gmacs_880", "GMACs at 880 px"))):
        x = df[col].to_numpy(dtype=float)
        for k, (xi, yi, colour) in enumerate(zip(x, y, colours)):
            ax.scatter([xi], [yi], c=colour, s=40, zorder=3, gid=point_gid(panel, k))
        for xi, yi, ly, name in zip(x, y, label_y, df["display_name"]):
            ax.annotate(name, (xi, yi), xytext=(xi * 1.25, ly), fontsize=8, va="center",
                        arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "grey"})
        ax.set(xscale="log", xlabel=label, ylabel="our Dice (%)")
        lo, hi = np.nanmin(x), np.nanmax(x)
        ax.set_xlim(lo / 1.5, hi * 6)  # room for the labels on the right
        ax.grid(alpha=0.3)
    handles = [Patch(color=c, label=f) for f, c in FAMILY_COLOURS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=2, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def point_tooltip(row: pd.Series) -> str:
    """A point's hover text in the accuracy-against-cost scatter: "U-Net: 59.0 % Dice,
    365 GMACs at 880 px, 31.0 M parameters" (``row``: ``dice_mean`` a fraction, ``gmacs_880``,
    ``params_m``; costs to three significant digits)."""
    def number(key: str, scale: float = 1.0, digits: int | None = None) -> str:
        v = row.get(key)
        if v is None or pd.isna(v):
            return "not measured"
        v = scale * float(v)
        if digits is None:  # three significant digits, never an exponent: 0.0824, 13.4, 834
            digits = max(0, 2 - int(np.floor(np.log10(abs(v))))) if v else 0
        return f"{v:.{digits}f}"

    return (f"{row['display_name']}: {number('dice_mean', 100, 1)} % Dice, "
            f"{number('gmacs_880')} GMACs at 880 px, {number('params_m')} M parameters")


def svg_with_titles(fig: Figure, titles: dict[str, str], label: str) -> str:
    """``fig`` as an SVG element to place in a page: every element whose id is a key of
    ``titles`` gets that text as its SVG ``<title>``, which a browser shows on hover (offline,
    no script); the SVG scales to the page's width and is announced as one image described by
    ``label``. Text stays text (``svg.fonttype: none``) and ids are stable (a fixed
    ``svg.hashsalt``), so the same data give the same bytes."""
    import html
    import io
    import re

    buffer = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "spineseg"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]  # no XML declaration or doctype inside HTML
    for gid, text in titles.items():
        opening = re.compile(rf'(<g id="{re.escape(gid)}"[^>]*>)')
        title = f"<title>{html.escape(text)}</title>"
        svg, n = opening.subn(lambda m, title=title: m.group(1) + title, svg, count=1)
        if not n:
            raise ValueError(f"no element with the id {gid!r} in the figure's SVG")
    return re.sub(r'<svg ([^>]*?)width="[^"]*" height="[^"]*"',
                  lambda m: f'<svg {m.group(1)}role="img" aria-label="{html.escape(label)}"',
                  svg, count=1)


def cost_scatter_html(df: pd.DataFrame) -> HTMLTable:
    """:func:`cost_scatter` as inline SVG whose every point shows, on hover, the model, its
    Dice, GMACs and parameters (:func:`point_tooltip`)."""
    fig = cost_scatter(df)
    tips = {point_gid(panel, k): point_tooltip(row) for panel in (0, 1)
            for k, (_, row) in enumerate(df.iterrows())}
    try:
        svg = svg_with_titles(fig, tips, "Two scatter plots of our mean test Dice against "
                              "parameters and against GMACs at 880 px, one point per model")
    finally:
        plt.close(fig)
    return HTMLTable(f'<div class="spineseg-svg">{svg}</div>')


def rank_slopes(names: Sequence[str], paper: Sequence[float], ours: Sequence[float]) -> Figure:
    """The paper's ranking of the models (left, by its Table 1 Dice) against ours (right, by
    our mean Dice), one line per model: crossing lines are models whose order the re-run
    changed. Rank 1 (the best) is at the top."""
    names = list(names)
    p_rank = pd.Series(list(paper)).rank(ascending=False, method="min").to_numpy()
    o_rank = pd.Series(list(ours)).rank(ascending=False, method="min").to_numpy()
    n = len(names)
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * n + 1.2))
    for name, a, b in zip(names, p_rank, o_rank):
        moved = abs(a - b) >= n / 3
        colour = "tab:red" if moved else "tab:gray"
        ax.plot([0, 1], [a, b], color=colour, lw=2 if moved else 1.2, marker="o", zorder=3)
        ax.text(-0.04, a, f"{name}  {int(a)}", ha="right", va="center", fontsize=9)
        ax.text(1.04, b, f"{int(b)}  {name}", ha="left", va="center", fontsize=9)
    ax.set(xlim=(-0.6, 1.6), ylim=(n + 0.6, 0.4))
    ax.set_xticks([0, 1], ["the paper's rank", "our rank"])
    ax.tick_params(axis="x", length=0, labelsize=10, labeltop=True, labelbottom=False)
    ax.set_yticks([])
    for side in ("left", "right", "top", "bottom"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


def dice_against_steps(history: pd.DataFrame, family: dict[str, str],
                       names: dict[str, str], half: float | None = None,
                       reached: dict[str, float] | None = None) -> Figure:
    """The paper's Figure 19 re-made for runs under a step budget: validation Dice (%) against
    optimiser steps, one line per model (``history``: ``model``, ``step``, ``dice``; the mean
    over seeds where a model has several), coloured by its ``family``, each line named at its
    end in words (``names``: model -> display name; labels spread apart so none collide).
    ``half`` marks B/2 with a dotted line; ``reached`` (model -> steps) marks with a dot where
    each run first reached 95 % of its best (:func:`~spineseg_core.study.convergence.steps_to_reach`)."""
    fig, ax = plt.subplots(figsize=(9.0, 5.4))
    ends: list[tuple[str, float, float, str]] = []
    for model, run in history.dropna(subset=["step", "dice"]).groupby("model", sort=False):
        mean = run.groupby("step")["dice"].mean().sort_index()
        colour = FAMILY_COLOURS.get(family.get(str(model), ""), "tab:gray")
        ax.plot(mean.index, 100 * mean.to_numpy(), color=colour, lw=1.6, alpha=0.85)
        at = (reached or {}).get(str(model))
        if at is not None and np.isfinite(at) and at in mean.index:
            ax.plot([at], [100 * mean.loc[at]], "o", color=colour, ms=5, zorder=4)
        ends.append((names.get(str(model), str(model)), float(mean.index[-1]),
                     100 * float(mean.iloc[-1]), colour))
    if not ends:
        raise ValueError("dice_against_steps: no validated row with a step")
    last = max(x for _, x, _, _ in ends)
    label_y = spread_labels([y for _, _, y, _ in ends], 3.6)
    for (name, x, y, colour), ly in zip(ends, label_y, strict=True):
        ax.annotate(name, (x, y), xytext=(last * 1.06, ly), fontsize=9, va="center",
                    color=colour, annotation_clip=False,
                    arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "grey"})
    if half is not None:
        ax.axvline(half, color="grey", ls=":", lw=1)
        ax.text(half, 1, " B/2", color="grey", fontsize=8, va="bottom")
    ax.set(xlabel="optimiser steps", ylabel="validation Dice (%)", ylim=(0, 100),
           xlim=(0, last * 1.3))
    ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=c, lw=2, label=f) for f, c in FAMILY_COLOURS.items()]
    if reached:
        handles.append(plt.Line2D([], [], color="black", marker="o", ls="", ms=5,
                                  label="first reaches 95 % of its best"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def rank_against_budget(table: pd.DataFrame) -> Figure:
    """How much budget a ranking needs: the rank correlation (Spearman, and Kendall dashed) of
    the models' validation ranking at each budget with their ranking at the largest, against
    the budget's optimiser steps (``table``: :func:`~spineseg_core.study.convergence.rank_vs_budget`'s
    columns, the budget's name in words as ``budget``)."""
    rows = table.dropna(subset=["steps"]).sort_values("steps")
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    ax.plot(rows["steps"], rows["spearman"], "o-", color="tab:blue", label="Spearman's rho")
    ax.plot(rows["steps"], rows["kendall"], "s--", color="tab:gray", label="Kendall's tau")
    for _, r in rows.iterrows():
        if np.isfinite(r["spearman"]):
            ax.annotate(str(r["budget"]), (r["steps"], r["spearman"]), xytext=(0, 8),
                        textcoords="offset points", ha="center", fontsize=8)
    ax.set(xlabel="optimiser steps of the budget", ylabel="rank correlation with the largest",
           ylim=(-1.05, 1.15), xlim=(0, 1.08 * float(rows["steps"].max())))
    ax.axhline(0, color="black", lw=0.5)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", frameon=False, fontsize=8)
    fig.tight_layout()
    return fig
