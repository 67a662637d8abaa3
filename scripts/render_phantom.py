"""Render a few phantom cases to PNG: mid slices next to their label overlays.

Usage: python scripts/render_phantom.py --out DIR --cases N --size PX [--seed S] [--crop]
Writes ``DIR/phantom_case<N>.png`` per case (three slices: lateral, mid, other lateral, each as
image and image + labels) and prints the generation time of each case. ``--crop`` shows only
the labelled column and what lies behind it (canal, posterior elements), to see the texture.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from spineseg_core.data.phantom import generate_case  # noqa: E402
from spineseg_core.labels import LABEL_NAMES, NUM_CLASSES  # noqa: E402


def label_cmap() -> ListedColormap:
    """Transparent background, one distinct colour per label."""
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, NUM_CLASSES))
    colours[0, 3] = 0.0
    return ListedColormap(colours)


def spine_box(mask: np.ndarray, size: int) -> tuple[slice, slice]:
    """Rows and columns around the labelled column, widened posteriorly to show the canal."""
    rows = np.flatnonzero((mask > 0).any(axis=(0, 2)))
    cols = np.flatnonzero((mask > 0).any(axis=(0, 1)))
    pad = size // 25
    return (slice(max(rows[0] - pad, 0), min(rows[-1] + pad, size)),
            slice(max(cols[0] - pad, 0), min(cols[-1] + 4 * pad, size)))


def render(case_id: int, seed: int, size: int, out: Path,
           crop: bool = False) -> tuple[Path, float]:
    t0 = time.perf_counter()
    case = generate_case(case_id, seed, size)
    dt = time.perf_counter() - t0
    n = case.image.shape[0]
    picks = [max(0, n // 2 - 4), n // 2, min(n - 1, n // 2 + 3)]
    fig, axes = plt.subplots(2, len(picks), figsize=(4 * len(picks), 8.4))
    vmax = np.percentile(case.image, 99.7)
    box = spine_box(case.mask, size) if crop else (slice(None), slice(None))
    for j, k in enumerate(picks):
        for i in range(2):
            ax = axes[i, j]
            ax.imshow(case.image[k][box], cmap="gray", vmin=0, vmax=vmax, interpolation="nearest")
            if i == 1:
                ax.imshow(case.mask[k][box], cmap=label_cmap(), vmin=0, vmax=NUM_CLASSES - 1,
                          alpha=0.45, interpolation="nearest")
            ax.set_axis_off()
        present = sorted(set(np.unique(case.mask[k])) - {0})
        axes[0, j].set_title(f"slice {k}/{n}", fontsize=9)
        axes[1, j].set_title(" ".join(LABEL_NAMES[v] for v in present[-4:]), fontsize=8)
    fig.suptitle(f"phantom case {case_id} seed {seed} {size}px  max {case.image.max()} "
                 f"mean {case.image.mean():.0f}  {dt:.2f}s", fontsize=10)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"phantom_case{case_id}{'_crop' if crop else ''}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path, dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cases", type=int, default=3)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--first", type=int, default=1)
    ap.add_argument("--crop", action="store_true", help="show only the spine and the canal")
    args = ap.parse_args()
    for cid in range(args.first, args.first + args.cases):
        path, dt = render(cid, args.seed, args.size, args.out, args.crop)
        print(f"{path}  {dt:.2f} s")


if __name__ == "__main__":
    main()
