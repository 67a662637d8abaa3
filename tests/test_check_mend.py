"""``scripts/check_mend.py`` without training: the comparison of two run folders against
hand-made histories and weights, and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from script_helpers import load_script

check_mend = load_script("check_mend")
REPO = Path(__file__).resolve().parent.parent


def _run(folder: Path, losses: list[float], dice: list[float], test: float,
         weights: dict[str, torch.Tensor]) -> Path:
    folder.mkdir(parents=True)
    pd.DataFrame({"epoch": range(1, len(losses) + 1), "train_loss": losses,
                  "dice": dice}).to_csv(folder / "history.csv", index=False)
    (folder / "metrics.json").write_text(json.dumps({"dice": test}))
    torch.save({"model": weights}, folder / "checkpoint_last.pt")
    return folder


def test_the_same_training_scored_otherwise_is_told_apart(tmp_path):
    w = {"conv.weight": torch.tensor([[1.0, -2.0]]), "bn.num_batches_tracked": torch.tensor(3)}
    study = _run(tmp_path / "a", [3.5, 3.25], [0.0, 0.0107], 0.00941, w)
    same = _run(tmp_path / "b", [3.5, 3.25], [0.0, 0.0125], 0.01, {k: v.clone() for k, v in w.items()})
    row = check_mend.compare("u3", 2, study, same)
    assert row["train_loss_equal"] is True and row["weights_max_abs_diff"] == 0.0
    assert row["val_dice_study"] == "0.0000 0.0107" and row["val_dice_mend"] == "0.0000 0.0125"
    assert row["test_dice_study"] == 0.0094 and row["test_dice_mend"] == 0.01
    moved = _run(tmp_path / "c", [3.5, 3.2], [0.0, 0.0107], 0.00941,
                 {"conv.weight": torch.tensor([[1.0, -1.75]]),
                  "bn.num_batches_tracked": torch.tensor(3)})
    row = check_mend.compare("u3", 2, study, moved)
    assert row["train_loss_equal"] is False and row["weights_max_abs_diff"] == 0.25
    other = _run(tmp_path / "d", [3.5, 3.25], [0.0, 0.0107], 0.00941, {"fc.weight": w["conv.weight"]})
    assert check_mend.compare("u3", 2, study, other)["weights_max_abs_diff"] == float("inf")


def test_it_refuses_two_checkouts_of_one_version_and_a_folder_that_is_not_one(tmp_path, capsys):
    with pytest.raises(SystemExit, match="the same fingerprinted files: nothing to compare"):
        check_mend.main(["--study-code", str(REPO), "--mend-code", str(REPO),
                         "--out", str(tmp_path / "x.csv")])
    with pytest.raises(SystemExit, match="expected a checkout of this project"):
        check_mend.main(["--study-code", str(tmp_path), "--out", str(tmp_path / "x.csv")])
    assert not (tmp_path / "x.csv").exists()
