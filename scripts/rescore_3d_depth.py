"""Score a 3D run's best checkpoint twice on its validation and test sets: each volume at its
own depth (how runs before the ``min_depth`` mend were scored), and padded with zero slices to
the depth it trained at (how the package scores it now:
:class:`~spineseg_core.models.base.VolumeSegmentationModel`). Same weights, same volumes; the
difference is what the padding mismatch cost the recorded scores, which the context chapter
shows (:func:`spineseg_core.report.context.depth_sentence`).

    python scripts/rescore_3d_depth.py \
        results/plateau/superseded/ae16a7c963d1/cpu-half/unet3d/seed_0/fold_0 \
        --checkpoint runs/plateau-superseded/cpu-half/unet3d/seed_0/fold_0 \
        --out results/plateau/unet3d_depth.csv

(the 3D U-Net's run at B/2 from the study's pin, moved there when it got a pin of its own:
``scripts/plateau_rerun.py --mend unet3d``).

The record folder gives the run's parameters; ``--checkpoint`` the folder holding its
``checkpoint_best.safetensors`` and ``model.json`` (checkpoints are never committed, so only
the machine that trained the run can score it again). Rows: model, the run's optimiser
steps, set, how, the depth padded to (0: none), Dice, background recall, and the pooled
false-positive pixels on the last slice of the volumes shallower than the training depth.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from spineseg_core.data.prepare import prepare_data
from spineseg_core.data.slices import VolumeDataset
from spineseg_core.io import write_csv
from spineseg_core.models import build_model, model_info
from spineseg_core.training.config import PARAMETERS, TrainConfig
from spineseg_core.training.evaluate import evaluate
from spineseg_core.training.run_folder import RunFolder, load_model


def _config(record: Path) -> TrainConfig:
    params = json.loads((record / "params.json").read_text())
    return TrainConfig(**{k: v for k, v in params.items() if k in PARAMETERS})


def rescore(record: Path, checkpoint: Path) -> pd.DataFrame:
    cfg = _config(record)
    steps = json.loads((record / "metrics.json").read_text())["steps_completed"]
    info = model_info(cfg.model)
    if not info.volumetric:
        raise SystemExit(f"{record}: {cfg.model} is not fed whole volumes; nothing to rescore")
    data = prepare_data(cfg, info, slice_augment=False)
    depth = data.train.depth
    own = load_model(checkpoint)
    kwargs = {**RunFolder(checkpoint).load_model_json()["build_kwargs"], "min_depth": depth}
    padded = build_model(kwargs.pop("name"), **kwargs).eval()
    padded.load_state_dict(own.state_dict())
    rows = []
    for name, volumes in (("validation", data.val_volumes), ("test", data.test_volumes)):
        loader = DataLoader(VolumeDataset(volumes, own_depth=True), batch_size=1)
        shallow = {v.case_id: v.num_slices - 1 for v in volumes if v.num_slices < depth}
        for how, model in (("own depth", own), ("training depth", padded)):
            result = evaluate(model, loader, torch.device("cpu"), lambda _lo, _y: torch.zeros(()),
                              autocast=contextlib.nullcontext, keep_slices=True)
            summary = result.acc.summary()
            kept = result.slices
            masks, preds = (torch.from_numpy(np.concatenate(kept[k]))
                            for k in ("mask", "pred"))
            last = torch.tensor([shallow.get(c) == s for c, s in
                                 zip(kept["case_id"], kept["slice_index"])])
            fp_last = int(((masks[last] == 0) & (preds[last] != 0)).sum())
            rows.append({"model": cfg.model, "steps": int(steps), "set": name, "how": how,
                         "min_depth": depth if how != "own depth" else 0,
                         "dice": float(summary["dice"]), "bg_recall": float(summary["bg_recall"]),
                         "n_shallow_volumes": len(shallow),
                         "fp_pixels_last_slice_shallow": fp_last})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("record", type=Path, help="the run's record folder (params.json)")
    ap.add_argument("--checkpoint", type=Path, required=True,
                    help="the run's checkpoint folder (checkpoint_best.safetensors, model.json)")
    ap.add_argument("--out", type=Path, required=True, help="CSV to write")
    args = ap.parse_args()
    df = rescore(args.record, args.checkpoint)
    write_csv(args.out, df, index=False)
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
