"""``spineseg calibrate``: compare the phantom's tissue statistics with a real T2 scan."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from spineseg_core.data.phantom import PHANTOM_VERSION, generate_case
from spineseg_core.data.phantom.calibration import calibration_stats, comparison_table, phantom_regions
from spineseg_core.data.phantom.real_sample import WHEEL, fetch_real_sample, load_real_sample
from spineseg_core.errors import ConfigError
from spineseg_core.io import write_text

HELP = ("compare the phantom with the real sagittal T2 sample of the tptbox wheel "
        "(fetched with pip) and write the table, statistic by statistic")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``spineseg calibrate``."""
    parser.add_argument("--out", type=Path, default=Path("results/phantom_vs_real.csv"),
                        help="CSV to write (default results/phantom_vs_real.csv)")
    parser.add_argument("--cases", type=int, default=20, help="phantom cases (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="phantom seed (default 0)")
    parser.add_argument("--size", type=int, default=256, help="phantom pixels (default 256)")
    parser.add_argument("--sample-dir", type=Path, default=None,
                        help=f"folder of the real sample (default <cache>/real_t2_sample; "
                             f"downloaded from the {WHEEL} wheel if missing)")


def run(args: argparse.Namespace) -> int:
    """Measure the real sample and ``--cases`` phantom cases with one function, write the CSV."""
    if args.cases < 2:
        raise ConfigError(f"--cases must be at least 2, got {args.cases}")
    if args.size < 64:
        raise ConfigError(f"--size must be at least 64 pixels, got {args.size}")
    if args.sample_dir is None:
        from spineseg_core.data.cache import cache_root
        args.sample_dir = cache_root() / "real_t2_sample"
    sample = load_real_sample(fetch_real_sample(args.sample_dir))
    real = calibration_stats(sample.image, sample.regions)
    t0 = time.perf_counter()
    phantom = []
    for cid in range(1, args.cases + 1):
        case = generate_case(cid, args.seed, args.size)
        phantom.append(calibration_stats(case.image, phantom_regions(case.mask, case.tissue)))
    seconds = (time.perf_counter() - t0) / args.cases
    table = comparison_table(real, phantom)
    table["phantom_seed"] = args.seed
    table["phantom_size"] = args.size
    table["phantom_version"] = PHANTOM_VERSION
    write_text(args.out, table.to_csv(index=False, float_format="%.4f"))
    print(table[["statistic", "real", "phantom_mean", "phantom_sd"]].to_string(
        index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"calibrate: {args.cases} phantom case(s) at {args.size} px "
          f"({seconds:.2f} s per case incl. measurement) vs {sample.folder}; wrote {args.out}")
    return 0
