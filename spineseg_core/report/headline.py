"""The book's first screen: an abstract, the paper's claims with their verdicts, what a reader
choosing a model should take from them, and the one-sentence scale caveat.

Everything is written from a bundle's files and the claims' rules
(:mod:`spineseg_core.report.claims`), so the first screen stays right when a re-run replaces the
numbers; the audit of the paper's own tables (:func:`paper_audit`) reads only the paper's
tables shipped with the package (:mod:`spineseg_core.study.paper`).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from spineseg_core.report.bundle import and_join
from spineseg_core.report.claims import Claim, Verdict, interval_verdict
from spineseg_core.report.facts import Setup
from spineseg_core.report.tables import HTMLTable
from spineseg_core.study.loss_study import loss_name
from spineseg_core.study.paper import (
    PAPER_EPOCHS,
    PAPER_SIZE_PX,
    table1_overall,
    table2_per_class_dice,
    table3_efficiency,
)

VERDICT_CLASS = {Verdict.HOLDS: "holds", Verdict.FAILS: "fails",
                 Verdict.UNRESOLVED: "unresolved"}
"""CSS class of each verdict's cell in the claims box (``book/_static/spineseg.css``)."""


def one_decimal(x: float) -> str:
    """A percent as the book writes it: one decimal, halves rounded up (the paper's 87.55 is
    87.6, not the 87.5 that binary floating point gives)."""
    from decimal import ROUND_HALF_UP, Decimal

    return str(Decimal(str(float(x))).quantize(Decimal("0.1"), ROUND_HALF_UP))


def points(x: float, sign: bool = True) -> str:
    """A difference of fractions in percentage points, one decimal (``+4.2``)."""
    return f"{100 * x:{'+' if sign else ''}.1f}"


def comparison_words(label: str) -> str:
    """A comparison label of the claims' rules in reader words: ``"U-Net: dice - ce"`` reads
    ``"U-Net: Dice loss minus cross-entropy"``."""
    model, _, arms = label.rpartition(": ")
    parts = [loss_name(a.strip()) for a in arms.split(" - ")]
    text = " minus ".join(parts)
    return f"{model}: {text}" if model else text[:1].upper() + text[1:]


@dataclass(frozen=True)
class Audit:
    """What the paper's own tables say about themselves."""

    fnr_recall_low: float
    fnr_recall_high: float
    """The range over models of FN rate + recall in its Table 1 (100 for one set of counts)."""
    table_gap: pd.DataFrame
    """Per model: Table 1 Dice, the mean of its Table 2 row's 19 classes and their gap."""


def paper_audit() -> Audit:
    """The paper's Table 1 against itself (FN rate + recall) and against its Table 2 (each
    model's Table 1 Dice against the mean of its per-class row, which should be the same mean
    over the 19 structures)."""
    t1, t2 = table1_overall(), table2_per_class_dice()
    fnr_recall = t1["fn_rate"] + t1["recall"]
    classes = [c for c in t2.columns if c not in ("model", "mDice")]
    rows = t2[["model"]].assign(table2_mean=t2[classes].mean(axis=1))
    if "mDice" in t2:
        rows["table2_printed"] = t2["mDice"]
    gap = t1[["model", "dice"]].rename(columns={"dice": "table1_dice"}).merge(rows, on="model")
    gap["gap"] = gap["table1_dice"] - gap["table2_mean"]
    return Audit(float(fnr_recall.min()), float(fnr_recall.max()),
                 gap.sort_values("gap", ascending=False, ignore_index=True))


def params_gap(efficiency: pd.DataFrame | None) -> tuple[float, int] | None:
    """The largest gap in millions between our parameter count and the paper's Table 3, over
    the models in both, and how many models that is; ``None`` without ``efficiency.csv``."""
    if efficiency is None or "params_m" not in efficiency:
        return None
    paper = table3_efficiency()[["model", "params_m"]]
    both = efficiency.merge(paper, left_on="display_name", right_on="model",
                            suffixes=("", "_paper")).dropna(subset=["params_m", "params_m_paper"])
    if not len(both):
        return None
    return float((both["params_m"] - both["params_m_paper"]).abs().max()), len(both)


def tied_with_best(models: pd.DataFrame) -> tuple[pd.Series, list[str]]:
    """The best model by mean Dice and the others whose 95 % interval reaches the best one's
    lower bound (their intervals overlap: the data do not separate them)."""
    best = models.loc[models["dice_mean"].idxmax()]
    others = models[models.index != best.name]
    tied = others[others["dice_ci_high"] >= best["dice_ci_low"]]
    return best, list(tied.sort_values("dice_mean", ascending=False)["display_name"])


def verdict_counts(claims: Sequence[Claim]) -> str:
    """``"none holds, none is refuted and all 4 are not resolved at this scale"``-style text."""
    n = {v: sum(c.verdict is v for c in claims) for v in Verdict}
    total = len(claims)
    if n[Verdict.UNRESOLVED] == total:
        return "none can be confirmed or refuted at this scale"
    parts = [f"{n[Verdict.HOLDS]} hold", f"{n[Verdict.FAILS]} do not hold",
             f"{n[Verdict.UNRESOLVED]} cannot be decided at this scale"]
    return and_join(parts)


def scale_caveat(setup: Setup | None) -> str:
    """One sentence: what these runs are a miniature of, and what that limits."""
    if setup is None:
        return "No results bundle was found, so nothing here is measured yet."
    data = ("a procedural phantom, not the paper's MRSpineSeg scans"
            if setup.data_kind == "phantom" else "real scans given to the study")
    epochs = "/".join(str(e) for e in setup.epochs) or "an unrecorded number of"
    size = f"{setup.image_size} px" if setup.image_size else "an unrecorded size"
    return (f"Scale: every model here trained {epochs} epochs from random weights on {data}, at "
            f"{size} (the paper: {PAPER_EPOCHS} epochs on real scans at {PAPER_SIZE_PX} px), so a "
            "verdict here is about this miniature of the paper's protocol, not about the models "
            "on real scans.")


def abstract(setup: Setup | None, models: pd.DataFrame | None, claims: Sequence[Claim],
             rho: float | None, efficiency: pd.DataFrame | None) -> str:
    """The abstract, in Markdown: what was done, what came out, what the paper's tables say."""
    audit = paper_audit()
    paper = table1_overall()
    what = "re-runs the twelve segmentation models of Zhou et al. (ICMR 2022)"
    if setup is not None:
        data = ("a procedural spine phantom" if setup.data_kind == "phantom"
                else "real scans given to the study")
        seeds = max(setup.seeds_per_model.values(), default=len(setup.seeds))
        what += (f" on {data} ({setup.n_runs} training runs, up to {seeds} seeds per model, "
                 f"{setup.n_test_cases} held-out test subjects)")
    out = [f"This book {what} and audits the paper's own tables."]
    if models is not None and len(models):
        lo, hi = models["dice_mean"].min(), models["dice_mean"].max()
        where = ("lies below" if 100 * hi < paper["dice"].min() else "compares with")
        text = (f"Our mean test Dice ({points(lo, False)}–{points(hi, False)} %) {where} "
                f"the paper's ({one_decimal(paper['dice'].min())}–"
                f"{one_decimal(paper['dice'].max())} %)")
        if rho is not None and np.isfinite(rho):
            text += f" and orders the models differently (rank correlation {rho:+.2f})"
        out.append(text + (f"; of the paper's {len(claims)} claims, {verdict_counts(claims)}."
                           if claims else "."))
    gap = params_gap(efficiency)
    if gap is not None:
        out.append(f"The models' sizes reproduce (parameters within {gap[0]:.1f} M of the "
                   "paper's).")
    tg = audit.table_gap["gap"]
    out.append(f"The paper's tables disagree with themselves: false-negative rate plus recall "
               f"is {audit.fnr_recall_low:.1f}–{audit.fnr_recall_high:.1f} %, not 100 %, and "
               f"each Table 1 Dice lies {tg.min():.1f}–{tg.max():.1f} points above the mean of "
               "its own Table 2 row.")
    return " ".join(out)


def takeaway(models: pd.DataFrame | None, claims: Sequence[Claim],
             efficiency: pd.DataFrame | None) -> str:
    """What a reader choosing a model should take away, in Markdown."""
    if models is None or not len(models):
        return "No model has results yet, so this book cannot inform a choice."
    best, tied = tied_with_best(models)
    decided = [c for c in claims if c.verdict is not Verdict.UNRESOLVED]
    text = f"**Choosing a model.** {best['display_name']} scores highest here"
    if tied:
        names = and_join(tied)
        text += (f", but the 95 % interval of {names} overlaps its own, so these runs do not "
                 "separate them")
    text += "."
    if not decided:
        text += (" No claim about which model is better is settled here: do not pick a model "
                 "by these Dice scores.")
    if efficiency is not None and {"params_m", "display_name"} <= set(efficiency):
        small = efficiency.loc[efficiency["params_m"].idxmin()]
        large = efficiency.loc[efficiency["params_m"].idxmax()]
        text += (f" What carries over to real data is the cost: from {small['display_name']}'s "
                 f"{small['params_m']:.2f} M parameters to {large['display_name']}'s "
                 f"{large['params_m']:.0f} M (the efficiency chapter gives operations, memory "
                 "and speed).")
    return text


def claims_box(claims: Sequence[Claim]) -> HTMLTable:
    """Each claim of the paper, its verdict and the one number behind it, as an HTML table that
    fits the text column (three columns, the interval on a lighter second line)."""
    rows = []
    for c in claims:
        verdict = html.escape(str(c.verdict))
        if np.isfinite(c.difference):
            alone = interval_verdict(c.ci_low, c.ci_high, c.bound, c.above)
            label = comparison_words(c.comparisons[0].label) if c.comparisons else "Difference"
            if len(c.comparisons) > 1:
                head = min(c.comparisons, key=lambda k: k.difference)
                label = comparison_words(head.label) + " (the least favourable comparison)"
            number = (f"{html.escape(label)}: <b>{points(c.difference)}</b> Dice points"
                      f'<br><span class="spineseg-ci">95 % CI {points(c.ci_low)} to '
                      f"{points(c.ci_high)}")
            if c.bound:
                number += f"; “close” means under {points(c.bound, False)}"
            number += "</span>"
            if alone is not c.verdict:
                verdict += (f'<br><span class="spineseg-ci">the interval alone: '
                            f"{html.escape(str(alone))}</span>")
        else:
            number = "not measured: " + html.escape(c.caveats[0] if c.caveats else "no runs")
        rows.append(f'<tr><td>{html.escape(c.statement)}</td>'
                    f'<td class="spineseg-verdict-{VERDICT_CLASS[c.verdict]}">{verdict}</td>'
                    f"<td>{number}</td></tr>")
    head = ("<thead><tr><th>The paper's claim</th><th>Verdict here</th>"
            "<th>The number behind it</th></tr></thead>")
    return HTMLTable(f'<div class="spineseg-table-wrap spineseg-claims-box"><table '
                     f'class="spineseg-table">{head}<tbody>{"".join(rows)}</tbody></table></div>')
