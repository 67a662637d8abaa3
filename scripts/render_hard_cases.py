"""Render one phantom subject as its hard cases: mid-sagittal slices with their label overlay.

Usage: python scripts/render_hard_cases.py --out FILE.png [--case N] [--seed S] [--size PX]
Columns: the default case, the same subject with a sacralised L5, with a lumbarised S1 (the
hard cases share every other random draw with their default twin), then fields of view cut
through and above the sacrum (the first such cases from ``--case`` on). Each overlay names the
lowest labels in view, counted as the mask counts them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from render_phantom import label_cmap  # noqa: E402

from spineseg_core.data.phantom import PhantomCase, generate_case  # noqa: E402
from spineseg_core.data.phantom.geometry import FovCut, sample_geometry  # noqa: E402
from spineseg_core.data.phantom.params import PhantomParams  # noqa: E402
from spineseg_core.labels import LABEL_NAMES, NUM_CLASSES  # noqa: E402


def first_cut(cut: FovCut, start: int, seed: int, params: PhantomParams) -> int:
    """The first case id from ``start`` on whose field is cut as ``cut``."""
    return next(c for c in range(start, start + 100)
                if sample_geometry(c, seed, params).fov_cut is cut)


def panels(case_id: int, seed: int, size: int) -> list[tuple[str, PhantomCase]]:
    fov = PhantomParams(fov_cut_rate=1.0)
    out = [("default", generate_case(case_id, seed, size)),
           ("sacralised L5: in S; L4 labelled L5",
            generate_case(case_id, seed, size, PhantomParams(sacralised_l5_rate=1.0))),
           ("lumbarised S1: labelled L5",
            generate_case(case_id, seed, size, PhantomParams(lumbarised_s1_rate=1.0)))]
    for cut in (FovCut.THROUGH_SACRUM, FovCut.ABOVE_SACRUM):
        cid = first_cut(cut, case_id, seed, fov)
        out.append((f"field cut {cut.value.replace('_', ' ')}",
                    generate_case(cid, seed, size, fov)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--case", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=160)
    args = ap.parse_args()
    shown = panels(args.case, args.seed, args.size)
    fig, axes = plt.subplots(1, len(shown), figsize=(2.6 * len(shown), 3.4))
    order = [1, 11, 2, 12, 3, 13, 4]
    for ax, (title, case) in zip(axes, shown):
        k = case.image.shape[0] // 2
        vmax = np.percentile(case.image, 99.7)
        ax.imshow(case.image[k], cmap="gray", vmin=0, vmax=vmax, interpolation="nearest")
        ax.imshow(case.mask[k], cmap=label_cmap(), vmin=0, vmax=NUM_CLASSES - 1, alpha=0.4,
                  interpolation="nearest")
        present = [v for v in order if (case.mask[k] == v).any()][:3]
        ax.set_title(f"{title} (case {case.case_id})\nlowest: "
                     + ", ".join(LABEL_NAMES[v] for v in present), fontsize=7)
        ax.set_axis_off()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=72)
    print(args.out, f"{args.out.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
