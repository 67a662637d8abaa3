"""``spineseg record``: the finished runs of a runs folder → their committed records
(see :mod:`spineseg_core.study.records`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from spineseg_core.errors import ConfigError

HELP = "copy each finished run's small record (no checkpoints) into a records folder to commit"


def _rename(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not sep or not old or not new:
        raise argparse.ArgumentTypeError(f"expected GROUP=NEW_GROUP, got {text!r}")
    return old, new


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs_dir", type=Path, help="runs folder (<group>/<model>/seed_<s>/fold_<f>/)")
    parser.add_argument("records_dir", type=Path,
                        help="records folder, e.g. results/cpu/runs (same layout)")
    parser.add_argument("--group", type=_rename, action="append", default=[],
                        metavar="GROUP=NEW", help="record a group under another name, e.g. "
                        "cpu=cpu-res256 for runs of a variant made in their own runs folder")


def run(args: argparse.Namespace) -> int:
    from spineseg_core.study.records import record_runs

    if not args.runs_dir.is_dir():
        raise ConfigError(f"runs_dir: {args.runs_dir} is not a folder")
    written = record_runs(args.runs_dir, args.records_dir, dict(args.group))
    for path in written:
        print(f"recorded {path}")
    print(f"{len(written)} new records in {args.records_dir}")
    return 0
