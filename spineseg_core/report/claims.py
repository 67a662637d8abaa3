"""The paper's four claims as rules: each gives a verdict and the evidence behind it.

Zhou et al. (ICMR 2022) conclude that (1) models built on a backbone beat the U-Net family,
(2) DeepLabv3+ is the best of the twelve, (3) MiniSeg comes close to the best with few
parameters, and (4) Dice loss trains better than the other losses. Each claim here is a rule
(:data:`RULES`) over the per-subject counts of a results bundle, and its verdict is one of
three (:class:`Verdict`).

**The difference and its interval.** Every rule reduces its claim to differences of Dice
between *arms* (a model, or a model trained with one loss), or of means of arms (claim 1's
families). All arms are scored on one test set, so their subject replicates come from one
Bayesian bootstrap (:func:`spineseg_core.study.stats.paired_arms`: per replicate every test
subject gets one weight, shared by all arms), and each arm's seeds add their own variance in
full, with a Student t factor for their small number
(:func:`spineseg_core.study.stats.contrast_interval`). The point estimate is the difference of
the arms' own estimates (per seed the Dice of the pooled counts, mean over seeds, as
``models.csv``). Calibration: on simulated exact ties (3 seeds, 40 subjects, seed SD
0.03-0.13) the rules give a firm verdict in at most about 5 % of cases
(``scripts/tie_simulation.py``, ``tests/test_stats.py``).

**The verdict of one comparison** (:func:`interval_verdict`): "holds" when its whole interval
lies on the claimed side of the bound (0, or the margin of claim 3), "does not hold" when it
lies wholly on the other side, else "not resolved at this scale". An interval that touches the
bound counts as including it, so an exact tie is never resolved. A claim over several
comparisons ("X beats every Y") holds when every comparison holds and does not hold when one
fails.

**Downgrades to "not resolved"** (each adds a caveat that says why): a claim that would hold
while some arm it must beat was not run; claims (1) and (2) when the resolution check
(:func:`spineseg_core.report.resolution.resolution_check`) is missing, incomplete, or shows the
ordering they rest on changing between 128 and 256 px. Missing inputs never raise: the verdict
is "not resolved at this scale" and the caveats name what is missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spineseg_core.models.registry import MODEL_NAMES, Family
from spineseg_core.report.facts import seeds_text
from spineseg_core.report.resolution import ResolutionCheck, resolution_check, study_strides
from spineseg_core.study.aggregate import GROUPS_PER_CASE, PER_CASE
from spineseg_core.study.loss_study import LOSS_MODELS
from spineseg_core.study.stats import Resampling, SeedSamples, contrast_interval, paired_arms

LEVEL = 0.95
"""Coverage of every interval."""

N_BOOT = 1000
"""Bootstrap replicates of the claims, as ``spineseg aggregate``'s intervals (seeded: the
verdicts are reproducible)."""

DEEPLAB, MINISEG = "deeplabv3plus", "miniseg"
LOSSES: tuple[str, ...] = ("dice", "ce", "weighted_ce", "dice_ce")
"""The losses of the comparison; the first is the one the paper kept."""
TOUCH = 1e-9
"""An interval end this close to the bound touches it: a difference of Dice values computed
from counts carries rounding of about 1e-16, and a tie must not turn into a verdict."""


def paper_margin() -> float:
    """Claim (3)'s margin: the paper's own gap between DeepLabv3+ and MiniSeg in its Table 1
    (87.55 - 85.69 = 1.86 Dice points), as a fraction. It is the gap the paper itself calls
    close, so "close" means "as close as the paper found it", not a number chosen after
    seeing our results."""
    from spineseg_core.study.paper import table1_overall

    t1 = table1_overall().set_index("model")["dice"]
    return float(t1["DeepLabv3+"] - t1["MiniSeg"]) / 100


class Verdict(StrEnum):
    """A claim's verdict; there is no fourth."""

    HOLDS = "holds"
    FAILS = "does not hold"
    UNRESOLVED = "not resolved at this scale"


@dataclass(frozen=True)
class Comparison:
    """One difference of Dice (fractions) between two arms, with its interval."""

    label: str
    difference: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Claim:
    """A claim's verdict and its evidence. ``difference``/``ci_*`` are the headline
    comparison's (the one least favourable to the claim: the smallest difference, or for
    claim 3 the gap itself); ``n_seeds`` is the fewest seeds of any arm, ``n_subjects`` the
    test subjects; ``caveats`` come first on the page."""

    key: str
    statement: str
    rule: str
    verdict: Verdict
    difference: float = float("nan")
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    n_seeds: int = 0
    n_subjects: int = 0
    caveats: tuple[str, ...] = ()
    comparisons: tuple[Comparison, ...] = ()
    bound: float = 0.0
    above: bool = True
    """Whether the claim is "difference above ``bound``" (else below)."""


def interval_verdict(low: float, high: float, bound: float = 0.0, above: bool = True
                     ) -> Verdict:
    """The verdict of one interval against ``bound``: the claim is "difference > bound"
    (``above``) or "difference < bound". An interval touching the bound (within
    :data:`TOUCH`), or a missing one, is not resolved."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return Verdict.UNRESOLVED
    if not above:
        low, high, bound = -high, -low, -bound
    if low > bound + TOUCH:
        return Verdict.HOLDS
    if high < bound - TOUCH:
        return Verdict.FAILS
    return Verdict.UNRESOLVED


def combine(verdicts: Sequence[Verdict]) -> Verdict:
    """"X beats every Y": holds when each comparison holds, fails when one fails."""
    if not verdicts:
        return Verdict.UNRESOLVED
    if Verdict.FAILS in verdicts:
        return Verdict.FAILS
    return Verdict.HOLDS if all(v is Verdict.HOLDS for v in verdicts) else Verdict.UNRESOLVED


def downgrade(claim: Claim, reasons: Sequence[str], only: Verdict | None = None) -> Claim:
    """``claim`` made "not resolved" for ``reasons`` (if any, and if its verdict is ``only``
    when given), each reason added to its caveats with the verdict it would have had; a claim
    not resolved anyway keeps its verdict and gets the reasons as caveats too."""
    if not reasons or (only and claim.verdict not in (only, Verdict.UNRESOLVED)):
        return claim
    if claim.verdict is Verdict.UNRESOLVED:  # unresolved anyway: the reasons still inform
        return replace(claim, caveats=claim.caveats + tuple(f"Also: {r}." for r in reasons))
    notes = tuple(f"Not resolved although the interval alone says \"{claim.verdict}\": {r}."
                  for r in reasons)
    return replace(claim, verdict=Verdict.UNRESOLVED, caveats=notes + claim.caveats)


@dataclass(frozen=True)
class StudyResults:
    """What the rules read: per-subject counts of the profile's own runs (``main``: ``model,
    seed, case_id, class_value, tp, fp, fn, tn``, and ``loss``), of the loss and side-study
    groups (``side``, with ``group`` and ``loss``), ``variants.csv``, the model set the
    study meant to run, ``convergence.csv``, and ``runs.csv`` and ``losses.csv`` (the
    background check of the main runs and of the loss comparison's)."""

    main: pd.DataFrame | None
    profile: str = "cpu"
    side: pd.DataFrame | None = None
    variants: pd.DataFrame | None = None
    models: tuple[str, ...] = MODEL_NAMES
    params: dict[str, float] = field(default_factory=dict)
    n_boot: int = N_BOOT
    seed: int = 0
    convergence: pd.DataFrame | None = None
    runs: pd.DataFrame | None = None
    losses: pd.DataFrame | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def resolution(self) -> ResolutionCheck:
        if "resolution" not in self._cache:
            self._cache["resolution"] = resolution_check(
                self.variants, self.profile, stride_at=study_strides(self.profile))
        return self._cache["resolution"]

    def main_arms(self, main: pd.DataFrame) -> _Arms:
        """The paired bootstrap of the models of ``main`` (the main runs of the expected
        models), computed once for claims (1)-(3)."""
        if "main" not in self._cache:
            self._cache["main"] = _arms(main, ["model"], self.n_boot, self.seed)
        return self._cache["main"]


def _family(model: str) -> str:
    from spineseg_core.models import model_info

    return str(model_info(model).family)


def _name(model: str) -> str:
    from spineseg_core.models import model_info

    return model_info(model).display_name


@dataclass(frozen=True)
class _Arms:
    """The paired bootstrap of some arms (:func:`~spineseg_core.study.stats.paired_arms`):
    each arm's samples, its seeds, and the subjects."""

    samples: dict[Any, SeedSamples]
    seeds: pd.Series
    n_subjects: int

    @property
    def points(self) -> pd.Series:
        return pd.Series({a: s.point for a, s in self.samples.items()}, dtype=float)

    def compare(self, label: str, a: Any, b: Any) -> Comparison:
        return self.contrast(label, {a: 1.0, b: -1.0})

    def contrast(self, label: str, weights: dict[Any, float]) -> Comparison:
        """``sum(weights[arm] * arm)`` with its interval
        (:func:`~spineseg_core.study.stats.contrast_interval`)."""
        point, low, high = contrast_interval(self.samples, weights, LEVEL)
        return Comparison(label, point, low, high)

    def n_seeds(self, arms: Sequence[Any] | None = None) -> int:
        seeds = self.seeds if arms is None else self.seeds.loc[list(arms)]
        return int(seeds.min()) if len(seeds) else 0


def _arms(per_case: pd.DataFrame, keys: Sequence[str], n_boot: int, seed: int,
          metric: str = "dice", resampling: Resampling = Resampling.BAYESIAN) -> _Arms:
    """The paired bootstrap of ``metric`` (Dice for the claims; ``recall`` for a rate framed
    as counts, :func:`spineseg_core.levels.stats.rate_frame`, which takes
    ``resampling=levels.stats.RATES``) for each arm of ``keys``."""
    samples = paired_arms(per_case, keys, metric, n_boot, seed, resampling)
    key = keys[0] if len(keys) == 1 else list(keys)
    seeds = per_case.groupby(key)["seed"].nunique()
    return _Arms(samples, seeds, int(per_case["case_id"].nunique()))


def _missing(key: str, statement: str, rule: str, *what: str) -> Claim:
    return Claim(key, statement, rule, Verdict.UNRESOLVED,
                 caveats=tuple(f"Missing: {w}." for w in what))


def _main_runs(results: StudyResults, needed: str | None = None
               ) -> tuple[pd.DataFrame | None, set[str], str | None]:
    """The main group's per-case rows of the study's models, the models present, and what is
    missing for a claim about ``needed`` (``None`` when nothing is)."""
    if results.main is None or not len(results.main):
        return None, set(), f"the study's runs ({PER_CASE})"
    main = results.main[results.main["model"].isin(results.models)]
    present = set(main["model"])
    if needed is not None and (needed not in present or len(present) < 2):
        return main, present, f"runs of {_name(needed)} and of another model"
    return main, present, None


def _not_run(expected: Sequence[str], present: set[str]) -> list[str]:
    return [_name(m) for m in expected if m not in present]


def _resolution_reasons(check: ResolutionCheck, changes: bool | None, what: str,
                        finding: str) -> list[str]:
    if changes:
        return [f"the resolution check shows {what} changing with the image size "
                f"({finding.rstrip('.')})"]
    if changes is None or not check.complete:
        return [f"the resolution check, which must show {what} stable between 128 and 256 px, "
                f"is missing or incomplete ({'; '.join(check.missing)})"]
    return []


def _headline(key: str, statement: str, rule: str, comps: Sequence[Comparison],
              verdicts: Sequence[Verdict], arms: _Arms, used: Sequence[Any],
              caveats: Sequence[str] = (), bound: float = 0.0) -> Claim:
    head = min(comps, key=lambda c: c.difference)
    return Claim(key, statement, rule, combine(verdicts), head.difference, head.ci_low,
                 head.ci_high, arms.n_seeds(used), arms.n_subjects, tuple(caveats),
                 tuple(comps), bound)


FAMILIES_STATEMENT = "Models built on a backbone beat the U-Net family"
FAMILIES_RULE = ("mean Dice of the backbone models minus that of the U-Net family; holds when "
                 "the whole interval is above 0")


def backbone_beats_unet(results: StudyResults) -> Claim:
    """Claim (1): difference of the families' mean Dice (each family's mean over its models,
    per replicate), above 0. Needs every model of ``results.models`` and a resolution check
    showing the family ordering stable."""
    key, st, rule = "families", FAMILIES_STATEMENT, FAMILIES_RULE
    main, present, lacking = _main_runs(results)
    if lacking:
        return _missing(key, st, rule, lacking)
    fam = {m: _family(m) for m in present}
    bb = sorted(m for m in present if fam[m] == str(Family.BACKBONE))
    un = sorted(m for m in present if fam[m] == str(Family.UNET))
    if not bb or not un:
        return _missing(key, st, rule, "runs of a model of each family")
    arms = results.main_arms(main)
    comp = arms.contrast("backbone models - U-Net family",
                         {**{m: 1 / len(bb) for m in bb}, **{m: -1 / len(un) for m in un}})
    claim = _headline(key, st, rule, [comp], [interval_verdict(comp.ci_low, comp.ci_high)],
                      arms, [*bb, *un],
                      [f"Family means over {len(bb)} backbone and {len(un)} U-Net-family "
                       f"models."])
    claim = downgrade(claim, [f"models not run: {', '.join(_not_run(results.models, present))}"]
                      if present != set(results.models) else [])
    check = results.resolution()
    return downgrade(claim, _resolution_reasons(check, check.family_order_changes,
                                                "the family ordering", check.family_finding()))


BEST_STATEMENT = "DeepLabv3+ is the best of the twelve models"
BEST_RULE = ("DeepLabv3+'s Dice minus each other model's; holds when every interval is above 0, "
             "does not hold when one is below 0; the headline is the best other model")


def deeplab_is_best(results: StudyResults) -> Claim:
    """Claim (2): DeepLabv3+ minus every other model (the headline: minus the best other by
    point estimate). A "holds" needs every model run; any verdict needs a resolution check
    showing DeepLabv3+'s rank stable."""
    key, st, rule = "deeplab", BEST_STATEMENT, BEST_RULE
    main, present, lacking = _main_runs(results, DEEPLAB)
    if lacking:
        return _missing(key, st, rule, lacking)
    arms = results.main_arms(main)
    others = [m for m in arms.points.index if m != DEEPLAB]
    comps = [arms.compare(f"DeepLabv3+ - {_name(m)}", DEEPLAB, m) for m in others]
    rank = int((arms.points > arms.points[DEEPLAB]).sum()) + 1
    claim = _headline(key, st, rule, comps, [interval_verdict(c.ci_low, c.ci_high) for c in comps],
                      arms, list(arms.points.index),
                      [f"DeepLabv3+ ranks {rank} of {len(arms.points)} by point estimate."])
    missing = _not_run(results.models, present)
    claim = downgrade(claim, [f"models not run, any of which might beat it: {', '.join(missing)}"]
                      if missing else [], only=Verdict.HOLDS)
    check = results.resolution()
    return downgrade(claim, _resolution_reasons(check, check.deeplab_rank_changes,
                                                "DeepLabv3+'s rank", check.rank_finding()))


CLOSE_STATEMENT = "MiniSeg comes close to the best model with few parameters"


def _close_rule(margin: float) -> str:
    return (f"Dice of the best other model minus MiniSeg's; holds when the whole interval is "
            f"below the paper's own gap of {100 * margin:.2f} points, does not hold when it is "
            f"wholly above it")


def miniseg_is_close(results: StudyResults, margin: float | None = None) -> Claim:
    """Claim (3): the gap best - MiniSeg, the best being the best other model by point
    estimate, against ``margin`` (default :func:`paper_margin`). A "holds" needs every model
    run (a missing one might be better). The parameter counts are reported, not tested: they
    are a fact of the architectures."""
    margin = paper_margin() if margin is None else margin
    key, st, rule = "miniseg", CLOSE_STATEMENT, _close_rule(margin)
    main, present, lacking = _main_runs(results, MINISEG)
    if lacking:
        return _missing(key, st, rule, lacking)
    arms = results.main_arms(main)
    best = arms.points.drop(MINISEG).idxmax()
    comp = arms.compare(f"{_name(best)} - MiniSeg", best, MINISEG)
    caveats = [f"The best other model is {_name(best)}; the margin is the paper's Table 1 gap "
               f"DeepLabv3+ - MiniSeg ({100 * margin:.2f} points)."]
    if MINISEG in results.params and best in results.params:
        caveats.append(f"Parameters: MiniSeg {int(results.params[MINISEG]):,}, "
                       f"{_name(best)} {int(results.params[best]):,}.")
    caveats.append("The resolution check did not train MiniSeg at 256 px: this verdict is for "
                   "128 px only.")
    verdict = interval_verdict(comp.ci_low, comp.ci_high, margin, above=False)
    claim = Claim(key, st, rule, verdict, comp.difference, comp.ci_low, comp.ci_high,
                  arms.n_seeds([best, MINISEG]), arms.n_subjects, tuple(caveats), (comp,), margin,
                  above=False)
    missing = _not_run(results.models, present)
    return downgrade(claim, [f"models not run, any of which might be better: {', '.join(missing)}"]
                     if missing else [], only=Verdict.HOLDS)


LOSS_STATEMENT = "Dice loss trains better than the other losses"
LOSS_RULE = ("for U-Net, MiniSeg and DeepLabv3+ (the loss runs' models), Dice with the Dice "
             "loss minus Dice with each other loss (cross-entropy, weighted cross-entropy, "
             "Dice + cross-entropy); holds when every interval is above 0, does not hold when "
             "one is below 0")


def dice_loss_is_best(results: StudyResults) -> Claim:
    """Claim (4): per model of :data:`LOSS_MODELS`, the Dice-loss arm minus each other loss's
    arm (the main runs supply the profile's default loss, the groups ``<profile>-loss-<loss>``
    the others). A "holds" needs every model x loss of the comparison."""
    key, st, rule = "loss", LOSS_STATEMENT, LOSS_RULE
    frames = []
    if results.main is not None and "loss" in results.main:
        frames.append(results.main[results.main["model"].isin(LOSS_MODELS)])
    if results.side is not None and len(results.side):
        side = results.side[results.side["group"].str.startswith(f"{results.profile}-loss-")
                            & results.side["model"].isin(LOSS_MODELS)]
        if frames:  # the main group speaks for its own loss
            own = set(zip(frames[0]["model"], frames[0]["loss"]))
            side = side[[(m, l) not in own for m, l in zip(side["model"], side["loss"])]]
        frames.append(side)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    table = table[table["loss"].isin(LOSSES)] if len(table) else table
    have = set(zip(table["model"], table["loss"])) if len(table) else set()
    pairs = [(m, other) for m in LOSS_MODELS for other in LOSSES[1:]
             if (m, "dice") in have and (m, other) in have]
    if not pairs:
        return _missing(key, st, rule, "loss-comparison runs: a model trained with the Dice "
                        f"loss and with another loss (groups `{results.profile}-loss-<loss>`)")
    arms = _arms(table, ["model", "loss"], results.n_boot, results.seed)
    from spineseg_core.study.loss_study import loss_name  # the losses in reader words

    comps = [arms.compare(f"{_name(m)}: {loss_name('dice')} - {loss_name(other)}", (m, "dice"),
                          (m, other)) for m, other in pairs]
    used = sorted({(m, l) for m, other in pairs for l in ("dice", other)})
    claim = _headline(key, st, rule, comps, [interval_verdict(c.ci_low, c.ci_high) for c in comps],
                      arms, used, ["The resolution check did not compare losses: this verdict "
                                   "is for 128 px only."])
    absent = [f"{_name(m)} with {l}" for m in LOSS_MODELS for l in LOSSES if (m, l) not in have]
    return downgrade(claim, [f"runs not made, any of which might beat the Dice loss: "
                             f"{', '.join(absent)}"] if absent else [], only=Verdict.HOLDS)


RULES: dict[str, Callable[[StudyResults], Claim]] = {
    "families": backbone_beats_unet,
    "deeplab": deeplab_is_best,
    "miniseg": miniseg_is_close,
    "loss": dice_loss_is_best,
}
"""The paper's claims in its order, by key."""


CONVERGENCE_MODELS: dict[str, Callable[[StudyResults], Sequence[str]]] = {
    "families": lambda r: r.models, "deeplab": lambda r: r.models,
    "miniseg": lambda r: (MINISEG,), "loss": lambda r: ("unet", MINISEG),
}
"""The models whose learning curves a claim's verdict rests on: every model for an ordering,
the model a closeness or a loss comparison is about."""


def steep_models(convergence: pd.DataFrame | None, models: Sequence[str]) -> list[str]:
    """Display names of ``models`` whose mean validation Dice curve had not left its steep part
    at the end of the budget (a ``convergence.csv``'s ``past_steep``; see
    :func:`spineseg_core.study.aggregate.convergence_table`)."""
    conv = convergence
    if conv is None or not len(conv) or "past_steep" not in conv:
        return []
    rows = conv[conv["model"].isin(models) & ~conv["past_steep"].astype(bool)]
    return [str(n) for n in rows["display_name"]]


def failing_background(runs: pd.DataFrame | None, models: Sequence[str]) -> list[str]:
    """For each of ``models`` with a run of ``runs`` (``runs.csv``, ``context.csv``: ``model,
    display_name, bg_recall, absent_fraction``) that fails the results chapter's background
    check (:func:`spineseg_core.study.loss_study.sane_runs`), a phrase naming it and its worst
    run; one phrase per display name, so a table whose names carry the loss
    (:func:`background_runs`) names each loss apart."""
    from spineseg_core.study.loss_study import sane_runs

    sane = sane_runs(runs)
    if sane is None:
        return []
    out = []
    for model in models:
        for name, rows in runs[runs["model"] == model].groupby("display_name", sort=False):
            bad = rows[~sane[rows.index]]
            if len(bad):
                out.append(f"{name} in {len(bad)} of {len(rows)} run(s), background recall "
                           f"down to {100 * bad['bg_recall'].min():.1f} %, absent structures "
                           f"up to {100 * bad['absent_fraction'].max():.2f} % of pixels")
    return out


def scale_reasons(models: Sequence[str], n_seeds: int, *, runs: pd.DataFrame | None,
                  convergence: pd.DataFrame | None,
                  where: str = "convergence chapter") -> list[str]:
    """Why a verdict resting on ``models`` is "not resolved at this scale" whatever its
    interval (:func:`downgrade`'s reasons; none when it may stand): one of them fails the
    background check in a run of ``runs`` (it has not learned the task), one is still on the
    steep part of its curve in ``convergence`` (``where`` the page shows it), or the verdict
    rests on one seed (its interval holds no spread between training runs)."""
    steep = steep_models(convergence, models)
    failing = failing_background(runs, models)
    return [*([f"{'fails' if len(failing) == 1 else 'runs fail'} the background check, so "
               f"{'it has' if len(failing) == 1 else 'they have'} not learned the task within "
               f"the budget: {'; '.join(failing)}"] if failing else []),
            *([f"still on the steep part of its learning curve at the end of the budget: "
               f"{', '.join(steep)} ({where})"] if steep else []),
            *(["one seed only, so its interval holds none of the spread between seeds"]
              if n_seeds == 1 else [])]


def background_runs(results: StudyResults, key: str) -> pd.DataFrame | None:
    """The runs whose background check claim ``key``'s verdict rests on: the main runs
    (``runs.csv``), or for the loss claim every run of its comparison (``losses.csv``), each
    named with its loss ("U-Net, dice loss"). A loss that paints background with levels can
    still win on the Dice of the levels it draws; its verdict must not stand on that."""
    if key != "loss":
        return results.runs
    t = results.losses
    if t is None or not {"model", "loss", "display_name"} <= set(t.columns):
        return None
    return named_by_loss(t[t["model"].isin(LOSS_MODELS) & t["loss"].isin(LOSSES)])


def named_by_loss(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` (``display_name, loss``) with each display name carrying its loss in words
    ("U-Net, Dice + cross-entropy"), so that the background check names each loss of a model
    apart."""
    from spineseg_core.study.loss_study import loss_name

    return runs.assign(display_name=runs["display_name"] + ", " + runs["loss"].map(loss_name))


def check_claim(results: StudyResults, key: str) -> Claim:
    """Claim ``key``'s verdict (:data:`RULES`). A verdict that rests on a model still on the
    steep part of its learning curve, or on a run that fails the background check (it has not
    learned the task), is "not resolved at this scale": a longer budget could move that
    model's Dice by more than the interval says."""
    claim = RULES[key](results)
    return downgrade(claim, scale_reasons(
        CONVERGENCE_MODELS[key](results), claim.n_seeds, runs=background_runs(results, key),
        convergence=results.convergence))


def check_claims(results: StudyResults) -> list[Claim]:
    """Every claim's verdict (:func:`check_claim`), in the paper's order."""
    return [check_claim(results, key) for key in RULES]


def _csv(folder: Path, name: str) -> pd.DataFrame | None:
    p = folder / name
    return pd.read_csv(p) if p.is_file() else None


def load_results(folder: str | Path | None, n_boot: int = N_BOOT, seed: int = 0
                 ) -> StudyResults:
    """A bundle folder (``results/<profile>``) as the rules' input; a missing folder or file
    gives an input with that part empty (the rules then say what is missing)."""
    folder = Path(folder) if folder is not None else None
    if folder is None or not folder.is_dir():
        return StudyResults(None, n_boot=n_boot, seed=seed)
    bundle = json.loads((folder / "bundle.json").read_text()) \
        if (folder / "bundle.json").is_file() else {}
    profile = str(bundle.get("profile") or folder.name)
    main = _csv(folder, PER_CASE)
    runs = _csv(folder, "runs.csv")
    if main is not None and runs is not None and "loss" in runs:
        main = main.merge(runs[["model", "seed", "fold", "loss"]], on=["model", "seed", "fold"],
                          how="left")
    params: dict[str, float] = {}
    eff = _csv(folder, "efficiency.csv")
    for table in (runs, eff):
        if table is not None and "params" in table:
            params.update(table.dropna(subset=["params"]).groupby("model")["params"].first())
    return StudyResults(main, profile, _csv(folder, GROUPS_PER_CASE),
                        _csv(folder, "variants.csv"), MODEL_NAMES, params, n_boot, seed,
                        _csv(folder, "convergence.csv"), runs, _csv(folder, "losses.csv"))


def _seeds_caveat(seeds: list[int], per_model: Mapping[str, int] | None) -> str:
    """How many seeds stand behind each model (:func:`seeds_text`), with the models short of
    the most named by their count."""
    counts = dict(per_model) if per_model else {}
    if not counts and seeds:  # no per-run table: the bundle's seeds are every model's
        counts = {"every model": len(seeds)}
    text = seeds_text(counts)
    if text is None:
        return "No runs yet"
    values = sorted(set(counts.values()))
    if len(values) > 1:
        text += " (" + "; ".join(f"{n} for {', '.join(m for m, k in counts.items() if k == n)}"
                                 for n in values[:-1]) + ")"
    if values[-1] == 1:
        text += ": the intervals cover the test subjects only, not the randomness of training"
    elif values[0] == 1:
        text += ": where a model has one seed, its interval covers the test subjects only"
    return text


def study_caveats(dataset: dict[str, Any] | None,
                  seeds: Mapping[str, int] | None = None) -> list[str]:
    """What every verdict stands on, from ``dataset.json``, in the order the page shows it:
    the data, the protocol, the resolution, the seeds, the weights. ``seeds`` (model to seeds
    run, :func:`seed_counts`) counts each model's seeds; without it, the bundle's seeds are
    taken as every model's."""
    from spineseg_core.training.config import PROFILE_DEFAULTS, Profile

    d = dataset or {}
    paper = PROFILE_DEFAULTS[Profile.PAPER]
    out = []
    if d.get("data_kind", "phantom") == "phantom":
        out.append("The data are a synthetic phantom, not patients' scans: a verdict here is a "
                   "verdict on the phantom.")
    else:
        out.append(f"The data are real scans ({d.get('data_dir')}).")
    epochs, batch, size = d.get("epochs"), d.get("batch_size"), d.get("image_size")
    budget = f"{epochs} epochs" if epochs else "a few epochs"
    out.append(f"A miniature of the paper's protocol: {budget}"
               + (f" at batch {batch}" if batch else "")
               + f" against the {paper['epochs']} of our reading of the paper, so large models "
               "may be far from converged.")
    out.append(f"Images at {f'{size} px' if size else 'a reduced size'} instead of "
               f"{paper['image_size']} px: thoracic discs are a few pixels high and a stride-32 "
               "encoder sees a map a few pixels across; the resolution check tests whether the "
               "orderings survive 256 px.")
    n_test = d.get("n_test_cases")
    out.append(_seeds_caveat(d.get("seeds") or [], seeds)
               + (f"; {n_test} test subjects." if n_test else "."))
    out.append("No model was pretrained: every backbone starts from random weights.")
    return out


def verdict_table(claims: Sequence[Claim], unit: str = "Dice points",
                  caveats: bool = False) -> pd.DataFrame:
    """The claims as the page shows them: verdict, difference and interval in points of
    ``unit`` (Dice, or a rate's percentage points), seeds, subjects (a dash where a value is
    missing). With ``caveats``, a column of each claim's caveats right after its verdict, so
    that they are read before the evidence."""
    dash = "\u2014"

    def pts(x: float, sign: bool = True) -> str:
        return dash if not np.isfinite(x) else f"{100 * x:{'+' if sign else ''}.2f}"

    rows = []
    for c in claims:
        measured = np.isfinite(c.difference)
        rows.append({
            "claim": c.statement, "verdict": str(c.verdict),
            **({"caveats": " ".join(c.caveats) or dash} if caveats else {}),
            f"difference ({unit})": pts(c.difference),
            "95 % CI (points)": (f"{pts(c.ci_low)} to {pts(c.ci_high)}" if measured else dash),
            "bound (points)": pts(c.bound, sign=False) if measured else dash,
            "seeds": str(c.n_seeds) if measured else dash,
            "test subjects": str(c.n_subjects) if measured else dash})
    return pd.DataFrame(rows)


def comparisons_table(claims: Sequence[Claim]) -> pd.DataFrame:
    """Every comparison behind the verdicts: claim, comparison, difference and interval
    (fractions), the bound it is tested against, and its own verdict."""
    rows = [{"claim": c.key, "comparison": k.label, "difference": k.difference,
             "ci_low": k.ci_low, "ci_high": k.ci_high, "bound": c.bound,
             "verdict": str(interval_verdict(k.ci_low, k.ci_high, c.bound, c.above))}
            for c in claims for k in c.comparisons]
    return pd.DataFrame(rows, columns=["claim", "comparison", "difference", "ci_low", "ci_high",
                                       "bound", "verdict"])


VERDICT_COLORS: dict[Verdict, str] = {Verdict.HOLDS: "tab:green", Verdict.FAILS: "tab:red",
                                      Verdict.UNRESOLVED: "tab:gray"}
"""One colour per verdict, in the figure and its key."""


def comparisons_figure(claims: Sequence[Claim], width: float = 8.0):
    """Every comparison as a point with its 95 % interval (Dice points), coloured by its own
    verdict, one row each, grouped by claim; a line at 0 and, for a claim tested against a
    margin, a dashed line at it. The key sits below the axes so that it covers no data. A
    figure saying so when there is no comparison yet."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    table = comparisons_table(claims)
    height = 1.6 + 0.32 * max(len(table), 2)
    fig, ax = plt.subplots(figsize=(width, height))
    if table.empty:
        ax.text(0.5, 0.5, "No comparison can be computed yet: see the caveats above.",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    number = {c.key: i + 1 for i, c in enumerate(claims)}
    y = np.arange(len(table))[::-1]
    d, lo, hi = (100 * table[c].to_numpy(float) for c in ("difference", "ci_low", "ci_high"))
    for verdict, color in VERDICT_COLORS.items():
        rows = (table["verdict"] == str(verdict)).to_numpy()
        ax.errorbar(d[rows], y[rows], xerr=[d[rows] - lo[rows], hi[rows] - d[rows]], fmt="o",
                    color=color, capsize=3, ms=4)
    ax.axvline(0, color="black", lw=0.8)
    for _claim, grp in table.groupby("claim", sort=False):
        bound = 100 * float(grp["bound"].iloc[0])
        rows = y[table.index.get_indexer(grp.index)]
        if bound:
            ax.vlines(bound, rows.min() - 0.4, rows.max() + 0.4, colors="black", linestyles="--",
                      lw=0.8)
    ax.set_yticks(y, [f"({number[k]}) {label}" for k, label in zip(table["claim"],
                                                                    table["comparison"])])
    ax.set_ylim(y.min() - 0.6, y.max() + 0.6)
    ax.set_xlabel("difference of Dice (points) with its 95 % interval")
    handles = [Line2D([], [], color=c, marker="o", ls="", label=str(v))
               for v, c in VERDICT_COLORS.items()]
    if table["bound"].ne(0).any():
        handles.append(Line2D([], [], color="black", ls="--", lw=0.8, label="margin of claim (3)"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=8,
               title="each interval alone", title_fontsize=8)
    fig.tight_layout(rect=(0, 0.6 / height, 1, 1))  # 0.6 in for the key
    return fig


MORE_SEEDS = 5
"""The seed count :func:`what_would_decide` projects an unresolved claim's interval to."""


def detectable_effect(claim: Claim, seeds: int | None = None) -> float:
    """The true difference beyond the claim's bound that an interval as wide as its headline
    comparison's resolves about half the time: the interval's half-width (fraction of Dice;
    for a roughly normal estimate, twice it is resolved about 97.5 % of the time). Given ``seeds``, the
    half-width projected to that many seeds as a t interval over seed means would shrink,
    ``t(seeds - 1) / t(n - 1) * sqrt(n / seeds)`` with ``n`` the claim's seeds: an upper bound
    on the gain, since the subjects' share of the width does not shrink. NaN without an
    interval, or when fewer than 2 seeds leave the seeds' spread unmeasured."""
    from scipy import stats

    half = (claim.ci_high - claim.ci_low) / 2
    if not np.isfinite(half):
        return float("nan")
    if seeds is None or seeds == claim.n_seeds:
        return float(half)
    n = claim.n_seeds
    if n < 2 or seeds < 2:
        return float("nan")
    t = stats.t.ppf(1 - (1 - LEVEL) / 2, [seeds - 1, n - 1])
    return float(half * t[0] / t[1] * np.sqrt(n / seeds))


def what_would_decide(claim: Claim, more_seeds: int = MORE_SEEDS) -> str | None:
    """For a claim not resolved on a measured interval: the effect its headline comparison
    could resolve, what more seeds would bring, and what the seeds cannot (a sentence for the
    page); None for a firm verdict or a claim with nothing measured (its caveats say what is
    missing). A claim whose interval alone decides it but whose caveats keep it unresolved
    gets a sentence saying so: more seeds are not what it lacks. A claim of several
    comparisons, each of which must hold, resolves less often than its headline alone."""
    if claim.verdict is not Verdict.UNRESOLVED or not np.isfinite(claim.difference):
        return None
    now = detectable_effect(claim)
    if not np.isfinite(now):
        return None
    if interval_verdict(claim.ci_low, claim.ci_high, claim.bound, claim.above) \
            is not Verdict.UNRESOLVED:
        return ("What would decide it: not more seeds, since its interval alone is decided; "
                "what the caveats above name.")
    side = "above" if claim.above else "below"
    bound = f"{100 * claim.bound:+.2f}" if claim.bound else "0"
    text = (f"What would decide it: its headline interval is ±{100 * now:.2f} points, so runs "
            f"like these would resolve a true difference {100 * now:.2f} points {side} {bound} "
            f"about half the time and one {100 * 2 * now:.2f} points {side} it nearly always")
    if claim.n_seeds < 2:
        text += ("; a second seed is needed before the spread between seeds is measured at "
                 "all")
    elif claim.n_seeds < more_seeds:
        later = detectable_effect(claim, more_seeds)
        text += (f"; with {more_seeds} seeds instead of {claim.n_seeds} the interval would "
                 f"be ±{100 * later:.2f} points at best (if the spread between seeds dominates "
                 "it)")
    return (text + ". Seeds cannot undo what the caveats above name: a budget too short, the "
            "128 px grid (the resolution check), the phantom in place of real scans; those "
            "need longer runs, the 256 px runs, the real data on a GPU.")


def claims_markdown(claims: Sequence[Claim]) -> str:
    """Each claim as a numbered paragraph for the page: its verdict, its caveats first, then
    its rule and evidence (Dice points)."""
    parts = []
    for i, c in enumerate(claims, 1):
        lines = [f"**({i}) {c.statement}: {c.verdict}.**", ""]
        lines += [f"- {note}" for note in c.caveats]
        evidence = ("no difference measured" if not np.isfinite(c.difference) else
                    f"difference {100 * c.difference:+.2f} points, 95 % interval "
                    f"{100 * c.ci_low:+.2f} to {100 * c.ci_high:+.2f}, {c.n_seeds} "
                    f"seed{'s' if c.n_seeds != 1 else ''} (fewest of any model compared), "
                    f"{c.n_subjects} test subjects")
        lines += [f"- Rule: {c.rule}.", f"- Evidence: {evidence}."]
        decide = what_would_decide(c)
        if decide:
            lines.append(f"- {decide}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)
