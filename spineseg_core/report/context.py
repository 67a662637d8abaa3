"""Does context across slices help? The context study's rule, evidence and tables.

The paper's future work names 3D context as what 2D slice models lack. The context study
(group ``<profile>-context``, ``scripts/context_study.sh``) trains, with one code version and
the same seeds and held-out test subjects, U-Net and DeepLabv3+ in 2D, their 2.5D variants (3
and 5 slices as channels) and a 3D U-Net over whole volumes. ``spineseg aggregate`` tables
those runs apart (``context.csv``, ``context_per_case.csv``).

**The rule** (:func:`context_claims`): for each context model, its Dice minus its 2D
baseline's (:data:`BASELINES`), from the same paired hierarchical bootstrap over seeds and test
subjects as the paper's claims (:mod:`spineseg_core.report.claims`): "holds" when the whole 95 %
interval is above 0, "does not hold" when it is wholly below, "not resolved at this scale"
otherwise, and also when a model or its baseline was not run. Dice here is the claims' Dice:
per seed the Dice of the counts pooled over the test subjects (so a subject's slices count
together, as in 3D), mean over seeds. Fewer than three seeds adds a caveat.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from spineseg_core.report.claims import (N_BOOT, Claim, Verdict, _Arms, _arms, interval_verdict)

BASELINES: dict[str, str] = {
    "unet_25d3": "unet", "unet_25d5": "unet", "unet3d": "unet",
    "deeplabv3plus_25d3": "deeplabv3plus", "deeplabv3plus_25d5": "deeplabv3plus",
}
"""Each context model and the 2D model it is compared with (its own network, or for the 3D
U-Net, the 2D U-Net)."""

SEEDS_WANTED = 3
"""Seeds the study plans per model (issue 13); fewer adds a caveat."""

RULE = ("Dice of the context model minus its 2D baseline's, paired on seeds' test subjects; "
        "holds when the whole 95 % interval is above 0, does not hold when it is wholly below")


def _name(model: str) -> str:
    from spineseg_core.models import model_info

    return model_info(model).display_name


def context_claims(per_case: pd.DataFrame | None, n_boot: int = N_BOOT, seed: int = 0,
                   models: Sequence[str] = tuple(BASELINES)) -> list[Claim]:
    """One claim per context model of ``models``: "<model> beats <its 2D baseline>".

    ``per_case``: the context group's per-subject counts (``model, seed, case_id, class_value,
    tp, fp, fn, tn``; ``context_per_case.csv``), or ``None`` when the study was not run. A
    model or baseline without runs gives "not resolved at this scale" with a "Missing:" caveat.
    """
    present = set() if per_case is None or not len(per_case) else set(per_case["model"])
    arms: _Arms | None = None
    if present:
        rows = per_case[per_case["model"].isin(set(models) | {BASELINES[m] for m in models})]
        arms = _arms(rows, ["model"], n_boot, seed) if len(rows) else None
    claims = []
    for model in models:
        base = BASELINES[model]
        statement = f"{_name(model)} beats {_name(base)} (2D)"
        lacking = [_name(m) for m in (model, base) if m not in present]
        if lacking or arms is None:
            claims.append(Claim(f"context-{model}", statement, RULE, Verdict.UNRESOLVED,
                                caveats=tuple(f"Missing: runs of {n} in the context study."
                                              for n in lacking)))
            continue
        comp = arms.compare(f"{_name(model)} - {_name(base)}", model, base)
        n_seeds = arms.n_seeds([model, base])
        caveats = ((f"{n_seeds} seed{'s' * (n_seeds != 1)} of the {SEEDS_WANTED} planned.",)
                   if n_seeds < SEEDS_WANTED else ())
        claims.append(Claim(f"context-{model}", statement, RULE,
                            interval_verdict(comp.ci_low, comp.ci_high), comp.difference,
                            comp.ci_low, comp.ci_high, n_seeds, arms.n_subjects, caveats,
                            (comp,)))
    return claims


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
