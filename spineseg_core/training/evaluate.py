"""Validation passes of a training run and the result files of its final evaluation.

:func:`evaluate` runs a model over the validation slices and feeds an
:class:`~spineseg_core.metrics.EvalAccumulator`; the final evaluation also keeps every slice
for ``predictions.npz``. :func:`write_final_results` writes ``per_class.csv``,
``per_case.csv`` and ``predictions.npz`` of the run folder.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from spineseg_core.io import write_with
from spineseg_core.metrics import EvalAccumulator, per_slice_dice
from spineseg_core.training.run_folder import RunFolder


@dataclass
class EvalResult:
    """What one validation pass produced."""

    acc: EvalAccumulator
    loss: float
    n_slices: int
    slices: dict[str, list] = field(default_factory=dict)


def _as_slices(batch: dict, logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor,
                                                                 list[str], list[int]]:
    """A batch as slices: ``(logits (n, C, H, W), mask (n, H, W), image (n, H, W), case ids,
    slice indices)``. A slice batch passes as it is (the image's middle channel: the slice
    itself for a 2.5D stack); a volume batch ``(N, C, D, H, W)`` is cut into its volumes' own
    slices, the depth padding (``num_slices``) left out, so 2D and 3D models are scored alike."""
    image = batch["image"]
    if logits.ndim == 4:
        return (logits, y, image[:, image.shape[1] // 2], [str(c) for c in batch["case_id"]],
                [int(s) for s in batch["slice_index"]])
    counts = [int(n) for n in batch["num_slices"]]
    logits = torch.cat([logits[i, :, :n].movedim(1, 0) for i, n in enumerate(counts)])
    y = torch.cat([y[i, :n] for i, n in enumerate(counts)])
    image = torch.cat([image[i, 0, :n] for i, n in enumerate(counts)])
    cases = [str(c) for c, n in zip(batch["case_id"], counts) for _ in range(n)]
    return logits, y, image, cases, [s for n in counts for s in range(n)]


def evaluate(model: nn.Module, loader: Iterable[dict], device: torch.device,
             loss_fn: Callable[[Tensor, Tensor], Tensor], *, autocast: Callable[[],
             AbstractContextManager], channels_last: bool = False,
             keep_slices: bool = False) -> EvalResult:
    """Predict every validation batch (argmax of the logits) and accumulate the metrics.

    The mean loss is over batches (for a 3D model over whole padded volumes), accumulated on the
    device and read once at the end; the metrics are over slices (:func:`_as_slices`).
    ``keep_slices`` keeps images, references and predictions on the CPU (final evaluation).
    """
    model.eval()
    acc = EvalAccumulator(keep_volumes=keep_slices)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    n_batches = n_slices = 0
    kept: dict[str, list] = {k: [] for k in ("image", "mask", "pred", "case_id",
                                             "slice_index")}
    with torch.inference_mode():
        for batch in loader:
            x = batch["image"].to(device, non_blocking=True)
            y = batch["mask"].to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast():
                logits = model(x)
            logits = logits.float()
            loss_sum += loss_fn(logits, y).detach().to(torch.float64)
            logits, y, image, case_ids, slice_index = _as_slices(batch, logits, y)
            pred = logits.argmax(dim=1)
            acc.update(pred, y, case_ids, slice_index)
            n_batches += 1
            n_slices += pred.shape[0]
            if keep_slices:
                kept["image"].append(image.numpy().astype(np.float16))
                kept["mask"].append(y.cpu().numpy().astype(np.uint8))
                kept["pred"].append(pred.cpu().numpy().astype(np.uint8))
                kept["case_id"].extend(case_ids)
                kept["slice_index"].extend(slice_index)
    loss = float(loss_sum) / n_batches if n_batches else math.nan
    return EvalResult(acc, loss, n_slices, kept if keep_slices else {})


def write_final_results(run: RunFolder, result: EvalResult,
                        spacing_by_case: dict[str, tuple[float, float, float]],
                        with_hd95: bool) -> dict[str, float]:
    """Write per_class.csv, per_case.csv and predictions.npz; return the summary metrics."""
    acc = result.acc
    per_class = acc.per_class()
    per_case = acc.per_case(spacing_by_case, with_hd95=with_hd95)
    summary = acc.summary(spacing_by_case, with_hd95=with_hd95)
    write_with(run.per_class, lambda p: per_class.to_csv(p, index=False))
    write_with(run.per_case, lambda p: per_case.to_csv(p, index=False))
    s = result.slices
    mask = np.concatenate(s["mask"])
    pred = np.concatenate(s["pred"])
    arrays = {
        "image": np.concatenate(s["image"]),
        "mask": mask,
        "pred": pred,
        "case_id": np.asarray(s["case_id"], dtype=str),
        "slice_index": np.asarray(s["slice_index"], dtype=np.int64),
        "dice": per_slice_dice(torch.from_numpy(pred), torch.from_numpy(mask)).numpy(),
    }

    def _save(path):
        with open(path, "wb") as fh:  # a file object: numpy would append ".npz" to a path
            np.savez_compressed(fh, **arrays)

    write_with(run.predictions, _save)
    return summary
