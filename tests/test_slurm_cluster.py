"""The study on a real Slurm cluster: the smoke study as one job array, and its faults.

Needs a cluster that ``sinfo`` and ``sbatch`` reach, with the run folders on a filesystem its
nodes share (here: ``scripts/local_slurm.sh up`` on this machine, as ``.ci/run`` does);
without one these tests skip, unless ``SPINESEG_REQUIRE_SLURM=1`` (set by ``.ci/run``) makes
that a failure. The runs ask for no GPU (the smoke profile trains on the CPU).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

REPO = Path(__file__).resolve().parent.parent
MODELS = ["unet", "miniseg", "attention_unet"]
# One CPU thread per run: three tasks share the node, and the same thread count on both
# executors keeps the float sums, hence the results, identical. fp32: under bf16 autocast on an
# AVX512-BF16 CPU (no AMX) one of the three models differed between a Slurm task and a local
# run in the third significant digit of its Dice (0.005501 against 0.005572), while repeated
# local runs agree bit for bit; the cause is not found yet.
COMMON = ["--profile", "smoke", "-p", "threads", "1", "-p", "amp", "false", "--poll-s", "2"]
SLURM = ["--executor", "slurm", "--slurm-cpus", "1", "--slurm-mem-gb", "3"]


def _cluster_problem() -> str | None:
    """Why the study cannot use a Slurm cluster here, or ``None`` if it can."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "no Slurm client here (sbatch, sinfo); start one with scripts/local_slurm.sh up"
    try:
        out = subprocess.run(["sinfo", "--noheader", "--format=%t"], capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"sinfo failed ({exc})"
    if out.returncode != 0:
        return f"no Slurm cluster reachable (sinfo: {out.stderr.strip()[:200]})"
    if not any(s.strip().startswith(("idle", "mix", "alloc")) for s in out.stdout.splitlines()):
        return f"the Slurm cluster has no usable node (sinfo states: {out.stdout.split()})"
    return None


@pytest.fixture(scope="module")
def cluster() -> None:
    problem = _cluster_problem()
    if problem and os.environ.get("SPINESEG_REQUIRE_SLURM"):  # CI: a missing cluster fails
        pytest.fail(problem)
    if problem:
        pytest.skip(problem)


@pytest.fixture
def cache_env(tmp_path_factory) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.setdefault("SPINESEG_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    return env


def _study(args: list[str], env: dict[str, str], timeout: float = 1800) -> tuple[int, str]:
    out = subprocess.run([sys.executable, "-m", "spineseg_core", "study", *args], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=timeout)
    return out.returncode, out.stdout + out.stderr


def _comparable(results: Path, name: str) -> pd.DataFrame:
    """An aggregate table without what legitimately differs between two executions: wall
    times and run folder paths."""
    table = pd.read_csv(results / "smoke" / name)
    varies = ("train_seconds", "test_seconds", "epoch_seconds", "run_dir")
    return table.drop(columns=[c for c in varies if c in table.columns])


def _attempts(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "cluster.json").read_text())["attempts"]


def _epochs(run_dir: Path) -> list[int]:
    return pd.read_csv(run_dir / "history.csv")["epoch"].tolist()


def test_smoke_study_on_slurm_matches_the_local_one(cluster, cache_env, tmp_path):
    local_runs, local_results = tmp_path / "local-runs", tmp_path / "local-results"
    rc, out = _study([*COMMON, "--models", *MODELS, "--runs-dir", str(local_runs),
                      "--results-dir", str(local_results)], cache_env)
    assert rc == 0, out
    assert "epoch 1/1" in out and "without encryption" not in out and "IPKernelApp" not in out

    runs, results = tmp_path / "slurm-runs", tmp_path / "slurm-results"
    rc, out = _study([*COMMON, *SLURM, "--models", *MODELS, "--runs-dir", str(runs),
                      "--results-dir", str(results)], cache_env)
    print(out)
    assert rc == 0, out
    submitted = next(l for l in out.splitlines() if l.startswith("submitted 3 runs"))
    array_id = submitted.split("job array ")[1].split(":")[0]
    assert submitted.endswith(f"tasks {array_id}_0, {array_id}_1, {array_id}_2 "
                              f"(logs in {runs / '.submitit'})")
    # The counts as the array went: pending, running, done, failed, always three runs in all.
    counts = [[int(n.split()[0]) for n in line.split(": ")[1].split(", ")[:4]]
              for line in out.splitlines() if line.startswith(f"job array {array_id}: ")]
    assert all(sum(c) == 3 for c in counts) and any(c[1] > 0 for c in counts)
    assert counts[-1] == [0, 0, 3, 0]
    assert "study smoke: 3 run, 0 already finished, 0 failed" in out

    # Every run finished on the cluster, as a task of that one array.
    for task, model in enumerate(MODELS):
        run_dir = runs / "smoke" / model / "seed_0" / "fold_0"
        (attempt,) = _attempts(run_dir)
        assert (attempt["array_job_id"], attempt["array_task_id"]) == (array_id, str(task))
        assert attempt["job_id"] and attempt["status"] == "new"
        assert (run_dir / "metrics.json").is_file()

    # The aggregate matches the local study's, value for value.
    for name in ("models.csv", "per_class.csv", "per_case.csv.gz", "history.csv", "runs.csv"):
        pd.testing.assert_frame_equal(_comparable(results, name),
                                      _comparable(local_results, name), check_exact=True)


def _task(attempt: dict) -> str:
    """``<array>_<task>``: the task's own job id may be the array's, which names them all."""
    return f"{attempt['array_job_id']}_{attempt['array_task_id']}"


def _mid_training(run_dir: Path) -> dict | None:
    """The run's Slurm attempt if it has finished an epoch (and not its last) and saved its
    checkpoint, else ``None``: ``history.csv`` is written just before ``checkpoint_last.pt``,
    so a requeue between the two finds nothing to resume and starts the run anew."""
    if ((run_dir / "history.csv").is_file() and (run_dir / "cluster.json").is_file()
            and (run_dir / "checkpoint_last.pt").is_file() and _epochs(run_dir)
            and not (run_dir / "metrics.json").exists()):
        return _attempts(run_dir)[-1]
    return None


def _catch_mid_training(actions: dict[Path, Callable[[dict], None]],
                        deadline: float) -> dict[Path, dict]:
    """Watch several runs at once and act on each as soon as it is mid-training.

    The runs train side by side, so each is watched over its own window: waiting for one before
    looking at the other let MiniSeg's five smoke epochs (~15 s) finish while U-Net was still in
    its first (~15 s plus the kernel's start), and the test then waited for an epoch that had
    already gone (CI, stop 16)."""
    caught: dict[Path, dict] = {}
    while len(caught) < len(actions) and time.monotonic() < deadline:
        for run_dir, act in actions.items():
            if run_dir in caught:
                continue
            if (run_dir / "metrics.json").exists():
                raise AssertionError(f"{run_dir}: finished before it was caught mid-training")
            attempt = _mid_training(run_dir)
            if attempt is not None:
                act(attempt)
                caught[run_dir] = attempt
        time.sleep(0.2)
    missed = [str(r) for r in actions if r not in caught]
    assert not missed, f"no epoch within the time allowed: {missed}"
    return caught


def test_requeue_and_cancel_mid_training_then_rerun(cluster, cache_env, tmp_path):
    runs, results = tmp_path / "runs", tmp_path / "results"
    epochs = 5
    argv = [*COMMON, *SLURM, "--models", "unet", "miniseg", "-p", "epochs", str(epochs),
            "--runs-dir", str(runs), "--results-dir", str(results)]
    requeued, cancelled = (runs / "smoke" / m / "seed_0" / "fold_0" for m in ("unet", "miniseg"))
    proc = subprocess.Popen([sys.executable, "-m", "spineseg_core", "study", *argv], cwd=REPO,
                            env=cache_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        queue = ""

        def requeue(attempt: dict) -> None:
            subprocess.run(["scontrol", "requeue", _task(attempt)], check=True)

        def cancel(attempt: dict) -> None:
            nonlocal queue
            queue = subprocess.run(["squeue", "--array"], capture_output=True, text=True).stdout
            subprocess.run(["scancel", _task(attempt)], check=True)

        caught = _catch_mid_training({requeued: requeue, cancelled: cancel},
                                     time.monotonic() + 1200)
        first = caught[requeued]
        out, _ = proc.communicate(timeout=1200)
    finally:
        if proc.poll() is None:
            proc.kill()
    print(queue, out, sep="\n")
    # The cancelled run failed, reported with its Slurm log; the requeued one went on.
    assert proc.returncode == 1, out
    assert "study smoke: 1 run, 0 already finished, 1 failed" in out
    failed = next(l for l in out.splitlines() if l.startswith("FAILED miniseg seed=0 fold=0"))
    log = Path(failed.split("(log: ")[1].rstrip(")"))
    assert log.is_file() and log.parent == runs / ".submitit"
    assert "ended without a result" in (cancelled / "error.log").read_text()

    # The requeued run started again on the cluster and resumed from its checkpoint.
    attempts = _attempts(requeued)
    assert [a["status"] for a in attempts] == ["new", "resume"]
    assert [a["restart_count"] for a in attempts] == [first["restart_count"], "1"]
    assert _epochs(requeued) == list(range(1, epochs + 1))
    assert (requeued / "metrics.json").is_file() and not (requeued / "error.log").exists()

    # The same command again: the finished run is skipped, the cancelled one resumes.
    rc, out = _study(argv, cache_env)
    print(out)
    assert rc == 0, out
    assert "study smoke: 1 run, 1 already finished, 0 failed" in out
    assert len(_attempts(requeued)) == 2
    assert [a["status"] for a in _attempts(cancelled)] == ["new", "resume"]
    assert _epochs(cancelled) == list(range(1, epochs + 1))
    assert not (cancelled / "error.log").exists()
