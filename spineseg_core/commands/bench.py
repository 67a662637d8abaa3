"""``spineseg bench``: training/inference speed, FLOP/s against the device's peak, and whether
the data path keeps up, per model at a profile's size and batch; ``--monai`` adds the side by
side with MONAI's networks and Dice metric."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from spineseg_core.io import write_with
from spineseg_core.training.config import DeviceChoice, Profile

HELP = "measure training speed, FLOP/s vs peak and data-path throughput per model (CSV)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="cpu", choices=[p.value for p in Profile],
                        help="profile giving size, batch, workers and data (default: cpu)")
    parser.add_argument("--models", nargs="+", metavar="NAME",
                        help="models to measure (default: every registered model)")
    parser.add_argument("--size", type=int, help="image size (default: the profile's)")
    parser.add_argument("--batch", type=int, help="batch size (default: the profile's)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps (default: 2)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default: 1)")
    parser.add_argument("--num-workers", type=int,
                        help="DataLoader workers (default: the profile's)")
    parser.add_argument("--threads", type=int,
                        help="torch CPU threads, set once at start (default: the profile's, "
                             "else torch's)")
    parser.add_argument("--data-path", default="auto", choices=["auto", "slice", "batched"],
                        help="where augmentation runs: per slice in the loader (CPU trainer) or "
                             "batched on the device (GPU trainer); auto = the trainer's")
    parser.add_argument("--no-data", action="store_true",
                        help="model only: skip the data-path columns")
    parser.add_argument("--device", default="auto", choices=[d.value for d in DeviceChoice],
                        help="auto = CUDA when available (default: auto)")
    parser.add_argument("--out", type=Path,
                        help="CSV to write (default: results/<profile>/bench.csv)")
    parser.add_argument("--monai", action="store_true",
                        help="also compare with MONAI (results/<profile>/bench_monai.csv)")
    parser.add_argument("--sweep", action="store_true",
                        help="also time each model's step under every layout and precision, "
                             "interleaved, against the bf16 and fp32 matmul rate "
                             "(results/<profile>/step_settings.csv)")
    parser.add_argument("--before-after", action="store_true",
                        help="also time each model's step with fresh memory filled (the trainer "
                             "before issue 24's part 8) and not (after), interleaved "
                             "(results/<profile>/step_changes.csv)")
    parser.add_argument("--sweep-rounds", type=int, default=5,
                        help="interleaved rounds of the sweep (default: 5)")
    parser.add_argument("--metric-slices", type=int, default=12,
                        help="slices of the 880 px volume pair of the MONAI Dice comparison")


def _show(table: pd.DataFrame, drop: list[str]) -> None:
    with pd.option_context("display.width", 250, "display.max_columns", None,
                           "display.float_format", "{:.3g}".format):
        print(table.drop(columns=[c for c in drop if c in table]).to_string(index=False))


def run(args: argparse.Namespace) -> int:
    from spineseg_core.measure.speed import BenchSettings, bench_table
    from spineseg_core.measure.vs_monai import monai_comparison

    settings = BenchSettings(steps=args.steps, warmup=args.warmup)
    table = bench_table(args.profile, args.models, size=args.size, batch=args.batch,
                        device=args.device, settings=settings, with_data=not args.no_data,
                        data_path=args.data_path, num_workers=args.num_workers,
                        threads=args.threads, progress=print)
    out = args.out or Path("results") / args.profile / "bench.csv"
    write_with(out, lambda p: table.to_csv(p, index=False))
    _show(table, ["display_name", "mem_method", "torch"])
    if len(table):
        print(f"memory: {table['mem_method'].iloc[0]}; torch {table['torch'].iloc[0]}")
    print(f"wrote {out}")
    from spineseg_core.measure.sweep import DEFAULT_SWEEP, step_settings_sweep, trainer_settings

    for wanted, sweep, name in ((args.sweep, DEFAULT_SWEEP, "step_settings.csv"),
                                (args.before_after, trainer_settings, "step_changes.csv")):
        if not wanted:
            continue
        table = step_settings_sweep(args.profile, args.models, sweep=sweep,
                                    rounds=args.sweep_rounds, warmup=max(2, args.warmup),
                                    device=args.device, progress=print)
        path = out.with_name(name)
        write_with(path, lambda p, t=table: t.to_csv(p, index=False))
        print(f"wrote {path}")
    if args.monai:
        side = monai_comparison(args.profile, size=args.size, batch=args.batch,
                                device=args.device, settings=settings,
                                metric_slices=args.metric_slices)
        monai_out = out.with_name("bench_monai.csv")
        write_with(monai_out, lambda p: side.to_csv(p, index=False))
        _show(side, ["monai", "differences"])
        print(f"wrote {monai_out}")
    return 0
