"""Throughput of the training data path: cache hit -> SliceDataset -> slice augmentation.

Writes a few synthetic MRSpineSeg-layout volumes (880x880, 12 slices, int16) to a temporary
folder, then for each image size reports, single process and one thread:

- ``build``: seconds per volume to decode + resample + normalise + write the cache entry;
- ``hit``: seconds per volume to read a cache entry back;
- slices/s of iterating a :class:`SliceDataset` without augmentation, with the default
  augmentation (p=0.25 each) and with all four transforms at p=1.

Usage: ``python scripts/bench_data.py [--sizes 128 256 880] [--volumes 3]`` (< 2 min).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spineseg_core.data import AugmentConfig, SliceDataset, VolumeCache, build_augmentation, list_cases  # noqa: E402
from tests.spine_files import write_mrspineseg_case  # noqa: E402

MAX_ITEMS = {128: 240, 256: 120, 880: 24}


def _slices_per_second(ds: SliceDataset, limit: int) -> float:
    n = min(len(ds), limit)
    t0 = time.perf_counter()
    for i in range(n):
        ds[i]
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 880])
    parser.add_argument("--volumes", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        t0 = time.perf_counter()
        for num in range(1, args.volumes + 1):
            write_mrspineseg_case(root, num, 12, 880)
        print(f"wrote {args.volumes} volumes 880x880x12 in {time.perf_counter() - t0:.1f} s")
        refs = list_cases(root)
        print(f"{'size':>5} {'build s/vol':>11} {'hit s/vol':>9} {'no aug':>9} "
              f"{'aug p=.25':>9} {'aug p=1':>9}   (slices/s, 1 thread)")
        for size in args.sizes:
            cache = VolumeCache(Path(tmp) / "cache", size)
            t0 = time.perf_counter()
            for ref in refs:
                cache.get(ref)
            build = (time.perf_counter() - t0) / len(refs)
            t0 = time.perf_counter()
            vols = [cache.get(ref) for ref in refs]
            hit = (time.perf_counter() - t0) / len(refs)
            limit = MAX_ITEMS.get(size, 60)
            rates = [_slices_per_second(SliceDataset(vols, build_augmentation(cfg)), limit)
                     for cfg in (None, AugmentConfig(),
                                 AugmentConfig(p_noise=1, p_blur=1, p_motion=1, p_ghosting=1))]
            print(f"{size:>5} {build:>11.3f} {hit:>9.3f} " + " ".join(f"{r:>9.1f}" for r in rates))
            assert np.isfinite(rates).all()


if __name__ == "__main__":
    main()
