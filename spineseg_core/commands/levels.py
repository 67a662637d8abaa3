"""``spineseg levels``: level identification and relabelling from the sacrum, measured on a
group's committed records (see :mod:`spineseg_core.levels.study`)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("level identification before/after relabelling from the sacrum, from the committed "
        "records of a group (and of its hard-case groups, against it); write tidy CSVs")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", type=Path, default=Path("results/cpu/runs"),
                        help="folder of run records (default: results/cpu/runs)")
    parser.add_argument("--group", default="cpu", help="group of records to read (default: cpu)")
    parser.add_argument("--out", type=Path,
                        help="output folder (default: <runs-dir>/../levels for a profile's "
                             "own group, e.g. results/cpu/levels; <runs-dir>/../levels/<group> "
                             "for any other, e.g. results/cpu/levels/cpu-context)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from spineseg_core.levels.hard import hard_case_study
    from spineseg_core.levels.study import default_out, level_study

    out = args.out or default_out(args.runs_dir, args.group)
    written = level_study(args.runs_dir, out, args.group, n_boot=args.n_boot, seed=args.seed)
    written.update(hard_case_study(args.runs_dir, args.group, out, n_boot=args.n_boot,
                                   seed=args.seed))
    summary = pd.read_csv(written["summary"])
    right = summary[summary["metric"] == "all_levels_right"]
    right = right.pivot(index="display_name", columns="stage", values="point").reindex(
        list(dict.fromkeys(right["display_name"])))  # the registry's (the paper's) order
    for model, row in right.iterrows():
        print(f"{model}: all levels right {100 * row['predicted']:.1f} % as predicted, "
              f"{100 * row['relabelled']:.1f} % relabelled")
    print(f"wrote {', '.join(str(p) for p in written.values())}")
    return 0
