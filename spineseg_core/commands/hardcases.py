"""``spineseg hardcases``: score finished runs on the phantom's hard-case sets
(see :mod:`spineseg_core.study.hard_cases`)."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from spineseg_core.errors import ConfigError

HELP = ("score finished runs (their best checkpoints) on the phantom's hard cases: transitional "
        "vertebrae, fields of view without the sacrum")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from spineseg_core.study.hard_cases import HardSet

    parser.add_argument("--runs-dir", type=Path, default=Path("runs"),
                        help="runs folder with checkpoints (<group>/<model>/seed_<s>/fold_<f>/)")
    parser.add_argument("--groups", nargs="+", default=["cpu", "cpu-context"],
                        help="groups of runs to score (default: cpu cpu-context)")
    parser.add_argument("--sets", nargs="+", choices=[h.value for h in HardSet],
                        default=[h.value for h in HardSet], help="hard-case sets (default all)")
    parser.add_argument("--out-runs", type=Path, default=None,
                        help="where the scored run folders go (default: --runs-dir)")
    parser.add_argument("--records-dir", type=Path, default=None,
                        help="also record each scored run there, e.g. results/cpu/runs")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")


def run(args: argparse.Namespace) -> int:
    from spineseg_core.study.hard_cases import score_runs

    if not args.runs_dir.is_dir():
        raise ConfigError(f"--runs-dir: {args.runs_dir} is not a folder")
    outcomes = score_runs(args.runs_dir, args.groups, args.out_runs or args.runs_dir,
                          sets=args.sets, records_dir=args.records_dir, device=args.device)
    for o in outcomes:
        print(f"{o.run_dir} [{o.hard.value}]: {o.note}")
    counts = Counter(o.note for o in outcomes)
    print("hardcases: " + (", ".join(f"{n} {note}" for note, n in sorted(counts.items()))
                           or "no finished runs in the groups given"))
    return 0
