"""The study: many training runs of ``notebooks/train.ipynb``, one per (model, seed, fold, loss).

Each run is the training notebook executed by papermill into its run folder
(``<runs_dir>/<group>/<model>/seed_<s>/fold_<f>/notebook.ipynb``, see CONTRIBUTING.md). The
folder's content says what is left to do: ``metrics.json`` means finished (skipped) — unless
the run's configuration now asks for more epochs than it completed, when it is extended from
its last checkpoint —, ``checkpoint_last.pt`` without it means interrupted (resumed with
``resume=True``), nothing means new. A failing run writes its traceback to ``error.log`` and the others still run.

Loss comparison: ``losses=("ce", "dice")`` runs every model once per loss, each loss in its
own group ``<profile>-loss-<loss>`` (the notebook gets ``loss=<loss>``), so those runs never
mix with the main runs of ``<profile>``, which use the profile's own loss.

Beyond one machine, :func:`run_study` with ``executor=Executor.SLURM`` submits the same
:func:`execute_run` as a submitit job array (one GPU per run); a run killed at its time limit
or preempted is requeued by :meth:`RunJob.checkpoint` and resumes from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from .errors import ConfigError, SpinesegError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_NOTEBOOK = REPO_ROOT / "notebooks" / "train.ipynb"
RESERVED_PARAMETERS = frozenset({"model", "profile", "seed", "fold", "out_dir", "resume", "loss"})
"""Notebook parameters the study sets itself; ``extra`` may not override them."""

NOTEBOOK_PARAMETERS = frozenset({"model", "profile", "data_dir", "image_size", "epochs",
                                 "batch_size", "lr", "loss", "seed", "fold", "out_dir", "device",
                                 "num_workers", "resume", "overrides"})
"""Names in the parameters cell of ``notebooks/train.ipynb``; any other training parameter
travels inside its ``overrides`` dictionary."""

FINISHED_MARKER = "metrics.json"
RESUME_MARKER = "checkpoint_last.pt"
ERROR_LOG = "error.log"
NOTEBOOK_NAME = "notebook.ipynb"


class RunStatus(StrEnum):
    """What a run folder says about its run before the study starts it."""

    FINISHED = "finished"
    RESUME = "resume"
    NEW = "new"


class Outcome(StrEnum):
    """What happened to a run during this study."""

    SKIPPED = "skipped"
    DONE = "done"
    FAILED = "failed"


class Executor(StrEnum):
    """Where the runs execute: one after the other here, or as a Slurm job array."""

    LOCAL = "local"
    SLURM = "slurm"


def group_name(profile: str, loss: str | None = None) -> str:
    """Folder under the runs directory of a profile's runs: ``cpu`` or ``cpu-loss-ce``."""
    return profile if loss is None else f"{profile}-loss-{loss}"


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

    @property
    def group(self) -> str:
        return group_name(self.profile, self.loss)

    def run_dir(self, runs_dir: str | Path) -> Path:
        """The run folder of the run-folder contract."""
        return Path(runs_dir) / self.group / self.model / f"seed_{self.seed}" / f"fold_{self.fold}"

    def label(self) -> str:
        loss = f" loss={self.loss}" if self.loss else ""
        return f"{self.model} seed={self.seed} fold={self.fold}{loss}"


def _epochs_completed(run_dir: Path) -> int | None:
    try:
        return int(json.loads((run_dir / FINISHED_MARKER).read_text())["epochs_completed"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run_status(run_dir: str | Path, epochs: int | None = None) -> RunStatus:
    """Finished, interrupted (to resume) or new, read from the files of ``run_dir``.

    With ``epochs``, a finished run that completed fewer (per its ``metrics.json``) counts as
    one to resume from its last checkpoint, or as new if it has none."""
    run_dir = Path(run_dir)
    if (run_dir / FINISHED_MARKER).is_file():
        done = _epochs_completed(run_dir)
        if epochs is None or done is None or done >= epochs:
            return RunStatus.FINISHED
    if (run_dir / RESUME_MARKER).is_file():
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
               epochs_of: Callable[[RunSpec], int] | None = None) -> list[PlannedRun]:
    """Every (loss, model, seed, fold) of the study with its current status, in run order.

    ``epochs_of(spec)`` gives each run's epoch target (its resolved configuration's), so a
    finished run with fewer epochs is planned as one to extend."""
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
                    spec = RunSpec(profile, model, int(seed), int(fold), loss)
                    if epochs_of is not None:
                        spec = dataclasses.replace(spec, epochs=int(epochs_of(spec)))
                    run_dir = spec.run_dir(runs_dir)
                    plan.append(PlannedRun(spec, run_dir, run_status(run_dir, spec.epochs)))
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
    not a value papermill would silently drop.
    """
    extra = dict(extra or {})
    clash = sorted(RESERVED_PARAMETERS & extra.keys())
    if clash:
        raise ConfigError(f"parameters {clash} are set by the study itself "
                          "(use --models/--seeds/--folds/--losses instead)")
    from .profiles import PARAMETERS

    rest = {k: extra.pop(k) for k in sorted(set(extra) - accepted)}
    unknown = sorted(set(rest) - set(PARAMETERS)) if "overrides" in accepted else sorted(rest)
    if unknown:
        valid = sorted(accepted | (set(PARAMETERS) if "overrides" in accepted else set()))
        raise ConfigError(f"unknown parameters {unknown}; valid: {', '.join(valid)}")
    if rest:
        extra["overrides"] = {**dict(extra.get("overrides") or {}), **rest}
    params = {**extra, "model": spec.model, "profile": spec.profile, "seed": spec.seed,
              "fold": spec.fold, "out_dir": str(run_dir), "resume": resume}
    if spec.loss is not None:
        params["loss"] = spec.loss
    return params


Runner = Callable[[Path, Path, dict[str, Any], Path], None]
"""``runner(notebook, output_notebook, parameters, cwd)`` executes one run."""


def papermill_runner(notebook: Path, output: Path, parameters: dict[str, Any], cwd: Path) -> None:
    """Execute ``notebook`` with papermill into ``output`` (kernel ``python3``)."""
    import papermill

    papermill.execute_notebook(str(notebook), str(output), parameters=parameters,
                               kernel_name="python3", cwd=str(cwd), progress_bar=False,
                               log_output=False)


@dataclass(frozen=True)
class RunResult:
    """What one run did in this study; ``error_log`` is set when it failed."""

    spec: RunSpec
    run_dir: Path
    outcome: Outcome
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
        return RunResult(spec, run_dir, Outcome.SKIPPED, status)
    run_dir.mkdir(parents=True, exist_ok=True)
    error_log = run_dir / ERROR_LOG
    start = time.perf_counter()
    try:
        params = notebook_parameters(spec, run_dir, status is RunStatus.RESUME, extra,
                                     notebook_parameter_names(notebook))
        runner(Path(notebook), run_dir / NOTEBOOK_NAME, params, Path(cwd or REPO_ROOT))
        if not (run_dir / FINISHED_MARKER).is_file():
            raise SpinesegError(f"{run_dir}: the notebook ended without writing {FINISHED_MARKER}")
    except Exception as exc:  # noqa: BLE001 - every failure is reported, the study goes on
        text = f"{spec.label()}\nrun folder: {run_dir}\n\n{traceback.format_exc()}"
        error_log.write_text(text)
        return RunResult(spec, run_dir, Outcome.FAILED, status, time.perf_counter() - start,
                         error_log, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    if error_log.exists():
        error_log.unlink()
    return RunResult(spec, run_dir, Outcome.DONE, status, time.perf_counter() - start)


@dataclass(frozen=True)
class SlurmOptions:
    """Resources of each array task; ``partition=None`` leaves the cluster's default."""

    timeout_min: int = 240
    gpus_per_node: int = 1
    cpus_per_task: int = 8
    mem_gb: int = 32
    partition: str | None = None
    array_parallelism: int = 16
    max_num_timeout: int = 5
    extra: dict[str, Any] = field(default_factory=dict)

    def executor_parameters(self, name: str) -> dict[str, Any]:
        params: dict[str, Any] = dict(
            name=name, timeout_min=self.timeout_min, gpus_per_node=self.gpus_per_node,
            cpus_per_task=self.cpus_per_task, mem_gb=self.mem_gb,
            slurm_array_parallelism=self.array_parallelism, **self.extra)
        if self.partition:
            params["slurm_partition"] = self.partition
        return params


try:
    from submitit.helpers import Checkpointable, DelayedSubmission
except ImportError:  # pragma: no cover - submitit is a dependency; keep local runs working
    Checkpointable = object  # type: ignore[assignment,misc]
    DelayedSubmission = None  # type: ignore[assignment,misc]


class RunJob(Checkpointable):  # type: ignore[misc,valid-type]
    """One array task: :func:`execute_run` on one spec, requeued on timeout or preemption.

    submitit calls :meth:`checkpoint` when Slurm signals the time limit or a preemption; it
    resubmits the same spec with ``resume=True``. The run folder's ``checkpoint_last.pt``
    then makes :func:`execute_run` pass ``resume=True`` to the notebook.
    """

    def __init__(self, runs_dir: str | Path, extra: Mapping[str, Any] | None = None,
                 notebook: str | Path = DEFAULT_NOTEBOOK, runner: Runner = papermill_runner,
                 cwd: str | Path | None = None) -> None:
        self.runs_dir = Path(runs_dir)
        self.extra = dict(extra or {})
        self.notebook = Path(notebook)
        self.runner = runner
        self.cwd = Path(cwd or REPO_ROOT)

    def __call__(self, spec: RunSpec, resume: bool = False) -> RunResult:
        return execute_run(spec, self.runs_dir, extra=self.extra, notebook=self.notebook,
                           runner=self.runner, cwd=self.cwd)

    def checkpoint(self, spec: RunSpec, resume: bool = False) -> Any:
        return DelayedSubmission(self, spec, resume=True)


def _run_local(specs: Sequence[RunSpec], job: RunJob,
               log: Callable[[str], None]) -> list[RunResult]:
    results = []
    for i, spec in enumerate(specs, 1):
        log(f"[{i}/{len(specs)}] {spec.label()}")
        result = job(spec)
        log(f"[{i}/{len(specs)}] {spec.label()}: {result.outcome} ({result.seconds:.0f} s)")
        results.append(result)
    return results


def _run_submitit(specs: Sequence[RunSpec], job: RunJob, folder: Path, cluster: str,
                  options: SlurmOptions, log: Callable[[str], None]) -> list[RunResult]:
    import submitit

    try:
        executor = submitit.AutoExecutor(folder=folder, cluster=cluster,
                                         slurm_max_num_timeout=options.max_num_timeout)
        executor.update_parameters(**options.executor_parameters("spineseg-study"))
        jobs = executor.map_array(job, list(specs))
    except (RuntimeError, OSError, ValueError) as exc:
        raise ConfigError(f"the {cluster or 'slurm'} executor is unavailable here ({exc}); "
                          "use --executor local") from None
    log(f"submitted {len(jobs)} runs as {cluster} jobs (logs in {folder})")
    results = []
    for spec, sjob in zip(specs, jobs):
        try:
            results.append(sjob.result())
        except Exception as exc:  # noqa: BLE001 - a job killed outside execute_run
            run_dir = spec.run_dir(job.runs_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            log_path = run_dir / ERROR_LOG
            log_path.write_text(f"{spec.label()}\nsubmitit job {sjob.job_id}\n\n{exc}\n")
            results.append(RunResult(spec, run_dir, Outcome.FAILED, run_status(run_dir),
                                     error_log=log_path, error=f"{type(exc).__name__}"))
    return results


def run_study(plan: Iterable[PlannedRun], runs_dir: str | Path, *,
              executor: Executor = Executor.LOCAL, extra: Mapping[str, Any] | None = None,
              notebook: str | Path = DEFAULT_NOTEBOOK, runner: Runner = papermill_runner,
              cwd: str | Path | None = None, slurm: SlurmOptions | None = None,
              cluster: str | None = None,
              log: Callable[[str], None] = print) -> list[RunResult]:
    """Execute every unfinished run of ``plan``; finished ones come back as skipped.

    ``cluster`` overrides submitit's cluster for the Slurm path (``"local"`` in tests runs
    the same job array on this machine).
    """
    plan = list(plan)
    notebook = Path(notebook)
    if not notebook.is_file():
        raise ConfigError(f"training notebook {notebook} not found")
    job = RunJob(runs_dir, extra, notebook, runner, cwd)
    todo = [p.spec for p in plan if p.status is not RunStatus.FINISHED]
    skipped = [RunResult(p.spec, p.run_dir, Outcome.SKIPPED, p.status)
               for p in plan if p.status is RunStatus.FINISHED]
    if not todo:
        return skipped
    if executor is Executor.LOCAL and cluster is None:
        done = _run_local(todo, job, log)
    else:
        folder = Path(runs_dir) / ".submitit"
        done = _run_submitit(todo, job, folder, cluster or "slurm", slurm or SlurmOptions(), log)
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
