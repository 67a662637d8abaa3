"""``spineseg aggregate``: the finished runs of a profile → ``results/<profile>/``
(see :mod:`spineseg_core.study.aggregate`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from spineseg_core.errors import ConfigError

HELP = "aggregate a profile's finished runs into the tables and figures the book reads"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="cpu", help="profile whose runs to read (default: cpu)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"),
                        help="folder holding <profile>/<model>/seed_<s>/fold_<f>/ run folders")
    parser.add_argument("--out", type=Path, help="output folder (default: results/<profile>)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and slices")
    parser.add_argument("--allow-mixed-code", action="store_true",
                        help="bundle runs made by different versions of the code (different "
                             "source fingerprints); refused by default")
    parser.add_argument("--pins", type=Path, metavar="DIR",
                        help="the folder of the study's code pins (results/plateau): a model "
                             "with a pin of its own there (CODE.<model>, study.schedule."
                             "mend_pins) may carry that pin's fingerprint beside the others'")
    parser.add_argument("--baseline", action="store_true",
                        help="also score the no-learning baseline (a training subject's mask "
                             "pasted on every test subject) into baseline.csv; needs the "
                             "runs' data (the phantom is generated into the cache if absent)")


def run(args: argparse.Namespace) -> int:
    from spineseg_core.fingerprint import describe
    from spineseg_core.study.aggregate import aggregate
    from spineseg_core.study.schedule import mend_pins

    out = args.out or Path("results") / args.profile
    if args.n_boot < 1:
        raise ConfigError(f"--n-boot: expected a positive number of resamples, got {args.n_boot}")
    own = ({m: fp for m, (_, fp) in mend_pins(args.pins).items()}
           if args.pins is not None else None)
    bundle = aggregate(args.profile, args.runs_dir, out, n_boot=args.n_boot, seed=args.seed,
                       allow_mixed_code=args.allow_mixed_code, baseline=args.baseline,
                       own_code=own)
    print(f"{out}: {bundle['n_runs']} runs of {len(bundle['models'])} models, "
          f"{len(bundle['files'])} files, bundle sha256 {bundle['bundle_sha256']}, "
          f"code {describe(bundle['source_fingerprints'])}"
          + "".join(f"; {m} {describe({o['source_fingerprint']: o['runs']})} (its own pin)"
                    for m, o in (bundle.get("own_code") or {}).items()))
    return 0
