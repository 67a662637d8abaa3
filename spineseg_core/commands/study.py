"""``spineseg study``: run the training notebook for every (model, seed, fold[, loss]), then
aggregate the results (see :mod:`spineseg_core.study.runner`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from spineseg_core.errors import ConfigError
from spineseg_core.study.runner import (
    DEFAULT_NOTEBOOK,
    RESERVED_PARAMETERS,
    Executor,
    RunOutcome,
    parse_parameter,
    plan_study,
    run_study,
)
from spineseg_core.study.slurm import (
    SlurmOptions,
    check_cluster,
    check_options,
    default_gpus,
    default_mem_gb,
    parse_sbatch_options,
)

HELP = "run the study's training runs through papermill (locally or on Slurm), then aggregate"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="cpu", help="training profile (default: cpu)")
    parser.add_argument("--models", nargs="+", metavar="MODEL",
                        help="models to run (default: all twelve)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="S",
                        help="training seeds: one run per model and seed")
    parser.add_argument("--folds", nargs="+", type=int, default=[0], metavar="F",
                        help="validation folds (0 alone with the single 8:2 split)")
    parser.add_argument("--losses", nargs="+", metavar="LOSS",
                        help="loss comparison: run every model once per loss, into "
                             "<runs-dir>/<profile>-loss-<loss>/ (default: the profile's loss, "
                             "into <runs-dir>/<profile>/)")
    parser.add_argument("--executor", type=Executor, choices=list(Executor),
                        default=Executor.LOCAL, help="local: one run after another here; "
                        "slurm: one job array on the cluster sbatch reaches (see the slurm "
                        "options; the runs folder must be on a filesystem its nodes share)")
    parser.add_argument("--variant", metavar="NAME",
                        help="a side study that changes parameters (-p) of every run: its runs "
                             "go into <runs-dir>/<profile>-<NAME>/ (e.g. --variant res256 "
                             "-p image_size 256), apart from the main runs")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"),
                        help="parent of the run folders")
    parser.add_argument("--records-dir", type=Path,
                        help="keep each finished run's small record here (e.g. "
                             "results/cpu/runs, to commit), skip runs recorded there, and "
                             "aggregate from the records")
    parser.add_argument("--results-dir", type=Path, default=Path("results"),
                        help="the aggregated bundle goes to <results-dir>/<profile>/")
    parser.add_argument("--notebook", type=Path, default=DEFAULT_NOTEBOOK,
                        help="training notebook each run executes")
    parser.add_argument("-p", "--param", nargs=2, action="append", default=[],
                        metavar=("KEY", "VALUE"), help="extra notebook parameter (repeatable)")
    parser.add_argument("--dry-run", action="store_true",
                        help="list the planned runs and their status; run nothing")
    parser.add_argument("--no-aggregate", action="store_true", help="skip the aggregation")
    parser.add_argument("--poll-s", type=float, default=5.0, metavar="S",
                        help="seconds between looks at the runs' progress and the queue")
    slurm = parser.add_argument_group(
        "slurm", "resources of each array task (with --executor slurm); checked against "
        "sinfo before anything is submitted")
    slurm.add_argument("--slurm-partition", help="partition (default: the cluster's default)")
    slurm.add_argument("--slurm-gpus", type=int, metavar="N",
                       help="GPUs per run; 0 for a CPU partition (default: 1, or 0 for the "
                            "smoke and cpu profiles)")
    slurm.add_argument("--slurm-gres", metavar="NAME",
                       help="ask the GPUs as the generic resource NAME (--gres=NAME:N, e.g. "
                            "gpu or gpu:a100) instead of --gpus-per-node=N")
    slurm.add_argument("--slurm-account", help="account charged (default: your default)")
    slurm.add_argument("--slurm-qos", help="quality of service (default: the cluster's)")
    slurm.add_argument("--slurm-constraint", help="node features, e.g. 'a100|h100'")
    slurm.add_argument("--slurm-sbatch", action="append", default=[], metavar="OPTION[=VALUE]",
                       help="any other sbatch option, without its dashes (repeatable), e.g. "
                            "--slurm-sbatch mail-type=END --slurm-sbatch exclusive")
    slurm.add_argument("--slurm-timeout-min", type=int, default=SlurmOptions.timeout_min,
                       help="time limit per task; a run at its limit is requeued and resumes")
    slurm.add_argument("--slurm-cpus", type=int, default=SlurmOptions.cpus_per_task,
                       help="CPU cores per task")
    slurm.add_argument("--slurm-mem-gb", type=int, default=None,
                       help="memory per task in GB (default: the profile's, PROFILE_MEM_GB: "
                            "4 smoke, 6 cpu, 32 paper)")
    slurm.add_argument("--slurm-parallelism", type=int, default=SlurmOptions.array_parallelism,
                       help="array tasks running at once")


def _extra(pairs: list[list[str]]) -> dict:
    """The ``-p KEY VALUE`` pairs typed: ``overrides`` and the mapping parameters
    (``model_kwargs``, ``loss_kwargs``) as JSON by the notebook's own parser
    (:func:`~spineseg_core.training.config.parse_mapping`), so bad JSON is one line naming the
    parameter; any other value as papermill types it."""
    from spineseg_core.training.config import MAPPING_PARAMETERS, parse_mapping

    extra = {}
    for key, value in pairs:
        if key in RESERVED_PARAMETERS:
            raise ConfigError(f"-p {key}: set by the study; use --models/--seeds/--folds/--losses")
        if key == "overrides" or key in MAPPING_PARAMETERS:
            extra[key] = parse_mapping(f"-p {key}", value)
        else:
            extra[key] = parse_parameter(value)
    return extra


def _resolver(extra: dict):
    """``spec -> TrainConfig``: each planned run's configuration as the notebook will resolve
    it (profile, model and family defaults, then the study's ``-p`` values)."""
    from spineseg_core.training.config import PARAMETERS, resolve_config

    flat = dict(extra.get("overrides") or {})
    flat.update({k: v for k, v in extra.items() if k in PARAMETERS and k != "out_dir"})

    def resolve(spec):
        return resolve_config(spec.profile, model=spec.model, seed=spec.seed, fold=spec.fold,
                              **({"loss": spec.loss} if spec.loss else {}), **flat)

    return resolve


def epoch_target(cfg) -> int | None:
    """A run's epoch target for the plan: its ``epochs``, or ``None`` under a step budget."""
    return cfg.epochs if cfg.steps is None else None


def _validate(plan, extra: dict, notebook: Path) -> None:
    """Check the notebook parameters now, so a bad value is one error line here rather than
    a failed notebook per run (the configurations were resolved by the plan)."""
    from spineseg_core.study.runner import notebook_parameter_names, notebook_parameters

    if plan:
        notebook_parameters(plan[0].spec, plan[0].run_dir, False, extra,
                            notebook_parameter_names(notebook))


def slurm_options(args: argparse.Namespace, device: str = "auto") -> SlurmOptions:
    """The array tasks' resources from the command line, checked for the profile and against
    the cluster (``sinfo``), so a combination it would reject is one error line here."""
    options = SlurmOptions(
        timeout_min=args.slurm_timeout_min, cpus_per_task=args.slurm_cpus,
        mem_gb=default_mem_gb(args.profile) if args.slurm_mem_gb is None else args.slurm_mem_gb,
        partition=args.slurm_partition,
        gpus=default_gpus(args.profile) if args.slurm_gpus is None else args.slurm_gpus,
        gres=args.slurm_gres, account=args.slurm_account, qos=args.slurm_qos,
        constraint=args.slurm_constraint, array_parallelism=args.slurm_parallelism,
        sbatch=parse_sbatch_options(args.slurm_sbatch))
    check_options(options, args.profile, device)
    check_cluster(options)
    return options


def run(args: argparse.Namespace) -> int:
    from spineseg_core.models import list_models, model_info
    from spineseg_core.study.aggregate import aggregate

    models = [model_info(name).name for name in args.models or list_models()]
    extra = _extra(args.param)
    if args.poll_s <= 0:
        raise ConfigError(f"--poll-s {args.poll_s}: expected a positive number of seconds")
    # Absolute paths: the notebooks run with the repository as their working directory.
    args.runs_dir = args.runs_dir.resolve()
    args.results_dir = args.results_dir.resolve()
    if args.records_dir is not None:
        args.records_dir = args.records_dir.resolve()
    if extra.get("data_dir") is not None:
        extra["data_dir"] = str(Path(extra["data_dir"]).resolve())
    resolve = _resolver(extra)
    plan = plan_study(args.profile, models, args.seeds, args.folds, args.runs_dir, args.losses,
                      epochs_of=lambda spec: epoch_target(resolve(spec)), variant=args.variant,
                      records_dir=args.records_dir)
    _validate(plan, extra, args.notebook)
    slurm = None
    first = resolve(plan[0].spec)
    if args.executor is Executor.SLURM:
        # The device is checked on each node, where the run executes (a login node may
        # have no GPU); here only against the resources asked for.
        slurm = slurm_options(args, str(first.device))
    else:
        from spineseg_core.training.device import resolve_device

        resolve_device(first.device, first.profile)  # here, before any run starts
    if args.dry_run:
        for p in plan:
            print(f"{p.status:<8} {p.spec.label():<40} {p.run_dir}")
        counts = {s: sum(p.status == s for p in plan) for s in {p.status for p in plan}}
        print(f"{len(plan)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        return 0
    results = run_study(plan, args.runs_dir, executor=args.executor, extra=extra,
                        notebook=args.notebook, slurm=slurm, poll_s=args.poll_s,
                        records_dir=args.records_dir)
    failed = [r for r in results if r.outcome is RunOutcome.FAILED]
    done = sum(r.outcome is RunOutcome.DONE for r in results)
    skipped = sum(r.outcome is RunOutcome.SKIPPED for r in results)
    print(f"study {args.profile}: {done} run, {skipped} already finished, {len(failed)} failed")
    for r in failed:
        print(f"FAILED {r.spec.label()}: {r.error} (log: {r.error_log})")
    if failed:
        print("run the same command again to finish them: finished runs are skipped and "
              "interrupted ones resume from their last checkpoint")
    if not args.no_aggregate and len(failed) < len(results):
        bundle = aggregate(args.profile, args.records_dir or args.runs_dir,
                           args.results_dir / args.profile)
        print(f"results: {args.results_dir / args.profile} ({bundle['n_runs']} runs, "
              f"bundle {bundle['bundle_sha256'][:12]})")
    return 1 if failed else 0
