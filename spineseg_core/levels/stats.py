"""Rates and Dice with intervals over seeds and subjects: the study's bootstrap, reused.

The study's hierarchical Bayesian bootstrap (:func:`spineseg_core.study.stats.bootstrap_ci`,
its pieces :func:`~spineseg_core.study.stats.seed_subject_counts`,
:func:`~spineseg_core.study.stats.subject_weights` and
:func:`~spineseg_core.study.stats.weighted_replicates`) works on per-subject counts
``tp, fp, fn, tn`` per class. A rate is a recall of counts: successes as ``tp``, failures as
``fn``. So an identification rate is the recall of "levels named right" (:func:`rate_frame`),
the all-levels-right rate the recall of "subjects with every level right", and both get the
study's intervals unchanged: per seed the rate pooled over subjects, mean over seeds; per
replicate random weights on subjects and seeds.

**Resampling.** The rates take Efron's multinomial resampling of the subjects, not the
study's Bayesian weights (:data:`RATES`): a rate has one class, so the reason for positive
weights (classes dropping out of a mean) does not arise, and positive weights would give a
difference that rests on one changed subject an interval that excludes 0. Dice keeps the
study's weights.

**Before and after relabelling** are the same runs on the same subjects, so their difference
is paired on both levels: one set of subject weights, and one set of seed weights for both
stages (the seed weights are drawn from two copies of one generator state). See
:func:`paired_stages`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import pandas as pd

from spineseg_core.errors import ConfigError
from spineseg_core.levels.anatomy import SACRUM
from spineseg_core.study.stats import (
    Resampling,
    bootstrap_ci,
    seed_subject_counts,
    subject_weights,
    weighted_replicates,
)

LEVEL = 0.95
"""Coverage of every interval (as the claims chapter's)."""

POOLED = SACRUM
"""The class value under which a rate pooled over levels is counted: the bootstrap expects a
foreground class, and one class makes its mean over classes the pooled rate itself."""

RATES = Resampling.MULTINOMIAL
"""How every rate's bootstrap resamples the subjects (the module's docstring says why)."""

Interval = tuple[float, float, float]


def resampling(metric: str) -> Resampling:
    """The resampling of ``metric``: ``recall`` (a rate framed as counts) :data:`RATES`, any
    other (Dice) the study's Bayesian weights."""
    return RATES if metric == "recall" else Resampling.BAYESIAN


def rate_frame(table: pd.DataFrame, successes: str, trials: str,
               by_class: str | None = None) -> pd.DataFrame:
    """Per-subject counts for the bootstrap (``seed, case_id, class_value, tp, fp, fn, tn``):
    ``tp`` = ``successes``, ``fn`` = ``trials - successes``, summed per seed and subject (and
    per ``by_class`` value, else all under :data:`POOLED`)."""
    keys = ["seed", "case_id"]
    t = table.assign(class_value=table[by_class] if by_class else POOLED)
    g = t.groupby([*keys, "class_value"], sort=True)[[successes, trials]].sum().reset_index()
    return pd.DataFrame({"seed": g["seed"], "case_id": g["case_id"].astype(str),
                         "class_value": g["class_value"].astype(int),
                         "tp": g[successes].astype(np.int64),
                         "fp": np.zeros(len(g), np.int64),
                         "fn": (g[trials] - g[successes]).astype(np.int64),
                         "tn": np.zeros(len(g), np.int64)})


def _interval(point: float, reps: np.ndarray) -> Interval:
    if not np.isfinite(point):
        return (float("nan"),) * 3
    alpha = (1 - LEVEL) / 2
    low, high = np.quantile(reps, [alpha, 1 - alpha])
    return float(point), float(low), float(high)


def paired_stages(before: pd.DataFrame, after: pd.DataFrame, metric: str = "recall",
                  n_boot: int = 1000, seed: int = 0,
                  subject_w: np.ndarray | None = None, cases: Sequence[str] | None = None
                  ) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Points and replicates ``(point_before, point_after, reps_before, reps_after)`` of
    ``metric`` (``recall`` for a rate, ``dice``) of two stages of the same runs, paired on
    subjects and seeds. ``subject_w`` and ``cases`` let several models share one set of
    subject weights (default: drawn here over the subjects of both tables, resampled as
    :func:`resampling` says for ``metric``)."""
    if n_boot < 1:
        raise ConfigError(f"n_boot: expected a positive number of resamples, got {n_boot}")
    if set(before["seed"]) != set(after["seed"]):
        raise ConfigError("before and after: expected the same seeds, got "
                          f"{sorted(set(before['seed']))} and {sorted(set(after['seed']))}")
    rng = np.random.default_rng(seed)
    if cases is None:
        cases = sorted(set(before["case_id"].astype(str)) | set(after["case_id"].astype(str)))
    if subject_w is None:
        subject_w = subject_weights(rng, n_boot, len(cases), resampling(metric))
    twin = copy.deepcopy(rng)  # the same seed weights for both stages
    _, _, cb = seed_subject_counts(before, list(cases))
    _, _, ca = seed_subject_counts(after, list(cases))
    pb, rb = weighted_replicates(cb, subject_w, rng, (metric,))[metric]
    pa, ra = weighted_replicates(ca, subject_w, twin, (metric,))[metric]
    return pb, pa, rb, ra


def stage_intervals(before: pd.DataFrame, after: pd.DataFrame, metric: str = "recall",
                    n_boot: int = 1000, seed: int = 0) -> dict[str, Interval]:
    """``{"predicted", "relabelled", "difference"}`` → (point, low, high) of ``metric``;
    the difference is after minus before, its interval from the paired replicates."""
    pb, pa, rb, ra = paired_stages(before, after, metric, n_boot, seed)
    return {"predicted": _interval(pb, rb), "relabelled": _interval(pa, ra),
            "difference": _interval(pa - pb, ra - rb)}


def rate_interval(frame: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> Interval:
    """(point, low, high) of the rate of one :func:`rate_frame`
    (:func:`~spineseg_core.study.stats.bootstrap_ci`'s recall)."""
    return bootstrap_ci(frame, n_boot, seed, LEVEL, RATES)["recall"]
