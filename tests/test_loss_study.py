"""The rule that chose the default loss, on hand-made experiment tables."""

from __future__ import annotations

import pandas as pd
import pytest

from spineseg_core.study.loss_study import (
    FALLBACK,
    VARIANTS,
    choose_default,
    is_sane,
    late_scores,
    variants_table,
)


def _table(val: dict[str, tuple[float, float]], test: tuple[float, float] = (0.5, 0.5)):
    rows = []
    for v in VARIANTS:
        bg, absent = val.get(v.name, (0.5, 0.3))
        rows.append({"variant": v.name, "val_dice": 0.7, "val_bg_recall": 0.999,
                     "val_absent_fraction": 0.0, "val_late_bg_recall_min": bg,
                     "val_late_absent_max": absent, "test_dice": 0.7,
                     "test_bg_recall": test[0], "test_absent_fraction": test[1]})
    return pd.DataFrame(rows)


def test_no_sane_pure_dice_falls_back_to_dice_ce():
    name, reason = choose_default(_table({"ce": (0.999, 0.0), "dice_ce": (0.999, 0.0)}))
    assert name == FALLBACK == "dice_ce" and "none of the 5 pure-Dice variants" in reason


def test_the_most_literal_sane_variant_wins():
    table = _table({"dice_bg_batch_s1": (0.99, 0.001), "dice_bg_image_s1": (0.995, 0.0)})
    assert choose_default(table)[0] == "dice_bg_batch_s1"
    table = _table({"dice_bg_batch_s0": (0.985, 0.005), "dice_bg_batch_s1": (0.99, 0.001)})
    assert choose_default(table)[0] == "dice_bg_batch_s0"


def test_thresholds_are_inclusive_for_recall_exclusive_for_absent():
    assert is_sane(0.98, 0.0099) and not is_sane(0.9799, 0.0) and not is_sane(1.0, 0.01)
    assert choose_default(_table({"dice_bg_batch_s0": (0.98, 0.01)}))[0] == FALLBACK
    assert choose_default(_table({"dice_bg_batch_s0": (0.98, 0.0)}))[0] == "dice_bg_batch_s0"


def test_the_rule_never_reads_the_test_columns():
    table = _table({}, test=(1.0, 0.0))  # sane on test only
    assert choose_default(table)[0] == FALLBACK  # and sane at the best epoch is not enough
    with pytest.raises(ValueError, match="lacks"):
        choose_default(table.drop(columns="val_late_bg_recall_min"))


def test_late_scores_take_the_worst_of_the_second_half():
    history = pd.DataFrame({"epoch": [1, 2, 3, 4, 5, 6],
                            "bg_recall": [0.6, 0.84, 0.83, 0.85, 0.88, 0.995],
                            "absent_fraction": [0.0, 0.06, 0.14, 0.13, 0.10, 0.0]})
    late = late_scores(history)  # epochs 4-6
    assert late == {"val_late_bg_recall_min": 0.85, "val_late_absent_max": 0.13,
                    "late_epochs": 3}
    assert not is_sane(late["val_late_bg_recall_min"], late["val_late_absent_max"])
    every_other = history.assign(bg_recall=[None, 0.9, None, 0.99, None, 0.995],
                                 absent_fraction=[None, 0.5, None, 0.0, None, 0.0])
    assert late_scores(every_other)["late_epochs"] == 2  # epochs 4 and 6 were validated
    assert late_scores(history.head(1))["late_epochs"] == 1
    with pytest.raises(ValueError, match="no validated epoch"):
        late_scores(history.assign(bg_recall=None))


def test_variants_table_for_the_book():
    shown = variants_table(_table({"ce": (0.999, 0.0)}).iloc[::-1])
    assert shown["loss"].iloc[0].startswith("every class, sums over the batch, no smoothing")
    assert shown.loc[shown["loss"] == "cross-entropy", "sane"].item() == "yes"
    assert shown["worst val. bg recall, 2nd half"].iloc[0] == 50.0
    assert shown["sane"].tolist().count("yes") == 1


def test_select_loss_over_several_models_by_hand():
    import pandas as pd

    from spineseg_core.study.loss_study import LOSS_MODELS, select_loss

    assert LOSS_MODELS == ("unet", "miniseg", "deeplabv3plus")
    val = {"dice_ce": (0.74, 0.15, 0.60), "weighted_ce": (0.72, 0.36, 0.58),
           "dice": (0.70, 0.40, 0.50), "ce": (0.73, 0.10, 0.59)}
    rows = [dict(model=m, loss=loss, seed=s, val_dice=d + 0.01 * s, test_dice=0.99)
            for loss, ds in val.items() for m, d in zip(LOSS_MODELS, ds) for s in (0, 1)]
    runs = pd.DataFrame(rows)
    chosen, reason, table = select_loss(runs)
    # means: weighted_ce .5533, dice .5333, dice_ce .4967, ce .4733 (+ .005 seed mean each)
    assert chosen == "weighted_ce" and "highest mean" in reason
    assert table["loss"].tolist() == ["weighted_ce", "dice", "dice_ce", "ce"]
    assert table["val_dice"].iloc[0] == pytest.approx((0.72 + 0.36 + 0.58) / 3 + 0.005)
    # Within a point of the best, the paper's Dice wins the tie.
    tie = runs.assign(val_dice=runs["val_dice"].where(runs["loss"] != "dice",
                                                      runs["val_dice"] + 0.015))
    chosen, reason, _ = select_loss(tie)
    assert chosen == "dice" and "within 1 point" in reason
    # A loss not run for every model does not compete.
    partial = runs[~((runs["loss"] == "weighted_ce") & (runs["model"] == "deeplabv3plus"))]
    chosen, _, table = select_loss(partial)
    assert chosen == "dice" and not table.set_index("loss").loc["weighted_ce", "eligible"]
    with pytest.raises(ValueError, match="no loss was run for every model"):
        select_loss(runs[runs["model"] == "unet"])
    with pytest.raises(ValueError, match=r"lack the columns \['val_dice'\]"):
        select_loss(runs.drop(columns="val_dice"))


def test_select_loss_skips_insane_losses_and_compares_common_seeds():
    import pandas as pd

    from spineseg_core.study.loss_study import LOSS_MODELS, select_loss

    val = {"dice_ce": (0.74, 0.15, 0.60), "dice": (0.80, 0.50, 0.70), "ce": (0.73, 0.12, 0.59)}
    rows = [dict(model=m, loss=loss, seed=0, val_dice=d, val_late_bg_recall_min=0.99,
                 val_late_absent_max=0.0)
            for loss, ds in val.items() for m, d in zip(LOSS_MODELS, ds)]
    runs = pd.DataFrame(rows)
    # Dice paints absent levels in MiniSeg's run: its higher score does not win.
    insane = runs.copy()
    insane.loc[(insane["loss"] == "dice") & (insane["model"] == "miniseg"),
               "val_late_absent_max"] = 0.05
    chosen, _, table = select_loss(insane)
    assert chosen == "dice_ce"  # (0.74+0.15+0.60)/3 = .4967 against ce .48
    assert table.set_index("loss").loc["dice", ["sane", "eligible"]].tolist() == [False, False]
    assert select_loss(runs)[0] == "dice"
    # An extra dice_ce seed of U-Net that the other losses lack is left out of the comparison:
    # its low score would otherwise pull dice_ce below ce.
    extra = pd.concat([runs, pd.DataFrame([dict(model="unet", loss="dice_ce", seed=1,
                                                val_dice=0.10, val_late_bg_recall_min=0.5,
                                                val_late_absent_max=0.2)])])
    chosen, _, table = select_loss(extra[extra["loss"] != "dice"])
    assert chosen == "dice_ce" and table["val_dice"].iloc[0] == pytest.approx(1.49 / 3)
    with pytest.raises(ValueError, match="sane on validation"):
        select_loss(insane[insane["loss"] == "dice"])


def test_loss_decision_reads_records(tmp_path):
    from fake_runs import write_fake_record
    from spineseg_core.errors import ConfigError
    from spineseg_core.study.decisions import loss_decision

    def record(group, model, loss, seed, val, bg=0.99, fp="a" * 64):
        write_fake_record(tmp_path / group / model / f"seed_{seed}" / "fold_0", model, val,
                          loss=loss, seed=seed, late_bg_recall=bg, fingerprint=fp)

    for m, a, b in (("unet", 0.7, 0.6), ("miniseg", 0.2, 0.3), ("deeplabv3plus", 0.6, 0.5)):
        record("cpu", m, "dice_ce", 0, a)
        record("cpu-loss-ce", m, "ce", 0, b)
    record("cpu-loss-ce", "unet", "ce", 1, 0.9, bg=0.9)  # epoch 3 of 4 is in the second half
    loss, reason, table, runs = loss_decision(tmp_path)
    assert loss == "dice_ce" and len(runs) == 7
    assert table.set_index("loss").loc["ce", "val_dice"] == pytest.approx(1.4 / 3)
    assert runs.set_index(["loss", "seed"]).loc[("ce", 1), "val_late_bg_recall_min"] == 0.9
    record("cpu-loss-dice", "unet", "dice", 0, 0.9, fp="b" * 64)
    with pytest.raises(ConfigError, match="2 code versions"):
        loss_decision(tmp_path)
