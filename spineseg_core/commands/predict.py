"""``spineseg predict``: segment a volume (or a folder of them) with a run's best model."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from spineseg_core.errors import ConfigError
from spineseg_core.training.config import DeviceChoice

HELP = "segment a .nii.gz/.mha file or a folder with the best model of a run folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", type=Path, required=True, metavar="RUN_DIR",
                        help="a finished run folder (model.json + checkpoint_best.safetensors)")
    parser.add_argument("input", type=Path, help="an image file, or a folder (e.g. test1/MR)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="label file (.nii.gz, .nii or .mha), or a folder receiving "
                             "<name> (mask_caseN for CaseN): an existing folder, or a path "
                             "ending in / (made if missing)")
    parser.add_argument("--device", default="auto", choices=[str(d) for d in DeviceChoice],
                        help="where the model runs; auto takes CUDA when present")
    parser.add_argument("--batch-size", type=int, default=8, help="slices per forward pass")
    parser.add_argument("--relabel", action="store_true",
                        help="rename the predicted vertebrae and discs by counting them upwards "
                             "from the sacrum (spineseg_core.levels.relabel); a file it cannot "
                             "count (no sacrum, merged or split components) is kept as "
                             "predicted and the reason is printed")


def output_target(raw: str, input_is_dir: bool) -> Path:
    """The ``-o`` path, made as a folder when it names one (the input is a folder, or ``raw``
    ends in a path separator); a file target must have an image suffix, so that ``-o pred``
    is one clear error rather than a file ``pred`` of no known type."""
    from spineseg_core.training.predict import SUFFIXES

    out = Path(raw)
    folder = input_is_dir or raw.endswith(("/", os.sep)) or out.is_dir()
    if not folder:
        if not out.name.endswith(SUFFIXES):
            raise ConfigError(f"-o {raw}: expected a label file ending in "
                              f"{', '.join(SUFFIXES)}, or a folder (end it with /)")
        return out
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {raw}: {'the input is a folder, so ' if input_is_dir else ''}"
                          "the output must be a folder, but it is an existing file")
    out.mkdir(parents=True, exist_ok=True)
    return out


def run(args: argparse.Namespace) -> int:
    from spineseg_core.training.predict import predict_path

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size: expected a positive integer, got {args.batch_size}")
    output = output_target(args.output, args.input.is_dir())
    for path in predict_path(args.run, args.input, output, device=args.device,
                             batch_size=args.batch_size):
        if args.relabel:
            from spineseg_core.levels.files import relabel_file
            from spineseg_core.levels.relabel import STATUS_TEXT

            result = relabel_file(path)
            print(f"{path}\t{STATUS_TEXT[result.status]}: {result.detail}")
        else:
            print(path)
    return 0
