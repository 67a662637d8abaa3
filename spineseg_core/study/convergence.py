"""How fast each model converges, and the paper's convergence statement as a testable rule.

The paper (section 4.5, Figure 19) says its backbone models converged at about 40 epochs and
the U-Net family at 100-120. Here a model's *convergence steps* are the optimiser steps its run
at the budget B took to first reach :data:`REACH_FRACTION` of that run's best validation Dice
(:func:`steps_to_reach`; the run's history has a ``step`` column under a step budget). The
claim is about families of models, so the models are the units: an exact permutation test
(:func:`family_permutation_test`) asks whether the backbone models' median convergence steps
are below the U-Net family's by more than a random split of the same models into families of
the same sizes would give. Each direction is tested at :data:`ALPHA` / 2, so that on exact ties
(every model drawn from one distribution) a firm verdict comes at most :data:`ALPHA` of the time
whatever the direction, which ``tests/test_convergence_claim.py`` checks by simulation.

And how much budget a ranking needs (:func:`rank_vs_budget`): the rank correlation, on
validation, between the models' ranking at each complete budget and their ranking at B.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from spineseg_core.errors import ConfigError
from spineseg_core.study.plateau import MIN_PLATEAUED, plateaued_count

REACH_FRACTION = 0.95
"""A run has converged, for this measure, once its validation Dice reaches this share of its
best: near the top of its curve without waiting for the last fractions of a point that the
decaying learning rate adds at the end of every run."""

ALPHA = 0.05
"""Two-sided level of the family test: :data:`ALPHA` / 2 each way."""


def steps_to_reach(history: pd.DataFrame, fraction: float = REACH_FRACTION) -> float:
    """The first ``step`` at which validation ``dice`` reaches ``fraction`` of its best in
    ``history`` (one run's ``history.csv``; rows without validation are skipped); NaN for a run
    with no validated row or no ``step`` column (an epoch-budget run)."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"fraction: expected a share in (0, 1], got {fraction}")
    if "step" not in history or "dice" not in history:
        return math.nan
    done = history.dropna(subset=["step", "dice"]).sort_values("step")
    if done.empty or not done["dice"].max() > 0:
        return math.nan
    reached = done[done["dice"] >= fraction * done["dice"].max()]
    return float(reached["step"].iloc[0])


def convergence_steps(history: pd.DataFrame, fraction: float = REACH_FRACTION) -> pd.DataFrame:
    """Per model (``model``, ``seed`` columns of a stacked ``history.csv``): each seed's
    :func:`steps_to_reach`, and their mean as ``steps``."""
    lacking = [c for c in ("model", "seed") if c not in history]
    if lacking:
        raise ConfigError(f"history: lacks the columns {lacking}")
    per_seed = (history.groupby(["model", "seed"], sort=False)
                .apply(lambda h: steps_to_reach(h, fraction), include_groups=False)
                .rename("steps").reset_index())
    return (per_seed.groupby("model", sort=False)["steps"].agg(["mean", "count"])
            .rename(columns={"mean": "steps", "count": "seeds"}).reset_index())


@dataclass(frozen=True)
class FamilyTest:
    """The permutation test of :func:`family_permutation_test`."""

    difference: float
    """Median steps of the U-Net family minus those of the backbone models (> 0: backbone
    models converge sooner)."""
    p_backbone_faster: float
    p_unet_faster: float
    n_backbone: int
    n_unet: int
    permutations: int

    @property
    def verdict(self) -> str:
        """``"holds"``, ``"does not hold"`` or ``"not resolved at this scale"``."""
        if self.p_backbone_faster < ALPHA / 2:
            return "holds"
        if self.p_unet_faster < ALPHA / 2:
            return "does not hold"
        return "not resolved at this scale"


@functools.cache
def _splits(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every way to pick ``k`` of ``n`` positions: the picked and the other positions."""
    every = np.arange(n)
    chosen = np.array(list(itertools.combinations(every, k)))
    return chosen, np.array([np.setdiff1d(every, c) for c in chosen])


def family_permutation_test(steps: Mapping[str, float], family: Mapping[str, str],
                            backbone: str, unet: str) -> FamilyTest:
    """Exact permutation test of the families' median convergence steps: every split of the
    models into two groups of the families' sizes, the statistic (U-Net family median minus
    backbone median) of each, and the shares at least as extreme as the observed one in each
    direction (ties count against a verdict). Models whose steps are NaN are left out."""
    names = [m for m, s in steps.items() if math.isfinite(s) and family.get(m) in (backbone, unet)]
    values = np.array([steps[m] for m in names], dtype=float)
    is_bb = np.array([family[m] == backbone for m in names], dtype=bool)
    n_bb, n_un = int(is_bb.sum()), int((~is_bb).sum())
    if n_bb < 2 or n_un < 2:
        raise ConfigError(f"family test: needs two models of each family with convergence "
                          f"steps, got {n_bb} backbone and {n_un} U-Net-family models")

    chosen, rest = _splits(len(names), n_bb)
    d = np.median(values[rest], axis=1) - np.median(values[chosen], axis=1)
    observed = float(np.median(values[~is_bb]) - np.median(values[is_bb]))
    eps = 1e-9 * max(1.0, float(np.abs(d).max()))
    return FamilyTest(observed, float((d >= observed - eps).mean()),
                      float((d <= observed + eps).mean()), n_bb, n_un, len(d))


RANK_COLUMNS: tuple[str, ...] = ("budget", "steps", "models", "spearman", "kendall")


def rank_vs_budget(scores: Mapping[str, pd.Series], reference: str,
                   steps: Mapping[str, float] | None = None) -> pd.DataFrame:
    """For each budget of ``scores`` (name -> validation Dice per model), the rank correlations
    (Spearman, Kendall) of its ranking of the models with the ranking at ``reference`` (B), on
    the models both have; ``steps`` gives each budget's optimiser steps for the table, in the
    order of ``scores``."""
    if reference not in scores:
        raise ConfigError(f"rank vs budget: the reference budget {reference!r} has no scores")
    ref = scores[reference].dropna()
    rows = []
    for name, series in scores.items():
        common = ref.index.intersection(series.dropna().index)
        rho = tau = math.nan
        if len(common) >= 3:
            rho = float(stats.spearmanr(series[common], ref[common]).statistic)
            tau = float(stats.kendalltau(series[common], ref[common]).statistic)
        rows.append({"budget": name, "steps": (steps or {}).get(name, math.nan),
                     "models": len(common), "spearman": rho, "kendall": tau})
    return pd.DataFrame(rows, columns=list(RANK_COLUMNS))


def simulate_tie_verdicts(n_unet: int = 5, n_backbone: int = 7, trials: int = 2000,
                          seed: int = 0, spread: Sequence[float] = (0.1, 0.3, 0.6)
                          ) -> pd.DataFrame:
    """Share of firm verdicts of :func:`family_permutation_test` when every model's steps
    come from one log-normal distribution (an exact tie of the families), per spread
    (SD of log steps): the rule's calibration."""
    rng = np.random.default_rng(seed)
    names = [f"u{i}" for i in range(n_unet)] + [f"b{i}" for i in range(n_backbone)]
    family = {n: ("unet" if n.startswith("u") else "backbone") for n in names}
    rows = []
    for sd in spread:
        firm = 0
        for _ in range(trials):
            steps = dict(zip(names, np.round(1000 * np.exp(rng.normal(0, sd, len(names))), -1),
                             strict=True))
            firm += family_permutation_test(steps, family, "backbone", "unet").verdict != \
                "not resolved at this scale"
        rows.append({"log_sd": sd, "trials": trials, "firm_share": firm / trials})
    return pd.DataFrame(rows)


CONVERGENCE_STATEMENT = ("the backbone models converge in fewer optimiser steps than the "
                         "U-Net family")
"""The paper's convergence statement (section 4.5, Figure 19: about 40 epochs against 100-120),
as the fifth claim."""

CONVERGENCE_RULE = (f"per model, the optimiser steps its run at the budget took to reach "
                    f"{REACH_FRACTION:.0%} of its best validation Dice; an exact permutation "
                    f"test of the families' medians over the models; holds when the backbone "
                    f"models are sooner at p < {ALPHA / 2}, does not hold when the U-Net family "
                    f"is, and needs at least {MIN_PLATEAUED} of the models plateaued at the budget")

@dataclass(frozen=True)
class ConvergenceClaim:
    """The fifth claim's verdict and its evidence (caveats first on the page)."""

    verdict: str
    steps: pd.DataFrame
    test: FamilyTest | None
    caveats: tuple[str, ...]
    statement: str = CONVERGENCE_STATEMENT
    rule: str = CONVERGENCE_RULE


def convergence_claim(history: pd.DataFrame, plateau: pd.DataFrame | None,
                      family: Mapping[str, str], backbone: str, unet: str,
                      min_plateaued: int = MIN_PLATEAUED,
                      names: Mapping[str, str] | None = None) -> ConvergenceClaim:
    """The fifth claim from the runs at B (``history``: their stacked ``history.csv`` with
    ``model, seed, step, dice``) and the plateau labels (``plateau.csv``): the family test on
    :func:`convergence_steps`, "not resolved at this scale" when fewer than ``min_plateaued``
    models plateaued, when a model was not run at the budget (a seed under way) or has no
    step-budget curve, or with one seed only if the test is not already unresolved. ``names``
    maps models to the names the caveats use (default: the models' own)."""
    unresolved = "not resolved at this scale"
    steps = convergence_steps(history) if len(history) else pd.DataFrame(
        columns=["model", "steps", "seeds"])
    caveats: list[str] = []
    name = names or {}
    have = {m for m, s in zip(steps["model"], steps["steps"]) if math.isfinite(s)}
    run = set(history["model"]) if "model" in history else set()
    missing = [m for m in family if family[m] in (backbone, unet) and m not in have]
    not_run = [name.get(m, m) for m in missing if m not in run]
    stepless = [name.get(m, m) for m in missing if m in run]
    if not_run:
        caveats.append(f"not yet run at the budget: {', '.join(not_run)}")
    if stepless:
        caveats.append(f"no curve under a step budget for {', '.join(stepless)}")
    if plateau is None or not len(plateau):
        caveats.append("no plateau labels (the runs at B/2 are missing)")
    else:
        done, measured = plateaued_count(plateau)
        if done < min_plateaued:
            caveats.append(f"only {done} of {measured} models plateaued at the budget (at least "
                           f"{min_plateaued} needed): a model still climbing has not converged")
    test = None
    try:
        test = family_permutation_test(dict(zip(steps["model"], steps["steps"])), family,
                                       backbone, unet)
    except ConfigError as e:
        caveats.append(str(e))
    verdict = test.verdict if test is not None and not caveats else unresolved
    if test is not None and caveats and test.verdict != unresolved:
        caveats.insert(0, f"the test alone says \"{test.verdict}\"")
    seeds = int(steps["seeds"].min()) if len(steps) else 0
    if seeds < 2:
        caveats.append("one seed per model: each model's convergence steps carry its seed's "
                       "noise; the test treats the models, not the seeds, as the sample")
    return ConvergenceClaim(verdict, steps, test, tuple(caveats))
