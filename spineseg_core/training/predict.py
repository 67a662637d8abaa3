"""Segment new volumes with the best model of a run folder.

A file is read and reoriented to the study layout by the data readers, preprocessed exactly as
the training volumes were (in-plane resampling to the run's image size, percentile
normalisation, the cache's storage precision), segmented slice by slice (a 2.5D model with each
slice's neighbours, a 3D model whole), resampled back to the
file's in-plane size with nearest neighbour, reoriented back, and written as a uint8 label
volume with the input's exact shape and geometry: NIfTI output reuses the input's header,
``.mha`` output copies the input's origin, spacing and direction (SimpleITK
``CopyInformation``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spineseg_core.data import CaseRef, VolumeCache, load_case, preprocess_volume
from spineseg_core.data.orientation import from_study
from spineseg_core.data.slices import neighbour_indices
from spineseg_core.errors import DataError
from spineseg_core.models import InputKind, model_info
from spineseg_core.training.device import resolve_device
from spineseg_core.training.precision import Precision, autocast, precision_for
from spineseg_core.training.run_folder import RunFolder, load_model

SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".mha")
"""File types :func:`predict_path` segments."""

_MR_CASE = re.compile(r"^Case(?P<num>\d+)(?P<ext>\.nii\.gz|\.nii)$")


def output_name(name: str) -> str:
    """Name of the label file of input ``name``: MRSpineSeg's ``CaseN`` -> ``mask_caseN``."""
    m = _MR_CASE.match(name)
    return f"mask_case{m['num']}{m['ext']}" if m else name


def _has_suffix(path: Path) -> bool:
    return any(path.name.endswith(s) for s in SUFFIXES)


def _inputs(model: nn.Module, image: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """What ``model`` is fed for a volume ``(S, H, W)``, batch by batch: slices ``(B, 1, H, W)``;
    for a 2.5D model each slice with its neighbours ``(B, context, H, W)`` (as in training,
    :func:`~spineseg_core.data.slices.neighbour_indices`); for a 3D model the whole volume
    ``(1, 1, S, H, W)``."""
    info = model_info(model.name)
    n = image.shape[0]
    if info.volumetric:
        yield image[None, None]
        return
    for start in range(0, n, batch_size):
        rows = range(start, min(start + batch_size, n))
        if info.input_kind is InputKind.STACK:
            yield np.stack([image[neighbour_indices(s, n, info.context)] for s in rows])
        else:
            yield image[rows.start:rows.stop][:, None]


def segment_volume(model: nn.Module, image: np.ndarray, device: torch.device,
                   batch_size: int = 8, precision: Precision = Precision.FP32) -> np.ndarray:
    """Label map ``(S, H, W)`` uint8 of a preprocessed study-layout image ``(S, H, W)``, the
    forward pass in ``precision`` (a run's recorded one: :func:`run_precision`)."""
    model.eval()
    out = []
    with torch.inference_mode():
        for batch in _inputs(model, image, batch_size):
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(device)
            with autocast(device, precision):
                logits = model(x)
            labels = logits.float().argmax(1).to(torch.uint8).cpu()
            out.append(labels[0] if labels.ndim == 4 else labels)
    return torch.cat(out).numpy()


def _resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if labels.shape[1:] == size:
        return labels
    t = torch.from_numpy(labels)[:, None].float()
    return F.interpolate(t, size=size, mode="nearest-exact")[:, 0].to(torch.uint8).numpy()


def predict_file(model: nn.Module, image_size: int, source: Path, target: Path,
                 device: torch.device, batch_size: int = 8,
                 precision: Precision = Precision.FP32) -> Path:
    """Segment one image file into the label file ``target``; returns ``target``."""
    source, target = Path(source), Path(target)
    volume = load_case(CaseRef(source.name, source, None, "predict"))
    in_plane = volume.image.shape[1:]
    cache = VolumeCache(target.parent, image_size)  # only for its preprocessing settings
    prep = preprocess_volume(volume, image_size, cache.normalise)
    prep = replace(prep, image=prep.image.astype(cache.image_dtype).astype(np.float32))
    labels = _resize_labels(segment_volume(model, prep.image, device, batch_size, precision), in_plane)
    labels, _ = from_study(labels, volume.affine, volume.source_axcodes)
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.name.endswith(".mha"):
        _write_itk(labels, source, target)
    else:
        _write_nifti(labels, source, target)
    return target


def _write_nifti(labels: np.ndarray, source: Path, target: Path) -> None:
    ref = nib.load(str(source))
    if labels.shape != ref.shape[:3]:
        raise DataError(source, f"internal error: labels {labels.shape} vs image {ref.shape}")
    data = labels.reshape(ref.shape) if len(ref.shape) == 4 else labels
    header = ref.header.copy()
    header.set_data_dtype(np.uint8)
    out = type(ref)(data.astype(np.uint8), ref.affine, header)
    out.header.set_slope_inter(1.0, 0.0)
    nib.save(out, str(target))


def _write_itk(labels: np.ndarray, source: Path, target: Path) -> None:
    import SimpleITK as sitk

    ref = sitk.ReadImage(str(source))
    img = sitk.GetImageFromArray(np.ascontiguousarray(labels.transpose(2, 1, 0)))
    img.CopyInformation(ref)
    sitk.WriteImage(img, str(target), useCompression=True)


def run_precision(run: RunFolder, device: torch.device) -> Precision:
    """The precision ``run`` was trained and validated in (``params.json``'s ``precision``);
    for a run folder older than that record, what its ``amp`` gives on ``device``."""
    params = run.load_params() if run.params.is_file() else {}
    if "precision" in params:
        try:
            return Precision(params["precision"])
        except ValueError:
            raise DataError(run.params, f"precision: expected one of "
                            f"{', '.join(p.value for p in Precision)}, "
                            f"got {params['precision']!r}") from None
    volumetric = "model" in params and model_info(str(params["model"])).volumetric
    return precision_for(device, bool(params.get("amp", True)), volumetric=volumetric)


def predict_path(run_dir: str | Path, source: str | Path, output: str | Path, *,
                 device: str | torch.device = "auto", batch_size: int = 8) -> list[Path]:
    """Segment a file or every image file of a folder with the best model of ``run_dir``.

    A file goes to ``output`` (a file name, or a folder that then receives the label file
    under the input's name); a folder's files go to ``output/<name>`` (``mask_caseN`` for
    MRSpineSeg's ``CaseN``). Returns the written paths. The forward pass runs in the run's
    recorded precision (:func:`run_precision`), as its validation did.
    """
    source, output = Path(source), Path(output)
    device = resolve_device(device)
    run = RunFolder(Path(run_dir))
    image_size = int(run.load_model_json()["image_size"])
    model = load_model(run.path, device)
    precision = run_precision(run, device)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.is_file() and _has_suffix(p))
        if not files:
            raise DataError(source, f"no image files ({', '.join(SUFFIXES)}) in this folder")
        return [predict_file(model, image_size, f, output / output_name(f.name), device,
                             batch_size, precision) for f in files]
    if not source.is_file():
        raise DataError(source, "input does not exist")
    if not _has_suffix(source):
        raise DataError(source, f"unsupported file type; expected one of {', '.join(SUFFIXES)}")
    target = output / output_name(source.name) if output.is_dir() else output
    return [predict_file(model, image_size, source, target, device, batch_size, precision)]
