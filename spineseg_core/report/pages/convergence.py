"""Figure 19: validation curves and where each run stands on them.

The page function of ``book/convergence.md`` (:mod:`spineseg_core.report.pages`)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from spineseg_core.report.bundle import MISSING, Bundle, missing, num
from spineseg_core.report.pages.base import Missing, Page, page
from spineseg_core.report.tables import DASH, Column, Kind, table_html


@page("convergence")
def convergence_page(b: Bundle) -> Page:
    from spineseg_core.report.figures import learning_curves
    from spineseg_core.study.aggregate import STEEP_RATIO, STEEP_WINDOW

    history, conv, runs = b.csv("history.csv"), b.csv("convergence.csv"), b.csv("runs.csv")
    out: Page = {"cv_window": str(STEEP_WINDOW), "cv_ratio": num(STEEP_RATIO, 2),
                 "cv_curves": learning_curves(history) if history is not None and len(history)
                 else Missing("history.csv"), "cv_budget": MISSING}
    if runs is not None and len(runs):
        epochs = sorted(runs["epochs_completed"].dropna().astype(int).unique())
        budget = " or ".join(str(e) for e in epochs) + " epochs"
        if "steps_per_epoch" in runs and runs["steps_per_epoch"].notna().any():
            steps = sorted(runs["steps_per_epoch"].dropna().astype(int).unique())
            budget += f" of {' or '.join(map(str, steps))} optimiser steps each"
        out["cv_budget"] = budget
    if history is not None and len(history):
        from spineseg_core.study.plateau import MIN_CURVE_POINTS, still_climbing

        climbing = still_climbing(history)
        out.update(cv_n_climbing=str(int(climbing["climbing"].sum())),
                   cv_n_runs=str(len(climbing)), cv_min_points=str(MIN_CURVE_POINTS))
    else:
        out.update(cv_n_climbing=MISSING, cv_n_runs=MISSING, cv_min_points=MISSING)
    if conv is None or not len(conv):
        out.update(cv_n_past=MISSING, cv_n_models=MISSING, cv_still_steep=MISSING,
                   cv_table=Missing("convergence.csv"))
        return out
    past = conv["past_steep"].astype(bool)
    def gain(key: str) -> Callable[[pd.Series], str]:  # a dash (footnoted) for a short curve
        return lambda r: DASH if missing(r[key]) else num(100 * r[key], 2)
    out.update(
        cv_n_past=str(int(past.sum())), cv_n_models=str(len(conv)),
        cv_still_steep=", ".join(conv.loc[~past, "display_name"]) or "none",
        cv_table=table_html(conv, [
            Column("display_name", "Model"), Column("epochs", "Epochs", Kind.INTEGER),
            Column("first_dice", "Dice after epoch 1 (%)", Kind.PERCENT),
            Column("best_dice", "Best Dice (%)", Kind.PERCENT),
            Column("best_epoch", "Best epoch", Kind.INTEGER),
            Column("steepest_gain", "Steepest gain (points/epoch)", write=gain("steepest_gain")),
            Column("last_gain", "Last gain (points/epoch)", write=gain("last_gain")),
            Column("past_steep", "Past the steep part",
                   write=lambda r: "yes" if bool(r["past_steep"]) else "no")],
            notes=["Validation Dice, mean over each model's seeds."],
            dash_note="the curve is too short to measure a gain"))
    return out
