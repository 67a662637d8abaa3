"""The Dice-variant experiment of the protocol (issue 10, item 1): which reading of the paper's
eq. 1 trains a sane model within the cpu profile's budget?

Trains U-Net on the cpu profile once per variant (background in or out of the Dice, sums pooled
over the batch or per image, smoothing), plus ``ce`` and ``dice_ce``, and writes one row per
variant: the validation scores of the best epoch (what the choice of the default reads) and the
test scores of that checkpoint. A finished run is reused, so the table can be rebuilt from the
run folders alone.

    .venv/bin/python scripts/loss_variants.py --runs-dir runs/loss-variants --epochs 3 \\
        --out results/cpu/loss_variants.csv
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pandas as pd

from spineseg_core.io import write_with
from spineseg_core.profiles import resolve_config
from spineseg_core.runs import RunFolder
from spineseg_core.train import run_training

VARIANTS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "dice_fg_batch_s1": ("dice", dict(include_background=False, pooling="batch", smooth_nr=1,
                                      smooth_dr=1)),
    "dice_bg_batch_s1": ("dice", dict(include_background=True, pooling="batch", smooth_nr=1,
                                      smooth_dr=1)),
    "dice_bg_image_s1": ("dice", dict(include_background=True, pooling="image", smooth_nr=1,
                                      smooth_dr=1)),
    "dice_bg_batch_s0": ("dice", dict(include_background=True, pooling="batch", smooth_nr=0,
                                      smooth_dr=1e-5)),
    "dice_bg_image_s1e5": ("dice", dict(include_background=True, pooling="image",
                                        smooth_nr=1e-5, smooth_dr=1e-5)),
    "ce": ("ce", None),
    "dice_ce": ("dice_ce", None),
}
"""Variant name -> (loss, Dice options). ``s1``: smooth_nr = smooth_dr = 1; ``s0``: 0 and 1e-5
(nnU-Net's); ``s1e5``: 1e-5 both (MONAI's default)."""

KEYS = ("dice", "bg_recall", "absent_fraction")


def run_variant(name: str, runs_dir: Path, epochs: int, profile: str) -> dict[str, Any]:
    loss, kwargs = VARIANTS[name]
    cfg = resolve_config(profile, model="unet", loss=loss, loss_kwargs=kwargs, epochs=epochs,
                         out_dir=runs_dir / name, hd95=False)
    test = run_training(cfg)
    history = RunFolder(runs_dir / name).load_history()
    best = history.loc[history["epoch"] == test["best_epoch"]].iloc[0]
    return {"variant": name, "loss": loss, "loss_kwargs": json.dumps(kwargs or {}),
            "epochs": epochs, "best_epoch": int(test["best_epoch"]),
            **{f"val_{k}": float(best[k]) for k in KEYS},
            **{f"test_{k}": test[k] for k in KEYS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/loss-variants"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("results/cpu/loss_variants.csv"))
    args = parser.parse_args()
    rows = [run_variant(v, args.runs_dir, args.epochs, args.profile) for v in args.variants]
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_with(args.out, lambda p: table.to_csv(p, index=False))
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
