"""The book's first page.

The page function of ``book/intro.md`` (:mod:`spineseg_core.report.pages`)."""

from __future__ import annotations

from spineseg_core.report.bundle import MISSING, Bundle, pct
from spineseg_core.report.pages.base import Page, page
from spineseg_core.report.tables import Column, table_html


@page("intro")
def intro_page(b: Bundle) -> Page:
    from spineseg_core.report.deviations import deviations_table
    from spineseg_core.report.facts import precision_text, read_setup
    from spineseg_core.study.paper import table1_overall

    bundle, models = b.json("bundle.json") or {}, b.csv("models.csv")
    paper = table1_overall()
    setup = read_setup(b.folder) if b.has_bundle() else None
    out: Page = {
        "profile": b.folder.name if b.folder is not None and b.has_bundle() else MISSING,
        "data_kind": bundle.get("data_kind", "no results yet"),
        "n_runs": str(bundle.get("n_runs", 0)), "n_models": str(len(bundle.get("models", []))),
        "devices": ", ".join(bundle.get("devices", [])) or MISSING,
        "precisions": (precision_text(setup) if setup and setup.precisions
                       else "an unrecorded precision"),
        "processors": ", ".join(setup.processors) if setup and setup.processors else MISSING,
        "paper_best": paper.loc[paper["dice"].idxmax(), "model"],
        "paper_best_dice": f"{paper['dice'].max():.2f}",
        "our_best": MISSING, "our_best_dice": MISSING,
        "deviations": table_html(deviations_table(setup), [
            Column("aspect", "Aspect"), Column("paper", "The paper"),
            Column("ours", "This study"), Column("reason", "Why")]),
    }
    if models is not None and len(models):
        best = models.loc[models["dice_mean"].idxmax()]
        out.update(our_best=best["display_name"], our_best_dice=pct(best["dice_mean"]))
    return out
