"""``spineseg levels``: the level tables of a group of committed records.

For every record of the group (:func:`spineseg_core.levels.volumes.find_records`) and every
test subject, the predicted volume is scored as predicted and after
:func:`~spineseg_core.levels.relabel.relabel` (a subject the relabelling cannot count keeps its
prediction, so its two stages agree). :func:`level_study` writes, atomically, into its output
folder:

=======================  ===================================================================
``levels.csv.gz``        per model, seed, subject, stage and reference level: ``n_ref``
                         voxels, the ``answer`` label, its share, the ``outcome``
``subjects.csv``         per model, seed, subject and stage: levels present, levels right,
                         ``all_right``, ``dice3d`` (the subject's 3D Dice, mean over the
                         classes in its reference or prediction)
``relabel.csv``          per model, seed and subject (and per reference volume, model
                         ``reference``): the relabelling's ``status``, ``detail``, components
                         counted, specks, voxels changed
``summary.csv``          per model, metric (``identification``, ``all_levels_right``,
                         ``dice``) and stage (``predicted``, ``relabelled``, ``difference``):
                         point, 95 % interval over seeds and subjects, seeds, subjects
``per_structure.csv``    per model, stage and reference level: instances, identification
                         rate with its interval, share of each outcome
``confusion.csv``        per model, stage, reference level and answer: instances, outcome
``status.csv``           per model (and ``reference``): subjects per relabelling status
``about.json``           group, records, models, seeds, subjects, bootstrap and thresholds
``example.npz``          one subject whose shift the relabelling fixes (the book's figure),
                         from a model of the paper (never a context model, which the level
                         chapter does not show): of the subjects it leaves with every level
                         right (if none, of all),
                         the one with the most levels turned from a shift into the right
                         name (on a tie the first: records by model folder and seed,
                         subjects sorted); its slice with the most labelled pixels:
                         image, reference, prediction, relabelling, ``n_fixed``,
                         ``n_levels``, ``n_right`` and ``all_right`` (relabelled)
=======================  ===================================================================

The intervals are :mod:`spineseg_core.levels.stats`'s (the study's bootstrap, paired between
stages).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from spineseg_core import io
from spineseg_core.errors import ConfigError
from spineseg_core.labels import FOREGROUND
from spineseg_core.levels.anatomy import LEVELS, name
from spineseg_core.levels.identify import IDENTIFY_COLUMNS, Outcome, all_right, confusion, identify_confusion
from spineseg_core.levels.relabel import MERGE_RATIO, SPECK_SHARE, Status, relabel
from spineseg_core.levels.stats import rate_frame, rate_interval, stage_intervals
from spineseg_core.levels.volumes import Record, find_records, record_volumes


class Stage(StrEnum):
    """A prediction as the model gave it, or after relabelling from the sacrum."""

    PREDICTED = "predicted"
    RELABELLED = "relabelled"


DIFFERENCE = "difference"
"""The stage column's value for relabelled minus predicted in ``summary.csv``."""

REFERENCE = "reference"
"""The model column's value for the relabelling of the reference volumes (a check: each
should come back unchanged with status ok)."""


class Metric(StrEnum):
    """What ``summary.csv`` summarises."""

    IDENTIFICATION = "identification"    # share of the reference levels named right
    ALL_RIGHT = "all_levels_right"       # share of subjects with every level right
    DICE = "dice"                        # Dice of the pooled counts, mean over classes


COMPRESSED: frozenset[str] = frozenset({"levels"})
"""The tables written gzip-compressed (``.csv.gz``): ``levels`` is 1-2 MB of CSV per group, the
rest are small and stay plain CSV, readable where the repository is browsed."""

FILES: dict[str, str] = {k: f"{k}.csv.gz" if k in COMPRESSED else f"{k}.csv" for k in (
    "levels", "subjects", "relabel", "summary", "per_structure", "confusion", "status")}
EXAMPLE = "example.npz"
ABOUT = "about.json"
"""What was measured: group, records, models, seeds, subjects, the bootstrap's settings and the
relabelling's thresholds."""

COUNTS = ("tp", "fp", "fn", "tn")


def display_name(model: str) -> str:
    """The model's name as the paper writes it (``Reference`` for the reference volumes)."""
    if model == REFERENCE:
        return "Reference"
    from spineseg_core.models import model_info

    try:
        return model_info(model).display_name
    except Exception:  # a record of a model this version does not know: its folder name
        return model


def model_order(models: Sequence[str]) -> list[str]:
    """``models`` once each, in the registry's order (the paper's twelve, then the context
    family), any model it does not know after them, the reference last."""
    from spineseg_core.models import list_models

    rank = {m: i for i, m in enumerate(list_models(None))}
    return sorted(set(models), key=lambda m: (m == REFERENCE, rank.get(m, len(rank)), m))


def _dice3d(cm: np.ndarray) -> float:
    from spineseg_core.metrics import counts_from_confusion, scores

    dice = scores(counts_from_confusion(cm))["dice"][list(FOREGROUND)]
    return float(torch.nanmean(dice)) if not torch.isnan(dice).all() else float("nan")


def _class_counts(cm: np.ndarray) -> np.ndarray:
    from spineseg_core.metrics import counts_from_confusion

    c = counts_from_confusion(cm)
    return np.stack([t.numpy() for t in c], axis=1)[list(FOREGROUND)]  # (19, 4)


class _Tables:
    """Rows gathered over records, then framed."""

    def __init__(self) -> None:
        self.levels: list[pd.DataFrame] = []
        self.subjects: list[dict[str, Any]] = []
        self.relabel: list[dict[str, Any]] = []
        self.counts: list[pd.DataFrame] = []
        self.example: dict[str, Any] | None = None


def _fixes(before: pd.DataFrame, after: pd.DataFrame) -> int:
    """Levels a relabelling turned from a shift into a correct answer."""
    shifted = before["outcome"].isin([Outcome.SHIFT_UP, Outcome.SHIFT_DOWN]).to_numpy()
    return int((shifted & (after["outcome"] == Outcome.CORRECT).to_numpy()).sum())


def _measure(record: Record, t: _Tables, check_reference: bool) -> None:
    from spineseg_core.models import CONTEXT_MODEL_NAMES  # the example is a paper model's

    p, subjects = record_volumes(record)
    key = {"model": record.model, "seed": record.seed}
    for case, pred, ref in subjects:
        r = relabel(pred)
        if check_reference:
            rr = relabel(ref)
            t.relabel.append({"model": REFERENCE, "seed": record.seed, "case_id": case,
                              "status": str(rr.status), "detail": rr.detail,
                              "n_vertebrae": rr.n_vertebrae, "n_discs": rr.n_discs,
                              "n_specks": rr.n_specks,
                              "changed_voxels": int((rr.volume != ref).sum())})
        t.relabel.append({**key, "case_id": case, "status": str(r.status), "detail": r.detail,
                          "n_vertebrae": r.n_vertebrae, "n_discs": r.n_discs,
                          "n_specks": r.n_specks,
                          "changed_voxels": int((r.volume != pred).sum())})
        idents = {}
        for stage, vol in ((Stage.PREDICTED, pred), (Stage.RELABELLED, r.volume)):
            cm = confusion(vol, ref)
            ident = identify_confusion(cm)
            idents[stage] = ident
            t.levels.append(ident.assign(**key, case_id=case, stage=str(stage)))
            right = int((ident["outcome"] == Outcome.CORRECT).sum())
            t.subjects.append({**key, "case_id": case, "stage": str(stage),
                               "n_levels": len(ident), "n_right": right,
                               "all_right": int(len(ident) > 0 and right == len(ident)),
                               "dice3d": _dice3d(cm)})
            c = _class_counts(cm)
            t.counts.append(pd.DataFrame({**key, "case_id": case, "stage": str(stage),
                                          "class_value": list(FOREGROUND),
                                          **{k: c[:, i] for i, k in enumerate(COUNTS)}}))
        fixed = _fixes(idents[Stage.PREDICTED], idents[Stage.RELABELLED]) if r.ok else 0
        whole = all_right(idents[Stage.RELABELLED])
        best = (t.example["all_right"], t.example["n_fixed"]) if t.example else (False, 0)
        if fixed > 0 and (whole, fixed) > best and record.model not in CONTEXT_MODEL_NAMES:
            rows = np.flatnonzero(p["case_id"].astype(str) == case)
            rows = rows[np.argsort(p["slice_index"][rows])]
            mid = int(np.argmax((ref > 0).reshape(len(ref), -1).sum(axis=1)))
            t.example = {"model": record.model, "display_name": display_name(record.model),
                         "seed": record.seed, "case_id": case, "slice_index": mid,
                         "n_fixed": fixed, "n_levels": len(idents[Stage.PREDICTED]),
                         "all_right": whole,
                         "n_right": int((idents[Stage.RELABELLED]["outcome"]
                                         == Outcome.CORRECT).sum()),
                         "image": p["image"][rows[mid]].astype(np.float16)
                         if "image" in p else np.zeros(0, np.float16),
                         "mask": ref[mid], "pred": pred[mid], "relabelled": r.volume[mid]}


def _stage(df: pd.DataFrame, stage: Stage) -> pd.DataFrame:
    return df[df["stage"] == str(stage)]


def summary_table(subjects: pd.DataFrame, counts: pd.DataFrame, n_boot: int = 1000,
                  seed: int = 0) -> pd.DataFrame:
    """Per model, metric and stage: point, 95 % interval, seeds and subjects (module doc).
    ``subjects`` as ``subjects.csv``; ``counts`` the per-class Dice counts of each model,
    seed, subject and stage (``class_value, tp, fp, fn, tn``)."""
    rows = []
    for model in model_order(subjects["model"]):
        sub = subjects[subjects["model"] == model]
        cnt = counts[counts["model"] == model]
        inputs = {
            Metric.IDENTIFICATION: [rate_frame(_stage(sub, s), "n_right", "n_levels")
                                    for s in Stage],
            Metric.ALL_RIGHT: [rate_frame(_stage(sub.assign(one=1), s), "all_right", "one")
                               for s in Stage],
            Metric.DICE: [_stage(cnt, s) for s in Stage]}
        for metric, (before, after) in inputs.items():
            found = stage_intervals(before, after, "dice" if metric is Metric.DICE else "recall",
                                    n_boot, seed)
            for stage, (point, low, high) in found.items():
                rows.append({"model": model, "display_name": display_name(model),
                             "metric": str(metric), "stage": stage, "point": point,
                             "ci_low": low, "ci_high": high, "n_seeds": sub["seed"].nunique(),
                             "n_subjects": sub["case_id"].nunique()})
    return pd.DataFrame(rows)


def per_structure_table(levels: pd.DataFrame, n_boot: int = 1000, seed: int = 0
                        ) -> pd.DataFrame:
    """Per model, stage and reference level: instances (subjects x seeds with it), the
    identification rate with its interval, and the share of each :class:`Outcome`."""
    rows = []
    t = levels.assign(right=(levels["outcome"] == Outcome.CORRECT).astype(int), one=1)
    for model in model_order(levels["model"]):
        for stage in Stage:
            sub = _stage(t[t["model"] == model], stage)
            for level in [v for v in LEVELS if v in set(sub["class_value"])]:
                one = sub[sub["class_value"] == level]
                point, low, high = rate_interval(rate_frame(one, "right", "one"), n_boot, seed)
                shares = one["outcome"].value_counts(normalize=True)
                rows.append({"model": model, "display_name": display_name(model),
                             "stage": str(stage), "class_value": level, "class_name": name(level),
                             "n": len(one), "rate": point, "ci_low": low, "ci_high": high,
                             **{str(o): float(shares.get(str(o), 0.0)) for o in Outcome}})
    return pd.DataFrame(rows)


def confusion_table(levels: pd.DataFrame) -> pd.DataFrame:
    """Per model, stage, reference level and answer: the instances, and their outcome."""
    g = (levels.groupby(["model", "stage", "class_value", "answer", "outcome"], sort=False)
         .size().reset_index(name="n"))
    g.insert(1, "display_name", g["model"].map(display_name))
    g["class_name"] = g["class_value"].map(name)
    g["answer_name"] = g["answer"].map(name)
    return g.sort_values(["model", "stage", "class_value", "answer"], ignore_index=True)


def status_table(relabel_rows: pd.DataFrame) -> pd.DataFrame:
    """Per model (and the reference): subjects x seeds per relabelling status, and share."""
    rows = []
    for model in model_order(relabel_rows["model"]):
        sub = relabel_rows[relabel_rows["model"] == model]
        n = sub["status"].value_counts()
        for status in Status:
            rows.append({"model": model, "display_name": display_name(model),
                         "status": str(status), "n": int(n.get(str(status), 0)),
                         "share": float(n.get(str(status), 0)) / len(sub)})
    return pd.DataFrame(rows)


def _write_csv(path: Path, df: pd.DataFrame) -> None:
    io.write_csv(path, df, index=False, float_format="%.6g")


def _write_npz(path: Path, arrays: dict[str, Any]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **{k: np.asarray(v) for k, v in arrays.items()})

    io.write_with(path, write)


def bundle_folder(group: str) -> Path:
    """Where a group's level tables lie inside a results bundle (``results/<profile>/``):
    ``levels`` for a profile's own group, ``levels/<group>`` for any other (``cpu-context``
    gives ``levels/cpu-context``), so a side group never overwrites the main group's tables.
    The book's chapters read them there."""
    from spineseg_core.training.config import Profile

    base = Path("levels")
    return base if group in {str(p) for p in Profile} else base / group


def default_out(runs_dir: str | Path, group: str) -> Path:
    """Where ``spineseg levels`` writes when not told (``--out``): the group's
    :func:`bundle_folder` in the bundle that holds ``runs_dir`` (``results/cpu/runs`` and
    ``cpu`` give ``results/cpu/levels``, the folder the book reads; ``cpu-context`` gives
    ``results/cpu/levels/cpu-context``)."""
    return Path(runs_dir).parent / bundle_folder(group)


def level_study(runs_dir: str | Path, out_dir: str | Path, group: str = "cpu",
                n_boot: int = 1000, seed: int = 0) -> dict[str, Path]:
    """Measure every record of ``<runs_dir>/<group>`` and write the tables (module doc) into
    ``out_dir``; returns the files written, by key."""
    if n_boot < 1:
        raise ConfigError(f"--n-boot: expected a positive number of resamples, got {n_boot}")
    records = find_records(runs_dir, group)
    t = _Tables()
    for i, record in enumerate(records):  # one group, one reference: checked once
        _measure(record, t, check_reference=i == 0)
    levels = pd.concat(t.levels, ignore_index=True)
    levels = levels[["model", "seed", "case_id", "stage", *IDENTIFY_COLUMNS]]
    levels["answer_share"] = levels["answer_share"].round(3)
    subjects = pd.DataFrame(t.subjects)
    relabel_rows = pd.DataFrame(t.relabel)
    counts = pd.concat(t.counts, ignore_index=True)
    tables = {"levels": levels, "subjects": subjects, "relabel": relabel_rows,
              "summary": summary_table(subjects, counts, n_boot, seed),
              "per_structure": per_structure_table(levels, n_boot, seed),
              "confusion": confusion_table(levels), "status": status_table(relabel_rows)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for key, df in tables.items():
        _write_csv(out / FILES[key], df)
        written[key] = out / FILES[key]
    io.write_json(out / ABOUT, {
        "group": group, "records": len(records), "models": model_order([r.model for r in records]),
        "seeds": sorted({r.seed for r in records}),
        "seeds_per_model": {m: sorted(r.seed for r in records if r.model == m)
                            for m in model_order([r.model for r in records])},
        "n_subjects": int(subjects["case_id"].nunique()),
        "n_boot": n_boot, "bootstrap_seed": seed, "speck_share": SPECK_SHARE,
        "merge_ratio": MERGE_RATIO})
    written["about"] = out / ABOUT
    if t.example is not None:
        _write_npz(out / EXAMPLE, t.example)
        written["example"] = out / EXAMPLE
    elif (out / EXAMPLE).is_file():
        (out / EXAMPLE).unlink()  # an older run's example no longer holds
    return written
