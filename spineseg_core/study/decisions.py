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

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from spineseg_core.errors import ConfigError
from spineseg_core.study.aggregate import LoadedRun, load_run
from spineseg_core.study.loss_study import LOSS_MODELS, late_scores, select_loss

LOSS_RUN_COLUMNS: tuple[str, ...] = ("group", "model", "loss", "seed", "val_dice",
                                     "val_late_bg_recall_min", "val_late_absent_max",
                                     "source_fingerprint")


def _records(groups: list[Path]) -> list[tuple[str, LoadedRun]]:
    """Every finished record of ``groups``, read as the study reads them
    (:func:`~spineseg_core.study.aggregate.load_run`), with its group's name."""
    from spineseg_core.training.run_folder import find_runs

    return [(g.name, load_run(d)) for g in groups if g.is_dir() for d in find_runs(g)]


def _one_code_version(runs: pd.DataFrame, what: str, where: Path) -> None:
    """Refuse runs of more than one source fingerprint: a decision compares its options, not
    code versions."""
    from spineseg_core.fingerprint import describe

    versions = runs["source_fingerprint"].value_counts(dropna=False)
    if len(versions) > 1:
        raise ConfigError(f"{what} under {where}: made by {len(versions)} code versions "
                          f"({describe(versions.to_dict())}); the choice needs one")


def loss_runs(records_dir: str | Path, models: tuple[str, ...] = LOSS_MODELS,
              main_group: str = "cpu") -> pd.DataFrame:
    """One row per run of ``models`` in ``records_dir``'s main group and its loss groups
    (``<main>-loss-<loss>``), with :data:`LOSS_RUN_COLUMNS`: its best validation Dice and
    its sanity over the second half of its epochs
    (:func:`~spineseg_core.study.loss_study.late_scores`)."""
    root = Path(records_dir)
    rows = []
    for group, run in _records([root / main_group, *sorted(root.glob(f"{main_group}-loss-*"))]):
        if run.key["model"] not in models:
            continue
        late = late_scores(run.history)
        rows.append(dict(group=group, model=run.key["model"], loss=run.key["loss"],
                         seed=run.key["seed"], val_dice=float(run.metrics["val_dice"]),
                         val_late_bg_recall_min=late["val_late_bg_recall_min"],
                         val_late_absent_max=late["val_late_absent_max"],
                         source_fingerprint=run.key["source_fingerprint"]))
    if not rows:
        raise ConfigError(f"loss runs: no record of {list(models)} under {root}/{main_group}*")
    return pd.DataFrame(rows, columns=list(LOSS_RUN_COLUMNS))


def loss_decision(records_dir: str | Path, models: tuple[str, ...] = LOSS_MODELS,
                  main_group: str = "cpu") -> tuple[str, str, pd.DataFrame, pd.DataFrame]:
    """The default loss from the records (:func:`loss_runs`, then
    :func:`~spineseg_core.study.loss_study.select_loss`): the loss, the reason, the per-loss
    table and the runs. Runs of more than one code version are refused."""
    runs = loss_runs(records_dir, models, main_group)
    _one_code_version(runs, "loss runs", Path(records_dir))
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
    for group, run in _records(sorted(root.glob("*-os*"))):
        stride = (run.params.get("model_kwargs") or {}).get("output_stride")
        if stride is None:
            continue
        rows.append(dict(group=group, model=run.key["model"], output_stride=int(stride),
                         image_size=int(run.params["image_size"]), seed=run.key["seed"],
                         val_dice=float(run.metrics["val_dice"]),
                         source_fingerprint=run.key["source_fingerprint"]))
    if not rows:
        raise ConfigError(f"stride runs: no record under {root}/*-os* (run scripts/stride_runs.sh)")
    return pd.DataFrame(rows, columns=list(STRIDE_RUN_COLUMNS))


def stride_decision(records_dir: str | Path, image_size: int, crop_width: float | None,
                    models: Sequence[str] | None = None
                    ) -> tuple[int, pd.DataFrame, pd.DataFrame]:
    """``k`` of the stride rule from the stride runs' records (:func:`stride_runs`, then
    :func:`~spineseg_core.models.stride.choose_k`, over ``models``, default every model the
    candidates move): ``k``, the candidates' table and the runs. Runs of more than one code
    version are refused, and so are records that lack a run a candidate needs."""
    from spineseg_core.models.stride import choose_k

    runs = stride_runs(records_dir)
    _one_code_version(runs, "stride runs", Path(records_dir))
    k, table = choose_k(runs, image_size, crop_width, models=models)
    return k, table, runs
