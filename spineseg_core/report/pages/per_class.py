"""Table 2: Dice per class, ours beside the paper's.

The page function of ``book/per_class.md`` (:mod:`spineseg_core.report.pages`)."""

from __future__ import annotations

from collections.abc import Callable

import matplotlib.pyplot as plt
import pandas as pd

from spineseg_core.report.bundle import MISSING, Bundle, num, pct
from spineseg_core.report.pages.base import BOOK_DATA, Missing, Page, page
from spineseg_core.report.tables import Column, HTMLTable, Kind, cell_text, is_missing, table_html

RARE_CLASSES = ("T10", "T9", "T10/T11", "T9/T10")


@page("per_class")
def per_class_page(b: Bundle) -> Page:
    import seaborn as sns

    from spineseg_core.study.paper import table2_per_class_dice

    paper = table2_per_class_dice().set_index("model")
    per_class, classes = b.csv("per_class.csv"), b.csv("classes.csv")
    out: Page = paper_table_gap()
    t9 = paper["T9"].mode()[0]
    out["pc_paper_t9_same"] = str(int((paper["T9"] == t9).sum()))
    out["pc_paper_t9_value"] = f"{t9:.2f}"
    real = pd.read_csv(BOOK_DATA / "mrspineseg_presence.csv").set_index("class_name")
    out["pc_real_t9"] = str(int(real.loc["T9", "cases_present"]))
    out["pc_real_n"] = str(int(real.loc["T9", "n_cases"]))
    ours = None
    if per_class is not None:
        fg = per_class[per_class.class_value > 0]
        ours = 100 * fg.pivot(index="display_name", columns="class_name", values="dice")
        ours = ours[[c for c in paper.columns if c in ours.columns]]
    if ours is None or not len(ours):
        for k in ("hardest", "hardest_dice", "easiest", "easiest_dice", "rare_mean",
                  "common_mean"):
            out[f"pc_{k}"] = MISSING
        out["pc_heatmaps"] = out["pc_vertebrae"] = out["pc_discs"] = Missing("per_class.csv")
    else:
        rare = [c for c in RARE_CLASSES if c in ours]
        out.update(pc_hardest=ours.mean().idxmin(), pc_hardest_dice=num(ours.mean().min(), 1),
                   pc_easiest=ours.mean().idxmax(), pc_easiest_dice=num(ours.mean().max(), 1),
                   pc_rare_mean=num(ours[rare].stack().mean(), 1),
                   pc_common_mean=num(ours.drop(columns=rare).stack().mean(), 1))
        rows = [m for m in paper.index if m in ours.index]
        n = len(paper)
        fig, axes = plt.subplots(2, 1, figsize=(12, 2 * (0.34 * n + 1.2)))
        sns.heatmap(paper.drop(columns="mDice"), annot=True, fmt=".0f", cmap="viridis",
                    vmin=0, vmax=100, ax=axes[0], cbar=False, annot_kws={"fontsize": 9})
        axes[0].set(title="The paper's Table 2 (its validation set), Dice %", xlabel="",
                    ylabel="")
        sns.heatmap(ours.reindex(paper.index), annot=True, fmt=".0f", cmap="viridis", vmin=0,
                    vmax=100, ax=axes[1], cbar=False, annot_kws={"fontsize": 9})
        axes[1].set(title="Ours (the held-out test set, mean over seeds), Dice %", xlabel="",
                    ylabel="")
        fig.tight_layout()
        out["pc_heatmaps"] = fig
        shown = ours.loc[rows].assign(mean=ours.loc[rows].mean(axis=1))
        shown = shown.sort_values("mean", ascending=False)
        out["pc_vertebrae"], out["pc_discs"] = (
            per_class_table(shown, paper, [c for c in shown.columns
                                           if c != "mean" and ("/" in c) is discs])
            for discs in (False, True))
    if classes is not None:
        c = classes.set_index("class_name")
        out["pc_t9_present"] = pct(c.loc["T9", "subjects_present"], 0)
        out["pc_n_subjects"] = str(int(c["n_subjects"].iloc[0]))
    else:
        out["pc_t9_present"] = out["pc_n_subjects"] = MISSING
    return out


def per_class_table(ours: pd.DataFrame, paper: pd.DataFrame, classes: list[str]) -> HTMLTable:
    """One group of structures (the vertebrae with the sacrum, or the discs) as a table that fits
    the page: a row per model in ``ours``' order (display names as index, a ``mean`` column),
    a column per structure, each cell our Dice and, lighter under it, the paper's; the last
    column the mean over all 19 structures (the paper's: its printed mean Dice)."""
    def both(mine: object, theirs: object) -> str:
        text = cell_text(mine, Kind.NUMBER, 1)
        if theirs is None or is_missing(theirs):
            return text
        return f'{text}<br><span class="spineseg-ci">{float(theirs):.1f}</span>'

    def write(c: str, paper_col: str) -> Callable[[pd.Series], str]:
        return lambda r: both(r[c], paper[paper_col].get(r["display_name"]))

    cols = [Column("display_name", "Model")]
    cols += [Column(c, c, write=write(c, c)) for c in classes]
    cols.append(Column("mean", "Mean", write=write("mean", "mDice")))
    return table_html(ours.reset_index(), cols, notes=[
        "Dice (%) on the held-out test set, mean over seeds; lighter, under it: the paper's "
        "(its Table 2, validation set). Mean: over all 19 structures; sorted by ours. Data: "
        "per_class.csv and the paper's Table 2."],
        dash_note="the class was never scored in this model's runs")


def paper_table_gap() -> Page:
    """The paper's Table 1 Dice of each model against the mean of its own Table 2 row (the
    same 19 structures, so they should agree): the audit's table and its range."""
    from spineseg_core.report.headline import paper_audit

    gap = paper_audit().table_gap
    return {
        "pc_gap_lo": f"{gap['gap'].min():.1f}", "pc_gap_hi": f"{gap['gap'].max():.1f}",
        "pc_gap_unet_t1": f"{gap.set_index('model').loc['U-Net', 'table1_dice']:.2f}",
        "pc_gap_unet_t2": f"{gap.set_index('model').loc['U-Net', 'table2_mean']:.2f}",
        "pc_gap": table_html(gap, [
            Column("model", "Model"), Column("table1_dice", "Table 1 Dice (%)", Kind.NUMBER, 2),
            Column("table2_mean", "Mean of its Table 2 row (%)", Kind.NUMBER, 2),
            Column("gap", "Table 1 minus Table 2 (points)", Kind.NUMBER, 2)],
            notes=["Sorted by the gap. Data: the paper's Tables 1 and 2 "
                   "(spineseg_core/resources/paper/)."]),
    }
