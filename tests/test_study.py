"""The study runner: plan, skip/resume/new, failures, papermill, and the submitit job array."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from fake_runs import fake_runner, write_fake_run
from spineseg_core.cli import main
from spineseg_core.errors import ConfigError
from spineseg_core.study.runner import (
    Executor,
    RunJob,
    RunOutcome,
    RunSpec,
    RunStatus,
    notebook_parameters,
    parse_parameter,
    plan_study,
    run_status,
    run_study,
)

TESTS = Path(__file__).resolve().parent


def _calls(run_dir: Path) -> list[dict]:
    path = run_dir / "runner_calls.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def notebook(tmp_path) -> Path:
    # Only its parameters cell is read (by the study, to route parameters); a runner is injected.
    return _write_notebook(tmp_path / "train.ipynb")


def test_plan_status_and_folders(tmp_path):
    runs = tmp_path / "runs"
    write_fake_run(runs / "cpu/unet/seed_0/fold_0", "unet", profile="cpu")
    (runs / "cpu/unet/seed_1/fold_0").mkdir(parents=True)
    (runs / "cpu/unet/seed_1/fold_0/checkpoint_last.pt").write_bytes(b"x")
    plan = plan_study("cpu", ["unet"], [0, 1, 2], [0], runs)
    assert [p.status for p in plan] == [RunStatus.FINISHED, RunStatus.RESUME, RunStatus.NEW]
    assert plan[2].run_dir == runs / "cpu/unet/seed_2/fold_0"
    loss_plan = plan_study("cpu", ["unet", "miniseg"], [0], [0, 1], runs, losses=["ce", "dice"])
    assert len(loss_plan) == 8
    assert loss_plan[0].run_dir == runs / "cpu-loss-ce/unet/seed_0/fold_0"
    with pytest.raises(ConfigError, match="repeated"):
        plan_study("cpu", ["unet", "unet"], [0], [0], runs)


def test_a_finished_run_with_fewer_epochs_than_asked_is_extended(tmp_path):
    runs = tmp_path / "runs"
    done = runs / "cpu/unet/seed_0/fold_0"
    write_fake_run(done, "unet", profile="cpu", epochs=2, checkpoint=True)
    assert run_status(done) is RunStatus.FINISHED  # no target: any count is finished
    assert run_status(done, 2) is RunStatus.FINISHED
    assert run_status(done, 3) is RunStatus.RESUME  # extended from its checkpoint
    (done / "checkpoint_last.pt").unlink()
    assert run_status(done, 3) is RunStatus.NEW  # nothing to extend from: trained again
    plan = plan_study("cpu", ["unet"], [0], [0], runs, epochs_of=lambda spec: 5)
    assert plan[0].spec.epochs == 5 and plan[0].status is RunStatus.NEW


def test_parameters():
    spec = RunSpec("cpu", "unet", 1, 2, loss="ce")
    params = notebook_parameters(spec, Path("/r"), True, {"epochs": 3})
    assert params == dict(epochs=3, model="unet", profile="cpu", seed=1, fold=2, out_dir="/r",
                          resume=True, loss="ce")
    with pytest.raises(ConfigError, match=r"\['seed'\] are set by the study"):
        notebook_parameters(spec, Path("/r"), False, {"seed": 3})
    # A training parameter the parameters cell lacks travels in `overrides`; others are errors.
    routed = notebook_parameters(spec, Path("/r"), True, {"crop_width": 1.0, "epochs": 2})
    assert routed["overrides"] == {"crop_width": 1.0} and routed["epochs"] == 2
    with pytest.raises(ConfigError, match=r"unknown parameters \['nonsense'\]"):
        notebook_parameters(spec, Path("/r"), True, {"nonsense": 1})
    assert [parse_parameter(v) for v in ("3", "1e-3", "true", "None", "ce")] == \
        [3, 1e-3, True, None, "ce"]


def test_local_skip_resume_new_and_failure(tmp_path, notebook):
    runs = tmp_path / "runs"
    write_fake_run(runs / "cpu/unet/seed_0/fold_0", "unet", profile="cpu")
    resume_dir = runs / "cpu/unet/seed_1/fold_0"
    resume_dir.mkdir(parents=True)
    (resume_dir / "checkpoint_last.pt").write_bytes(b"x")
    plan = plan_study("cpu", ["unet", "miniseg"], [0, 1], [0], runs)
    results = run_study(plan, runs, extra={"fail_model": "miniseg"}, notebook=notebook,
                        runner=fake_runner, log=lambda _: None)
    outcomes = {(r.spec.model, r.spec.seed): r.outcome for r in results}
    assert outcomes == {("unet", 0): RunOutcome.SKIPPED, ("unet", 1): RunOutcome.DONE,
                        ("miniseg", 0): RunOutcome.FAILED, ("miniseg", 1): RunOutcome.FAILED}
    assert _calls(runs / "cpu/unet/seed_0/fold_0") == []          # finished: not run again
    assert _calls(resume_dir)[0]["resume"] is True                 # interrupted: resumed
    failed = [r for r in results if r.outcome is RunOutcome.FAILED]
    assert _calls(failed[0].run_dir)[0]["resume"] is False         # new
    log = failed[0].error_log.read_text()
    assert "RuntimeError: fake failure of miniseg" in log and "Traceback" in log
    assert failed[0].error_log == failed[0].run_dir / "error.log"


def test_a_folder_made_for_another_step_budget_is_refused(tmp_path, notebook):
    """A finished run at 2940 steps would be skipped, and recorded, as a run of a study at
    5880; an interrupted one resumed under another schedule: the study refuses before it
    runs anything, naming the folder."""
    from spineseg_core.study.runner import planned_steps
    from spineseg_core.training.config import CPU_STEPS

    runs = tmp_path / "runs"
    done = write_fake_run(runs / "cpu/unet/seed_0/fold_0", "unet", profile="cpu")
    params = json.loads((done / "params.json").read_text())
    (done / "params.json").write_text(json.dumps({**params, "steps": 2940}))
    plan = plan_study("cpu", ["unet", "miniseg"], [0], [0], runs)
    with pytest.raises(ConfigError, match=r"unet/seed_0/fold_0: made for a budget of 2940 steps, "
                                          r"this study asks 5880; move the folder aside"):
        run_study(plan, runs, extra={"steps": 5880}, notebook=notebook, runner=fake_runner,
                  log=lambda _: None)
    assert _calls(runs / "cpu/miniseg/seed_0/fold_0") == []  # nothing ran
    results = run_study(plan, runs, extra={"steps": 2940}, notebook=notebook,
                        runner=fake_runner, log=lambda _: None)
    assert results[0].outcome is RunOutcome.SKIPPED  # its own budget: finished, skipped
    spec = plan[0].spec
    assert planned_steps(spec) == CPU_STEPS
    assert planned_steps(spec, {"overrides": '{"steps": 100}'}) == 100
    assert planned_steps(spec, {"epochs": 2}) is None  # an epoch budget: not compared


def test_notebook_without_metrics_is_a_failure(tmp_path, notebook):
    def silent(nb, out, params, cwd):
        pass

    plan = plan_study("cpu", ["unet"], [0], [0], tmp_path)
    (result,) = run_study(plan, tmp_path, notebook=notebook, runner=silent, log=lambda _: None)
    assert result.outcome is RunOutcome.FAILED
    assert "without writing metrics.json" in result.error_log.read_text()


def test_missing_notebook_is_a_config_error(tmp_path):
    plan = plan_study("cpu", ["unet"], [0], [0], tmp_path)
    with pytest.raises(ConfigError, match="training notebook .* not found"):
        run_study(plan, tmp_path, notebook=tmp_path / "nope.ipynb", runner=fake_runner)


def test_checkpoint_requeues_the_same_spec():
    # No flag travels: the run folder's checkpoint makes the requeued task resume.
    job = RunJob("runs", runner=fake_runner)
    spec = RunSpec("cpu", "unet", 0, 0)
    delayed = job.checkpoint(spec)
    assert delayed.function is job
    assert delayed.args == (spec,) and delayed.kwargs == {}


def test_submitit_local_job_array(tmp_path, notebook, monkeypatch):
    """The Slurm path (job array of RunJob) on submitit's local executor."""
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    runs = tmp_path / "runs"
    write_fake_run(runs / "cpu/unet/seed_0/fold_0", "unet", profile="cpu")
    plan = plan_study("cpu", ["unet"], [0, 1, 2], [0], runs)
    results = run_study(plan, runs, executor=Executor.SLURM, cluster="local",
                        extra={"fail_model": "none"}, notebook=notebook, runner=fake_runner,
                        log=lambda _: None)
    assert [r.outcome for r in results] == [RunOutcome.SKIPPED, RunOutcome.DONE, RunOutcome.DONE]
    assert all((r.run_dir / "metrics.json").is_file() for r in results)
    assert list((runs / ".submitit").glob("*_log.out"))


def _write_notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        'model = "unet"\nprofile = "cpu"\nseed = 0\nfold = 0\nout_dir = None\n'
        'resume = True\nfail_model = ""')
    params.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell(
        f"import sys\nsys.path.insert(0, {str(TESTS)!r})\nfrom fake_runs import write_fake_run\n"
        "from spineseg_core.training.config import resolve_config\n"
        "if model == fail_model:\n    raise ValueError(f'notebook failed on {model}')\n"
        "write_fake_run(out_dir, model, seed, fold, profile,\n"
        "               epochs=resolve_config(profile, model=model).epochs)")
    nb.cells = [params, body]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


def test_cli_study_through_papermill(tmp_path, capfd):
    """capfd, not capfd: the kernels write to the file descriptors they inherit."""
    nb = _write_notebook(tmp_path / "train.ipynb")
    runs, results = tmp_path / "runs", tmp_path / "results"
    argv = ["study", "--profile", "cpu", "--models", "unet", "miniseg", "--runs-dir", str(runs),
            "--results-dir", str(results), "--notebook", str(nb), "-p", "fail_model", "miniseg"]
    assert main(argv) == 1
    out, err = capfd.readouterr()
    assert "1 run, 0 already finished, 1 failed" in out
    assert "[1/2] unet seed=0 fold=0: started" in out
    assert "without encryption" not in err and "IPKernelApp" not in err  # no kernel noise
    log = runs / "cpu/miniseg/seed_0/fold_0/error.log"
    assert "FAILED miniseg seed=0 fold=0" in out and str(log) in out
    assert "notebook failed on miniseg" in log.read_text()
    assert (runs / "cpu/unet/seed_0/fold_0/notebook.ipynb").is_file()
    assert pd.read_csv(results / "cpu/runs.csv")["model"].tolist() == ["unet"]

    assert main(argv[:-3] + ["--dry-run"]) == 0
    out = capfd.readouterr().out
    assert "finished unet seed=0 fold=0" in out and "new      miniseg" in out
    assert main(["study", "--models", "nonesuch", "--dry-run"]) == 2
    assert "unknown model 'nonesuch'" in capfd.readouterr().err


def test_cli_study_validates_every_run_before_starting(tmp_path, capsys):
    runs = tmp_path / "runs"
    argv = ["study", "--profile", "cpu", "--models", "unet", "--runs-dir", str(runs)]
    assert main(argv + ["--folds", "1"]) == 2
    assert "fold" in capsys.readouterr().err
    assert main(argv + ["-p", "epochs", "-3"]) == 2
    assert "epochs: expected a positive integer" in capsys.readouterr().err
    assert main(argv + ["-p", "nonsense", "1"]) == 2
    assert "unknown parameters ['nonsense']" in capsys.readouterr().err
    assert not runs.exists() or not any(runs.rglob("notebook.ipynb"))


def test_cli_study_several_seeds_end_to_end(tmp_path, capsys):
    """``--seeds`` trains every seed through papermill, then the aggregation reports the
    spread over them (mean ± sd, n_seeds) around the bootstrap's estimate."""
    nb = _write_notebook(tmp_path / "train.ipynb")
    runs, results = tmp_path / "runs", tmp_path / "results"
    assert main(["study", "--profile", "cpu", "--models", "unet", "--seeds", "0", "1", "2",
                 "--runs-dir", str(runs), "--results-dir", str(results),
                 "--notebook", str(nb)]) == 0
    assert "3 run, 0 already finished, 0 failed" in capsys.readouterr().out
    table = pd.read_csv(results / "cpu/runs.csv")
    assert table["seed"].tolist() == [0, 1, 2] and table["dice"].nunique() == 3
    models = pd.read_csv(results / "cpu/models.csv").iloc[0]
    assert models["n_seeds"] == 3 and models["n_runs"] == 3
    assert models["dice_std"] == pytest.approx(table["dice"].std(ddof=1))
    assert models["dice_ci_low"] <= models["dice_point"] <= models["dice_ci_high"]


def test_budget_exception_is_the_configurations_not_the_runners(tmp_path):
    """The study passes no per-model values of its own: the notebook's resolve_config applies
    them (tests/test_budgets.py), so a notebook run outside the study gets the same."""
    from spineseg_core.study.runner import notebook_parameters

    for model in ("miniseg", "unet3d", "danet", "unet"):
        params = notebook_parameters(RunSpec("cpu", model, 0, 0), tmp_path, False)
        assert "overrides" not in params
    mine = notebook_parameters(RunSpec("cpu", "miniseg", 0, 0), tmp_path, False,
                               {"overrides": '{"amp": true}', "lr": 1e-3})
    assert mine["overrides"] == {"amp": True} and mine["lr"] == 1e-3
