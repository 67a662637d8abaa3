"""A run's committed record: written, read back, joined with its group's test set, skipped
by the study and aggregated like the run folder it came from."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fake_runs import fake_runner, make_fake_study, write_fake_run
from spineseg_core.cli import main
from spineseg_core.errors import ConfigError, DataError
from spineseg_core.study.aggregate import aggregate
from spineseg_core.study.records import (
    IMAGE_LEVELS,
    TEST_SET,
    has_record,
    load_predictions,
    main_group_images,
    main_group_name,
    record_runs,
    write_record,
)
from spineseg_core.study.runner import RunOutcome, RunStatus, group_name, plan_study, run_study
from spineseg_core.training.run_folder import RunFolder


def _npz(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def test_record_keeps_the_small_files_and_only_the_predictions(tmp_path):
    run = write_fake_run(tmp_path / "runs/cpu/unet/seed_0/fold_0", "unet")
    rec = write_record(run, tmp_path / "rec/cpu/unet/seed_0/fold_0")
    names = sorted(p.name for p in rec.iterdir())
    assert names == ["history.csv", "metrics.json", "params.json", "per_case.csv",
                     "per_class.csv", "predictions.npz"]  # no checkpoint
    for name in ("history.csv", "metrics.json", "params.json", "per_case.csv", "per_class.csv"):
        assert (rec / name).read_bytes() == (run / name).read_bytes()
    kept = _npz(rec / "predictions.npz")
    assert sorted(kept) == ["case_id", "dice", "pred", "slice_index"]
    shared = _npz(tmp_path / "rec/cpu" / TEST_SET)
    assert sorted(shared) == ["case_id", "image", "image_range", "mask", "slice_index"]
    assert shared["image"].dtype == np.uint8


def test_predictions_come_back_whole_from_a_record(tmp_path):
    run = write_fake_run(tmp_path / "runs/cpu/unet/seed_0/fold_0", "unet")
    rec = write_record(run, tmp_path / "rec/cpu/unet/seed_0/fold_0")
    original, joined = _npz(run / "predictions.npz"), load_predictions(rec)
    for key in ("pred", "mask", "case_id", "slice_index", "dice"):
        np.testing.assert_array_equal(joined[key], original[key])
    image = original["image"].astype(np.float32)
    step = (image.max() - image.min()) / IMAGE_LEVELS
    err = np.abs(joined["image"].astype(np.float32) - image).max()
    assert err <= step / 2 + 0.05 * step + 1e-2  # half a grey level (and float16's rounding)
    assert load_predictions(run)["image"].dtype == np.float16  # a run folder reads as it is


def test_a_group_shares_one_test_set(tmp_path):
    a = write_fake_run(tmp_path / "runs/cpu/unet/seed_0/fold_0", "unet")
    b = write_fake_run(tmp_path / "runs/cpu/miniseg/seed_0/fold_0", "miniseg")
    c = write_fake_run(tmp_path / "runs/cpu/pspnet/seed_0/fold_0", "pspnet", n_cases=3)
    write_record(a, tmp_path / "rec/cpu/unet/seed_0/fold_0")
    shared = tmp_path / "rec/cpu" / TEST_SET
    before = shared.read_bytes()
    write_record(b, tmp_path / "rec/cpu/miniseg/seed_0/fold_0")  # the same slices: fine
    assert shared.read_bytes() == before
    with pytest.raises(DataError, match="test set differs"):
        write_record(c, tmp_path / "rec/cpu/pspnet/seed_0/fold_0")
    assert not has_record(tmp_path / "rec/cpu/pspnet/seed_0/fold_0")  # nothing half-written


def test_an_unfinished_run_is_not_recorded(tmp_path):
    run = write_fake_run(tmp_path / "runs/cpu/unet/seed_0/fold_0", "unet")
    (run / "metrics.json").unlink()
    with pytest.raises(DataError, match="metrics.json: missing: only a finished run"):
        write_record(run, tmp_path / "rec/cpu/unet/seed_0/fold_0")


def test_a_record_without_its_test_set_is_one_clear_error(tmp_path):
    run = write_fake_run(tmp_path / "runs/cpu/unet/seed_0/fold_0", "unet")
    rec = write_record(run, tmp_path / "rec/cpu/unet/seed_0/fold_0")
    (tmp_path / "rec/cpu" / TEST_SET).unlink()
    with pytest.raises(DataError, match=f"{TEST_SET}: missing"):
        load_predictions(rec)


def test_the_bundle_from_records_equals_the_bundle_from_runs(tmp_path):
    runs = make_fake_study(tmp_path / "runs", profile="cpu", losses=("ce",))
    written = record_runs(runs, tmp_path / "rec")
    assert len(written) == 3 * 2 + 2
    assert record_runs(runs, tmp_path / "rec") == []  # recorded once
    a = aggregate("cpu", runs, tmp_path / "from_runs", n_boot=50)
    b = aggregate("cpu", tmp_path / "rec", tmp_path / "from_records", n_boot=50)
    assert a["n_runs"] == b["n_runs"] == 6
    for name in ("models.csv", "per_class.csv", "per_case.csv.gz", "classes.csv", "losses.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "from_runs" / name),
                                      pd.read_csv(tmp_path / "from_records" / name))
    fa, fb = _npz(tmp_path / "from_runs/figure18.npz"), _npz(tmp_path / "from_records/figure18.npz")
    for key in ("pred", "mask", "case_id", "slice_index", "kind"):
        np.testing.assert_array_equal(fa[key], fb[key])


def test_record_command_renames_a_variant_group(tmp_path, capsys):
    write_fake_run(tmp_path / "res/cpu/unet/seed_0/fold_0", "unet")
    assert main(["record", str(tmp_path / "res"), str(tmp_path / "rec"),
                 "--group", "cpu=cpu-res256"]) == 0
    assert has_record(tmp_path / "rec/cpu-res256/unet/seed_0/fold_0")
    assert "1 new records" in capsys.readouterr().out
    assert main(["record", str(tmp_path / "nope"), str(tmp_path / "rec")]) == 2
    assert "runs_dir" in capsys.readouterr().err


def test_variant_groups_and_their_names():
    assert group_name("cpu") == "cpu"
    assert group_name("cpu", "ce") == "cpu-loss-ce"
    assert group_name("cpu", None, "res256") == "cpu-res256"
    assert group_name("cpu", None, "os8-res256") == "cpu-os8-res256"
    for bad in ("res/256", "loss-x", "", "-a"):
        with pytest.raises(ConfigError, match="--variant"):
            plan_study("cpu", ["unet"], [0], [0], "runs", variant=bad)


def test_study_skips_recorded_runs_and_records_each_as_it_finishes(tmp_path):
    records = tmp_path / "rec"
    write_record(write_fake_run(tmp_path / "old/cpu/unet/seed_0/fold_0", "unet", profile="cpu"),
                 records / "cpu/unet/seed_0/fold_0")
    plan = plan_study("cpu", ["unet", "miniseg"], [0], [0], tmp_path / "runs",
                      records_dir=records)
    assert [p.status for p in plan] == [RunStatus.RECORDED, RunStatus.NEW]
    lines = []
    results = run_study(plan, tmp_path / "runs", runner=fake_runner, records_dir=records,
                        log=lines.append)
    assert [r.outcome for r in results] == [RunOutcome.SKIPPED, RunOutcome.DONE]
    assert not (tmp_path / "runs/cpu/unet").exists()  # the recorded run never ran again
    assert has_record(records / "cpu/miniseg/seed_0/fold_0")
    assert any("recorded in" in line for line in lines)
    params = json.loads(RunFolder(records / "cpu/miniseg/seed_0/fold_0").params.read_text())
    assert params["model"] == "miniseg"



def test_side_groups_keep_no_display_image(tmp_path):
    run = write_fake_run(tmp_path / "runs/cpu/unet/seed_0/fold_0", "unet")
    rec = write_record(run, tmp_path / "rec/cpu-res256/unet/seed_0/fold_0")
    shared = _npz(tmp_path / "rec/cpu-res256" / TEST_SET)
    assert sorted(shared) == ["case_id", "mask", "slice_index"]
    joined = load_predictions(rec)
    assert "image" not in joined
    np.testing.assert_array_equal(joined["mask"], _npz(run / "predictions.npz")["mask"])


def test_a_side_record_borrows_the_main_groups_display_images(tmp_path):
    run = write_fake_run(tmp_path / "runs/cpu/unet/seed_0/fold_0", "unet")
    main = write_record(run, tmp_path / "rec/cpu/unet/seed_0/fold_0")
    side = write_record(run, tmp_path / "rec/cpu-context/unet/seed_0/fold_0")
    p = load_predictions(side)
    assert main_group_name("cpu-context") == "cpu" and main_group_name("cpu") == "cpu"
    # decoded exactly as the main record's own images are
    np.testing.assert_array_equal(main_group_images(side, p), load_predictions(main)["image"])
    other = dict(p, slice_index=p["slice_index"][::-1].copy())  # not the main group's slices
    assert main_group_images(side, other) is None
    alone = write_record(run, tmp_path / "only/cpu-context/unet/seed_0/fold_0")
    assert main_group_images(alone, p) is None  # no main group beside it
