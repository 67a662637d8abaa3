"""The plateau rule (issue 24, part 2) on hand-made records, and its file from aggregate."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from fake_runs import make_fake_study
from spineseg_core.errors import ConfigError
from spineseg_core.study.plateau import (
    BudgetVerdict,
    Plateau,
    budget_verdict,
    decimals_apart,
    half_steps,
    plateau_label,
    plateau_table,
    plateaued_count,
)


def _runs(rows):
    return pd.DataFrame(rows, columns=["model", "seed", "val_dice", "steps_completed"])


def test_label_by_hand():
    assert plateau_label(0.700, 0.695) is Plateau.PLATEAUED
    assert plateau_label(0.700, 0.690) is Plateau.PLATEAUED  # exactly one point
    assert plateau_label(0.700, 0.680) is Plateau.NOT_PLATEAUED
    assert plateau_label(0.600, 0.700) is Plateau.PLATEAUED  # worse with more steps
    assert plateau_label(float("nan"), 0.7) is Plateau.NOT_MEASURED
    assert half_steps(2940) == 1470 and half_steps(5) == 2
    with pytest.raises(ConfigError, match="steps: a budget of at least 2"):
        half_steps(1)


def test_budget_verdict_waits_for_a_seed_under_way():
    """B stands at 10 of 12 plateaued, is raised once 3 have not, and is pending between."""
    twelve = [f"m{i}" for i in range(12)]

    def table(plateaued, not_plateaued, extra=()):
        labels = ([Plateau.PLATEAUED] * plateaued + [Plateau.NOT_PLATEAUED] * not_plateaued)
        return pd.DataFrame({"model": twelve[:len(labels)] + list(extra),
                             "label": [str(x) for x in labels] + ["plateaued"] * len(extra)})

    assert budget_verdict(None, twelve) == (BudgetVerdict.PENDING, 0, 0)
    assert budget_verdict(table(2, 1), twelve) == (BudgetVerdict.PENDING, 2, 3)
    assert budget_verdict(table(9, 2), twelve) == (BudgetVerdict.PENDING, 9, 11)
    assert budget_verdict(table(10, 0), twelve) == (BudgetVerdict.STANDS, 10, 10)
    assert budget_verdict(table(2, 3), twelve) == (BudgetVerdict.RAISED, 2, 5)
    # a context model's label does not count towards the twelve
    assert budget_verdict(table(9, 0, extra=["unet3d"]), twelve)[0] is BudgetVerdict.PENDING


def test_every_model_labelled_from_two_groups():
    full = _runs([("unet", 0, 0.80, 2940), ("unet", 1, 0.78, 2940),
                  ("miniseg", 0, 0.694, 2940),
                  ("pspnet", 0, 0.60, 2940), ("danet", 0, 0.55, 2940),
                  ("emanet", 0, 0.50, 2940)])
    half = _runs([("unet", 0, 0.795, 1470), ("unet", 1, 0.775, 1470),
                  ("miniseg", 0, 0.375, 1470),  # the probe: 30 vs 15 epochs
                  ("pspnet", 0, 0.70, 1470), ("danet", 1, 0.55, 1470),
                  ("emanet", 0, 0.49, 1000)])
    table = plateau_table(full, half, ["unet", "miniseg", "pspnet", "danet", "emanet", "psanet"])
    got = table.set_index("model")
    assert got["label"].to_dict() == {
        "unet": "plateaued", "miniseg": "not plateaued", "pspnet": "plateaued",
        "danet": "not measured", "emanet": "not measured", "psanet": "not measured"}
    assert got.loc["unet", "val_dice"] == pytest.approx(0.79)
    assert got.loc["unet", "gain"] == pytest.approx(0.005) and got.loc["unet", "seeds"] == "0,1"
    assert "gained 31.9 Dice points" in got.loc["miniseg", "evidence"]
    assert "below the run at B/2" in got.loc["pspnet", "evidence"]
    assert got.loc["danet", "evidence"] == "no seed run at both B and B/2"
    assert "not one budget B and its half" in got.loc["emanet", "evidence"]
    assert got.loc["psanet", "evidence"] == "no run at B"
    assert plateaued_count(table) == (2, 3)
    strict = plateau_table(full, half, ["unet"], tolerance=0.001)
    assert strict["label"].tolist() == ["not plateaued"]


def test_the_runs_at_a_quarter_join_the_table_but_not_the_label():
    """After a doubled budget the old B/2 runs are the group at B/4: their score is added for
    the ranking against the budget, and the label stays B against B/2."""
    full = _runs([("unet", 0, 0.80, 5880), ("miniseg", 0, 0.60, 5880), ("danet", 0, 0.5, 5880)])
    half = _runs([("unet", 0, 0.79, 2940), ("miniseg", 0, 0.55, 2940), ("danet", 0, 0.4, 2940)])
    quarter = _runs([("unet", 0, 0.70, 1470), ("miniseg", 0, 0.26, 1470),
                     ("danet", 0, 0.3, 1000), ("danet", 1, 0.3, 1470)])
    got = plateau_table(full, half, quarter=quarter).set_index("model")
    assert got["label"].to_dict() == {"unet": "plateaued", "miniseg": "not plateaued",
                                      "danet": "not plateaued"}
    assert got.loc["unet", "quarter_val_dice"] == pytest.approx(0.70)
    assert got.loc["miniseg", "quarter_steps"] == 1470
    assert math.isnan(got.loc["danet", "quarter_val_dice"])  # its seed 0 made 1000 steps
    assert plateau_table(full, half)["quarter_val_dice"].isna().all()


def test_bad_input_is_named():
    with pytest.raises(ConfigError, match=r"half: the runs lack the columns \['val_dice'\]"):
        plateau_table(_runs([]), pd.DataFrame({"model": [], "seed": []}))
    with pytest.raises(ConfigError, match="tolerance: expected a positive"):
        plateau_table(_runs([]), _runs([]), tolerance=0)


def test_aggregate_writes_plateau_csv_and_keeps_the_half_group_out_of_variants(tmp_path):
    from spineseg_core.study.aggregate import aggregate

    runs = make_fake_study(tmp_path / "runs", profile="cpu", losses=())
    half = make_fake_study(tmp_path / "h", profile="cpu", losses=())
    (half / "cpu").rename(runs / "cpu-half")
    aggregate("cpu", runs, tmp_path / "out", n_boot=20)
    table = pd.read_csv(tmp_path / "out" / "plateau.csv")
    assert set(table["label"]) == {"plateaued"}  # the same fake runs at both budgets
    assert (table["gain"] == 0).all()
    # the end of each schedule's validation loss, read from the fake histories at both budgets
    assert table["end_val_loss"].notna().all()
    assert (table["end_val_loss"] == table["end_half_val_loss"]).all()
    assert not (tmp_path / "out" / "variants.csv").exists()
    assert "plateau.csv" in json.loads((tmp_path / "out" / "bundle.json").read_text())["files"]
    assert not (tmp_path / "out" / "plateau_first.csv").exists()  # no raised budget
    # a raised budget: the old B/2 runs at B/4 give the first budget's labels
    quarter = make_fake_study(tmp_path / "q", profile="cpu", losses=(),
                              models=("unet", "miniseg"))
    (quarter / "cpu").rename(runs / "cpu-quarter")
    aggregate("cpu", runs, tmp_path / "out", n_boot=20)
    first = pd.read_csv(tmp_path / "out" / "plateau_first.csv")
    # DeepLabv3+'s B/2 run was made after the raise: no evidence of the first budget
    assert first["model"].tolist() == ["unet", "miniseg"]
    assert set(first["label"]) == {"plateaued"}
    assert not (tmp_path / "out" / "variants.csv").exists()  # nor is cpu-quarter a variant


def test_a_short_or_rising_curve_is_still_climbing_and_a_flat_one_is_not():
    from spineseg_core.study.plateau import still_climbing

    def curve(model, dice):
        return pd.DataFrame({"model": model, "seed": 0, "fold": 0,
                             "epoch": range(1, len(dice) + 1), "dice": dice})

    history = pd.concat([
        curve("short", [0.1, 0.5, 0.6, 0.6, 0.6, 0.6]),  # 6 points: too few to tell
        curve("rising", [0.1, 0.2, 0.3, 0.4, 0.50, 0.52, 0.60, 0.62]),  # 0.62 - 0.52 = 0.10
        curve("flat", [0.1, 0.2, 0.3, 0.4, 0.70, 0.71, 0.71, 0.715])])  # 0.715 - 0.71 < 0.01
    got = still_climbing(history).set_index("model")
    assert got.loc["short", "climbing"] and got.loc["short", "points"] == 6
    assert got.loc["rising", "climbing"] and got.loc["rising", "gain"] == pytest.approx(0.10)
    assert not got.loc["flat", "climbing"] and got.loc["flat", "gain"] == pytest.approx(0.005)


def test_a_gain_just_over_the_tolerance_prints_apart_from_it():
    # DANet's seed: 74.61 % at B against 73.59 % at B/2, a gain of 1.02 points over a
    # tolerance of 1.0; at one decimal both would print "1.0"
    assert decimals_apart(0.0102, 0.01) == 2
    assert decimals_apart(0.02276, 0.01) == 1  # 2.3 against 1.0
    assert decimals_apart(-0.0099, 0.01) == 2  # a loss of 0.99 beside 1.00
    assert decimals_apart(0.010004, 0.01) == 3  # 1.000 against 1.000 still: the most
    assert decimals_apart(0.01, 0.01) == 1  # equal: the gain is within the tolerance
    got = plateau_table(_runs([("danet", 0, 0.74613, 5880)]), _runs([("danet", 0, 0.73589, 2940)]),
                        ["danet"])
    assert got.loc[0, "label"] == "not plateaued"
    assert got.loc[0, "evidence"] == ("doubling the budget gained 1.02 Dice points on validation, "
                                      "more than 1.00")
    got = plateau_table(_runs([("unet", 0, 0.8001, 5880)]), _runs([("unet", 0, 0.8097, 2940)]),
                        ["unet"])
    assert got.loc[0, "evidence"] == ("doubling the budget changed validation Dice by -0.96 "
                                      "points, within 1.00")
    from spineseg_core.study.plateau import shortfall

    assert "gained 1.02 points" in shortfall(math.nan, 0.73589, 0.74613)[1]


def test_why_a_model_has_not_plateaued_by_hand():
    from spineseg_core.study.plateau import Shortfall, shortfall

    kind, why = shortfall(0.26, 0.59, 0.71)  # +33 then +12: climbing, slower
    assert kind is Shortfall.STILL_LEARNING
    assert why == ("still learning: +33.0 points from B/4 to B/2, then +12.0 to B; the gains "
                   "shrink, so it is nearing a plateau it has not reached")
    kind, why = shortfall(0.50, 0.55, 0.65)  # +5 then +10
    assert kind is Shortfall.STILL_LEARNING and "do not shrink" in why
    kind, why = shortfall(0.712, 0.676, 0.736)  # down then up: scatter
    assert kind is Shortfall.SCATTER
    assert "71.2 % at B/4, 67.6 % at B/2, 73.6 % at B, a swing of 6.0 points" in why
    assert shortfall(0.70, 0.705, 0.75)[0] is Shortfall.SCATTER  # +0.5 at B/2: within tolerance
    kind, why = shortfall(math.nan, 0.50, 0.60)
    assert kind is Shortfall.TWO_BUDGETS and why.startswith("doubling the budget from B/2 "
                                                            "gained 10.0 points")
    for full, half in ((0.60, 0.595), (0.60, 0.70), (math.nan, 0.5)):  # plateaued, unmeasured
        with pytest.raises(ConfigError, match="not those of a model that has not plateaued"):
            shortfall(0.5, half, full)


def test_the_chapter_says_why_each_model_has_not_plateaued():
    from spineseg_core.report.pages.convergence import shortfall_text

    table = pd.DataFrame({
        "model": ["unet", "miniseg", "denseaspp", "pspnet"],
        "label": ["plateaued", "not plateaued", "not plateaued", "not plateaued"],
        "val_dice": [0.887, 0.708, 0.736, 0.85], "half_val_dice": [0.901, 0.586, 0.676, 0.80],
        "gain": [-0.014, 0.122, 0.060, 0.05], "tolerance": [0.01] * 4,
        "quarter_val_dice": [0.826, 0.261, 0.712, math.nan]})
    text = shortfall_text(table, {"miniseg": "MiniSeg", "denseaspp": "DenseASPP"})
    lines = text.splitlines()
    assert lines[0].startswith("Why MiniSeg, DenseASPP and pspnet have not plateaued")
    assert lines[2].startswith("- **MiniSeg**: still learning: +32.5 points")
    assert lines[3].startswith("- **DenseASPP**: not monotone in the budget")
    assert lines[4].startswith("- **pspnet**: doubling the budget from B/2 gained 5.0 points")
    assert "U-Net" not in text and "unet" not in text
    assert shortfall_text(table[table["label"] == "plateaued"], {}) == ""


def _history(model, dice, seed=0):
    return pd.DataFrame({"model": model, "seed": seed, "fold": 0,
                         "epoch": range(1, len(dice) + 1), "dice": dice})


def test_end_scores_average_the_last_validations_by_hand():
    from spineseg_core.study.plateau import end_scores

    history = pd.concat([_history("unet", [0.5, 0.9, 0.8, 0.7, math.nan, 0.6]),
                         _history("miniseg", [0.1, 0.2])])
    ends = end_scores(history).set_index("model")["val_dice"]
    assert ends["unet"] == pytest.approx((0.8 + 0.7 + 0.6) / 3)  # NaN rows are no validation
    assert ends["miniseg"] == pytest.approx(0.15)  # fewer than 3: all of them
    assert end_scores(history, points=1).set_index("model")["val_dice"]["unet"] == 0.6
    with pytest.raises(ConfigError, match="at least 1 validation"):
        end_scores(history, points=0)
    with pytest.raises(ConfigError, match="lacks the columns"):
        end_scores(history.drop(columns=["dice"]))


def test_end_labels_undo_a_spike_in_the_best_score():
    """A spike at B lifts its best score 6 points over B/2's; the ends of both schedules are
    level, so by the end score the model has plateaued (DenseASPP at 5880, in shape)."""
    from spineseg_core.study.plateau import end_labels

    full = _runs([("denseaspp", 0, 0.736, 5880), ("unet", 0, 0.90, 5880)])
    half = _runs([("denseaspp", 0, 0.676, 2940), ("unet", 0, 0.80, 2940)])
    hist_full = pd.concat([_history("denseaspp", [0.60, 0.736, 0.66, 0.655, 0.656]),
                           _history("unet", [0.7, 0.9, 0.9, 0.9, 0.9])])
    hist_half = pd.concat([_history("denseaspp", [0.60, 0.676, 0.656, 0.655, 0.654]),
                           _history("unet", [0.6, 0.8, 0.8, 0.8, 0.8])])
    assert plateau_table(full, half).set_index("model")["label"]["denseaspp"] == "not plateaued"
    ends = end_labels(full, half, hist_full, hist_half).set_index("model")
    assert ends.loc["denseaspp", "end_label"] == "plateaued"
    assert ends.loc["denseaspp", "end_gain"] == pytest.approx((0.66 + 0.655 + 0.656) / 3 - 0.655)
    assert ends.loc["unet", "end_label"] == "not plateaued"  # a real gain stays one
    assert list(ends.columns) == ["end_label", "end_val_dice", "end_half_val_dice", "end_gain",
                                  "end_val_loss", "end_half_val_loss"]
    assert ends[["end_val_loss", "end_half_val_loss"]].isna().all().all()  # no val_loss column


def test_end_labels_carry_the_end_validation_loss_by_hand():
    from spineseg_core.study.plateau import end_labels

    full = _runs([("miniseg", 0, 0.70, 5880)])
    half = _runs([("miniseg", 0, 0.58, 2940)])
    hist_full = _history("miniseg", [0.3, 0.6, 0.7, 0.7]).assign(val_loss=[0.9, 0.6, 0.5, 0.4])
    hist_half = _history("miniseg", [0.3, 0.5, 0.58, 0.58]).assign(val_loss=[0.9, 0.8, 0.7, 0.7])
    ends = end_labels(full, half, hist_full, hist_half, points=2).set_index("model")
    assert ends.loc["miniseg", "end_val_loss"] == pytest.approx(0.45)
    assert ends.loc["miniseg", "end_half_val_loss"] == pytest.approx(0.70)


def test_after_best_by_hand():
    """U-Net at B in shape: Dice peaks mid-run and ends 4 points lower while the validation
    loss ends near its lowest (no overfitting); two folds are averaged."""
    from spineseg_core.study.plateau import after_best

    unet = pd.concat([
        _history("unet", [0.50, 0.89, 0.84, 0.85, 0.84]).assign(
            fold=0, val_loss=[0.9, 0.40, 0.37, 0.36, 0.35]),
        _history("unet", [0.50, 0.80, 0.80, 0.80, 0.80]).assign(
            fold=1, val_loss=[0.9, 0.40, 0.30, 0.40, 0.40])])
    rows = after_best(unet, points=3).set_index("model")
    assert rows.loc["unet", "best_val_dice"] == pytest.approx((0.89 + 0.80) / 2)
    assert list(rows.columns) == ["seed", "best_val_dice", "end_val_dice", "drop",
                                  "loss_above_min"]
    assert rows.loc["unet", "end_val_dice"] == pytest.approx((0.8433333 + 0.80) / 2)
    assert rows.loc["unet", "drop"] == pytest.approx((0.89 - 0.8433333) / 2)
    assert rows.loc["unet", "loss_above_min"] == pytest.approx((0.01 + (0.3667 - 0.30)) / 2,
                                                               abs=1e-4)
    assert math.isnan(after_best(unet.drop(columns=["val_loss"]))["loss_above_min"].iloc[0])
    with pytest.raises(ConfigError, match="lacks the columns"):
        after_best(unet.drop(columns=["dice"]))


def test_the_chapter_says_which_labels_rest_on_noise():
    from spineseg_core.report.pages.convergence import end_label_text

    table = pd.DataFrame({
        "model": ["unet", "denseaspp", "pspnet"], "label": ["plateaued", "not plateaued",
                                                             "not measured"],
        "gain": [-0.015, 0.060, math.nan], "end_label": ["plateaued", "plateaued",
                                                         "not measured"],
        "end_gain": [-0.057, 0.001, math.nan]})
    history = pd.concat([_history("unet", [0.5, 0.80, 0.82, 0.80, 0.82, 0.80]),
                         _history("denseaspp", [0.5, 0.70, 0.70, 0.70, 0.70, 0.70])])
    text = end_label_text(table, {"denseaspp": "DenseASPP"}, history)
    assert ("2 of the 2 models measured plateau; the label differs for DenseASPP (not plateaued "
            "by the best score, +6.0 points; plateaued by the end score, +0.1).") in text
    # differences after the first row: (+0.02, -0.02, +0.02, -0.02), variance (ddof 1)
    # 0.0016 / 3, over 2, root: 0.0163; and all 0: 0
    assert "is 0.0 to 1.6 points" in text
    from spineseg_core.study.plateau import flat_mislabel_rate
    unet = flat_mislabel_rate(math.sqrt(0.0016 / 3 / 2), 6)
    assert 0.05 < unet < 1
    unet3 = flat_mislabel_rate(math.sqrt(0.0016 / 3 / 2), 6, seeds=3)
    assert f"with 3 seeds at both budgets, averaged as the rule does, the rates are 0 to " \
           f"{100 * unet3:.0f} %" in text
    assert (f"labelled not plateaued by the rule in 0 to {100 * unet:.0f} % of seeds" in text
            and "it stays at or under 5 % only for DenseASPP." in text)
    same = table.assign(end_label=table["label"])
    assert "the same labels as the rule's" in end_label_text(same, {})
    assert end_label_text(table.drop(columns=["end_label"]), {}) == ""


def test_the_chapter_says_where_the_runs_end_by_hand():
    from spineseg_core.report.pages.convergence import after_best_text

    history = pd.concat([
        _history("unet", [0.50, 0.89, 0.84, 0.85, 0.84]).assign(
            val_loss=[0.9, 0.40, 0.37, 0.36, 0.35]),  # best 0.89, ends 0.8433: falls 4.7
        _history("pspnet", [0.50, 0.80, 0.80, 0.81, 0.80]).assign(
            val_loss=[0.9, 0.50, 0.45, 0.44, 0.44])])  # best 0.81, ends 0.8033: falls 0.7
    plateau = pd.DataFrame({
        "model": ["unet", "pspnet", "unet_25d3"], "end_gain": [-0.057, 0.025, -0.2],
        "end_val_dice": [0.842, 0.827, 0.5], "end_half_val_dice": [0.899, 0.802, 0.7],
        "end_val_loss": [0.356, 0.424, 0.3], "end_half_val_loss": [0.347, 0.443, 0.4]})
    text = after_best_text(plateau, history, {"unet": "U-Net"})
    assert ("a median 2.7 points below its best (0.7 to 4.7, U-Net most; more than 2 points "
            "for 1 of the 2 models)") in text
    assert "its validation loss ends within 0.010 of its lowest" in text  # unet: 0.36 - 0.35
    # unet_25d3 has no curve at B here: left out of the comparison of the two runs
    assert ("lowered the validation loss at the end of the schedule for 1 of these 2 models, "
            "yet it lowered the end score of 1, by up to 5.7 points (U-Net: 89.9 % at B/2 and "
            "84.2 % at B, validation losses 0.347 and 0.356)") in text
    assert after_best_text(plateau.drop(columns=["end_val_loss"]), history, {}).endswith(
        "the checkpoint the test scores is taken there.")
    assert after_best_text(plateau, None, {}) == ""


def test_validation_noise_by_hand_ignores_a_steady_climb():
    from spineseg_core.study.plateau import validation_noise

    history = pd.concat([
        _history("unet", [0.1, 0.2, 0.80, 0.82, 0.80, 0.82, 0.80, 0.82]),
        _history("pspnet", [0.1, 0.2, 0.30, 0.40, 0.50, 0.60]),  # a steady climb, no noise
        _history("miniseg", [0.3, 0.4, math.nan])])  # 2 validations: one difference
    noise = validation_noise(history).set_index("model")
    # unet's first quarter (2 of 8 rows) left out: 0.80, 0.82, ... -> differences +-0.02
    d = [0.02, -0.02, 0.02, -0.02, 0.02]
    m = sum(d) / 5
    var = sum((x - m) ** 2 for x in d) / 4
    assert noise.loc["unet", "noise_sd"] == pytest.approx(math.sqrt(var / 2))
    assert noise.loc["unet", "points"] == 8
    assert noise.loc["pspnet", "noise_sd"] == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(noise.loc["miniseg", "noise_sd"])
    with pytest.raises(ConfigError, match="lacks the columns"):
        validation_noise(history.drop(columns=["dice"]))


def test_a_flat_model_is_mislabelled_by_noise_alone_at_the_hand_computed_rates():
    from spineseg_core.study.plateau import flat_mislabel_rate, flat_part

    assert flat_mislabel_rate(0.0, 30) == 0.0  # no noise: a gain of 0 is within tolerance
    # noise wide against the tolerance: the best of B's 23 flat validations beats the best of
    # B/2's 12 (23 = 30 - 30 // 4, 12 = 15 - 15 // 4) with probability 23 / 35
    assert flat_part(30) == 23 and flat_part(15) == 12 and flat_part(3) == 3
    assert flat_mislabel_rate(100.0, 30) == pytest.approx(23 / 35, abs=0.01)
    assert flat_mislabel_rate(100.0, 30, half_points=30) == pytest.approx(0.5, abs=0.01)
    # one validation each: the gain is N(0, 2 s^2); s = 1 point / sqrt 2 puts the tolerance at
    # one SD of the gain, exceeded with probability 1 - Phi(1) = 0.1587
    assert flat_mislabel_rate(0.01 / math.sqrt(2), 1, half_points=1, trials=200_000) == \
        pytest.approx(0.1587, abs=0.004)
    assert flat_mislabel_rate(0.02, 30) > flat_mislabel_rate(0.005, 30)  # noisier, worse
    # three seeds a side, one validation each: the gain is N(0, 2 s^2 / 3); at s = 1 point x
    # sqrt(3 / 2) the tolerance is again one SD of it
    assert flat_mislabel_rate(0.01 * math.sqrt(1.5), 1, half_points=1, seeds=3,
                              trials=200_000) == pytest.approx(0.1587, abs=0.004)
    # with many validations the best score's bias stays: seeds do not bring the rate down much
    assert flat_mislabel_rate(0.03, 30, seeds=5) > 0.4
    for bad in (dict(noise_sd=-0.01, points=30), dict(noise_sd=math.nan, points=30),
                dict(noise_sd=0.01, points=0), dict(noise_sd=0.01, points=30, seeds=0)):
        with pytest.raises(ConfigError):
            flat_mislabel_rate(**bad)


def test_the_chance_that_enough_flat_models_pass_by_hand():
    from spineseg_core.study.plateau import flat_pass_chance

    assert flat_pass_chance([0.0, 0.0], 2) == (1.0, 2.0)
    assert flat_pass_chance([0.5, 0.5], 2) == (0.25, 1.0)  # both pass: 1/2 x 1/2
    assert flat_pass_chance([0.5, 0.5], 1) == (0.75, 1.0)  # not both fail
    assert flat_pass_chance([0.1, 0.2, 0.4], 2)[0] == pytest.approx(
        0.9 * 0.8 * 0.6 + 0.1 * 0.8 * 0.6 + 0.9 * 0.2 * 0.6 + 0.9 * 0.8 * 0.4)
    assert flat_pass_chance([0.3], 0)[0] == pytest.approx(1.0)
    assert flat_pass_chance([0.3], 2)[0] == 0.0  # more than there are models
    with pytest.raises(ConfigError, match="between 0 and 1"):
        flat_pass_chance([1.2])


def test_the_chapter_calibrates_the_budgets_test_on_flat_models(monkeypatch):
    from spineseg_core.report.pages.convergence import _budget_test_sentence

    monkeypatch.setattr("spineseg_core.study.plateau.MIN_PLATEAUED", 2)
    rates = pd.Series([0.5, 0.5], index=["unet", "pspnet"])
    # c unmeasured counts as passing: at least 1 of the 2 measured must pass, 1 - 1/4
    assert _budget_test_sentence(rates, ["unet", "pspnet", "danet"]) == (
        " Were the 2 of the paper's models measured all flat, 1.0 of them would be labelled "
        "plateaued on average, and at least 2 of the 3 would be with a chance of at most 75 % "
        "(the 1 not yet measured counted as passing).")
    assert _budget_test_sentence(rates, ["unet", "pspnet"]).endswith(
        "with a chance of 25 %: at one seed, the budget's test fails most budgets that every "
        "model has reached.")
    assert _budget_test_sentence(rates, ["danet"]) == ""


def test_a_gain_stands_out_of_noise_by_hand():
    from spineseg_core.study.plateau import flat_gain_chance, flat_mislabel_rate

    # one validation each: the flat gain is N(0, 2 s^2); with s = 1 point / sqrt 2 a gain of
    # 2 points is two SDs out: 1 - Phi(2) = 0.0228
    s = 0.01 / math.sqrt(2)
    assert flat_gain_chance(0.02, s, 1, half_points=1, trials=200_000) == pytest.approx(
        0.0228, abs=0.002)
    assert flat_gain_chance(0.0, 0.0, 30) == 1.0  # no noise: a gain of 0 is what flat gives
    assert flat_gain_chance(0.001, 0.0, 30) == 0.0  # ... and any gain stands out
    assert flat_gain_chance(0.01, 0.02, 30, strict=True) == flat_mislabel_rate(0.02, 30,
                                                                              tolerance=0.01)


def test_the_chapter_says_which_gains_stand_out_of_noise():
    from spineseg_core.report.pages.convergence import _gain_beyond_noise_sentence
    from spineseg_core.study.plateau import flat_gain_chance

    plateau = pd.DataFrame({"model": ["miniseg", "danet", "unet"],
                            "label": ["not plateaued", "not plateaued", "plateaued"],
                            "gain": [0.12, 0.0102, -0.015]})
    noise = pd.DataFrame({"model": ["miniseg", "danet", "unet"], "seed": 0, "points": 30,
                          "noise_sd": [0.004, 0.019, 0.03]})
    text = _gain_beyond_noise_sentence(plateau, noise, {"miniseg": "MiniSeg", "danet": "DANet"})
    danet = flat_gain_chance(0.0102, 0.019, 30)
    assert 0.05 < danet < 0.95
    assert text == (
        " Of the 2 models labelled not plateaued, MiniSeg gained more than a flat model with the "
        f"same noise gains in 95 % of seeds; DANet (+1.0 points, {100 * danet:.0f} %) did not: "
        "a flat model gains as much in the share of seeds given, so that label may be noise.")
    assert _gain_beyond_noise_sentence(plateau[plateau["model"] == "unet"], noise, {}) == ""
