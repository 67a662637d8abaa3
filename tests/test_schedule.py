"""The re-run's order and cost (study.schedule), on hand-made models and rates."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from spineseg_core.errors import ConfigError
from spineseg_core.study.progress import steps_done
from spineseg_core.study.runner import RunSpec
from spineseg_core.study.schedule import (
    Hold,
    ScheduledRun,
    alternate,
    fits_in_turn,
    held,
    interleave,
    mend_pin_path,
    mend_pins,
    plan_cost,
    plan_status,
    run_hours,
    seed_plan,
)

FAMILIES = {"u1": "U", "u2": "U", "u3": "U", "b1": "B", "b2": "B", "b3": "B"}
FAMILY = FAMILIES.__getitem__


def test_alternate_takes_the_families_in_turn():
    assert alternate(["u1", "u2", "u3", "b1", "b2"], FAMILY) == ["u1", "b1", "u2", "b2", "u3"]


def test_interleave_rotates_each_seeds_pass():
    runs = interleave(["u1", "u2", "u3", "b1", "b2", "b3"], [1, 2], FAMILY)
    assert runs == [("u1", 1), ("b1", 1), ("u2", 1), ("b2", 1), ("u3", 1), ("b3", 1),
                    ("u2", 2), ("b2", 2), ("u3", 2), ("b3", 2), ("u1", 2), ("b1", 2)]
    # every pair once; no two neighbours of one family (equal families); each model's seeds
    # at least the shift (2) apart
    assert sorted(runs) == sorted((m, s) for m in FAMILIES for s in (1, 2))
    assert all(FAMILY(a[0]) != FAMILY(b[0]) for a, b in zip(runs, runs[1:]))
    assert min(_seed_gaps(runs).values()) == 4


def _seed_gaps(runs):
    at = {run: i for i, run in enumerate(runs)}
    return {m: at[(m, 2)] - at[(m, 1)] for m, _ in runs}


def test_interleave_on_the_twelve():
    """The registry's 5 U-Net-family and 7 backbone models, seeds 1 and 2: a model's seeds are
    at least 6 runs apart, and no stretch of more than 3 runs is one family."""
    from spineseg_core.models import list_models, model_info

    def family(m):
        return str(model_info(m).family)

    runs = interleave(list_models(), [1, 2], family)
    assert len(runs) == 24 and len(set(runs)) == 24
    assert min(_seed_gaps(runs).values()) == 6
    longest = current = 1
    for a, b in zip(runs, runs[1:]):
        current = current + 1 if family(a[0]) == family(b[0]) else 1
        longest = max(longest, current)
    assert longest == 3


def test_interleave_refuses_repeats():
    with pytest.raises(ConfigError, match="must not repeat"):
        interleave(["u1", "u1"], [1], FAMILY)


def _run(part, model, seed, **kw):
    params = kw.pop("params", {})
    return ScheduledRun(part, RunSpec("cpu", model, seed, 0, **kw), 3600, params)


def test_plan_cost_sums_hours_per_part_and_scales_with_pixels():
    runs = [_run("main", "u1", 1), _run("main", "b1", 1),
            _run("res", "u1", 0, variant="res256", params={"image_size": "256"})]
    hours = plan_cost(runs, {"u1": 0.5, "b1": 2.0}, image_size=128)
    assert hours == {"main": pytest.approx(0.5 + 2.0), "res": pytest.approx(0.5 * 4)}
    with pytest.raises(ConfigError, match="b1"):
        plan_cost(runs, {"u1": 0.5}, image_size=128)
    # steps made before an interruption are not priced again: half of u1's 3600 main steps
    resumed = plan_cost(runs, {"u1": 0.5, "b1": 2.0}, 128, done_steps=[1800, 0, 0])
    assert resumed == {"main": pytest.approx(0.25 + 2.0), "res": pytest.approx(0.5 * 4)}
    with pytest.raises(ConfigError, match="2 done_steps for 3 runs"):
        plan_cost(runs, {"u1": 0.5, "b1": 2.0}, 128, done_steps=[0, 0])


def test_run_hours_counts_only_the_steps_left_and_an_unpriced_model_never_fits():
    run = _run("main", "u1", 1)  # 3600 steps at 0.5 s: 0.5 h
    assert run_hours(run, {"u1": 0.5}, 128) == pytest.approx(0.5)
    assert run_hours(run, {"u1": 0.5}, 128, done_steps=2700) == pytest.approx(0.125)
    assert run_hours(run, {"u1": 0.5}, 128, done_steps=9999) == 0.0
    big = _run("res", "u1", 0, variant="res256", params={"image_size": "256"})
    assert run_hours(big, {"u1": 0.5}, 128) == pytest.approx(2.0)
    assert run_hours(run, {"b1": 0.5}, 128) == float("inf")


def test_fits_in_turn_skips_a_run_too_long_for_what_is_left_and_tries_the_next():
    # 3 h: 1 taken (2 left), 2.5 skipped, 1.5 taken (0.5 left), 0.5 taken (exactly), 0.1 not
    assert fits_in_turn([1.0, 2.5, 1.5, 0.5, 0.1], 3.0) == [True, False, True, True, False]
    assert fits_in_turn([float("inf"), 0.2], 1.0) == [False, True]
    assert fits_in_turn([], 1.0) == []
    # no limit: every run, an unpriced one too (its infinite need once turned the rest to nan)
    assert fits_in_turn([float("inf"), 0.2], float("inf")) == [True, True]


def test_steps_done_needs_a_checkpoint_to_resume_from(tmp_path):
    assert steps_done(tmp_path) == 0  # nothing there
    (tmp_path / "history.csv").write_text("epoch,step,dice\n1,196,0.5\n2,392,0.6\n")
    assert steps_done(tmp_path) == 0  # no checkpoint: the run starts over
    (tmp_path / "checkpoint_last.pt").write_bytes(b"x")
    assert steps_done(tmp_path) == 392
    (tmp_path / "history.csv").write_text("")  # killed before its first epoch ended
    assert steps_done(tmp_path) == 0


def test_study_args_make_one_run():
    run = _run("loss", "unet", 2, loss="ce", params={"steps": "2940"})
    assert run.study_args() == ["--profile", "cpu", "--models", "unet", "--seeds", "2",
                                "--folds", "0", "--losses", "ce", "-p", "steps", "2940"]
    assert _run("x", "unet", 0, variant="res256").study_args()[-2:] == ["--variant", "res256"]


def test_recorded_reads_the_records_layout(tmp_path):
    run = _run("loss", "unet", 2, loss="ce")
    assert not run.recorded(tmp_path)
    folder = tmp_path / "cpu-loss-ce" / "unet" / "seed_2" / "fold_0"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text("{}")
    assert run.recorded(tmp_path)


def test_the_rerun_plan_in_priority_order():
    """The re-run after the seed: 24 main runs, 27 loss runs (3 models x 3 losses x 3 seeds,
    never the profile's own loss), 5 at 256 px, 10 context runs, 24 of seeds 3-4."""
    from collections import Counter

    from spineseg_core.study.schedule import RERUN_PARTS, rerun_plan

    runs = rerun_plan(2940)
    assert list(dict.fromkeys(r.part for r in runs)) == list(RERUN_PARTS)
    assert Counter(r.part for r in runs) == {"main": 24, "loss": 27, "res256": 5,
                                             "context": 10, "more": 24}
    assert {r.spec.loss for r in runs if r.part == "loss"} == {"dice", "ce", "weighted_ce"}
    assert all(r.params == {"image_size": "256"} for r in runs if r.part == "res256")
    assert all(r.params == {"steps": "5880"} for r in rerun_plan(5880, steps_given=True)
               if r.part == "main")


def _history(root, group, model, seed, steps, seconds, image_size=128):
    run = root / group / model / f"seed_{seed}" / "fold_0"
    run.mkdir(parents=True)
    (run / "params.json").write_text(json.dumps({"image_size": image_size}))
    (run / "metrics.json").write_text(json.dumps({"train_seconds": sum(seconds)}))
    pd.DataFrame({"epoch": range(1, len(steps) + 1), "step": steps,
                  "epoch_seconds": seconds}).to_csv(run / "history.csv", index=False)


def test_wall_rates_are_the_median_epoch_rate_of_each_run_then_of_each_model(tmp_path):
    from spineseg_core.study.machines import record_stamps
    from spineseg_core.study.schedule import wall_rates

    # 100 steps an epoch at 0.5 s/step, one epoch paused for 950 s: the median ignores it
    _history(tmp_path, "cpu", "unet", 0, [100, 200, 300], [50.0, 1000.0, 50.0])
    # the half run's last epoch has 40 steps at 1.0 s/step: rates 0.4, 0.6, 1.0 -> 0.6
    _history(tmp_path, "cpu-half", "unet", 0, [100, 200, 240], [40.0, 60.0, 40.0])
    # at 256 px, 2.0 s/step is 0.5 s/step at 128 px
    _history(tmp_path, "cpu-res256", "pspnet", 0, [50, 100], [100.0, 100.0], image_size=256)
    # a hard-case score carries its run's history: not a second run
    _history(tmp_path, "cpu-hard-fov_cut", "unet", 0, [100, 200], [90.0, 90.0])
    rates = wall_rates(record_stamps(tmp_path))
    assert rates == pytest.approx({"unet": (0.5 + 0.6) / 2, "pspnet": 0.5})
    assert wall_rates(record_stamps(tmp_path / "nothing")) == {}
    assert wall_rates(record_stamps(None)) == {}


def test_a_broken_history_names_its_file(tmp_path):
    from spineseg_core.errors import DataError
    from spineseg_core.study.machines import record_stamps
    from spineseg_core.study.schedule import wall_rates

    _history(tmp_path, "cpu", "unet", 0, [100], [50.0])
    (tmp_path / "cpu" / "unet" / "seed_0" / "fold_0" / "history.csv").write_text(
        "epoch,loss\n1,0.5\n")
    with pytest.raises(DataError, match="history.csv"):
        wall_rates(record_stamps(tmp_path))


def test_wall_priced_takes_measured_rates_and_scales_the_bench_for_the_rest():
    from spineseg_core.study.schedule import wall_priced

    bench = {"unet": 0.4, "pspnet": 0.5, "danet": 1.0, "miniseg": 0.2}
    # measured over bench: unet 1.5, pspnet 1.0, miniseg 2.0 -> median 1.5
    measured = {"unet": 0.6, "pspnet": 0.5, "miniseg": 0.4}
    rate, factor = wall_priced(bench, measured, ["danet", "miniseg", "unet_25d3", "unet3d"])
    assert factor == pytest.approx(1.5)
    assert rate == pytest.approx({"danet": 1.5, "miniseg": 0.4, "unet_25d3": 0.6})
    rate, factor = wall_priced(bench, {}, ["danet", "unet3d"])
    assert factor is None and rate == {"danet": 1.0}


def _older(rows):
    return pd.DataFrame(rows, columns=["model", "processor", "train_seconds",
                                       "epochs_completed", "steps_per_epoch"])


def test_a_model_without_a_rate_is_priced_by_its_ratio_in_older_records():
    from spineseg_core.study.schedule import plan_rates, relative_rates

    older = _older([
        # processor A: u3d takes 3x unet's and 1.5x dl's seconds per step
        ("unet", "A", 60.0, 6, 10), ("u3d", "A", 180.0, 6, 10), ("dl", "A", 120.0, 6, 10),
        # processor B: u3d 2x unet's (two unet runs, median 1.0 s/step)
        ("unet", "B", 50.0, 5, 10), ("unet", "B", 70.0, 7, 10), ("u3d", "B", 20.0, 1, 10),
        ("other", "A", 1.0, 1, 1)])
    rate = {"unet": 0.5, "dl": 2.0}
    # products: A via unet 3 x 0.5 = 1.5, A via dl 1.5 x 2.0 = 3.0, B via unet 2 x 0.5 = 1.0
    assert relative_rates(rate, older, ["unet", "u3d", "new"]) == pytest.approx({"u3d": 1.5})
    assert relative_rates(rate, None, ["u3d"]) == {}
    assert relative_rates(rate, older, ["unet"]) == {}
    rates, factor = plan_rates({"unet": 0.25}, {"unet": 0.5}, older, ["unet", "u3d"])
    # via unet alone (dl unpriced): A 1.5, B 1.0
    assert factor == pytest.approx(2.0) and rates == pytest.approx({"unet": 0.5, "u3d": 1.25})
    # u3d alone is priced the same: its references need not be in the plan
    alone, _ = plan_rates({"unet": 0.25}, {"unet": 0.5}, older, ["u3d"])
    assert alone == pytest.approx({"u3d": 1.25})


def test_a_hold_applies_to_its_pinned_commit_only():
    holds = (Hold("u3", "ab12cd34ef56", "fe98", "scored wrongly"),)
    assert held("ab12cd34ef56", holds) == {"u3": "scored wrongly"}  # a checkout's folder name
    assert held("ab12cd34ef56" + "0" * 28, holds) == {"u3": "scored wrongly"}  # a full commit
    assert held("ab12cd34ef57", holds) == {}  # a pin with the mend lifts it
    assert held("ab12", holds) == {}  # too short to name the commit
    assert held("main", holds) == {}  # no pin: HEAD's checkout
    assert held("ab12cd34ef56", holds, mended={"u3"}) == {}  # a pin of its own lifts it
    assert held("ab12cd34ef56", holds, mended={"u2"}) == {"u3": "scored wrongly"}


def test_a_model_s_own_pin_is_read_beside_the_study_s(tmp_path):
    holds = (Hold("u3", "ab12cd34ef56", "fe98", "scored wrongly"),
             Hold("u4", "ab12cd34ef56", "fe98", "scored wrongly"))
    commit, fingerprint = "c" * 40, "f" * 64
    assert mend_pin_path(tmp_path, "u3") == tmp_path / "CODE.u3"
    assert mend_pins(tmp_path, holds) == {}
    (tmp_path / "CODE.u3").write_text(f"{commit} {fingerprint}\n")
    (tmp_path / "CODE.unet").write_text(f"{commit} {fingerprint}\n")  # no hold: not read
    assert mend_pins(tmp_path, holds) == {"u3": (commit, fingerprint)}
    (tmp_path / "CODE.u4").write_text("not a pin\n")
    with pytest.raises(ConfigError, match="CODE.u4: expected '<40-hex commit> <64-hex"):
        mend_pins(tmp_path, holds)


def test_the_plan_counts_a_held_model_as_to_do_but_not_in_its_hours(tmp_path):
    runs = seed_plan(200, models=["unet", "unet3d"])
    rate = {"unet": 0.5, "unet3d": 2.0}
    free = plan_status(runs, tmp_path, rate).iloc[0]
    status = plan_status(runs, tmp_path, rate, holds={"unet3d": "why"}).iloc[0]
    assert (free["to_do"], free["held"]) == (4, 0)
    assert free["hours_left"] == pytest.approx((0.5 + 2.0) * 300 / 3600)
    assert (status["to_do"], status["held"]) == (4, 2)
    assert status["hours_left"] == pytest.approx(0.5 * 300 / 3600)
    unpriced = plan_status(runs, tmp_path, {"unet": 0.5}, holds={"unet3d": "why"}).iloc[0]
    assert unpriced["unpriced"] == ""  # a held model needs no price
