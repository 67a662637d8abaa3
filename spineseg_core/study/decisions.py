"""The protocol's two choices made on validation runs, read from their records (issue 24, parts 4-5).

* **The default loss** (:func:`loss_decision`): the loss runs of
  :data:`~spineseg_core.study.loss_study.LOSS_MODELS` and the same models' main runs, each
  run's best validation Dice and its sanity over the second half of its validated epochs
  (:func:`~spineseg_core.study.loss_study.late_scores`), go to
  :func:`~spineseg_core.study.loss_study.select_loss`.
* **The stride rule's** ``k`` (:func:`stride_decision`): the stride runs' best validation Dice
  per model and stride go to :func:`~spineseg_core.models.stride.choose_k`.

Neither reads a test score. ``spineseg decide`` prints both and writes their tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from spineseg_core.errors import ConfigError
from spineseg_core.study.loss_study import LOSS_MODELS, late_scores, select_loss

LOSS_RUN_COLUMNS: tuple[str, ...] = ("group", "model", "loss", "seed", "val_dice",
                                     "val_late_bg_recall_min", "val_late_absent_max",
                                     "source_fingerprint")


def _fingerprint(params: dict) -> str | None:
    return (params.get("env") or {}).get("source_fingerprint")


def loss_runs(records_dir: str | Path, models: tuple[str, ...] = LOSS_MODELS,
              main_group: str = "cpu") -> pd.DataFrame:
    """One row per run of ``models`` in ``records_dir``'s main group and its loss groups
    (``<main>-loss-<loss>``), with :data:`LOSS_RUN_COLUMNS`, read from each record's
    ``params.json``, ``metrics.json`` (``val_dice``) and ``history.csv``."""
    root = Path(records_dir)
    groups = [root / main_group, *sorted(root.glob(f"{main_group}-loss-*"))]
    rows = []
    for group in groups:
        for model in models:
            for record in sorted((group / model).glob("seed_*/fold_*")):
                params = json.loads((record / "params.json").read_text())
                metrics = json.loads((record / "metrics.json").read_text())
                late = late_scores(pd.read_csv(record / "history.csv"))
                rows.append(dict(group=group.name, model=model, loss=params["loss"],
                                 seed=int(params["seed"]), val_dice=float(metrics["val_dice"]),
                                 val_late_bg_recall_min=late["val_late_bg_recall_min"],
                                 val_late_absent_max=late["val_late_absent_max"],
                                 source_fingerprint=_fingerprint(params)))
    if not rows:
        raise ConfigError(f"loss runs: no record of {list(models)} under {root}/{main_group}*")
    return pd.DataFrame(rows, columns=list(LOSS_RUN_COLUMNS))


def loss_decision(records_dir: str | Path, models: tuple[str, ...] = LOSS_MODELS,
                  main_group: str = "cpu") -> tuple[str, str, pd.DataFrame, pd.DataFrame]:
    """The default loss from the records (:func:`loss_runs`, then
    :func:`~spineseg_core.study.loss_study.select_loss`): the loss, the reason, the per-loss
    table and the runs. Runs of more than one code version are refused: the choice compares
    losses, not code."""
    runs = loss_runs(records_dir, models, main_group)
    versions = runs["source_fingerprint"].dropna().unique()
    if len(versions) > 1:
        raise ConfigError(f"loss runs under {records_dir}: made by {len(versions)} code versions "
                          f"({', '.join(v[:12] for v in versions)}); the choice needs one")
    try:
        loss, reason, table = select_loss(runs, models)
    except ValueError as e:
        raise ConfigError(f"{records_dir}: {e}") from None
    return loss, reason, table, runs


STRIDE_RUN_COLUMNS: tuple[str, ...] = ("group", "model", "output_stride", "image_size", "seed",
                                       "val_dice", "source_fingerprint")


def stride_runs(records_dir: str | Path) -> pd.DataFrame:
    """One row per stride run under ``records_dir`` (groups ``<profile>-os<s>``, from
    ``scripts/stride_runs.sh``) with :data:`STRIDE_RUN_COLUMNS`: the stride each was built
    with (its ``model_kwargs``) and its best validation Dice."""
    root = Path(records_dir)
    rows = []
    for record in sorted(root.glob("*-os*/*/seed_*/fold_*")):
        params = json.loads((record / "params.json").read_text())
        stride = (params.get("model_kwargs") or {}).get("output_stride")
        if stride is None:
            continue
        metrics = json.loads((record / "metrics.json").read_text())
        rows.append(dict(group=record.parents[2].name, model=params["model"],
                         output_stride=int(stride), image_size=int(params["image_size"]),
                         seed=int(params["seed"]), val_dice=float(metrics["val_dice"]),
                         source_fingerprint=_fingerprint(params)))
    if not rows:
        raise ConfigError(f"stride runs: no record under {root}/*-os* (run scripts/stride_runs.sh)")
    return pd.DataFrame(rows, columns=list(STRIDE_RUN_COLUMNS))


def stride_decision(records_dir: str | Path, image_size: int, crop_width: float | None
                    ) -> tuple[int, pd.DataFrame, pd.DataFrame]:
    """``k`` of the stride rule from the stride runs' records (:func:`stride_runs`, then
    :func:`~spineseg_core.models.stride.choose_k`): ``k``, the candidates' table and the runs.
    Runs of more than one code version are refused."""
    from spineseg_core.models.stride import choose_k

    runs = stride_runs(records_dir)
    versions = runs["source_fingerprint"].dropna().unique()
    if len(versions) > 1:
        raise ConfigError(f"stride runs under {records_dir}: made by {len(versions)} code "
                          f"versions ({', '.join(v[:12] for v in versions)}); the choice needs one")
    k, table = choose_k(runs, image_size, crop_width)
    return k, table, runs
