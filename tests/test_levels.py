"""Level identification and relabelling from the sacrum, on hand-made label volumes.

A volume here is a straight spine: ``(S, H, W)`` = (3, H, 8), the sacrum a block of 6 rows at
the bottom, then each structure upwards as a band of rows over columns 1..6 of every slice
(discs 2 rows, vertebrae 4), 3 empty rows at the top. Rows grow towards inferior, as in the
study. Expected outcomes are worked out by hand in each test.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from spineseg_core.cli import main
from spineseg_core.errors import ConfigError, DataError
from spineseg_core.levels.anatomy import LEVELS, SACRUM, SPINE_ORDER, rank
from spineseg_core.levels.identify import Outcome, all_right, identify, outcome
from spineseg_core.levels.relabel import Status, relabel
from spineseg_core.levels.stats import rate_frame, rate_interval, stage_intervals
from spineseg_core.report.claims import Verdict
from spineseg_core.report.level_verdict import model_verdicts, relabelling_verdict

L5S, L5, L4L5, L4, L3L4, L3, L2L3, L2 = SPINE_ORDER[1:9]
DISC_ROWS, VERT_ROWS, SACRUM_ROWS, TOP = 2, 4, 6, 3


def spine(labels_bottom_up: list[int], heights: list[int] | None = None,
          sacrum_rows: int = SACRUM_ROWS) -> np.ndarray:
    """A straight spine: the sacrum (``sacrum_rows`` high), then ``labels_bottom_up`` (one
    band each, its height from ``heights`` or 2 for a disc value, 4 for any other)."""
    if heights is None:
        heights = [DISC_ROWS if v in SPINE_ORDER[1::2] else VERT_ROWS for v in labels_bottom_up]
    H = TOP + sum(heights) + sacrum_rows
    vol = np.zeros((3, H, 8), np.uint8)
    vol[:, H - sacrum_rows:, 1:7] = SACRUM
    bottom = H - sacrum_rows
    for v, h in zip(labels_bottom_up, heights):
        vol[:, bottom - h:bottom, 1:7] = v
        bottom -= h
    return vol


FIVE = [L5S, L5, L4L5, L4, L3L4, L3]  # six levels above the sacrum


def test_anatomical_order_comes_from_the_label_table():
    assert SPINE_ORDER[:5] == (SACRUM, 11, 2, 12, 3)  # S, L5/S, L5, L4/L5, L4
    assert SPINE_ORDER[-2:] == (19, 10)               # T9/T10, T9: the top is T9
    assert len(LEVELS) == 18 and rank(2) == 0 and rank(19) == 8


@pytest.mark.parametrize("ref, answer, expected", [
    (L4, L4, Outcome.CORRECT), (L4, L3, Outcome.SHIFT_UP), (L4, L5, Outcome.SHIFT_DOWN),
    (L4L5, L3L4, Outcome.SHIFT_UP), (L5S, L4L5, Outcome.SHIFT_UP),
    (L4, L2, Outcome.OTHER),        # two levels off
    (L4, L4L5, Outcome.OTHER),      # the other kind
    (L5S, SACRUM, Outcome.OTHER),   # the sacrum is not a level
    (L5, 0, Outcome.MISSED)])
def test_outcome(ref, answer, expected):
    assert outcome(ref, answer) is expected


def test_perfect_case():
    ref = spine(FIVE)
    table = identify(ref, ref)
    assert list(table["class_value"]) == FIVE  # anatomical order
    assert (table["outcome"] == Outcome.CORRECT).all() and all_right(table)
    assert list(table["n_ref"]) == [3 * 6 * 2, 3 * 6 * 4] * 3
    r = relabel(ref)
    assert r.status is Status.OK and (r.n_discs, r.n_vertebrae, r.n_specks) == (3, 3, 0)
    assert np.array_equal(r.volume, ref)


def test_one_level_shift_is_named_and_fixed():
    ref = spine(FIVE)
    pred = spine([L4L5, L4, L3L4, L3, L2L3, L2])  # every level one up
    table = identify(pred, ref)
    assert list(table["answer"]) == [L4L5, L4, L3L4, L3, L2L3, L2]
    assert (table["outcome"] == Outcome.SHIFT_UP).all() and not all_right(table)
    assert (table["answer_share"] == 1.0).all()
    r = relabel(pred)
    assert r.ok and (r.n_discs, r.n_vertebrae, r.n_specks) == (3, 3, 0)
    assert np.array_equal(r.volume, ref)
    assert all_right(identify(r.volume, ref))


def test_missing_level_is_named_and_stops_the_count():
    ref = spine(FIVE)
    pred = ref.copy()
    pred[pred == L4L5] = 0  # the disc between L5 and L4 missed
    table = identify(pred, ref).set_index("class_value")["outcome"]
    assert table[L4L5] == Outcome.MISSED
    assert (table.drop(L4L5) == Outcome.CORRECT).all()
    r = relabel(pred)
    assert r.status is Status.NOT_ALTERNATING and "2nd and 3rd" in r.detail
    assert r.volume is pred  # kept as predicted


# A sacralised L5 as MRSpineSeg labels it (and the phantom's hard cases): the fused L5 and the
# remnant disc below it are part of S, so the sacrum band is 6 + 2 + 4 = 12 rows, and the levels
# above are named by counting up from it: the anatomical L4/L5 disc is labelled L5/S, the
# anatomical L4 L5, and so on. Bottom-up, by anatomy: S1-S5 (6 rows), remnant disc (2), fused
# L5 (4), L4/L5 (2), L4 (4), L3/L4, L3, L2/L3, L2.
SACRALISED_SACRUM = SACRUM_ROWS + DISC_ROWS + VERT_ROWS


def test_sacralised_l5_labelled_by_counting_from_the_sacrum():
    ref = spine(FIVE, sacrum_rows=SACRALISED_SACRUM)
    assert int((ref[1] == SACRUM).any(axis=1).sum()) == 12
    assert all_right(identify(ref, ref))
    r = relabel(ref)  # the reference's own names are the count's
    assert r.ok and (r.n_discs, r.n_vertebrae) == (3, 3) and np.array_equal(r.volume, ref)


def test_sacralised_l5_named_by_anatomy_is_fixed_by_the_count():
    """A model that paints the fused L5 as sacrum but names the levels above by their anatomy
    (anatomical L4 called L4): every level one up; the count from the sacrum gives the
    reference's names back."""
    ref = spine(FIVE, sacrum_rows=SACRALISED_SACRUM)
    pred = spine([L4L5, L4, L3L4, L3, L2L3, L2], sacrum_rows=SACRALISED_SACRUM)
    before = identify(pred, ref)
    assert list(before["answer"]) == [L4L5, L4, L3L4, L3, L2L3, L2]
    assert (before["outcome"] == Outcome.SHIFT_UP).all()
    r = relabel(pred)
    assert r.ok and np.array_equal(r.volume, ref) and all_right(identify(r.volume, ref))


def test_sacralised_l5_painted_as_a_mobile_vertebra_stays_shifted():
    """A model that paints the fused L5 as a mobile L5 (and the remnant disc as L5/S) above a
    normal-height sacrum, then names the rest by anatomy: the reference's S rows 7-12 above
    the bottom are called L5/S and L5, every level one up. The count starts from that smaller
    sacrum, finds the same alternation one pair lower, passes every check, and keeps every
    name one level up: what it cannot see."""
    ref = spine(FIVE, sacrum_rows=SACRALISED_SACRUM)
    pred = spine([L5S, L5, L4L5, L4, L3L4, L3, L2L3, L2])
    assert pred.shape == ref.shape  # 3 + 4 x 6 + 6 = 3 + 3 x 6 + 12 = 33 rows
    before = identify(pred, ref)
    assert list(before["answer"]) == [L4L5, L4, L3L4, L3, L2L3, L2]
    assert (before["outcome"] == Outcome.SHIFT_UP).all()
    r = relabel(pred)
    assert r.ok and (r.n_discs, r.n_vertebrae) == (4, 4)
    assert np.array_equal(r.volume, pred)  # already in counting order: nothing renamed
    after = identify(r.volume, ref)
    assert list(after["answer"]) == [L4L5, L4, L3L4, L3, L2L3, L2]
    assert (after["outcome"] == Outcome.SHIFT_UP).all() and not all_right(after)


def test_merged_levels():
    ref = spine(FIVE)
    pred = ref.copy()
    pred[pred == L4L5] = L5  # the disc painted as vertebra: L5, L4/L5, L4 one component
    r = relabel(pred)
    # order: L5/S (2 rows), the merge (4 + 2 + 4 = 10 rows), L3/L4, L3 (4 rows): 10 > 1.5 x 4
    assert r.status is Status.MERGED and "10 rows" in r.detail and r.volume is pred
    assert r.n_vertebrae == 2 and r.n_discs == 2


def test_split_component():
    ref = spine(FIVE)
    pred = ref.copy()
    rows = np.flatnonzero((pred[1] == L4).any(axis=1))
    pred[:, rows[1], :] = 0  # a background row through L4: two vertebra components
    r = relabel(pred)
    # L5/S, L5, L4/L5, then L4's two pieces
    assert r.status is Status.NOT_ALTERNATING
    assert "the 4th and 5th components above the sacrum are both vertebrae" in r.detail


def test_no_sacrum_and_no_levels():
    ref = spine(FIVE)
    pred = ref.copy()
    pred[pred == SACRUM] = 0
    assert relabel(pred).status is Status.NO_SACRUM
    only_sacrum = np.where(ref == SACRUM, SACRUM, 0).astype(np.uint8)
    assert relabel(only_sacrum).status is Status.NO_LEVELS


def test_component_below_the_sacrum():
    pred = spine(FIVE)
    pred[:, -1, 0] = L3  # a column of 3 voxels below the sacrum's centre, big enough to count
    pred[:, -2, 0] = L3
    r = relabel(pred, speck_share=0.0)
    assert r.status is Status.BELOW_SACRUM


def test_specks_are_left_alone():
    ref = spine(FIVE)
    pred = spine([L4L5, L4, L3L4, L3, L2L3, L2])
    pred[0, 1, 0] = L5  # one stray voxel near the top
    r = relabel(pred)
    assert r.ok and r.n_specks == 1 and r.volume[0, 1, 0] == L5
    r.volume[0, 1, 0] = 0
    assert np.array_equal(r.volume, ref)


def test_too_many_components():
    labels = [L5S, L5] * 10  # 20 levels above the sacrum: only 18 labels exist
    r = relabel(spine(labels))
    assert r.status is Status.TOO_MANY


def test_tie_goes_to_the_lower_label():
    ref = spine(FIVE)
    pred = ref.copy()
    rows = np.flatnonzero((pred[1] == L4).any(axis=1))
    pred[:, rows[:2], 1:7] = L3  # half of L4's voxels called L3 (value 4), half L4 (value 3)
    row = identify(pred, ref).set_index("class_value").loc[L4]
    assert row["answer"] == L4 and row["answer_share"] == 0.5


def test_bad_input_is_one_clear_error():
    with pytest.raises(ConfigError, match="3D integer label volume"):
        relabel(np.zeros((4, 4), np.uint8))
    with pytest.raises(ConfigError, match="0..19"):
        relabel(np.full((2, 2, 2), 25, np.uint8))
    with pytest.raises(ConfigError, match="same shape|one shape"):
        identify(np.zeros((1, 2, 2), np.uint8), np.zeros((1, 2, 3), np.uint8))


# --- intervals and the verdict -------------------------------------------------------------

def _subjects(right_before: dict[str, list[int]], right_after: dict[str, list[int]],
              seeds=(0, 1)) -> pd.DataFrame:
    rows = []
    for model in right_before:
        for seed in seeds:
            for stage, right in (("predicted", right_before[model]),
                                 ("relabelled", right_after[model])):
                for i, r in enumerate(right):
                    rows.append({"model": model, "seed": seed, "case_id": f"Case{i}",
                                 "stage": stage, "n_levels": 4, "n_right": 4 if r else 3,
                                 "all_right": r})
    return pd.DataFrame(rows)


def test_rates_and_their_intervals_by_hand():
    t = _subjects({"unet": [1, 1, 0, 0]}, {"unet": [1, 1, 1, 0]})
    before = rate_frame(t[t.stage == "predicted"].assign(one=1), "all_right", "one")
    assert list(before.columns) == ["seed", "case_id", "class_value", "tp", "fp", "fn", "tn"]
    assert before["tp"].sum() == 4 and before["fn"].sum() == 4  # 2 seeds x 4 subjects
    point, low, high = rate_interval(before, n_boot=200)
    assert point == 0.5 and 0 <= low < 0.5 < high <= 1
    ident = rate_frame(t[t.stage == "predicted"], "n_right", "n_levels")
    assert rate_interval(ident, n_boot=50)[0] == pytest.approx(14 / 16)
    after = rate_frame(t[t.stage == "relabelled"].assign(one=1), "all_right", "one")
    found = stage_intervals(before, after, n_boot=200)
    assert found["relabelled"][0] == 0.75 and found["difference"][0] == pytest.approx(0.25)
    # paired: a subject never gets worse, so no replicate of the difference is below 0
    assert found["difference"][1] >= 0
    same = stage_intervals(before, before, n_boot=100)["difference"]
    assert same == (0.0, 0.0, 0.0)


def test_one_changed_subject_is_not_a_resolved_difference():
    """40 subjects, one seed: a rate difference that rests on one subject has an interval that
    includes 0 (Efron's resampling leaves that subject out of about a third of the
    replicates); eight subjects that all changed the same way make it exclude 0. With the
    study's Bayesian weights, the one subject alone would exclude 0 (why rates do not take
    them)."""
    from spineseg_core.levels.stats import paired_stages
    from spineseg_core.study.stats import Resampling, subject_weights

    def frames(changed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        t = _subjects({"unet": [1] * 40}, {"unet": [0] * changed + [1] * (40 - changed)},
                      seeds=(0,))
        return tuple(rate_frame(t[t.stage == st].assign(one=1), "all_right", "one")
                     for st in ("predicted", "relabelled"))

    one = stage_intervals(*frames(1), n_boot=1000)["difference"]
    assert one[0] == pytest.approx(-1 / 40) and one[1] < 0 and one[2] == 0.0
    eight = stage_intervals(*frames(8), n_boot=1000)["difference"]
    assert eight[0] == pytest.approx(-8 / 40) and eight[2] < 0
    cases = sorted(frames(1)[0]["case_id"].unique())
    bayes = subject_weights(np.random.default_rng(0), 1000, 40, Resampling.BAYESIAN)
    pb, pa, rb, ra = paired_stages(*frames(1), "recall", subject_w=bayes, cases=cases)
    assert (ra - rb).max() < 0  # every replicate on the changed subject's side
    counts = subject_weights(np.random.default_rng(0), 1000, 40, Resampling.MULTINOMIAL)
    assert (counts.sum(axis=1) == 40).all() and (counts == 0).any()


def test_verdict_holds_fails_and_ties():
    models = ("unet", "deeplabv3plus")
    none, every = [0] * 8, [1] * 8
    holds = relabelling_verdict(_subjects(dict.fromkeys(models, none), dict.fromkeys(models, every)),
                                n_boot=200)
    assert holds.verdict is Verdict.HOLDS and holds.difference == 1.0
    assert (holds.n_seeds, holds.n_subjects) == (2, 8)
    assert list(model_verdicts(holds)["verdict"]) == ["holds", "holds"]
    fails = relabelling_verdict(_subjects(dict.fromkeys(models, every), dict.fromkeys(models, none)),
                                n_boot=200)
    assert fails.verdict is Verdict.FAILS and fails.difference == -1.0
    mixed = [1, 0, 1, 0, 1, 1, 0, 0]
    tie = relabelling_verdict(_subjects(dict.fromkeys(models, mixed), dict.fromkeys(models, mixed)),
                              n_boot=200)
    assert tie.verdict is Verdict.UNRESOLVED and (tie.difference, tie.ci_low, tie.ci_high) == (0, 0, 0)
    # one model gains one subject, the other loses one: the mean is an exact tie
    gain = [1, 0, 1, 0, 1, 1, 0, 1]
    lose = [1, 0, 1, 0, 1, 0, 0, 0]
    balanced = relabelling_verdict(_subjects({"unet": mixed, "deeplabv3plus": mixed},
                                             {"unet": gain, "deeplabv3plus": lose}), n_boot=200)
    assert balanced.verdict is Verdict.UNRESOLVED and balanced.difference == pytest.approx(0)
    assert balanced.ci_low < 0 < balanced.ci_high


def test_verdict_without_tables_says_what_is_missing():
    claim = relabelling_verdict(None)
    assert claim.verdict is Verdict.UNRESOLVED and "subjects.csv" in claim.caveats[0]


# --- the study command on hand-made records ----------------------------------------------

SHIFTED = [L4L5, L4, L3L4, L3, L2L3, L2]


def _write_record(group_dir, model: str, preds: dict[str, np.ndarray], seed: int = 0) -> None:
    run = group_dir / model / f"seed_{seed}" / "fold_0"
    run.mkdir(parents=True)
    cases = np.array([c for c, v in preds.items() for _ in range(len(v))])
    index = np.concatenate([np.arange(len(v)) for v in preds.values()])
    np.savez_compressed(run / "predictions.npz", pred=np.concatenate(list(preds.values())),
                        case_id=cases, slice_index=index, dice=np.zeros(len(cases)))
    (run / "metrics.json").write_text(json.dumps({"model": model, "seed": seed, "fold": 0}))


@pytest.fixture()
def records(tmp_path):
    """Group ``cpu``: two subjects with the same straight spine. U-Net: Case1 right, Case2
    shifted one up. DeepLabv3+: Case1 shifted, Case2 shifted without a sacrum."""
    group = tmp_path / "runs" / "cpu"
    group.mkdir(parents=True)
    ref, shifted = spine(FIVE), spine(SHIFTED)
    no_sacrum = np.where(shifted == SACRUM, 0, shifted).astype(np.uint8)
    mask = np.concatenate([ref, ref])
    np.savez_compressed(group / "test_set.npz", case_id=np.array(["Case1"] * 3 + ["Case2"] * 3),
                        slice_index=np.array([0, 1, 2] * 2), mask=mask,
                        image=(mask * 3).astype(np.uint8), image_range=np.array([0.0, 1.0]))
    _write_record(group, "unet", {"Case1": ref, "Case2": shifted})
    _write_record(group, "deeplabv3plus", {"Case1": shifted, "Case2": no_sacrum})
    return tmp_path


def test_levels_command_writes_its_tables(records, capsys):
    out = records / "results" / "cpu" / "levels"
    assert main(["levels", "--runs-dir", str(records / "runs"), "--out", str(out),
                 "--n-boot", "50"]) == 0
    printed = capsys.readouterr().out
    assert "U-Net: all levels right 50.0 % as predicted, 100.0 % relabelled" in printed
    assert "DeepLabv3+: all levels right 0.0 % as predicted, 50.0 % relabelled" in printed
    subjects = pd.read_csv(out / "subjects.csv")
    right = subjects.set_index(["model", "case_id", "stage"])["all_right"]
    assert right.to_dict() == {
        ("deeplabv3plus", "Case1", "predicted"): 0, ("deeplabv3plus", "Case1", "relabelled"): 1,
        ("deeplabv3plus", "Case2", "predicted"): 0, ("deeplabv3plus", "Case2", "relabelled"): 0,
        ("unet", "Case1", "predicted"): 1, ("unet", "Case1", "relabelled"): 1,
        ("unet", "Case2", "predicted"): 0, ("unet", "Case2", "relabelled"): 1}
    levels = pd.read_csv(out / "levels.csv.gz")
    assert len(levels) == 2 * 2 * 2 * 6
    shifted = levels[(levels.model == "unet") & (levels.case_id == "Case2")
                     & (levels.stage == "predicted")]
    assert (shifted["outcome"] == "shift_up").all()
    assert list(shifted["answer"]) == SHIFTED
    status = pd.read_csv(out / "status.csv").set_index(["model", "status"])["n"]
    assert status[("unet", "ok")] == 2 and status[("reference", "ok")] == 2
    assert status[("deeplabv3plus", "ok")] == 1 and status[("deeplabv3plus", "no_sacrum")] == 1
    summary = pd.read_csv(out / "summary.csv").set_index(["model", "metric", "stage"])["point"]
    assert summary[("unet", "identification", "predicted")] == 0.5  # 6 of 12 levels
    assert summary[("unet", "all_levels_right", "difference")] == 0.5
    assert summary[("unet", "dice", "relabelled")] == 1.0
    assert summary[("deeplabv3plus", "all_levels_right", "relabelled")] == 0.5
    per = pd.read_csv(out / "per_structure.csv")
    row = per[(per.model == "unet") & (per.stage == "predicted") & (per.class_name == "L4")]
    assert row[["n", "rate", "correct", "shift_up"]].iloc[0].tolist() == [2, 0.5, 0.5, 0.5]
    about = json.loads((out / "about.json").read_text())
    assert about["models"] == ["unet", "deeplabv3plus"] and about["seeds"] == [0]
    with np.load(out / "example.npz") as ex:  # the first subject fixed: DeepLabv3+'s Case1
        assert (str(ex["model"]), str(ex["case_id"]), int(ex["n_fixed"])) == \
            ("deeplabv3plus", "Case1", 6)
        assert bool(ex["all_right"]) and np.array_equal(ex["relabelled"], ex["mask"])
        assert not np.array_equal(ex["pred"], ex["mask"])


def test_confusion_grid_of_the_heatmaps(records):
    """U-Net relabelled is perfect: its grid is 100 % on the diagonal (each present level
    answered by itself) and 0 elsewhere; as predicted, one subject of two is shifted one up:
    50 % on the diagonal, 50 % on the next level of the same kind (two columns to the right:
    discs and vertebrae alternate). Levels no subject has are empty rows."""
    from spineseg_core.report.level_figures import ANSWERS, confusion_grid

    out = records / "levels"
    assert main(["levels", "--runs-dir", str(records / "runs"), "--out", str(out),
                 "--n-boot", "20"]) == 0
    conf = pd.read_csv(out / "confusion.csv")
    perfect = confusion_grid(conf, "unet", "relabelled")
    assert list(perfect.columns) == list(ANSWERS) and list(perfect.index) == list(LEVELS)[::-1]
    present = perfect.loc[FIVE]
    assert np.array_equal(present.to_numpy(), 100 * (present.index.to_numpy()[:, None]
                                                      == np.array(ANSWERS)[None, :]))
    assert perfect.drop(index=FIVE).isna().all().all()
    half = confusion_grid(conf, "unet", "predicted").loc[FIVE]
    for level, up in zip(FIVE, SHIFTED):
        assert half.loc[level, level] == 50 and half.loc[level, up] == 50
        assert half.loc[level].sum() == 100


def test_levels_page_gives_every_name_of_its_chapter(records):
    from spineseg_core.fingerprint import REPO
    from spineseg_core.report.bundle import Bundle
    from spineseg_core.report.pages import build_page, glue_names
    from spineseg_core.report.tables import HTMLTable

    results = records / "results" / "cpu"
    assert main(["levels", "--runs-dir", str(records / "runs"), "--out",
                 str(results / "levels"), "--n-boot", "50"]) == 0
    values = build_page("levels", Bundle(results))
    wanted = glue_names((REPO / "book" / "levels.md").read_text())
    assert wanted and wanted <= set(values)
    assert values["lv_ref_ok"] == "2 of 2"
    assert values["lv_ex_caption"] == (
        "Case1, predicted by DeepLabv3+ (seed 0), the slice with the most labelled pixels. "
        "Counting from the sacrum turns 6 of its 6 levels from a one-level shift into the right "
        "name; relabelled, 6 of the 6 are right (of the subjects the relabelling leaves with "
        "every level right, the one where it fixes the most).")
    assert values["lv_best"] == "U-Net" and values["lv_best_after"] == "100.0"
    for key, value in values.items():
        text = value if isinstance(value, str) else value.text if isinstance(value, HTMLTable) \
            else ""
        assert "nan" not in text.lower().split() and "-0.0" not in text, key
    assert isinstance(values["lv_table"], HTMLTable)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_levels_of_the_context_group(tmp_path, capsys):
    """A side group (here the context study's, whose 2.5D and 3D models keep their predictions
    slice by slice like the 2D ones, and whose test set has no display image) is measured the
    same way and, without --out, written to <runs-dir>/../levels/<group>/, beside the main
    group's tables, never over them."""
    group = tmp_path / "runs" / "cpu-context"
    group.mkdir(parents=True)
    ref, shifted = spine(FIVE), spine(SHIFTED)
    np.savez_compressed(group / "test_set.npz", case_id=np.array(["Case1"] * 3),
                        slice_index=np.arange(3), mask=ref)
    _write_record(group, "unet", {"Case1": shifted})
    _write_record(group, "unet_25d3", {"Case1": ref})
    _write_record(group, "unet3d", {"Case1": shifted}, seed=1)
    assert main(["levels", "--runs-dir", str(tmp_path / "runs"), "--group", "cpu-context",
                 "--n-boot", "20"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[:3] == [
        "U-Net: all levels right 0.0 % as predicted, 100.0 % relabelled",
        "U-Net 2.5D (3 slices): all levels right 100.0 % as predicted, 100.0 % relabelled",
        "3D U-Net: all levels right 0.0 % as predicted, 100.0 % relabelled"]
    out = tmp_path / "levels" / "cpu-context"
    about = json.loads((out / "about.json").read_text())
    assert about["group"] == "cpu-context" and about["models"] == ["unet", "unet_25d3", "unet3d"]
    assert about["seeds_per_model"] == {"unet": [0], "unet_25d3": [0], "unet3d": [1]}
    assert not (tmp_path / "levels" / "summary.csv").exists()
    with np.load(out / "example.npz") as ex:  # no display image in a side group
        assert str(ex["model"]) == "unet" and ex["image"].size == 0 and int(ex["n_fixed"]) == 6


def test_levels_of_untrained_models(tmp_path):
    """A smoke study's models (one epoch) may predict background only, or noise: the tables
    are still written, every rate is an exact 0 with the relabelling refusing each subject,
    and the chapter's values have no placeholder text."""
    from spineseg_core.report.bundle import Bundle
    from spineseg_core.report.pages import build_page

    group = tmp_path / "runs" / "smoke"
    group.mkdir(parents=True)
    ref = spine(FIVE)
    np.savez_compressed(group / "test_set.npz", case_id=np.array(["Case1"] * 3),
                        slice_index=np.arange(3), mask=ref)
    noise = np.random.default_rng(0).integers(0, 20, ref.shape).astype(np.uint8)
    _write_record(group, "unet", {"Case1": np.zeros_like(ref)})
    _write_record(group, "miniseg", {"Case1": noise})
    results = tmp_path / "results" / "smoke"
    assert main(["levels", "--runs-dir", str(tmp_path / "runs"), "--group", "smoke",
                 "--out", str(results / "levels"), "--n-boot", "20"]) == 0
    status = pd.read_csv(results / "levels" / "status.csv").set_index(["model", "status"])["n"]
    assert status[("unet", "no_sacrum")] == 1 and status[("reference", "ok")] == 1
    assert status[("miniseg", "ok")] == 0
    summary = pd.read_csv(results / "levels" / "summary.csv")
    unet = summary[summary.model == "unet"].set_index(["metric", "stage"])["point"]
    assert unet[("identification", "predicted")] == 0 and unet[("dice", "predicted")] == 0
    assert unet[("all_levels_right", "difference")] == 0
    assert not (results / "levels" / "example.npz").exists()
    values = build_page("levels", Bundle(results))
    assert values["lv_verdict"] == "not resolved at this scale"
    assert not [k for k, v in values.items() if isinstance(v, str) and "n/a" in v]
    import matplotlib.pyplot as plt

    plt.close("all")


def test_default_output_folder():
    from spineseg_core.levels.study import default_out

    assert default_out("results/cpu/runs", "cpu").as_posix() == "results/cpu/levels"
    assert default_out("results/cpu/runs", "smoke").as_posix() == "results/cpu/levels"
    assert default_out("results/cpu/runs", "cpu-context").as_posix() == \
        "results/cpu/levels/cpu-context"
    assert default_out("results/cpu/runs", "cpu-hard-fov_cut").as_posix() == \
        "results/cpu/levels/cpu-hard-fov_cut"


def test_levels_command_errors_are_one_line(records, capsys):
    runs = records / "runs"
    assert main(["levels", "--runs-dir", str(records / "nope"), "--out", str(records / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope: missing: expected a folder of run records" in err[0]
    assert main(["levels", "--runs-dir", str(runs), "--group", "cpu-x",
                 "--out", str(records / "o")]) == 2
    assert "no group 'cpu-x' here (groups: cpu)" in capsys.readouterr().err
    assert main(["levels", "--runs-dir", str(runs), "--n-boot", "0",
                 "--out", str(records / "o")]) == 2
    assert "--n-boot: expected a positive number" in capsys.readouterr().err
    (runs / "cpu" / "unet" / "seed_0" / "fold_0" / "predictions.npz").unlink()
    assert main(["levels", "--runs-dir", str(runs), "--out", str(records / "o")]) == 2
    assert "the record keeps no test predictions" in capsys.readouterr().err
    assert not (records / "o" / "summary.csv").exists()


# --- spineseg predict --relabel -------------------------------------------------------------

def _label_file(path, study_volume: np.ndarray) -> nib.Nifti1Image:
    """``study_volume`` written in MRSpineSeg's axis order ("P", "I", "R"), not the study's."""
    from spineseg_core.data.orientation import MRSPINESEG_AXCODES, from_study, study_affine

    data, affine = from_study(study_volume, study_affine((4.4, 2.0, 2.0)), MRSPINESEG_AXCODES)
    img = nib.Nifti1Image(data.astype(np.uint8), affine)
    img.header["descrip"] = b"levels test"
    nib.save(img, path)
    return nib.load(path)


def _read_study(path) -> np.ndarray:
    from spineseg_core.data.orientation import to_study
    from spineseg_core.data.readers import read_array

    return to_study(*read_array(path))[0]


def test_predict_relabel_option(tmp_path, monkeypatch, capsys):
    import spineseg_core.training.predict as predict

    ref = spine(FIVE)
    written = {}

    def fake_predict_path(run, source, output, **kwargs):  # the model: one level up
        target = output / "mask_case1.nii.gz"
        written["img"] = _label_file(target, spine(SHIFTED))
        return [target]

    monkeypatch.setattr(predict, "predict_path", fake_predict_path)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "Case1.nii.gz").write_bytes(b"")
    out = tmp_path / "out"
    assert main(["predict", "--run", str(tmp_path), str(tmp_path / "in"), "-o", str(out),
                 "--relabel"]) == 0
    line = capsys.readouterr().out.strip()
    assert line == f"{out / 'mask_case1.nii.gz'}\trelabelled: 3 discs and 3 vertebrae counted " \
                   "from the sacrum, 0 specks left as predicted"
    result = nib.load(out / "mask_case1.nii.gz")
    assert np.array_equal(result.affine, written["img"].affine)
    assert result.header["descrip"] == written["img"].header["descrip"]
    assert np.array_equal(_read_study(out / "mask_case1.nii.gz"), ref)


def test_relabel_file_keeps_a_file_it_cannot_count(tmp_path):
    from spineseg_core.levels.files import relabel_file

    pred = spine(SHIFTED)
    pred[pred == SACRUM] = 0
    path = tmp_path / "p.nii.gz"
    _label_file(path, pred)
    before = path.read_bytes()
    assert relabel_file(path).status is Status.NO_SACRUM
    assert path.read_bytes() == before
    with pytest.raises(DataError, match="expected a .nii.gz, .nii or .mha label file"):
        relabel_file(tmp_path / "p.png")


def test_level_caveats_follow_the_bundle():
    from spineseg_core.report.pages.levels import level_caveats

    about = {"seeds_per_model": {"unet": [0], "miniseg": [0, 1]}}
    data, seeds, scale, specks = level_caveats(about, {"data_kind": "phantom",
                                                       "image_size": 64, "epochs": 1})
    assert data.startswith("The data are the study's default phantom")
    assert seeds == ("1 to 2 seeds per model: where a model has one, its intervals cover the "
                     "test subjects, not the randomness of training.")
    assert scale.startswith("Images at 64 px and 1 epoch: thoracic")
    assert "5%" in specks
    real = level_caveats({"seeds_per_model": {"unet": [0, 1, 2]}},
                         {"data_kind": "real", "data_dir": "/data/MRSpineSeg"})
    assert real[0].startswith("The data are real scans (/data/MRSpineSeg)")
    assert real[1] == "3 seeds per model." and real[2].startswith("Images at a reduced size and a few")
    assert level_caveats(None)[1] == "No run measured yet (`spineseg levels`)."


def test_runs_note_compares_the_measured_runs_with_the_bundle():
    from spineseg_core.report.pages.levels import runs_note

    about = {"seeds_per_model": {"unet": [0, 1], "miniseg": [0]}}
    same = pd.DataFrame({"model": ["unet", "unet", "miniseg"], "seed": [0, 1, 0]})
    assert runs_note(about, same) == "They are the 3 runs of the setup above."
    behind = same.iloc[[0, 2]]
    assert runs_note(about, behind) == (
        "They are the 3 runs whose records hold predictions now; the setup above describes the "
        "results bundle as last aggregated (2 runs), 1 of these runs is not in it yet.")
    assert runs_note(None, same) == "No run has been measured yet."
    ahead = pd.concat([same, pd.DataFrame({"model": ["pspnet"], "seed": [0]})])
    assert runs_note(about, ahead) == ("They are 3 of the 4 runs of the setup above (the others "
                                       "have no level tables yet).")
