"""``spineseg main``: the study's main job, end to end, on the embedded default.

In order: generate (once) and check the phantom, run the study (every model, skipping finished
runs and resuming interrupted ones; then the loss comparison and, when asked, the context
study), score the finished runs on the phantom's hard cases (``spineseg hardcases``), measure
efficiency and speed, aggregate the results bundle, measure level identification (``spineseg
levels``, for the study and the context study, each with its hard cases) and build the book.
Each step is one of the other sub-commands, so every step can also be run on its own; ``make
main`` calls this.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from spineseg_core.errors import ConfigError, SpinesegError
from spineseg_core.fingerprint import REPO

HELP = ("the main job: phantom, check, study, hard cases, efficiency, bench, aggregate, levels, "
        "book")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from spineseg_core.study.loss_study import LOSS_MODELS

    parser.add_argument("--profile", default="cpu", help="training profile (default: cpu)")
    parser.add_argument("--models", nargs="+", metavar="MODEL", help="default: all twelve")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="S",
                        help="training seeds of the study and the context study")
    parser.add_argument("--data-dir", type=Path,
                        help="real data (MRSpineSeg or SPIDER layout); default: the phantom")
    parser.add_argument("--loss-models", nargs="*", default=list(LOSS_MODELS),
                        metavar="MODEL", help="models also trained with every loss other than "
                        "the default, for the loss chapter (none: skip)")
    parser.add_argument("--context-models", nargs="*", default=[], metavar="MODEL",
                        help="models of the context study (group <profile>-context, e.g. unet "
                        "unet_25d3 unet3d; scripts/context_study.sh runs all seven); default: "
                        "none")
    parser.add_argument("--steps", type=int, metavar="N",
                        help="optimiser steps of every run (default: on the cpu profile, the "
                        "study's budget: results/plateau/budget.json where it was raised, "
                        "else CPU_STEPS; on the others, their own budget)")
    parser.add_argument("--no-hard-cases", action="store_true",
                        help="skip `spineseg hardcases` (the runs on the phantom's hard cases)")
    parser.add_argument("--no-bench", action="store_true", help="skip `spineseg bench`")
    parser.add_argument("--no-book", action="store_true", help="skip the book build")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"),
                        help="parent of the run folders (git-ignored)")
    parser.add_argument("--results-dir", type=Path, default=LOCAL_RESULTS,
                        help="the bundle goes to <results-dir>/<profile>/ and the book is "
                             "built from it; the default is git-ignored and leaves the "
                             "committed bundle results/<profile>/ as it is; 'results' remakes "
                             "that one")
    parser.add_argument("--dry-run", action="store_true",
                        help="say what would run (models, groups, runs already finished, "
                             "estimated disk) and train nothing")


def other_losses() -> list[str]:
    """The losses of the loss comparison: every one but the profiles' default."""
    from spineseg_core.losses import LossName
    from spineseg_core.training.config import TrainConfig

    return [str(n) for n in LossName if n != TrainConfig.loss]


def _step(title: str, argv: list[str]) -> None:
    from spineseg_core.cli import main as cli_main

    print(f"\n=== {title}: spineseg {' '.join(argv)}", flush=True)
    t0 = time.perf_counter()
    code = cli_main(argv)
    print(f"=== {title}: {'ok' if code == 0 else f'exit {code}'} "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    if code != 0:
        raise SpinesegError(f"step '{title}' failed (exit {code}); fix it and run again: "
                            "finished work is kept")


REPO_ROOT = REPO

LOCAL_RESULTS = Path("results") / "local"
"""``spineseg main``'s default results folder (git-ignored): the committed bundle
``results/<profile>/`` is remade only when asked (``--results-dir results``)."""


def where_results_go(results_dir: Path, profile: str) -> str:
    """One line saying where the bundle goes and whether it replaces the committed one."""
    bundle = results_dir.resolve() / profile
    committed = (REPO_ROOT / "results").resolve()
    if results_dir.resolve() == committed:
        return (f"main: remaking the committed bundle {bundle} (the runs' files there are "
                "replaced; git shows what changed)")
    return (f"main: results go to {bundle}; the committed bundle {committed / profile} stays "
            f"as it is (the book reads these with SPINESEG_RESULTS_DIR={results_dir.resolve()})")


def _dry_run(args: argparse.Namespace, models: list[str], common: list[str],
             data_args: list[str]) -> int:
    """Each study step's plan (``spineseg study --dry-run``: runs, finished or not) and the
    disk the runs need, without training."""
    from collections import Counter

    from spineseg_core.models import list_models
    from spineseg_core.study.context_study import STUDY as CONTEXT
    from spineseg_core.training.config import resolve_config
    from spineseg_core.training.run_folder import estimate_run_disk

    seeds = [*map(str, args.seeds)]
    steps = [("study", ["--models", *models] if models else [])]
    runs = Counter({m: len(args.seeds) for m in models or list_models()})
    if args.loss_models:
        steps.append(("loss comparison", ["--models", *args.loss_models, "--losses",
                                          *other_losses()]))
        runs.update({m: len(other_losses()) for m in args.loss_models})
    if args.context_models:
        steps.append(("context study", ["--models", *args.context_models, "--variant",
                                        CONTEXT]))
        runs.update({m: len(args.seeds) for m in args.context_models})
    for title, argv in steps:
        seed_args = [] if title == "loss comparison" else ["--seeds", *seeds]
        _step(f"{title} (dry run)", ["study", *common, *argv, *seed_args, "--no-aggregate",
                                     "--dry-run", *data_args])
    print("\n=== disk (every planned run, finished ones included; the CSV and JSON files not "
          "counted)")
    def mb(n: float) -> str:
        return f"{n / 1e6:.1f}" if n < 1e7 else f"{n / 1e6:.0f}"

    total = peak = 0
    for model, n in runs.items():
        data_dir = {"data_dir": str(args.data_dir)} if args.data_dir else {}
        est = estimate_run_disk(resolve_config(args.profile, model=model, **data_dir))
        preds = "?" if est.predictions is None else mb(est.predictions)
        print(f"{model:<20} {n} run{'s' if n > 1 else ' '} x {mb(est.kept):>5} MB kept "
              f"(weights {mb(est.weights)} MB, predictions <= {preds} MB); "
              f"{mb(est.last)} MB more while training")
        total += n * est.kept
        peak = max(peak, est.last)
    print(f"total: about {total / 1e9:.1f} GB kept, plus {peak / 1e9:.1f} GB at most while "
          "a run trains (its checkpoint_last.pt, deleted when it finishes)")
    print("then: hard cases, efficiency, bench, aggregate, levels and the book, "
          "which train nothing")
    print(where_results_go(args.results_dir, args.profile))
    return 0


def budget_args(profile: str, steps: int | None) -> list[str]:
    """The study's ``-p steps`` for the main job's runs: ``steps`` when given; on the cpu
    profile, the study's budget in force (:func:`~spineseg_core.study.budget_raise.
    budget_in_force`: ``budget.json`` where the budget seed raised it, else the code's
    ``CPU_STEPS``; on ``main`` the two agree), so that ``make main`` trains at the budget the
    book reports; nothing when that is the profile's own."""
    from spineseg_core.study.budget_raise import budget_in_force
    from spineseg_core.training.config import CPU_STEPS

    if steps is not None:
        if steps < 1:
            raise ConfigError(f"--steps {steps}: expected a positive number of steps")
        return ["-p", "steps", str(steps)]
    if profile != "cpu":
        return []
    study = budget_in_force(REPO / "results" / "plateau", CPU_STEPS)
    return [] if study == CPU_STEPS else ["-p", "steps", str(study)]


def main_device() -> str:
    """The main job's device, as the study's ``device=auto`` resolves it here: ``cuda`` when
    a GPU is usable, else ``cpu``."""
    from spineseg_core.training.device import resolve_device

    return resolve_device("auto").type


def _monai_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("monai") is not None


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    # Absolute paths: the notebooks run with the repository as their working directory.
    args.runs_dir = args.runs_dir.resolve()
    args.results_dir = args.results_dir.resolve()
    if args.data_dir is not None:
        args.data_dir = args.data_dir.resolve()
    results = args.results_dir / args.profile
    models = args.models or []
    model_args = ["--models", *models] if models else []
    data_args = ["-p", "data_dir", str(args.data_dir)] if args.data_dir else []
    data_args += budget_args(args.profile, args.steps)
    common = ["--profile", args.profile, "--runs-dir", str(args.runs_dir),
              "--results-dir", str(args.results_dir)]
    print(where_results_go(args.results_dir, args.profile), flush=True)
    if args.dry_run:
        return _dry_run(args, models, common, data_args)

    if args.data_dir is None:
        from spineseg_core.data.prepare import data_root
        from spineseg_core.training.config import resolve_config

        cfg = resolve_config(args.profile)
        print(f"=== phantom: {cfg.phantom_cases} cases at {cfg.phantom_size} px", flush=True)
        root = data_root(cfg)  # generated once into the cache, reused afterwards
        _step("check", ["check", str(root)])
    else:
        _step("check", ["check", str(args.data_dir)])

    _step("study", ["study", *common, *model_args, "--seeds", *map(str, args.seeds),
                    "--no-aggregate", *data_args])
    if args.loss_models:
        _step("loss comparison", ["study", *common, "--models", *args.loss_models,
                                  "--losses", *other_losses(), "--no-aggregate",
                                  *data_args])
    from spineseg_core.report.context import STUDY as CONTEXT, group as context_group

    groups = [args.profile]
    if args.context_models:
        groups.append(context_group(args.profile))
        _step("context study", ["study", *common, "--models", *args.context_models,
                                "--variant", CONTEXT, "--seeds", *map(str, args.seeds),
                                "--no-aggregate", *data_args])
    # The study's runs train where `auto` puts them; their hard cases and the efficiency
    # table are measured on the same device (a GPU run's bf16 replayed on the CPU is slow,
    # and emulated where the CPU lacks bf16 units).
    device = ["--device", main_device()]
    if args.data_dir is None and not args.no_hard_cases:  # hard cases are the phantom's
        _step("hard cases", ["hardcases", "--runs-dir", str(args.runs_dir), "--groups", *groups,
                             *device])
    _step("efficiency", ["efficiency", "--profile", args.profile, *model_args, *device,
                         "--out", str(results / "efficiency.csv")])
    if not args.no_bench:
        # MONAI is the optional `bench` extra: the side by side runs when it is installed.
        monai = ["--monai"] if _monai_available() else []
        _step("bench", ["bench", "--profile", args.profile, *model_args, *monai,
                        "--out", str(results / "bench.csv")])
    _step("aggregate", ["aggregate", "--profile", args.profile, "--runs-dir",
                        str(args.runs_dir), "--out", str(results)])
    from spineseg_core.levels.study import bundle_folder

    for group in groups:  # where the level and context chapters read them
        out = results / bundle_folder(group)
        _step(f"levels ({group})", ["levels", "--runs-dir", str(args.runs_dir), "--group", group,
                                    "--out", str(out)])
    if not args.no_book:
        # The jupyter-book of this environment (1.x, which can import spineseg_core) first.
        own = Path(sys.executable).with_name("jupyter-book")
        book = str(own) if own.exists() else shutil.which("jupyter-book")
        if book is None:
            raise SpinesegError("jupyter-book is not installed in this environment")
        print(f"\n=== book: {book} build {REPO_ROOT / 'book'}", flush=True)
        env = dict(os.environ, SPINESEG_BOOK_PROFILE=args.profile,
                   SPINESEG_RESULTS_DIR=str(args.results_dir))
        # --all: Sphinx otherwise re-executes only the chapters whose source changed, and the
        # others would keep the numbers of the previous results.
        code = subprocess.call([book, "build", "--all", str(REPO_ROOT / "book")], env=env,
                               cwd=REPO_ROOT)
        if code != 0:
            raise SpinesegError(f"book build failed (exit {code})")
        print("=== book: _build/html/index.html")
    print(f"\nmain: done in {(time.perf_counter() - t0) / 60:.1f} min")
    print(where_results_go(args.results_dir, args.profile))
    return 0
