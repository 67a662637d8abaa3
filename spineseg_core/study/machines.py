"""Which machine types made a study's runs, and for how long (issue 25: the CPU differs
between sittings and cannot be chosen, so the book shows the runs per machine type).

Read from the committed records themselves (each ``params.json`` keeps the env stamp of the
machine that trained it, ``metrics.json`` its training seconds), so it needs no aggregation
and counts a study still under way. Hard-case groups hold a run's scores on another test set,
not runs: :func:`record_stamps` marks them and :func:`machine_table` leaves them out.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from spineseg_core.envinfo import machine
from spineseg_core.errors import ConfigError, DataError
from spineseg_core.study.hard_cases import is_hard_group

UNRECORDED = "machine not recorded"
"""What stands for the machine of a record whose ``params.json`` keeps no env stamp."""

MACHINE_COLUMNS: tuple[str, ...] = ("machine", "runs", "models", "train_hours")
"""The columns of :func:`machine_table` before the per-family run counts."""


STAMP_COLUMNS: tuple[str, ...] = ("group", "model", "family", "seed", "hard", "machine",
                                  "source_fingerprint", "train_seconds", "image_size", "record")
"""The columns of :func:`record_stamps`."""


def record_stamps(records: str | Path | None) -> pd.DataFrame:
    """One row per finished record under ``records`` (``<group>/<model>/seed_*/fold_*`` with a
    ``metrics.json``): its group, model, family, seed, whether the group is a hard-case one
    (a run's scores, not a run), the machine and code fingerprint its env stamp names, its
    training seconds, its image size and its folder (``record``, for the files not read here,
    such as :func:`spineseg_core.study.schedule.wall_rates`'s histories); no rows for ``None``,
    no results folder. Each record's two small JSON files are read once here, for every table
    that counts records."""
    from spineseg_core.models import model_info

    rows = []
    found = Path(records).glob("*/*/seed_*/fold_*/params.json") if records is not None else ()
    for params in sorted(found):
        run = params.parent
        if not (run / "metrics.json").is_file():
            continue
        try:
            stated = json.loads(params.read_text())
            metrics = json.loads((run / "metrics.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise DataError(params, f"not a readable record ({e})") from e
        env, group, model = stated.get("env") or {}, run.parents[2].name, run.parents[1].name
        try:
            family = str(model_info(model).family)
        except ConfigError:
            family = "unknown model"
        rows.append({"group": group, "model": model, "family": family,
                     "seed": int(run.parent.name.removeprefix("seed_")),
                     "hard": is_hard_group(group), "machine": machine(env) or UNRECORDED,
                     "source_fingerprint": env.get("source_fingerprint"),
                     "train_seconds": float(metrics.get("train_seconds") or 0.0),
                     "image_size": stated.get("image_size"), "record": str(run)})
    return pd.DataFrame(rows, columns=list(STAMP_COLUMNS)).astype({"hard": bool})


def machine_table(stamps: pd.DataFrame) -> pd.DataFrame:
    """Per machine type (most runs first) of the runs of ``stamps`` (:func:`record_stamps`;
    hard-case scores left out): its runs, the distinct models, the training hours,
    and its runs per family (one column per family present, in :class:`~spineseg_core.models.
    registry.Family` order), so a family trained on one machine type alone is seen at once."""
    from spineseg_core.models.registry import Family

    runs = stamps[~stamps["hard"]] if "hard" in stamps else stamps
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
