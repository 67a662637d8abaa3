"""The book's first page: the abstract, the claims box, the reader's take-away and the scale
caveat (:mod:`spineseg_core.report.headline`), then where the study departs from the paper.

The page function of ``book/intro.md`` (:mod:`spineseg_core.report.pages`)."""

from __future__ import annotations

import pandas as pd

from spineseg_core.report.bundle import MISSING, Bundle, pct
from spineseg_core.report.pages.base import MarkdownText, Page, page


def rank_correlation(models: pd.DataFrame | None) -> float | None:
    """Spearman's rank correlation of our mean Dice with the paper's Table 1 Dice, over the
    models in both; ``None`` for fewer than three models or no spread."""
    from scipy.stats import spearmanr

    from spineseg_core.report.overall import table1

    if models is None or not len(models):
        return None
    both = table1(models).dropna(subset=["dice", "dice_mean"])
    if len(both) < 3 or both["dice_mean"].nunique() < 2:
        return None
    return float(spearmanr(both["dice"], both["dice_mean"]).statistic)


def study_status(plan: pd.DataFrame | None) -> str:
    """Where the re-run at the plateau budget stands, for the first page: the budget, the
    runs the re-run needs and how many are recorded, the hours left; empty before it started
    or once every needed run is recorded (then the book reads those runs)."""
    if plan is None or not len(plan):
        return ""
    needed = plan[plan["required"]]
    done, total = int(needed["recorded"].sum()), int(needed["runs"].sum())
    if done == total:
        return ""
    parts = ", ".join(f"{r.part} {int(r.recorded)} of {int(r.runs)}" for r in needed.itertuples())
    unpriced = any(bool(u) for u in needed["unpriced"])
    hours = needed["hours_left"].sum()
    held = int(needed["held"].sum()) if "held" in needed else 0
    return (f"**Where the study stands.** Every model is being trained again to "
            f"B = {int(plan['steps'].iloc[0]):,} optimiser steps, the study's budget, set by "
            f"the budget seed to bring the models to their plateau: {done} of the {total} runs the "
            f"re-run needs are recorded (by part of the plan: {parts}), about {hours:.0f} "
            f"hours of training{' and an unpriced 3D model' if unpriced else ''} left at the "
            "step rates measured so far (wall clock, validation included)"
            + (f", and {held} run{'s' * (held != 1)} held until the code version "
               f"{'they run' if held != 1 else 'it runs'} from is chosen" if held else "")
            + ". Until they are, "
            "the tables of this book are of the runs described above; {doc}`convergence` "
            "shows what the new runs say so far, which models have plateaued at B among them, "
            "and {doc}`reproducibility` the plan part by part.")


@page("intro")
def intro_page(b: Bundle) -> Page:
    from spineseg_core.report import claims as cl, headline as hl
    from spineseg_core.report.facts import read_setup
    from spineseg_core.report.pages.reproducibility import plateau_plan
    from spineseg_core.study.paper import table1_overall

    models, efficiency = b.csv("models.csv"), b.csv("efficiency.csv")
    paper = table1_overall()
    setup = read_setup(b.folder) if b.has_bundle() else None
    claims = cl.check_claims(cl.load_results(b.folder)) if b.has_bundle() else []
    out: Page = {
        "abstract": MarkdownText(hl.abstract(setup, models, claims, rank_correlation(models),
                                             efficiency)),
        "claims_box": hl.claims_box(claims),
        "takeaway": MarkdownText(hl.takeaway(models, claims, efficiency)),
        "scale_caveat": MarkdownText(hl.scale_caveat(setup)),
        "study_status": MarkdownText(study_status(plateau_plan(b)) if b.root is not None
                                     else ""),
        "paper_best": paper.loc[paper["dice"].idxmax(), "model"],
        "paper_best_dice": hl.one_decimal(paper["dice"].max()),
        "our_best": MISSING, "our_best_dice": MISSING,
    }
    if models is not None and len(models):
        best = models.loc[models["dice_mean"].idxmax()]
        out.update(our_best=best["display_name"], our_best_dice=pct(best["dice_mean"]))
    return out
