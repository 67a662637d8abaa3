"""How often do the verdict rules call a true tie? A simulation of the study's design.

Arms with exactly the same expected Dice are simulated as the study measures them: ``n_seeds``
runs per arm (each seed shifts the arm's Dice by a draw of SD ``seed_sd``) scored on
``n_subjects`` test subjects (a subject's difficulty is shared by every arm, each arm also has
its own per-subject effect, and every run its own per-subject noise). A subject's counts are
those of one class with Dice equal to its simulated Dice (``tp = 1000 D``, ``fp = fn =
1000 (1 - D)``), so the pooled Dice of a seed is the mean over its subjects. A *firm* verdict is
an interval that excludes 0 (:func:`spineseg_core.report.claims.interval_verdict`'s
"holds" or "does not hold"); for a true tie it should come in about 5 % of cases.

Two rules are measured on the same draws: :data:`Method.T_SEEDS`, the study's
(:func:`spineseg_core.study.stats.contrast_interval`), and :data:`Method.EXP_SEEDS`, the
percentile interval of a bootstrap that also puts Exp(1) weights on the seeds (the one used
before, :func:`spineseg_core.study.stats.weighted_replicates`). Used by
``tests/test_stats.py`` and ``scripts/tie_simulation.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np

from spineseg_core.study.stats import (
    Resampling,
    contrast_interval,
    seed_samples,
    subject_weights,
    weighted_replicates,
)


class Method(StrEnum):
    """How a simulated contrast gets its interval."""

    T_SEEDS = "t-seeds"
    EXP_SEEDS = "exp-seeds"


def tie_counts(rng: np.random.Generator, n_arms: int, n_seeds: int = 3, n_subjects: int = 40,
               seed_sd: float = 0.05, subject_sd: float = 0.10, arm_subject_sd: float = 0.08,
               noise_sd: float = 0.03, mean: float = 0.65) -> list[np.ndarray]:
    """Counts ``(n_seeds, n_subjects, 1, 4)`` of ``n_arms`` arms with one expected Dice."""
    shared = rng.normal(0.0, subject_sd, n_subjects)
    out = []
    for _ in range(n_arms):
        own = rng.normal(0.0, arm_subject_sd, n_subjects)
        seeds = rng.normal(0.0, seed_sd, (n_seeds, 1))
        noise = rng.normal(0.0, noise_sd, (n_seeds, n_subjects))
        dice = np.clip(mean + shared + own + seeds + noise, 0.02, 0.98)
        tp = np.round(1000 * dice)
        f = 1000 - tp
        counts = np.stack([tp, f, f, np.full_like(tp, 1e5)], axis=-1)[:, :, None, :]
        out.append(counts.astype(np.int64))
    return out


def contrast(arms: Sequence[np.ndarray], weights: Sequence[float], method: Method,
             rng: np.random.Generator, n_boot: int = 1000, level: float = 0.95
             ) -> tuple[float, float, float]:
    """Point and interval of ``sum(weights * arms)`` (Dice) by ``method``, paired subjects."""
    subject_w = subject_weights(rng, n_boot, arms[0].shape[1], Resampling.BAYESIAN)
    if Method(method) is Method.T_SEEDS:
        samples = {i: seed_samples(c, subject_w, ("dice",))["dice"] for i, c in enumerate(arms)}
        return contrast_interval(samples, dict(enumerate(weights)), level)
    point, reps = 0.0, np.zeros(n_boot)
    for c, w in zip(arms, weights):
        p, r = weighted_replicates(c, subject_w, rng, ("dice",))["dice"]
        point, reps = point + w * p, reps + w * r
    alpha = (1 - level) / 2
    low, high = np.quantile(reps, [alpha, 1 - alpha])
    return point, float(low), float(high)


def firm_rate(seed_sd: float, n_ties: int, method: Method, *, family: bool = False,
              seed: int = 0, n_seeds: int = 3, n_subjects: int = 40, n_boot: int = 1000) -> float:
    """Share of ``n_ties`` simulated exact ties given a firm verdict: a pair of arms, or with
    ``family`` two families of two arms each (claim 1's difference of family means)."""
    rng = np.random.default_rng(seed)
    n_arms, weights = (4, (0.5, 0.5, -0.5, -0.5)) if family else (2, (1.0, -1.0))
    firm = 0
    for _ in range(n_ties):
        arms = tie_counts(rng, n_arms, n_seeds, n_subjects, seed_sd)
        _, low, high = contrast(arms, weights, method, rng, n_boot)
        firm += bool(low > 0 or high < 0)
    return firm / n_ties
