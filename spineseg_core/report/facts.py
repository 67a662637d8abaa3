"""The facts of a results bundle that every results chapter opens with.

A reader judging a number needs to know what made it: the data, the grid and the crop, how long
and in what batches each model trained, in what precision on which processor, from what
initialisation, on how many held-out test subjects, over how many seeds. :func:`read_setup`
gathers them from the bundle's files (``bundle.json``, ``dataset.json``, ``runs.csv``) and
:func:`setup_markdown` writes them as one paragraph, so the chapters glue the same sentence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from spineseg_core import io
from spineseg_core.errors import DataError
from spineseg_core.study.loss_study import loss_name
from spineseg_core.study.paper import PAPER_MARKDOWN


@dataclass(frozen=True)
class Setup:
    """What the runs of one bundle were (``None``: not recorded by these runs)."""

    data_kind: str
    n_train_cases: int | None
    n_val_cases: int | None
    n_test_cases: int | None
    n_test_slices: int | None
    image_size: int | None
    phantom_size: int | None
    crop_width: float | None
    epochs: list[int]
    steps_per_epoch: list[int]
    batch_size: int | None
    lr: float | None
    loss: str | None
    precisions: list[str]
    devices: list[str]
    processors: list[str]
    seeds: list[int]
    n_models: int
    n_runs: int
    evaluated_on: list[str]
    pretrained: bool = False
    precision_models: dict[str, list[str]] = field(default_factory=dict)
    """Each precision with the models (display names) whose runs trained in it."""
    seeds_per_model: dict[str, int] = field(default_factory=dict)
    """Seeds run per model (display name), from ``runs.csv``."""
    batches: dict[int, tuple[list[str], list[int]]] = field(default_factory=dict)
    """Each batch size with its models and the steps per epoch their runs took, where the
    runs record it (a separate study)."""


def _read_json(path: Path) -> dict[str, Any]:
    return io.read_json(path, "missing: is this a results bundle (spineseg aggregate)?")


def _ints(values: Any) -> list[int]:
    return sorted({int(v) for v in values if pd.notna(v)})


def _processors(bundle: dict[str, Any]) -> list[str]:
    """GPU names where runs used one, else the CPU model with its features."""
    if bundle.get("gpus"):
        return [str(g) for g in bundle["gpus"]]
    cpus = bundle.get("cpus") or []
    return [str(c) for c in cpus]


def seed_counts(runs: pd.DataFrame | None) -> dict[str, int]:
    """Seeds run per model (display name where the table has it), from a table with one row
    per run (``runs.csv``, ``context.csv``)."""
    if runs is None or not len(runs):
        return {}
    name = "display_name" if "display_name" in runs else "model"
    return {str(m): int(n) for m, n in runs.groupby(name, sort=False)["seed"].nunique().items()}


def seeds_text(per_model: dict[str, int]) -> str | None:
    """The seeds behind each model in words: "3 seeds per model", or "2 to 3 seeds per model"
    when the models differ; ``None`` without runs."""
    counts = sorted(set(per_model.values()))
    if not counts:
        return None
    low, high = counts[0], counts[-1]
    return (f"{low} seed{'s' * (low != 1)} per model" if low == high
            else f"{low} to {high} seeds per model")


def _by_value(runs: pd.DataFrame, column: str) -> dict[Any, list[str]]:
    """Each value of ``column`` with the models (display names) whose runs have it."""
    if not {column, "display_name"} <= set(runs.columns):
        return {}
    return {v: sorted(set(names.astype(str)))
            for v, names in runs.dropna(subset=[column]).groupby(column)["display_name"]}


def read_setup(results: str | Path, study: str | None = None) -> Setup:
    """The setup of the bundle in ``results`` (``results/<profile>/``): of its main runs
    (``runs.csv``), or of a separate study's runs (``study``: ``context`` reads
    ``context.csv``, written by the same aggregate), whose own rows then decide the runs,
    models, seeds, budget, precision and processors; the data facts are the bundle's."""
    results = Path(results)
    bundle = _read_json(results / "bundle.json")
    dataset = _read_json(results / "dataset.json")
    runs_path = results / (f"{study}.csv" if study else "runs.csv")
    if study and not runs_path.is_file():
        raise DataError(runs_path, f"missing: the bundle has no runs of the {study} study")
    runs = pd.read_csv(runs_path) if runs_path.is_file() else pd.DataFrame()

    def col(name: str) -> pd.Series:
        return runs[name] if name in runs else pd.Series(dtype=float)

    def opt_int(value: Any) -> int | None:
        return None if value is None or pd.isna(value) else int(value)

    def one(name: str) -> Any:
        """The study's own value where its rows agree on one, else the bundle's."""
        values = col(name).dropna().unique()
        if study and len(values) == 1:
            return getattr(values[0], "item", lambda: values[0])()  # numpy scalar or str
        return dataset.get(name)

    epochs = _ints(col("epochs_completed")) or _ints([dataset.get("epochs")])
    precision_models = {str(k): v for k, v in _by_value(runs, "precision").items()}
    batches = ({int(b): (models, _ints(runs.loc[runs["batch_size"] == b, "steps_per_epoch"]))
                for b, models in _by_value(runs, "batch_size").items()}
               if study and "steps_per_epoch" in runs else {})
    if study:
        precisions = sorted(precision_models)
        devices = sorted(str(d) for d in col("device").dropna().unique())
        processors = sorted(str(p) for p in col("processor").dropna().unique())
        n_models, n_runs = int(col("model").nunique()), len(runs)
        seeds = _ints(col("seed"))
    else:
        precisions = [str(p) for p in bundle.get("precisions", [])]
        devices = [str(d) for d in bundle.get("devices", [])]
        processors = _processors(bundle)
        n_models, n_runs = len(bundle.get("models", [])), int(bundle.get("n_runs", 0))
        seeds = _ints(dataset.get("seeds", []))
    return Setup(
        data_kind=str(dataset.get("data_kind", "unknown")),
        n_train_cases=opt_int(one("n_train_cases")),
        n_val_cases=opt_int(one("n_val_cases")),
        n_test_cases=opt_int(one("n_test_cases")),
        n_test_slices=opt_int(one("n_test_slices")),
        image_size=opt_int(dataset.get("image_size")),
        phantom_size=opt_int(dataset.get("phantom_size")),
        crop_width=dataset.get("crop_width"),
        epochs=epochs,
        steps_per_epoch=_ints(col("steps_per_epoch")),
        batch_size=(max(batches, key=lambda b: len(batches[b][0])) if batches
                    else opt_int(dataset.get("batch_size"))),
        lr=one("lr"),
        loss=one("loss"),
        precisions=precisions,
        devices=devices,
        processors=processors,
        seeds=seeds,
        n_models=n_models,
        n_runs=n_runs,
        evaluated_on=[str(e) for e in dataset.get("evaluated_on", [])],
        precision_models=precision_models,
        seeds_per_model=seed_counts(runs) if "seed" in runs else {},
        batches=batches,
    )


def _list(values: list[Any]) -> str:
    return ", ".join(str(v) for v in values) if values else "not recorded"


def precision_text(s: Setup) -> str:
    """The runs' precision in words: the one most models trained in, then each other one with
    its models, e.g. "bf16-autocast (MiniSeg in fp32)". Without per-run records, the bundle's
    precisions joined."""
    if len(s.precision_models) < 2:
        return _list(list(s.precision_models) or s.precisions)
    main = max(s.precision_models, key=lambda p: (len(s.precision_models[p]), p))
    others = "; ".join(f"{', '.join(names)} in {prec}"
                       for prec, names in sorted(s.precision_models.items()) if prec != main)
    return f"{main} ({others})"


def setup_markdown(s: Setup) -> str:
    """The setup as one Markdown paragraph (the same words in every results chapter)."""
    data = ("the project's procedural phantom (not the paper's MRSpineSeg scans)"
            if s.data_kind == "phantom" else "real data given to the study")
    grid = f"{s.image_size} × {s.image_size} px" if s.image_size else "the profile's grid"
    crop = (f"; training slices are cropped to a random band {s.crop_width:.0%} of the width "
            "around the spine (training only: validation and test see the whole field of view)"
            if s.crop_width else "")
    steps = (f" ({_list(s.steps_per_epoch)} steps of batch {s.batch_size} per epoch)"
             if s.steps_per_epoch else f" in batches of {s.batch_size}")
    if len(s.batches) > 1 and s.batch_size in s.batches:
        # a budget exception in batch size (the 3D U-Net steps on one volume): each named
        others = "; ".join(f"{', '.join(models)}: {_list(st)} steps of batch {b}"
                           for b, (models, st) in sorted(s.batches.items())
                           if b != s.batch_size)
        steps = (f" ({_list(s.batches[s.batch_size][1])} steps of batch {s.batch_size} per "
                 f"epoch; {others})")
    test = ("a held-out test set" if s.evaluated_on == ["test"]
            else f"the {_list(s.evaluated_on)} set")
    return (
        f"**Setup.** {s.n_runs} runs of {s.n_models} models on {data}: "
        f"{s.n_train_cases} training and {s.n_val_cases} validation subjects, scored once on "
        f"{test} of {s.n_test_cases} subjects ({s.n_test_slices} slices) by the checkpoint "
        f"with the best validation Dice. Images at {grid}{crop}. Every model trains "
        f"{_list(s.epochs)} epochs{steps}, Adam at learning rate {s.lr}, loss {loss_name(s.loss)}, "
        f"in {precision_text(s)} on {_list(s.devices)} ({_list(s.processors)}), from random "
        f"initialisation (no pretraining, as in the paper), with seeds {_list(s.seeds)}. "
        f"The paper: {PAPER_MARKDOWN}, 880 × 880 px, about 120 epochs on an RTX 3090."
    )
