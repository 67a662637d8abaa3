"""The study's Slurm options, their checks, the array monitor and the progress lines, without
a cluster (tests/test_slurm_cluster.py runs the study on one)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import submitit

from fake_runs import fake_runner
from spineseg_core.cli import main
from spineseg_core.errors import ConfigError
from spineseg_core.study import progress, runner as study
from spineseg_core.study.runner import RunOutcome, RunResult, RunSpec, RunStatus, plan_study, run_study
from spineseg_core.study.slurm import (
    Partitions,
    SlurmOptions,
    check_cluster,
    check_options,
    default_gpus,
    parse_sbatch_options,
)

SINFO = "debug*|(null)\ngpu|gpu:a100:4(S:0-1)\ngpu|gpu:a100:2\nbig|(null)\n"


def _sbatch_lines(tmp_path: Path, options: SlurmOptions, monkeypatch) -> list[str]:
    """The #SBATCH lines submitit writes for ``options`` (srun faked present)."""
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 2))
    executor = submitit.AutoExecutor(folder=tmp_path, cluster="slurm")
    executor.update_parameters(**options.executor_parameters("spineseg-study"))
    text = executor._executor._make_submission_file_text("python -m x", "uuid")
    return [line for line in text.splitlines() if line.startswith("#SBATCH")]


def test_sbatch_lines_for_cpu_gpu_gres_and_pass_through(tmp_path, monkeypatch):
    cpu = _sbatch_lines(tmp_path, SlurmOptions(gpus=0, cpus_per_task=2, mem_gb=4,
                                               partition="debug"), monkeypatch)
    assert not any(line.startswith(("#SBATCH --gpus", "#SBATCH --gres")) for line in cpu)
    assert {"#SBATCH --cpus-per-task=2", "#SBATCH --mem=4GB", "#SBATCH --partition=debug",
            "#SBATCH --time=240"} <= set(cpu)
    gpu = _sbatch_lines(tmp_path, SlurmOptions(), monkeypatch)  # the defaults: one GPU
    assert "#SBATCH --gpus-per-node=1" in gpu
    named = _sbatch_lines(tmp_path, SlurmOptions(
        gpus=2, gres="gpu:a100", account="lab", qos="high", constraint="a100|h100",
        sbatch=parse_sbatch_options(["mail-type=END", "--exclusive"])), monkeypatch)
    assert not any("gpus-per-node" in line for line in named)
    assert {"#SBATCH --gres=gpu:a100:2", "#SBATCH --account=lab", "#SBATCH --qos=high",
            "#SBATCH --constraint='a100|h100'", "#SBATCH --mail-type=END",
            "#SBATCH --exclusive"} <= set(named)


def test_option_checks_name_the_option():
    assert default_gpus("smoke") == default_gpus("cpu") == 0 and default_gpus("paper") == 1
    check_options(SlurmOptions(gpus=0), "cpu")
    check_options(SlurmOptions(gpus=4, gres="gpu"), "paper")
    with pytest.raises(ConfigError, match=r"^--slurm-gpus 1: the cpu profile trains on the CPU"):
        check_options(SlurmOptions(gpus=1), "cpu")
    with pytest.raises(ConfigError, match=r"^--slurm-gres gpu: .* --slurm-gpus is 0"):
        check_options(SlurmOptions(gpus=0, gres="gpu"), "paper")
    with pytest.raises(ConfigError, match=r"^--slurm-cpus 0: expected 1 or more"):
        check_options(SlurmOptions(gpus=0, cpus_per_task=0), "cpu")
    with pytest.raises(ConfigError, match=r"^-p device cuda: .* --slurm-gpus 0"):
        check_options(SlurmOptions(gpus=0), "paper", device="cuda")
    with pytest.raises(ConfigError, match=r"^--slurm-sbatch '=x': expected OPTION"):
        parse_sbatch_options(["=x"])


def test_checks_against_sinfo():
    parts = Partitions.parse(SINFO)
    assert parts.default == "debug"
    assert parts.gres == {"debug": set(), "big": set(),
                          "gpu": {"gpu:a100:4(S:0-1)", "gpu:a100:2"}}
    check_cluster(SlurmOptions(gpus=0), parts)
    check_cluster(SlurmOptions(gpus=0, partition="big"), parts)
    check_cluster(SlurmOptions(gpus=1, partition="gpu"), parts)
    check_cluster(SlurmOptions(gpus=2, gres="gpu:a100", partition="gpu"), parts)
    with pytest.raises(ConfigError, match=r"^--slurm-partition gpus: no such partition on this "
                                          r"cluster \(sinfo lists: big, debug, gpu\)"):
        check_cluster(SlurmOptions(gpus=0, partition="gpus"), parts)
    # The case: one GPU asked of the default CPU partition (sbatch: invalid gres).
    with pytest.raises(ConfigError, match=r"^--slurm-gpus 1: partition debug has no such GPU "
                                          r"\(its nodes' generic resources: none\)"):
        check_cluster(SlurmOptions(gpus=1), parts)
    with pytest.raises(ConfigError, match=r"^--slurm-gres gpu:v100: partition gpu"):
        check_cluster(SlurmOptions(gpus=1, gres="gpu:v100", partition="gpu"), parts)


def test_cli_rejects_gpus_for_the_cpu_profile_before_planning_anything(tmp_path, capsys):
    argv = ["study", "--profile", "smoke", "--models", "unet", "--runs-dir", str(tmp_path),
            "--executor", "slurm", "--slurm-gpus", "1", "--dry-run"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--slurm-gpus 1: the smoke profile trains on the CPU" in err[0]


def _history(run_dir: Path, seconds: list[float]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"epoch": range(1, len(seconds) + 1), "dice": [0.5] * len(seconds),
                  "epoch_seconds": seconds}).to_csv(run_dir / "history.csv", index=False)


def test_run_progress_lines_and_etas(tmp_path, monkeypatch):
    run = progress.RunProgress(tmp_path, "[1/2] unet", epochs=4)
    assert run.poll() == []                    # no history yet: nothing seen
    _history(tmp_path, [10.0])
    assert run.poll() == [(1, "[1/2] unet: epoch 1/4 (10 s, val dice 0.500), run ETA 00:30")]
    _history(tmp_path, [10.0, 20.0, 30.0])     # two epochs since: mean 15 s, then 20 s
    assert [line for _, line in run.poll()] == [
        "[1/2] unet: epoch 2/4 (20 s, val dice 0.500), run ETA 00:30",
        "[1/2] unet: epoch 3/4 (30 s, val dice 0.500), run ETA 00:20"]
    assert run.poll() == []
    resumed = progress.RunProgress(tmp_path, "x", epochs=4)
    resumed.poll()                             # a resumed run's earlier epochs are not news
    assert resumed.poll() == []

    now = iter([100.0, 160.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(now))
    clock = progress.StudyClock(epochs_left=10)  # starts at t=100
    assert clock.eta() is None                 # no epoch trained yet
    clock.advance(3)                           # 3 epochs in 60 s: 20 s each, 7 left
    assert clock.epochs_left == 7 and clock.line() == "study ETA 02:20"


def test_local_study_prints_every_epoch_with_etas(tmp_path):
    from test_study import _write_notebook

    notebook = _write_notebook(tmp_path / "train.ipynb")
    plan = plan_study("cpu", ["unet"], [0, 1], [0], tmp_path / "runs",
                      epochs_of=lambda spec: 3)  # fake_runner writes 3 epochs of history
    lines: list[str] = []
    results = run_study(plan, tmp_path / "runs", notebook=notebook, runner=fake_runner,
                        poll_s=0.01, log=lines.append)
    assert [r.outcome for r in results] == [RunOutcome.DONE, RunOutcome.DONE]
    epochs = [l for l in lines if ": epoch " in l]
    assert [l.split(": epoch ")[1].split(" ")[0] for l in epochs] == ["1/3", "2/3", "3/3"] * 2
    assert all("run ETA" in l and "study ETA" in l for l in epochs)
    assert lines[0] == "[1/2] unet seed=0 fold=0: started"
    assert epochs[-1].endswith("run ETA 00:00, study ETA 00:00")


class _FakeTask:
    """A submitit job of the array: a result file appears, or the task vanishes."""

    def __init__(self, folder: Path, job_id: str, result: RunResult | None) -> None:
        self.job_id = job_id
        self._result = result
        self.paths = SimpleNamespace(result_pickle=folder / f"{job_id}_result.pkl",
                                     stderr=folder / f"{job_id}_0_log.err",
                                     stdout=folder / f"{job_id}_0_log.out")

    def result(self) -> RunResult:
        return self._result

    def done(self) -> bool:
        return self.paths.result_pickle.exists()


def test_slurm_monitor_counts_and_reports_a_vanished_task_with_its_log(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    folder = runs / ".submitit"
    folder.mkdir(parents=True)
    specs = [RunSpec("smoke", "unet", 0, 0, epochs=2), RunSpec("smoke", "miniseg", 0, 0, epochs=2)]
    done = RunResult(specs[0], specs[0].run_dir(runs), RunOutcome.DONE, RunStatus.NEW)
    tasks = [_FakeTask(folder, "7_0", done), _FakeTask(folder, "7_1", None)]
    monkeypatch.setattr(study, "_submit", lambda *a: tasks)
    # What squeue shows at each poll: both pending; both running (unet's epoch 1 written);
    # unet has its result; then miniseg has vanished (scancel) for three polls.
    queue = iter([{"7_0": "PENDING", "7_1": "PENDING"}, {"7_0": "RUNNING", "7_1": "RUNNING"},
                  {"7_1": "RUNNING"}, {}, {}, {}])

    def squeue(array_id):
        assert array_id == "7"
        states = next(queue)
        if states == {"7_1": "RUNNING"}:
            tasks[0].paths.result_pickle.write_bytes(b"")
        if states.get("7_0") == "RUNNING":
            _history(specs[0].run_dir(runs), [4.0])
        return states

    monkeypatch.setattr(study, "queue_states", squeue)
    lines: list[str] = []
    results = study._run_submitit(specs, study.RunJob(runs), folder, "slurm", SlurmOptions(),
                                  lines.append, poll_s=0)
    assert [r.outcome for r in results] == [RunOutcome.DONE, RunOutcome.FAILED]
    assert results[1].error_log == tasks[1].paths.stderr
    assert "last RUNNING" in results[1].error
    error_log = (specs[1].run_dir(runs) / "error.log").read_text()
    assert "Slurm task 7_1 ended without a result" in error_log
    assert str(tasks[1].paths.stderr) in error_log
    counts = [l.split(": ", 1)[1].split(", study")[0] for l in lines if l.startswith("job array 7")]
    assert counts == ["2 pending, 0 running, 0 done, 0 failed",
                      "0 pending, 2 running, 0 done, 0 failed",
                      "0 pending, 1 running, 1 done, 0 failed",
                      "0 pending, 0 running, 1 done, 1 failed"]
    assert any(l.startswith("[7_0] unet seed=0 fold=0: epoch 1/2 (4 s") for l in lines)
    assert f"[7_1] miniseg seed=0 fold=0: failed (task ended without a result (last RUNNING); " \
           f"log: {tasks[1].paths.stderr})" in lines


def test_attempts_on_slurm_are_recorded(tmp_path, monkeypatch):
    spec = RunSpec("smoke", "unet", 0, 0, epochs=1)
    run_dir = spec.run_dir(tmp_path)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert study.record_attempt(run_dir, spec) is None and not run_dir.exists()
    monkeypatch.setenv("SLURM_JOB_ID", "12")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "11")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    study.record_attempt(run_dir, spec)
    (run_dir / "checkpoint_last.pt").write_bytes(b"x")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    study.record_attempt(run_dir, spec)
    attempts = json.loads((run_dir / "cluster.json").read_text())["attempts"]
    assert [(a["array_job_id"], a["array_task_id"], a["restart_count"], a["status"])
            for a in attempts] == [("11", "1", "0", "new"), ("11", "1", "1", "resume")]


def test_a_run_still_queued_from_an_earlier_array_is_not_submitted_twice(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    folder = runs / ".submitit"
    folder.mkdir(parents=True)
    specs = [RunSpec("smoke", "unet", 0, 0), RunSpec("smoke", "miniseg", 0, 0)]
    (folder / "arrays.json").write_text(json.dumps(
        {"5": [str(s.run_dir(runs)) for s in specs]}))
    monkeypatch.setattr(study, "queue_states", lambda array_id: {"5_1": "RUNNING"})
    monkeypatch.setattr(study, "_submit", lambda *a: pytest.fail("submitted"))
    with pytest.raises(ConfigError, match=r"^miniseg seed=0 fold=0 is still on the cluster as "
                                          r"task 5_1 \(RUNNING\); .*\(scancel 5_1\)"):
        study._run_submitit(specs, study.RunJob(runs), folder, "slurm", SlurmOptions(),
                            print, poll_s=0)
    # Only unet to do: task 5_0 has left the queue, so it is submitted.
    submitted = []
    monkeypatch.setattr(study, "_submit", lambda specs, *a: submitted.extend(specs) or [])
    with pytest.raises(IndexError):  # no task came back from the fake submission
        study._run_submitit(specs[:1], study.RunJob(runs), folder, "slurm", SlurmOptions(),
                            print, poll_s=0)
    assert submitted == specs[:1]
