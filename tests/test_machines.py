"""Where the runs stand (issue 25): runs per machine type (``study.machines``: the machine a
record names, hard-case scores and unfinished runs left out, the table's counts and hours by
hand, the page's table), and the plan per part (``study.schedule.plan_status``) with the first
page's sentence on it."""

from __future__ import annotations

import html as html_text
import json

import pandas as pd
import pytest

from spineseg_core.envinfo import machine
from spineseg_core.errors import DataError
from spineseg_core.study.machines import UNRECORDED, machine_table, record_stamps

AMX = {"cpu": "Intel(R) Xeon(R) Processor", "cpu_features": "2 cores, AVX512, AMX", "gpu": None}
OLD = {"cpu": "Intel(R) Xeon(R) Processor", "cpu_features": "2 cores, AVX512, no AMX",
       "gpu": None}
EPYC = {"cpu": "AMD EPYC", "gpu": None}  # an older stamp, without features


def test_the_machine_adds_the_features_that_set_the_speed():
    assert machine(AMX) == "Intel(R) Xeon(R) Processor (2 cores, AVX512, AMX)"
    assert machine(OLD) != machine(AMX)
    assert machine(EPYC) == "AMD EPYC"
    assert machine({**AMX, "gpu": "NVIDIA H100 80GB HBM3"}) == "NVIDIA H100 80GB HBM3"
    assert machine({}) is None


def _record(root, group, model, seed, env, seconds, finished=True):
    run = root / group / model / f"seed_{seed}" / "fold_0"
    run.mkdir(parents=True)
    (run / "params.json").write_text(json.dumps({"env": env} if env is not None else {}))
    if finished:
        (run / "metrics.json").write_text(json.dumps({"train_seconds": seconds}))


@pytest.fixture
def records(tmp_path):
    root = tmp_path / "runs"
    _record(root, "cpu", "unet", 0, AMX, 3600)
    _record(root, "cpu", "unet", 1, OLD, 7200)
    _record(root, "cpu", "pspnet", 0, AMX, 1800)
    _record(root, "cpu-half", "unet", 0, AMX, 1800)
    _record(root, "cpu", "miniseg", 0, None, 900)  # no env stamp
    _record(root, "cpu", "danet", 0, OLD, 100, finished=False)  # still training
    _record(root, "cpu-hard-fov_cut", "unet", 0, AMX, 3600)  # a score, not a run
    return root


def test_records_are_read_with_their_machine_and_family(records):
    stamps = record_stamps(records)
    assert len(stamps) == 6  # the five runs and the hard-case score; not the unfinished run
    assert stamps.loc[stamps["hard"], "group"].tolist() == ["cpu-hard-fov_cut"]
    runs = stamps[~stamps["hard"]]
    assert set(runs["group"]) == {"cpu", "cpu-half"}
    row = runs[(runs["model"] == "unet") & (runs["seed"] == 1)].iloc[0]
    assert (row["machine"], row["family"], row["train_seconds"]) == (
        machine(OLD), "U-Net family", 7200.0)
    assert runs.loc[runs["model"] == "miniseg", "machine"].item() == UNRECORDED
    assert runs.loc[runs["model"] == "pspnet", "family"].item() == "backbone models"


def test_the_table_counts_runs_models_families_and_hours(records):
    table = machine_table(record_stamps(records)).set_index("machine")
    amx = table.loc[machine(AMX)]
    assert (amx["runs"], amx["models"], amx["U-Net family"], amx["backbone models"]) == (
        3, 2, 2, 1)
    assert amx["train_hours"] == pytest.approx((3600 + 1800 + 1800) / 3600)
    old = table.loc[machine(OLD)]
    assert (old["runs"], old["backbone models"], old["train_hours"]) == (1, 0, 2.0)
    assert list(table.index) == [machine(AMX), machine(OLD), UNRECORDED]  # most runs first
    assert machine_table(pd.DataFrame(columns=["machine", "model", "family",
                                               "train_seconds"])).empty


def test_an_unreadable_record_is_named(tmp_path):
    _record(tmp_path, "cpu", "unet", 0, AMX, 10)
    (tmp_path / "cpu/unet/seed_0/fold_0/params.json").write_text("{not json")
    with pytest.raises(DataError, match="params.json"):
        record_stamps(tmp_path)


def test_the_page_shows_the_table(records):
    from spineseg_core.report.pages.base import Missing
    from spineseg_core.report.pages.reproducibility import machines_html

    html = machines_html(record_stamps(records), "this bundle").text
    assert "Intel(R) Xeon(R) Processor (2 cores, AVX512, AMX)" in html
    assert "Runs, U-Net family" in html and "Runs, backbone models" in html
    assert "2.0" in html  # the older Xeon's two hours
    assert isinstance(machines_html(record_stamps(records.parent / "nothing"), "x"), Missing)
    assert isinstance(machines_html(record_stamps(None), "x"), Missing)


def test_the_plan_counts_records_and_hours_per_part(tmp_path):
    from spineseg_core.study.schedule import plan_status, priced_rates, rerun_plan, seed_plan

    runs = seed_plan(200, models=["unet", "unet_25d3"]) + rerun_plan(200)
    rate = priced_rates({"unet": 0.5, "miniseg": 0.1}, sorted({r.spec.model for r in runs}))
    assert rate["unet_25d3"] == 0.5 and "unet3d" not in rate and "pspnet" not in rate
    _record(tmp_path, "cpu-half", "unet", 0, AMX, 10)
    _record(tmp_path, "cpu", "unet", 0, AMX, 10)
    status = plan_status(runs, tmp_path, rate).set_index("part")
    seed = status.loc["seed"]
    assert (seed["runs"], seed["recorded"], seed["to_do"]) == (4, 2, 2)
    assert seed["hours_left"] == pytest.approx(0.5 * (100 + 200) / 3600)  # unet_25d3 B/2 + B
    assert bool(seed["required"]) and not bool(status.loc["more", "required"])
    assert "unet3d" in status.loc["context", "unpriced"]
    assert list(status.index) == ["seed", "main", "loss", "res256", "context", "more"]


def test_the_first_page_says_where_the_rerun_stands():
    from spineseg_core.report.pages.intro import study_status

    plan = pd.DataFrame({
        "part": ["seed", "main", "more"], "what": ["a", "b", "c"],
        "required": [True, True, False], "runs": [34, 24, 24], "recorded": [7, 0, 0],
        "to_do": [27, 24, 24], "hours_left": [28.7, 32.4, 32.4], "unpriced": ["unet3d", "", ""],
        "steps": [5880] * 3})
    text = study_status(plan)
    assert "B = 5,880 optimiser steps" in text
    assert ("7 of the 58 runs the re-run needs are recorded (by part of the plan: seed 7 of 34, "
            "main 0 of 24)") in text
    assert "held" not in text
    held = study_status(plan.assign(held=[1, 0, 0]))
    assert ("(wall clock, validation included), and 1 run held until the code version it "
            "runs from is chosen. Until they are, ") in held
    assert "about 61 hours of training and an unpriced 3D model left" in text
    done = plan.assign(recorded=plan["runs"], to_do=0, hours_left=0.0)
    assert study_status(done) == "" and study_status(None) == ""


def test_the_plan_table_says_how_its_hours_were_priced():
    from spineseg_core.report.pages.base import Missing
    from spineseg_core.report.pages.reproducibility import plan_html

    plan = pd.DataFrame({
        "part": ["seed", "more"], "what": ["the budget seed", "seeds 3-4"],
        "required": [True, False], "runs": [34, 24], "recorded": [10, 0], "to_do": [24, 24],
        "held": [2, 0], "hours_left": [25.04, 30.0], "unpriced": ["unet3d", ""],
        "steps": [5880, 5880], "factor": [0.96, 0.96], "held_why": "u3: scored wrongly"})
    html = str(plan_html(plan))
    assert ("Held (counted in To do, not in the hours; no run of them starts): u3: scored "
            "wrongly.") in html
    assert "Held (" not in str(plan_html(plan.assign(held_why="")))
    assert "a pin of its own" not in html
    own = html_text.unescape(str(plan_html(plan.assign(held_why="", study_pin="ae16a7c",
                                                       own_pins="u3 24c0054"))))
    assert ("Every run is made from the study's pinned commit ae16a7c (plateau/CODE) except "
            "those of a model with a pin of its own, made from the commit that mends its hold: "
            "u3 24c0054 (plateau/CODE.<model>;") in own
    assert "B = 5,880 steps" in html and "Hours left (wall clock)" in html
    assert "times 0.96, the median ratio" in html and "25.0" in html
    assert "context runs (context.csv)" in html
    assert "as the cost allows" in html and "Not priced (no measured rate): unet3d." in html
    html = str(plan_html(plan.assign(factor=None)))
    assert "no model has both rates yet" in html and "times 0.96" not in html
    assert isinstance(plan_html(None), Missing)


def test_the_plan_is_priced_by_the_records_a_model_s_own_pin_superseded_too(tmp_path):
    """``schedule.rate_stamps``: the records of ``runs`` and of every ``superseded/<commit>``
    folder beside it; none anywhere is an empty table, as for ``runs`` alone."""
    from spineseg_core.study.schedule import SUPERSEDED, rate_stamps

    assert rate_stamps(tmp_path).empty
    _record(tmp_path / "runs", "cpu", "unet", 0, AMX, 3600)
    _record(tmp_path / SUPERSEDED / "ae16a7c963d1", "cpu-half", "unet3d", 0, AMX, 1800)
    _record(tmp_path / SUPERSEDED / "ae16a7c963d1", "cpu-half", "danet", 0, AMX, 9, False)
    stamps = rate_stamps(tmp_path)
    assert sorted(zip(stamps["group"], stamps["model"], stamps["train_seconds"])) == [
        ("cpu", "unet", 3600.0), ("cpu-half", "unet3d", 1800.0)]
