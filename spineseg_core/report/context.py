"""Does context across slices help? The context study's rule, evidence and tables.

The paper's future work names 3D context as what 2D slice models lack. The context study
trains, with one code version and the same seeds and held-out test subjects, U-Net and
DeepLabv3+ in 2D, their 2.5D variants (3 and 5 slices as channels) and a 3D U-Net over whole
volumes: in a group of its own (``<profile>-context``, ``scripts/context_study.sh``), or, in
the plateau re-run, in the main group beside the twelve (:mod:`spineseg_core.study.
context_study`). ``spineseg aggregate`` tables those runs apart (``context.csv``,
``context_per_case.csv.gz``) and records their group in ``bundle.json``
(:func:`study_group`).

**The rule** (:func:`context_claims`): for each context model, its Dice minus its 2D
baseline's (:data:`BASELINES`), from the same paired hierarchical bootstrap over seeds and test
subjects as the paper's claims (:mod:`spineseg_core.report.claims`): "holds" when the whole 95 %
interval is above 0, "does not hold" when it is wholly below, "not resolved at this scale"
otherwise, and also when a model or its baseline was not run. Dice here is the claims' Dice:
per seed the Dice of the counts pooled over the test subjects (so a subject's slices count
together, as in 3D), mean over seeds. Fewer than three seeds adds a caveat.

**The level rule** (:func:`context_level_claims`): the same comparison for the share of
subjects with every level named right (``spineseg levels --group <profile>-context``,
:mod:`spineseg_core.levels`), as each model predicts it: the rate is a recall of counts
(:func:`spineseg_core.levels.stats.rate_frame`), so the same bootstrap, paired on the test
subjects, gives its difference's interval. :func:`context_levels` tables the identification
and all-levels-right rates of each context model beside its baseline's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from spineseg_core.fingerprint import describe
from spineseg_core.levels.study import Metric, Stage
from spineseg_core.report.bundle import Bundle, pct
from spineseg_core.report.claims import (
    N_BOOT,
    Claim,
    Verdict,
    _arms,
    downgrade,
    interval_verdict,
    scale_reasons,
    study_caveats,
)
from spineseg_core.report.facts import seed_counts
from spineseg_core.study.context_study import BASELINES, STUDY
from spineseg_core.study.stats import Resampling

SCRIPT = "scripts/context_study.sh"
"""What makes the context study's runs in a group of their own (the cpu profile's seven
models, three seeds)."""

SEEDS_WANTED = 3
"""Seeds the study plans per model (issue 13); fewer adds a caveat."""

RULE = ("Dice of the context model minus its 2D baseline's, paired on seeds' test subjects; "
        "holds when the whole 95 % interval is above 0, does not hold when it is wholly below")

LEVEL_RULE = ("share of test subjects with every level named right, as predicted, by the "
              "context model minus its 2D baseline's, paired on test subjects (each model's "
              "seeds weighted on their own); holds when the whole 95 % interval is above 0, "
              "does not hold when it is wholly below")


def group(profile: str) -> str:
    """The context study's own group of runs for ``profile`` (``cpu`` gives ``cpu-context``)."""
    from spineseg_core.study.runner import group_name

    return group_name(profile, variant=STUDY)


def study_group(profile: str, study: dict[str, Any] | None = None) -> str:
    """The group the bundle's context study comes from: ``study`` (``bundle.json``'s
    ``studies.context``) names it (``cpu`` when its models were trained in the main group),
    else it is the study's own group (:func:`group`)."""
    return str((study or {}).get("group") or group(profile))


def levels_command(profile: str, study: dict[str, Any] | None = None) -> str:
    """The command that measures the context study's levels into the bundle."""
    return f"spineseg levels --group {study_group(profile, study)}"


def _name(model: str) -> str:
    from spineseg_core.models import model_info

    return model_info(model).display_name


def _paired_claims(frame: pd.DataFrame | None, metric: str, models: Sequence[str], key: str,
                   statement: str, rule: str, lacking_text: str, n_boot: int, seed: int,
                   convergence: pd.DataFrame | None = None,
                   runs: pd.DataFrame | None = None,
                   resampling: Resampling = Resampling.BAYESIAN) -> list[Claim]:
    """One claim per context model of ``models`` against its baseline, from ``frame``: the
    per-subject counts of each ``model`` (``model, seed, case_id, class_value, tp, fp, fn,
    tn``) of which ``metric`` is taken (:func:`spineseg_core.study.stats.paired_arms`).
    ``statement`` and ``lacking_text`` are formats of ``{model}``/``{base}`` and ``{name}``.
    A verdict of either side whose model or baseline is still on the steep part of its
    learning curve (``convergence``: the group's ``context_convergence.csv``) is "not resolved
    at this scale", as the claims chapter's are: a longer budget could reverse it. So is one
    whose model or baseline fails the background check in a run (``runs``: ``context.csv``;
    :func:`~spineseg_core.report.claims.scale_reasons`): that model has not learned the task
    within the budget. And so is a verdict on one seed."""
    present = set() if frame is None or not len(frame) else set(frame["model"])
    arms = None
    if present:
        rows = frame[frame["model"].isin(set(models) | {BASELINES[m] for m in models})]
        arms = _arms(rows, ["model"], n_boot, seed, metric, resampling) if len(rows) else None
    claims = []
    for model in models:
        base = BASELINES[model]
        said = statement.format(model=_name(model), base=_name(base))
        lacking = [_name(m) for m in (model, base) if m not in present]
        if lacking or arms is None:
            claims.append(Claim(f"{key}-{model}", said, rule, Verdict.UNRESOLVED,
                                caveats=tuple(f"Missing: {lacking_text.format(name=n)}."
                                              for n in lacking)))
            continue
        comp = arms.compare(f"{_name(model)} - {_name(base)}", model, base)
        n_seeds = arms.n_seeds([model, base])
        caveats = ((f"{n_seeds} of the {SEEDS_WANTED} seeds the study runs.",)
                   if n_seeds < SEEDS_WANTED else ())
        claim = Claim(f"{key}-{model}", said, rule, interval_verdict(comp.ci_low, comp.ci_high),
                      comp.difference, comp.ci_low, comp.ci_high, n_seeds, arms.n_subjects,
                      caveats, (comp,))
        claims.append(downgrade(claim, scale_reasons(
            [model, base], n_seeds, runs=runs, convergence=convergence,
            where="scores table, last column")))
    return claims


def context_claims(per_case: pd.DataFrame | None, n_boot: int = N_BOOT, seed: int = 0,
                   models: Sequence[str] = tuple(BASELINES),
                   convergence: pd.DataFrame | None = None,
                   runs: pd.DataFrame | None = None) -> list[Claim]:
    """One claim per context model of ``models``: "<model> beats <its 2D baseline>".

    ``per_case``: the context group's per-subject counts (``model, seed, case_id, class_value,
    tp, fp, fn, tn``; ``context_per_case.csv.gz``), or ``None`` when the study was not run. A
    model or baseline without runs gives "not resolved at this scale" with a "Missing:" caveat;
    one still on the steep part of its curve (``convergence``, ``context_convergence.csv``)
    or failing the background check (``runs``, ``context.csv``) makes the verdict "not
    resolved at this scale" too.
    """
    return _paired_claims(per_case, "dice", models, "context", "{model} beats {base} (2D)",
                          RULE, "runs of {name} in the context study", n_boot, seed,
                          convergence, runs)


def level_frame(subjects: pd.DataFrame) -> pd.DataFrame:
    """``subjects.csv`` of the context group as per-subject counts for the bootstrap: per
    model, seed and subject, ``tp`` 1 when every level is right as predicted, else ``fn`` 1
    (:func:`spineseg_core.levels.stats.rate_frame`)."""
    from spineseg_core.levels.stats import rate_frame

    predicted = subjects[subjects["stage"] == str(Stage.PREDICTED)].assign(one=1)
    frames = [rate_frame(rows, "all_right", "one").assign(model=model)
              for model, rows in predicted.groupby("model", sort=False)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def context_level_claims(subjects: pd.DataFrame | None, n_boot: int = N_BOOT, seed: int = 0,
                         models: Sequence[str] = tuple(BASELINES),
                         convergence: pd.DataFrame | None = None,
                         runs: pd.DataFrame | None = None) -> list[Claim]:
    """One claim per context model of ``models``: "<model> names every level right more often
    than <its 2D baseline>", on the share of subjects with every level right as predicted
    (:data:`LEVEL_RULE`). ``subjects``: the context group's ``subjects.csv`` (``model, seed,
    case_id, stage, all_right``), or ``None`` when its levels were not measured; a model or
    baseline without level tables gives "not resolved at this scale" with a "Missing:"
    caveat, and so do a steep learning curve and a failed background check (``convergence``,
    ``runs``, as :func:`context_claims`)."""
    from spineseg_core.levels.stats import RATES

    needed = {"model", "seed", "case_id", "stage", "all_right"}
    frame = (level_frame(subjects) if subjects is not None and len(subjects)
             and needed <= set(subjects.columns) else None)
    return _paired_claims(frame, "recall", models, "context-levels",
                          "{model} names every level right more often than {base} (2D)",
                          LEVEL_RULE, "level tables of {name} in the context study", n_boot,
                          seed, convergence, runs, RATES)


LEVEL_METRICS: tuple[Metric, ...] = (Metric.IDENTIFICATION, Metric.ALL_RIGHT)
"""What :func:`context_levels` shows of ``summary.csv``: the share of levels named right, the
share of subjects with every level right."""

ARMS: tuple[str, ...] = ("model", "baseline")


def context_levels(summary: pd.DataFrame | None, models: Sequence[str] = tuple(BASELINES)
                   ) -> pd.DataFrame | None:
    """Per context model of ``models`` whose level tables (or its baseline's) exist, in that
    order: ``model, display_name, baseline, baseline_name`` and, per metric of
    :data:`LEVEL_METRICS` and arm of :data:`ARMS`, ``<metric>_<arm>_point``, ``_ci_low``,
    ``_ci_high`` as predicted (NaN for an arm not measured); ``None`` when none is.
    ``summary``: the context group's ``summary.csv`` (:func:`spineseg_core.levels.study.
    summary_table`)."""
    if summary is None or not len(summary):
        return None
    shown = summary[(summary["stage"] == str(Stage.PREDICTED))
                    & summary["metric"].isin([str(m) for m in LEVEL_METRICS])
                    ].set_index(["model", "metric"])
    measured = set(shown.index.get_level_values("model"))
    rows = []
    for model in models:
        base = BASELINES[model]
        if not {model, base} & measured:
            continue
        row: dict[str, Any] = {"model": model, "display_name": _name(model), "baseline": base,
                               "baseline_name": _name(base)}
        for metric in LEVEL_METRICS:
            for arm, who in zip(ARMS, (model, base)):
                for k in ("point", "ci_low", "ci_high"):
                    row[f"{metric}_{arm}_{k}"] = (float(shown.loc[(who, str(metric)), k])
                                                  if (who, str(metric)) in shown.index
                                                  else float("nan"))
        rows.append(row)
    return pd.DataFrame(rows) if rows else None


def status_sentence(profile: str, study: dict[str, Any] | None,
                    about: dict[str, Any] | None) -> str:
    """What the bundle holds of the context study, as one sentence of Markdown for the chapter
    (commands and names in backticks), and when something is missing, the command that makes
    it. ``study``: ``bundle.json``'s ``studies.context`` (``n_runs``, ``models``,
    ``source_fingerprint``); ``about``: the group's level tables' ``about.json``."""
    name = study_group(profile, study)
    study = study or {}
    n_runs = int(study.get("n_runs") or 0)
    if not n_runs:
        return (f"This results bundle has no run of the context study yet (group `{name}`), "
                "so its tables below are empty and every verdict is not resolved at this "
                f"scale: `{SCRIPT}` trains its models on the cpu profile (`spineseg main "
                "--context-models` on any profile), `spineseg aggregate` tables them and "
                f"`{levels_command(profile, study)}` measures their levels.")
    models = study.get("models") or []
    code = str(study.get("source_fingerprint") or "")[:12]
    versions = describe(study.get("source_fingerprints") or {})
    runs = (f"{n_runs} run{'s' * (n_runs != 1)} of {len(models)} "
            f"model{'s' * (len(models) != 1)}")
    text = ((f"The study takes {runs} from the main group (`{name}`): the context models, "
             "trained there beside the paper's models, and their 2D baselines, "
             if name == profile else f"The group (`{name}`) holds {runs}, ")
            + (f"all of code version `{code}`." if code else
               f"of more than one code version: {versions}." if versions else
               "of more than one code version."))
    per_model = (about or {}).get("seeds_per_model")
    measured = (sum(len(seeds) for m, seeds in per_model.items() if m in models)
                if per_model and models else int((about or {}).get("records") or 0))
    if not measured:
        return text + (f" Their levels have not been measured yet "
                       f"(`{levels_command(profile, study)}`), so the level tables below are "
                       "empty.")
    n_subjects = (about or {}).get("n_subjects")
    return text + (f" The level tables measure {measured} of them"
                   + (f" on {n_subjects} test subjects." if n_subjects else "."))


def context_caveats(b: Bundle) -> list[str]:
    """What every verdict of the context chapter stands on, first on its page: the study's
    caveats (:func:`spineseg_core.report.claims.study_caveats`, from ``dataset.json``) and the
    context group's code version against the main runs' (``bundle.json``)."""
    bundle = b.json("bundle.json") or {}
    study = (bundle.get("studies") or {}).get(STUDY) or {}
    code = str(study.get("source_fingerprint") or "")[:12]
    name = study_group(b.profile(), study)
    if not study.get("n_runs"):
        own = (f"The context study (group `{name}`) has no run in this bundle yet; "
               "when it has, each context model is compared only with the 2D runs of that same "
               "group.")
    elif name == b.profile():
        version = (f"by the same version of the code (fingerprint `{code}`)" if code else
                   "by more than one version of the code ("
                   + describe(study.get("source_fingerprints") or {}) + "; the reproducibility "
                   "chapter says which model's runs come from which)")
        own = ("The context models were trained in the main group, at the main runs' budget "
               f"and {version}; each is compared "
               "with the main group's own runs of its 2D baseline, seed for seed, and the "
               "main tables leave the context models out.")
    else:
        main = str(bundle.get("source_fingerprint") or "")[:12]
        version = ("by more than one version of the code" if not code else
                   f"by the same version of the code as the main runs (fingerprint `{code}`)"
                   if code == main else
                   f"by another version of the code than the main runs (fingerprint `{code}`)")
        own = (f"The context study is a group of its own, made {version}; each context model "
               "is compared only with the 2D runs of that same group, never with the main "
               "tables.")
    table = b.csv("context.csv")
    seeds = seed_counts(table)
    if seeds and min(seeds.values()) < SEEDS_WANTED:  # said only while runs are missing
        own += (f" The study runs {SEEDS_WANTED} seeds of each of its {len(seeds)} models; "
                f"{sum(n < SEEDS_WANTED for n in seeds.values())} have fewer, and a verdict on "
                "one seed is not resolved.")
    # the seeds caveat counts the context study's own runs, not the main study's
    return [*study_caveats(b.json("dataset.json"), seeds or None), own]


SUMMARY_METRICS: tuple[str, ...] = ("dice", "dice3d_mean", "bg_recall", "absent_fraction",
                                    "train_seconds")
"""What :func:`context_summary` reports per model (means and sd over seeds)."""


def context_summary(table: pd.DataFrame | None) -> pd.DataFrame | None:
    """Per model of ``context.csv``: input kind, slices seen, seeds, and the mean and sd over
    seeds of :data:`SUMMARY_METRICS` (sd NaN for one seed); in the table's model order."""
    if table is None or not len(table):
        return None
    order = list(dict.fromkeys(table["model"]))
    grouped = table.groupby("model", sort=False)
    out = grouped.agg(display_name=("display_name", "first"), input_kind=("input_kind", "first"),
                      context=("context", "first"), n_seeds=("seed", "nunique"))
    for m in SUMMARY_METRICS:
        out[f"{m}_mean"] = grouped[m].mean()
        out[f"{m}_std"] = grouped[m].std(ddof=1)
    return out.loc[order].reset_index()


DEPTH_RESCORE = "unet3d_depth.csv"
"""A 3D run scored at its own depth and at its training depth (``scripts/rescore_3d_depth.py``),
in the budget seed's folder (``results/plateau/``)."""

DEPTH_COMMAND = "scripts/rescore_3d_depth.py"
"""What writes :data:`DEPTH_RESCORE`."""


def depth_sentence(rescore: pd.DataFrame | None, own_pin: str | None = None) -> str:
    """What the 3D U-Net's recorded scores lost to the depth padding mended in its scoring
    (:class:`~spineseg_core.models.base.VolumeSegmentationModel`'s ``min_depth``), as Markdown
    for the context chapter: its runs in the bundles were scored with each volume alone at its
    own depth, not padded as in training. ``rescore``: :data:`DEPTH_RESCORE`, the same weights
    scored both ways; without it, the defect is stated without its size. ``own_pin``: the
    commit of the 3D U-Net's own code version for the runs at the plateau budget
    (:func:`~spineseg_core.study.schedule.mend_pins`), if it has one."""
    lead = ("**How the 3D U-Net was scored.** Training pads every volume of a batch with zero "
            "slices to the deepest training volume's depth, while a scored volume came alone at "
            "its own depth, so the last slices of a shallower volume met a boundary the network "
            "had never trained on; the package now pads a scored volume to its training depth "
            "as well. The 3D U-Net's runs in these bundles were scored before that mend")
    if rescore is None or not len(rescore):
        return (lead + f", and how much it cost them has not been measured (`{DEPTH_COMMAND}` "
                "on a run's checkpoint). Its verdicts here carry that caveat.")
    by = rescore.set_index(["set", "how"])
    first = rescore.iloc[0]

    def both(name: str, column: str) -> str:
        return (f"{pct(by.loc[(name, 'own depth'), column])} % at its own depth against "
                f"{pct(by.loc[(name, 'training depth'), column])} % padded as in training")

    depth = int(by.loc[("test", "training depth"), "min_depth"])
    return (lead + f". Scored again both ways, the same weights (the budget seed's run of "
            f"{int(first['steps'])} optimiser steps, training depth {depth} slices) give a "
            f"validation Dice of {both('validation', 'dice')}; a test Dice of "
            f"{both('test', 'dice')}; and a test background recall of "
            f"{both('test', 'bg_recall')}. So its scores here understate it, and its verdicts "
            f"are not to be read as what a 3D U-Net reaches until a re-run scores it with the "
            f"mend" + (f"; its runs at the plateau budget are made again from a code version "
                       f"with the mend, commit {own_pin[:7]} (`CODE.unet3d` of the budget seed); "
                       f"short runs from both versions train it to the same weights, bit for "
                       f"bit, and only its scores differ (`mend_check.csv`)" if own_pin else "")
            + f". Data: `{DEPTH_RESCORE}` of the budget seed (`{DEPTH_COMMAND}`).")
