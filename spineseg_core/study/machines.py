"""Which machine types made a study's runs, and for how long (issue 25: the CPU differs
between sittings and cannot be chosen, so the book shows the runs per machine type).

Read from the committed records themselves (each ``params.json`` keeps the env stamp of the
machine that trained it, ``metrics.json`` its training seconds), so it needs no aggregation
and counts a study still under way. Hard-case groups hold a run's scores on another test set,
not runs: they are left out.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from spineseg_core.envinfo import machine
from spineseg_core.errors import DataError
from spineseg_core.study.hard_cases import is_hard_group

UNRECORDED = "machine not recorded"
"""What stands for the machine of a record whose ``params.json`` keeps no env stamp."""

MACHINE_COLUMNS: tuple[str, ...] = ("machine", "runs", "models", "train_hours")
"""The columns of :func:`machine_table` before the per-family run counts."""


def record_machines(records: str | Path) -> pd.DataFrame:
    """One row per finished record under ``records`` (``<group>/<model>/seed_*/fold_*``):
    group, model, family, seed, machine and training seconds."""
    from spineseg_core.models import model_info

    rows = []
    for params in sorted(Path(records).glob("*/*/seed_*/fold_*/params.json")):
        run = params.parent
        group = run.parents[2].name
        if is_hard_group(group) or not (run / "metrics.json").is_file():
            continue
        try:
            env = json.loads(params.read_text()).get("env") or {}
            metrics = json.loads((run / "metrics.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise DataError(params, f"not a readable record ({e})") from e
        model = run.parents[1].name
        try:
            family = str(model_info(model).family)
        except KeyError:
            family = "unknown model"
        rows.append({"group": group, "model": model, "family": family,
                     "seed": int(run.parent.name.removeprefix("seed_")),
                     "machine": machine(env) or UNRECORDED,
                     "train_seconds": float(metrics.get("train_seconds") or 0.0)})
    return pd.DataFrame(rows, columns=["group", "model", "family", "seed", "machine",
                                       "train_seconds"])


def machine_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per machine type (most runs first): its runs, the distinct models, the training hours,
    and its runs per family (one column per family present, in :class:`~spineseg_core.models.
    registry.Family` order), so a family trained on one machine type alone is seen at once."""
    from spineseg_core.models.registry import Family

    if runs.empty:
        return pd.DataFrame(columns=list(MACHINE_COLUMNS))
    present = set(runs["family"])
    families = [str(f) for f in Family if str(f) in present] + sorted(
        present - {str(f) for f in Family})
    table = runs.groupby("machine", sort=False).agg(
        runs=("model", "size"), models=("model", "nunique"),
        train_hours=("train_seconds", lambda s: s.sum() / 3600.0))
    counts = pd.crosstab(runs["machine"], runs["family"]).reindex(columns=families, fill_value=0)
    table = table.join(counts).reset_index()
    return table.sort_values(["runs", "machine"], ascending=[False, True], kind="stable",
                             ignore_index=True)
