"""``spineseg efficiency``: parameters, MACs, training memory and throughput of the models."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from spineseg_core.io import write_with
from spineseg_core.measure.efficiency import PAPER_SIZE, efficiency_table
from spineseg_core.training.config import PROFILE_DEFAULTS, Profile

PAPER_BATCH: int = PROFILE_DEFAULTS[Profile.PAPER]["batch_size"]
"""The paper does not state its batch; the paper profile's (4) is the default here."""

HELP = "count parameters and MACs, measure memory and throughput; print and write a CSV"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", metavar="NAME",
                        help="models to measure (default: every registered model)")
    parser.add_argument("--size", type=int, default=PAPER_SIZE,
                        help=f"slice size for MACs and training memory (default: {PAPER_SIZE})")
    parser.add_argument("--measure-size", type=int, default=128,
                        help="slice height of the timed throughput runs (default: 128)")
    parser.add_argument("--measure-width", type=int,
                        help="slice width of the timed runs (default: the profile's training "
                             "input, e.g. the cpu profile's 64 px spine band at 128 px, as "
                             "`spineseg bench` times it)")
    parser.add_argument("--batch", type=int, default=PAPER_BATCH,
                        help=f"batch size of the memory and throughput runs (default: "
                             f"{PAPER_BATCH}, the paper profile's)")
    parser.add_argument("--device", default="cpu",
                        help="device for memory and throughput, e.g. cpu or cuda (default: cpu)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (default: 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default: 1)")
    parser.add_argument("--profile", default="cpu",
                        help="profile whose results folder receives the CSV (default: cpu)")
    parser.add_argument("--out", type=Path,
                        help="CSV to write (default: results/<profile>/efficiency.csv)")
    parser.add_argument("--no-throughput", action="store_true",
                        help="skip the timed runs (counts and memory only)")


def run(args: argparse.Namespace) -> int:
    width = args.measure_width
    if width is None:
        from spineseg_core.measure.speed import input_size
        from spineseg_core.training.config import resolve_config

        width = input_size(resolve_config(args.profile, image_size=args.measure_size))[1]
    table = efficiency_table(args.models, args.size, measure_size=args.measure_size,
                             measure_width=width,
                             batch=args.batch, device=args.device, profile=args.profile,
                             with_throughput=not args.no_throughput, steps=args.steps,
                             warmup=args.warmup)
    out = args.out or Path("results") / args.profile / "efficiency.csv"
    write_with(out, lambda p: table.to_csv(p, index=False))
    with pd.option_context("display.width", 200, "display.max_columns", None,
                           "display.float_format", "{:.2f}".format):
        print(table.drop(columns=["mem_method"]).to_string(index=False))
    print(f"memory: {table['mem_method'].iloc[0]}" if len(table) else "no models")
    print(f"wrote {out}")
    return 0
