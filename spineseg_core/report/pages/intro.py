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


@page("intro")
def intro_page(b: Bundle) -> Page:
    from spineseg_core.report import claims as cl, headline as hl
    from spineseg_core.report.facts import read_setup
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
        "paper_best": paper.loc[paper["dice"].idxmax(), "model"],
        "paper_best_dice": hl.one_decimal(paper["dice"].max()),
        "our_best": MISSING, "our_best_dice": MISSING,
    }
    if models is not None and len(models):
        best = models.loc[models["dice_mean"].idxmax()]
        out.update(our_best=best["display_name"], our_best_dice=pct(best["dice_mean"]))
    return out
