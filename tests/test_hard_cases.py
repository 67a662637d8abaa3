"""Trained runs scored on the phantom's hard cases (spineseg_core.study.hard_cases)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from spineseg_core.data import prepare
from spineseg_core.data.phantom.hard import read_manifest
from spineseg_core.errors import ConfigError, DataError
from spineseg_core.models import model_info
from spineseg_core.study.hard_cases import (
    HardSet,
    hard_group,
    is_hard_group,
    run_config,
    score_hard_set,
    score_runs,
    source_group,
)
from spineseg_core.training import loop
from spineseg_core.training.config import resolve_config
from spineseg_core.training.run_folder import RunFolder


def test_hard_group_names_round_trip_and_bad_names_say_what_is_expected():
    assert hard_group("cpu", "fov_cut") == "cpu-hard-fov_cut"
    assert hard_group("cpu-context", HardSet.SACRALISED_L5) == "cpu-context-hard-sacralised_l5"
    assert source_group("cpu-context-hard-lumbarised_s1") == ("cpu-context",
                                                               HardSet.LUMBARISED_S1)
    assert is_hard_group("cpu-hard-fov_cut") and not is_hard_group("cpu-res256")
    with pytest.raises(ConfigError, match="not a hard-case group"):
        source_group("cpu-res256")
    with pytest.raises(ConfigError, match="unknown set 'l6'"):
        source_group("cpu-hard-l6")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One finished smoke run of a small U-Net on the phantom, in a runs folder's layout."""
    root = tmp_path_factory.mktemp("hard")
    mp = pytest.MonkeyPatch()
    mp.setenv("SPINESEG_CACHE", str(root / "cache"))
    run_dir = root / "runs" / "smoke" / "unet" / "seed_0" / "fold_0"
    cfg = resolve_config("smoke", out_dir=run_dir, image_size=32, threads=1,
                         model_kwargs={"base_width": 4, "depth": 2})
    loop.run_training(cfg)
    yield root, run_dir, cfg
    mp.undo()


def test_scoring_the_runs_own_test_folder_gives_back_its_test_results(smoke, tmp_path):
    _, run_dir, cfg = smoke
    out = tmp_path / "again"
    metrics = score_hard_set(run_dir, HardSet.FOV_CUT, out, test_dir=prepare.test_root(cfg))
    run, again = RunFolder(run_dir), RunFolder(out)
    pd.testing.assert_frame_equal(again.load_per_case(), run.load_per_case())
    with np.load(run.predictions) as a, np.load(again.predictions) as b:
        assert np.array_equal(a["pred"], b["pred"]) and np.array_equal(a["mask"], b["mask"])
    assert metrics["dice"] == pytest.approx(run.load_metrics()["dice"])
    assert metrics["evaluated_on"] == "hard:fov_cut"
    assert run_config(again) == run_config(run)  # the source run's configuration, as it was


@pytest.mark.parametrize("model, kwargs", [
    ("unet_25d3", {"base_width": 4, "depth": 2}),
    ("unet3d", {"base_width": 4, "depth": 2, "depth_pooled": 1})])
def test_context_models_are_rescored_exactly_as_they_were_tested(model, kwargs, tmp_path,
                                                                 monkeypatch):
    """A 2.5D run (neighbour slices as channels) and a 3D run (whole volumes) take their inputs
    the way they trained: rescoring their own test folder gives back their test results."""
    monkeypatch.setenv("SPINESEG_CACHE", str(tmp_path / "cache"))
    run_dir = tmp_path / "runs" / "smoke-context" / model / "seed_0" / "fold_0"
    cfg = resolve_config("smoke", model=model, out_dir=run_dir, image_size=32, threads=1,
                         epochs=1, model_kwargs=kwargs)
    loop.run_training(cfg)
    score_hard_set(run_dir, HardSet.SACRALISED_L5, tmp_path / "again",
                   test_dir=prepare.test_root(cfg))
    run, again = RunFolder(run_dir), RunFolder(tmp_path / "again")
    pd.testing.assert_frame_equal(again.load_per_case(), run.load_per_case())
    with np.load(run.predictions) as a, np.load(again.predictions) as b:
        assert np.array_equal(a["pred"], b["pred"]) and np.array_equal(a["mask"], b["mask"])

    # One epoch leaves a constant prediction, which any input would give back. So give the run
    # random weights (outputs that vary with the input) and check the rescoring against
    # spineseg predict's own way of feeding a volume (training.predict.segment_volume).
    from safetensors.torch import save_file

    from spineseg_core.models import build_model
    from spineseg_core.training.predict import run_precision, segment_volume
    from spineseg_core.training.run_folder import load_model

    torch.manual_seed(1)
    weights = build_model(model, **kwargs).state_dict()
    for name, w in weights.items():  # no bias: the head's would outweigh the input's signal
        if name.endswith(".bias"):
            w.zero_()
    save_file(weights, str(run.checkpoint_best))
    score_hard_set(run_dir, HardSet.SACRALISED_L5, tmp_path / "random",
                   test_dir=prepare.test_root(cfg))
    net, precision = load_model(run_dir), run_precision(run, torch.device("cpu"))
    with np.load(RunFolder(tmp_path / "random").predictions) as z:
        pred, cases = z["pred"], z["case_id"]
    assert len(np.unique(pred)) > 1
    volumes = prepare.prepare_data(cfg, model_info(cfg.model), slice_augment=False).test_volumes
    assert len({v.num_slices for v in volumes}) > 1  # a 3D model's set padding would show
    for vol in volumes:
        expected = segment_volume(net, vol.image, torch.device("cpu"), precision=precision)
        assert np.array_equal(pred[cases == vol.case_id], expected), vol.case_id


def test_every_set_is_scored_on_twins_of_the_test_subjects_and_recorded_once(smoke):
    root, run_dir, cfg = smoke
    records = root / "records"
    done = score_runs(root / "runs", ["smoke"], root / "scored", records_dir=records)
    assert [(o.hard, o.note) for o in done] == [(h, "scored") for h in HardSet]
    test = RunFolder(run_dir)
    with np.load(test.predictions) as z:
        test_cases, test_masks = z["case_id"], z["mask"]
    for hard in HardSet:
        rec = RunFolder(records / hard_group("smoke", hard) / "unet" / "seed_0" / "fold_0")
        params = rec.load_params()
        assert params["rescored"]["set"] == hard.value
        assert params["seed"] == 0 and params["model"] == "unet"
        assert rec.load_metrics()["evaluated_on"] == f"hard:{hard.value}"
        with np.load(rec.path.parents[2] / "test_set.npz") as z:
            # The same subjects as the test set (twins), every one of them a hard case.
            assert sorted(set(z["case_id"])) == sorted(set(test_cases))
            masks, cases = z["mask"], z["case_id"]
        manifest = read_manifest(params["rescored"]["test_dir"])
        assert len(manifest) == cfg.test_cases
        expected = {HardSet.SACRALISED_L5: "sacralised_l5", HardSet.LUMBARISED_S1: "lumbarised_s1"}
        if hard in expected:
            assert set(manifest["hard_case"]) == {expected[hard]}
            assert set(manifest["label_offset"]) == {1 if hard is HardSet.SACRALISED_L5 else -1}
        else:
            assert (manifest["fov_cut"] != "none").all()
        assert masks.shape[1:] == test_masks.shape[1:]
        if hard is HardSet.SACRALISED_L5:  # the fused L5 is labelled S (1): more sacrum
            for case in set(test_cases):
                hard_s, default_s = masks[cases == case] == 1, test_masks[test_cases == case] == 1
                assert hard_s.sum() > default_s.sum()
    again = score_runs(root / "runs", ["smoke"], root / "scored", records_dir=records)
    assert {o.note for o in again} == {"already scored"}


def test_a_run_without_its_checkpoint_is_skipped_and_says_so(smoke, tmp_path):
    root, run_dir, _ = smoke
    runs = tmp_path / "runs"
    copy = runs / "smoke" / "unet" / "seed_0" / "fold_0"
    shutil.copytree(run_dir, copy)
    RunFolder(copy).checkpoint_best.unlink()
    done = score_runs(runs, ["smoke"], tmp_path / "scored", sets=["fov_cut"])
    assert [(o.note, o.out_dir) for o in done] == [("no checkpoint on this machine", None)]
    with pytest.raises(DataError, match="best checkpoint"):
        score_hard_set(copy, "fov_cut", tmp_path / "x")
    with pytest.raises(ConfigError, match="hard-case group already"):
        score_runs(runs, ["smoke-hard-fov_cut"], tmp_path / "scored")


def test_hard_groups_are_not_variants_of_the_study(smoke, tmp_path):
    from spineseg_core.study.aggregate import variant_groups

    root, run_dir, _ = smoke
    for name in ("smoke-res256", hard_group("smoke", "fov_cut")):
        shutil.copytree(run_dir, tmp_path / name / "unet" / "seed_0" / "fold_0")
    assert list(variant_groups(tmp_path, "smoke")) == ["smoke-res256"]


# --- level identification on hard cases against their default twins (levels.hard) ---------

def _subjects_frame(rows: list[tuple[int, str, str, int, int]]) -> pd.DataFrame:
    """(seed, case, stage, n_right, n_levels) → a ``subjects.csv`` of U-Net."""
    return pd.DataFrame([{"model": "unet", "seed": s, "case_id": c, "stage": st,
                          "n_levels": n, "n_right": r, "all_right": int(r == n), "dice3d": 0.5}
                         for s, c, st, r, n in rows])


def test_hard_case_table_pairs_twins_by_hand():
    from spineseg_core.levels.hard import HARD_COLUMNS, hard_case_table

    # Default twins: seeds 0 and 1; the hard set scored seed 1 only, so seed 0 stays out.
    default = _subjects_frame([(0, "A", "predicted", 0, 5), (0, "B", "predicted", 0, 5),
                               (0, "C", "predicted", 0, 5),
                               (1, "A", "predicted", 5, 5), (1, "B", "predicted", 5, 5),
                               (1, "C", "predicted", 4, 5)])
    hard = _subjects_frame([(1, "A", "predicted", 4, 5), (1, "B", "predicted", 5, 5),
                            (1, "C", "predicted", 3, 5)])
    table = hard_case_table({"cpu": default, "cpu-hard-sacralised_l5": hard}, "cpu", n_boot=200)
    assert list(table.columns) == list(HARD_COLUMNS)
    assert set(table["set"]) == {"sacralised_l5"} and len(table) == 2  # one stage, 2 metrics
    rows = table.set_index("metric")
    right, ident = rows.loc["all_levels_right"], rows.loc["identification"]
    assert right["default"] == pytest.approx(2 / 3) and right["hard"] == pytest.approx(1 / 3)
    assert right["difference"] == pytest.approx(-1 / 3)
    assert ident["default"] == pytest.approx(14 / 15) and ident["hard"] == pytest.approx(12 / 15)
    for _, r in table.iterrows():  # every interval holds its estimate
        for k in ("default", "hard", "difference"):
            assert r[f"{k}_low"] <= r[k] + 1e-12 and r[k] <= r[f"{k}_high"] + 1e-12
    assert (table["n_seeds"] == 1).all() and (table["n_subjects"] == 3).all()


def test_levels_command_measures_the_hard_groups_against_their_source(tmp_path, capsys):
    from spineseg_core.cli import main
    from spineseg_core.levels.hard import HARD_CASES
    from test_levels import FIVE, SHIFTED, _write_record, spine

    runs = tmp_path / "runs"
    ref, shifted = spine(FIVE), spine(SHIFTED)
    for group, pred in (("cpu", ref), ("cpu-hard-fov_cut", shifted)):
        g = runs / group
        g.mkdir(parents=True)
        np.savez_compressed(g / "test_set.npz", case_id=np.array(["Case1"] * 3),
                            slice_index=np.arange(3), mask=ref)
        _write_record(g, "unet", {"Case1": pred})
    out = tmp_path / "levels"
    assert main(["levels", "--runs-dir", str(runs), "--out", str(out), "--n-boot", "20"]) == 0
    table = pd.read_csv(out / HARD_CASES)
    assert (out / "cpu-hard-fov_cut" / "subjects.csv").is_file()
    predicted = table[(table.stage == "predicted") & (table.metric == "all_levels_right")]
    assert predicted[["set", "default", "hard", "difference"]].values.tolist() == [
        ["fov_cut", 1.0, 0.0, -1.0]]  # right on the default twin, shifted on the hard one
    relabelled = table[(table.stage == "relabelled") & (table.metric == "all_levels_right")]
    assert relabelled["hard"].tolist() == [1.0]  # the sacrum is in view here: the count fixes it
    from spineseg_core.report.bundle import Bundle
    from spineseg_core.report.pages import build_page
    from spineseg_core.report.tables import HTMLTable

    results = tmp_path / "results"
    shutil.copytree(out, results / "levels")
    values = build_page("levels", Bundle(results))
    assert isinstance(values["lv_hard_table"], HTMLTable)
    html = values["lv_hard_table"].text
    assert "field cut through or above the sacrum" in html and "-100.0" in html
    assert values["lv_hard_text"].startswith("1 model was scored on the hard cases")
    shutil.rmtree(runs / "cpu-hard-fov_cut")  # a table of runs that are gone goes with them
    assert main(["levels", "--runs-dir", str(runs), "--out", str(out), "--n-boot", "20"]) == 0
    assert not (out / HARD_CASES).exists()
