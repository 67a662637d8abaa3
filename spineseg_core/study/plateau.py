"""Has a model plateaued at its budget? Complete runs at B and B/2 compared (issue 24, part 2).

Under a learning rate that decays to zero at the budget (:func:`spineseg_core.training.config.lr_factor`)
every validation curve flattens at its end, whatever the model has learned, so a flat tail
proves nothing. The rule compares two *complete* runs instead: the run at the budget B and a run
at B/2 with its own full schedule (it also ends annealed), same model and seed. A model has
plateaued at B when its validation score at B is within ``tolerance`` (one Dice point by
default) of its score at B/2: doubling the budget bought nothing that matters. A score at B
lower than at B/2 by more than the tolerance also counts as plateaued (more steps did not help;
the evidence says so). A model without both runs at a common seed, or whose runs did not make
their budgets' steps, is *not measured*.

The B/2 runs are a side group of the study, ``<profile>-half`` (:data:`HALF_VARIANT`), made by
``spineseg study --variant half -p steps <B/2>`` (:func:`half_steps`); ``spineseg aggregate``
writes the labels to ``plateau.csv`` (:func:`plateau_table`) and keeps the group out of the
side studies of ``variants.csv``. The score is the run's best validation Dice (``val_dice`` of
``metrics.json``, the score that chose its checkpoint); the test set plays no part.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum

import numpy as np
import pandas as pd

from spineseg_core.errors import ConfigError

HALF_VARIANT = "half"
"""The variant (group ``<profile>-half``) of the runs at half the profile's budget."""

QUARTER_VARIANT = "quarter"
"""The variant (group ``<profile>-quarter``) of the runs at a quarter of the budget: the old B/2
runs, moved aside when the budget is doubled (:mod:`.budget_raise`)."""

PLATEAU_TOLERANCE = 0.01
"""How close (validation Dice, 0-1) the score at B must be to that at B/2: about one point, the
order of the between-seed spread of the best models' validation Dice."""

PLATEAU_COLUMNS: tuple[str, ...] = ("model", "label", "seeds", "steps", "half_steps",
                                    "val_dice", "half_val_dice", "gain", "tolerance", "evidence",
                                    "quarter_steps", "quarter_val_dice")
"""Columns of ``plateau.csv``."""


class Plateau(StrEnum):
    """A model's label under the rule."""

    PLATEAUED = "plateaued"
    NOT_PLATEAUED = "not plateaued"
    NOT_MEASURED = "not measured"


MIN_PLATEAUED = 10
"""Of the paper's twelve models, how many must plateau at B for B to stand as the study's budget
(issue 24); the fifth claim needs as many (:mod:`spineseg_core.study.convergence`): a model
still climbing at B has not converged, so its convergence steps are only a lower bound."""


class BudgetVerdict(StrEnum):
    """What the plateau labels say of the budget B so far."""

    STANDS = "stands"
    RAISED = "does not stand and is raised once"
    PENDING = "is not decided until the models not yet measured are"


def budget_verdict(table: pd.DataFrame | None, models: Sequence[str],
                   minimum: int = MIN_PLATEAUED) -> tuple[BudgetVerdict, int, int]:
    """The budget's verdict from ``plateau.csv`` over ``models`` (the paper's twelve), with the
    counts plateaued and measured: it stands once ``minimum`` plateaued, is raised once too many
    have not for the rest to make up, and is pending in between (a seed under way)."""
    ours = (table[table["model"].isin(models)] if table is not None and len(table)
            else pd.DataFrame(columns=["model", "label"]))
    done, measured = plateaued_count(ours)
    if done >= minimum:
        return BudgetVerdict.STANDS, done, measured
    if done + (len(models) - measured) < minimum:
        return BudgetVerdict.RAISED, done, measured
    return BudgetVerdict.PENDING, done, measured


def half_steps(steps: int) -> int:
    """The budget of the B/2 runs for a budget of ``steps`` (rounded down, at least 1)."""
    if steps < 2:
        raise ConfigError(f"steps: a budget of at least 2 steps is needed to halve, got {steps}")
    return steps // 2


def plateau_label(val_dice: float, half_val_dice: float,
                  tolerance: float = PLATEAU_TOLERANCE) -> Plateau:
    """The label from the two scores: plateaued when the run at B gains at most ``tolerance``
    over the run at B/2, not plateaued when it gains more, not measured when either is
    missing (NaN)."""
    if not (math.isfinite(val_dice) and math.isfinite(half_val_dice)):
        return Plateau.NOT_MEASURED
    gain = val_dice - half_val_dice
    return Plateau.PLATEAUED if gain <= tolerance + 1e-12 else Plateau.NOT_PLATEAUED


def _steps(frame: pd.DataFrame) -> set[int]:
    if "steps_completed" not in frame:
        return set()
    return {int(s) for s in frame["steps_completed"].dropna()}


def plateau_table(full: pd.DataFrame, half: pd.DataFrame, models: Sequence[str] | None = None,
                  tolerance: float = PLATEAU_TOLERANCE,
                  quarter: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every model labelled from the runs at B (``full``) and at B/2 (``half``), frames of
    ``runs.csv``'s form (``model``, ``seed``, ``val_dice``, ``steps_completed`` where
    recorded). Scores are the means over the seeds both groups ran; ``models`` (default: those
    of ``full`` then ``half``, in order) fixes the rows, so a model with no run is listed as not
    measured. The ``evidence`` column says why, in words. ``quarter``: the runs at B/4 of a
    doubled budget (:mod:`.budget_raise`), if any, whose mean validation Dice and steps over
    the same seeds are added for the ranking against the budget; they take no part in the
    label."""
    if tolerance <= 0:
        raise ConfigError(f"tolerance: expected a positive Dice difference, got {tolerance}")
    for name, frame in (("full", full), ("half", half)):
        lacking = [c for c in ("model", "seed", "val_dice") if c not in frame]
        if lacking:
            raise ConfigError(f"{name}: the runs lack the columns {lacking}")
    names = list(models) if models is not None else list(
        dict.fromkeys([*full["model"], *half["model"]]))
    rows = []
    for model in names:
        a, b = full[full["model"] == model], half[half["model"] == model]
        seeds = sorted(set(a["seed"]) & set(b["seed"]))
        row = {"model": model, "seeds": ",".join(str(int(s)) for s in seeds),
               "steps": math.nan, "half_steps": math.nan, "val_dice": math.nan,
               "half_val_dice": math.nan, "gain": math.nan, "tolerance": tolerance}
        if not len(a) or not len(b) or not seeds:
            which = ("no run at B" if not len(a) else "no run at B/2" if not len(b)
                     else "no seed run at both B and B/2")
            rows.append({**row, "label": str(Plateau.NOT_MEASURED), "evidence": which})
            continue
        a, b = a[a["seed"].isin(seeds)], b[b["seed"].isin(seeds)]
        sa, sb = _steps(a), _steps(b)
        if len(sa) > 1 or len(sb) > 1 or (sa and sb and next(iter(sb)) != half_steps(
                next(iter(sa)))):
            rows.append({**row, "label": str(Plateau.NOT_MEASURED),
                         "evidence": f"the runs made {sorted(sa)} and {sorted(sb)} steps, not "
                                     "one budget B and its half"})
            continue
        full_dice, half_dice = float(a["val_dice"].mean()), float(b["val_dice"].mean())
        label = plateau_label(full_dice, half_dice, tolerance)
        gain = full_dice - half_dice
        d = decimals_apart(gain, tolerance)
        if label is Plateau.NOT_MEASURED:
            evidence = "a validation score is missing"
        elif label is Plateau.NOT_PLATEAUED:
            evidence = (f"doubling the budget gained {100 * gain:.{d}f} Dice points on "
                        f"validation, more than {100 * tolerance:.{d}f}")
        elif gain < -tolerance:
            evidence = (f"the run at B scores {100 * -gain:.{d}f} points below the run at B/2: "
                        "more steps did not help")
        else:
            evidence = (f"doubling the budget changed validation Dice by {100 * gain:+.{d}f} "
                        f"points, within {100 * tolerance:.{d}f}")
        rows.append({**row, "label": str(label), "evidence": evidence,
                     "steps": next(iter(sa), math.nan), "half_steps": next(iter(sb), math.nan),
                     "val_dice": full_dice, "half_val_dice": half_dice, "gain": gain,
                     **_quarter(quarter, model, seeds, next(iter(sb), None))})
    return pd.DataFrame(rows, columns=list(PLATEAU_COLUMNS))


def decimals_apart(gain: float, tolerance: float, most: int = 3) -> int:
    """Decimals (1 to ``most``) with which ``gain`` and ``tolerance``, as Dice points (x 100),
    print as different numbers: a gain of 1.02 points against a tolerance of 1.0 reads
    "1.02, more than 1.00", not "1.0, more than 1.0". The sign of ``gain`` is ignored (a loss
    is printed beside the tolerance too); one decimal where the two are equal."""
    for d in range(1, most + 1):
        if round(100 * abs(gain), d) != round(100 * tolerance, d):
            return d
    return 1 if abs(gain) == tolerance else most


def _quarter(quarter: pd.DataFrame | None, model: str, seeds: Sequence[int],
             half: int | None) -> dict[str, float]:
    """A model's mean validation Dice and steps at B/4 over ``seeds``, NaN where it has no run
    at B/4 at every one of them or its runs did not make half the B/2 runs' ``half`` steps."""
    if quarter is None or not len(quarter):
        return {}
    q = quarter[(quarter["model"] == model) & quarter["seed"].isin(seeds)]
    steps = _steps(q)
    if set(q["seed"]) != set(seeds) or len(steps) > 1 or (
            half is not None and steps and steps != {half_steps(half)}):
        return {}
    return {"quarter_val_dice": float(q["val_dice"].mean()),
            "quarter_steps": next(iter(steps), math.nan)}


END_POINTS = 3
"""Validations averaged for a run's end-of-schedule score (:func:`end_scores`)."""

END_COLUMNS: tuple[str, ...] = ("end_label", "end_val_dice", "end_half_val_dice", "end_gain",
                                 "end_val_loss", "end_half_val_loss")
"""The columns ``spineseg aggregate`` adds to ``plateau.csv`` from :func:`end_labels`."""


def _validations(history: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``history.csv`` rows that are validations (a ``dice``), in epoch order, and the keys of
    one run (``model``, ``seed`` and ``fold`` where there is one); one line naming the columns
    it lacks otherwise."""
    lacking = [c for c in ("model", "seed", "dice") if c not in history]
    if lacking:
        raise ConfigError(f"history: lacks the columns {lacking}")
    keys = ["model", "seed", *(["fold"] if "fold" in history else [])]
    scored = history.dropna(subset=["dice"])
    return (scored.sort_values("epoch", kind="stable") if "epoch" in scored else scored), keys


def _end_means(history: pd.DataFrame, column: str, points: int) -> pd.Series:
    """The mean ``column`` of each run's last ``points`` validations (rows with a ``dice``),
    indexed by ``model`` and ``seed`` (folds averaged); NaN where ``history`` lacks it."""
    scored, keys = _validations(history)
    if column not in scored:
        scored = scored.assign(**{column: math.nan})
    ends = scored.groupby(keys, sort=False)[column].apply(lambda d: d.iloc[-points:].mean())
    return ends.groupby(level=["model", "seed"], sort=False).mean()


def end_scores(history: pd.DataFrame, points: int = END_POINTS) -> pd.DataFrame:
    """Each run's end-of-schedule score: the mean validation Dice of its last ``points``
    validations (``history.csv`` rows with a ``dice``), one row per ``model`` and ``seed``
    (folds averaged) as ``val_dice``.

    The rule's score, a run's best validation Dice, is a maximum over its validations; a run at
    B validates twice as often as one at B/2, so where validation Dice moves from one epoch to
    the next by more than the tolerance, noise alone lifts B's maximum more. The end of an annealed schedule
    is the point each run converges to, and averaging a few validations there damps the noise.
    """
    if points < 1:
        raise ConfigError(f"points: expected at least 1 validation, got {points}")
    return _end_means(history, "dice", points).rename("val_dice").reset_index()


def end_labels(full: pd.DataFrame, half: pd.DataFrame, full_history: pd.DataFrame,
               half_history: pd.DataFrame, models: Sequence[str] | None = None,
               tolerance: float = PLATEAU_TOLERANCE, points: int = END_POINTS) -> pd.DataFrame:
    """The plateau rule applied to the runs' end-of-schedule scores (:func:`end_scores`)
    instead of their best ones: per model, :data:`END_COLUMNS` (the label, both scores and the
    gain), a check of how much the label rests on validation noise, and the mean validation
    loss at the end of each schedule (``end_val_loss``, ``end_half_val_loss``; seeds averaged,
    NaN without a ``val_loss`` column), which settles smoothly where Dice still swings.
    ``full``/``half`` are the runs at B and B/2 as for :func:`plateau_table`, whose steps
    checks apply alike."""
    def rescored(runs: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
        ends = end_scores(history, points)
        return runs.drop(columns=["val_dice"]).merge(ends, on=["model", "seed"], how="left")

    def end_loss(history: pd.DataFrame) -> pd.Series:
        return _end_means(history, "val_loss", points).groupby(level="model").mean()

    table = plateau_table(rescored(full, full_history), rescored(half, half_history), models,
                          tolerance)
    return pd.DataFrame({"model": table["model"], "end_label": table["label"],
                         "end_val_dice": table["val_dice"],
                         "end_half_val_dice": table["half_val_dice"],
                         "end_gain": table["gain"],
                         "end_val_loss": table["model"].map(end_loss(full_history)),
                         "end_half_val_loss": table["model"].map(end_loss(half_history))})


def after_best(history: pd.DataFrame, points: int = END_POINTS) -> pd.DataFrame:
    """How each run ends against its best validation: one row per ``model`` and ``seed``
    (folds averaged) with ``best_val_dice``, ``end_val_dice`` (the end score,
    :func:`end_scores`), ``drop`` (best minus end, in Dice) and ``loss_above_min``, the mean
    validation loss of the last ``points`` validations minus the run's lowest (NaN without a
    ``val_loss`` column). Where the best lies is ``runs.csv``'s ``best_epoch``.

    A run whose Dice ends well below its best while its validation loss ends near its lowest
    has not overfitted (that would raise the loss): its best was a high point of the epochs
    whose learning rate is high and whose Dice swings, not a level the run holds; the
    checkpoint the test scores is taken there."""
    if points < 1:
        raise ConfigError(f"points: expected at least 1 validation, got {points}")
    scored, keys = _validations(history)
    if "val_loss" not in scored:
        scored = scored.assign(val_loss=math.nan)
    lowest = scored.groupby(keys, sort=False).agg(best=("dice", "max"), low=("val_loss", "min"))
    lowest = lowest.groupby(level=["model", "seed"], sort=False).mean()
    runs = pd.DataFrame({
        "best_val_dice": lowest["best"],
        "end_val_dice": _end_means(scored, "dice", points),
        "loss_above_min": _end_means(scored, "val_loss", points) - lowest["low"]})
    runs.insert(2, "drop", runs["best_val_dice"] - runs["end_val_dice"])
    return runs.reset_index()


def flat_part(points: int) -> int:
    """How many of a run's ``points`` validations the noise model treats as its flat part: all
    but its first quarter, the steep start. A run's best score sits after that quarter (its
    ``best_epoch`` in ``runs.csv`` says where), often in the run's middle, where the learning
    rate is still high and validation Dice moves most; a window of the second half alone
    misses those epochs and understates the noise."""
    return points - points // 4


def validation_noise(history: pd.DataFrame) -> pd.DataFrame:
    """How much validation Dice moves from one epoch to the next over the flat part of each run
    (:func:`flat_part`; ``history.csv`` rows of one group): one row per ``model`` and ``seed``
    (folds averaged) with ``points``, the run's validations, and ``noise_sd``, the standard
    deviation of one validation about the curve, estimated from successive differences (their
    SD over sqrt 2: independent noise of SD s gives differences of SD s sqrt 2), so that a
    steady climb or decline, whose differences are all alike, is not counted as noise; NaN
    with fewer than three validations in that part.

    One SD per run is a simplification: under the decaying schedule, validation Dice moves
    most at mid-run and hardly at the end, so it is too small for the epochs that hold a
    run's best score and too large for its last ones."""
    scored, keys = _validations(history)
    rows = []
    for key, run in scored.groupby(keys, sort=False):
        dice = run["dice"].to_numpy(dtype=float)
        steps = np.diff(dice[len(dice) - flat_part(len(dice)):])
        sd = float(np.sqrt(steps.var(ddof=1) / 2)) if len(steps) > 1 else math.nan
        rows.append({"model": key[0], "seed": key[1], "points": len(dice), "noise_sd": sd})
    runs = pd.DataFrame(rows, columns=["model", "seed", "points", "noise_sd"])
    return runs.groupby(["model", "seed"], sort=False, as_index=False).agg(
        points=("points", "max"), noise_sd=("noise_sd", "mean"))


def flat_mislabel_rate(noise_sd: float, points: int, half_points: int | None = None,
                       tolerance: float = PLATEAU_TOLERANCE, trials: int = 20_000,
                       seed: int = 0, seeds: int = 1) -> float:
    """How often the rule labels a model that *has* plateaued "not plateaued" from validation
    noise within its runs alone: the rule's calibration, as the claim rules are calibrated on
    simulated ties.

    Simulated pairs of runs, at B with ``points`` validations and at B/2 with ``half_points``
    (default ``points // 2``), whose validation Dice sits on one common level over the flat
    part of each (:func:`flat_part`), with independent Gaussian noise of SD ``noise_sd`` about
    it (the steep start never holds the best score). Returns the fraction of ``trials``
    pairs in which the best score at B exceeds that at B/2 by more than ``tolerance``, each
    score the mean over ``seeds`` runs, as the rule takes it over the seeds run at both. More
    seeds shrink the spread of the gain but not its bias, a maximum over more draws. Where
    the noise is wide against the tolerance it tends to the share of the two runs' flat
    validations that the run at B holds: a maximum over more draws is higher. A lower bound:
    the level each run settles on also varies from run to run (as between seeds), which adds
    to the rate and which one seed cannot measure. The end score (:func:`end_scores`) is not
    simulated: it has no maximum's bias, and its error is the run-to-run spread plus the
    noise of its last validations, which is tiny for some models and several points for
    others (``history.csv``)."""
    return flat_gain_chance(tolerance + 1e-12, noise_sd, points, half_points, trials, seed,
                            strict=True, seeds=seeds)


def flat_gain_chance(gain: float, noise_sd: float, points: int, half_points: int | None = None,
                     trials: int = 20_000, seed: int = 0, strict: bool = False,
                     seeds: int = 1) -> float:
    """The chance that a flat model (simulated as in :func:`flat_mislabel_rate`) gains at least
    ``gain`` (more than it where ``strict``) from B/2 to B by the best score: how well a
    measured gain stands out of its model's validation noise. Under 5 %: the gain is more
    than noise within the runs; like the rate there, it leaves out the run-to-run spread, so
    a small value overstates the evidence against a plateau somewhat."""
    half_points = points // 2 if half_points is None else half_points
    if not (math.isfinite(noise_sd) and noise_sd >= 0):
        raise ConfigError(f"noise_sd: expected a non-negative Dice SD, got {noise_sd}")
    if min(points, half_points, trials, seeds) < 1:
        raise ConfigError(f"points {points}, half_points {half_points}, trials {trials}, "
                          f"seeds {seeds}: expected each at least 1")
    rng = np.random.default_rng(seed)
    full = rng.normal(0.0, noise_sd, (trials, seeds, flat_part(points))).max(axis=2).mean(axis=1)
    half = rng.normal(0.0, noise_sd, (trials, seeds, flat_part(half_points))).max(axis=2).mean(
        axis=1)
    gains = full - half
    return float((gains > gain).mean() if strict else (gains >= gain).mean())


def flat_pass_chance(rates: Sequence[float], minimum: int = MIN_PLATEAUED) -> tuple[float, float]:
    """Were every model flat, each labelled not plateaued by noise with its chance in ``rates``
    (:func:`flat_mislabel_rate`, independently): the chance that at least ``minimum`` of them
    are labelled plateaued, and the number expected to be (the Poisson binomial
    distribution). The budget's test (at least 10 of the 12 plateau) calibrated as the rule
    is: a budget every model has reached should pass it almost always."""
    chances = [float(r) for r in rates]
    if not all(0.0 <= r <= 1.0 for r in chances):
        raise ConfigError(f"rates: expected chances between 0 and 1, got {chances}")
    counts = np.zeros(len(chances) + 1)
    counts[0] = 1.0
    for r in chances:  # one model more: it passes with chance 1 - r
        counts[1:] = counts[1:] * r + counts[:-1] * (1 - r)
        counts[0] *= r
    expected = float(sum(1 - r for r in chances))
    return float(counts[max(minimum, 0):].sum()), expected


class Shortfall(StrEnum):
    """Why a model has not plateaued, read from its scores at B/4, B/2 and B (one seed)."""

    STILL_LEARNING = "still learning"
    """It gained more than the tolerance from B/4 to B/2 and again from B/2 to B."""
    SCATTER = "not monotone in the budget"
    """Its run at B/2 scored no more than the tolerance above its run at B/4 (or below it),
    and the run at B above both: the scores swing between budgets, and one seed cannot tell a
    late climb from that swing."""
    TWO_BUDGETS = "two budgets only"
    """No run at B/4: only the gain from B/2 to B is known."""


def shortfall(quarter: float, half: float, full: float,
              tolerance: float = PLATEAU_TOLERANCE) -> tuple[Shortfall, str]:
    """Why a model whose score at B (``full``) exceeds that at B/2 (``half``) by more than
    ``tolerance`` has not plateaued, with the reason in words (Dice points): still learning,
    with shrinking gains or not; scores not monotone in the budget; or only two budgets known
    (``quarter`` NaN). A :class:`ConfigError` for a model that has plateaued or lacks a score
    at B or B/2."""
    if plateau_label(full, half, tolerance) is not Plateau.NOT_PLATEAUED:
        raise ConfigError(f"shortfall: the scores {full} at B and {half} at B/2 are not those "
                          "of a model that has not plateaued")
    late = 100 * (full - half)
    d = decimals_apart(full - half, tolerance)
    if not math.isfinite(quarter):
        return Shortfall.TWO_BUDGETS, (
            f"doubling the budget from B/2 gained {late:.{d}f} points; with no run at B/4, "
            "whether its gains shrink is unknown")
    early = 100 * (half - quarter)
    if early > 100 * tolerance + 1e-9:
        trend = ("the gains shrink, so it is nearing a plateau it has not reached"
                 if late < early else "the gains do not shrink: it is far from a plateau")
        return Shortfall.STILL_LEARNING, (f"still learning: +{early:.1f} points from B/4 to "
                                          f"B/2, then +{late:.{d}f} to B; {trend}")
    scores = [100 * quarter, 100 * half, 100 * full]
    return Shortfall.SCATTER, (
        f"not monotone in the budget: {scores[0]:.1f} % at B/4, {scores[1]:.1f} % at B/2, "
        f"{scores[2]:.1f} % at B, a swing of {max(scores) - min(scores):.1f} points with "
        f"B/2 no better than B/4; one seed cannot tell a late climb from that swing")


def plateaued_count(table: pd.DataFrame) -> tuple[int, int]:
    """How many models of ``plateau.csv`` plateaued, and how many were measured: the budget
    seed keeps its budget B when at least 10 of the 12 plateau (issue 24)."""
    measured = table[table["label"] != str(Plateau.NOT_MEASURED)]
    return int((measured["label"] == str(Plateau.PLATEAUED)).sum()), len(measured)


MIN_CURVE_POINTS = 8
"""Validation points a run needs before its own curve can say anything about a plateau."""


def still_climbing(history: pd.DataFrame, min_points: int = MIN_CURVE_POINTS,
                   tolerance: float = PLATEAU_TOLERANCE) -> pd.DataFrame:
    """One row per run (``model``, ``seed``, ``fold`` of ``history.csv``) with ``points`` (its
    validation rows), ``gain`` (best validation Dice of the last quarter of the rows minus that
    of the quarter before) and ``climbing``: True when the run has fewer than ``min_points``
    points or its gain is ``tolerance`` or more. A climbing run has certainly not plateaued, so
    ranking it measures how fast a model starts; a run that is not climbing has not thereby
    plateaued (under a decaying schedule every curve flattens at its end): that needs
    :func:`plateau_table`'s runs at B and B/2."""
    keys = [k for k in ("model", "seed", "fold") if k in history]
    rows = []
    for key, run in history.sort_values("epoch").groupby(keys, sort=False):
        dice = run["dice"].dropna().to_numpy()
        quarter = len(dice) // 4
        gain = (float(dice[-quarter:].max() - dice[-2 * quarter:-quarter].max())
                if quarter else math.nan)
        climbing = len(dice) < min_points or not gain < tolerance
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)),
                     "points": len(dice), "gain": gain, "climbing": climbing})
    return pd.DataFrame(rows, columns=[*keys, "points", "gain", "climbing"])
