"""Level identification on the phantom's hard cases, against the same subjects without them.

``spineseg hardcases`` scores each run on the hard-case twins of its test subjects
(:mod:`spineseg_core.study.hard_cases`: groups ``<group>-hard-<set>``) and ``spineseg levels``
measures each such group as any other (:func:`hard_case_study`: into ``<out>/<hard group>/``
beside the group's own tables, and ``<out>/hard_cases.csv``). Here a hard-case group meets its
source group: per
model, set, stage (as predicted, relabelled from the sacrum) and metric, the rate on the default
twins, on the hard twins, and their difference, paired on seeds and subjects (the same subjects
with and without the hard case, :func:`~spineseg_core.levels.stats.stage_intervals`). Only the
seeds scored on hard cases take part on both sides.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from spineseg_core import io
from spineseg_core.levels.stats import rate_frame, stage_intervals
from spineseg_core.study.hard_cases import HardSet, hard_group

HARD_COLUMNS: tuple[str, ...] = (
    "model", "display_name", "set", "stage", "metric", "default", "default_low", "default_high",
    "hard", "hard_low", "hard_high", "difference", "difference_low", "difference_high",
    "n_seeds", "n_subjects")
"""Columns of ``hard_cases.csv``."""

_RATES = {"all_levels_right": ("all_right", None), "identification": ("n_right", "n_levels")}


def _frame(subjects: pd.DataFrame, metric: str) -> pd.DataFrame:
    successes, trials = _RATES[metric]
    t = subjects.assign(_one=1)
    return rate_frame(t, successes, trials or "_one")


def hard_case_table(subjects: Mapping[str, pd.DataFrame], group: str, n_boot: int = 1000,
                    seed: int = 0) -> pd.DataFrame:
    """``subjects``: each group's ``subjects.csv`` by group name (``group`` and its hard-case
    groups); one row per model, set, stage and metric (:data:`HARD_COLUMNS`)."""
    from spineseg_core.levels.study import display_name, model_order

    source = subjects[group]
    rows = []
    for hard in HardSet:
        frame = subjects.get(hard_group(group, hard))
        if frame is None or frame.empty:
            continue
        for model in model_order(list(frame["model"].unique())):
            h = frame[frame["model"] == model]
            d = source[source["model"] == model]
            seeds = sorted(set(h["seed"]) & set(d["seed"]))  # seeds scored on both
            if not seeds:
                continue
            h, d = h[h["seed"].isin(seeds)], d[d["seed"].isin(seeds)]
            cases = sorted(set(h["case_id"]) & set(d["case_id"]))
            for stage in sorted(set(h["stage"])):
                hs = h[(h["stage"] == stage) & h["case_id"].isin(cases)]
                ds = d[(d["stage"] == stage) & d["case_id"].isin(cases)]
                for metric in _RATES:
                    # The paired two-arm bootstrap of the relabelling, reused: its "before"
                    # arm is the default twin, its "after" arm the hard twin.
                    iv = stage_intervals(_frame(ds, metric), _frame(hs, metric), "recall",
                                         n_boot, seed)
                    rows.append({"model": model, "display_name": display_name(model),
                                 "set": hard.value, "stage": stage, "metric": metric,
                                 **{f"{k}{s}": v for k, name in (("default", "predicted"),
                                                                ("hard", "relabelled"),
                                                                ("difference", "difference"))
                                    for s, v in zip(("", "_low", "_high"), iv[name])},
                                 "n_seeds": len(seeds), "n_subjects": len(cases)})
    return pd.DataFrame(rows, columns=list(HARD_COLUMNS))


HARD_CASES = "hard_cases.csv"
"""The table of :func:`hard_case_table`, in the source group's levels folder."""


def hard_groups(runs_dir: str | Path, group: str) -> list[str]:
    """The hard-case groups of ``group`` with runs under ``runs_dir``, in :class:`HardSet`
    order."""
    from spineseg_core.training.run_folder import find_runs

    names = [hard_group(group, h) for h in HardSet]
    return [n for n in names if find_runs(Path(runs_dir) / n)]


def hard_case_study(runs_dir: str | Path, group: str, out_dir: str | Path, n_boot: int = 1000,
                    seed: int = 0) -> dict[str, Path]:
    """Measure each hard-case group of ``group`` into ``<out_dir>/<hard group>/`` and write
    ``<out_dir>/hard_cases.csv`` against ``group``'s own ``subjects.csv`` (measured first,
    :func:`~spineseg_core.levels.study.level_study`); the files written, by group (and
    ``"hard_cases"``). Nothing when ``group`` has no hard-case runs (an old table is removed:
    it would describe runs that are gone)."""
    from spineseg_core.levels.study import FILES, level_study

    out = Path(out_dir)
    found = hard_groups(runs_dir, group)
    if not found:
        (out / HARD_CASES).unlink(missing_ok=True)
        return {}
    written: dict[str, Path] = {}
    subjects = {group: pd.read_csv(out / FILES["subjects"])}
    for name in found:
        level_study(runs_dir, out / name, name, n_boot=n_boot, seed=seed)
        subjects[name] = pd.read_csv(out / name / FILES["subjects"])
        written[name] = out / name
    table = hard_case_table(subjects, group, n_boot, seed)
    io.write_with(out / HARD_CASES, lambda tmp: table.to_csv(tmp, index=False))
    written["hard_cases"] = out / HARD_CASES
    return written
