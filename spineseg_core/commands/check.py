"""``spineseg check DIR``: validate a dataset folder and summarise it."""

from __future__ import annotations

import argparse

from spineseg_core.data.check import check_dataset
from spineseg_core.data.layout import SPIDER_SEQUENCES
from spineseg_core.errors import DataError, SpinesegError

HELP = "validate a dataset folder (MRSpineSeg, SPIDER or phantom) and print a summary"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_dir", metavar="DIR", help="dataset folder")
    parser.add_argument("--skip-bad", action="store_true",
                        help="list bad cases and exit 0 if enough usable cases remain")
    parser.add_argument("--sequences", nargs="+", default=["t2"], type=str.lower,
                        choices=SPIDER_SEQUENCES,
                        help="SPIDER series to use (default: t2)")


def run(args: argparse.Namespace) -> int:
    report = check_dataset(args.data_dir, sequences=tuple(args.sequences))
    print(report.format())
    if args.skip_bad:
        for path, problem in report.problems:
            print(f"skipped: {path}: {problem}")
        if report.n_labelled == 0:
            raise DataError(args.data_dir, "no usable labelled case")
        return 0
    if report.problems:
        raise SpinesegError("\n".join(f"{path}: {problem}" for path, problem in report.problems))
    if report.n_labelled == 0:
        raise DataError(args.data_dir, "no usable labelled case")
    return 0
