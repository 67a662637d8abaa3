"""``spineseg decide``: the protocol's choices made on validation runs (the default loss, the
stride rule's ``k``), printed with their tables and written beside the records
(:mod:`spineseg_core.study.decisions`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from spineseg_core.io import write_with

HELP = "choose the default loss and the stride rule's k from their validation runs (CSV tables)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--loss-records", type=Path, default=Path("results/cpu/runs"),
                        help="records folder holding the main and <main>-loss-<loss> groups "
                             "(default: results/cpu/runs)")
    parser.add_argument("--main-group", default="cpu",
                        help="the main group whose runs use the default loss (default: cpu)")
    parser.add_argument("--stride-records", type=Path, default=Path("results/cpu-stride/runs"),
                        help="records folder of the stride runs, scripts/stride_runs.sh "
                             "(default: results/cpu-stride/runs)")
    parser.add_argument("--profile", default="cpu",
                        help="profile whose grid the stride rule is applied to (default: cpu)")
    parser.add_argument("--out", type=Path, default=Path("results/decisions"),
                        help="folder for loss.csv, loss_runs.csv, stride.csv and stride_runs.csv "
                             "(default: results/decisions)")


def _show(title: str, table: pd.DataFrame) -> None:
    with pd.option_context("display.width", 200, "display.max_colwidth", 90,
                           "display.float_format", "{:.4f}".format):
        print(title)
        print(table.to_string(index=False))


def run(args: argparse.Namespace) -> int:
    from spineseg_core.study.decisions import loss_decision, stride_decision
    from spineseg_core.training.config import resolve_config

    args.out.mkdir(parents=True, exist_ok=True)

    def record(name: str, title: str, table: pd.DataFrame, chosen: pd.Series,
               runs: pd.DataFrame, verdict: str) -> None:
        write_with(args.out / f"{name}.csv",
                   lambda p: table.assign(chosen=chosen).to_csv(p, index=False))
        write_with(args.out / f"{name}_runs.csv", lambda p: runs.to_csv(p, index=False))
        _show(title, table)
        print(f"chosen: {verdict}")

    done = 0
    if args.loss_records.is_dir():
        loss, reason, table, runs = loss_decision(args.loss_records, main_group=args.main_group)
        record("loss", "default loss, on validation:", table, table["loss"] == loss, runs,
               f"{loss} ({reason})")
        done += 1
    if args.stride_records.is_dir():
        cfg = resolve_config(args.profile, phantom=True)
        k, table, runs = stride_decision(args.stride_records, cfg.image_size, cfg.crop_width)
        record("stride", "stride rule's k, on validation:", table, table["k"] == k, runs,
               f"k = {k}")
        done += 1
    print(f"{done} decision(s) written to {args.out}")
    return 0
