"""The convergence measure, the families' permutation test and the rank-vs-budget table."""

import math

import pandas as pd
import pytest

from spineseg_core.errors import ConfigError
from spineseg_core.study.convergence import (
    convergence_steps,
    family_permutation_test,
    rank_vs_budget,
    simulate_tie_verdicts,
    steps_to_reach,
)


def test_steps_to_reach_a_share_of_the_best_by_hand():
    h = pd.DataFrame({"step": [100, 200, 300, 400, 500],
                      "dice": [0.2, 0.5, 0.77, 0.80, 0.79]})
    assert steps_to_reach(h) == 300  # 0.95 * 0.80 = 0.76 first reached at step 300
    assert steps_to_reach(h, 1.0) == 400
    assert steps_to_reach(h, 0.5) == 200
    # unvalidated rows are skipped; an epoch-budget history (no step column) gives NaN
    h2 = pd.concat([h, pd.DataFrame({"step": [250], "dice": [math.nan]})])
    assert steps_to_reach(h2) == 300
    assert math.isnan(steps_to_reach(h.drop(columns="step")))
    with pytest.raises(ConfigError, match="fraction"):
        steps_to_reach(h, 1.5)


def test_convergence_steps_mean_over_seeds():
    rows = []
    for seed, reach in ((0, 200), (1, 400)):
        for step in (100, 200, 300, 400):
            rows.append(dict(model="unet", seed=seed, step=step,
                             dice=0.8 if step >= reach else 0.1))
    table = convergence_steps(pd.DataFrame(rows))
    assert table.to_dict("records") == [{"model": "unet", "steps": 300.0, "seeds": 2}]


FAMILY = {**{f"u{i}": "U" for i in range(5)}, **{f"b{i}": "B" for i in range(7)}}


def test_family_test_by_hand():
    # backbone models all converge sooner than every U-Net-family model: no split of the
    # C(12, 7) = 792 goes further, and the medians leave 10 of them as far (ties count against)
    steps = {**{f"u{i}": 1000 + 100 * i for i in range(5)}, **{f"b{i}": 100 + 10 * i
                                                               for i in range(7)}}
    t = family_permutation_test(steps, FAMILY, "B", "U")
    assert t.permutations == 792 and (t.n_backbone, t.n_unet) == (7, 5)
    assert t.difference == pytest.approx(1200 - 130)
    assert t.p_backbone_faster == pytest.approx(10 / 792)
    assert t.verdict == "holds"
    # the reverse ordering: does not hold
    rev = {m: 2000 - s for m, s in steps.items()}
    assert family_permutation_test(rev, FAMILY, "B", "U").verdict == "does not hold"
    # interleaved families: not resolved
    mixed = {m: (i * 97) % 13 for i, m in enumerate(FAMILY)}
    assert family_permutation_test(mixed, FAMILY, "B", "U").verdict == \
        "not resolved at this scale"
    with pytest.raises(ConfigError, match="two models of each family"):
        family_permutation_test({"u0": 1.0, "b0": 2.0, "b1": 3.0}, FAMILY, "B", "U")


def test_family_test_is_calibrated_on_ties():
    table = simulate_tie_verdicts(trials=400, seed=1)
    assert (table["firm_share"] <= 0.06).all(), table


def test_rank_vs_budget_by_hand():
    at_b = pd.Series({"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6})
    half = pd.Series({"a": 0.85, "b": 0.80, "c": 0.60, "d": 0.65})  # c and d swap
    short = pd.Series({"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4})     # reversed
    table = rank_vs_budget({"588": short, "B/2": half, "B": at_b}, "B",
                           steps={"588": 588, "B/2": 1470, "B": 2940})
    r = table.set_index("budget")
    assert r.loc["B", "spearman"] == pytest.approx(1.0)
    assert r.loc["B/2", "spearman"] == pytest.approx(0.8)  # 1 - 6*2/(4*15)
    assert r.loc["588", "spearman"] == pytest.approx(-1.0)
    assert r.loc["B/2", "kendall"] == pytest.approx(4 / 6)
    assert r["steps"].tolist() == [588, 1470, 2940] and (r["models"] == 4).all()


def _histories(reach: dict[str, int], seeds=(0,)) -> pd.DataFrame:
    rows = [dict(model=m, seed=s, step=step, dice=0.8 if step >= r else 0.2)
            for m, r in reach.items() for s in seeds for step in range(100, 3001, 100)]
    return pd.DataFrame(rows)


def _plateau(n_yes: int, n: int = 12) -> pd.DataFrame:
    return pd.DataFrame({"label": ["plateaued"] * n_yes + ["not plateaued"] * (n - n_yes)})


def test_convergence_claim_three_outcomes_and_its_conditions():
    from spineseg_core.study.convergence import convergence_claim

    fast_bb = {**{f"u{i}": 2000 + 100 * i for i in range(5)},
               **{f"b{i}": 300 + 100 * i for i in range(7)}}
    claim = convergence_claim(_histories(fast_bb, (0, 1)), _plateau(12), FAMILY, "B", "U")
    assert claim.verdict == "holds" and not claim.caveats
    assert claim.steps.set_index("model").loc["b2", "steps"] == 500
    slow_bb = {m: 3000 - s for m, s in fast_bb.items()}
    assert convergence_claim(_histories(slow_bb, (0, 1)), _plateau(12), FAMILY, "B",
                             "U").verdict == "does not hold"
    # too few models plateaued: the test's answer is kept as a caveat, the verdict is not given
    few = convergence_claim(_histories(fast_bb, (0, 1)), _plateau(9), FAMILY, "B", "U")
    assert few.verdict == "not resolved at this scale"
    assert few.caveats[0] == 'the test alone says "holds"' and "only 9 of 12" in few.caveats[1]
    # one seed: said; a model without a curve: said and unresolved
    one = convergence_claim(_histories(fast_bb), _plateau(12), FAMILY, "B", "U")
    assert one.verdict == "holds" and "one seed" in one.caveats[-1]
    part = convergence_claim(_histories({m: s for m, s in fast_bb.items() if m != "u4"}),
                             _plateau(12), FAMILY, "B", "U")
    assert part.verdict == "not resolved at this scale"
    assert part.caveats[1] == "not yet run at the budget: u4"
    # named in words where names are given; a run without steps is told apart from no run
    stepless = _histories(fast_bb).assign(step=lambda h: h["step"].where(h["model"] != "b6"))
    named = convergence_claim(stepless, _plateau(12), FAMILY, "B", "U",
                              names={"b6": "Model B6"})
    assert "no curve under a step budget for Model B6" in named.caveats
