"""The study: many training runs of ``notebooks/train.ipynb``, one per (model, seed, fold, loss).

Each run is the training notebook executed by papermill into its run folder
(``<runs_dir>/<group>/<model>/seed_<s>/fold_<f>/notebook.ipynb``, see CONTRIBUTING.md). The
folder's content says what is left to do: ``metrics.json`` means finished (skipped) — unless
the run's configuration now asks for more epochs than it completed, when it is extended from
its last checkpoint —, ``checkpoint_last.pt`` without it means interrupted (resumed with
``resume=True``), nothing means new. A failing run writes its traceback to ``error.log`` and the
others still run.

Loss comparison: ``losses=("ce", "dice")`` runs every model once per loss, each loss in its
own group ``<profile>-loss-<loss>`` (the notebook gets ``loss=<loss>``), so those runs never
mix with the main runs of ``<profile>``, which use the profile's own loss.

Beyond one machine, :func:`run_study` with ``executor=Executor.SLURM`` submits the same
:func:`execute_run` as one submitit job array (resources: :class:`~spineseg_core.study.slurm.SlurmOptions`)
and follows it with ``squeue``, printing how many runs are pending, running, done or failed.
A run killed at its time limit or preempted is requeued by :meth:`RunJob.checkpoint`, one
requeued by hand (``scontrol requeue``) simply starts again; either way it resumes from its
last checkpoint. A task that ends without a result (``scancel``, out of memory) is reported
with its Slurm log and the others go on; running the same study again finishes it. Each
attempt on the cluster is recorded in the run folder's ``cluster.json``.

Both executors print each run's epochs as they finish, with the run's and the study's ETA
(:mod:`spineseg_core.study.progress`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io as _io
import json
import os
import signal
import socket
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from spineseg_core import io
from spineseg_core.errors import ConfigError, SpinesegError
from spineseg_core.fingerprint import REPO
from spineseg_core.study.progress import EpochWatcher, RunProgress, StudyClock, epochs_done, format_eta
from spineseg_core.study.records import has_record, write_record
from spineseg_core.study.slurm import PENDING_STATES, SlurmOptions, queue_states
from spineseg_core.training.run_folder import RunFolder

REPO_ROOT = REPO
DEFAULT_NOTEBOOK = REPO_ROOT / "notebooks" / "train.ipynb"
RESERVED_PARAMETERS = frozenset({"model", "profile", "seed", "fold", "out_dir", "resume", "loss"})
"""Notebook parameters the study sets itself; ``extra`` may not override them."""

NOTEBOOK_PARAMETERS = frozenset({"model", "profile", "data_dir", "image_size", "epochs",
                                 "batch_size", "lr", "loss", "seed", "fold", "out_dir", "device",
                                 "num_workers", "resume", "overrides"})
"""Names in the parameters cell of ``notebooks/train.ipynb``; any other training parameter
travels inside its ``overrides`` dictionary."""



class RunStatus(StrEnum):
    """What a run folder says about its run before the study starts it."""

    FINISHED = "finished"
    RECORDED = "recorded"  # its committed record is present (``--records-dir``)
    RESUME = "resume"
    NEW = "new"


class RunOutcome(StrEnum):
    """What happened to a run during this study."""

    SKIPPED = "skipped"
    DONE = "done"
    FAILED = "failed"


class Executor(StrEnum):
    """Where the runs execute: one after the other here, or as a Slurm job array."""

    LOCAL = "local"
    SLURM = "slurm"


def group_name(profile: str, loss: str | None = None, variant: str | None = None) -> str:
    """Folder under the runs directory of a profile's runs: ``cpu``, ``cpu-loss-ce``, or with a
    variant (runs that change a parameter for a side study) ``cpu-res256``."""
    name = profile if loss is None else f"{profile}-loss-{loss}"
    return name if not variant else f"{name}-{variant}"


@dataclass(frozen=True)
class RunSpec:
    """One run of the study; ``loss=None`` means the profile's own loss. ``epochs`` is the
    run's target: a finished run that completed fewer is extended (``None``: any count)."""

    profile: str
    model: str
    seed: int
    fold: int
    loss: str | None = None
    epochs: int | None = None
    variant: str | None = None

    @property
    def group(self) -> str:
        return group_name(self.profile, self.loss, self.variant)

    def run_dir(self, runs_dir: str | Path) -> Path:
        """The run folder of the run-folder contract."""
        return Path(runs_dir) / self.group / self.model / f"seed_{self.seed}" / f"fold_{self.fold}"

    def label(self) -> str:
        loss = f" loss={self.loss}" if self.loss else ""
        return f"{self.model} seed={self.seed} fold={self.fold}{loss}"


def _epochs_completed(run_dir: Path) -> int | None:
    try:
        return int(RunFolder(run_dir).load_metrics()["epochs_completed"])
    except (SpinesegError, OSError, ValueError, KeyError, TypeError):
        return None


def run_status(run_dir: str | Path, epochs: int | None = None) -> RunStatus:
    """Finished, interrupted (to resume) or new, read from the files of ``run_dir``.

    With ``epochs``, a finished run that completed fewer (per its ``metrics.json``) counts as
    one to resume from its last checkpoint, or as new if it has none."""
    run_dir = Path(run_dir)
    if RunFolder(run_dir).is_finished():
        done = _epochs_completed(run_dir)
        if epochs is None or done is None or done >= epochs:
            return RunStatus.FINISHED
    if RunFolder(run_dir).has_checkpoint():
        return RunStatus.RESUME
    return RunStatus.NEW


@dataclass(frozen=True)
class PlannedRun:
    """A run with its folder and its status before the study."""

    spec: RunSpec
    run_dir: Path
    status: RunStatus


def plan_study(profile: str, models: Sequence[str], seeds: Sequence[int], folds: Sequence[int],
               runs_dir: str | Path, losses: Sequence[str] | None = None,
               epochs_of: Callable[[RunSpec], int | None] | None = None,
               variant: str | None = None,
               records_dir: str | Path | None = None) -> list[PlannedRun]:
    """Every (loss, model, seed, fold) of the study with its current status, in run order.

    ``epochs_of(spec)`` gives each run's epoch target (its resolved configuration's), so a
    finished run with fewer epochs is planned as one to extend; ``None`` for a run whose
    budget is in steps (its epochs depend on its data; a finished run is finished). A run whose record is in
    ``records_dir`` (:mod:`spineseg_core.study.records`) is planned as recorded: done."""
    if variant is not None and (not variant or not all(c.isalnum() or c in "_-" for c in variant)
                                or variant.startswith(("loss", "-"))):
        raise ConfigError(f"--variant {variant!r}: expected letters, digits, '_' or '-', not "
                          "starting with 'loss' or '-' (it names the runs' folder)")
    if not models:
        raise ConfigError("no models: give at least one model name")
    if not seeds or not folds:
        raise ConfigError("seeds and folds must each hold at least one value")
    for name, values in (("models", models), ("seeds", seeds), ("folds", folds),
                         ("losses", losses or ())):
        if len(set(values)) != len(values):
            raise ConfigError(f"{name} has repeated values: {list(values)}")
    plan = []
    for loss in (losses or [None]):
        for model in models:
            for seed in seeds:
                for fold in folds:
                    spec = RunSpec(profile, model, int(seed), int(fold), loss, variant=variant)
                    target = epochs_of(spec) if epochs_of is not None else None
                    if target is not None:
                        spec = dataclasses.replace(spec, epochs=int(target))
                    run_dir = spec.run_dir(runs_dir)
                    status = run_status(run_dir, spec.epochs)
                    if (records_dir is not None and status is not RunStatus.FINISHED
                            and has_record(spec.run_dir(records_dir))):
                        status = RunStatus.RECORDED
                    plan.append(PlannedRun(spec, run_dir, status))
    return plan


def notebook_parameter_names(notebook: str | Path) -> frozenset[str]:
    """Names in the ``parameters`` cell of ``notebook`` (read, not executed)."""
    import papermill

    try:
        return frozenset(papermill.inspect_notebook(str(notebook)))
    except Exception as exc:  # noqa: BLE001 - any unreadable notebook is a user error here
        raise ConfigError(f"{notebook}: cannot read its parameters cell ({exc})") from None


def notebook_parameters(spec: RunSpec, run_dir: Path, resume: bool,
                        extra: Mapping[str, Any] | None = None,
                        accepted: frozenset[str] = NOTEBOOK_PARAMETERS) -> dict[str, Any]:
    """The papermill parameters of one run: the extra ones, then the run's own.

    An extra name the notebook's parameters cell lacks (``accepted``) but that is a training
    parameter travels in the notebook's ``overrides`` dictionary; any other name is an error,
    not a value papermill would silently drop. The model's budget exception is not passed: the
    notebook's :func:`~spineseg_core.training.config.resolve_config` applies it, as every entry
    point's does.
    """
    extra = dict(extra or {})
    clash = sorted(RESERVED_PARAMETERS & extra.keys())
    if clash:
        raise ConfigError(f"parameters {clash} are set by the study itself "
                          "(use --models/--seeds/--folds/--losses instead)")
    from spineseg_core.training.config import PARAMETERS, parse_mapping

    if "overrides" in extra:
        extra["overrides"] = parse_mapping("overrides", extra["overrides"])
    rest = {k: extra.pop(k) for k in sorted(set(extra) - accepted)}
    unknown = sorted(set(rest) - set(PARAMETERS)) if "overrides" in accepted else sorted(rest)
    if unknown:
        valid = sorted(accepted | (set(PARAMETERS) if "overrides" in accepted else set()))
        raise ConfigError(f"unknown parameters {unknown}; valid: {', '.join(valid)}")
    if rest:
        extra["overrides"] = {**extra.get("overrides", {}), **rest}
    params = {**extra, "model": spec.model, "profile": spec.profile, "seed": spec.seed,
              "fold": spec.fold, "out_dir": str(run_dir), "resume": resume}
    if spec.loss is not None:
        params["loss"] = spec.loss
    return params


Runner = Callable[[Path, Path, dict[str, Any], Path], None]
"""``runner(notebook, output_notebook, parameters, cwd)`` executes one run."""


def papermill_runner(notebook: Path, output: Path, parameters: dict[str, Any], cwd: Path) -> None:
    """Execute ``notebook`` with papermill into ``output`` (kernel ``python3``).

    The kernel talks to papermill over Unix sockets in a private temporary folder (IPC
    transport) rather than over localhost TCP, where ipykernel warns that anyone on the
    machine could read the traffic: nothing leaves the process tree, and no warning is
    printed for every run. The kernel application's own log is kept to critical messages:
    jupyter_client interrupts the kernel before shutting it down, which it otherwise logs as
    an error ("KeyboardInterrupt caught in kernel") when the interrupt lands mid-message. A
    failing cell still fails the run, with its traceback in ``error.log``."""
    import papermill
    from traitlets.config import Config

    with tempfile.TemporaryDirectory(prefix="spineseg-kernel-") as sockets:
        config = Config({"KernelManager": {"transport": "ipc",
                                           "ip": str(Path(sockets) / "kernel")}})
        papermill.execute_notebook(str(notebook), str(output), parameters=parameters,
                                   kernel_name="python3", cwd=str(cwd), progress_bar=False,
                                   log_output=False, config=config,
                                   extra_arguments=["--IPKernelApp.log_level=CRITICAL"])


@dataclass(frozen=True)
class RunResult:
    """What one run did in this study; ``error_log`` is set when it failed."""

    spec: RunSpec
    run_dir: Path
    outcome: RunOutcome
    status_before: RunStatus
    seconds: float = 0.0
    error_log: Path | None = None
    error: str = ""


def execute_run(spec: RunSpec, runs_dir: str | Path, *, extra: Mapping[str, Any] | None = None,
                notebook: str | Path = DEFAULT_NOTEBOOK, runner: Runner = papermill_runner,
                cwd: str | Path | None = None) -> RunResult:
    """Run ``spec`` unless finished; resume it if interrupted; never raise for a failing run.

    The status is read from the run folder at the start of every attempt, so a requeued job
    resumes from the checkpoint its previous attempt left.
    """
    run_dir = spec.run_dir(runs_dir)
    status = run_status(run_dir, spec.epochs)
    if status is RunStatus.FINISHED:
        return RunResult(spec, run_dir, RunOutcome.SKIPPED, status)
    run_dir.mkdir(parents=True, exist_ok=True)
    error_log = RunFolder(run_dir).error_log
    start = time.perf_counter()
    try:
        params = notebook_parameters(spec, run_dir, status is RunStatus.RESUME, extra,
                                     notebook_parameter_names(notebook))
        runner(Path(notebook), RunFolder(run_dir).notebook, params, Path(cwd or REPO_ROOT))
        if not RunFolder(run_dir).is_finished():
            raise SpinesegError(f"{run_dir}: the notebook ended without writing "
                                f"{RunFolder(run_dir).metrics.name}")
    except Exception as exc:  # noqa: BLE001 - every failure is reported, the study goes on
        text = f"{spec.label()}\nrun folder: {run_dir}\n\n{traceback.format_exc()}"
        error_log.write_text(text)
        return RunResult(spec, run_dir, RunOutcome.FAILED, status, time.perf_counter() - start,
                         error_log, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    if error_log.exists():
        error_log.unlink()
    return RunResult(spec, run_dir, RunOutcome.DONE, status, time.perf_counter() - start)


try:
    from submitit.helpers import Checkpointable, DelayedSubmission
except ImportError:  # pragma: no cover - submitit is a dependency; keep local runs working
    Checkpointable = object  # type: ignore[assignment,misc]
    DelayedSubmission = None  # type: ignore[assignment,misc]


SLURM_ATTEMPT_VARIABLES = {"job_id": "SLURM_JOB_ID", "array_job_id": "SLURM_ARRAY_JOB_ID",
                           "array_task_id": "SLURM_ARRAY_TASK_ID",
                           "restart_count": "SLURM_RESTART_COUNT",
                           "partition": "SLURM_JOB_PARTITION", "node": "SLURMD_NODENAME"}
"""What ``cluster.json`` keeps of each attempt, from Slurm's job environment."""

ENDED_BY_SLURM_WAIT_S = 300
"""How long a task Slurm sent SIGTERM waits for its SIGKILL instead of returning a result."""


def record_attempt(run_dir: Path, spec: RunSpec) -> dict[str, Any] | None:
    """Append this Slurm task to the run folder's ``cluster.json`` (``None`` and nothing
    written outside Slurm): job ids, restart count, node, and whether it starts the run anew
    or resumes it."""
    if "SLURM_JOB_ID" not in os.environ:
        return None
    attempt: dict[str, Any] = {k: os.environ.get(v) for k, v in SLURM_ATTEMPT_VARIABLES.items()}
    attempt.update(host=socket.gethostname(), status=str(run_status(run_dir, spec.epochs)),
                   started=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    path = RunFolder(run_dir).cluster
    try:
        attempts = json.loads(path.read_text())["attempts"]
    except (OSError, ValueError, KeyError, TypeError):
        attempts = []
    run_dir.mkdir(parents=True, exist_ok=True)
    io.write_json(path, {"scheduler": "slurm", "attempts": [*attempts, attempt]})
    return attempt


class RunJob(Checkpointable):  # type: ignore[misc,valid-type]
    """One array task: :func:`execute_run` on one spec, requeued on timeout or preemption.

    submitit calls :meth:`checkpoint` when Slurm signals the time limit or a preemption; it
    resubmits the same spec. The run folder's ``checkpoint_last.pt``
    then makes :func:`execute_run` pass ``resume=True`` to the notebook.

    On Slurm each attempt is recorded (:func:`record_attempt`). When Slurm ends the task
    (``scancel``, ``scontrol requeue``, preemption) it sends SIGTERM to every process of the
    task, so the notebook's kernel dies and :func:`execute_run` returns a failure; that is no
    result of the run, so the task then waits for Slurm's SIGKILL rather than return it
    (submitit would store it as the task's outcome, and a requeued task would look failed).
    """

    def __init__(self, runs_dir: str | Path, extra: Mapping[str, Any] | None = None,
                 notebook: str | Path = DEFAULT_NOTEBOOK, runner: Runner = papermill_runner,
                 cwd: str | Path | None = None) -> None:
        self.runs_dir = Path(runs_dir)
        self.extra = dict(extra or {})
        self.notebook = Path(notebook)
        self.runner = runner
        self.cwd = Path(cwd or REPO_ROOT)

    def _execute(self, spec: RunSpec) -> RunResult:
        return execute_run(spec, self.runs_dir, extra=self.extra, notebook=self.notebook,
                           runner=self.runner, cwd=self.cwd)

    def __call__(self, spec: RunSpec) -> RunResult:
        if record_attempt(spec.run_dir(self.runs_dir), spec) is None:
            return self._execute(spec)
        ended = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: ended.set())
        try:
            result = self._execute(spec)
        finally:
            signal.signal(signal.SIGTERM, previous)
        if ended.is_set():
            print(f"{spec.label()}: Slurm is ending this task; waiting for it, not returning "
                  f"a result ({result.outcome})", flush=True)
            time.sleep(ENDED_BY_SLURM_WAIT_S)
        return result

    def checkpoint(self, spec: RunSpec) -> Any:
        # The resubmitted call needs no flag: the run folder's checkpoint says it resumes.
        return DelayedSubmission(self, spec)


def _epochs_left(specs: Sequence[RunSpec], runs_dir: Path) -> int | None:
    """Epochs still to train over ``specs`` (``None`` if a run's target is unknown)."""
    if any(spec.epochs is None for spec in specs):
        return None
    return sum(max(0, int(spec.epochs) - epochs_done(spec.run_dir(runs_dir)))  # type: ignore[arg-type]
               for spec in specs)


def _run_local(specs: Sequence[RunSpec], job: RunJob, log: Callable[[str], None],
               poll_s: float, on_result: Callable[[RunResult], None] = lambda r: None
               ) -> list[RunResult]:
    results = []
    clock = StudyClock(_epochs_left(specs, job.runs_dir))
    for i, spec in enumerate(specs, 1):
        label = f"[{i}/{len(specs)}] {spec.label()}"
        run_dir = spec.run_dir(job.runs_dir)
        status = run_status(run_dir, spec.epochs)
        log(f"{label}: {'resumed' if status is RunStatus.RESUME else 'started'}")
        with EpochWatcher(RunProgress(run_dir, label, spec.epochs), clock, log, poll_s):
            result = job(spec)
        clock.epochs_left = _epochs_left(specs[i:], job.runs_dir)
        log(f"{label}: {result.outcome} in {format_eta(result.seconds)}"
            + (f", {clock.line()}" if i < len(specs) else ""))
        results.append(result)
        on_result(result)
    return results


def _failed(spec: RunSpec, runs_dir: Path, message: str, log_path: Path,
            error: str) -> RunResult:
    """A run whose task ended without a result: ``error.log`` says so and points at the
    Slurm log; the result names that log."""
    run_dir = spec.run_dir(runs_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    io.write_text(RunFolder(run_dir).error_log, f"{spec.label()}\nrun folder: {run_dir}\n\n{message}\n")
    return RunResult(spec, run_dir, RunOutcome.FAILED, run_status(run_dir, spec.epochs),
                     error_log=log_path, error=error)


def _task_result(spec: RunSpec, sjob: Any, runs_dir: Path) -> RunResult:
    """The result a finished task returned, or a failure naming its Slurm log."""
    try:
        return sjob.result()
    except Exception as exc:  # noqa: BLE001 - the task raised outside execute_run
        return _failed(spec, runs_dir, f"submitit job {sjob.job_id}\n\n{exc}",
                       Path(sjob.paths.stderr), type(exc).__name__)


MISSING_POLLS = 3
"""Polls a task may be missing from ``squeue`` without a result before it counts as failed
(a result file on a shared filesystem can lag behind the end of the task)."""


def _unavailable(cluster: str, exc: BaseException) -> ConfigError:
    return ConfigError(f"the {cluster} executor is unavailable here ({exc}); "
                       "use --executor local")


def _submit(specs: Sequence[RunSpec], job: RunJob, folder: Path, cluster: str,
            options: SlurmOptions) -> list[Any]:
    """Submit ``specs`` as one job array; a rejection is one :class:`ConfigError` line."""
    import submitit
    from submitit.core.utils import FailedJobError

    try:
        executor = submitit.AutoExecutor(folder=folder, cluster=cluster,
                                         slurm_max_num_timeout=options.max_num_timeout)
        executor.update_parameters(**options.executor_parameters("spineseg-study"))
    except (RuntimeError, OSError, ValueError) as exc:
        raise _unavailable(cluster, exc) from None
    try:
        with contextlib.redirect_stderr(_io.StringIO()):  # submitit echoes sbatch's error
            return executor.map_array(job, list(specs))
    except FailedJobError as exc:
        reason = "; ".join(line.removeprefix("sbatch: error: ")
                           for line in str(exc).splitlines() if line.strip()) or "no reason given"
        raise ConfigError(f"sbatch rejected the job array: {reason} (check --slurm-partition, "
                          "--slurm-gpus/--slurm-gres, --slurm-account, --slurm-qos, "
                          "--slurm-constraint and --slurm-sbatch)") from None
    except (RuntimeError, OSError, ValueError) as exc:
        raise _unavailable(cluster, exc) from None


ARRAYS_RECORD = "arrays.json"
"""In the submitit folder: ``{array id: [run folder of task 0, task 1, ...]}``."""


def _check_not_queued(specs: Sequence[RunSpec], runs_dir: Path, folder: Path) -> None:
    """Refuse to submit a run that a job array of an earlier study still has queued or
    running (a study stopped while it followed its array leaves the array going): two tasks
    would train into the same run folder."""
    try:
        arrays = json.loads((folder / ARRAYS_RECORD).read_text())
    except (OSError, ValueError):
        return
    todo = {str(spec.run_dir(runs_dir)): spec for spec in specs}
    for array_id, run_dirs in arrays.items():
        states = queue_states(array_id) or {}
        for task, run_dir in enumerate(run_dirs):
            state = states.get(f"{array_id}_{task}")
            if state and run_dir in todo:
                raise ConfigError(
                    f"{todo[run_dir].label()} is still on the cluster as task {array_id}_{task} "
                    f"({state}); wait for it to end (squeue -j {array_id}) or cancel it "
                    f"(scancel {array_id}_{task}), then run the study again")


def _run_submitit(specs: Sequence[RunSpec], job: RunJob, folder: Path, cluster: str,
                  options: SlurmOptions, log: Callable[[str], None],
                  poll_s: float, on_result: Callable[[RunResult], None] = lambda r: None
                  ) -> list[RunResult]:
    on_slurm = cluster == "slurm"
    if on_slurm:
        _check_not_queued(specs, job.runs_dir, folder)
    jobs = _submit(specs, job, folder, cluster, options)
    array_id = str(jobs[0].job_id).split("_")[0]
    try:
        arrays = json.loads((folder / ARRAYS_RECORD).read_text())
    except (OSError, ValueError):
        arrays = {}
    arrays[array_id] = [str(spec.run_dir(job.runs_dir)) for spec in specs]
    io.write_json(folder / ARRAYS_RECORD, arrays)
    log(f"submitted {len(jobs)} runs as {cluster} job array {array_id}: tasks "
        f"{', '.join(str(j.job_id) for j in jobs)} (logs in {folder})")
    try:
        return _follow(specs, jobs, job, array_id, on_slurm, log, poll_s, on_result)
    except KeyboardInterrupt:
        log(f"stopped following job array {array_id}; its tasks go on on the cluster "
            f"(squeue -j {array_id}; scancel {array_id} stops them)")
        raise


def _follow(specs: Sequence[RunSpec], jobs: Sequence[Any], job: RunJob, array_id: str,
            on_slurm: bool, log: Callable[[str], None], poll_s: float,
            on_result: Callable[[RunResult], None] = lambda r: None) -> list[RunResult]:
    """Poll the array until every task has a result or has left the queue without one,
    printing each new epoch and the counts of pending, running, done and failed runs."""
    labels = [f"[{j.job_id}] {spec.label()}" for spec, j in zip(specs, jobs)]
    trackers = [RunProgress(spec.run_dir(job.runs_dir), label, spec.epochs)
                for spec, label in zip(specs, labels)]
    for tracker in trackers:
        tracker.poll()  # note the epochs already there (resumed runs)
    clock = StudyClock(_epochs_left(specs, job.runs_dir))
    results: dict[int, RunResult] = {}
    missing: dict[int, int] = {}
    last_state: dict[int, str] = {}
    shown = None
    while True:
        states = queue_states(array_id) if on_slurm else None
        for i, (spec, sjob) in enumerate(zip(specs, jobs)):
            if i in results:
                continue
            if Path(sjob.paths.result_pickle).exists() or (states is None and sjob.done()):
                results[i] = _task_result(spec, sjob, job.runs_dir)
                log(f"{labels[i]}: {results[i].outcome}"
                    + (f" ({results[i].error}; log: {results[i].error_log})"
                       if results[i].outcome is RunOutcome.FAILED else ""))
                on_result(results[i])
            elif states is not None and str(sjob.job_id) not in states:
                missing[i] = missing.get(i, 0) + 1
                if missing[i] >= MISSING_POLLS:
                    state = last_state.get(i, "unknown")
                    results[i] = _failed(
                        spec, job.runs_dir,
                        f"Slurm task {sjob.job_id} ended without a result (last state seen: "
                        f"{state}): cancelled, out of memory or killed.\n"
                        f"Its log: {sjob.paths.stderr}\nand {sjob.paths.stdout}",
                        Path(sjob.paths.stderr), f"task ended without a result (last {state})")
                    log(f"{labels[i]}: failed ({results[i].error}; log: "
                        f"{results[i].error_log})")
            elif states is not None:
                missing.pop(i, None)
                last_state[i] = states[str(sjob.job_id)]
        for tracker in trackers:
            for epochs, line in tracker.poll():
                clock.advance(epochs)
                log(f"{line}, {clock.line()}")
        running = sum(1 for i in range(len(specs)) if i not in results
                      and (not on_slurm or last_state.get(i) not in (None, *PENDING_STATES)))
        counts = (len(specs) - len(results) - running, running,
                  sum(r.outcome is not RunOutcome.FAILED for r in results.values()),
                  sum(r.outcome is RunOutcome.FAILED for r in results.values()))
        if counts != shown:
            shown = counts
            log(f"job array {array_id}: {counts[0]} pending, {counts[1]} running, "
                f"{counts[2]} done, {counts[3]} failed"
                + (f", {clock.line()}" if len(results) < len(specs) else ""))
        if len(results) == len(specs):
            return [results[i] for i in range(len(specs))]
        time.sleep(poll_s)


def planned_steps(spec: RunSpec, extra: Mapping[str, Any] | None = None) -> int | None:
    """The step budget a run of ``spec`` gets with the study's ``extra`` parameters: a
    ``steps`` given (on its own or in ``overrides``), else the profile's for the model; None
    for an epoch budget or a configuration that does not resolve here (the run will say why)."""
    from spineseg_core.training.config import parse_mapping, resolve_config

    extra = dict(extra or {})
    try:
        overrides = parse_mapping("overrides", extra.get("overrides"))
        steps = extra.get("steps", overrides.get("steps"))
        if steps is not None:
            return int(steps)
        if "epochs" in extra or "epochs" in overrides:
            return None
        return resolve_config(spec.profile, model=spec.model).steps
    except (SpinesegError, TypeError, ValueError):
        return None


def made_for_steps(run_dir: str | Path) -> int | None:
    """The step budget a run folder was made for (its ``params.json``'s ``steps``), None when
    it has none or no readable ``params.json``."""
    params = RunFolder(Path(run_dir)).params
    try:
        made = json.loads(params.read_text()).get("steps") if params.is_file() else None
    except (OSError, ValueError, AttributeError):
        return None
    return int(made) if isinstance(made, int | float) else None


def budget_clash(run_dir: str | Path, steps: int) -> str | None:
    """Why a run folder cannot serve as a run of ``steps`` steps, or None: it was made for
    another budget."""
    made = made_for_steps(run_dir)
    if made is None or made == steps:
        return None
    return (f"{run_dir}: made for a budget of {made} steps, this study asks {steps}; move the "
            "folder aside (for the budget seed, scripts/raise_budget.py) or pass "
            f"-p steps {made}")


def check_budgets(plan: Sequence[PlannedRun], extra: Mapping[str, Any] | None = None) -> None:
    """Refuse a study whose run folders were made for another step budget: a finished one
    would be skipped (and recorded) as this budget's run, an interrupted one resumed under
    another schedule. Raises :class:`ConfigError` naming the first such folder; records are
    not read (a run recorded elsewhere is the records' business)."""
    for p in plan:
        if p.status not in (RunStatus.FINISHED, RunStatus.RESUME):
            continue
        want = planned_steps(p.spec, extra)
        if want is not None and (clash := budget_clash(p.run_dir, want)):
            raise ConfigError(clash)


def run_study(plan: Iterable[PlannedRun], runs_dir: str | Path, *,
              executor: Executor = Executor.LOCAL, extra: Mapping[str, Any] | None = None,
              notebook: str | Path = DEFAULT_NOTEBOOK, runner: Runner = papermill_runner,
              cwd: str | Path | None = None, slurm: SlurmOptions | None = None,
              cluster: str | None = None, poll_s: float = 5.0,
              log: Callable[[str], None] = print,
              records_dir: str | Path | None = None) -> list[RunResult]:
    """Execute every unfinished run of ``plan``; finished and recorded ones come back as
    skipped.

    ``cluster`` overrides submitit's cluster for the Slurm path (``"local"`` in tests runs
    the same job array on this machine). ``poll_s``: seconds between looks at the run
    folders (epochs) and at the queue. With ``records_dir`` each run is recorded there as it
    finishes (and a finished run without a record is recorded at the start), so the records
    can be committed while the study goes on.
    """
    plan = list(plan)
    notebook = Path(notebook)
    if not notebook.is_file():
        raise ConfigError(f"training notebook {notebook} not found")
    check_budgets(plan, extra)
    job = RunJob(runs_dir, extra, notebook, runner, cwd)
    done_before = (RunStatus.FINISHED, RunStatus.RECORDED)
    todo = [p.spec for p in plan if p.status not in done_before]
    skipped = [RunResult(p.spec, p.run_dir, RunOutcome.SKIPPED, p.status)
               for p in plan if p.status in done_before]

    def record(result: RunResult) -> None:
        if records_dir is None or result.outcome is RunOutcome.FAILED:
            return
        target = result.spec.run_dir(records_dir)
        if not has_record(target):
            write_record(result.run_dir, target)
            log(f"{result.spec.label()}: recorded in {target}")

    for result in skipped:
        if result.status_before is RunStatus.FINISHED:
            record(result)
    if skipped:
        log(f"{len(skipped)} of {len(plan)} runs already finished or recorded (skipped)")
    if not todo:
        return skipped
    if executor is Executor.LOCAL and cluster is None:
        done = _run_local(todo, job, log, poll_s, record)
    else:
        folder = Path(runs_dir) / ".submitit"
        done = _run_submitit(todo, job, folder, cluster or "slurm", slurm or SlurmOptions(), log,
                             poll_s, record)
    order = {p.spec: i for i, p in enumerate(plan)}
    return sorted(skipped + done, key=lambda r: order[r.spec])


def parse_parameter(value: str) -> Any:
    """A ``-p KEY VALUE`` value typed like papermill does: int, float, bool, None or str."""
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None, "null": None}.get(value.lower(), value)
