"""The runs at the plateau budget (issues 24 and 25): the budget seed, then every run after it,
in priority order, from one pinned code version, each record committed as it lands.

The plan is :func:`spineseg_core.study.schedule.seed_plan`, then
:func:`spineseg_core.study.schedule.rerun_plan`:

1. ``seed``: the budget seed, seed 0 of the twelve and the context models
   (:data:`~spineseg_core.study.schedule.SEED_ORDER`, cheapest first), each at B/2 (group
   ``cpu-half``, a complete cosine schedule of its own) and then at B (group ``cpu``), so that
   ``study.plateau`` labels every model and the runs at B are seed 0 of the rest;
   ``scripts/budget_seed.sh`` is this part alone;
2. ``main``: the twelve models, seeds 1 and 2, in :func:`spineseg_core.study.schedule.interleave`
   order (families alternate, a model's seeds at least 6 runs apart);
3. ``loss``: the loss runs (``study.loss_study.LOSS_MODELS`` x every other loss, seeds 0-2);
4. ``res256``: the resolution check's models at 256 px, seed 0;
5. ``context``: the context models, seeds 1 and 2 (seed 0 is in the budget seed);
6. ``more``: seeds 3 and 4 of the twelve, as the cost allows.

Every run of the group ``cpu`` (the seed's runs at B, ``main``, ``context``, ``more``) is scored
on the phantom's hard cases as it finishes, with the pinned code.

    python scripts/plateau_rerun.py --dry-run          # the plan, each run's status, the hours
    python scripts/plateau_rerun.py                    # go on from the committed records
    python scripts/plateau_rerun.py --parts seed       # the budget seed alone (budget_seed.sh)
    python scripts/plateau_rerun.py --parts main loss  # some parts only
    python scripts/plateau_rerun.py --hours 2.5        # only runs that end within 2.5 h

One code version: the first start of the seed pins the commit it runs from, with its source
fingerprint, in ``results/plateau/CODE`` (``<commit> <fingerprint>``; refused while the
fingerprinted files, ``fingerprint.SOURCE_PATTERNS``, differ from that commit's) and commits
it; every start, on any machine, checks that commit out into ``.study-code/<commit[:12]>``,
verifies its fingerprint and runs ``spineseg study`` from there, so later changes to this
checkout do not split the study. The parts after the seed need the pin. A dry run without a
pin plans from HEAD and writes nothing.

Records land in ``results/plateau/runs/`` (checkpoints in ``--runs-dir``, ``runs/plateau/``
by default, never committed) and, unless ``--no-commit``, each is committed at once (only
``results/plateau``, under the lock the other study scripts take); a recorded run is skipped,
so the script continues across sittings and machines. A model the pinned code measures
wrongly is held (:data:`spineseg_core.study.schedule.HOLDS`): its runs are listed "held", with
why, and none starts, until ``--mend MODEL`` gives it a pin of its own
(``results/plateau/CODE.<model>``): HEAD, which must hold the hold's mend and have its
fingerprinted files committed. Its records made from the study's pin move to
``results/plateau/superseded/<study commit[:12]>/`` (its checkpoints to
``<runs-dir>-superseded/``), so its runs are all made again, from
``.study-code/<its commit[:12]>``; every other model's still come from the study's pin.
``scripts/check_mend.py`` shows what the two code versions share. After each record, unless
``--no-aggregate``, the bundle the book reads (``results/plateau``: ``plateau.csv``, the
curves, the baseline) is remade from the records with this checkout's analysis code (not the
pinned one: the analysis is not fingerprinted) and committed on its own, its message naming
the model's plateau label; a failed aggregation leaves the record committed and the runs going.
B is the pinned code's ``CPU_STEPS``, or
the budget raised once by ``scripts/raise_budget.py`` (``results/plateau/budget.json``,
:mod:`spineseg_core.study.budget_raise`; then passed to each run as ``-p steps``). Hours are
wall clock, validation included, at the step rates the records here measured, else the
committed benchmark's (``results/cpu/bench.csv``, model only) scaled to them
(:func:`seconds_per_step`).

A sitting that ends inside a run leaves a checkpoint that only the same machine resumes; on
another the run starts over. With ``--hours``, the script starts a run only if its price (the
steps it still needs, fewer when it resumes from a checkpoint here) ends within the hours left
of those given, and otherwise leaves it for a later sitting and tries the next one
(:func:`spineseg_core.study.schedule.fits_in_turn`; the dry run marks which). Rates vary from
one evening to the next by a fifth or so: give that much slack.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from spineseg_core.errors import ConfigError, DataError
from spineseg_core.fingerprint import commit_fingerprint, read_pin, short, source_fingerprint, verify_pin
from spineseg_core.measure.speed import bench_seconds_per_step
from spineseg_core.study import commits
from spineseg_core.study.budget_raise import budget_in_force
from spineseg_core.study.progress import steps_done
from spineseg_core.study.runner import budget_clash
from spineseg_core.study.schedule import (
    PARTS,
    SEED_ORDER,
    SEED_PART,
    SUPERSEDED,
    fits_in_turn,
    held,
    mend_pin_path,
    mend_pins,
    plan_cost,
    plan_rates,
    rate_stamps,
    rerun_plan,
    run_hours,
    seed_plan,
    wall_rates,
)

if TYPE_CHECKING:
    from spineseg_core.study.schedule import ScheduledRun

HERE = Path(__file__).resolve().parent.parent
PLATEAU = HERE / "results" / "plateau"
BENCH = HERE / "results" / "cpu" / "bench.csv"
CONTEXT = HERE / "results" / "cpu" / "context.csv"
LOCK = commits.LOCK
"""The lock the records are committed under (:mod:`spineseg_core.study.commits`)."""

clock = time.monotonic
"""Seconds, for ``--hours`` (a test's fake clock stands in)."""

PIN_MESSAGE = "Budget seed: the code version it runs from (results/plateau/CODE)"


def git(*args: str) -> str:
    """``git args`` in :data:`HERE`, its output stripped (a failure raises :class:`ConfigError`)."""
    done = subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def checkout(commit: str) -> Path:
    """``.study-code/<commit[:12]>``, a detached worktree of ``commit``, made if absent."""
    code = HERE / ".study-code" / commit[:12]
    if not code.is_dir():
        git("worktree", "add", "--detach", str(code), commit)
    return code


def committed_head(who: str) -> tuple[str, str]:
    """HEAD and its fingerprint, refused (``who`` first in the line) when the fingerprinted
    files of this checkout are not HEAD's: a pin names a commit."""
    head = git("rev-parse", "HEAD")
    pinned, mine = commit_fingerprint(head, HERE), source_fingerprint(HERE)
    if mine != pinned:
        raise ConfigError(f"{who}: the fingerprinted files (fingerprint.SOURCE_PATTERNS) have "
                          f"uncommitted changes (fingerprint {short(mine)}, HEAD {head[:7]}'s "
                          f"{short(pinned)}); commit them first, a pin names a commit")
    return head, pinned


def pin_head() -> None:
    """Pin HEAD in ``results/plateau/CODE`` (written atomically), refused when the fingerprinted
    files of this checkout are not HEAD's: the seed's runs would not be of the commit pinned."""
    from spineseg_core import io

    head, pinned = committed_head(f"{HERE}")
    io.write_text(PLATEAU / "CODE", f"{head} {pinned}\n")


def pinned_code(pin: Path | None = None) -> Path:
    """The pinned checkout (``.study-code/<commit>``), made if absent, checked against the
    fingerprint pinned in ``pin`` (default ``results/plateau/CODE``; refused when missing)."""
    pin = PLATEAU / "CODE" if pin is None else pin
    code = checkout(read_pin(pin)[0]) if pin.is_file() else HERE  # verify_pin refuses no pin
    verify_pin(pin, code)
    return code


def mended_code(model: str) -> Path:
    """The checkout of ``model``'s own pin (``results/plateau/CODE.<model>``), made if absent
    and checked against the fingerprint it pins."""
    return pinned_code(mend_pin_path(PLATEAU, model))


def pin_mend(model: str, runs_dir: Path) -> tuple[str, list[Path]]:
    """Pin HEAD as ``model``'s own code version (:func:`mend_pin_path`), refused (one line)
    unless the study's pin holds ``model`` (:data:`~spineseg_core.study.schedule.HOLDS`),
    the model has no pin of its own yet, HEAD holds the hold's mend and its fingerprinted files
    are committed. Its records from the study's pin move to :data:`SUPERSEDED` under
    ``results/plateau`` and its checkpoints beside ``runs_dir``. The commit pinned and the
    record folders moved."""
    from spineseg_core import io
    from spineseg_core.study.schedule import HOLDS

    study = read_pin(PLATEAU / "CODE")[0] if (PLATEAU / "CODE").is_file() else None
    hold = next((h for h in HOLDS if h.model == model and study is not None
                 and study.startswith(h.commit)), None)
    if hold is None:
        raise ConfigError(f"--mend {model}: the study's pin ({PLATEAU / 'CODE'}) does not hold "
                          f"{model} (study.schedule.HOLDS); it runs from that pin")
    pin = mend_pin_path(PLATEAU, model)
    if pin.is_file():
        raise ConfigError(f"--mend {model}: {pin} already pins it at "
                          f"{read_pin(pin)[0][:12]}; a pin is made once")
    head = git("rev-parse", "HEAD")
    if subprocess.run(["git", "merge-base", "--is-ancestor", hold.mend, head], cwd=HERE,
                      capture_output=True).returncode != 0:
        raise ConfigError(f"--mend {model}: HEAD {head[:7]} does not hold the mend "
                          f"{hold.mend[:7]}; pin a commit after it")
    head, pinned = committed_head(f"--mend {model}")
    moves = [(run, new / run.relative_to(old)) for old, new in (
        (PLATEAU / "runs", PLATEAU / SUPERSEDED / study[:12]),
        (runs_dir, runs_dir.with_name(f"{runs_dir.name}-{SUPERSEDED}")))
        for run in (sorted(old.glob(f"*/{model}")) if old.is_dir() else [])]
    clash = next((target for _, target in moves if target.exists()), None)
    if clash is not None:  # checked before anything moves
        raise ConfigError(f"--mend {model}: {clash} exists; move it away first")
    for run, target in moves:
        target.parent.mkdir(parents=True, exist_ok=True)
        run.rename(target)
    io.write_text(pin, f"{head} {pinned}\n")
    return head, [t for _, t in moves if t.is_relative_to(PLATEAU)]


def code_version(seed: bool, dry_run: bool) -> tuple[Path, bool]:
    """The checkout the runs are made from and whether this start pinned it. Without a pin the
    seed (``seed``) pins HEAD, or, in a dry run, plans from HEAD's checkout without pinning;
    the other parts follow the seed's pin and refuse without one."""
    if (PLATEAU / "CODE").is_file() or not seed:
        return pinned_code(), False
    if dry_run:
        head = git("rev-parse", "HEAD")
        code = checkout(head)
        clean = commit_fingerprint(head, HERE) == source_fingerprint(HERE)
        print(f"no pin yet ({PLATEAU / 'CODE'}): planned from HEAD {head[:12]}, which a start "
              + ("pins" if clean else "refuses to pin while the fingerprinted files have "
                 "uncommitted changes"))
        return code, False
    pin_head()
    return pinned_code(), True


def pinned_steps(code: Path) -> int:
    """``CPU_STEPS`` of the pinned code (B)."""
    out = subprocess.run([sys.executable, "-c", "from spineseg_core.training.config import "
                          "CPU_STEPS; print(CPU_STEPS)"], cwd=code, check=True, text=True,
                         capture_output=True, env={**os.environ, "PYTHONPATH": str(code)})
    return int(out.stdout)


def check_models(models: Sequence[str]) -> None:
    """Refuse, in one line, a model the registry does not know."""
    from spineseg_core.models import list_models

    unknown = [m for m in models if m not in list_models(None)]
    if unknown:
        raise ConfigError(f"--models: unknown model {', '.join(unknown)}; known: "
                          f"{', '.join(list_models(None))}")


def plan(parts: Sequence[str], steps: int, raised: bool,
         models: Sequence[str] | None = None) -> list[ScheduledRun]:
    """The runs of ``parts`` at B = ``steps`` (passed as ``-p steps`` when ``raised`` above the
    pinned code's), in :data:`PARTS` order; ``models`` keeps those models (in the seed, in the
    order given)."""
    runs = seed_plan(steps, raised, models=models or SEED_ORDER) if SEED_PART in parts else []
    return runs + [r for r in rerun_plan(steps, raised) if r.part in parts
                   and (not models or r.spec.model in models)]


def seconds_per_step(models: set[str], records: Path
                     ) -> tuple[dict[str, float], float | None]:
    """Wall-clock seconds per step, validation included: a model's own runs in ``records``
    (and those moved to :data:`SUPERSEDED` beside it: :func:`~spineseg_core.study.schedule.
    rate_stamps`) where it has some, else the committed benchmark's model-only rate
    (``results/cpu/bench.csv``) scaled by the factor returned
    (:func:`spineseg_core.study.schedule.wall_priced`); the 3D U-Net, before it has a run
    here, by its ratio to the others in the 6-epoch bundle's context runs (``context.csv``;
    :func:`~spineseg_core.study.schedule.plan_rates`)."""
    return plan_rates(bench_seconds_per_step(pd.read_csv(BENCH)),
                      wall_rates(rate_stamps(records.parent)),
                      pd.read_csv(CONTEXT) if CONTEXT.is_file() else None, sorted(models))


def study_command(run: ScheduledRun, runs_dir: Path, records: Path) -> list[str]:
    """``spineseg study`` making ``run`` alone (checkpoints in ``runs_dir``, its record in
    ``records``)."""
    return [sys.executable, "-m", "spineseg_core", "study", *run.study_args(), "--runs-dir",
            str(runs_dir), "--records-dir", str(records), "--no-aggregate", "--poll-s", "30"]


def hardcases_command(group: str, runs_dir: Path, records: Path) -> list[str]:
    """``spineseg hardcases`` scoring the finished runs of ``group`` in ``runs_dir``."""
    return [sys.executable, "-m", "spineseg_core", "hardcases", "--runs-dir", str(runs_dir),
            "--groups", group, "--records-dir", str(records)]


def aggregate_command(records: Path) -> list[str]:
    """``spineseg aggregate`` remaking the plateau bundle (``results/plateau``) from
    ``records``, with the no-learning baseline; a model with a pin of its own there
    (``CODE.<model>``) is of its own code version (``--pins``)."""
    return [sys.executable, "-m", "spineseg_core", "aggregate", "--profile", "cpu", "--runs-dir",
            str(records), "--out", str(PLATEAU), "--pins", str(PLATEAU), "--baseline"]


def spineseg(command: list[str], code: Path, last_line: bool = False) -> bool:
    """Run ``command`` from the pinned checkout ``code`` (its package first on the path);
    ``last_line``: print only the last line of its output. Whether it succeeded."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    if not last_line:
        return subprocess.run(command, cwd=code, env=env).returncode == 0
    done = subprocess.run(command, cwd=code, env=env, stdout=subprocess.PIPE, text=True)
    lines = done.stdout.strip().splitlines()
    if lines:
        print(lines[-1], flush=True)
    return done.returncode == 0


def commit(message: str) -> None:
    """Commit ``results/plateau`` alone, under :data:`LOCK`."""
    commits.commit_paths(HERE, ["results/plateau"], message, LOCK)


def message(run: ScheduledRun, steps: int) -> str:
    """The commit message of ``run``'s record."""
    if run.part == SEED_PART:
        at = "B" if run.spec.group == run.spec.profile else "B/2"
        return f"Budget seed: {run.spec.model} at {at} = {run.steps} steps, seed {run.spec.seed}"
    return f"Plateau re-run ({run.part}): {run.spec.label()} in {run.spec.group}, {steps} steps"


def bundle_message(run: ScheduledRun, steps: int) -> str:
    """The commit message of the bundle remade after ``run``: at B, the model's plateau label
    and scores from ``plateau.csv`` and the budget's count so far; else the run it adds."""
    from spineseg_core.models import list_models, model_info
    from spineseg_core.study.plateau import budget_verdict

    table = pd.read_csv(PLATEAU / "plateau.csv") if (PLATEAU / "plateau.csv").is_file() else None
    rows = (table[(table["model"] == run.spec.model) & (table["steps"] == steps)]
            if table is not None else pd.DataFrame())
    name = model_info(run.spec.model).display_name
    at_b = run.spec.group == run.spec.profile and run.steps == steps
    if not at_b or rows.empty or pd.isna(rows["val_dice"].iloc[0]):
        return f"results/plateau: the bundle with {name} in {run.spec.group} ({run.steps} steps)"
    row = rows.iloc[0]
    _, done, measured = budget_verdict(table, list_models())
    return (f"results/plateau: {name} at B = {steps} (validation Dice "
            f"{100 * row['val_dice']:.1f} % against {100 * row['half_val_dice']:.1f} % at B/2 = "
            f"{int(row['half_steps'])}: "
            f"{row['label']}); {done} of {measured} measured at {steps} plateaued")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                    help="parts of the plan, made in the order of the choices")
    ap.add_argument("--steps", type=int, help="B (default: results/plateau/budget.json where "
                    "the budget was raised, else the pinned code's CPU_STEPS; another value is "
                    "refused); passed to the runs as -p steps when it differs from CPU_STEPS")
    ap.add_argument("--models", nargs="+", metavar="MODEL",
                    help="only these models (default: every model of each part; the seed's in "
                    "study.schedule.SEED_ORDER)")
    ap.add_argument("--runs-dir", type=Path, default=HERE / "runs" / "plateau",
                    help="checkpoints, never committed")
    ap.add_argument("--hours", type=float, metavar="H",
                    help="start only runs whose price ends within the H hours from now that "
                    "are left; skip the others for a later sitting (default: every run)")
    ap.add_argument("--dry-run", action="store_true",
                    help="list the plan, each run's status and the hours; run nothing")
    ap.add_argument("--no-commit", action="store_true",
                    help="do not commit the pin and the records as they land")
    ap.add_argument("--no-aggregate", action="store_true",
                    help="do not remake the bundle (results/plateau) after each record")
    ap.add_argument("--mend", metavar="MODEL",
                    help="pin HEAD as the code version of MODEL, a model the study's pin holds "
                    "(study.schedule.HOLDS), move its records from that pin to "
                    "results/plateau/superseded/, commit, and stop; its runs are then made "
                    "from HEAD's checkout")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    records = PLATEAU / "runs"
    runs_dir = args.runs_dir.resolve()
    if args.mend:
        mend(args, records, runs_dir)
        return
    try:
        if args.models:
            check_models(args.models)
        if args.hours is not None and not args.hours > 0:
            raise ConfigError(f"--hours: expected a positive number of hours, got {args.hours:g}")
        code, pinned_now = code_version(SEED_PART in args.parts, args.dry_run)
        pinned = pinned_steps(code)
        steps = budget_in_force(PLATEAU, pinned, args.steps)
        runs = plan(args.parts, steps, steps != pinned, args.models)
    except (ConfigError, DataError, OSError) as e:
        sys.exit(f"plateau_rerun: {e}")
    if pinned_now and not args.no_commit:
        commit(PIN_MESSAGE)
    try:
        codes = {m: mended_code(m) for m in mend_pins(PLATEAU)
                 if any(r.spec.model == m for r in runs)}
    except (ConfigError, DataError, OSError) as e:
        sys.exit(f"plateau_rerun: {e}")
    holds = held(code.name, mended=codes)
    todo = [r for r in runs if not r.recorded(records) and r.spec.model not in holds]
    rate, factor = seconds_per_step({r.spec.model for r in runs}, records)
    # each checkpoint read once; keyed by id() because a run holds a dict of params (unhashable)
    made = {id(r): steps_done(r.spec.run_dir(runs_dir)) for r in todo}

    def need(r: ScheduledRun) -> float:
        """Hours ``r`` still needs, resumed from its checkpoint in ``runs_dir`` if any."""
        return run_hours(r, rate, 128, made[id(r)])

    unpriced = sorted({r.spec.model for r in todo} - set(rate))
    priced = [r for r in todo if r.spec.model in rate]  # the same price as --hours
    hours = plan_cost(priced, rate, 128, [made[id(r)] for r in priced])
    scaled = f" x {factor:.2f}" if factor is not None else ""
    recorded = sum(r.recorded(records) for r in runs)
    print(f"code {code.name}, B = {steps} steps; {recorded} of {len(runs)} runs "
          f"recorded; to do, wall-clock hours at the recorded runs' step rates, else the "
          f"committed benchmark's (results/cpu/bench.csv){scaled}, else by the ratio to "
          f"those in results/cpu/context.csv: "
          + ", ".join(f"{p} {h:.1f}" for p, h in hours.items())
          + (f" (not priced: {', '.join(unpriced)})" if unpriced else ""), flush=True)
    for model in sorted({r.spec.model for r in runs} & set(holds)):
        print(f"{model} held: {holds[model]}", flush=True)
    for model, own in sorted(codes.items()):
        print(f"{model} runs from its own pin, code {own.name} "
              f"({mend_pin_path(PLATEAU, model).name})", flush=True)

    if args.dry_run:
        fits = fits_in_turn([need(r) for r in todo], math.inf if args.hours is None else args.hours)
        later = {id(r) for r, ok in zip(todo, fits, strict=True) if not ok}
        for r in runs:
            state = ("recorded" if r.recorded(records) else "held" if r.spec.model in holds
                     else f"later (--hours {args.hours:g})" if id(r) in later else "to do")
            print(f"  {r.part:8} {r.spec.group:18} {r.spec.model:20} seed {r.spec.seed}  {state}")
        return
    clashes = [c for r in todo if (c := budget_clash(r.spec.run_dir(runs_dir), r.steps))]
    if clashes:  # the pinned runner would skip or resume them as runs of this budget
        sys.exit(f"plateau_rerun: {clashes[0]}" + (f" (and {len(clashes) - 1} more)"
                                                   if len(clashes) > 1 else ""))
    deadline = None if args.hours is None else clock() + 3600 * args.hours
    for r in todo:
        if deadline is not None and (wanted := need(r)) > (left := (deadline - clock()) / 3600):
            print(f"{r.spec.group} {r.spec.model} seed {r.spec.seed}: left for a later sitting, "
                  f"it needs about {wanted:.1f} h and {max(left, 0):.1f} h of --hours "
                  f"{args.hours:g} are left", flush=True)
            continue
        own = codes.get(r.spec.model, code)
        done = spineseg(study_command(r, runs_dir, records), own)
        if done and r.spec.group == r.spec.profile:  # the main group (the context models' too)
            spineseg(hardcases_command(r.spec.group, runs_dir, records), own, last_line=True)
        if not args.no_commit:
            commit(message(r, steps))
        bundled = done and not args.no_aggregate and spineseg(aggregate_command(records), HERE,
                                                              last_line=True)
        if bundled and not args.no_commit:
            commit(bundle_message(r, steps))


def mend(args: argparse.Namespace, records: Path, runs_dir: Path) -> None:
    """``--mend``: :func:`pin_mend`, then (unless ``--no-commit``) commit the pin with the
    records moved, and remake the bundle without them (unless ``--no-aggregate``)."""
    try:
        check_models([args.mend])
        head, moved = pin_mend(args.mend, runs_dir)
    except (ConfigError, DataError, OSError) as e:
        sys.exit(f"plateau_rerun: {e}")
    where = (f"; its {len(moved)} record{'s' * (len(moved) != 1)} from the study's pin moved to "
             f"results/plateau/{SUPERSEDED}/" if moved else "")
    print(f"{args.mend}: pinned at {head[:12]} ({mend_pin_path(PLATEAU, args.mend)}){where}",
          flush=True)
    if not args.no_commit:
        commit(f"Budget seed: {args.mend} runs from its own pin, {head[:7]}, which holds the "
               f"mend of its hold (results/plateau/CODE.{args.mend}){where}")
    bundled = not args.no_aggregate and spineseg(aggregate_command(records), HERE, last_line=True)
    if bundled and not args.no_commit:
        commit(f"results/plateau: the bundle without {args.mend}'s records from the study's pin")


if __name__ == "__main__":
    main()
