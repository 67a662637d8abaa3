"""The Dice-variant experiment of the protocol (issue 10, item 1): which reading of the paper's
eq. 1 trains a sane model within the cpu profile's budget?

Trains U-Net on the cpu profile once per variant of :data:`spineseg_core.study.loss_study.VARIANTS`
(background in or out of the Dice, sums pooled over the batch or per image, smoothing; plus
``ce`` and ``dice_ce``), and writes one row per
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
from spineseg_core.study.loss_study import BY_NAME, VARIANTS, choose_default, late_scores
from spineseg_core.training.config import resolve_config
from spineseg_core.training.loop import run_training
from spineseg_core.training.run_folder import RunFolder

KEYS = ("dice", "bg_recall", "absent_fraction")


def run_variant(name: str, runs_dir: Path, epochs: int, profile: str) -> dict[str, Any]:
    loss, kwargs = BY_NAME[name].loss, BY_NAME[name].kwargs
    cfg = resolve_config(profile, model="unet", loss=loss, loss_kwargs=kwargs, epochs=epochs,
                         out_dir=runs_dir / name, hd95=False)
    test = run_training(cfg)
    history = RunFolder(runs_dir / name).load_history()
    best = history.loc[history["epoch"] == test["best_epoch"]].iloc[0]
    return {"variant": name, "loss": loss, "loss_kwargs": json.dumps(kwargs or {}),
            "epochs": epochs, "best_epoch": int(test["best_epoch"]),
            **{f"val_{k}": float(best[k]) for k in KEYS}, **late_scores(history),
            **{f"test_{k}": test[k] for k in KEYS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/loss-variants"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--profile", default="cpu")
    names = [v.name for v in VARIANTS]
    parser.add_argument("--variants", nargs="+", default=names, choices=names)
    parser.add_argument("--out", type=Path, default=Path("results/cpu/loss_variants.csv"))
    args = parser.parse_args()
    rows = [run_variant(v, args.runs_dir, args.epochs, args.profile) for v in args.variants]
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_with(args.out, lambda p: table.to_csv(p, index=False))
    print(table.to_string(index=False))
    name, reason = choose_default(table)
    print(f"default loss by the rule of spineseg_core.study.loss_study: {name}: {reason}")


if __name__ == "__main__":
    main()
