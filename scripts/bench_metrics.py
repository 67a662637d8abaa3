"""Benchmark: the project's confusion-count metrics against MONAI's DiceMetric.

Builds one 20-class (S, 880, 880) volume pair shaped like a sagittal spine (a stack of 19
bands of random height and depth per slice, fewer levels on lateral slices), a prediction that
is the reference shifted by a few pixels plus 1 % label noise, then

* checks that per-class 3D Dice agrees with MONAI ``DiceMetric`` wherever both are defined
  (MONAI scores a class absent from the reference NaN; the project scores it 0 if predicted),
* times ``confusion_matrix + counts_from_confusion + scores`` against ``DiceMetric`` given
  the same label maps (its cheapest input) and given one-hot masks,
* times HD95 over the 19 foreground labels of a (15, 880, 880) pair.

Run: ``.venv/bin/python scripts/bench_metrics.py [--slices 12] [--threads 1]``.
MONAI (the ``bench`` extra) is needed; it is never imported by ``spineseg_core``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from spineseg_core import metrics as M
from spineseg_core.labels import FOREGROUND, NUM_CLASSES
from spineseg_core.measure.vs_monai import spine_like_pair


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """Median and best wall time (s) of ``repeats`` calls after one warm-up, and the result.

    The best time is the one to compare on a shared machine: other load only adds to it.
    """
    result = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=12)
    parser.add_argument("--size", type=int, default=880)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--monai-repeats", type=int, default=2)
    parser.add_argument("--hd95-slices", type=int, default=15)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default); 1 is steadier on a busy machine")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from monai.metrics import DiceMetric

    ref, pred = spine_like_pair(args.slices, args.size)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; volume "
          f"{tuple(ref.shape)}, {int((ref > 0).sum())} foreground voxels")

    def ours() -> torch.Tensor:
        return M.scores(M.counts_from_confusion(M.confusion_matrix(pred, ref)))["dice"]

    def monai_labels() -> torch.Tensor:
        metric = DiceMetric(include_background=True, reduction="none", num_classes=NUM_CLASSES)
        return metric(pred[None, None], ref[None, None])[0]

    onehot_pred = torch.nn.functional.one_hot(pred.long(), NUM_CLASSES).movedim(-1, 0)[None].bool()
    onehot_ref = torch.nn.functional.one_hot(ref.long(), NUM_CLASSES).movedim(-1, 0)[None].bool()

    def monai_onehot() -> torch.Tensor:
        metric = DiceMetric(include_background=True, reduction="none")
        return metric(onehot_pred, onehot_ref)[0]

    t_ours, b_ours, d_ours = timed(ours, args.repeats)
    t_labels, b_labels, d_labels = timed(monai_labels, args.monai_repeats)
    t_onehot, b_onehot, d_onehot = timed(monai_onehot, args.monai_repeats)
    d_ours = d_ours.float()
    both = ~torch.isnan(d_ours) & ~torch.isnan(d_labels)
    diff = max((d_ours[both] - d_labels[both]).abs().max().item(),
               (d_ours[both] - d_onehot[both]).abs().max().item())
    print(f"classes scored by both: {int(both.sum())}/{NUM_CLASSES}; max |dice difference| "
          f"{diff:.2e}; mean foreground dice {np.nanmean(d_ours[1:].numpy()):.4f}")
    if diff > 1e-5:
        raise SystemExit("MISMATCH between the project's Dice and MONAI's")
    print(f"{'wall time':28s} {'median ms':>10s} {'best ms':>10s} {'best / ours':>12s}")
    for name, med, best in (("ours: confusion + scores", t_ours, b_ours),
                            ("MONAI DiceMetric (labels)", t_labels, b_labels),
                            ("MONAI DiceMetric (one-hot)", t_onehot, b_onehot)):
        print(f"{name:28s} {med * 1e3:10.1f} {best * 1e3:10.1f} {best / b_ours:11.1f}x")

    ref15, pred15 = spine_like_pair(args.hd95_slices, args.size, seed=1)
    spacing = (4.4, 0.3448, 0.3448)
    t0 = time.perf_counter()
    hd = [M.hd95(pred15, ref15, spacing, c) for c in FOREGROUND]
    t_hd = time.perf_counter() - t0
    print(f"hd95, 19 labels of {tuple(ref15.shape)}: {t_hd:.2f} s "
          f"(mean {np.nanmean(hd):.2f} mm over {int(np.sum(~np.isnan(hd)))} labels)")


if __name__ == "__main__":
    main()
