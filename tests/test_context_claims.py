"""The context study's rule (spineseg_core.report.context) on hand-made per-subject tables.

As in tests/test_claims.py, every subject of a model gets the same counts of one class, so a
replicate's pooled Dice equals the model's Dice whatever the bootstrap weights: the interval of
a difference is the difference itself, and every number is hand-computed.
Dice = 2 tp / (2 tp + fp + fn).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spineseg_core.report.claims import Verdict
from spineseg_core.report.context import BASELINES, context_claims, context_summary

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
    claim = context_claims(_per_case({"unet": 0.7, "unet3d": 0.9}, seeds=(0,)), n_boot=20,
                           models=("unet3d",))[0]
    assert claim.verdict is Verdict.HOLDS and claim.n_seeds == 1
    assert claim.caveats == ("1 seed of the 3 planned.",)


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
