"""The book's report API: formatted tables, the setup facts of a bundle, the deviations."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pandas as pd
import pytest

from fake_runs import make_fake_study, write_fake_run
from spineseg_core.errors import DataError
from spineseg_core.report.deviations import deviations, deviations_table
from spineseg_core.report.facts import precision_text, read_setup, setup_markdown
from spineseg_core.report.tables import (
    DASH,
    Column,
    Kind,
    cell_text,
    fold_constant,
    shown_frame,
    table_html,
)
from spineseg_core.study.aggregate import aggregate
from spineseg_core.study.paper import PAPER_DOI


def test_cells_are_written_by_kind_and_missing_ones_are_a_dash():
    assert cell_text(0.61234, Kind.PERCENT, 1) == "61.2"
    assert cell_text(3.14159, Kind.NUMBER, 2) == "3.14"
    assert cell_text(13391444, Kind.INTEGER) == "13,391,444"
    assert cell_text("U-Net", Kind.TEXT) == "U-Net"
    for missing in (None, math.nan, pd.NA, " "):
        assert cell_text(missing, Kind.PERCENT) == DASH


def test_table_has_named_columns_no_index_and_a_footnote_for_dashes():
    df = pd.DataFrame({"display_name": ["U-Net", "MiniSeg"], "dice_mean": [0.612, math.nan],
                       "params": [13391444, 83000]}, index=[7, 9])
    cols = [Column("display_name", "Model"), Column("dice_mean", "Dice (%)", Kind.PERCENT),
            Column("params", "Parameters", Kind.INTEGER)]
    shown = shown_frame(df, cols)
    assert list(shown.columns) == ["Model", "Dice (%)", "Parameters"]
    assert shown.values.tolist() == [["U-Net", "61.2", "13,391,444"], ["MiniSeg", DASH, "83,000"]]
    html = table_html(df, cols, notes=["Test set."], dash_note="no run yet")._repr_html_()
    assert "NaN" not in html and "…" not in html and "dice_mean" not in html
    assert "row_heading" not in html  # no index column
    assert f"{DASH}: no run yet." in html and "Test set." in html
    assert "overflow-x:auto" in html  # a wide table scrolls by design
    full = table_html(df.fillna(0.5), cols)._repr_html_()
    assert "no run yet" not in full and DASH + ":" not in full  # no dash, no dash note


def test_a_value_every_row_shares_is_said_once_under_the_table():
    """A constant column leaves the table for one note, as written in the table (so 128 and
    128.0 are one value); the first column, a column that varies and a column of dashes stay;
    a single row keeps every column."""
    df = pd.DataFrame({"name": ["U-Net", "U-Net"], "size": [128, 128.0], "batch": [4, 8],
                       "dice": [0.5, 0.6], "gone": [math.nan, math.nan]})
    cols = [Column("name", "Model"), Column("size", "Size (px)", Kind.INTEGER),
            Column("batch", "Batch", Kind.INTEGER), Column("dice", "Dice (%)", Kind.PERCENT),
            Column("gone", "Memory (MB)", Kind.NUMBER)]
    kept, notes = fold_constant(df, cols)
    assert [c.header for c in kept] == ["Model", "Batch", "Dice (%)", "Memory (MB)"]
    assert notes == ["Every row: Size (px): 128."]
    assert fold_constant(df.iloc[:1], cols) == (cols, [])


def test_a_column_not_in_the_frame_is_named():
    with pytest.raises(KeyError, match="dice_std"):
        shown_frame(pd.DataFrame({"a": [1]}), [Column("dice_std", "sd")])


def test_setup_is_read_from_the_bundle(tmp_path):
    runs = make_fake_study(tmp_path / "runs", profile="cpu", losses=())
    aggregate("cpu", runs, tmp_path / "out", n_boot=20)
    s = read_setup(tmp_path / "out")
    # make_fake_study: 3 models x 2 seeds, 4 test cases of 3 slices, 3 epochs, batch 4.
    assert (s.n_models, s.n_runs, s.seeds) == (3, 6, [0, 1])
    assert (s.n_test_cases, s.n_test_slices, s.epochs, s.batch_size) == (4, 12, [3], 4)
    assert s.data_kind == "phantom" and s.evaluated_on == ["test"] and not s.pretrained
    assert s.processors == ["test cpu"]
    text = setup_markdown(s)
    for part in ("6 runs of 3 models", "4 subjects (12 slices)", "3 epochs in batches of 4",
                 "no pretraining", "seeds 0, 1", "test cpu", PAPER_DOI, "held-out test set"):
        assert part in text, part
    assert s.precision_models == {"fp32": ["DeepLabv3+", "MiniSeg", "U-Net"]}
    assert precision_text(s) == "fp32"
    # one model trained in another precision is named beside the precision of the others
    mixed = replace(s, precisions=["bf16-autocast", "fp32"], precision_models={
        "bf16-autocast": ["DANet", "U-Net"], "fp32": ["MiniSeg"]})
    assert precision_text(mixed) == "bf16-autocast (MiniSeg in fp32)"
    assert "in bf16-autocast (MiniSeg in fp32) on cpu" in setup_markdown(mixed)


def test_setup_of_a_separate_study_is_its_own(tmp_path):
    """The context chapter's setup counts the context study's runs, not the main study's, and
    names the model that steps in another batch size (the 3D U-Net, on one volume)."""
    runs = make_fake_study(tmp_path / "runs", profile="p", models=("unet", "miniseg"),
                           seeds=(0, 1, 2), losses=())
    for seed in (0, 1):
        for model in ("unet", "unet_25d3", "unet3d"):
            run = write_fake_run(runs / f"p-context/{model}/seed_{seed}/fold_0", model, seed,
                                 profile="p")
            for name, change in (("params.json", {"batch_size": 1 if model == "unet3d" else 4,
                                                  "precision": "bf16-autocast"}),
                                 ("metrics.json", {"steps_per_epoch": 16 if model == "unet3d"
                                                   else 12})):
                data = json.loads((run / name).read_text())
                (run / name).write_text(json.dumps({**data, **change}))
    aggregate("p", runs, tmp_path / "out", n_boot=20)
    main, context = read_setup(tmp_path / "out"), read_setup(tmp_path / "out", "context")
    assert (main.n_runs, main.n_models, main.seeds) == (6, 2, [0, 1, 2])
    assert (context.n_runs, context.n_models, context.seeds) == (6, 3, [0, 1])
    assert context.precisions == ["bf16-autocast"] and context.batch_size == 4
    assert context.seeds_per_model == {"U-Net": 2, "U-Net 2.5D (3 slices)": 2, "3D U-Net": 2}
    text = setup_markdown(context)
    assert "6 runs of 3 models" in text and "seeds 0, 1." in text
    assert "(12 steps of batch 4 per epoch; 3D U-Net: 16 steps of batch 1)" in text
    with pytest.raises(DataError, match=r"other.csv: missing: the bundle has no runs of the "
                                        r"other study"):
        read_setup(tmp_path / "out", "other")


def test_setup_of_a_folder_without_a_bundle_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="bundle.json: missing"):
        read_setup(tmp_path)


def test_every_deviation_has_a_reason_and_the_backbones_are_checked(tmp_path):
    rows = deviations()
    assert all(d.aspect and d.paper and d.ours and d.reason for d in rows)
    psp = [d for d in rows if d.aspect == "PSPNet backbone"]
    assert len(psp) == 1 and psp[0].paper == "ResNet101" and psp[0].ours == "ResNet-34"
    assert not [d for d in rows if d.aspect == "DeepLabv3+ backbone"]  # ResNet-101 both
    runs = make_fake_study(tmp_path / "runs", profile="cpu", losses=())
    aggregate("cpu", runs, tmp_path / "out", n_boot=20)
    table = deviations_table(read_setup(tmp_path / "out"))
    grid = table.set_index("aspect").loc["Image grid", "ours"]
    assert grid == "64 × 64 px"  # the fake runs' image size
    setup = read_setup(tmp_path / "out")
    assert setup.seeds_per_model == {"U-Net": 2, "DeepLabv3+": 2, "MiniSeg": 2}
    seeds = lambda s: deviations_table(s).set_index("aspect").loc["Repetitions", "ours"]  # noqa: E731
    assert seeds(setup).startswith("2 seeds per model")
    uneven = replace(setup, seeds_per_model={"U-Net": 3, "DeepLabv3+": 2})
    assert seeds(uneven).startswith("2 to 3 seeds per model")
    assert list(table.columns) == ["aspect", "paper", "ours", "reason"]


def test_columns_for_picks_the_kind_from_the_values():
    from spineseg_core.report.tables import columns_for

    df = pd.DataFrame({"name": ["a", "b"], "n": [3, 12000], "x": [0.12345, math.nan],
                       "ok": [True, False]})
    cols = columns_for(df, {"name": "Name", "n": "Count", "x": "Rate (img/s)", "ok": "Fits",
                            "absent": "Not there"})
    assert [c.header for c in cols] == ["Name", "Count", "Rate (img/s)", "Fits"]
    assert shown_frame(df, cols).values.tolist() == [["a", "3", "0.12", "True"],
                                                     ["b", "12,000", DASH, "False"]]


def test_spread_labels_keeps_order_and_gap():
    from spineseg_core.report.figures import spread_labels

    y = [50.0, 50.5, 51.0, 80.0]
    placed = spread_labels(y, min_gap=2.0)
    assert list(placed.argsort()) == [0, 1, 2, 3]  # order kept
    gaps = sorted(placed)
    assert all(b - a >= 2.0 - 1e-9 for a, b in zip(gaps, gaps[1:]))
    assert placed[3] == pytest.approx(80.0, abs=2.0)  # a lone point stays near its own
    far = spread_labels([10.0, 40.0], min_gap=2.0)
    assert far.tolist() == [10.0, 40.0]  # already apart: unchanged


def test_the_fnr_recall_deviation_is_computed_from_the_papers_table():
    row = next(d for d in deviations() if d.aspect == "FN rate and recall")
    assert "105.7-133.2 %" in row.paper  # min and max of fn_rate + recall over Table 1's rows
