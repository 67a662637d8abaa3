"""The paper's claims as rules (spineseg_core.report.claims) and the resolution check
(spineseg_core.report.resolution), on hand-made result tables.

Most tables give every subject of an arm the same counts of one class, so the pooled Dice of a
replicate equals the arm's Dice whatever the weights: the interval of a difference is then the
difference itself, and every number below is hand-computed. Dice = 2 tp / (2 tp + fp + fn).
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from fake_runs import make_fake_study
from spineseg_core.errors import ConfigError
from spineseg_core.report.claims import (
    RULES,
    StudyResults,
    Verdict,
    background_runs,
    check_claim,
    check_claims,
    claims_markdown,
    comparisons_figure,
    comparisons_table,
    dice_loss_is_best,
    interval_verdict,
    load_results,
    paper_margin,
    study_caveats,
    verdict_table,
)
from spineseg_core.report.facts import seed_counts
from spineseg_core.report.resolution import alt_stride_text, final_map, resolution_check
from spineseg_core.study.aggregate import aggregate
from spineseg_core.study.loss_study import loss_name
from spineseg_core.study.stats import paired_arms

# (tp, fp, fn) of class 1 with Dice .9, .87, .85, .8, .7, .6, .5
D = {0.9: (9, 1, 1), 0.87: (87, 13, 13), 0.85: (85, 15, 15), 0.8: (8, 2, 2), 0.7: (7, 3, 3),
     0.6: (6, 4, 4), 0.5: (5, 5, 5)}
CASES = ("a", "b", "c")
FOUR = ("unet", "attention_unet", "deeplabv3plus", "pspnet")


def _rows(model, counts, case, seed=0, **extra):
    """One subject's 20 class rows; class 1 holds ``counts`` (tp, fp, fn), the rest absent."""
    tp, fp, fn = counts
    return [dict(model=model, seed=seed, fold=0, case_id=case, class_value=v,
                 tp=tp if v == 1 else 0, fp=fp if v == 1 else 0, fn=fn if v == 1 else 0,
                 tn=1000, **extra) for v in range(20)]


def _table(dice: dict[str, float], seeds=(0,), **extra) -> pd.DataFrame:
    """Every model at its Dice on every subject and seed."""
    return pd.DataFrame([r for m, d in dice.items() for s in seeds for c in CASES
                         for r in _rows(m, D[d], c, s, **extra)])


def _variants(low: dict[str, float], high: dict[str, float], os8=(0.55, 0.7)) -> pd.DataFrame:
    """variants.csv with the profile's runs at 128 px (seeds 0-2, only seed 0 is run at both
    sizes: seeds 1-2 get a Dice that would change every ordering), the 256 px runs and DANet
    at output stride 8."""
    stride = {"unet": 16, "attention_unet": 16, "deeplabv3plus": 16, "pspnet": 8, "danet": 32}
    family = {"unet": "U-Net family", "attention_unet": "U-Net family"}
    rows = []
    for group, size, dice in (("cpu", 128, low), ("cpu-res256", 256, high)):
        for m, d in dice.items():
            for seed in ((0, 1, 2) if group == "cpu" else (0,)):
                rows.append(dict(group=group, model=m, display_name=m,
                                 family=family.get(m, "backbone models"), seed=seed,
                                 image_size=size, output_stride=stride[m],
                                 dice=d if seed == 0 else 0.99, bg_recall=0.99,
                                 absent_fraction=0.0))
    for group, size, d in (("cpu-os8", 128, os8[0]), ("cpu-os8-res256", 256, os8[1])):
        rows.append(dict(group=group, model="danet", display_name="DANet",
                         family="backbone models", seed=0, image_size=size, output_stride=8,
                         dice=d, bg_recall=0.99, absent_fraction=0.0))
    return pd.DataFrame(rows)


LOW = {"unet": 0.6, "attention_unet": 0.7, "deeplabv3plus": 0.9, "pspnet": 0.8, "danet": 0.5}
STABLE = {m: d + 0.05 for m, d in LOW.items()}  # every model 5 points better at 256 px
FLIPPED = {"unet": 0.8, "attention_unet": 0.85, "deeplabv3plus": 0.7, "pspnet": 0.75,
           "danet": 0.6}


def _results(dice, models=FOUR, variants=STABLE, **kw) -> StudyResults:
    v = None if variants is None else _variants(LOW, variants)
    return StudyResults(_table(dice), "cpu", variants=v, models=models, n_boot=500, **kw)


# --- one interval, several comparisons ---------------------------------------------------

def test_interval_verdict_three_outcomes_and_ties():
    assert interval_verdict(0.01, 0.2) is Verdict.HOLDS
    assert interval_verdict(-0.2, -0.01) is Verdict.FAILS
    assert interval_verdict(-0.1, 0.1) is Verdict.UNRESOLVED
    assert interval_verdict(0.0, 0.1) is Verdict.UNRESOLVED  # touches 0
    assert interval_verdict(0.0, 0.0) is Verdict.UNRESOLVED  # an exact tie
    assert interval_verdict(0.05 + 4e-17, 0.06, bound=0.05) is Verdict.UNRESOLVED  # rounding
    assert interval_verdict(np.nan, np.nan) is Verdict.UNRESOLVED
    # "below the bound": gap .03 to .04 under a margin of .05 holds, .06 to .07 fails
    assert interval_verdict(0.03, 0.04, 0.05, above=False) is Verdict.HOLDS
    assert interval_verdict(0.06, 0.07, 0.05, above=False) is Verdict.FAILS
    assert interval_verdict(0.04, 0.06, 0.05, above=False) is Verdict.UNRESOLVED
    assert {str(v) for v in Verdict} == {"holds", "does not hold", "not resolved at this scale"}


def test_paired_arms_pair_subjects_and_check_arguments():
    """Two arms with identical, uneven subjects: each alone has a wide interval, but paired
    their difference is exactly 0 in every replicate."""
    from spineseg_core.study.stats import contrast_interval

    a = [r for c, k in (("a", D[0.9]), ("b", (2, 4, 4))) for r in _rows("m1", k, c)]
    b = [dict(r, model="m2") for r in a]
    arms = paired_arms(pd.DataFrame(a + b), n_boot=300)
    assert arms["m1"].point == arms["m2"].point == pytest.approx(22 / 32)  # tp 11, fp 5, fn 5
    reps = arms["m1"].subject_reps()
    assert reps.max() - reps.min() > 0.2
    assert (reps == arms["m2"].subject_reps()).all()
    assert contrast_interval(arms, {"m1": 1, "m2": -1}) == (0.0, 0.0, 0.0)
    with pytest.raises(ConfigError, match="n_boot"):
        paired_arms(pd.DataFrame(a), n_boot=0)
    with pytest.raises(ConfigError, match="metric"):
        paired_arms(pd.DataFrame(a), metric="hd95")


# --- claim 1: families ---------------------------------------------------------------------

def test_families_holds_by_hand():
    # backbone (.9 + .8) / 2 - U-Net family (.6 + .7) / 2 = .2, on every replicate
    c = RULES["families"](_results({"unet": 0.6, "attention_unet": 0.7, "deeplabv3plus": 0.9,
                                    "pspnet": 0.8}))
    assert c.verdict is Verdict.HOLDS
    assert (c.difference, c.ci_low, c.ci_high) == pytest.approx((0.2, 0.2, 0.2))
    assert (c.n_seeds, c.n_subjects) == (1, 3)


def test_families_fails_and_tie():
    fails = RULES["families"](_results({"unet": 0.9, "attention_unet": 0.8,
                                        "deeplabv3plus": 0.6, "pspnet": 0.7}))
    assert fails.verdict is Verdict.FAILS and fails.difference == pytest.approx(-0.2)
    tie = RULES["families"](_results({"unet": 0.8, "attention_unet": 0.7, "deeplabv3plus": 0.8,
                                      "pspnet": 0.7}))
    assert tie.verdict is Verdict.UNRESOLVED
    assert tie.difference == pytest.approx(0, abs=1e-12)


def test_families_resolution_flips_or_is_missing():
    dice = {"unet": 0.6, "attention_unet": 0.7, "deeplabv3plus": 0.9, "pspnet": 0.8}
    flipped = RULES["families"](_results(dice, variants=FLIPPED))
    assert flipped.verdict is Verdict.UNRESOLVED
    assert flipped.difference == pytest.approx(0.2)  # the evidence is kept
    assert 'alone says "holds"' in flipped.caveats[0] and "changing" in flipped.caveats[0]
    missing = RULES["families"](_results(dice, variants=None))
    assert missing.verdict is Verdict.UNRESOLVED
    assert "resolution check" in missing.caveats[0] and "variants.csv" in missing.caveats[0]


def test_families_needs_every_model():
    c = RULES["families"](_results({"unet": 0.6, "deeplabv3plus": 0.9, "pspnet": 0.8}))
    assert c.verdict is Verdict.UNRESOLVED
    assert "Attention U-Net" in c.caveats[0]


# --- claim 2: DeepLabv3+ best --------------------------------------------------------------

def test_deeplab_best_three_outcomes():
    holds = RULES["deeplab"](_results({"unet": 0.6, "attention_unet": 0.7, "deeplabv3plus": 0.9,
                                       "pspnet": 0.8}))
    assert holds.verdict is Verdict.HOLDS
    assert holds.difference == pytest.approx(0.1)  # minus the best other, PSPNet
    assert len(holds.comparisons) == 3
    assert sorted(round(k.difference, 6) for k in holds.comparisons) == [0.1, 0.2, 0.3]
    # second of four: one comparison below 0 is enough
    fails = RULES["deeplab"](_results({"unet": 0.6, "attention_unet": 0.7, "deeplabv3plus": 0.8,
                                       "pspnet": 0.9}), )
    assert fails.verdict is Verdict.FAILS and fails.difference == pytest.approx(-0.1)
    assert "ranks 2 of 4" in " ".join(fails.caveats)


def test_deeplab_ci_straddling_zero_by_hand():
    """DeepLabv3+ is good on subject a (8, 2, 2) and poor on b (2, 4, 4); PSPNet the mirror.
    Pooled, both score 20/32; with a's weight share w uniform, DeepLabv3+ scores
    f(w) = (4 + 12 w) / (12 + 8 w) and PSPNet f(1 - w), so the 95 % interval of the
    difference runs from f(.025) - f(.975) to f(.975) - f(.025)."""
    rows = ([r for c, k in (("a", (8, 2, 2)), ("b", (2, 4, 4))) for r in _rows("deeplabv3plus", k, c)]
            + [r for c, k in (("a", (2, 4, 4)), ("b", (8, 2, 2))) for r in _rows("pspnet", k, c)])
    res = StudyResults(pd.DataFrame(rows), "cpu", variants=_variants(LOW, STABLE),
                       models=("deeplabv3plus", "pspnet"), n_boot=4000)
    c = RULES["deeplab"](res)
    f = lambda w: (4 + 12 * w) / (12 + 8 * w)  # noqa: E731
    assert c.verdict is Verdict.UNRESOLVED and c.caveats == ("DeepLabv3+ ranks 1 of 2 by point "
                                                             "estimate.",)
    assert c.difference == pytest.approx(0, abs=1e-12)
    assert c.ci_low == pytest.approx(f(0.025) - f(0.975), abs=0.01)
    assert c.ci_high == pytest.approx(f(0.975) - f(0.025), abs=0.01)


def test_deeplab_missing_models_only_block_holds():
    models = (*FOUR, "danet")
    holds = RULES["deeplab"](_results({"unet": 0.6, "attention_unet": 0.7, "deeplabv3plus": 0.9,
                                       "pspnet": 0.8}, models=models))
    assert holds.verdict is Verdict.UNRESOLVED and "DANet" in holds.caveats[0]
    fails = RULES["deeplab"](_results({"unet": 0.6, "attention_unet": 0.7, "deeplabv3plus": 0.8,
                                       "pspnet": 0.9}, models=models))
    assert fails.verdict is Verdict.FAILS  # a missing model cannot undo a better one


def test_deeplab_rank_change_flips_fails():
    c = RULES["deeplab"](_results({"unet": 0.6, "attention_unet": 0.7, "deeplabv3plus": 0.8,
                                   "pspnet": 0.9}, variants=FLIPPED))
    assert c.verdict is Verdict.UNRESOLVED
    assert 'alone says "does not hold"' in c.caveats[0] and "ranks 1 of 5 at 128" in c.caveats[0]


def test_seed_level_interval_by_hand():
    """DeepLabv3+'s seed 0 scores .8 on every subject, seed 1 scores 1/3 (2, 4, 4); U-Net .5.
    The subjects add no spread, so the interval is the t interval over DeepLabv3+'s two seeds:
    the point +- t(0.975, 1 df) * sd / sqrt(2), sd = (.8 - 1/3) / sqrt(2)."""
    rows = ([r for c in CASES for r in _rows("deeplabv3plus", (8, 2, 2), c, 0)]
            + [r for c in CASES for r in _rows("deeplabv3plus", (2, 4, 4), c, 1)]
            + [r for s in (0, 1) for c in CASES for r in _rows("unet", D[0.5], c, s)])
    res = StudyResults(pd.DataFrame(rows), "cpu", variants=_variants(LOW, STABLE),
                       models=("unet", "deeplabv3plus"), n_boot=4000)
    c = RULES["deeplab"](res)
    half = 12.7062 * (0.8 - 1 / 3) / 2
    assert c.difference == pytest.approx((0.8 + 1 / 3) / 2 - 0.5)
    assert c.ci_low == pytest.approx(c.difference - half, abs=1e-3)
    assert c.ci_high == pytest.approx(c.difference + half, abs=1e-3)
    assert c.verdict is Verdict.UNRESOLVED and (c.n_seeds, c.n_subjects) == (2, 3)


# --- claim 3: MiniSeg close ----------------------------------------------------------------

def test_miniseg_margin_three_outcomes():
    rule = RULES["miniseg"]
    models = ("deeplabv3plus", "miniseg")
    for mini, want in ((0.87, Verdict.HOLDS), (0.8, Verdict.FAILS), (0.85, Verdict.UNRESOLVED)):
        res = StudyResults(_table({"deeplabv3plus": 0.9, "miniseg": mini}), "cpu", models=models,
                           n_boot=200, params={"miniseg": 82_000, "deeplabv3plus": 59_000_000})
        c = rule(res, margin=0.05)
        assert c.verdict is want, mini
        assert c.difference == pytest.approx(0.9 - mini) and c.bound == 0.05 and not c.above
        assert "MiniSeg 82,000" in " ".join(c.caveats)


def test_miniseg_default_margin_is_the_papers_gap():
    assert paper_margin() == pytest.approx((87.55 - 85.69) / 100)
    c = RULES["miniseg"](StudyResults(_table({"deeplabv3plus": 0.9, "miniseg": 0.87}), "cpu",
                                      models=("deeplabv3plus", "miniseg"), n_boot=100))
    assert c.bound == pytest.approx(0.0186) and c.verdict is Verdict.FAILS  # 3 > 1.86 points


def test_miniseg_best_and_missing():
    # MiniSeg itself best: the gap to the best other model is negative, within any margin
    c = RULES["miniseg"](StudyResults(_table({"pspnet": 0.8, "miniseg": 0.9, "unet": 0.6}),
                                      "cpu", models=("pspnet", "miniseg", "unet"), n_boot=100))
    assert c.verdict is Verdict.HOLDS and c.difference == pytest.approx(-0.1)
    # a model not run could be better: "holds" becomes not resolved
    c = RULES["miniseg"](StudyResults(_table({"pspnet": 0.8, "miniseg": 0.9}), "cpu",
                                      models=("pspnet", "miniseg", "danet"), n_boot=100))
    assert c.verdict is Verdict.UNRESOLVED and "DANet" in c.caveats[0]
    c = RULES["miniseg"](StudyResults(_table({"pspnet": 0.8}), "cpu", n_boot=100))
    assert c.verdict is Verdict.UNRESOLVED and c.caveats[0].startswith("Missing: runs of MiniSeg")


# --- claim 4: Dice loss --------------------------------------------------------------------

def _loss_results(dice: dict[tuple[str, str], float]) -> StudyResults:
    """Main runs (loss dice_ce) and groups cpu-loss-<loss> from {(model, loss): Dice}."""
    main = _table({m: d for (m, l), d in dice.items() if l == "dice_ce"}, loss="dice_ce")
    side = pd.concat([_table({m: d}, loss=l, group=f"cpu-loss-{l}")
                      for (m, l), d in dice.items() if l != "dice_ce"], ignore_index=True)
    return StudyResults(main, "cpu", side=side, n_boot=300)


def _all_losses(unet=(0.9, 0.8, 0.7, 0.6), miniseg=(0.9, 0.8, 0.7, 0.6),
                deeplabv3plus=(0.9, 0.8, 0.7, 0.6)):
    losses = ("dice", "ce", "weighted_ce", "dice_ce")
    return {**{("unet", l): d for l, d in zip(losses, unet)},
            **{("miniseg", l): d for l, d in zip(losses, miniseg)},
            **{("deeplabv3plus", l): d for l, d in zip(losses, deeplabv3plus)}}


def test_dice_loss_holds_and_fails_by_hand():
    holds = dice_loss_is_best(_loss_results(_all_losses()))
    assert holds.verdict is Verdict.HOLDS and len(holds.comparisons) == 9
    assert (holds.difference, holds.ci_low, holds.ci_high) == pytest.approx((0.1, 0.1, 0.1))
    # MiniSeg trains better with cross-entropy (.9 against .8): one comparison fails
    fails = dice_loss_is_best(_loss_results(_all_losses(miniseg=(0.8, 0.9, 0.7, 0.6))))
    assert fails.verdict is Verdict.FAILS
    assert fails.difference == pytest.approx(-0.1)
    labels = {k.label: k.difference for k in fails.comparisons}
    assert labels["MiniSeg: Dice loss - cross-entropy"] == pytest.approx(-0.1)
    assert labels["U-Net: Dice loss - Dice + cross-entropy"] == pytest.approx(0.3)


def test_dice_loss_tie_is_not_resolved():
    """A one-one split by points (U-Net prefers Dice loss, MiniSeg cross-entropy, each by an
    interval straddling 0) is no verdict either way."""
    rows = []
    for model, good in (("unet", "dice"), ("miniseg", "ce")):
        for loss in ("dice", "ce"):
            first = (8, 2, 2) if loss == good else (2, 4, 4)
            second = (2, 4, 4) if loss == good else (8, 2, 2)
            for c, k in (("a", first), ("b", second)):
                grp = "cpu" if loss == "dice_ce" else f"cpu-loss-{loss}"
                rows += _rows(model, k, c, loss=loss, group=grp)
    c = dice_loss_is_best(StudyResults(None, "cpu", side=pd.DataFrame(rows), n_boot=300))
    assert c.verdict is Verdict.UNRESOLVED
    assert c.difference == pytest.approx(0, abs=1e-12) and c.ci_low < 0 < c.ci_high


def test_a_dice_loss_that_paints_the_background_wins_no_verdict():
    """The Dice loss's arm scores higher Dice (.9 against .8...), but one of its runs labels
    background as levels (background recall 92 %, 4.6 % of pixels absent structures): the
    verdict is not resolved, and names that model and loss first. Every arm's runs are checked
    (``losses.csv``); with every run sane the verdict holds."""
    dice = _all_losses()
    main = _table({m: d for (m, l), d in dice.items() if l == "dice_ce"}, seeds=(0, 1),
                  loss="dice_ce")
    side = pd.concat([_table({m: d}, seeds=(0, 1), loss=l, group=f"cpu-loss-{l}")
                      for (m, l), d in dice.items() if l != "dice_ce"], ignore_index=True)
    names = {"unet": "U-Net", "miniseg": "MiniSeg", "deeplabv3plus": "DeepLabv3+"}
    losses = pd.DataFrame([{"model": m, "display_name": names[m], "loss": l, "seed": s,
                            "bg_recall": 0.99, "absent_fraction": 0.0}
                           for m in names for l in ("dice", "ce", "weighted_ce", "dice_ce")
                           for s in (0, 1)])
    sane = StudyResults(main, "cpu", side=side, n_boot=300, losses=losses)
    assert check_claim(sane, "loss").verdict is Verdict.HOLDS
    painted = (losses["model"] == "unet") & (losses["loss"] == "dice") & (losses["seed"] == 1)
    res = replace(sane, losses=losses.assign(
        bg_recall=losses["bg_recall"].where(~painted, 0.92),
        absent_fraction=losses["absent_fraction"].where(~painted, 0.046)))
    c = check_claim(res, "loss")
    assert c.verdict is Verdict.UNRESOLVED and c.difference == pytest.approx(0.1)
    assert c.caveats[0] == (
        'Not resolved although the interval alone says "holds": fails the background check, '
        "so it has not learned the task within the budget: U-Net, Dice loss in 1 of 2 run(s), "
        "background recall down to 92.0 %, absent structures up to 4.60 % of pixels.")
    # several failing arms make one reason, each named
    painted |= (losses["model"] == "miniseg") & (losses["loss"] == "ce")
    c = check_claim(replace(sane, losses=losses.assign(
        bg_recall=losses["bg_recall"].where(~painted, 0.5))), "loss")
    assert c.caveats[0] == (
        'Not resolved although the interval alone says "holds": runs fail the background '
        "check, so they have not learned the task within the budget: U-Net, Dice loss in 1 of "
        "2 run(s), background recall down to 50.0 %, absent structures up to 0.00 % of pixels; "
        "MiniSeg, cross-entropy in 2 of 2 run(s), background recall down to 50.0 %, absent "
        "structures up to 0.00 % of pixels.")
    assert not c.caveats[1].startswith("Not resolved")
    # the main group's runs.csv speaks for the other claims; each loss is named apart
    assert background_runs(res, "families") is res.runs
    assert set(background_runs(res, "loss")["display_name"]) == {
        f"{n}, {loss_name(l)}" for n in names.values()
        for l in ("dice", "ce", "weighted_ce", "dice_ce")}


def test_dice_loss_missing_runs():
    partial = _all_losses()
    del partial[("miniseg", "weighted_ce")]
    c = dice_loss_is_best(_loss_results(partial))
    assert c.verdict is Verdict.UNRESOLVED and "MiniSeg with weighted_ce" in c.caveats[0]
    none = dice_loss_is_best(StudyResults(_table({"unet": 0.8}, loss="dice_ce"), "cpu"))
    assert none.verdict is Verdict.UNRESOLVED and "loss-comparison runs" in none.caveats[0]
    assert np.isnan(none.difference) and none.n_seeds == 0


# --- the resolution check ------------------------------------------------------------------

def test_resolution_check_by_hand():
    r = resolution_check(_variants(LOW, FLIPPED), "cpu")
    assert r.sizes == (128, 256) and r.complete and len(r.table) == 5
    # backbone (.9 + .8 + .5) / 3 - U-Net (.6 + .7) / 2; at 256 (.7 + .75 + .6) / 3 - .825
    assert r.family_gap[128] == pytest.approx(2.2 / 3 - 0.65)
    assert r.family_gap[256] == pytest.approx(2.05 / 3 - 0.825)
    assert r.family_order_changes is True
    assert r.deeplab_rank == {128: 1, 256: 4} and r.deeplab_rank_changes is True
    assert r.stride8_gain == pytest.approx({128: 0.05, 256: 0.1})
    # DANet's stride-8 runs (.55, .7) in place of its stride-32 ones (.5, .6):
    # (.9 + .8 + .55) / 3 - .65 = +.10 at 128 px, (.7 + .75 + .7) / 3 - .825 at 256 px
    assert r.main_stride == 32 and r.alt_stride == 8
    assert r.family_gap_alt_stride == pytest.approx({128: 0.10, 256: 2.15 / 3 - 0.825})
    text = " ".join(r.summary())
    assert "+8.33 points at 128 px" in text and "ranks 1 of 5 at 128 px and 4 of 5" in text
    assert ("stride 8 in place of its main stride (32), the same gap is +10.00 points at 128 "
            "px, -10.83 points at 256 px; the ordering changes") in text
    stable = resolution_check(_variants(LOW, STABLE), "cpu")
    assert stable.family_order_changes is False and stable.deeplab_rank_changes is False
    assert stable.family_gap[256] == pytest.approx(stable.family_gap[128])
    assert stable.family_gap_alt_stride == pytest.approx({128: 0.10, 256: 2.5 / 3 - 0.70})
    assert ("the ordering is the same between 128 and 256 px."
            in stable.alt_stride_family_finding())


def test_resolution_check_missing_inputs():
    assert not resolution_check(None, "cpu").complete
    one_size = _variants(LOW, STABLE).query("image_size == 128")
    r = resolution_check(one_size, "cpu")
    assert r.family_order_changes is None and "one image size" in r.missing[0]
    assert "has not run" in r.summary()[0]
    no_danet = _variants(LOW, STABLE).query("model != 'danet'")
    r = resolution_check(no_danet, "cpu")
    assert not r.complete and "danet has no run in cpu" in r.missing
    assert r.family_order_changes is False  # still measured on the four others
    # DANet at stride 8 missing at 256 px: the stride that was not run is the one named
    no_os8 = _variants(LOW, STABLE).query("group != 'cpu-os8-res256'")
    r = resolution_check(no_os8, "cpu")
    assert r.missing == ("DANet at output stride 8 at 256 px",)
    assert r.stride8_gain == pytest.approx({128: 0.05})
    assert r.family_gap_alt_stride == {} and r.alt_stride_family_finding() == ""
    # DANet's main runs at stride 8 (the same runs with their strides swapped): the gap still
    # comes from the main group's runs and the other stride's go beside it, while the gain,
    # always stride 8 minus stride 32, changes sign
    swapped = _variants(LOW, STABLE)
    danet = swapped.model == "danet"
    swapped.loc[danet, "output_stride"] = swapped.loc[danet, "output_stride"].map({8: 32, 32: 8})
    main8 = resolution_check(swapped, "cpu")
    ref = resolution_check(_variants(LOW, STABLE), "cpu")
    assert main8.main_stride == 8 and main8.alt_stride == 32
    assert main8.family_gap == pytest.approx(ref.family_gap)
    assert main8.family_gap_alt_stride == pytest.approx(ref.family_gap_alt_stride)
    assert main8.stride8_gain == pytest.approx({s: -g for s, g in ref.stride8_gain.items()})
    assert "stride 32 in place of its main stride (8)" in main8.alt_stride_family_finding()
    # both strides run at 256 px, but on different seeds: no paired difference to take
    other_seed = _variants(LOW, STABLE)
    other_seed.loc[other_seed.group == "cpu-os8-res256", "seed"] = 1
    r = resolution_check(other_seed, "cpu")
    assert r.missing == ("DANet at output strides 8 and 32 at 256 px with a seed in common",)


def test_resolution_check_under_the_stride_rule():
    """A bundle made under the stride rule: DeepLabv3+ and DANet at stride 8 on the 128 px grid
    and 16 on the 256 px one, no DANet stride study. Each counts as the study builds it at each
    size; without the rule's strides the check finds them missing, as before."""
    ruled = _variants(LOW, FLIPPED).query("group in ['cpu', 'cpu-res256']").copy()
    for model in ("deeplabv3plus", "danet"):
        rows = ruled["model"] == model
        ruled.loc[rows, "output_stride"] = ruled.loc[rows, "image_size"].map({128: 8, 256: 16})
    rule = {"deeplabv3plus": {128: 8, 256: 16}, "danet": {128: 8, 256: 16}}
    r = resolution_check(ruled, "cpu", stride_at=lambda m, size: rule.get(m, {}).get(size))
    assert r.complete and len(r.table) == 5 and r.missing == ()
    assert r.family_gap[256] == pytest.approx(2.05 / 3 - 0.825)  # as in the by-hand case
    assert r.deeplab_rank == {128: 1, 256: 4}
    assert r.stride8_gain == {} and r.family_gap_alt_stride == {}
    without = resolution_check(ruled, "cpu")
    assert "deeplabv3plus was not run at both 128 and 256 px with one seed" in without.missing
    # the rule itself on the cpu profile's grid: both models move from stride 8 to 16
    from spineseg_core.report.resolution import study_strides

    at = study_strides("cpu")
    assert [at("deeplabv3plus", 128), at("deeplabv3plus", 256), at("unet", 256)] == [8, 16, None]
    assert study_strides("no-such-profile") is None


# --- from a bundle -------------------------------------------------------------------------

def test_aggregate_writes_variants_and_claims_read_the_bundle(tmp_path):
    runs = make_fake_study(
        tmp_path / "runs", profile="cpu", models=("unet", "deeplabv3plus", "danet"), seeds=(0,),
        losses=("ce",), variants={
            "res256": {"models": ("unet", "deeplabv3plus", "danet"), "size": 128},
            "os8": {"models": ("danet",), "model_kwargs": {"output_stride": 8}}})
    out = tmp_path / "results/cpu"
    aggregate("cpu", runs, out, n_boot=20)
    v = pd.read_csv(out / "variants.csv")
    assert list(v.columns) == ["group", "model", "display_name", "family", "seed", "image_size",
                               "output_stride", "dice", "bg_recall", "absent_fraction",
                               "val_dice"]
    stride = {(g, m): s for g, m, s in zip(v.group, v.model, v.output_stride)}
    assert stride == {("cpu", "unet"): 16, ("cpu", "deeplabv3plus"): 16, ("cpu", "danet"): 32,
                      ("cpu-res256", "unet"): 16, ("cpu-res256", "deeplabv3plus"): 16,
                      ("cpu-res256", "danet"): 32, ("cpu-os8", "danet"): 8}
    assert set(v.loc[v.group == "cpu-res256", "image_size"]) == {128}
    assert set(v.loc[v.group == "cpu", "image_size"]) == {64}
    metrics = json.loads((runs / "cpu-os8/danet/seed_0/fold_0/metrics.json").read_text())
    assert v.loc[v.group == "cpu-os8", "dice"].iloc[0] == pytest.approx(metrics["dice"])
    assert v.loc[v.group == "cpu-os8", "val_dice"].iloc[0] == pytest.approx(metrics["val_dice"])
    side = pd.read_csv(out / "groups_per_case.csv.gz")
    assert set(side.group) == {"cpu-loss-ce", "cpu-res256", "cpu-os8"}
    assert set(side.loc[side.group == "cpu-loss-ce", "loss"]) == {"ce"}

    res = load_results(out, n_boot=50)
    # the loss comparison's runs carry their background check (fake runs: 99.5 % recall)
    assert list(res.losses.query("group == 'cpu-loss-ce'").bg_recall) == [0.995, 0.995]
    assert set(background_runs(res, "loss").display_name) == {
        "U-Net, Dice loss", "U-Net, cross-entropy", "DeepLabv3+, Dice loss",
        "DeepLabv3+, cross-entropy"}
    r = res.resolution()
    assert r.sizes == (64, 128) and not r.complete  # two of the five models missing
    claims = check_claims(res)
    assert [c.key for c in claims] == list(RULES)
    assert all(c.verdict is Verdict.UNRESOLVED for c in claims)  # 3 of 12 models, 1 seed
    # the fake main runs trained with the Dice loss: U-Net's comparison is dice (main) - ce
    assert [k.label for k in claims[3].comparisons] == ["U-Net: Dice loss - cross-entropy",
                                                        "DeepLabv3+: Dice loss - cross-entropy"]
    # better by its interval (fake qualities .95 and .85), but MiniSeg was never trained
    assert 'alone says "holds"' in claims[3].caveats[0]
    assert "MiniSeg with dice" in claims[3].caveats[0]


def test_missing_bundle_gives_four_unresolved_claims(tmp_path):
    claims = check_claims(load_results(tmp_path / "nowhere"))
    assert [c.verdict for c in claims] == [Verdict.UNRESOLVED] * 4
    assert all(c.caveats[0].startswith("Missing:") for c in claims)
    table = verdict_table(claims)
    assert list(table["verdict"]) == ["not resolved at this scale"] * 4
    text = table.to_string()
    assert "nan" not in text.lower() and "n/a" not in text and "\u2014" in text
    assert comparisons_table(claims).empty


def test_verdict_table_and_caveats():
    c = RULES["families"](_results({"unet": 0.6, "attention_unet": 0.7, "deeplabv3plus": 0.9,
                                    "pspnet": 0.8}))
    row = verdict_table([c]).iloc[0]
    assert row["verdict"] == "holds" and row["difference (Dice points)"] == "+20.00"
    assert row["95 % CI (points)"] == "+20.00 to +20.00" and row["seeds"] == "1"
    caveats = study_caveats({"data_kind": "phantom", "epochs": 6, "batch_size": 4,
                             "image_size": 128, "seeds": [0], "n_test_cases": 40})
    assert "phantom" in caveats[0] and "6 epochs" in caveats[1] and "120" in caveats[1]
    assert "128 px instead of 880 px" in caveats[2]
    assert caveats[3].startswith("1 seed per model: the intervals cover the test subjects only")
    assert caveats[3].endswith("; 40 test subjects.")
    assert study_caveats({"seeds": [0, 1, 2]})[3] == "3 seeds per model."
    # each model's own count, from its runs: the models short of the most are named
    runs = pd.DataFrame({"display_name": ["U-Net"] * 3 + ["PSPNet"] * 2 + ["DANet", "MiniSeg"],
                         "seed": [0, 1, 2, 0, 1, 0, 0]})
    assert seed_counts(runs) == {"U-Net": 3, "PSPNet": 2, "DANet": 1, "MiniSeg": 1}
    assert study_caveats({"seeds": [0, 1, 2], "n_test_cases": 40}, seed_counts(runs))[3] == (
        "1 to 3 seeds per model (1 for DANet, MiniSeg; 2 for PSPNet): where a model has one "
        "seed, its interval covers the test subjects only; 40 test subjects.")
    assert study_caveats({"seeds": [0, 1]}, {"U-Net": 2, "PSPNet": 1})[3] == (
        "1 to 2 seeds per model (1 for PSPNet): where a model has one seed, its interval "
        "covers the test subjects only.")
    assert study_caveats({"seeds": [0, 1, 2]}, {"U-Net": 1})[3].startswith(
        "1 seed per model: the intervals cover the test subjects only")
    assert study_caveats(None)[1:4] == [
        "A miniature of the paper's protocol: a few epochs against the 120 of our reading of the "
        "paper, so large models may be far from converged.",
        "Images at a reduced size instead of 880 px: thoracic discs are a few pixels high and a "
        "stride-32 encoder sees a map a few pixels across; the resolution check tests whether "
        "the orderings survive 256 px.", "No runs yet."]
    assert "pretrained" in caveats[4]


def test_figure_and_markdown():
    import matplotlib

    matplotlib.use("Agg")
    dice = {"unet": 0.6, "attention_unet": 0.7, "deeplabv3plus": 0.9, "pspnet": 0.8}
    claims = [RULES["families"](_results(dice)), RULES["deeplab"](_results(dice))]
    fig = comparisons_figure(claims)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]  # top to bottom
    assert labels == ["(1) backbone models - U-Net family", "(2) DeepLabv3+ - Attention U-Net",
                      "(2) DeepLabv3+ - PSPNet", "(2) DeepLabv3+ - U-Net"]
    assert [t.get_text() for t in fig.legends[0].get_texts()][:3] == [
        "holds", "does not hold", "not resolved at this scale"]
    empty = comparisons_figure(check_claims(StudyResults(None)))
    assert "No comparison" in empty.axes[0].texts[0].get_text()
    text = claims_markdown(claims)
    assert text.startswith("**(1) Models built on a backbone beat the U-Net family: holds.**")
    assert "difference +20.00 points, 95 % interval +20.00 to +20.00, 1 seed" in text


# --- convergence -----------------------------------------------------------------------------

def _convergence(steep: dict[str, bool]) -> pd.DataFrame:
    return pd.DataFrame([{"model": m, "display_name": m.upper(), "past_steep": past}
                         for m, past in steep.items()])


def test_a_verdict_on_a_model_still_learning_is_not_resolved():
    from spineseg_core.report.claims import steep_models

    table = _table({"deeplabv3plus": 0.9, "miniseg": 0.8}, seeds=(0, 1))
    models = ("deeplabv3plus", "miniseg")
    settled = StudyResults(table, "cpu", models=models, n_boot=200,
                           convergence=_convergence({"deeplabv3plus": True, "miniseg": True}))
    learning = StudyResults(table, "cpu", models=models, n_boot=200,
                            convergence=_convergence({"deeplabv3plus": True, "miniseg": False}))
    assert steep_models(settled.convergence, models) == []
    assert steep_models(learning.convergence, models) == ["MINISEG"]
    assert steep_models(None, models) == []  # no convergence table: none
    by_key = {c.key: c for c in check_claims(settled)}
    assert by_key["miniseg"].verdict is Verdict.FAILS  # 10 points against the paper's 1.86
    by_key = {c.key: c for c in check_claims(learning)}
    c = by_key["miniseg"]
    assert c.verdict is Verdict.UNRESOLVED
    assert "steep part" in c.caveats[0] and "MINISEG" in c.caveats[0]
    assert c.difference == pytest.approx(0.1)  # the evidence stays beside the verdict


def test_a_verdict_on_a_model_that_fails_the_background_check_is_not_resolved():
    table = _table({"deeplabv3plus": 0.9, "miniseg": 0.8}, seeds=(0, 1))
    models = ("deeplabv3plus", "miniseg")
    runs = pd.DataFrame({"model": list(models), "display_name": ["DeepLabv3+", "MiniSeg"],
                         "bg_recall": [0.99, 0.97], "absent_fraction": [0.0, 0.0]})
    learned = StudyResults(table, "cpu", models=models, n_boot=200,
                           runs=runs.assign(bg_recall=0.99))
    assert {c.key: c for c in check_claims(learned)}["miniseg"].verdict is Verdict.FAILS
    c = {c.key: c for c in check_claims(StudyResults(table, "cpu", models=models, n_boot=200,
                                                     runs=runs))}["miniseg"]
    assert c.verdict is Verdict.UNRESOLVED and c.difference == pytest.approx(0.1)
    assert c.caveats[0] == (
        'Not resolved although the interval alone says "does not hold": fails the background '
        "check, so it has not learned the task within the budget: MiniSeg in 1 of 1 run(s), "
        "background recall down to 97.0 %, absent structures up to 0.00 % of pixels.")


def test_a_verdict_on_one_seed_is_not_resolved():
    models = ("deeplabv3plus", "miniseg")
    one = StudyResults(_table({"deeplabv3plus": 0.9, "miniseg": 0.8}), "cpu", models=models,
                       n_boot=200)
    c = {c.key: c for c in check_claims(one)}["miniseg"]
    assert c.verdict is Verdict.UNRESOLVED and c.n_seeds == 1
    assert c.caveats[0] == ('Not resolved although the interval alone says "does not hold": '
                            "one seed only, so its interval holds none of the spread between "
                            "seeds.")


def test_the_other_stride_beside_table_1_by_hand():
    v = _variants(LOW, STABLE)
    v["val_dice"] = np.where(v["output_stride"] == 8, 0.6, 0.1)
    v.loc[(v.model == "danet") & (v.group == "cpu"), "val_dice"] = [0.04, 0.06, 0.05]
    resolution = pd.DataFrame({"section": ["map, training band"] * 2, "stride": [8, 32],
                               "rows": [16, 4], "cols": [8, 2]})
    text = alt_stride_text(v, "cpu", resolution)
    # main: DANet at stride 32, seeds 0-2 at 128 px with Dice .5, .99, .99 (mean .8267,
    # sd .2829); the other stride at 128 px: the one stride-8 run (seed 0, Dice .55)
    assert text.startswith("DANet's Table 1 runs are at output stride 32 (a last map of 4x2), "
                           "best validation Dice 0.05 (0.04–0.06), test Dice 82.67 ± 28.29 %")
    assert ("Its runs at output stride 8 (a last map of 16x8), best validation Dice 0.60 "
            "(0.60–0.60), test Dice 55.00 (n = 1) % (seeds 0), background recall down to "
            "99.0 %, group cpu-os8.") in text
    assert final_map(resolution, 16) is None and final_map(None, 8) is None
    # without validation Dice or map sizes the sentence leaves them out; no other stride: empty
    assert "validation" not in alt_stride_text(v.drop(columns="val_dice"), "cpu")
    assert alt_stride_text(v[v.output_stride != 8], "cpu") == ""
    assert alt_stride_text(None, "cpu") == ""


def test_budget_exceptions_are_listed_deviations_with_the_papers_side():
    from spineseg_core.report.deviations import exception_deviations

    # DANet's stride is the one stride rule's now (Table D's stride row), not an exception
    assert not any(d.aspect.startswith("DANet") for d in exception_deviations())
    mini = next(d for d in exception_deviations()
                if d.aspect == "MiniSeg on the smoke, cpu and paper profiles")
    assert mini.paper == "the same training for every model" and mini.ours == "amp=False"
    volume = next(d for d in exception_deviations() if d.aspect.startswith("3D U-Net"))
    assert volume.aspect == "3D U-Net on the cpu and paper profiles"


def test_what_would_decide_an_unresolved_claim_by_hand():
    """The interval's half-width, and its projection to 5 seeds as a t interval over seed
    means: 3 -> 5 seeds scales it by t(4) / t(2) * sqrt(3 / 5) = 2.776 / 4.303 * 0.775."""
    from spineseg_core.report.claims import Claim, detectable_effect, what_would_decide

    c = Claim("x", "s", "r", Verdict.UNRESOLVED, difference=0.01, ci_low=-0.02, ci_high=0.04,
              n_seeds=3)
    assert detectable_effect(c) == pytest.approx(0.03)
    assert detectable_effect(c, 5) == pytest.approx(0.03 * 2.7764 / 4.3027 * (3 / 5) ** 0.5,
                                                    rel=1e-3)
    text = what_would_decide(c)
    assert text.startswith("What would decide it: its headline interval is ±3.00 points, so "
                           "runs like these would resolve a true difference 3.00 points above 0 "
                           "about half the time and one 6.00 points above it nearly always; "
                           "with 5 seeds instead of 3 the interval would be ±1.50 points at "
                           "best")
    one = Claim("x", "s", "r", Verdict.UNRESOLVED, difference=0.01, ci_low=-0.02, ci_high=0.04,
                n_seeds=1)
    assert np.isnan(detectable_effect(one, 5))
    assert "a second seed is needed" in what_would_decide(one)
    # kept unresolved by a caveat although its interval clears the bound: not a matter of seeds
    demoted = Claim("x", "s", "r", Verdict.UNRESOLVED, 0.05, 0.02, 0.08, 3)
    assert what_would_decide(demoted) == ("What would decide it: not more seeds, since its "
                                          "interval alone is decided; what the caveats above "
                                          "name.")
    assert what_would_decide(Claim("x", "s", "r", Verdict.UNRESOLVED, 0.05, n_seeds=3)) is None
    # a firm verdict, or nothing measured: nothing to add
    assert what_would_decide(Claim("x", "s", "r", Verdict.HOLDS, 0.05, 0.01, 0.09, 3)) is None
    assert what_would_decide(Claim("x", "s", "r", Verdict.UNRESOLVED)) is None
