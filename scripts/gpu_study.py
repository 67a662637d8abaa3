"""The python half of ``scripts/gpu_study.sh``: a lent GPU adds finished runs to the re-run.

    python scripts/gpu_study.py --archive OUT/records.tar.gz   # into results/plateau/runs
    python scripts/gpu_study.py --dry-run            # CPU, smoke profile, 2 runs, temp folder

The runs are those at the plateau budget (:func:`plan_parts`): the budget seed's that are not
recorded yet, then the re-run's, in the order ``scripts/plateau_rerun.py`` makes them on
the CPU, from the same code version (the tree's
fingerprint must be the one ``results/plateau/CODE`` pins) and at the same budget in optimiser
steps; each run's record names its device. Same profile, each run's parameters made by the study runner
(:func:`~spineseg_core.study.runner.notebook_parameters`, so every per-model value applies as
in ``spineseg study``) and trained as the training notebook trains them
(:func:`~spineseg_core.training.config.resolve_with_overrides`, then
:func:`~spineseg_core.training.loop.run_training`), in a child process per run, without
papermill (the lent machine has none). A run whose record is in ``--records-dir`` is skipped;
each finished run is recorded there (:func:`~spineseg_core.study.records.write_record`, by
this process alone, one at a time) as soon as it ends. ``params.json``'s ``env`` stamp names
the GPU. The runs must be of the records' code version: a record of another source
fingerprint in a group the plan writes stops the study before it starts, with one line.

Each data set (phantom and volume cache) is built once, here, before the first run that reads
it starts. Several runs share the card (``--jobs``; ``auto``: as many as a quarter of the card's free
memory per :data:`RUN_MEMORY_GB` allows, at most one per two CPU cores and :data:`MAX_JOBS`),
each with its share of the CPU threads. The study stops launching runs when the time left
(``--budget-s``, 9 minutes by default) is shorter than a run is expected to take (the slowest
finished run so far, ``--run-estimate-s`` before any has finished); at the budget it ends the
runs still going, which leave no record (their checkpoints stay in ``--runs-dir``, from which
the next study on the same machine resumes them). The main group's runs it finished are then
scored on the phantom's hard cases (as ``scripts/plateau_rerun.py`` does after each run:
their checkpoints leave with the machine), in the last :data:`HARD_S` of the budget, in a child
process ended at the budget; only finished scores are recorded. ``--archive`` packs the records
it wrote into one ``.tar.gz`` (the lent machine returns a few files, not a tree).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Part:
    """One ``spineseg study`` call of the re-run: ``models`` (``None``: all twelve) x ``seeds``
    (x ``losses``), in the group of ``variant``, with the extra parameters ``params``."""

    seeds: tuple[int, ...]
    models: tuple[str, ...] | None = None
    losses: tuple[str, ...] | None = None
    variant: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


GPU_SKIPS: dict[str, str] = {
    "unet3d": "a 3D model's volumes take the per-slice augmentation, which needs TorchIO, "
              "absent from the lent machine (docs/gpu.md)"}
"""Models of the plan the GPU path cannot train, with the reason; they stay for the CPU."""


def to_part(run) -> Part:
    """A :class:`~spineseg_core.study.schedule.ScheduledRun` as one study call of one run."""
    spec = run.spec
    return Part(seeds=(spec.seed,), models=(spec.model,),
                losses=(spec.loss,) if spec.loss else None, variant=spec.variant,
                params=dict(run.params))


def plan_parts(steps: int, steps_given: bool = False, profile: str = "cpu",
               records_dir: Path | None = None, own: Collection[str] = ()) -> tuple[Part, ...]:
    """The runs at the plateau budget, in order: the budget seed's
    (:func:`~spineseg_core.study.schedule.seed_plan`), then the re-run's
    (:func:`~spineseg_core.study.schedule.rerun_plan`), as ``scripts/plateau_rerun.py``
    makes them on the CPU; without :data:`GPU_SKIPS` and the models of ``own``, those run
    from a pin of their own (:func:`~spineseg_core.study.schedule.mend_pins`), not from this
    tree's (the study's) code version. A model
    whose seed pair (B/2 and B) has a run recorded in ``records_dir`` is left out of the seed
    part: the device that made one makes the other (the plateau rule compares the two, and a
    GPU run is not the CPU's computation), and the CPU seed may be training it now."""
    from spineseg_core.study.records import has_record
    from spineseg_core.study.schedule import rerun_plan, seed_plan

    seed = seed_plan(steps, steps_given, profile)
    started = {r.spec.model for r in seed
               if records_dir is not None and has_record(r.spec.run_dir(records_dir))}
    runs = [r for r in seed if r.spec.model not in started] + rerun_plan(steps, steps_given,
                                                                         profile)
    return tuple(to_part(r) for r in runs
                 if r.spec.model not in GPU_SKIPS and r.spec.model not in own)


DRY_RUN_STEPS = 8
"""The budget of the dry run's plan (B/2 = 4 steps): the smoke profile on the CPU in CI."""


def check_pin(pin: Path) -> None:
    """Refuse, in one line, a tree whose fingerprint is not the one the budget seed pinned
    (``results/plateau/CODE``): the re-run is one code version."""
    from spineseg_core.fingerprint import verify_pin

    verify_pin(pin)


RUN_MEMORY_GB = 4.0
"""GPU memory one cpu-profile run is given when ``--jobs auto`` counts the runs that fit
(TransUNet, the largest model, needs about 2 GB of weights and Adam moments at 128 px)."""

MAX_JOBS = 8
"""The most runs at once on one card: beyond this the CPU work of each run (data, HD95)
rather than the GPU sets the pace."""

BUDGET_S = 540.0
"""Nine minutes, the whole study's share of a 15-minute lease."""

HARD_S = 90.0
"""The end of the budget kept for scoring the new main-group runs on the hard cases (an
estimate: three sets of phantom cases written once, then one evaluation per run and set)."""


def planned(profile: str, parts: Sequence[Part], runs_dir: Path, records_dir: Path,
            extra: Mapping[str, Any], models: Sequence[str] | None = None):
    """The runs of ``parts`` on ``profile`` with their extra parameters, in order, without
    those recorded in ``records_dir`` and without repeats (a list of ``(PlannedRun, extra)``;
    a run finished in ``runs_dir`` but not recorded is in it, to be recorded); ``models``
    keeps only those models."""
    from spineseg_core.models import list_models
    from spineseg_core.study.records import has_record
    from spineseg_core.study.runner import plan_study

    seen, out = set(), []
    for part in parts:
        names = [m for m in (part.models or list_models()) if not models or m in models]
        if not names:
            continue
        params = {**extra, **part.params}
        plan = plan_study(profile, names, part.seeds, [0], runs_dir, part.losses,
                          epochs_of=lambda spec, params=params: run_config(spec, params).epochs,
                          variant=part.variant, records_dir=records_dir)
        for p in plan:
            if p.spec not in seen and not has_record(p.spec.run_dir(records_dir)):
                seen.add(p.spec)
                out.append((p, params))
    return out


def run_parameters(spec, run_dir: Path, resume: bool, extra: Mapping[str, Any]) -> dict:
    """The notebook parameters the study runner gives ``spec`` (its per-model values
    included), read against the notebook's known parameter names."""
    from spineseg_core.study.runner import NOTEBOOK_PARAMETERS, notebook_parameters

    return notebook_parameters(spec, run_dir, resume, extra, NOTEBOOK_PARAMETERS)


def run_config(spec, extra: Mapping[str, Any], run_dir: Path = Path("unused"),
               resume: bool = False):
    """The :class:`~spineseg_core.training.config.TrainConfig` the notebook resolves from
    :func:`run_parameters` (its parameters cell, then its first code cell)."""
    from spineseg_core.training.config import resolve_with_overrides

    params = dict(run_parameters(spec, run_dir, resume, extra))
    profile, overrides = params.pop("profile"), params.pop("overrides", None)
    return resolve_with_overrides(profile, overrides, **params)


def train_one(params: dict[str, Any]) -> None:
    """One run, as ``notebooks/train.ipynb`` trains it from its papermill parameters."""
    from spineseg_core.training.config import resolve_with_overrides
    from spineseg_core.training.loop import run_training

    params = dict(params)
    profile, overrides = params.pop("profile"), params.pop("overrides", None)
    run_training(resolve_with_overrides(profile, overrides, **params))


def fingerprints(records_dir: Path, groups: Iterable[str],
                 own: Collection[str] = ()) -> dict[str, int]:
    """``{source fingerprint: records}`` of the records in ``groups`` of ``records_dir``,
    without those of the models in ``own`` (run from a pin of their own)."""
    from spineseg_core.fingerprint import UNRECORDED

    counts: dict[str, int] = {}
    for group in groups:
        for params in sorted((records_dir / group).glob("*/seed_*/fold_*/params.json")):
            if params.parents[2].name in own:
                continue
            try:
                fp = json.loads(params.read_text())["env"]["source_fingerprint"]
            except (OSError, ValueError, KeyError, TypeError):
                fp = UNRECORDED
            counts[fp] = counts.get(fp, 0) + 1
    return counts


def check_one_version(records_dir: Path, groups: Iterable[str],
                      own: Collection[str] = ()) -> None:
    """Refuse, in one line, to add runs beside records of another code version (the records
    of the models in ``own``, run from a pin of their own, left out)."""
    from spineseg_core.errors import ConfigError
    from spineseg_core.fingerprint import describe, short, source_fingerprint

    mine = source_fingerprint()
    other = {fp: n for fp, n in fingerprints(records_dir, groups, own).items() if fp != mine}
    if other:
        seen = describe(dict(sorted(other.items())))
        raise ConfigError(f"--records-dir {records_dir}: its records were made by another "
                          f"source fingerprint ({seen}; this tree: {short(mine)}); run the GPU "
                          "study from the re-run's commit, or record into another folder")


def auto_jobs(device: str) -> int:
    """Runs at once: what a quarter of the free GPU memory holds at :data:`RUN_MEMORY_GB`
    each, at most one per two CPU cores and :data:`MAX_JOBS`; 2 on the CPU (dry run)."""
    cores = max(1, (os.cpu_count() or 2) // 2)
    if device != "cuda":
        return min(2, cores)
    import torch

    free, _ = torch.cuda.mem_get_info()
    return max(1, min(MAX_JOBS, cores, int(free / 2**30 / RUN_MEMORY_GB)))


DATA_FIELDS: tuple[str, ...] = ("data_dir", "test_dir", "phantom_cases", "phantom_size",
                                "phantom_seed", "test_cases", "phantom_test_seed", "image_size",
                                "crop_width")
"""What decides a run's data (phantom and volume cache): runs alike in these share it."""


def warm_data(cfg, warmed: set, say=print) -> None:
    """Build the phantom and volume cache of ``cfg`` here, once per :data:`DATA_FIELDS`, so
    that runs started together read it rather than all writing it at once."""
    from spineseg_core.data.prepare import prepare_data
    from spineseg_core.models import model_info

    key = tuple(str(getattr(cfg, f)) for f in DATA_FIELDS)
    if key in warmed:
        return
    t0 = time.monotonic()
    # the caches do not depend on the augmentation: none is built, so TorchIO is never needed
    prepare_data(cfg, model_info(cfg.model), slice_augment=False)
    warmed.add(key)
    say(f"data of {cfg.profile} at {cfg.image_size} px ready in {time.monotonic() - t0:.0f} s")


@dataclass
class Running:
    """A run's child process and when it started."""

    planned: Any
    process: subprocess.Popen
    started: float
    log: Path


def _child(params: dict[str, Any], log: Path, threads: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "one", json.dumps(params)],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=REPO,
        start_new_session=True)


def run_all(todo: list, runs_dir: Path, records_dir: Path, *, jobs: int, budget_s: float,
            run_estimate_s: float, threads: int, say=print, clock=time.monotonic,
            poll_s: float = 2.0) -> dict[str, list]:
    """Train ``todo`` (from :func:`planned`) ``jobs`` at a time inside ``budget_s``; record
    each finished run. Returns the run specs ``recorded``, ``failed``, ``stopped`` (ended at
    the budget) and ``not_started``."""
    from spineseg_core.study.records import has_record, write_record
    from spineseg_core.study.runner import RunStatus, run_status
    from spineseg_core.training.run_folder import RunFolder

    start = clock()
    queue = list(todo)
    running: list[Running] = []
    done: dict[str, list] = {"recorded": [], "failed": [], "stopped": [], "not_started": []}
    slowest = 0.0
    warmed: set = set()

    def record(p, seconds: float | None) -> None:
        target = p.spec.run_dir(records_dir)
        if not has_record(target):
            write_record(p.run_dir, target)
        done["recorded"].append(p.spec)
        took = "finished before" if seconds is None else f"in {seconds:.0f} s"
        say(f"[{clock() - start:.0f} s] recorded {p.spec.group} {p.spec.label()} ({took}) "
            f"-> {target}")

    for p, _ in [q for q in queue if q[0].status is RunStatus.FINISHED]:
        record(p, None)
    queue = [q for q in queue if q[0].status is not RunStatus.FINISHED]
    while queue or running:
        now = clock() - start
        expected = max(slowest, run_estimate_s) * 1.1
        while queue and len(running) < jobs and now + expected < budget_s:
            p, params = queue.pop(0)
            warm_data(run_config(p.spec, params), warmed, say)
            resume = run_status(p.run_dir, p.spec.epochs) is RunStatus.RESUME
            p.run_dir.mkdir(parents=True, exist_ok=True)
            log = p.run_dir / "gpu_study.log"
            args = run_parameters(p.spec, p.run_dir, resume, {**params, "threads": threads})
            running.append(Running(p, _child(args, log, threads), clock(), log))
            say(f"[{clock() - start:.0f} s] started {p.spec.group} {p.spec.label()}"
                f"{' (resumed)' if resume else ''}; {len(running)} running")
        if not running:
            break
        if now >= budget_s:
            for r in running:
                r.process.terminate()
            for r in running:
                try:
                    r.process.wait(30)
                except subprocess.TimeoutExpired:
                    r.process.kill()
                    r.process.wait()
                done["stopped"].append(r.planned.spec)
                say(f"[{now:.0f} s] stopped {r.planned.spec.group} {r.planned.spec.label()} "
                    "at the budget (no record)")
            running = []
            break
        time.sleep(poll_s)
        for r in [r for r in running if r.process.poll() is not None]:
            running.remove(r)
            spec, seconds = r.planned.spec, clock() - r.started
            if r.process.returncode == 0 and RunFolder(r.planned.run_dir).is_finished():
                slowest = max(slowest, seconds)
                record(r.planned, seconds)
            else:
                tail = r.log.read_text(errors="replace").strip().splitlines()[-1:] or ["?"]
                done["failed"].append(spec)
                say(f"[{clock() - start:.0f} s] FAILED {spec.group} {spec.label()}: {tail[0]} (log: {r.log})")
    done["not_started"] = [p.spec for p, _ in queue]
    return done


def score_hard(runs_dir: Path, specs: Sequence, records_dir: Path, device: str,
               seconds: float, say=print) -> list[Path]:
    """Score the main-group runs among ``specs`` on every hard-case set in a child process
    given ``seconds``, then record each finished score; returns the records written."""
    from spineseg_core.study.hard_cases import HardSet, hard_group
    from spineseg_core.study.records import has_record, is_main_group, write_record
    from spineseg_core.training.run_folder import RunFolder

    specs = [s for s in specs if is_main_group(s.group)]
    if not specs or seconds <= 0:
        return []
    groups = sorted({s.group for s in specs})
    child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "hard",
                              str(runs_dir), device, *groups], cwd=REPO, start_new_session=True)
    try:
        child.wait(seconds)
    except subprocess.TimeoutExpired:
        child.terminate()
        child.wait()
        say(f"hard-case scoring ended at the budget after {seconds:.0f} s")
    written = []
    for spec in specs:
        for hard in HardSet:
            scored = runs_dir / hard_group(spec.group, hard) / spec.run_dir(runs_dir).relative_to(
                runs_dir / spec.group)
            target = records_dir / scored.relative_to(runs_dir)
            if RunFolder(scored).is_finished() and not has_record(target):
                written.append(write_record(scored, target))
    say(f"{len(written)} hard-case scores recorded")
    return written


def archive(records_dir: Path, labels_dirs: Sequence[Path], out: Path) -> None:
    """Pack the record folders ``labels_dirs`` (and their groups' test sets) into ``out``,
    paths relative to ``records_dir``."""
    from spineseg_core.io import write_with
    from spineseg_core.study.records import TEST_SET, group_dir

    def write(tmp: Path) -> None:
        with tarfile.open(tmp, "w:gz") as tar:
            for group in sorted({group_dir(d) for d in labels_dirs}):
                if (group / TEST_SET).is_file():
                    tar.add(group / TEST_SET, str((group / TEST_SET).relative_to(records_dir)))
            for d in labels_dirs:
                tar.add(d, str(d.relative_to(records_dir)))

    out.parent.mkdir(parents=True, exist_ok=True)
    write_with(out, write)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["one"]:  # a child: one run from its parameters
        train_one(json.loads(argv[1]))
        return 0
    if argv[:1] == ["hard"]:  # a child: hard-case scores of groups, kept in the runs folder
        from spineseg_core.study.hard_cases import score_runs

        score_runs(Path(argv[1]), argv[3:], Path(argv[1]), device=argv[2])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--records-dir", type=Path,
                        default=REPO / "results" / "plateau" / "runs")
    parser.add_argument("--runs-dir", type=Path, default=REPO / "runs-gpu")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--jobs", default="auto", help="runs at once (default auto)")
    parser.add_argument("--budget-s", type=float, default=BUDGET_S)
    parser.add_argument("--run-estimate-s", type=float, default=120.0,
                        help="a run's expected time before one has finished (default 120)")
    parser.add_argument("--models", nargs="+", help="only these models of the plan")
    parser.add_argument("--skip", nargs="+", default=[],
                        help="leave these models out (e.g. the one the CPU seed is training)")
    parser.add_argument("--steps", type=int,
                        help="B (default: results/plateau/budget.json where the budget was "
                             "raised, else the code's CPU_STEPS; another value is refused)")
    parser.add_argument("--limit", type=int, help="at most this many runs")
    parser.add_argument("--archive", type=Path, help="a .tar.gz of the records written")
    parser.add_argument("--hard-s", type=float, default=HARD_S,
                        help=f"seconds kept for hard-case scoring (default {HARD_S:.0f}; 0: none)")
    parser.add_argument("--dry-run", action="store_true",
                        help="on the CPU: the smoke profile, the plan's first 2 runs of "
                             "MiniSeg and U-Net (MiniSeg at B/2 and B of a budget of 8 steps) "
                             "and the hard-case scores of the main-group one, in a temporary "
                             "folder")
    args = parser.parse_args(argv)
    from spineseg_core.errors import ConfigError

    temp = None
    if args.dry_run:
        temp = tempfile.TemporaryDirectory(prefix="spineseg-gpu-study-")
        root = Path(temp.name)
        args.profile, args.device, args.jobs = "smoke", "cpu", "2"
        args.records_dir, args.runs_dir = root / "records", root / "runs"
        args.models, args.limit = args.models or ["unet", "miniseg"], args.limit or 2
        os.environ.setdefault("SPINESEG_CACHE", str(root / "cache"))
    if args.device == "cuda":
        from spineseg_core.training.device import resolve_device

        resolve_device("cuda")
    jobs = auto_jobs(args.device) if args.jobs == "auto" else int(args.jobs)
    if jobs < 1 or (args.limit is not None and args.limit < 1):
        raise ConfigError(f"--jobs {args.jobs} / --limit {args.limit}: expected at least 1")
    records_dir, runs_dir = args.records_dir.resolve(), args.runs_dir.resolve()
    extra = {"device": args.device}
    own: tuple[str, ...] = ()  # models run from a pin of their own: never from this tree
    if args.dry_run:
        parts = plan_parts(DRY_RUN_STEPS, True, args.profile, records_dir)
    else:
        from spineseg_core.study.budget_raise import budget_in_force
        from spineseg_core.study.schedule import mend_pins
        from spineseg_core.training.config import CPU_STEPS

        check_pin(REPO / "results" / "plateau" / "CODE")
        own = tuple(mend_pins(REPO / "results" / "plateau"))
        steps = budget_in_force(REPO / "results" / "plateau", CPU_STEPS, args.steps)
        parts = plan_parts(steps, steps != CPU_STEPS, args.profile, records_dir, own)
    parts = tuple(p for p in parts if not set(p.models or ()) & set(args.skip))
    todo = planned(args.profile, parts, runs_dir, records_dir, extra, args.models)
    todo = todo[:args.limit] if args.limit else todo
    check_one_version(records_dir, {p.spec.group for p, _ in todo}, own)
    threads = max(1, (os.cpu_count() or 2) // jobs)
    print(f"gpu_study: {len(todo)} runs to do ({args.profile} profile, {args.device}), {jobs} "
          f"at once, {threads} CPU threads each, budget {args.budget_s:.0f} s", flush=True)
    t0 = time.monotonic()

    def say(line: str) -> None:
        print(f"gpu_study {line}", flush=True)

    done = run_all(todo, runs_dir, records_dir, jobs=jobs,
                   budget_s=args.budget_s - args.hard_s,
                   run_estimate_s=args.run_estimate_s, threads=threads, say=say)
    written = [spec.run_dir(records_dir) for spec in done["recorded"]]
    hard = [] if args.hard_s <= 0 else score_hard(
        runs_dir, done["recorded"], records_dir, args.device,
        args.budget_s - (time.monotonic() - t0), say)
    written += hard
    if args.archive and written:
        archive(records_dir, written, args.archive)
        print(f"gpu_study: {len(written)} records packed in {args.archive}")
    print("gpu_study: " + ", ".join(f"{len(v)} {k.replace('_', ' ')}" for k, v in done.items()))
    if args.dry_run:  # the recorded runs are skipped from now on
        from spineseg_core.study.records import is_main_group

        left = {p.spec for p, _ in planned(args.profile, parts, runs_dir, records_dir, extra,
                                            args.models)}
        if left & set(done["recorded"]) or not done["recorded"]:
            print("gpu_study: dry run failed: no run recorded, or a recorded run still planned",
                  file=sys.stderr)
            return 1
        main_runs = sum(is_main_group(spec.group) for spec in done["recorded"])
        if len(hard) != 3 * main_runs:
            print(f"gpu_study: dry run failed: {len(hard)} hard-case scores recorded, not "
                  f"{3 * main_runs}", file=sys.stderr)
            return 1
        print(f"gpu_study: dry run: {len(done['recorded'])} recorded, skipped when planned "
              f"again, and {len(hard)} hard-case scores")
        temp.cleanup()
    return 1 if done["failed"] else 0


if __name__ == "__main__":
    from spineseg_core.errors import SpinesegError

    try:
        sys.exit(main())
    except SpinesegError as exc:  # one line, as from the command line
        sys.exit(f"gpu_study: {type(exc).__name__}: {exc}")
