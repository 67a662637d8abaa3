"""The no-learning baseline (issue 24, part 7) on hand-made masks, and its file."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from _tiny_data import make_tiny_dataset
from fake_runs import make_fake_study
from spineseg_core.errors import ConfigError, DataError
from spineseg_core.study.baseline import atlas_scores, baseline_dice, paste, subject_counts, weak_runs


def test_paste_centres_by_cropping_or_padding():
    small = np.array([[[1, 2], [3, 4]]], dtype=np.uint8)
    big = paste(small, (1, 4, 4))
    assert big[0, 1:3, 1:3].tolist() == [[1, 2], [3, 4]] and big.sum() == 10
    assert paste(big, (1, 2, 2)).tolist() == small.tolist()
    assert paste(small, (3, 2, 2))[1].tolist() == small[0].tolist()  # slices centred too
    with pytest.raises(ConfigError, match="a mask of 2 axes cannot go on a grid of 3"):
        paste(small[0], (1, 2, 2))


def test_counts_and_atlas_scores_by_hand():
    ref = np.zeros((1, 2, 4), dtype=np.uint8)
    ref[0, :, :2] = 1  # class 1 on the left half
    pred = np.zeros_like(ref)
    pred[0, :, 1:3] = 1  # shifted by one column
    counts = subject_counts(pred, ref)
    assert counts.shape == (19, 4) and counts[0].tolist() == [2, 2, 2, 2]
    assert counts[1:, :3].sum() == 0
    # Atlas "a" is the reference itself, "b" the shifted mask; two test subjects, equal to ref.
    table = atlas_scores({"b": pred, "a": ref}, {"t1": ref, "t2": ref})
    assert table["atlas"].tolist() == ["a", "b"]
    assert table["dice"].tolist() == pytest.approx([1.0, 2 * 4 / (2 * 4 + 4 + 4)])
    assert (table["n_test_cases"] == 2).all() and baseline_dice(table) == 1.0
    # A class the atlas predicts but no test subject holds scores 0 and counts in the mean.
    two = ref.copy()
    two[0, :, 3] = 2
    assert atlas_scores({"x": two}, {"t": ref})["dice"].item() == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="baseline: need at least one atlas"):
        atlas_scores({}, {"t": ref})


def test_weak_runs_are_those_within_twenty_points():
    runs = pd.DataFrame({"model": ["unet", "miniseg", "miniseg"], "seed": [0, 0, 1],
                         "dice": [0.59, 0.131, 0.37]})
    weak = weak_runs(runs, 0.159)
    assert weak[["model", "seed"]].values.tolist() == [["miniseg", 0]]
    assert weak["above_baseline"].item() == pytest.approx(0.131 - 0.159)
    with pytest.raises(DataError, match=r"runs.csv: lacks the columns \['dice'\]"):
        weak_runs(runs.drop(columns="dice"), 0.159)
    with pytest.raises(DataError, match="baseline.csv: expected a column 'dice'"):
        baseline_dice(pd.DataFrame())


def test_aggregate_scores_the_runs_data(tmp_path, monkeypatch):
    from spineseg_core.study.aggregate import aggregate

    monkeypatch.setenv("SPINESEG_CACHE", str(tmp_path / "cache"))
    data = make_tiny_dataset(tmp_path / "data", cases=6)
    runs = make_fake_study(tmp_path / "runs", profile="smoke", losses=())
    for params in (runs / "smoke").glob("*/seed_*/fold_0/params.json"):
        values = json.loads(params.read_text())
        params.write_text(json.dumps({**values, "data_dir": str(data), "image_size": 32}))
    aggregate("smoke", runs, tmp_path / "out", n_boot=20, baseline=True)
    table = pd.read_csv(tmp_path / "out" / "baseline.csv")
    assert list(table.columns) == ["atlas", "dice", "n_test_cases"]
    assert len(table) + table["n_test_cases"].iloc[0] == 6  # pool + test = every case
    assert table["dice"].is_monotonic_decreasing and 0 < table["dice"].iloc[0] <= 1
    bundle = json.loads((tmp_path / "out" / "bundle.json").read_text())
    assert "baseline.csv" in bundle["files"]
