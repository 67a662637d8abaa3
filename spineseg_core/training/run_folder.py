"""The run folder: where one training run leaves everything (see CONTRIBUTING, "Run folder
contract"), and how to read it back.

``metrics.json`` is written last, so its presence means the run finished. The best weights are
a plain safetensors file next to ``model.json`` (the build arguments), so a model rebuilds
without the training code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from spineseg_core.errors import DataError
from spineseg_core.training.config import TrainConfig


def runs_root() -> Path:
    """Default parent of run folders: ``$SPINESEG_RUNS``, else ``./runs``."""
    return Path(os.environ.get("SPINESEG_RUNS", "runs"))


def default_run_dir(cfg: TrainConfig) -> Path:
    """``runs/<profile>/<model>/seed_<s>/fold_<f>/``, or ``cfg.out_dir`` when set."""
    if cfg.out_dir is not None:
        return Path(cfg.out_dir)
    return runs_root() / str(cfg.profile) / cfg.model / f"seed_{cfg.seed}" / f"fold_{cfg.fold}"


def find_runs(group_dir: str | Path) -> list[Path]:
    """Finished run folders (holding ``metrics.json``) under ``group_dir``
    (``<model>/seed_<s>/fold_<f>/``), sorted."""
    return sorted(p.parent for p in Path(group_dir).glob("*/seed_*/fold_*/metrics.json"))


MAX_SLICES_PER_CASE = 15
"""Most sagittal slices of a phantom or MRSpineSeg case (they have 12 to 15): the bound on
``predictions.npz`` in :func:`estimate_run_disk`."""


@dataclass(frozen=True)
class DiskEstimate:
    """Bytes one run of a configuration needs: what a finished run keeps (``weights``, the
    best checkpoint; ``predictions``, an upper bound, ``None`` on real data where the test
    set's size is not known before it is read) and ``last``, the resumable state that exists
    while it trains (and after, with ``keep_last_checkpoint``)."""

    weights: int
    last: int
    predictions: int | None

    @property
    def kept(self) -> int:
        """Bytes a finished run keeps (the small CSV and JSON files not counted)."""
        return self.weights + (self.predictions or 0)


def estimate_run_disk(cfg: TrainConfig) -> DiskEstimate:
    """:class:`DiskEstimate` of ``cfg``, without training: the model is built on the meta
    device for its parameter count; weights are fp32 (4 bytes each), the last checkpoint holds
    them with Adam's two moments (three times as much), and the predictions hold, per test
    slice, the image (float16), the reference and the prediction (uint8 each) uncompressed."""
    from spineseg_core.models import build_model

    with torch.device("meta"):
        model = build_model(cfg.model, **(cfg.model_kwargs or {}))
    weights = 4 * sum(t.numel() for t in model.state_dict().values())
    predictions = (cfg.test_cases * MAX_SLICES_PER_CASE * cfg.image_size ** 2 * 4
                   if cfg.data_dir is None else None)
    return DiskEstimate(weights=weights, last=3 * weights, predictions=predictions)


@dataclass(frozen=True)
class RunFolder:
    """Paths of every file of one run folder, and readers for them."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    params = property(lambda self: self.path / "params.json")
    history = property(lambda self: self.path / "history.csv")
    metrics = property(lambda self: self.path / "metrics.json")
    per_class = property(lambda self: self.path / "per_class.csv")
    per_case = property(lambda self: self.path / "per_case.csv")
    predictions = property(lambda self: self.path / "predictions.npz")
    checkpoint_last = property(lambda self: self.path / "checkpoint_last.pt")
    checkpoint_best = property(lambda self: self.path / "checkpoint_best.safetensors")
    model_json = property(lambda self: self.path / "model.json")
    notebook = property(lambda self: self.path / "notebook.ipynb")
    cluster = property(lambda self: self.path / "cluster.json")
    error_log = property(lambda self: self.path / "error.log")

    RECORD_FILES = ("params.json", "history.csv", "metrics.json", "per_class.csv",
                    "per_case.csv")
    """The small files that make a run's committed record (``predictions.npz`` goes in as
    ``predictions.npz`` reduced to its predictions: :func:`spineseg_core.study.records`)."""

    RESULT_FILES = ("params.json", "history.csv", "metrics.json", "per_class.csv",
                    "per_case.csv", "predictions.npz", "checkpoint_best.safetensors",
                    "model.json")
    """Files a finished run leaves (``notebook.ipynb`` comes from papermill; with
    ``keep_last_checkpoint`` also ``checkpoint_last.pt``, which an unfinished run holds)."""

    def is_finished(self) -> bool:
        return self.metrics.is_file()

    def has_checkpoint(self) -> bool:
        return self.checkpoint_last.is_file()

    def _read_json(self, path: Path) -> dict[str, Any]:
        if not path.is_file():
            raise DataError(path, "missing: is this a finished run folder?")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(path, f"not valid JSON ({exc})") from None

    def load_metrics(self) -> dict[str, Any]:
        return self._read_json(self.metrics)

    def load_params(self) -> dict[str, Any]:
        return self._read_json(self.params)

    def load_model_json(self) -> dict[str, Any]:
        return self._read_json(self.model_json)

    def load_history(self) -> pd.DataFrame:
        if not self.history.is_file():
            raise DataError(self.history, "missing: the run has not finished an epoch")
        return pd.read_csv(self.history)

    def load_per_class(self) -> pd.DataFrame:
        return pd.read_csv(self.per_class)

    def load_per_case(self) -> pd.DataFrame:
        return pd.read_csv(self.per_case)

    def clear(self) -> None:
        """Delete this run's result files (a fresh start with ``resume=False``); the notebook,
        which papermill may be writing right now, stays."""
        for name in self.RESULT_FILES:
            (self.path / name).unlink(missing_ok=True)
        self.checkpoint_last.unlink(missing_ok=True)


def load_model(run_dir: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the best model of a run (``model.json`` + ``checkpoint_best.safetensors``), in
    evaluation mode on ``device``."""
    from safetensors.torch import load_file

    from spineseg_core.models import build_model

    run = RunFolder(Path(run_dir))
    spec = run.load_model_json()
    if not run.checkpoint_best.is_file():
        raise DataError(run.checkpoint_best, "missing: the run has no best checkpoint yet")
    kwargs = dict(spec["build_kwargs"])
    model = build_model(kwargs.pop("name"), **kwargs)
    model.load_state_dict(load_file(str(run.checkpoint_best), device="cpu"))
    return model.to(device).eval()
