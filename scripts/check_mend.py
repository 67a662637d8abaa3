"""What a model's own pin shares with the study's pin (issue 24): the same short runs made from
both code versions and compared, so that a reader can see that a model run from the commit
that mends its hold (``results/plateau/CODE.<model>``, ``scripts/plateau_rerun.py --mend``)
is trained as it would have been from the study's pin, and that the other models, left on the
study's pin, would not have changed.

Each model of ``--models`` (default: the held 3D U-Net and the 2D U-Net, the model it is
compared with) trains a short ``smoke`` run (the small phantom, one thread so that it is
deterministic) from each checkout; the rows name each version by its source fingerprint and
say, per model, whether the training losses are
equal epoch by epoch, the largest difference between the final weights (0.0: the same bits),
and each version's validation Dice per epoch and test Dice. The mend changes how a 3D model is
scored, not how it trains, so its losses and weights should agree while its Dice may not; a 2D
model should agree in everything.

    python scripts/check_mend.py                 # unet3d and unet, HEAD against the study's pin
    python scripts/check_mend.py --mend-code .study-code/<commit12> --out /tmp/check.csv

Two short trainings per model (about 15 s each for U-Net on a 2-core Xeon). The table goes to
``results/plateau/mend_check.csv`` (written atomically), which the reproducibility chapter
cites.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from spineseg_core.errors import ConfigError
from spineseg_core.fingerprint import read_pin, short, source_fingerprint
from spineseg_core.io import write_csv

HERE = Path(__file__).resolve().parent.parent
PLATEAU = HERE / "results" / "plateau"

COLUMNS = ["model", "epochs", "study_fingerprint", "mend_fingerprint", "train_loss_equal",
           "weights_max_abs_diff", "val_dice_study", "val_dice_mend", "test_dice_study",
           "test_dice_mend"]


def train(code: Path, model: str, epochs: int, out: Path) -> Path:
    """A ``smoke`` run of ``model`` for ``epochs`` epochs from the checkout ``code`` (its
    package first on the path), one thread, its last checkpoint kept; the run folder."""
    command = [sys.executable, "-m", "spineseg_core", "train", "--profile", "smoke", "--model",
               model, "--epochs", str(epochs), "--threads", "1", "--keep-last-checkpoint",
               "--out-dir", str(out)]
    done = subprocess.run(command, cwd=code, env={**os.environ, "PYTHONPATH": str(code)},
                          capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"{code}: training {model} failed: {tail}")
    return out


def compare(model: str, epochs: int, study: Path, mend: Path) -> dict[str, object]:
    """One row of the table: the runs of ``model`` in the folders ``study`` and ``mend``."""
    history = {k: pd.read_csv(d / "history.csv") for k, d in (("study", study), ("mend", mend))}
    metrics = {k: json.loads((d / "metrics.json").read_text())
               for k, d in (("study", study), ("mend", mend))}
    weights = {k: torch.load(d / "checkpoint_last.pt", map_location="cpu",
                             weights_only=False)["model"]
               for k, d in (("study", study), ("mend", mend))}
    if weights["study"].keys() != weights["mend"].keys():
        diff = float("inf")
    else:
        diff = max((float((a.float() - weights["mend"][n].float()).abs().max())
                    for n, a in weights["study"].items() if a.numel()), default=0.0)

    def per_epoch(k: str) -> str:
        return " ".join(f"{v:.4f}" for v in history[k]["dice"])

    return {"model": model, "epochs": epochs,
            "train_loss_equal": history["study"]["train_loss"].tolist()
            == history["mend"]["train_loss"].tolist(),
            "weights_max_abs_diff": diff,
            "val_dice_study": per_epoch("study"), "val_dice_mend": per_epoch("mend"),
            "test_dice_study": round(metrics["study"]["dice"], 4),
            "test_dice_mend": round(metrics["mend"]["dice"], 4)}


def check(models: Sequence[str], epochs: int, study_code: Path, mend_code: Path,
          work: Path) -> pd.DataFrame:
    """Train every model of ``models`` from both checkouts into ``work`` and compare them."""
    rows = []
    for model in models:
        runs = [train(code, model, epochs, work / name / model)
                for name, code in (("study", study_code), ("mend", mend_code))]
        rows.append(compare(model, epochs, *runs))
    return pd.DataFrame(rows).assign(study_fingerprint=short(source_fingerprint(study_code)),
                                     mend_fingerprint=short(source_fingerprint(mend_code)))[COLUMNS]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["unet3d", "unet"])
    ap.add_argument("--epochs", type=int, default=2, help="epochs of each smoke run")
    ap.add_argument("--study-code", type=Path,
                    help="checkout of the study's pin (default: .study-code/<its commit[:12]>)")
    ap.add_argument("--mend-code", type=Path, default=HERE,
                    help="checkout of the mended code version (default: this one)")
    ap.add_argument("--out", type=Path, default=PLATEAU / "mend_check.csv")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        study = args.study_code or HERE / ".study-code" / read_pin(PLATEAU / "CODE")[0][:12]
        for code in (study, args.mend_code):
            if not (code / "spineseg_core").is_dir():
                raise ConfigError(f"{code}: expected a checkout of this project (with "
                                  "spineseg_core/); scripts/plateau_rerun.py makes the pinned "
                                  "ones in .study-code/")
        if source_fingerprint(study) == source_fingerprint(args.mend_code):
            raise ConfigError(f"{study} and {args.mend_code} have the same fingerprinted "
                              "files: nothing to compare")
        with tempfile.TemporaryDirectory() as work:
            table = check(args.models, args.epochs, study.resolve(),
                          args.mend_code.resolve(), Path(work))
    except (ConfigError, OSError) as e:
        sys.exit(f"check_mend: {e}")
    write_csv(args.out, table, index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
