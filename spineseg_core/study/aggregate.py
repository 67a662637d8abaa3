"""Aggregation: the finished run folders of a profile → the small tidy files the book reads.

:func:`aggregate` reads every run folder under ``<runs_dir>/<profile>/`` (the run-folder
contract of CONTRIBUTING.md) and writes, atomically, into ``results/<profile>/``:

============================  ==============================================================
``runs.csv``                  one row per run: model, display name, family, seed, fold, loss,
                              device, precision, source fingerprint and every ``metrics.json``
                              field
``models.csv``                per model: runs and seeds, mean and sd over seeds of each metric
                              (sd NaN for one seed), its point estimate and a hierarchical
                              bootstrap 95 % CI over seeds and evaluated subjects
                              (:func:`bootstrap_ci`)
``per_class.csv``             model x class: mean over runs of each per-class score
``history.csv``               every run's per-epoch history, stacked
``convergence.csv``           per model: where its mean validation Dice curve stands at the
                              end (:func:`convergence_table`: past its steep part or not)
``per_case.csv.gz``           every run's per-subject table, stacked
``classes.csv``               per class: share of test subjects and of pixels it covers
``dataset.json``              what the runs trained on (phantom or real, sizes, split)
``figure18.npz``              the best, median and worst test slices that show the spine (by
                              Dice averaged over models), with every model's prediction on them
``losses.csv``                runs of the loss comparison (groups ``<profile>-loss-<loss>``)
``variants.csv``              runs of the side-study groups ``<profile>-<variant>`` (e.g. the
                              resolution check's ``cpu-res256``, ``cpu-os32``) and the profile's
                              runs of the same models: image size, output stride, Dice, sanity
``groups_per_case.csv.gz``    per-subject counts of every loss and side-study run (group, loss)
``baseline.csv``              with ``--baseline``: every training-pool subject's mask pasted on
                              every test subject, its test Dice (:mod:`.baseline`), best first
``validation_classes.csv``    with ``--baseline``: the share of the validation subjects holding
                              each class (:func:`.validation.presence`)
``plateau.csv``               per model: the plateau rule's label from the runs at the budget B
                              and the group ``<profile>-half`` at B/2 (:mod:`.plateau`), and
                              the same rule on their end-of-schedule scores (``end_*``,
                              :func:`.plateau.end_labels`)
``plateau_first.csv``         after a raised budget (:mod:`.budget_raise`): the labels at the
                              first budget, its runs (now ``<profile>-half``) against
                              ``<profile>-quarter``: the evidence that raised it
``context.csv``               runs of the context study (:func:`context_split`: the group
                              ``<profile>-context``, or the main group's context models and
                              their 2D baselines): model, input kind and slices, seed, test
                              metrics, fingerprint
``context_per_case.csv.gz``   their per-subject counts, for paired comparisons
``context_convergence.csv``   their learning curves' end (:func:`convergence_table`)
``bundle.json``               provenance (the runs' commits and source fingerprint) and a
                              SHA-256 of every other file of the folder
============================  ==============================================================

``losses.csv``, ``variants.csv``, ``groups_per_case.csv.gz`` and ``plateau.csv`` exist only
when such groups do. The three per-subject tables (``*.csv.gz``) are gzip-compressed, with no
name or time in the header (:func:`spineseg_core.io.gzip_bytes`): re-made, they hash the same.
All the runs of a bundle (side groups included) must come from one version of the code (one
source fingerprint, :mod:`spineseg_core.fingerprint`) unless ``allow_mixed_code`` says
otherwise. A *separate study* (:data:`SEPARATE_STUDIES`: the context study) is the exception that
proves the rule: its group holds its own 2D baselines, its comparisons stay inside it, so it
must be one code version of its own, which ``bundle.json`` records under ``studies``. When
its models were trained in the main group instead (the plateau re-run), they are one code
version with the twelve; the main tables leave them out all the same, and the study takes its
2D baselines from the main group (:func:`context_split`). A model with a code version of its
own (``own_code``: the plateau re-run's ``CODE.<model>`` pins,
:func:`spineseg_core.study.schedule.mend_pins`, for a defect mended on that model's path alone)
is the other exception: its runs of that fingerprint are counted apart (``bundle.json``'s
``own_code``), and any other fingerprint among them is refused like any mix.

Files another command writes into the same folder (``efficiency.csv``, ``bench.csv``) are
left alone and hashed into the bundle too.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from spineseg_core import io
from spineseg_core.data.prepare import RunData
from spineseg_core.envinfo import processor
from spineseg_core.errors import ConfigError, DataError, SpinesegError
from spineseg_core.labels import LABELS
from spineseg_core.study.context_study import BASELINES, STUDY, study_models
from spineseg_core.study.hard_cases import is_hard_group
from spineseg_core.study.loss_study import SANITY_METRICS
from spineseg_core.study.plateau import (
    HALF_VARIANT,
    QUARTER_VARIANT,
    end_labels,
    plateau_table,
)
from spineseg_core.study.stats import COUNT_COLUMNS, METRICS, bootstrap_ci
from spineseg_core.training.config import budget_exceptions, consensus_budget
from spineseg_core.training.run_folder import RunFolder, find_runs

SUMMARY_METRICS: tuple[str, ...] = METRICS + ("dice3d_mean", "hd95_mean")
"""Metrics of ``metrics.json`` summarised per model (mean and std over runs)."""

PER_CLASS_SCORES: tuple[str, ...] = ("dice", "iou", "fnr", "fpr", "recall")
BUNDLE = "bundle.json"

PER_CASE = "per_case.csv.gz"
"""The bundle's stacked per-subject table. It and the other per-subject tables are 1-2 MB of
CSV each, so they are written gzip-compressed (pandas reads them by their name); the bundle's
small tables stay plain CSV."""
GROUPS_PER_CASE = "groups_per_case.csv.gz"
"""Per-subject counts of the loss and side-study runs (compressed as :data:`PER_CASE`)."""


def study_per_case(study: str) -> str:
    """The file of a separate study's per-subject counts (``context`` gives
    ``context_per_case.csv.gz``; compressed as :data:`PER_CASE`)."""
    return f"{study}_per_case.csv.gz"



def _read_json(path: Path) -> dict[str, Any]:
    return io.read_json(path, "missing (every finished run folder must hold it)")


def _read_csv(path: Path, required: Sequence[str]) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(path, "missing (every finished run folder must hold it)")
    df = pd.read_csv(path)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(path, f"missing columns {missing}; has {list(df.columns)}")
    return df


def _model_meta(model: str) -> dict[str, str]:
    from spineseg_core.models import model_info

    try:
        info = model_info(model)
    except SpinesegError:
        return {"display_name": model, "family": "", "backbone": ""}
    return {"display_name": info.display_name, "family": str(info.family),
            "backbone": info.backbone}


@dataclass(frozen=True)
class LoadedRun:
    """One finished run folder read into memory (everything but predictions)."""

    path: Path
    key: dict[str, Any]
    metrics: dict[str, Any]
    params: dict[str, Any]
    history: pd.DataFrame
    per_class: pd.DataFrame
    per_case: pd.DataFrame


def load_run(run_dir: str | Path) -> LoadedRun:
    """Read the files of one finished run, checking the contract's columns."""
    run = RunFolder(Path(run_dir))
    run_dir = run.path
    metrics = _read_json(run.metrics)
    params = _read_json(run.params)
    missing = [k for k in ("model", "seed", "fold", *METRICS) if k not in metrics]
    if missing:
        raise DataError(run.metrics, f"missing fields {missing}")
    model = str(metrics["model"])
    env = params.get("env") or {}
    key = {"model": model, **_model_meta(model), "seed": int(metrics["seed"]),
           "fold": int(metrics["fold"]), "loss": str(params.get("loss", "")),
           "device": str(env.get("device") or params.get("device", "")),
           "precision": str(params.get("precision", "")),
           "processor": processor(env) or "",
           "source_fingerprint": env.get("source_fingerprint"),
           # Runs before the three-set protocol scored the validation set.
           "evaluated_on": str(metrics.get("evaluated_on", "validation")),
           # against its study's own budget, once the study's runs are read
           # (:func:`against_own_budget`)
           "budget_exceptions": ""}
    history = _read_csv(run.history, ("epoch", "dice"))
    per_class = _read_csv(run.per_class, ("class_value", "class_name", "dice"))
    per_case = _read_csv(run.per_case,
                         ("case_id", "class_value", "tp", "fp", "fn", "tn"))
    return LoadedRun(run_dir, key, metrics, params, history, per_class, per_case)


def _stack(runs: Sequence[LoadedRun], attr: str) -> pd.DataFrame:
    cols = ("model", "display_name", "seed", "fold")
    frames = []
    for run in runs:
        df = getattr(run, attr).copy()
        for i, c in enumerate(cols):
            df.insert(i, c, run.key[c])
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def runs_table(runs: Sequence[LoadedRun], root: Path | None = None) -> pd.DataFrame:
    """One row per run: its key columns then every ``metrics.json`` field."""
    rows = []
    for run in runs:
        fields = {k: v for k, v in run.metrics.items() if k not in run.key and k != "profile"}
        rel = run.path.relative_to(root) if root and run.path.is_relative_to(root) else run.path
        rows.append({**run.key, **fields, "profile": run.metrics.get("profile", ""),
                     "run_dir": str(rel)})
    df = pd.DataFrame(rows)
    if not len(df):
        return df
    from spineseg_core.models.registry import MODEL_NAMES

    order = {m: i for i, m in enumerate(MODEL_NAMES)}
    df["_order"] = df["model"].map(lambda m: order.get(m, len(order)))
    df = df.sort_values(["_order", "model", "seed", "fold"], kind="stable", ignore_index=True)
    return df.drop(columns="_order")


def models_table(runs: pd.DataFrame, per_case: pd.DataFrame, n_boot: int = 1000,
                 seed: int = 0) -> pd.DataFrame:
    """Per model: spread over seeds and the bootstrap interval of each metric.

    Columns: ``n_runs``, ``n_seeds``; per metric of :data:`SUMMARY_METRICS` ``<m>_mean`` and
    ``<m>_std`` over seeds (a seed's value is the mean over its runs, i.e. its folds;
    ``<m>_std`` is NaN for one seed: no spread is measured, which is not a spread of 0); per
    Table 1 metric ``<m>_point``, ``<m>_ci_low``, ``<m>_ci_high`` (:func:`bootstrap_ci`).
    """
    rows = []
    for model, grp in runs.groupby("model", sort=False):
        row: dict[str, Any] = {"model": model, "display_name": grp["display_name"].iloc[0],
                               "family": grp["family"].iloc[0],
                               "backbone": grp["backbone"].iloc[0], "n_runs": len(grp),
                               "n_seeds": grp["seed"].nunique(),
                               "params": grp["params"].iloc[0] if "params" in grp else np.nan}
        for m in SUMMARY_METRICS:
            if m in grp:
                per_seed = pd.to_numeric(grp[m], errors="coerce").groupby(grp["seed"]).mean()
                row[f"{m}_mean"] = per_seed.mean()
                row[f"{m}_std"] = per_seed.std(ddof=1) if len(per_seed) > 1 else np.nan
        ci = bootstrap_ci(per_case[per_case["model"] == model], n_boot, seed)
        for m, (point, low, high) in ci.items():
            row[f"{m}_point"], row[f"{m}_ci_low"], row[f"{m}_ci_high"] = point, low, high
        rows.append(row)
    return pd.DataFrame(rows)


def per_class_table(per_class: pd.DataFrame) -> pd.DataFrame:
    """Model x class: mean over runs of each per-class score (NaN runs skipped) and count."""
    scores = [s for s in PER_CLASS_SCORES if s in per_class]
    keys = ["model", "display_name", "class_value", "class_name"]
    if "kind" in per_class:
        keys.append("kind")
    out = per_class.groupby(keys, sort=False)[scores].mean().reset_index()
    counted = per_class.groupby(keys, sort=False)["dice"].count().reset_index(name="n_runs_scored")
    return out.merge(counted, on=keys)


STEEP_WINDOW = 2
"""Epochs over which :func:`convergence_table` averages a gain (validation Dice is noisy)."""

STEEP_RATIO = 1 / 3
"""A curve is past its steep part when its last gain is at most this share of its steepest."""


def convergence_table(history: pd.DataFrame, window: int = STEEP_WINDOW,
                      ratio: float = STEEP_RATIO) -> pd.DataFrame:
    """Per model, whether its validation Dice curve has passed its steep part.

    On the mean curve over the model's runs (validated epochs only), the gain per epoch over
    ``window`` epochs, ``(dice[e] - dice[e - window]) / window``, is taken at every epoch; the
    curve is *past its steep part* when the gain over its last ``window`` epochs is at most
    ``ratio`` times its steepest gain. Columns: model, display_name, epochs, first_dice,
    last_dice, best_dice, best_epoch, steepest_gain, steepest_epoch, last_gain, past_steep.
    A curve of ``window`` epochs or fewer has no gain to compare (``past_steep`` False).
    """
    if window < 1:
        raise ConfigError(f"window: expected a positive number of epochs, got {window}")
    rows = []
    valid = history.dropna(subset=["dice"])
    for (model, name), grp in valid.groupby(["model", "display_name"], sort=False):
        curve = grp.groupby("epoch")["dice"].mean().sort_index()
        dice = curve.to_numpy(dtype=float)
        gains = (dice[window:] - dice[:-window]) / window if len(dice) > window else np.array([])
        steep = int(np.argmax(gains)) if len(gains) else -1
        rows.append(dict(
            model=model, display_name=name, epochs=int(curve.index.max()),
            first_dice=dice[0], last_dice=dice[-1], best_dice=float(dice.max()),
            best_epoch=int(curve.index[int(np.argmax(dice))]),
            steepest_gain=float(gains[steep]) if len(gains) else np.nan,
            steepest_epoch=int(curve.index[steep + window]) if len(gains) else pd.NA,
            last_gain=float(gains[-1]) if len(gains) else np.nan,
            past_steep=bool(len(gains) and gains[-1] <= ratio * gains[steep])))
    return pd.DataFrame(rows, columns=[
        "model", "display_name", "epochs", "first_dice", "last_dice", "best_dice", "best_epoch",
        "steepest_gain", "steepest_epoch", "last_gain", "past_steep"])


def classes_table(per_case: pd.DataFrame, pixel_counts: np.ndarray) -> pd.DataFrame:
    """Per class: share of the evaluated (test) subjects where it is present, share of pixels."""
    first = per_case[per_case["model"] == per_case["model"].iloc[0]] if len(per_case) else per_case
    first = first.drop_duplicates(["case_id", "class_value"])
    present = (first.assign(present=(first["tp"] + first["fn"]) > 0)
               .groupby("class_value")["present"].mean())
    n_cases = first["case_id"].nunique()
    total = pixel_counts.sum() or 1
    return pd.DataFrame([{
        "class_value": lab.value, "class_name": lab.name, "kind": str(lab.kind),
        "subjects_present": float(present.get(lab.value, np.nan)),
        "n_subjects": int(n_cases),
        "pixel_fraction": float(pixel_counts[lab.value] / total)} for lab in LABELS])


def _predictions(run_dir: Path) -> dict[str, np.ndarray] | None:
    from spineseg_core.study.records import load_predictions

    return load_predictions(run_dir)


SPINE_SHARE = 0.5
"""A slice shows the spine when its reference labels at least this share of the pixels that
its case's fullest slice labels: a lateral slice that only grazes the sacrum scores near 0 for
every model, which says where it lies, not how a model fails (:func:`shows_spine`)."""


def shows_spine(keys: list[tuple[str, int]], masks: list[np.ndarray],
                share: float = SPINE_SHARE) -> list[bool]:
    """For each slice (``keys``: (case, slice index), ``masks``: its reference labels) whether
    it shows the spine: foreground on at least ``share`` of the pixels of its case's fullest
    slice, and on at least one pixel."""
    counts = [int(np.count_nonzero(m)) for m in masks]
    fullest: dict[str, int] = {}
    for (case, _), n in zip(keys, counts):
        fullest[case] = max(fullest.get(case, 0), n)
    return [n > 0 and n >= share * fullest[case] for (case, _), n in zip(keys, counts)]


def figure18(pred_runs: dict[str, list[Path]], seed: int = 0) -> dict[str, np.ndarray] | None:
    """The best, median and worst test slices with every model's prediction.

    ``pred_runs`` maps each model to the run folders whose predictions stand for it (one seed,
    all its folds). Slices are keyed by (case, slice index); only slices every model predicted
    and that show the spine (:func:`shows_spine`) are eligible; they are ranked by the
    per-slice Dice averaged over models (the median is the lower middle of that ranking).
    ``seed`` is kept for callers; the choice is deterministic.
    """
    tables: dict[str, dict[tuple[str, int], tuple[np.ndarray, np.ndarray, np.ndarray, float]]] = {}
    for model, dirs in pred_runs.items():
        table = {}
        for d in dirs:
            p = _predictions(d)
            if p is None:
                continue
            for i, (case, idx) in enumerate(zip(p["case_id"], p["slice_index"])):
                table[(str(case), int(idx))] = (p["image"][i], p["mask"][i], p["pred"][i],
                                                float(p["dice"][i]))
        if table:
            tables[model] = table
    if not tables:
        return None
    models = list(tables)
    common = set.intersection(*(set(t) for t in tables.values()))
    keys = sorted(common)
    dice = np.array([[tables[m][k][3] for m in models] for k in keys],
                    dtype=float).reshape(len(keys), len(models))
    scored = np.isfinite(dice).sum(axis=1)
    # the mean over the models that scored the slice; NaN where none did (no structure in
    # reference or prediction), without nanmean's warning on those
    mean_dice = np.full(len(keys), np.nan)
    np.divide(np.nansum(dice, axis=1), scored, out=mean_dice, where=scored > 0)
    spine = shows_spine(keys, [tables[models[0]][k][1] for k in keys])
    valid = [i for i in range(len(keys)) if np.isfinite(mean_dice[i]) and spine[i]]
    if not valid:
        return None
    ranked = sorted(valid, key=lambda i: (-mean_dice[i], keys[i]))
    chosen = [ranked[0], ranked[(len(ranked) - 1) // 2], ranked[-1]]
    kinds = ["best", "median", "worst"]
    sel = [keys[i] for i in chosen]
    return {
        "models": np.array(models),
        "display_names": np.array([_model_meta(m)["display_name"] for m in models]),
        "kind": np.array(kinds),
        "case_id": np.array([k[0] for k in sel]),
        "slice_index": np.array([k[1] for k in sel], dtype=np.int64),
        "image": np.stack([tables[models[0]][k][0] for k in sel]).astype(np.float16),
        "mask": np.stack([tables[models[0]][k][1] for k in sel]).astype(np.uint8),
        "pred": np.stack([[tables[m][k][2] for k in sel] for m in models]).astype(np.uint8),
        "dice": np.array([[tables[m][k][3] for k in sel] for m in models]),
        "mean_dice": mean_dice[chosen],
    }


def _pixel_counts(pred_runs: dict[str, list[Path]]) -> np.ndarray:
    counts = np.zeros(len(LABELS), dtype=np.int64)
    if not pred_runs:
        return counts
    for d in next(iter(pred_runs.values())):
        p = _predictions(d)
        if p is not None:
            counts += np.bincount(p["mask"].ravel(), minlength=len(LABELS))[:len(LABELS)]
    return counts


def dataset_info(runs: Sequence[LoadedRun], classes: pd.DataFrame) -> dict[str, Any]:
    """What the runs trained on, read from their ``params.json`` and ``metrics.json``."""
    p = runs[0].params
    data_dir = p.get("data_dir")
    first_model = runs[0].key["model"]
    same = [r for r in runs if r.key["model"] == first_model and r.key["seed"] == runs[0].key["seed"]]
    return {
        "data_kind": "phantom" if data_dir in (None, "", "None") else "real",
        "data_dir": data_dir,
        "phantom_cases": p.get("phantom_cases"), "phantom_size": p.get("phantom_size"),
        "image_size": p.get("image_size"), "crop_width": p.get("crop_width"),
        "epochs": p.get("epochs"),
        "batch_size": p.get("batch_size"), "lr": p.get("lr"), "loss": p.get("loss"),
        "k_folds": p.get("k_folds"), "max_cases": p.get("max_cases"),
        "folds": sorted({r.key["fold"] for r in runs}),
        "seeds": sorted({r.key["seed"] for r in runs}),
        "evaluated_on": sorted({r.key["evaluated_on"] for r in runs}),
        "n_train_cases": runs[0].metrics.get("n_train_cases"),
        "n_val_cases": int(sum(int(r.metrics.get("n_val_cases", 0)) for r in same)),
        "n_test_cases": runs[0].metrics.get("n_test_cases"),
        "n_test_slices": runs[0].metrics.get("n_test_slices"),
        "test_cases": p.get("test_cases"), "phantom_test_seed": p.get("phantom_test_seed"),
        "n_subjects_scored": int(classes["n_subjects"].iloc[0]) if len(classes) else 0,
    }


def against_own_budget(runs: Sequence[LoadedRun], others: Sequence[LoadedRun] = ()) -> None:
    """Each run's ``budget_exceptions`` (of ``runs`` and ``others``) against the budget most of
    ``runs`` share (:func:`~spineseg_core.training.config.consensus_budget`): the departures
    from its own study's budget, not from today's profile, which may have changed since the
    code version that made the runs."""
    if not runs:
        return
    base = consensus_budget([r.params for r in runs])
    for run in [*runs, *others]:
        run.key["budget_exceptions"] = "; ".join(budget_exceptions(run.params, base))


def loss_runs(runs_dir: Path, profile: str) -> dict[str, list[LoadedRun]]:
    """Finished runs of each loss-comparison group ``<profile>-loss-<loss>``, by group name."""
    return {g.name: [load_run(d) for d in find_runs(g)]
            for g in sorted(runs_dir.glob(f"{profile}-loss-*"))}


def losses_table(profile: str, runs: Sequence[LoadedRun],
                 groups: dict[str, list[LoadedRun]]) -> pd.DataFrame | None:
    """Runs of the loss comparison: the profile's own ``runs`` and those of every group."""
    if not groups:
        return None
    rows = [{**run.key, "group": name,
             **{m: run.metrics.get(m) for m in (*SUMMARY_METRICS, *SANITY_METRICS)}}
            for name, members in [(profile, runs), *groups.items()] for run in members]
    return pd.DataFrame(rows) if rows else None


SEPARATE_STUDIES: tuple[str, ...] = ("context",)
"""Variants whose group ``<profile>-<variant>`` is a study of its own: it carries its own
baselines and its own code version, and is aggregated apart (:func:`separate_study`)."""


def variant_groups(runs_dir: Path, profile: str) -> dict[str, list[LoadedRun]]:
    """Finished runs of each side-study group ``<profile>-<variant>`` (``cpu-res256``,
    ``cpu-os32``...; the loss groups ``<profile>-loss-<loss>``, the separate studies and the
    hard-case groups ``<group>-hard-<set>`` of :mod:`.hard_cases` and the half-budget group
    ``<profile>-half`` of :mod:`.plateau` and ``<profile>-quarter`` of :mod:`.budget_raise` are
    not variants), by group."""
    groups = {}
    separate = {f"{profile}-{name}" for name in (*SEPARATE_STUDIES, HALF_VARIANT,
                                                 QUARTER_VARIANT)}
    for g in sorted(runs_dir.glob(f"{profile}-*")):
        if (g.is_dir() and not g.name.startswith(f"{profile}-loss-") and g.name not in separate
                and not is_hard_group(g.name)):
            members = [load_run(d) for d in find_runs(g)]
            if members:
                groups[g.name] = members
    return groups


@functools.cache
def _output_stride(model: str, kwargs_json: str) -> int | None:
    from spineseg_core.models import build_model

    try:
        with torch.device("meta"):  # no weights allocated: the structure is all we need
            net = build_model(model, **json.loads(kwargs_json))
    except SpinesegError:
        return None
    strides = [m.output_stride for m in net.modules() if hasattr(m, "output_stride")]
    return int(strides[0]) if strides else int(net.pad_multiple)


def output_stride(model: str, model_kwargs: dict[str, Any] | None = None) -> int | None:
    """The output stride of ``model`` built with ``model_kwargs`` (a run's ``params.json``):
    the given ``output_stride``, else its encoder's default (the first sub-module that has
    one, e.g. DeepLabv3+'s ResNet at 16), else the model's padding multiple, which for an
    undilated encoder such as U-Net's is the stride of its deepest map. None for an unknown
    model."""
    kwargs = dict(model_kwargs or {})
    if "output_stride" in kwargs:
        return int(kwargs["output_stride"])
    return _output_stride(model, json.dumps(kwargs, sort_keys=True))


VARIANT_COLUMNS: tuple[str, ...] = (
    "group", "model", "display_name", "family", "seed", "image_size", "output_stride", "dice",
    *SANITY_METRICS, "val_dice")
"""Columns of ``variants.csv``."""


def variants_table(profile: str, runs: Sequence[LoadedRun],
                   groups: dict[str, list[LoadedRun]]) -> pd.DataFrame | None:
    """One row per run of every side-study group (:func:`variant_groups`) and per run of the
    profile's own group of the same models: the resolution check's input. None without
    side-study runs."""
    if not groups:
        return None
    models = {r.key["model"] for members in groups.values() for r in members}
    main = [r for r in runs if r.key["model"] in models]
    rows = [{"group": name, **{k: run.key[k] for k in ("model", "display_name", "family", "seed")},
             "image_size": run.params.get("image_size"),
             "output_stride": output_stride(run.key["model"], run.params.get("model_kwargs")),
             **{m: run.metrics.get(m) for m in ("dice", *SANITY_METRICS, "val_dice")}}
            for name, members in [(profile, main), *groups.items()] for run in members]
    return pd.DataFrame(rows, columns=list(VARIANT_COLUMNS))


def separate_study(runs_dir: Path, profile: str, name: str) -> list[LoadedRun]:
    """The finished runs of the separate study ``name`` (group ``<profile>-<name>``), in the
    registry's order then by seed."""
    return registry_order([load_run(d) for d in find_runs(runs_dir / f"{profile}-{name}")])


def registry_order(runs: Sequence[LoadedRun]) -> list[LoadedRun]:
    """``runs`` in the registry's model order (the twelve, then the context models), then by
    model, seed and fold."""
    from spineseg_core.models import list_models

    order = {m: i for i, m in enumerate(list_models(None))}
    return sorted(runs, key=lambda r: (order.get(r.key["model"], len(order)), r.key["model"],
                                       r.key["seed"], r.key["fold"]))


@dataclass(frozen=True)
class SeparateStudy:
    """A separate study's runs and the group they come from (``bundle.json``'s
    ``studies.<name>.group``: the book names it, and ``spineseg levels --group`` measures it)."""

    group: str
    members: list[LoadedRun]


def context_split(runs_dir: Path, profile: str, loaded: Sequence[LoadedRun]
                  ) -> tuple[list[LoadedRun], SeparateStudy | None]:
    """The main tables' runs of ``loaded`` (the profile's own group) and the context study's
    runs, from either of its layouts (:mod:`.context_study`): the group
    ``<profile>-context``, or the context models of the main group with the main group's
    runs of their 2D baselines at the seeds the context models ran (those runs stay in the
    main tables too). None when neither has a run. Raises :class:`ConfigError` when both
    hold context runs: which to compare would be a guess."""
    own = separate_study(runs_dir, profile, STUDY)
    in_main = set(study_models(list(dict.fromkeys(r.key["model"] for r in loaded))))
    if in_main and own:
        raise ConfigError(
            f"{runs_dir / profile}: holds runs of context models "
            f"({', '.join(sorted(in_main & set(BASELINES)))}) while {runs_dir}/{profile}-{STUDY} "
            "holds the context study too; move one of them aside so the study has one source")
    if own:
        return list(loaded), SeparateStudy(f"{profile}-{STUDY}", own)
    if not in_main:
        return list(loaded), None
    main = [r for r in loaded if r.key["model"] not in BASELINES]
    if not main:
        raise DataError(runs_dir / profile, "holds runs of context models only; the main "
                                             "tables need runs of the study's models")
    # a baseline's runs at the seeds its context models ran, seed for seed: the main group
    # holds more seeds of the twelve (seeds 3-4) than the context study plans
    seeds: dict[str, set[int]] = {}
    for r in loaded:
        if r.key["model"] in BASELINES:
            seeds.setdefault(BASELINES[r.key["model"]], set()).add(r.key["seed"])
    members = [r for r in loaded if r.key["model"] in BASELINES
               or r.key["seed"] in seeds.get(r.key["model"], ())]
    return main, SeparateStudy(profile, registry_order(members))


CONTEXT_COLUMNS: tuple[str, ...] = (
    "model", "display_name", "family", "input_kind", "context", "seed", "fold", *METRICS,
    "bg_recall", "absent_fraction", "dice3d_mean", "n_test_slices", "n_test_cases",
    "train_seconds", "budget_exceptions", "source_fingerprint",
    "loss", "device", "precision", "processor", "epochs_completed", "steps_per_epoch",
    "batch_size", "lr", "n_train_cases", "n_val_cases")
"""Columns of ``context.csv``: the metrics, then what the study's setup paragraph needs
(:func:`spineseg_core.report.facts.read_setup` with ``study="context"``)."""


def context_table(runs: Sequence[LoadedRun]) -> pd.DataFrame:
    """One row per run of the context study: what the model is fed and its test metrics."""
    from spineseg_core.models import model_info

    rows = []
    for run in runs:
        info = model_info(run.key["model"])
        rows.append({**{k: run.key[k] for k in ("model", "display_name", "family", "seed",
                                                  "fold", "budget_exceptions",
                                                  "source_fingerprint", "loss", "device",
                                                  "precision", "processor")},
                     "input_kind": str(info.input_kind), "context": info.context,
                     "batch_size": run.params.get("batch_size"), "lr": run.params.get("lr"),
                     **{m: run.metrics.get(m) for m in (*METRICS, "bg_recall",
                                                         "absent_fraction", "dice3d_mean",
                                                         "n_test_slices", "n_test_cases",
                                                         "train_seconds", "epochs_completed",
                                                         "steps_per_epoch", "n_train_cases",
                                                         "n_val_cases")}})
    return pd.DataFrame(rows, columns=list(CONTEXT_COLUMNS))


def groups_per_case(groups: dict[str, list[LoadedRun]]) -> pd.DataFrame | None:
    """The per-subject counts of every run of the loss and side-study ``groups``, stacked
    (``group, loss, model, seed, fold, case_id, class_value, tp, fp, fn, tn``): what a paired
    comparison with the main runs needs (:mod:`spineseg_core.report.claims`)."""
    frames = []
    for name, members in groups.items():
        for run in members:
            df = run.per_case[["case_id", "class_value", *COUNT_COLUMNS]].copy()
            for i, c in enumerate(("group", "loss", "model", "seed", "fold")):
                df.insert(i, c, name if c == "group" else run.key[c])
            frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else None


def code_versions(runs: Sequence[LoadedRun],
                  own_code: Mapping[str, str] | None = None) -> dict[str, int]:
    """Number of runs per source fingerprint, most runs first (runs without one count under
    :data:`spineseg_core.fingerprint.UNRECORDED`), without the runs of a model of
    ``own_code`` that carry its own fingerprint there (a model run from a code version of its
    own)."""
    from spineseg_core.fingerprint import UNRECORDED

    own_code = own_code or {}
    counts: dict[str, int] = {}
    for run in runs:
        model = run.key["model"]
        if model in own_code and own_code[model] == run.key["source_fingerprint"]:
            continue
        fp = run.key["source_fingerprint"] or UNRECORDED
        counts[fp] = counts.get(fp, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def check_one_code_version(versions: dict[str, int], where: Path) -> None:
    """Raise :class:`ConfigError` when the runs come from more than one version of the code."""
    if len(versions) <= 1:
        return
    from spineseg_core.fingerprint import describe

    raise ConfigError(f"{where}: the runs come from {len(versions)} versions of the code "
                      f"(source fingerprints {describe(versions)}); re-run them from one "
                      "version, or pass --allow-mixed-code to `spineseg aggregate` to bundle "
                      "them anyway")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_bundle(out_dir: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Write ``bundle.json``: ``info`` plus the SHA-256 of every other file and their digest."""
    files = {p.name: sha256(p) for p in sorted(out_dir.iterdir())
             if p.is_file() and p.name != BUNDLE and not p.name.startswith(".")}
    digest = hashlib.sha256("".join(f"{n}:{h}\n" for n, h in files.items()).encode()).hexdigest()
    bundle = {**info, "files": files, "bundle_sha256": digest}
    io.write_json(out_dir / BUNDLE, bundle)
    return bundle


def _write_csv(path: Path, df: pd.DataFrame) -> None:
    io.write_csv(path, df, index=False)


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    def writer(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    io.write_with(path, writer)


BASELINE_DATA_FIELDS: tuple[str, ...] = tuple(RunData.__annotations__)
"""The parameters of a run that fix its data (what :func:`run_data_tables` reads)."""


def run_data_tables(run: LoadedRun) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``baseline.csv`` (:mod:`spineseg_core.study.baseline`) for the data of ``run`` (its
    training pool pasted on its test set, at its grid) and ``validation_classes.csv`` (the
    share of its validation subjects holding each class, :mod:`.validation`)."""
    from spineseg_core.study.baseline import data_tables
    from spineseg_core.training.config import resolve_config

    params = run.params
    try:
        cfg = resolve_config(params.get("profile"), model="unet",
                             **{k: params[k] for k in BASELINE_DATA_FIELDS if k in params})
    except ConfigError as exc:
        raise DataError(run.path / "params.json", f"cannot rebuild the runs' data for the "
                                                   f"baseline: {exc}") from None
    return data_tables(cfg)


def aggregate(profile: str, runs_dir: str | Path = "runs", out_dir: str | Path | None = None,
              n_boot: int = 1000, seed: int = 0, allow_mixed_code: bool = False,
              baseline: bool = False, own_code: Mapping[str, str] | None = None
              ) -> dict[str, Any]:
    """Aggregate every finished run of ``profile``; returns the bundle written.

    With ``baseline`` the no-learning baseline of the runs' test set is scored into
    ``baseline.csv`` (:func:`run_data_tables`; it reads the runs' data).

    Raises :class:`DataError` when the profile has no finished run, and :class:`ConfigError`,
    before writing anything, when its runs (loss-comparison groups included) carry more than
    one source fingerprint, unless ``allow_mixed_code``; ``own_code`` (model: fingerprint)
    names the models run from a code version of their own, whose runs of that fingerprint are
    counted apart.
    """
    from spineseg_core.envinfo import git_commit

    runs_dir = Path(runs_dir)
    group = runs_dir / profile
    out = Path(out_dir) if out_dir is not None else Path("results") / profile
    dirs = find_runs(group)
    if not dirs:
        raise DataError(group, "no finished run (no */seed_*/fold_*/metrics.json); "
                               f"run `spineseg study --profile {profile}` first")
    loaded = [load_run(d) for d in dirs]
    from spineseg_core.models.registry import MODEL_NAMES

    rank = {m: i for i, m in enumerate(MODEL_NAMES)}
    loaded.sort(key=lambda r: (rank.get(r.key["model"], len(rank)), r.key["model"],
                               r.key["seed"], r.key["fold"]))
    groups = loss_runs(runs_dir, profile)
    variants = variant_groups(runs_dir, profile)
    half = [load_run(d) for d in find_runs(runs_dir / f"{profile}-{HALF_VARIANT}")]
    quarter = [load_run(d) for d in find_runs(runs_dir / f"{profile}-{QUARTER_VARIANT}")]
    own_code = dict(own_code or {})
    everything = [*loaded, *half, *quarter,
                  *(r for g in (*groups.values(), *variants.values()) for r in g)]
    versions = code_versions(everything, own_code)
    own_runs = {m: n for m, fp in own_code.items()
                if (n := sum(r.key["model"] == m and r.key["source_fingerprint"] == fp
                             for r in everything))}
    every = loaded  # the main group's runs, context models included
    loaded, context = context_split(runs_dir, profile, every)
    separate = {STUDY: context} if context is not None else {}
    against_own_budget(every, [*half, *quarter,
                               *(r for g in (*groups.values(), *variants.values()) for r in g)])
    for study in separate.values():
        if study.group != profile:
            against_own_budget(study.members)
    if not allow_mixed_code:
        check_one_code_version(versions, group)
        for study in separate.values():
            check_one_code_version(code_versions(study.members, own_code),
                                   runs_dir / study.group)
    out.mkdir(parents=True, exist_ok=True)

    runs = runs_table(loaded, runs_dir)
    per_case = _stack(loaded, "per_case")
    per_class = _stack(loaded, "per_class")
    _write_csv(out / "runs.csv", runs)
    _write_csv(out / "models.csv", models_table(runs, per_case, n_boot, seed))
    _write_csv(out / "per_class.csv", per_class_table(per_class))
    history = _stack(loaded, "history")
    _write_csv(out / "history.csv", history)
    _write_csv(out / "convergence.csv", convergence_table(history))
    _write_csv(out / PER_CASE, per_case)

    pred_runs: dict[str, list[Path]] = {}
    for run in loaded:
        first_seed = min(r.key["seed"] for r in loaded if r.key["model"] == run.key["model"])
        if run.key["seed"] == first_seed:
            pred_runs.setdefault(run.key["model"], []).append(run.path)
    pred_runs = {m: pred_runs[m] for m in runs["model"].drop_duplicates() if m in pred_runs}
    classes = classes_table(per_case, _pixel_counts(pred_runs))
    _write_csv(out / "classes.csv", classes)
    dataset = dataset_info(loaded, classes)
    io.write_json(out / "dataset.json", dataset)
    fig = figure18(pred_runs, seed=seed)
    if fig is not None:
        _write_npz(out / "figure18.npz", fig)
    losses = losses_table(profile, loaded, groups)
    if losses is not None:
        _write_csv(out / "losses.csv", losses)
    if baseline:
        atlases, val_classes = run_data_tables(loaded[0])
        _write_csv(out / "baseline.csv", atlases)
        _write_csv(out / "validation_classes.csv", val_classes)
    at_half = runs_table(half) if half else None
    fourth = runs_table(quarter) if quarter else None
    if at_half is not None:  # every model of the group is labelled, the context models too
        full = runs_table(every, runs_dir) if len(every) != len(loaded) else runs
        order = list(full["model"].drop_duplicates())
        labels = plateau_table(full, at_half, order, quarter=fourth)
        ends = end_labels(full, at_half, history if full is runs else _stack(every, "history"),
                          _stack(half, "history"), order)
        _write_csv(out / "plateau.csv", labels.merge(ends, on="model", how="left"))
    if at_half is not None and fourth is not None:  # the first budget's models: runs at B/4
        _write_csv(out / "plateau_first.csv",
                   plateau_table(at_half, fourth, [m for m in at_half["model"].drop_duplicates()
                                                   if m in set(fourth["model"])]))
    table = variants_table(profile, loaded, variants)
    if table is not None:
        _write_csv(out / "variants.csv", table)
    side = groups_per_case({**groups, **variants})
    if side is not None:
        _write_csv(out / GROUPS_PER_CASE, side)
    studies = {}
    for name, study in separate.items():
        members = study.members
        _write_csv(out / f"{name}.csv", context_table(members))
        _write_csv(out / study_per_case(name), groups_per_case({study.group: members}))
        _write_csv(out / f"{name}_convergence.csv", convergence_table(_stack(members, "history")))
        own = code_versions(members)
        studies[name] = {"group": study.group, "n_runs": len(members),
                         "models": list(dict.fromkeys(r.key["model"] for r in members)),
                         "source_fingerprint": next(iter(own)) if len(own) == 1 else None,
                         "source_fingerprints": own}

    envs = [r.params.get("env") or {} for r in loaded]
    info = {
        "profile": profile,
        "data_kind": dataset["data_kind"],
        "evaluated_on": dataset["evaluated_on"],
        "devices": sorted({str(e.get("device")) for e in envs if e.get("device")}),
        "precisions": sorted({str(r.params["precision"]) for r in loaded
                              if r.params.get("precision")}),
        "gpus": sorted({str(e.get("gpu")) for e in envs if e.get("gpu")}),
        "cpus": sorted({f"{e['cpu']} ({e['cpu_features']})" if e.get("cpu_features")
                        else str(e["cpu"]) for e in envs if e.get("cpu")}),
        "hosts": sorted({str(e.get("host")) for e in envs if e.get("host")}),
        "n_runs": len(loaded),
        "models": list(runs["model"].drop_duplicates()),
        "run_commits": sorted({str(e.get("git_commit")) for e in envs if e.get("git_commit")}),
        "source_fingerprint": next(iter(versions)) if len(versions) == 1 else None,
        "source_fingerprints": versions,
        **({"own_code": {m: {"source_fingerprint": own_code[m], "runs": n}
                         for m, n in own_runs.items()}} if own_runs else {}),
        "allow_mixed_code": allow_mixed_code,
        "studies": studies,
        "git_commit": git_commit(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "n_boot": n_boot, "bootstrap_seed": seed,
    }
    return write_bundle(out, info)
