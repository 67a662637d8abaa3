"""A budget seed's results folder (``results/plateau/``) written by hand, for the book's tests.

Only the files the convergence chapter reads: ``runs.csv`` (the runs at the budget B),
``history.csv`` (their curves, with a ``step`` column) and ``plateau.csv``, made by the
package's own :func:`~spineseg_core.study.plateau.plateau_table` from the runs at B and B/2.
Each model's curve is ``best * (1 - exp(-step / tau))``, validated every ``every`` steps, so its
convergence steps can be computed by hand.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from spineseg_core.models import model_info
from spineseg_core.study.plateau import plateau_table

SEED_MODELS: dict[str, tuple[float, float, float]] = {
    # model: (validation Dice at B/2, at B, tau of the curve at B in steps)
    "unet": (0.800, 0.805, 300.0), "attention_unet": (0.790, 0.792, 350.0),
    "resunetpp": (0.760, 0.770, 400.0), "transunet": (0.700, 0.715, 500.0),
    "miniseg": (0.375, 0.694, 1400.0),
    "pspnet": (0.600, 0.598, 200.0), "deeplabv3plus": (0.780, 0.785, 250.0),
    "denseaspp": (0.650, 0.655, 220.0), "danet": (0.700, 0.702, 240.0),
    "emanet": (0.720, 0.721, 260.0), "infnet": (0.690, 0.700, 280.0),
    "psanet": (0.710, 0.712, 300.0)}
"""The twelve models: 11 plateau (gain at most one point), MiniSeg does not (the issue's probe)."""


def write_plateau_bundle(folder: str | Path, models: dict[str, tuple[float, float, float]]
                         | None = None, steps: int = 2940, every: int = 98,
                         fingerprint: str = "ab" * 32, n_val: int = 16) -> Path:
    """Write ``runs.csv``, ``history.csv`` and ``plateau.csv`` of a budget seed of ``models``
    (default :data:`SEED_MODELS`) at ``steps`` and ``steps // 2`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec = SEED_MODELS if models is None else models
    full, half, history = [], [], []
    for model, (at_half, at_full, tau) in spec.items():
        info = model_info(model)
        common = {"model": model, "display_name": info.display_name,
                  "family": str(info.family), "seed": 0, "fold": 0,
                  "source_fingerprint": fingerprint, "n_val_cases": n_val}
        full.append({**common, "val_dice": at_full, "steps_completed": steps})
        half.append({**common, "val_dice": at_half, "steps_completed": steps // 2})
        for k, step in enumerate(range(every, steps + 1, every), start=1):
            history.append({"model": model, "display_name": info.display_name, "seed": 0,
                            "fold": 0, "epoch": k, "step": step,
                            "dice": at_full * (1 - math.exp(-step / tau))})
    runs = pd.DataFrame(full)
    runs.to_csv(folder / "runs.csv", index=False)
    pd.DataFrame(history).to_csv(folder / "history.csv", index=False)
    plateau_table(runs, pd.DataFrame(half), list(spec)).to_csv(folder / "plateau.csv",
                                                              index=False)
    return folder
