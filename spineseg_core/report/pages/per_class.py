"""Table 2: Dice per class, ours beside the paper's.

The page function of ``book/per_class.md`` (:mod:`spineseg_core.report.pages`)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from spineseg_core.labels import LABELS
from spineseg_core.report.bundle import MISSING, Bundle, num, pct
from spineseg_core.report.pages.base import BOOK_DATA, Missing, Page, page
from spineseg_core.report.tables import (
    Column,
    HTMLTable,
    Kind,
    cell_text,
    heatmap_html,
    is_missing,
    table_html,
)

RARE_CLASSES = ("T10", "T9", "T10/T11", "T9/T10")


@page("per_class")
def per_class_page(b: Bundle) -> Page:
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
        out["pc_heatmaps"] = per_class_heatmaps(ours, paper.drop(columns="mDice"))
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


def per_class_tooltips(ours: pd.DataFrame, paper: pd.DataFrame, *, paper_first: bool
                       ) -> pd.DataFrame:
    """Each cell's hover text of a per-class heatmap (rows and columns as ``paper``'s): the
    model, the structure, the Dice of the heatmap's source and, in brackets, the other's
    ("U-Net, L3: 81.2 % Dice (paper 85.0 %)"); a model the study did not run, or a class its
    runs never scored, is said so."""
    def pct_text(v: object) -> str | None:
        return None if is_missing(v) else f"{float(v):.1f} %"

    def one(model: str, cls: str) -> str:
        theirs = pct_text(paper.at[model, cls])
        if model not in ours.index:
            mine = "not run in this study"
        else:
            mine = pct_text(ours.at[model, cls]) if cls in ours.columns else None
            mine = f"{mine} Dice" if mine else "never scored in this model's runs"
        theirs_text = f"{theirs} Dice" if theirs else "not given"
        if paper_first:
            return f"{model}, {cls}: the paper's {theirs_text} (ours: {mine})"
        return f"{model}, {cls}: {mine} (paper {theirs or 'not given'})"

    return pd.DataFrame([[one(m, c) for c in paper.columns] for m in paper.index],
                        index=paper.index, columns=paper.columns)


CLASS_TITLES: dict[str, str] = {lab.name: lab.long_name for lab in LABELS if lab.value}
"""A structure's full name, the hover text of its column header ("disc T10/T11")."""


def per_class_heatmaps(ours: pd.DataFrame, paper: pd.DataFrame) -> HTMLTable:
    """The paper's Table 2 and ours as two heatmap tables, one above the other (models in
    rows in the paper's order, the 19 structures in columns), on one colour scale; every cell
    shows its Dice (%) rounded and, on hover, both Dice to one decimal. ``ours`` and
    ``paper``: Dice (%), display names as index, the paper's short class names as columns."""
    ours_grid = ours.reindex(index=paper.index, columns=paper.columns).astype(float)
    theirs = heatmap_html(paper.astype(float), per_class_tooltips(ours, paper, paper_first=True),
                          column_titles=CLASS_TITLES, row_header="Model",
                          title="The paper's Table 2 (its validation set), Dice %")
    mine = heatmap_html(ours_grid, per_class_tooltips(ours, paper, paper_first=False),
                        column_titles=CLASS_TITLES, row_header="Model",
                        title="Ours (the held-out test set, mean over seeds), Dice %",
                        dash_note="the model was not run, or the class was never scored")
    return HTMLTable(f"{theirs}{mine}")


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
