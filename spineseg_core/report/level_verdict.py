"""A tested rule: does relabelling from the sacrum improve the all-levels-right rate?

The question is put as the claims chapter puts the paper's claims
(:mod:`spineseg_core.report.claims`): a difference with a 95 % interval, and one of three
verdicts (:class:`~spineseg_core.report.claims.Verdict`) by
:func:`~spineseg_core.report.claims.interval_verdict`: "holds" when the whole interval lies
above 0, "does not hold" when it lies wholly below, "not resolved at this scale" otherwise (an
interval touching 0, an exact tie included, or no runs).

**The difference.** Per model, the share of subjects with every level right after relabelling
minus before (:mod:`spineseg_core.levels.stats`: per seed pooled over subjects, mean over
seeds); the headline is its mean over the models, since the question is about the method, not
one model. **The interval.** Replicates of the study's bootstrap: one set of subject weights for
every model and both stages (all are scored on the same subjects), and per model one set of
seed weights shared by its two stages (the same runs); a model's seeds are weighted
independently of another's, as in :func:`spineseg_core.study.stats.paired_arms`.
Each model's own comparison, with its own verdict, is kept as evidence.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from spineseg_core.levels.stats import LEVEL, RATES, paired_stages, rate_frame
from spineseg_core.levels.study import display_name, model_order
from spineseg_core.report.claims import Claim, Comparison, Verdict, interval_verdict
from spineseg_core.study.stats import subject_weights

KEY = "relabel"
STATEMENT = "Relabelling from the sacrum improves the all-levels-right rate"
RULE = ("the share of subjects with every level right after relabelling minus before, mean "
        "over the models, with a 95 % interval paired on seeds and subjects; holds when the "
        "whole interval is above 0, does not hold when it is wholly below 0")

_STAGES = ("predicted", "relabelled")


def _interval(label: str, point: float, reps: np.ndarray) -> Comparison:
    alpha = (1 - LEVEL) / 2
    low, high = np.quantile(np.asarray(reps, dtype=float), [alpha, 1 - alpha])
    return Comparison(label, float(point), float(low), float(high))


def relabelling_verdict(subjects: pd.DataFrame | None, n_boot: int = 1000, seed: int = 0,
                        caveats: Sequence[str] = ()) -> Claim:
    """The verdict on :data:`STATEMENT` from a ``subjects.csv`` table (``model, seed,
    case_id, stage, all_right``); its ``comparisons`` are each model's difference. Missing
    input gives "not resolved at this scale" with a caveat naming it."""
    needed = {"model", "seed", "case_id", "stage", "all_right"}
    if subjects is None or not len(subjects) or not needed <= set(subjects.columns):
        return Claim(KEY, STATEMENT, RULE, Verdict.UNRESOLVED,
                     caveats=("Missing: the level tables (`spineseg levels`, subjects.csv).",
                              *caveats))
    table = subjects.assign(one=1)
    cases = sorted(table["case_id"].astype(str).unique())
    subject_w = subject_weights(np.random.default_rng(seed), n_boot, len(cases), RATES)
    comps, points, reps, n_seeds = [], [], [], []
    for i, model in enumerate(model_order(table["model"])):
        sub = table[table["model"] == model]
        before, after = (rate_frame(sub[sub["stage"] == s], "all_right", "one") for s in _STAGES)
        if not len(before) or not len(after):
            continue
        pb, pa, rb, ra = paired_stages(before, after, "recall", n_boot, seed + 1 + i,
                                       subject_w=subject_w, cases=cases)
        comps.append(_interval(display_name(model), pa - pb, ra - rb))
        points.append(pa - pb)
        reps.append(ra - rb)
        n_seeds.append(sub["seed"].nunique())
    if not comps:
        return Claim(KEY, STATEMENT, RULE, Verdict.UNRESOLVED,
                     caveats=("Missing: subjects scored both as predicted and relabelled.",
                              *caveats))
    head = _interval("mean over models", float(np.mean(points)), np.mean(reps, axis=0))
    return Claim(KEY, STATEMENT, RULE, interval_verdict(head.ci_low, head.ci_high),
                 head.difference, head.ci_low, head.ci_high, min(n_seeds), len(cases),
                 (f"Mean over {len(comps)} models.", *caveats), tuple(comps))


def model_verdicts(claim: Claim) -> pd.DataFrame:
    """Each model's comparison behind ``claim``: ``model, difference, ci_low, ci_high,
    verdict`` (its own interval against 0)."""
    return pd.DataFrame([{"model": c.label, "difference": c.difference, "ci_low": c.ci_low,
                          "ci_high": c.ci_high,
                          "verdict": str(interval_verdict(c.ci_low, c.ci_high))}
                         for c in claim.comparisons],
                        columns=["model", "difference", "ci_low", "ci_high", "verdict"])
