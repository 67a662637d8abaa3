"""Raising the budget once (spineseg_core.study.budget_raise): the moves that turn the runs at
the old B into the new B/2 runs, the budget file later starts read, and what is refused."""

from __future__ import annotations

import json

import pytest

from fake_runs import write_fake_run
from spineseg_core.errors import ConfigError, DataError
from spineseg_core.study.budget_raise import (
    BUDGET_FILE,
    budget_in_force,
    doubling_moves,
    raise_budget,
    read_raise,
    recorded_budget,
)
from spineseg_core.study.runner import RunStatus, plan_study

GROUPS = ("cpu", "cpu-half", "cpu-hard-fov_cut", "cpu-hard-sacralised_l5")


def _seed(root, steps=2940):
    """Records and checkpoints of a budget seed at B = ``steps``: U-Net at B and B/2, its
    hard-case scores at B; each folder's params.json says its budget."""
    for top in ("results/plateau/runs", "runs/plateau"):
        for group in GROUPS:
            run = write_fake_run(root / top / group / "unet/seed_0/fold_0", "unet", profile="cpu")
            params = json.loads((run / "params.json").read_text())
            params["steps"] = steps // 2 if group == "cpu-half" else steps
            (run / "params.json").write_text(json.dumps(params))
    return root / "results/plateau", root / "runs/plateau"


def test_a_doubling_turns_the_runs_at_b_into_the_new_half_runs(tmp_path):
    plateau, runs = _seed(tmp_path)
    assert recorded_budget(plateau / "runs/cpu") == 2940
    moves = raise_budget(plateau, runs, 2940, 5880, "3 of 12 not plateaued")
    assert len(moves) == 8  # 4 groups, in the records and in the checkpoints
    for top in (plateau / "runs", runs):
        assert sorted(p.name for p in top.iterdir()) == [
            "cpu-half", "cpu-half-hard-fov_cut", "cpu-half-hard-sacralised_l5", "cpu-quarter"]
        assert recorded_budget(top / "cpu-half") == 2940  # the old B: the new B/2
        assert recorded_budget(top / "cpu-quarter") == 1470
    record = read_raise(plateau)
    assert (record["steps"], record["raised_from"], record["reason"]) == (
        5880, 2940, "3 of 12 not plateaued")
    assert budget_in_force(plateau, pinned=2940) == 5880
    # the runner now sees no finished run at the new B: it trains it, and its B/2 is recorded
    plan = plan_study("cpu", ["unet"], [0], [0], runs, records_dir=plateau / "runs")
    assert [p.status for p in plan] == [RunStatus.NEW]
    half = plan_study("cpu", ["unet"], [0], [0], runs, variant="half",
                      records_dir=plateau / "runs")
    assert [p.status for p in half] == [RunStatus.FINISHED]


def test_the_budget_is_raised_once_and_only_by_doubling(tmp_path):
    plateau, runs = _seed(tmp_path)
    with pytest.raises(ConfigError, match="only doubling the budget \\(5880 steps\\)"):
        raise_budget(plateau, runs, 2940, 4000, "why")
    with pytest.raises(ConfigError, match="--reason: say why"):
        raise_budget(plateau, runs, 2940, 5880, "  ")
    dry = raise_budget(plateau, runs, 2940, 5880, "why", dry_run=True)
    assert len(dry) == 8 and (plateau / "runs/cpu").is_dir()  # nothing moved
    assert read_raise(plateau) is None
    raise_budget(plateau, runs, 2940, 5880, "why")
    with pytest.raises(ConfigError, match="raised once already \\(to 5880 steps\\)"):
        raise_budget(plateau, runs, 5880, 11760, "again")


def test_a_half_done_raise_is_refused_before_anything_moves(tmp_path):
    plateau, runs = _seed(tmp_path)
    (runs / "cpu-quarter").mkdir()
    with pytest.raises(ConfigError, match="cpu-quarter already there"):
        raise_budget(plateau, runs, 2940, 5880, "why")
    assert (plateau / "runs/cpu").is_dir() and (plateau / "runs/cpu-half").is_dir()
    assert doubling_moves(tmp_path / "absent") == []


def test_the_budget_in_force_and_a_steps_that_disagrees(tmp_path):
    assert budget_in_force(tmp_path, pinned=2940) == 2940
    assert budget_in_force(tmp_path, pinned=2940, given=2940) == 2940
    with pytest.raises(ConfigError, match="--steps 5880: the study's budget is 2940 steps "
                                          "\\(the pinned code's CPU_STEPS is 2940\\)"):
        budget_in_force(tmp_path, pinned=2940, given=5880)
    (tmp_path / BUDGET_FILE).write_text(json.dumps({"steps": 5880, "raised_from": 2940}))
    assert budget_in_force(tmp_path, pinned=2940, given=5880) == 5880
    with pytest.raises(ConfigError, match="budget.json raised it to 5880"):
        budget_in_force(tmp_path, pinned=2940, given=2940)
    (tmp_path / BUDGET_FILE).write_text(json.dumps({"steps": "many"}))
    with pytest.raises(DataError, match="expected 'steps', a budget of at least 2 steps"):
        budget_in_force(tmp_path, pinned=2940)


def test_the_recorded_budget_must_be_one(tmp_path):
    with pytest.raises(DataError, match="found no run"):
        recorded_budget(tmp_path / "cpu")
    plateau, _ = _seed(tmp_path)
    params = plateau / "runs/cpu/unet/seed_0/fold_0/params.json"
    other = plateau / "runs/cpu/miniseg/seed_0/fold_0"
    other.mkdir(parents=True)
    (other / "params.json").write_text(json.dumps({"steps": 1470}))
    assert params.is_file()
    with pytest.raises(DataError, match="found \\['1470', '2940'\\]"):
        recorded_budget(plateau / "runs/cpu")


def test_the_script_moves_records_and_relative_checkpoints_and_refuses_a_second_time(
        tmp_path, monkeypatch, capsys):
    """scripts/raise_budget.py from another folder, its checkpoints given relatively: the
    moves are made and printed, budget.json written; a second raise is refused in one line,
    before it reads the (moved) records."""
    import importlib.util
    import sys
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "_raise_budget", Path(__file__).resolve().parent.parent / "scripts/raise_budget.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    plateau, runs = _seed(tmp_path)
    monkeypatch.setattr(script, "HERE", tmp_path)
    monkeypatch.setattr(script, "PLATEAU", plateau)
    monkeypatch.setattr(script, "seed_running", lambda: False)
    monkeypatch.chdir(tmp_path / "runs")
    argv = ["raise_budget.py", "--reason", "why", "--runs-dir", "plateau", "--no-commit"]
    monkeypatch.setattr(sys, "argv", [*argv, "--dry-run"])
    assert script.main() == 0
    assert "would move runs/plateau/cpu -> runs/plateau/cpu-half" in capsys.readouterr().out
    assert read_raise(plateau) is None
    monkeypatch.setattr(sys, "argv", argv)
    assert script.main() == 0
    out = capsys.readouterr().out
    assert "moved results/plateau/runs/cpu -> results/plateau/runs/cpu-half" in out
    assert "B: 2940 -> 5880 steps, recorded in results/plateau/budget.json" in out
    assert (runs / "cpu-quarter").is_dir() and read_raise(plateau)["steps"] == 5880
    with pytest.raises(SystemExit, match="raised once already \\(to 5880 steps\\)"):
        script.main()


def test_the_old_main_groups_test_set_loses_its_images(tmp_path):
    """The runs at the old B become a side group: their test set keeps its slices and masks,
    not the display images (the new main group's records carry them)."""
    import numpy as np

    plateau, runs = _seed(tmp_path)
    arrays = {"case_id": np.array(["a", "a"]), "slice_index": np.array([0, 1]),
              "mask": np.ones((2, 4, 4), np.uint8), "image": np.zeros((2, 4, 4), np.uint8),
              "image_range": np.array([0.0, 1.0], np.float32)}
    np.savez_compressed(plateau / "runs/cpu/test_set.npz", **arrays)
    np.savez_compressed(plateau / "runs/cpu-half/test_set.npz",
                        **{k: arrays[k] for k in ("case_id", "slice_index", "mask")})
    raise_budget(plateau, runs, 2940, 5880, "why")
    with np.load(plateau / "runs/cpu-half/test_set.npz") as z:
        assert sorted(z.files) == ["case_id", "mask", "slice_index"]
        assert np.array_equal(z["mask"], arrays["mask"])
    with np.load(plateau / "runs/cpu-quarter/test_set.npz") as z:
        assert "image" not in z.files
