"""The study's intervals: a paired subject bootstrap with the seed variance carried in full.

Every interval of the study (``models.csv``, the claims, the context verdicts, the levels'
rates) rests on per-subject counts ``tp, fp, fn, tn`` per class and seed
(:func:`seed_subject_counts`), scored as the runs score themselves (:func:`pooled_scores`: per
seed the counts pooled over subjects, the mean over the classes evaluated there).

**Two sources of spread.** The test subjects are a sample (another 40 would score otherwise),
and so are the seeds (another start trains another model). Both are carried:

* *subjects*: a Bayesian bootstrap (Rubin 1981: i.i.d. Exp(1) weights, :class:`Resampling`
  says why not Efron's counts for metrics over classes); every arm scored on one test set
  shares each replicate's weights (paired), and each seed's metric is recomputed from its
  weighted counts; the seeds are averaged with equal weights (:class:`SeedSamples`);
* *seeds*: the sample variance over the ``n`` seeds of the per-seed values, divided by ``n``
  (the variance of a mean of ``n`` seeds), with a Student t factor at ``n - 1`` degrees of
  freedom. A contrast of arms that ran the same seeds is taken per seed first (seed ``k`` of
  every model trains on the same split of the subjects, so the arms' seed effects may be
  correlated; the per-seed contrast's variance holds that, whatever it is); arms with
  different seeds add their own variances, at the smallest of their degrees of freedom.

:func:`combined_interval` adds them: each part's half-width at its own small-sample quantile
(the subjects' read from the bootstrap's percentiles, with ``t(n - 1)`` and the Bayesian
bootstrap's variance deficit made good), in quadrature. Without seed spread (one seed, or
identical seeds) it is the bootstrap's percentile interval itself; with spread it widens as a
t interval over 3 seeds must (t at 2 degrees of freedom is 4.30, not 1.96). The bootstrap that
preceded it weighted the seeds by Exp(1) draws too, which keeps (n - 1)/(n + 1) of the seed
variance, half at 3 seeds, and used no t factor: under a true tie it gave a firm verdict in
10-20 % of cases at seed SDs of 0.03-0.13 (``scripts/tie_simulation.py`` measures both).

Hand-written: ``scipy.stats.bootstrap`` resamples one level of independent observations and
has no weights; scipy gives the t and normal quantiles.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd
import torch
from scipy import stats as _sp

from spineseg_core.errors import ConfigError
from spineseg_core.labels import FOREGROUND

METRICS: tuple[str, ...] = ("dice", "miou", "fnr", "fpr", "recall")
"""The paper's Table 1 metrics, fractions in [0, 1]."""

_SCORE_OF = {"dice": "dice", "miou": "iou", "fnr": "fnr", "fpr": "fpr", "recall": "recall"}


def pooled_scores(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Table 1 metrics from pooled counts ``(..., 19, 4)`` (tp, fp, fn, tn), mean over classes.

    Uses :func:`spineseg_core.metrics.scores`, so absent classes are skipped exactly as in the
    runs' own ``metrics.json``.
    """
    from spineseg_core.metrics import Counts, scores

    t = torch.as_tensor(counts, dtype=torch.float64)
    s = scores(Counts(t[..., 0], t[..., 1], t[..., 2], t[..., 3]))
    return {m: torch.nanmean(s[_SCORE_OF[m]], dim=-1).numpy() for m in METRICS}


COUNT_COLUMNS: tuple[str, ...] = ("tp", "fp", "fn", "tn")


class Resampling(StrEnum):
    """How a bootstrap replicate weighs the subjects."""

    BAYESIAN = "bayesian"
    """i.i.d. Exp(1) weights (Rubin 1981): every subject in every replicate. The study's
    default, for metrics over classes (why: :func:`bootstrap_ci`)."""
    MULTINOMIAL = "multinomial"
    """Efron's counts: as many draws with replacement as there are subjects, so a replicate
    may leave a subject out. For a rate of subjects or levels (one class, so nothing can drop
    out of a mean): with positive weights, a difference that rests on a single subject that
    changed has every replicate on that subject's side, so its interval excludes 0 however
    few subjects changed. Left out in about a third of the replicates, one changed subject
    gives an interval that includes 0, as it should."""


def seed_subject_counts(per_case: pd.DataFrame, cases: Sequence[str] | None = None
                        ) -> tuple[list[int], list[str], np.ndarray]:
    """One model's counts per seed and evaluated subject, ``(n_seeds, n_subjects, 19, 4)``.

    The evaluated subjects are the ``case_id`` values of ``per_case`` (validation or test
    subjects, whichever the runs scored). A subject's counts are summed over the runs of a
    seed that evaluated it (one fold under cross-validation; every fold when all of them score
    one test set) and are zero where the seed did not evaluate it. A table without a ``seed``
    column is one seed (0). ``cases`` fixes the subjects and their order (zero counts for one
    the table lacks: several models set side by side). Returns the seeds, the subjects and the
    counts.
    """
    fg = per_case[per_case["class_value"].isin(FOREGROUND)]
    if "seed" not in fg:
        fg = fg.assign(seed=0)
    fg = fg.assign(case_id=fg["case_id"].astype(str))
    grouped = fg.groupby(["seed", "case_id", "class_value"])[list(COUNT_COLUMNS)].sum()
    seeds = sorted(grouped.index.get_level_values(0).unique())
    if cases is None:
        cases = sorted(grouped.index.get_level_values(1).unique(), key=str)
    full = pd.MultiIndex.from_product([seeds, cases, list(FOREGROUND)], names=grouped.index.names)
    arr = grouped.reindex(full, fill_value=0).to_numpy(np.int64)
    shape = (len(seeds), len(cases), len(FOREGROUND), len(COUNT_COLUMNS))
    return [int(s) for s in seeds], [str(c) for c in cases], arr.reshape(shape)


def subject_counts(per_case: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """Counts per evaluated subject ``(n_subjects, 19, 4)``, summed over the subject's runs."""
    _, cases, counts = seed_subject_counts(per_case)
    return cases, counts.sum(axis=0)


def _check(n_boot: int, level: float) -> None:
    if n_boot < 1:
        raise ConfigError(f"n_boot: expected a positive number of resamples, got {n_boot}")
    if not 0 < level < 1:
        raise ConfigError(f"level: expected a coverage between 0 and 1, got {level}")


def bootstrap_ci(per_case: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95, resampling: Resampling = Resampling.BAYESIAN
                 ) -> dict[str, tuple[float, float, float]]:
    """Point estimate and interval of each Table 1 metric of one model.

    **Point estimate.** Per seed, the metric of the counts pooled over the subjects that seed
    evaluated (mean over the classes evaluated there, as in the runs' ``metrics.json``); then
    the mean over seeds. With one fold per seed this is the mean over runs of ``metrics.json``.

    **Interval** (``n_boot`` replicates, generator seeded with ``seed``): the module's
    :func:`combined_interval` of the subject bootstrap (every evaluated subject gets a random
    weight, the same in every seed that evaluated it; subjects that only one seed evaluated get
    independent draws, i.e. a nested resampling) and the seeds' spread with its t factor,
    clipped to [0, 1], the metrics' range. One seed: the bootstrap over subjects only.

    **Why Bayesian weights.** A multinomial draw leaves about a third of the subjects out; a
    class evaluated only in those (a rare level, or a level the model predicts in a few
    subjects that lack it) then drops out of the replicate's mean over classes, which changes
    that mean's denominator. Such classes score low, so those replicates jump above the
    estimate and the interval is pushed away from it, up to missing it. Positive weights keep
    every subject, hence every class of the estimate, in every replicate. A rate framed as
    counts of one class (:func:`spineseg_core.levels.stats.rate_frame`) takes
    ``resampling=MULTINOMIAL`` instead (:class:`Resampling` says why).

    Returns ``{metric: (point, low, high)}``, all NaN without subjects.
    """
    _check(n_boot, level)
    _, _, counts = seed_subject_counts(per_case)
    nan3 = (float("nan"),) * 3
    if counts.shape[1] == 0:
        return {m: nan3 for m in METRICS}
    rng = np.random.default_rng(seed)
    subject_w = subject_weights(rng, n_boot, counts.shape[1], resampling)
    out = {}
    for m, arm in seed_samples(counts, subject_w).items():  # one arm: its own seeds
        if arm.n_seeds == 0:
            out[m] = nan3
            continue
        point, low, high = contrast_interval({0: arm}, {0: 1.0}, level)
        out[m] = (point, float(np.clip(low, 0.0, 1.0)), float(np.clip(high, 0.0, 1.0)))
    return out


def subject_weights(rng: np.random.Generator, n_boot: int, n_subjects: int,
                    resampling: Resampling = Resampling.BAYESIAN) -> np.ndarray:
    """Bootstrap weights of the subjects, ``(n_boot, n_subjects)``: i.i.d. Exp(1) or
    multinomial counts (:class:`Resampling`).

    The metrics are ratios, so a replicate's weights may be rescaled freely; dividing by the
    smallest keeps every nonzero weighted count >= 1, as metrics.scores expects of counts (it
    clamps denominators to 1, which would bend ratios of counts below 1). Counts are whole
    already."""
    if Resampling(resampling) is Resampling.MULTINOMIAL:
        if n_subjects == 0:
            return np.zeros((n_boot, 0))
        return rng.multinomial(n_subjects, np.full(n_subjects, 1 / n_subjects),
                               size=n_boot).astype(float)
    w = rng.standard_exponential((n_boot, n_subjects))
    return w / w.min(axis=1, keepdims=True)


def weighted_replicates(counts: np.ndarray, subject_w: np.ndarray, rng: np.random.Generator,
                        metrics: Sequence[str] = METRICS
                        ) -> dict[str, tuple[float, np.ndarray]]:
    """Point estimate and replicates of each metric of one model with Exp(1) weights on its
    seeds as well as on its subjects: what the levels' before/after comparison
    (:func:`spineseg_core.levels.stats.paired_stages`) pairs across its two stages by drawing
    both stages' seed weights from one generator state. Such seed weights keep only
    (n - 1)/(n + 1) of the seed variance (:func:`contrast_interval` carries it in full).

    ``counts`` are its ``(n_seeds, n_subjects, 19, 4)`` counts (:func:`seed_subject_counts`),
    ``subject_w`` the subjects' weights ``(n_boot, n_subjects)`` (:func:`subject_weights`;
    shared by every model of a paired comparison); the seeds' weights are drawn here from
    ``rng`` (none for one seed). Returns ``{metric: (point, replicates (n_boot,))}``; NaN and
    an array of NaN for a metric no seed scored."""
    n_boot = subject_w.shape[0]
    n_seeds = counts.shape[0]
    seed_w = rng.standard_exponential((n_boot, n_seeds)) if n_seeds > 1 else np.ones((n_boot, 1))
    per_seed_point = pooled_scores(counts.sum(axis=1))  # {m: (S,)}
    per_seed_boot = pooled_scores(np.einsum("bn,snck->bsck", subject_w, counts.astype(float)))
    out = {}
    for m in metrics:
        scored = np.isfinite(per_seed_point[m])  # a seed with no class scored for m
        if not scored.any():
            out[m] = (float("nan"), np.full(n_boot, np.nan))
            continue
        w = seed_w[:, scored]
        boot = (w * per_seed_boot[m][:, scored]).sum(axis=1) / w.sum(axis=1)
        out[m] = (float(per_seed_point[m][scored].mean()), boot)
    return out


@dataclass(frozen=True)
class SeedSamples:
    """One arm's metric: each seed's value (``values``, NaN where the seed scored no class) and
    its subject-bootstrap replicates (``reps``, ``(n_boot, n_seeds)``), the subject weights
    shared with every arm of the same test set."""

    values: np.ndarray
    reps: np.ndarray
    seeds: tuple[int, ...] = ()
    """The seed of each value (empty: ``0, 1, ...``)."""
    n_subjects: int = 0
    """Subjects of the bootstrap (0: not known)."""

    @property
    def seed_ids(self) -> tuple[int, ...]:
        """The seeds that scored the metric."""
        ids = self.seeds or tuple(range(len(self.values)))
        return tuple(int(k) for k, ok in zip(ids, self.scored) if ok)

    @property
    def scored(self) -> np.ndarray:
        return np.isfinite(self.values)

    @property
    def n_seeds(self) -> int:
        """Seeds that scored the metric."""
        return int(self.scored.sum())

    @property
    def point(self) -> float:
        """The mean over the scored seeds (NaN when none did)."""
        return float(self.values[self.scored].mean()) if self.n_seeds else float("nan")

    def subject_reps(self) -> np.ndarray:
        """Replicates of the mean over seeds (equal seed weights): the subjects' spread only."""
        if not self.n_seeds:
            return np.full(self.reps.shape[0], np.nan)
        return self.reps[:, self.scored].mean(axis=1)

    def seed_variance(self) -> float:
        """The variance of the mean over seeds due to the seeds: ``s^2 / n`` (0 for one seed,
        where it is not measured; the claims downgrade one-seed verdicts)."""
        n = self.n_seeds
        return float(np.var(self.values[self.scored], ddof=1) / n) if n > 1 else 0.0


def seed_samples(counts: np.ndarray, subject_w: np.ndarray, metrics: Sequence[str] = METRICS,
                 seeds: Sequence[int] = ()) -> dict[str, SeedSamples]:
    """:class:`SeedSamples` of each metric of one arm from its counts
    ``(n_seeds, n_subjects, 19, 4)`` (:func:`seed_subject_counts`, which also gives the
    ``seeds``) and the subjects' weights ``(n_boot, n_subjects)`` (:func:`subject_weights`)."""
    values = pooled_scores(counts.sum(axis=1))  # {m: (S,)}
    reps = pooled_scores(np.einsum("bn,snck->bsck", subject_w, counts.astype(float)))
    return {m: SeedSamples(np.asarray(values[m], dtype=float), np.asarray(reps[m], dtype=float),
                           tuple(int(k) for k in seeds), int(subject_w.shape[1]))
            for m in metrics}


def combined_interval(point: float, subject_reps: np.ndarray,
                      seed_parts: Sequence[tuple[float, int]], level: float = 0.95,
                      n_subjects: int | None = None) -> tuple[float, float]:
    """The interval of ``point`` from its subject-bootstrap replicates and its seed variance
    components ``(variance, degrees of freedom)`` (the module's docstring).

    Without seed variance (one seed, or identical seeds) it is the replicates' percentile
    interval. With it, each side's half-width is the two parts' half-widths added in
    quadrature, each at its own small-sample quantile: the subjects' ``t(n - 1) * sqrt(c) *
    h / z`` (``h`` the percentile half-width on that side, ``z`` the normal quantile, ``c =
    (n + 1) / (n - 1)`` since the Bayesian bootstrap's variance of a mean is ``(n - 1) / (n +
    1)`` of the usual estimate; ``n_subjects`` unknown: ``h``) and the seeds' ``t(d) * sqrt(V)``
    (``V`` the summed seed variance, ``d`` the smallest degrees of freedom of its parts). Adding
    quantiles in quadrature errs on the wide side where both parts matter; a pooled
    Welch-Satterthwaite t errs on the narrow side at 2 degrees of freedom (7.8 % firm verdicts
    on simulated ties at seed SD 0.03, ``scripts/tie_simulation.py``), which the study's
    verdicts cannot afford."""
    reps = np.asarray(subject_reps, dtype=float)
    if not math.isfinite(point) or not len(reps) or not np.isfinite(reps).all():
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    low, high = (float(q) for q in np.quantile(reps, [alpha, 1 - alpha]))
    parts = [(float(v), int(df)) for v, df in seed_parts if v > 0 and df > 0]
    var = sum(v for v, _ in parts)
    if var <= 0:
        return low, high
    z = float(_sp.norm.ppf(1 - alpha))
    n = n_subjects if n_subjects is not None and n_subjects > 1 else None
    subject_factor = (float(_sp.t.ppf(1 - alpha, n - 1)) * math.sqrt((n + 1) / (n - 1)) / z
                      if n else 1.0)
    seeds = float(_sp.t.ppf(1 - alpha, min(d for _, d in parts))) * math.sqrt(var)

    def half(h: float) -> float:
        return math.hypot(subject_factor * max(h, 0.0), seeds)

    return point - half(point - low), point + half(high - point)


def contrast_interval(arms: Mapping[Hashable, SeedSamples], weights: Mapping[Hashable, float],
                      level: float = 0.95) -> tuple[float, float, float]:
    """Point and :func:`combined_interval` of ``sum(weights[a] * arm a)`` over arms of one
    paired bootstrap (e.g. ``{a: 1, b: -1}`` for a difference, ``1/k`` and ``-1/j`` for a
    difference of two families' means). When every arm ran the same seeds (two or more), the
    seed part is that of the per-seed contrast (``n - 1`` degrees of freedom); otherwise each
    arm adds its own, weighted by the squared weight (:func:`seed_parts`)."""
    point = float(sum(w * arms[a].point for a, w in weights.items()))
    reps = sum(w * arms[a].subject_reps() for a, w in weights.items())
    n_subjects = min(arm.n_subjects for arm in arms.values()) if arms else None
    return (point, *combined_interval(point, np.asarray(reps, dtype=float),
                                      seed_parts(arms, weights), level, n_subjects or None))


def seed_parts(arms: Mapping[Hashable, SeedSamples], weights: Mapping[Hashable, float]
               ) -> list[tuple[float, int]]:
    """The seed variance components ``(variance, degrees of freedom)`` of a contrast: one, of
    the per-seed contrast, when its arms share their seeds; else one per arm."""
    used = {a: w for a, w in weights.items() if w != 0}
    ids = {arms[a].seed_ids for a in used}
    if len(ids) == 1 and len(shared := next(iter(ids))) > 1:
        per_seed = sum(w * arms[a].values[arms[a].scored] for a, w in used.items())
        n = len(shared)
        return [(float(np.var(per_seed, ddof=1) / n), n - 1)]
    return [(w * w * arms[a].seed_variance(), arms[a].n_seeds - 1) for a, w in used.items()]


def paired_arms(per_case: pd.DataFrame, arms: Sequence[str] = ("model",), metric: str = "dice",
                n_boot: int = 1000, seed: int = 0,
                resampling: Resampling = Resampling.BAYESIAN) -> dict[Hashable, SeedSamples]:
    """:class:`SeedSamples` of ``metric`` for several arms (models, model x loss...) at once,
    paired on subjects, for :func:`contrast_interval`.

    ``per_case`` stacks the per-subject counts of every arm (one arm per distinct value of the
    ``arms`` columns) with ``seed, case_id, class_value, tp, fp, fn, tn``. All arms are scored
    on one test set, so a subject gets one weight per replicate, the same in every arm (a
    subject hard for one model is hard for all: the pairing removes that shared part of the
    spread from a difference); an arm without a subject has zero counts there. A one-column
    ``arms`` gives plain labels, several give tuples.
    """
    _check(n_boot, 0.5)
    if metric not in METRICS:
        raise ConfigError(f"metric: expected one of {', '.join(METRICS)}, got {metric!r}")
    arms = list(arms)
    cases = sorted(per_case["case_id"].astype(str).unique())
    rng = np.random.default_rng(seed)
    subject_w = subject_weights(rng, n_boot, len(cases), resampling)
    key = arms[0] if len(arms) == 1 else arms
    out: dict[Hashable, SeedSamples] = {}
    for arm, grp in per_case.groupby(key, sort=True):
        seeds, _, counts = seed_subject_counts(grp, cases)
        out[arm] = seed_samples(counts, subject_w, (metric,), seeds)[metric]
    return out
