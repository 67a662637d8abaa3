"""Figure 19: validation curves and where each run stands on them.

The page function of ``book/convergence.md`` (:mod:`spineseg_core.report.pages`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from spineseg_core.report.bundle import MISSING, Bundle, missing, num
from spineseg_core.report.pages.base import MarkdownText, Missing, Page, page
from spineseg_core.report.tables import DASH, Column, HTMLTable, Kind, table_html

if TYPE_CHECKING:
    from spineseg_core.study.convergence import ConvergenceClaim, FamilyTest


@page("convergence")
def convergence_page(b: Bundle) -> Page:
    """The 6-epoch curves of the main results, then the budget seed's part
    (:func:`budget_seed`)."""
    return {**epoch_curves(b), **budget_seed(b)}


def epoch_curves(b: Bundle) -> Page:
    """Figure 19 from the main results' learning curves, and where each stands at its end."""
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


PLATEAU_FOLDER = "plateau"
"""The budget seed's results, a sibling of the profile's (``results/plateau/``)."""

NO_SEED = MarkdownText(
    "The runs of the budget seed (every model trained to one budget of optimiser steps and to "
    "half of it, which would label each model as plateaued or not) are not among these "
    "results.")
"""The one sentence the chapter shows without the budget seed's runs."""


def plateau_bundle(b: Bundle) -> Bundle:
    """The budget seed's bundle beside ``b`` (``<results>/plateau/``; no files when ``b`` has
    no results folder)."""
    return Bundle(b.root / PLATEAU_FOLDER if b.root is not None else None)


def paper_families() -> dict[str, str]:
    """The family of each of the paper's twelve models (the registry's list), the units of the
    fifth claim and of the "10 of 12" rule."""
    from spineseg_core.models import list_models, model_info

    return {m: str(model_info(m).family) for m in list_models()}


def display_names(models: Sequence[str]) -> dict[str, str]:
    """Each model's name in words (:func:`spineseg_core.levels.study.display_name`: the
    registry's, the code name for a model it does not know)."""
    from spineseg_core.levels.study import display_name

    return {m: display_name(m) for m in models}


@dataclass(frozen=True)
class EpochBudget:
    """The main results' runs (the 6-epoch runs) as one budget of the ranking."""

    scores: pd.Series
    """Seed 0's validation Dice per model."""
    steps: float
    """Their optimiser steps: the median over the runs of epochs x steps per epoch."""
    name: str
    """The budget in words ("the 6-epoch runs")."""
    n_val: int | None
    """Their validation subjects (None when not recorded)."""
    fingerprints: frozenset[str]
    """The code versions (source fingerprints) that made them."""


def epoch_budget(runs: pd.DataFrame | None) -> EpochBudget | None:
    """The main results' seed-0 runs as a budget of the ranking; None without them."""
    if runs is None or not {"model", "seed", "val_dice"} <= set(runs):
        return None
    seed0 = runs[runs["seed"] == 0].drop_duplicates("model")
    if seed0.empty:
        return None
    if "steps_completed" in seed0 and seed0["steps_completed"].notna().all():
        steps = float(seed0["steps_completed"].median())
    elif {"epochs_completed", "steps_per_epoch"} <= set(seed0):
        steps = float((seed0["epochs_completed"] * seed0["steps_per_epoch"]).median())
    else:
        steps = math.nan
    epochs = (sorted(seed0["epochs_completed"].dropna().astype(int).unique())
              if "epochs_completed" in seed0 else [])
    name = (f"the {epochs[0]}-epoch runs" if len(epochs) == 1 else "the epoch-budget runs")
    return EpochBudget(seed0.set_index("model")["val_dice"], steps, name,
                       median_int(seed0, "n_val_cases"), fingerprints(seed0))


def median_int(frame: pd.DataFrame, column: str) -> int | None:
    """The median of ``column`` as an integer, None when the column has no value."""
    if column not in frame or not frame[column].notna().any():
        return None
    return int(frame[column].median())


def fingerprints(frame: pd.DataFrame) -> frozenset[str]:
    """The source fingerprints recorded by the runs of ``frame``."""
    if "source_fingerprint" not in frame:
        return frozenset()
    return frozenset(str(f) for f in frame["source_fingerprint"].dropna())


def budget_seed(b: Bundle) -> Page:
    """The budget seed's part of the chapter (issue 24), from ``results/plateau/``: Figure 19
    re-made against optimiser steps, the plateau label of every model, the fifth claim and
    the ranking against the budget. ``cv_seed`` is the Markdown the chapter pastes (with the
    exhibits' directives), or :data:`NO_SEED`, one sentence, when the seed has no run here;
    the exhibits are given only with it."""
    from spineseg_core.models.registry import Family
    from spineseg_core.report.figures import dice_against_steps, rank_against_budget
    from spineseg_core.study.budget_raise import BUDGET_FILE, at_budget
    from spineseg_core.study.convergence import (
        CONVERGENCE_STATEMENT,
        REACH_FRACTION,
        convergence_claim,
        rank_vs_budget,
    )
    from spineseg_core.study.plateau import (
        MIN_PLATEAUED,
        PLATEAU_TOLERANCE,
        BudgetVerdict,
        budget_verdict,
    )

    seed = plateau_bundle(b)
    raised = seed.json(BUDGET_FILE)
    runs, history = seed.csv("runs.csv"), seed.csv("history.csv")
    plateau = at_budget(seed.csv("plateau.csv"), raised)  # a stale bundle's old labels: none
    if runs is None or not len(runs) or history is None or not len(history):
        return {"cv_seed": NO_SEED}
    paper = paper_families()
    models = list(dict.fromkeys([*runs["model"], *(plateau["model"] if plateau is not None
                                                   else [])]))
    names = display_names(models)
    family = {**{m: "" for m in models}, **paper}
    steps_b = (float(runs["steps_completed"].median()) if "steps_completed" in runs
               and runs["steps_completed"].notna().any() else math.nan)
    ours = plateau[plateau["model"].isin(paper)] if plateau is not None else None
    stepped = "step" in history and history["step"].notna().any()
    claim = (convergence_claim(history, ours, paper, str(Family.BACKBONE), str(Family.UNET),
                               names=display_names(list(paper)))
             if stepped else None)  # no step at all: no model's convergence can be measured
    reached = dict(zip(claim.steps["model"], claim.steps["steps"])) if claim else {}
    half = (float(plateau["half_steps"].dropna().median()) if plateau is not None
            and plateau["half_steps"].notna().any() else None)
    curves = history[history["model"].isin(paper)] if history["model"].isin(paper).any() \
        else history
    out: Page = {"cv_seed_curves": dice_against_steps(curves, family, names, half, reached)
                 if "step" in curves and curves["step"].notna().any()
                 else Missing("history.csv with the optimiser step of each validation")}
    budget = f"B = {steps_b:,.0f} optimiser steps" if math.isfinite(steps_b) else "a budget B"
    text = [
        "## Every model at one budget of optimiser steps",
        f"Seed 0 of every model was trained again to {budget}, the same for every model, with "
        "a learning rate that decays to zero at the budget, and once more to half of it (B/2) "
        "with its own complete schedule. {numref}`fig-steps` is the paper's Figure 19 re-made "
        "from the runs at B.",
        figure_block("cv_seed_curves", "fig-steps", (
            "**Validation Dice against optimiser steps, the runs at the budget.** Mean Dice "
            "over the 19 structures on the validation subjects; blue: U-Net family, orange: "
            "backbone models; a dot marks where a run first reaches "
            f"{100 * REACH_FRACTION:.0f} % of its best. Data: history.csv of the budget seed."),
            alt="One line chart of validation Dice in percent against optimiser steps, one "
                "line per model named at its end, blue for the U-Net family and orange for "
                "the backbone models, a dotted line at half the budget.",
            figclass="full-width")]

    # -- the plateau label per model
    if ours is None or plateau is None or not len(plateau):
        text.append(("No model has been labelled at the raised budget yet."
                     + raise_sentence(raised)) if raised else
                    "No run at B/2 is among these results, so no model is labelled by the "
                    "plateau rule.")
    else:
        verdict, done, measured = budget_verdict(ours, list(paper))
        stands = f"so the budget {verdict}"
        if raised:  # raised once already: final whatever the labels at it say
            stands = {
                BudgetVerdict.STANDS: "so the raised budget stands",
                BudgetVerdict.RAISED: (
                    (f"and at most {done + len(paper) - measured} can now (the {done} plateaued "
                     f"and the {len(paper) - measured} still to measure)"
                     if measured < len(paper) else "with every model measured")
                    + ", so the raised budget does not stand either; the budget is raised only "
                    "once, so it is final and the models that did not plateau are named below "
                    "with why"),
                BudgetVerdict.PENDING: "and the raised budget is final whatever the labels "
                                       "still to come say"}[verdict]
        unmeasured = len(paper) - measured
        text += [
            "## Has each model plateaued?",
            f"A model has plateaued at B when its validation Dice at B is within "
            f"{100 * PLATEAU_TOLERANCE:.1f} point of its run at B/2 (or below it): doubling "
            f"the budget bought nothing that matters ({{numref}}`tbl-plateau`). "
            + (f"{done} of the paper's {len(paper)} models plateaued" if not unmeasured else
               f"{done} of the {measured} of the paper's models measured plateaued "
               f"({unmeasured} not measured)")
            + f"; the budget B stands when at least {MIN_PLATEAUED} of the {len(paper)} do, "
            f"{stands}." + raise_sentence(raised),
            figure_block("cv_seed_plateau", "tbl-plateau", (
                "**Has each model plateaued at the budget?** Validation Dice of the run at "
                "B/2 and of the run at B (seed 0), the gain of doubling the budget, and the "
                "rule's label. Sorted by gain. Data: plateau.csv of the budget seed."))]
        out["cv_seed_plateau"] = plateau_exhibit(plateau, names)
        if (why := shortfall_text(plateau, names)):
            text.append(why)
        if (noise := end_label_text(plateau, names, history, list(paper))):
            text.append(noise)
        if (ends := after_best_text(plateau, history, names)):
            text.append(ends)
        first = seed.csv(FIRST_PLATEAU)
        if first is not None and len(first):
            before = int(first["steps"].dropna().median()) if first["steps"].notna().any() \
                else None
            text.append(figure_block("cv_seed_first", "tbl-plateau-first", (
                "**The labels at the first budget"
                + (f", {before:,} steps" if before else "")
                + ", which raised it.** As the table above, for the runs at the first budget "
                "and at its half (now the groups at B/2 and B/4). Data: plateau_first.csv of "
                "the budget seed.")))
            out["cv_seed_first"] = plateau_exhibit(first, names)

    # -- the fifth claim
    if claim is None:
        text += ["## The fifth claim: do the backbone models converge sooner?",
                 f"The paper says that {CONVERGENCE_STATEMENT} (its section 4.5: about 40 "
                 "epochs against 100 to 120). Verdict here: **not resolved at this scale**: "
                 "no run at the budget records the optimiser step of its validations, so no "
                 "model's convergence can be measured."]
    else:
        text += fifth_claim(claim, names, family, history, plateau, out)

    # -- rank against budget
    early = epoch_budget(b.csv("runs.csv"))
    scores: dict[str, pd.Series] = {}
    where: dict[str, float] = {}
    if early is not None:
        scores[early.name] = early.scores[early.scores.index.isin(paper)]
        where[early.name] = early.steps
    if ours is not None and len(ours):
        table = ours.set_index("model")
        if "quarter_val_dice" in table and table["quarter_val_dice"].notna().any():
            scores["B/4"] = table["quarter_val_dice"].dropna()  # the old B/2 of a raised B
            where["B/4"] = float(table["quarter_steps"].dropna().median())
        scores["B/2"], where["B/2"] = table["half_val_dice"], half if half else math.nan
        scores["B"], where["B"] = table["val_dice"], steps_b
        ranks = rank_vs_budget(scores, "B", where)
        caveat = "" if early is None else early_caveat(early, median_int(runs, "n_val_cases"),
                                                         fingerprints(runs))
        text += [
            "## How much budget a ranking needs",
            "The rank correlation between the models' ranking on validation at each complete "
            "budget and their ranking at B ({numref}`tbl-rank-budget`, {numref}`fig-rank-budget`): "
            "a comparison of architectures at a budget whose correlation with B is low "
            "ranks how fast the models start, not what they reach." + caveat,
            figure_block("cv_seed_ranks", "tbl-rank-budget", (
                "**The ranking at each budget against the ranking at B**, validation Dice of "
                "seed 0, the paper's models both budgets have. Data: runs.csv (6-epoch runs) "
                "and plateau.csv of the budget seed.")),
            figure_block("cv_seed_rank_plot", "fig-rank-budget", (
                "**Rank correlation with the ranking at B against the budget's optimiser "
                "steps.** Data: as the table above."),
                alt="A line chart of the rank correlation, Spearman and Kendall, against the "
                    "optimiser steps of each budget, reaching 1 at the budget B.")]
        out["cv_seed_ranks"] = table_html(ranks, [
            Column("budget", "Budget"), Column("steps", "Optimiser steps", Kind.INTEGER),
            Column("models", "Models", Kind.INTEGER),
            Column("spearman", "Spearman's rho", Kind.NUMBER, 2),
            Column("kendall", "Kendall's tau", Kind.NUMBER, 2)],
            dash_note="fewer than three models in common")
        out["cv_seed_rank_plot"] = rank_against_budget(ranks)
    out["cv_seed"] = MarkdownText("\n\n".join(text))
    return out


FIRST_PLATEAU = "plateau_first.csv"
"""The labels at the first budget of a raised one (:func:`spineseg_core.study.aggregate.
aggregate`)."""


def _gain_cell(row: pd.Series) -> str:
    """A row's gain in signed Dice points, with the decimals that set it apart from the row's
    tolerance (``plateau.csv`` records it): +1.02 beside a tolerance of 1.0, not +1.0."""
    from spineseg_core.study.plateau import PLATEAU_TOLERANCE, decimals_apart

    if missing(row["gain"]):
        return DASH
    tolerance = row.get("tolerance", PLATEAU_TOLERANCE)
    tolerance = PLATEAU_TOLERANCE if missing(tolerance) else float(tolerance)
    return f"{100 * row['gain']:+.{decimals_apart(row['gain'], tolerance)}f}"


def plateau_exhibit(plateau: pd.DataFrame, names: dict[str, str]) -> HTMLTable:
    """``plateau.csv`` (or ``plateau_first.csv``) as the chapter's table: the label, the
    validation Dice at B/2 and at B, the gain and the evidence per model, largest gain
    first."""
    from spineseg_core.study.plateau import Plateau

    names = {**display_names(list(plateau["model"])), **names}  # the first budget's too
    shown = plateau.assign(name=plateau["model"].map(names).fillna(plateau["model"]))
    shown = shown.sort_values("gain", ascending=False, na_position="last")
    return table_html(shown, [
        Column("name", "Model"), Column("label", "Label"),
        Column("half_val_dice", "Dice at B/2 (%)", Kind.PERCENT),
        Column("val_dice", "Dice at B (%)", Kind.PERCENT),
        Column("gain", "Gain (points)", write=_gain_cell),
        Column("evidence", "Evidence")],
        dash_note=f"the model is {Plateau.NOT_MEASURED}")


def shortfall_text(plateau: pd.DataFrame, names: dict[str, str]) -> str:
    """The models of ``plateau.csv`` that have not plateaued, each with why
    (:func:`spineseg_core.study.plateau.shortfall`, from its scores at B/4, B/2 and B); empty
    when every model measured has plateaued."""
    from spineseg_core.report.bundle import and_join
    from spineseg_core.study.plateau import Plateau, shortfall

    short = plateau[plateau["label"] == str(Plateau.NOT_PLATEAUED)]
    if not len(short):
        return ""
    short = short.sort_values("gain", ascending=False)
    items = []
    for _, row in short.iterrows():
        q = row.get("quarter_val_dice", math.nan)
        _, why = shortfall(float(q) if pd.notna(q) else math.nan, float(row["half_val_dice"]),
                           float(row["val_dice"]),
                           float(row["tolerance"]))
        items.append(f"- **{names.get(row['model'], row['model'])}**: {why}.")
    who = and_join([names.get(m, m) for m in short["model"]])
    return "\n".join([f"Why {who} {'has' if len(short) == 1 else 'have'} not plateaued, from "
                      "the same seed's complete runs at B/2 and B, and at B/4 where it was run "
                      "(validation Dice):",
                      "", *items])


def _budget_test_sentence(rates: pd.Series, paper: Sequence[str]) -> str:
    """The budget's test calibrated: were the ``paper``'s models measured all flat (each
    mislabelled with its chance in ``rates``), how many would pass on average and how often at
    least :data:`MIN_PLATEAUED` of the twelve would (those not yet measured counted as passing,
    so then an upper bound); empty without the paper's models."""
    from spineseg_core.study.plateau import MIN_PLATEAUED, flat_pass_chance

    ours = rates[rates.index.isin(paper)]
    if not len(ours):
        return ""
    unmeasured = len(paper) - len(ours)
    chance, expected = flat_pass_chance(ours.to_list(), MIN_PLATEAUED - unmeasured)
    return (f" Were the {len(ours)} of the paper's models measured all flat, {expected:.1f} of "
            f"them would be labelled plateaued on average, and at least {MIN_PLATEAUED} of the "
            f"{len(paper)} would be with a chance of "
            + (f"at most {100 * chance:.0f} % (the {unmeasured} not yet measured counted as "
               "passing)" if unmeasured else f"{100 * chance:.0f} %")
            + (": at one seed, the budget's test fails most budgets that every model has "
               "reached." if chance < 0.5 else "."))


def _gain_beyond_noise_sentence(plateau: pd.DataFrame, noise: pd.DataFrame,
                                names: dict[str, str]) -> str:
    """Which of the models labelled not plateaued gained more than their own validation noise
    gives a flat model (:func:`spineseg_core.study.plateau.flat_gain_chance` under
    :data:`FLAT_MISLABEL_BAR`) and which did not, with the chance; ``noise`` is
    :func:`~spineseg_core.study.plateau.validation_noise`'s (seeds averaged); empty when no
    model with a noise estimate is labelled not plateaued."""
    from spineseg_core.report.bundle import and_join
    from spineseg_core.study.plateau import Plateau, flat_gain_chance

    per_model = noise.groupby("model", sort=False).agg(points=("points", "max"),
                                                       noise_sd=("noise_sd", "mean"))
    rows = plateau[(plateau["label"] == str(Plateau.NOT_PLATEAUED))
                   & plateau["model"].isin(per_model.index)]
    if not len(rows):
        return ""
    chance = {r.model: flat_gain_chance(r.gain, per_model.loc[r.model, "noise_sd"],
                                        int(per_model.loc[r.model, "points"]))
              for r in rows.itertuples()}
    out = [f"{names.get(m, m)}" for m, c in chance.items() if c < FLAT_MISLABEL_BAR]
    within = [f"{names.get(r.model, r.model)} ({100 * r.gain:+.1f} points, "
              f"{100 * chance[r.model]:.0f} %)" for r in rows.itertuples()
              if chance[r.model] >= FLAT_MISLABEL_BAR]
    return (f" Of the {len(rows)} models labelled not plateaued, "
            + (f"{and_join(out)} gained more than a flat model with the same noise gains in "
               f"{100 * (1 - FLAT_MISLABEL_BAR):.0f} % of seeds" if out else "none gained more "
               "than its noise explains")
            + (f"; {and_join(within)} did not: a flat model gains as much in the share of "
               "seeds given, so that label may be noise" if within else "")
            + ".")


SEEDS_AT_BOTH = 3
"""The seeds a side with which the chapter shows that more seeds leave the rule's bias: the
re-run's count at B."""

FLAT_MISLABEL_BAR = 0.05
"""A flat model's chance of being labelled not plateaued at or below which the chapter names it
as one whose label the rule can trust: a firm answer on a tie at most 5 % of the time, as the
claim rules are held to (:mod:`spineseg_core.study.tie_simulation`)."""


def end_label_text(plateau: pd.DataFrame, names: dict[str, str],
                   history: pd.DataFrame | None = None, paper: Sequence[str] = ()) -> str:
    """How much the labels rest on validation noise: the rule again on each run's
    end-of-schedule score (``end_*`` columns of ``plateau.csv``,
    :func:`spineseg_core.study.plateau.end_labels`), the models whose label differs named with
    both gains, and how much validation Dice moves between epochs after the first quarter of the
    runs at B (``history``: their curves), with how often that noise alone mislabels a flat
    model and, over the ``paper``'s models, how often the budget's test would pass were all of
    them flat; empty when ``plateau.csv`` has no such columns or none is measured."""
    from spineseg_core.report.bundle import and_join
    from spineseg_core.study.plateau import END_POINTS, Plateau, flat_mislabel_rate, validation_noise

    if "end_label" not in plateau:
        return ""
    measured = plateau[(plateau["label"] != str(Plateau.NOT_MEASURED))
                       & (plateau["end_label"] != str(Plateau.NOT_MEASURED))]
    if not len(measured):
        return ""
    done = int((measured["end_label"] == str(Plateau.PLATEAUED)).sum())
    differ = measured[measured["label"] != measured["end_label"]]
    flips = and_join([
        f"{names.get(r.model, r.model)} ({r.label} by the best score, {100 * r.gain:+.1f} "
        f"points; {r.end_label} by the end score, {100 * r.end_gain:+.1f})"
        for r in differ.itertuples()])
    moves = calibration = budget = ""
    if history is not None and {"model", "seed", "dice"} <= set(history.columns):
        noise = validation_noise(history).dropna(subset=["noise_sd"])
        noise = noise[noise["model"].isin(measured["model"])]
        if len(noise):
            moves = (f" (one validation's standard deviation about the curve, after the first "
                     f"quarter of each run at B and from successive differences, is "
                     f"{100 * noise['noise_sd'].min():.1f} to "
                     f"{100 * noise['noise_sd'].max():.1f} points)")
            rates = pd.Series([flat_mislabel_rate(r.noise_sd, int(r.points))
                               for r in noise.itertuples()], index=noise["model"])
            rates = rates.groupby(level=0, sort=False).mean()  # seeds averaged
            more = pd.Series([flat_mislabel_rate(r.noise_sd, int(r.points), seeds=SEEDS_AT_BOTH)
                              for r in noise.itertuples()])
            low = and_join([names.get(m, m) for m in rates[rates <= FLAT_MISLABEL_BAR].index])
            calibration = (
                f" Simulated with each model's own noise, a model that is flat after the first "
                f"quarter of both its runs is labelled not plateaued by the rule in "
                f"{100 * rates.min():.0f} to {100 * rates.max():.0f} % of seeds "
                f"(`spineseg_core.study.plateau.flat_mislabel_rate`); "
                + (f"it stays at or under {100 * FLAT_MISLABEL_BAR:.0f} % only for {low}." if low
                   else f"it is over {100 * FLAT_MISLABEL_BAR:.0f} % for every model.")
                + f" More seeds do not cure it: with {SEEDS_AT_BOTH} seeds at both budgets, "
                f"averaged as the rule does, the rates are {100 * more.min():.0f} to "
                f"{100 * more.max():.0f} %, because a maximum over twice the validations stays "
                "higher on average. These rates are lower bounds: the level each run settles "
                "on also varies from run to run. One seed's label is a weak test, and so is "
                "the best score.")
            budget = (_budget_test_sentence(rates, paper)
                      + _gain_beyond_noise_sentence(measured, noise, names)).strip()
    best = (f"The rule scores a run by its best validation Dice, a maximum over its "
            f"validations. A run at B validates twice as often as one at B/2, and validation "
            f"Dice moves from one epoch to the next{moves}, so noise alone lifts the "
            f"maximum at B.{calibration}")
    end = (f"Scored instead at the end of each annealed schedule (the mean of its last "
           f"{END_POINTS} validations), {done} of the {len(measured)} models measured plateau"
           + (f"; the label differs for {flips}." if len(differ) else
              ", the same labels as the rule's.")
           + " The rule's labels stand (the protocol fixed the best score before the seed); "
           "where the two differ, the label rests on validation noise more than on the "
           "budget.")
    return "\n\n".join(part for part in (best, budget, end) if part)


FALL_BAR = 0.02
"""A fall from a run's best validation Dice to its end score (:func:`spineseg_core.study.
plateau.after_best`) over which the chapter counts the run as ending well below its best."""


def after_best_text(plateau: pd.DataFrame | None, history: pd.DataFrame | None,
                    names: dict[str, str]) -> str:
    """Where the runs at B end against their best, one paragraph: how far validation Dice
    falls from its best to the end of the schedule while the validation loss stays near its
    lowest (``history``, the runs at B, :func:`spineseg_core.study.plateau.after_best`), and
    how far the end scores of one model's runs at B and B/2 lie apart against their
    validation losses (``plateau.csv``'s ``end_*`` columns); empty without the curves."""
    from spineseg_core.study.plateau import END_POINTS, after_best

    if history is None or not {"model", "seed", "dice"} <= set(history.columns):
        return ""
    runs = after_best(history).groupby("model", sort=False)[
        ["drop", "loss_above_min"]].mean()  # seeds averaged
    if not len(runs):
        return ""
    worst = str(runs["drop"].idxmax())
    fallen = int((runs["drop"] > FALL_BAR).sum())
    text = (f"Validation Dice does not stay at its best. A run at B ends (the mean of its last "
            f"{END_POINTS} validations) a median {100 * runs['drop'].median():.1f} points below "
            f"its best ({100 * runs['drop'].min():.1f} to {100 * runs['drop'].max():.1f}, "
            f"{names.get(worst, worst)} most; more than {100 * FALL_BAR:.0f} points for "
            f"{fallen} of the {len(runs)} models)")
    loss = runs["loss_above_min"].dropna()
    if len(loss):
        text += (f", while its validation loss ends within {loss.max():.3f} of its lowest. "
                 "Overfitting would raise the loss; instead the best Dice is a high point of "
                 "the mid-run epochs, whose learning rate is high and whose Dice swings, not a "
                 "level the run holds, and the checkpoint the test scores is taken there.")
    else:
        text += "."
    if plateau is not None and {"end_gain", "end_val_dice", "end_half_val_dice", "end_val_loss",
                                "end_half_val_loss"} <= set(plateau.columns):
        both = plateau[plateau["model"].isin(runs.index)].dropna(
            subset=["end_gain", "end_val_loss", "end_half_val_loss"])
        if len(both):
            lower = int((both["end_val_loss"] < both["end_half_val_loss"]).sum())
            fell = both[both["end_gain"] < 0]
            text += (f" Doubling the budget lowered the validation loss at the end of the "
                     f"schedule for {lower} of these {len(both)} models")
            if len(fell):
                r = fell.loc[fell["end_gain"].idxmin()]
                text += (f", yet it lowered the end score of {len(fell)}, by up to "
                         f"{-100 * r.end_gain:.1f} points ({names.get(r.model, r.model)}: "
                         f"{100 * r.end_half_val_dice:.1f} % at B/2 and "
                         f"{100 * r.end_val_dice:.1f} % at B, validation losses "
                         f"{r.end_half_val_loss:.3f} and {r.end_val_loss:.3f}). Either the "
                         "Dice a run settles on varies that much from run to run, or more steps "
                         "can cost Dice while the loss holds or falls; one seed cannot tell "
                         "which, and either way its gain or loss of a few points, by either "
                         "score, says little of the budget.")
            else:
                text += "."
    return text


def raise_sentence(record: dict[str, Any] | None) -> str:
    """What the chapter says of a raised budget (``results/plateau/budget.json``,
    :mod:`spineseg_core.study.budget_raise`), after a space; empty when B was not raised."""
    from spineseg_core.study.plateau import half_steps

    if not record:
        return ""
    old, new = int(record["raised_from"]), int(record["steps"])
    return (f" The budget was raised once, from {old:,} to {new:,} steps"
            + (f" ({record['date']})" if record.get("date") else "")
            + f", because {str(record['reason']).rstrip('.')}: the runs at {old:,} steps became "
            f"the runs at B/2, and those at {half_steps(old):,} are kept as the group at "
            "B/4.")


def fifth_claim(claim: ConvergenceClaim, names: dict[str, str], family: dict[str, str],
                history: pd.DataFrame, plateau: pd.DataFrame | None, out: Page) -> list[str]:
    """The fifth claim's paragraphs (caveats first, then the verdict, the rule and the family
    test in words); puts its table of each model's convergence steps in ``out``."""
    from spineseg_core.study.convergence import REACH_FRACTION

    test = claim.test
    caveats = "; ".join(claim.caveats)
    text = [
        "## The fifth claim: do the backbone models converge sooner?",
        f"The paper says that {claim.statement} (its section 4.5: about 40 epochs against 100 "
        "to 120). " + (f"Read first: {caveats}. " if caveats else "")
        + f"Verdict here: **{claim.verdict}**.",
        f"The rule: {claim.rule}." + ("" if test is None else f" {family_gap(test)}")
        + " {numref}`tbl-converge-steps` gives each model's steps.",
        figure_block("cv_seed_steps", "tbl-converge-steps", (
            f"**Optimiser steps to {100 * REACH_FRACTION:.0f} % of the best validation Dice**, per "
            "model, the runs at the budget; sorted by steps. Data: history.csv of the budget "
            "seed."))]
    steps = claim.steps.assign(name=claim.steps["model"].map(names),
                               family=claim.steps["model"].map(family)).sort_values("steps")
    best = history.groupby("model")["dice"].max()
    labels = (dict(zip(plateau["model"], plateau["label"])) if plateau is not None else {})
    out["cv_seed_steps"] = table_html(steps.assign(best=steps["model"].map(best),
                                                   label=steps["model"].map(labels)), [
        Column("name", "Model"), Column("family", "Family"),
        Column("steps", "Steps", Kind.INTEGER),
        Column("best", "Best validation Dice (%)", Kind.PERCENT),
        Column("label", "Plateau label")],
        dash_note="no step-budget curve or no run at B/2")
    return text


def family_gap(test: FamilyTest) -> str:
    """The family test's result in words: how many steps the U-Net family's median is from
    the backbone models', and the one-sided p-value of each direction."""
    gap = abs(test.difference)
    where = ("the same as" if gap == 0 else
             f"{gap:,.0f} steps {'later than' if test.difference > 0 else 'sooner than'}")
    return (f"The U-Net family's median is {where} the backbone models' ({test.n_unet} against "
            f"{test.n_backbone} models, every one of the {test.permutations:,} splits into "
            f"families of these sizes; one-sided p = {test.p_backbone_faster:.3f} that the "
            f"backbone models are sooner, {test.p_unet_faster:.3f} that the U-Net family is).")


def early_caveat(early: EpochBudget, n_val: int | None, code: frozenset[str]) -> str:
    """What sets the epoch-budget runs apart from the budget seed besides their budget: fewer
    validation subjects, another version of the code (empty when nothing does)."""
    parts = []
    if early.n_val is not None and n_val is not None and early.n_val != n_val:
        parts.append(f"were validated on {early.n_val} subjects (the budget seed on {n_val})")
    if early.fingerprints and code and early.fingerprints != code:
        parts.append("were made by another version of the code")
    if not parts:
        return ""
    name = early.name[0].upper() + early.name[1:]
    return f" {name} {' and '.join(parts)}, so not all of their distance from B is the budget's."


def figure_block(key: str, name: str, caption: str, alt: str = "", figclass: str = "") -> str:
    """The MyST of a numbered exhibit glued as ``key`` (``{glue:figure}``, named ``name``:
    ``tbl-...`` for a table, ``fig-...`` with ``alt`` text for a figure; ``figclass``
    ``full-width`` for one that reads better wider than the text)."""
    options = ((f":alt: {alt}\n" if alt else "") + f":name: {name}"
               + (f"\n:figclass: {figclass}" if figclass else ""))
    return f"```{{glue:figure}} {key}\n{options}\n\n{caption}\n```"
