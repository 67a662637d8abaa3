"""``spineseg phantom``: write the procedural spine phantom in the MRSpineSeg layout."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from spineseg_core.data.phantom import PhantomCase, write_phantom
from spineseg_core.data.phantom.geometry import FovCut, HardCase
from spineseg_core.data.phantom.hard import HARD_PRESETS, MANIFEST, HardPreset, hard_params
from spineseg_core.errors import ConfigError

HELP = "Generate the procedural spine phantom (MRSpineSeg layout) into a folder."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``spineseg phantom``."""
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--cases", type=int, required=True, help="labelled training cases")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--size", type=int, default=256, help="in-plane pixels (default 256)")
    parser.add_argument("--test-cases", type=int, default=None,
                        help="unlabelled test1 cases (default max(2, cases // 10))")
    parser.add_argument("--hard", choices=[p.value for p in HardPreset], default=None,
                        help="write a hard-case set instead of the default phantom ("
                             + "; ".join(f"{p.value}: " + ", ".join(f"{k}={v:.2g}"
                                                                    for k, v in r.items())
                                         for p, r in HARD_PRESETS.items())
                             + f"), each case listed in {MANIFEST}; give it a seed of its own")
    parser.add_argument("--quiet", action="store_true", help="print only the final summary")


def run(args: argparse.Namespace) -> int:
    """Write the phantom; one line per case unless ``--quiet``, then a summary."""
    if args.cases < 1:
        raise ConfigError(f"--cases must be at least 1, got {args.cases}")
    if args.size < 32:
        raise ConfigError(f"--size must be at least 32 pixels, got {args.size}")
    if args.test_cases is not None and args.test_cases < 0:
        raise ConfigError(f"--test-cases must be >= 0, got {args.test_cases}")
    counts = {"written": 0, "kept": 0}

    def progress(split: str, case: PhantomCase | None, path: Path) -> None:
        counts["kept" if case is None else "written"] += 1
        if args.quiet:
            return
        if case is None:
            print(f"{split:6s} {path.name:18s} kept (already there)")
        else:
            labels = sorted(int(v) for v in set(case.mask.ravel().tolist()) - {0})
            geom = case.geometry
            note = "" if geom.hard_case is HardCase.NONE else f", {geom.hard_case.value}"
            if geom.fov_cut is not FovCut.NONE:
                note += f" ({geom.fov_cut.value})"
            print(f"{split:6s} {path.name:18s} {case.image.shape[0]} slices, "
                  f"top label {max(labels)}, max {int(case.image.max())}{note}")

    t0 = time.perf_counter()
    params = hard_params(args.hard) if args.hard else None
    root = write_phantom(args.out, args.cases, args.seed, args.size, params=params,
                         test_cases=args.test_cases, progress=progress)
    print(f"phantom: {counts['written']} case(s) written, {counts['kept']} kept, in {root} "
          f"({time.perf_counter() - t0:.1f} s)")
    return 0
