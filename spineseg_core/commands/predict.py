"""``spineseg predict``: segment a volume (or a folder of them) with a run's best model."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "segment a .nii.gz/.mha file or a folder with the best model of a run folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", type=Path, required=True, metavar="RUN_DIR",
                        help="a finished run folder (model.json + checkpoint_best.safetensors)")
    parser.add_argument("input", type=Path, help="an image file, or a folder (e.g. test1/MR)")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="label file, or folder receiving <name> (mask_caseN for CaseN)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, default=8, help="slices per forward pass")
    parser.add_argument("--relabel", action="store_true",
                        help="rename the predicted vertebrae and discs by counting them upwards "
                             "from the sacrum (spineseg_core.levels.relabel); a file it cannot "
                             "count (no sacrum, merged or split components) is kept as "
                             "predicted and the reason is printed")


def run(args: argparse.Namespace) -> int:
    from spineseg_core.errors import ConfigError
    from spineseg_core.training.predict import predict_path

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size: expected a positive integer, got {args.batch_size}")
    if args.input.is_dir():
        if args.output.exists() and not args.output.is_dir():
            raise ConfigError(f"-o {args.output}: the input is a folder, so the output must be "
                              "a folder too, but it is an existing file")
        args.output.mkdir(parents=True, exist_ok=True)
    for path in predict_path(args.run, args.input, args.output, device=args.device,
                             batch_size=args.batch_size):
        if args.relabel:
            from spineseg_core.levels.files import relabel_file
            from spineseg_core.levels.relabel import STATUS_TEXT

            result = relabel_file(path)
            print(f"{path}\t{STATUS_TEXT[result.status]}: {result.detail}")
        else:
            print(path)
    return 0
