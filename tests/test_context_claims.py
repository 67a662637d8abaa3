"""The context study's rules (spineseg_core.report.context) on hand-made per-subject tables:
Dice, and the share of subjects with every level right.

As in tests/test_claims.py, every subject of a model gets the same counts of one class, so a
replicate's pooled Dice equals the model's Dice whatever the bootstrap weights: the interval of
a difference is the difference itself, and every number is hand-computed.
Dice = 2 tp / (2 tp + fp + fn).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from spineseg_core.report.bundle import Bundle
from spineseg_core.report.claims import Verdict, study_caveats
from spineseg_core.report.context import (
    BASELINES,
    context_caveats,
    context_claims,
    context_level_claims,
    context_levels,
    context_summary,
    depth_sentence,
    levels_command,
    status_sentence,
    study_group,
)

# (tp, fp, fn) of class 1 with Dice .9, .8, .7
D = {0.9: (9, 1, 1), 0.8: (8, 2, 2), 0.7: (7, 3, 3)}
CASES = ("a", "b", "c", "d")


def _per_case(dice: dict[str, float], seeds=(0, 1, 2)) -> pd.DataFrame:
    rows = []
    for model, d in dice.items():
        tp, fp, fn = D[d]
        for seed in seeds:
            for case in CASES:
                rows += [dict(group="cpu-context", loss="dice_ce", model=model, seed=seed,
                              fold=0, case_id=case, class_value=v, tp=tp if v == 1 else 0,
                              fp=fp if v == 1 else 0, fn=fn if v == 1 else 0, tn=1000)
                         for v in range(20)]
    return pd.DataFrame(rows)


def _by_key(claims):
    return {c.key: c for c in claims}


def test_three_outcomes_by_hand():
    table = _per_case({"unet": 0.8, "unet_25d3": 0.9, "unet3d": 0.7, "unet_25d5": 0.8})
    claims = _by_key(context_claims(table, n_boot=50, models=("unet_25d3", "unet3d",
                                                               "unet_25d5")))
    better, worse, tie = claims["context-unet_25d3"], claims["context-unet3d"], \
        claims["context-unet_25d5"]
    assert better.verdict is Verdict.HOLDS
    assert better.difference == pytest.approx(0.1)
    assert (better.ci_low, better.ci_high) == (pytest.approx(0.1), pytest.approx(0.1))
    assert (better.n_seeds, better.n_subjects) == (3, 4) and better.caveats == ()
    assert better.statement == "U-Net 2.5D (3 slices) beats U-Net (2D)"
    assert worse.verdict is Verdict.FAILS and worse.difference == pytest.approx(-0.1)
    assert tie.verdict is Verdict.UNRESOLVED and tie.difference == pytest.approx(0.0)


def test_a_model_or_baseline_not_run_is_not_resolved():
    table = _per_case({"unet": 0.8, "unet_25d3": 0.9})
    claims = _by_key(context_claims(table, n_boot=20))
    assert claims["context-unet_25d3"].verdict is Verdict.HOLDS
    missing = claims["context-deeplabv3plus_25d3"]
    assert missing.verdict is Verdict.UNRESOLVED and np.isnan(missing.difference)
    assert missing.caveats == ("Missing: runs of DeepLabv3+ 2.5D (3 slices) in the context study.",
                               "Missing: runs of DeepLabv3+ in the context study.")
    assert [c.key for c in context_claims(None)] == [f"context-{m}" for m in BASELINES]
    assert all(c.verdict is Verdict.UNRESOLVED for c in context_claims(None))


def test_fewer_seeds_than_planned_is_said():
    claim = context_claims(_per_case({"unet": 0.7, "unet3d": 0.9}, seeds=(0, 1)), n_boot=20,
                           models=("unet3d",))[0]
    assert claim.verdict is Verdict.HOLDS and claim.n_seeds == 2
    assert claim.caveats == ("2 of the 3 seeds the study runs.",)


def test_one_seed_is_not_resolved_whatever_the_interval():
    """One seed: the interval is over test subjects only, with no spread between seeds."""
    claim = context_claims(_per_case({"unet": 0.7, "unet3d": 0.9}, seeds=(0,)), n_boot=20,
                           models=("unet3d",))[0]
    assert claim.verdict is Verdict.UNRESOLVED and claim.n_seeds == 1
    assert claim.difference == pytest.approx(0.2)
    assert claim.caveats == ('Not resolved although the interval alone says "holds": one seed '
                             "only, so its interval holds none of the spread between seeds.",
                             "1 of the 3 seeds the study runs.")


def test_a_steep_learning_curve_leaves_the_verdict_unresolved():
    """The 3D U-Net worse than U-Net beyond the interval, but its curve still steep at the end
    of the budget: "not resolved", the verdict the interval alone gives named first. A model
    past its steep part keeps its verdict; a missing convergence table changes nothing."""
    table = _per_case({"unet": 0.8, "unet3d": 0.7, "unet_25d3": 0.9})
    convergence = pd.DataFrame({"model": ["unet", "unet3d", "unet_25d3"],
                                "display_name": ["U-Net", "3D U-Net", "U-Net 2.5D (3 slices)"],
                                "past_steep": [True, False, True]})
    claims = _by_key(context_claims(table, n_boot=20, models=("unet3d", "unet_25d3"),
                                    convergence=convergence))
    steep = claims["context-unet3d"]
    assert steep.verdict is Verdict.UNRESOLVED and steep.difference == pytest.approx(-0.1)
    assert steep.caveats[0] == (
        'Not resolved although the interval alone says "does not hold": still on the steep '
        "part of its learning curve at the end of the budget: 3D U-Net (scores table, last "
        "column).")
    assert claims["context-unet_25d3"].verdict is Verdict.HOLDS
    assert context_claims(table, n_boot=20, models=("unet3d",))[0].verdict is Verdict.FAILS
    baseline_steep = convergence.assign(past_steep=[False, True, True])
    assert context_claims(table, n_boot=20, models=("unet_25d3",),
                          convergence=baseline_steep)[0].verdict is Verdict.UNRESOLVED


def test_a_model_failing_the_background_check_leaves_the_verdict_unresolved():
    """The 3D U-Net paints 6 % of the background in one of its two runs (the check asks for at
    least 98 % background recall): a verdict on it is not resolved, and says which run."""
    table = _per_case({"unet": 0.8, "unet3d": 0.7})
    runs = pd.DataFrame({"model": ["unet", "unet", "unet3d", "unet3d"],
                         "display_name": ["U-Net", "U-Net", "3D U-Net", "3D U-Net"],
                         "bg_recall": [0.99, 0.995, 0.94, 0.985],
                         "absent_fraction": [0.0, 0.0, 0.0, 0.0]})
    claim = context_claims(table, n_boot=20, models=("unet3d",), runs=runs)[0]
    assert claim.verdict is Verdict.UNRESOLVED and claim.difference == pytest.approx(-0.1)
    assert claim.caveats[0] == (
        'Not resolved although the interval alone says "does not hold": fails the background '
        "check, so it has not learned the task within the budget: 3D U-Net in 1 of 2 run(s), "
        "background recall down to 94.0 %, absent structures up to 0.00 % of pixels.")
    sane = runs.assign(bg_recall=0.99)
    assert context_claims(table, n_boot=20, models=("unet3d",),
                          runs=sane)[0].verdict is Verdict.FAILS
    painted = sane.assign(absent_fraction=[0.0, 0.02, 0.0, 0.0])  # the baseline this time
    assert context_claims(table, n_boot=20, models=("unet3d",),
                          runs=painted)[0].verdict is Verdict.UNRESOLVED


def test_summary_means_and_spread_over_seeds():
    table = pd.DataFrame([
        dict(model="unet", display_name="U-Net", input_kind="slice", context=1, seed=s,
             dice=d, dice3d_mean=d - 0.1, bg_recall=0.99, absent_fraction=0.0,
             train_seconds=10.0) for s, d in ((0, 0.5), (1, 0.7))] + [
        dict(model="unet3d", display_name="3D U-Net", input_kind="volume", context=1, seed=0,
             dice=0.6, dice3d_mean=0.5, bg_recall=0.98, absent_fraction=0.001,
             train_seconds=30.0)])
    out = context_summary(table).set_index("model")
    assert out.loc["unet", "n_seeds"] == 2 and out.loc["unet", "dice_mean"] == pytest.approx(0.6)
    assert out.loc["unet", "dice_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert np.isnan(out.loc["unet3d", "dice_std"])  # one seed: no spread, not 0
    assert list(out.index) == ["unet", "unet3d"] and out.loc["unet3d", "input_kind"] == "volume"
    assert context_summary(None) is None


# --- the level rule: does context improve the share of subjects with every level right? ------

def _subjects(right: dict[str, tuple[int, ...]], seeds=(0, 1, 2),
              relabelled: dict[str, tuple[int, ...]] | None = None) -> pd.DataFrame:
    """A ``subjects.csv`` by hand: per model, ``all_right`` of each subject of :data:`CASES`
    (the same for every seed), as predicted, and ``relabelled`` rows if given (the rule must
    not read them)."""
    rows = []
    for stage, table in (("predicted", right), ("relabelled", relabelled or {})):
        for model, flags in table.items():
            for seed in seeds:
                for case, ok in zip(CASES, flags, strict=True):
                    rows.append(dict(model=model, seed=seed, case_id=case, stage=stage,
                                     n_levels=6, n_right=6 if ok else 5, all_right=ok,
                                     dice3d=0.8))
    return pd.DataFrame(rows)


ALL, NONE = (1, 1, 1, 1), (0, 0, 0, 0)


def test_level_rule_three_outcomes_by_hand():
    """Three of four subjects gained (or lost) against the baseline hold (or fail); equal
    shares are a tie. The baseline's relabelled rows (all right) are not read: the rule
    compares predictions as given."""
    table = _subjects({"unet": (1, 0, 0, 0), "unet_25d3": ALL, "unet_25d5": (1, 0, 0, 0)},
                      relabelled={"unet": ALL})
    claims = _by_key(context_level_claims(table, n_boot=200, models=("unet_25d3", "unet_25d5")))
    better, tie = claims["context-levels-unet_25d3"], claims["context-levels-unet_25d5"]
    assert better.verdict is Verdict.HOLDS
    assert better.statement == ("U-Net 2.5D (3 slices) names every level right more often "
                                "than U-Net (2D)")
    # 4 of 4 right minus 1 of 4: +0.75 as the point; a replicate leaves out all three
    # subjects U-Net misses with chance (1/4)^4, under the 2.5 % tail, so the interval is
    # within (0, 1]
    assert better.difference == pytest.approx(0.75)
    assert 0 < better.ci_low <= better.ci_high <= 1
    assert (better.n_seeds, better.n_subjects, better.caveats) == (3, 4, ())
    assert tie.verdict is Verdict.UNRESOLVED and tie.difference == pytest.approx(0.0)
    worse = context_level_claims(_subjects({"unet": (1, 1, 1, 0), "unet3d": NONE}),
                                 n_boot=200, models=("unet3d",))[0]
    assert worse.verdict is Verdict.FAILS and worse.difference == pytest.approx(-0.75)
    assert -1 <= worse.ci_low <= worse.ci_high < 0


def test_level_rule_one_changed_subject_is_not_resolved():
    """2.5D right on one more subject of four: the point is +0.25, but about a third of the
    replicates leave that subject out, so the interval reaches 0."""
    table = _subjects({"unet": (1, 1, 1, 0), "unet_25d3": ALL})
    claim = context_level_claims(table, n_boot=200, models=("unet_25d3",))[0]
    assert claim.difference == pytest.approx(0.25) and claim.ci_low == 0.0
    assert claim.verdict is Verdict.UNRESOLVED


def test_level_rule_exact_interval_when_every_subject_agrees():
    table = _subjects({"deeplabv3plus": NONE, "deeplabv3plus_25d5": ALL})
    claim = context_level_claims(table, n_boot=30, models=("deeplabv3plus_25d5",))[0]
    assert claim.verdict is Verdict.HOLDS
    assert (claim.difference, claim.ci_low, claim.ci_high) == (pytest.approx(1.0),) * 3
    assert claim.comparisons[0].label == "DeepLabv3+ 2.5D (5 slices) - DeepLabv3+"


def test_level_rule_interval_including_zero_is_not_resolved():
    """A gain on two subjects and a loss on a third: the point is +0.25 (2 of 4 subjects right
    against 1 of 4), but a replicate that weighs the third subject most is below 0, so the
    interval includes 0."""
    table = _subjects({"unet": (0, 0, 1, 0), "unet3d": (1, 1, 0, 0)})
    claim = context_level_claims(table, n_boot=400, models=("unet3d",))[0]
    assert claim.difference == pytest.approx(0.25)
    assert claim.ci_low < 0 < claim.ci_high
    assert claim.verdict is Verdict.UNRESOLVED


def test_level_rule_missing_level_tables_are_named():
    table = _subjects({"unet_25d3": ALL})
    claim = context_level_claims(table, n_boot=20, models=("unet_25d3",))[0]
    assert claim.verdict is Verdict.UNRESOLVED and np.isnan(claim.difference)
    assert claim.caveats == ("Missing: level tables of U-Net in the context study.",)
    none = context_level_claims(None)
    assert [c.key for c in none] == [f"context-levels-{m}" for m in BASELINES]
    assert all(c.verdict is Verdict.UNRESOLVED and not c.comparisons for c in none)
    one = context_level_claims(_subjects({"unet": NONE, "unet3d": ALL}, seeds=(0,)), n_boot=20,
                               models=("unet3d",))[0]
    assert one.verdict is Verdict.UNRESOLVED and one.caveats[-1] == "1 of the 3 seeds the study runs."
    assert "one seed only" in one.caveats[0] and one.difference == pytest.approx(1.0)


def test_context_levels_sets_each_model_beside_its_baseline():
    def rows(model, metric, point):
        return [dict(model=model, display_name=model, metric=metric, stage=stage,
                     point=point + d, ci_low=point + d - 0.1, ci_high=point + d + 0.1,
                     n_seeds=1, n_subjects=4)
                for stage, d in (("predicted", 0.0), ("relabelled", 0.05),
                                 ("difference", 0.05))]
    summary = pd.DataFrame(
        rows("unet", "identification", 0.6) + rows("unet", "all_levels_right", 0.2)
        + rows("unet", "dice", 0.7) + rows("unet3d", "identification", 0.8)
        + rows("unet3d", "all_levels_right", 0.5))
    out = context_levels(summary).set_index("model")
    # U-Net's variants appear (measured or not); DeepLabv3+'s, with no baseline, do not
    assert list(out.index) == ["unet_25d3", "unet_25d5", "unet3d"]
    r = out.loc["unet3d"]
    assert (r.baseline, r.baseline_name) == ("unet", "U-Net")
    assert r.all_levels_right_model_point == pytest.approx(0.5)  # as predicted, not relabelled
    assert r.all_levels_right_baseline_ci_high == pytest.approx(0.3)
    assert r.identification_baseline_point == pytest.approx(0.6)
    assert np.isnan(out.loc["unet_25d3", "identification_model_point"])
    assert context_levels(None) is None
    assert context_levels(summary[summary.model == "deeplabv3plus"]) is None


def test_status_sentence_says_what_is_there_and_what_makes_the_rest():
    empty = status_sentence("cpu", None, None)
    assert "no run of the context study yet (group `cpu-context`)" in empty
    assert "`scripts/context_study.sh`" in empty
    assert "`spineseg levels --group cpu-context`" in empty
    study = {"n_runs": 4, "models": ["unet", "unet3d"], "source_fingerprint": "ab" * 32}
    unmeasured = status_sentence("smoke", study, None)
    assert unmeasured == ("The group (`smoke-context`) holds 4 runs of 2 models, all of code "
                          "version `abababababab`. Their levels have not been measured yet "
                          "(`spineseg levels --group smoke-context`), so the level tables below "
                          "are empty.")
    assert status_sentence("cpu", study, {"records": 4, "n_subjects": 10}).endswith(
        "The level tables measure 4 of them on 10 test subjects.")


def test_depth_sentence_gives_the_scores_both_ways_or_says_they_are_unmeasured():
    rescore = pd.DataFrame({
        "model": "unet3d", "steps": 2940, "set": ["validation"] * 2 + ["test"] * 2,
        "how": ["own depth", "training depth"] * 2, "min_depth": [0, 15, 0, 15],
        "dice": [0.6087, 0.7069, 0.5450, 0.6266], "bg_recall": [0.96, 0.993, 0.9693, 0.9934]})
    text = depth_sentence(rescore)
    assert ("the same weights (the budget seed's run of 2940 optimiser steps, training depth "
            "15 slices) give a validation Dice of 60.9 % at its own depth against 70.7 % padded "
            "as in training; a test Dice of 54.5 % at its own depth against 62.7 % padded as in "
            "training; and a test background recall of 96.9 % at its own depth against 99.3 % "
            "padded as in training.") in text
    assert text.endswith("Data: `unet3d_depth.csv` of the budget seed "
                         "(`scripts/rescore_3d_depth.py`).")
    assert "made again from a code version" not in text
    pinned = depth_sentence(rescore, "775a7795f394" + "0" * 28)
    assert ("the mend; its runs at the plateau budget are made again from a code version with "
            "the mend, commit 775a779 (`CODE.unet3d` of the budget seed); short runs from both "
            "versions train it to the same weights, bit for bit, and only its scores differ "
            "(`mend_check.csv`). Data:") in pinned
    unmeasured = depth_sentence(None)
    assert "how much it cost them has not been measured" in unmeasured
    assert "%" not in unmeasured and unmeasured.startswith("**How the 3D U-Net was scored.**")


def test_status_and_caveats_of_a_study_trained_in_the_main_group(tmp_path):
    """The plateau re-run's layout: the bundle names the main group as the study's source,
    and the sentence, the levels command and the caveat follow it."""
    study = {"group": "cpu", "n_runs": 6, "models": ["unet", "unet_25d3", "unet3d"],
             "source_fingerprint": "cd" * 32}
    assert study_group("cpu", study) == "cpu" and study_group("cpu", None) == "cpu-context"
    assert levels_command("cpu", study) == "spineseg levels --group cpu"
    assert status_sentence("cpu", study, None) == (
        "The study takes 6 runs of 3 models from the main group (`cpu`): the context models, "
        "trained there beside the paper's models, and their 2D baselines, all of code version "
        "`cdcdcdcdcdcd`. Their levels have not been measured yet (`spineseg levels --group "
        "cpu`), so the level tables below are empty.")
    folder = tmp_path / "cpu"
    folder.mkdir()
    (folder / "bundle.json").write_text(json.dumps({"source_fingerprint": "cd" * 32,
                                                    "studies": {"context": study}}))
    (folder / "dataset.json").write_text(json.dumps({"seeds": [0], "n_test_cases": 8}))
    two = {**study, "source_fingerprint": None,
           "source_fingerprints": {"cd" * 32: 4, "ef" * 32: 2}}
    assert status_sentence("cpu", two, None).startswith(
        "The study takes 6 runs of 3 models from the main group (`cpu`): the context models, "
        "trained there beside the paper's models, and their 2D baselines, of more than one code "
        "version: cdcdcdcdcdcd (4 runs), efefefefefef (2 runs). ")
    (folder / "bundle.json").write_text(json.dumps({"studies": {"context": two}}))
    assert ("at the main runs' budget and by more than one version of the code (cdcdcdcdcdcd "
            "(4 runs), efefefefefef (2 runs); the reproducibility chapter says which model's "
            "runs come from which); each is compared") in context_caveats(Bundle(folder))[-1]
    (folder / "bundle.json").write_text(json.dumps({"source_fingerprint": "cd" * 32,
                                                    "studies": {"context": study}}))
    assert context_caveats(Bundle(folder))[-1].startswith(
        "The context models were trained in the main group, at the main runs' budget and by "
        "the same version of the code (fingerprint `cdcdcdcdcdcd`); each is compared with the "
        "main group's own runs of its 2D baseline")


def test_context_caveats_name_the_group_and_its_code_version(tmp_path):
    def caveats(name: str, bundle: dict) -> list[str]:
        folder = tmp_path / name / "cpu"
        folder.mkdir(parents=True)
        (folder / "bundle.json").write_text(json.dumps({"source_fingerprint": main, **bundle}))
        (folder / "dataset.json").write_text(json.dumps({"seeds": [0], "n_test_cases": 8}))
        return context_caveats(Bundle(folder))

    main = "cd" * 32
    none = caveats("none", {})
    assert none[-1].startswith("The context study (group `cpu-context`) has no run in this "
                               "bundle")
    same = caveats("same", {"studies": {"context": {"n_runs": 3, "source_fingerprint": main}}})
    assert "the same version of the code as the main runs (fingerprint `cdcdcdcdcdcd`)" in same[-1]
    other = caveats("other", {"studies": {"context": {"n_runs": 3,
                                                      "source_fingerprint": "ab" * 32}}})
    assert "another version of the code than the main runs (fingerprint `abababababab`)" \
        in other[-1]
    # the study's caveats first, from dataset.json, unchanged
    assert none[:-1] == same[:-1] == study_caveats({"seeds": [0], "n_test_cases": 8})
    assert any(c.startswith("1 seed per model") for c in none)


def test_context_caveats_count_the_context_studys_own_seeds(tmp_path):
    folder = tmp_path / "cpu"
    folder.mkdir()
    (folder / "bundle.json").write_text(json.dumps({"studies": {"context": {"n_runs": 3}}}))
    (folder / "dataset.json").write_text(json.dumps({"seeds": [0, 1], "n_test_cases": 8}))
    pd.DataFrame({"model": ["unet", "unet", "unet3d"], "seed": [0, 1, 0]}).to_csv(
        folder / "context.csv", index=False)
    caveats = context_caveats(Bundle(folder))
    assert caveats[-1].endswith(" The study runs 3 seeds of each of its 2 models; 2 have "
                                "fewer, and a verdict on one seed is not resolved.")
    # the count is the context study's (unet 2 seeds, unet3d 1), not dataset.json's [0, 1]
    assert caveats[3] == ("1 to 2 seeds per model (1 for unet3d): where a model has one seed, "
                          "its interval covers the test subjects only; 8 test subjects.")
