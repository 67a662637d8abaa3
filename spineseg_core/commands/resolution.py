"""``spineseg resolution``: how many pixels each kind of structure spans at a profile's grid,
and the encoders' map sizes for the evaluated field of view and the training band."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from spineseg_core.io import write_with

HELP = "structure heights (px) at a profile's grid and stride-8/16/32 map sizes; write a CSV"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="cpu", help="training profile (default: cpu)")
    parser.add_argument("--image-size", type=int, help="grid (default: the profile's)")
    parser.add_argument("--data-dir", type=Path, help="real data (default: the phantom)")
    parser.add_argument("--out", type=Path,
                        help="CSV to write (default: results/<profile>/resolution.csv)")


def resolution_table(profile: str, image_size: int | None = None,
                     data_dir: Path | None = None) -> pd.DataFrame:
    """Structure heights over the training volumes of ``profile`` (fold 0, seed 0) and the map
    sizes, as one long table ``section, item, value...``."""
    from spineseg_core.data.prepare import prepare_data
    from spineseg_core.data.resolution import feature_map_sizes, structure_heights
    from spineseg_core.models import model_info
    from spineseg_core.training.config import resolve_config

    cfg = resolve_config(profile, image_size=image_size, data_dir=data_dir, augment=False)
    data = prepare_data(cfg, model_info(cfg.model))
    vols = data.train.volumes
    spacing = float(sum(v.spacing[1] for v in vols) / len(vols))
    heights = structure_heights([v.mask for v in vols], spacing_mm=spacing)
    heights.insert(0, "section", "height")
    from spineseg_core.measure.speed import input_size

    maps = []
    for where, (h, w) in {"evaluated field of view": (cfg.image_size, cfg.image_size),
                          "training band": input_size(cfg)}.items():
        m = feature_map_sizes(h, w)
        m.insert(0, "section", f"map, {where}")
        maps.append(m)
    out = pd.concat([heights, *maps], ignore_index=True)
    for col in ("n_columns", "stride", "rows", "cols"):
        out[col] = out[col].astype("Int64")
    out["image_size"] = cfg.image_size
    out["row_spacing_mm"] = round(spacing, 4)
    return out


def run(args: argparse.Namespace) -> int:
    table = resolution_table(args.profile, args.image_size, args.data_dir)
    out = args.out or Path("results") / args.profile / "resolution.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_with(out, lambda p: table.to_csv(p, index=False))
    with pd.option_context("display.width", 120):
        print(table.to_string(index=False))
    print(f"wrote {out}")
    return 0
