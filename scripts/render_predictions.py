"""Render a run's best, median and worst test slices (by slice Dice): the image, the reference
and the prediction, with a colour key of the 20 labels, so that one can look before believing.

Usage: python scripts/render_predictions.py RUN_DIR [RUN_DIR ...] --out PNG
RUN_DIR is a run folder or a committed record (results/<profile>/runs/...): a record's slices
are joined with its group's test_set.npz (study.records.load_predictions). Side groups keep no
display image; theirs is the main group's when it holds the same slices (black otherwise).
Each run is one row group; background is black in the label maps, so a model that paints the
background with a level shows it at once.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from spineseg_core.labels import LABEL_NAMES, NUM_CLASSES  # noqa: E402
from spineseg_core.study.records import load_predictions, main_group_images  # noqa: E402
from spineseg_core.training.run_folder import RunFolder  # noqa: E402


def label_cmap() -> ListedColormap:
    colours = plt.get_cmap("tab20")(np.arange(NUM_CLASSES))
    colours[0] = (0, 0, 0, 1)
    return ListedColormap(colours)


def picks(dice: np.ndarray) -> list[tuple[str, int]]:
    """Best, median and worst slices among those with a defined Dice."""
    ok = np.flatnonzero(np.isfinite(dice))
    order = ok[np.argsort(dice[ok])]
    return [("best", int(order[-1])), ("median", int(order[len(order) // 2])),
            ("worst", int(order[0]))]


def render(runs: list[Path], out: Path) -> None:
    cmap = label_cmap()
    fig, axes = plt.subplots(3 * len(runs), 3, figsize=(7.5, 7.2 * len(runs)), squeeze=False)
    for k, run_dir in enumerate(runs):
        run = RunFolder(run_dir)
        metrics = run.load_metrics()
        params = run.load_params()
        name = f"{metrics['model']}, {params.get('loss')}"
        if params.get("loss_kwargs"):
            name += " " + ", ".join(f"{k}={v}" for k, v in params["loss_kwargs"].items())
        p = load_predictions(run_dir)
        if p is None:
            raise SystemExit(f"{run_dir}: no predictions.npz (expected a finished run or record)")
        if "image" not in p:  # a side group's record: the main group's images, or none
            images = main_group_images(run_dir, p)
            p["image"] = np.zeros(p["pred"].shape, np.float32) if images is None else images
        for r, (what, i) in enumerate(picks(p["dice"])):
            row = axes[3 * k + r]
            row[0].imshow(p["image"][i].astype(np.float32), cmap="gray")
            row[0].set_title(f"{name}\n{what} test slice: "
                             f"case {p['case_id'][i]}, slice {p['slice_index'][i]}", fontsize=8)
            row[1].imshow(p["mask"][i], cmap=cmap, vmin=0, vmax=NUM_CLASSES - 1,
                          interpolation="nearest")
            row[1].set_title("reference", fontsize=8)
            row[2].imshow(p["pred"][i], cmap=cmap, vmin=0, vmax=NUM_CLASSES - 1,
                          interpolation="nearest")
            row[2].set_title(f"prediction (slice Dice {100 * p['dice'][i]:.1f} %)", fontsize=8)
            for ax in row:
                ax.set_axis_off()
    handles = [Patch(color=cmap(c), label=LABEL_NAMES[c]) for c in range(NUM_CLASSES)]
    fig.legend(handles=handles, loc="lower center", ncol=10, fontsize=6, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    render(args.runs, args.out)


if __name__ == "__main__":
    main()
