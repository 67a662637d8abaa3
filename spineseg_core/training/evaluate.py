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


def evaluate(model: nn.Module, loader: Iterable[dict], device: torch.device,
             loss_fn: Callable[[Tensor, Tensor], Tensor], *, autocast: Callable[[],
             AbstractContextManager], channels_last: bool = False,
             keep_slices: bool = False) -> EvalResult:
    """Predict every validation batch (argmax of the logits) and accumulate the metrics.

    The mean loss is over batches, accumulated on the device and read once at the end.
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
            pred = logits.argmax(dim=1)
            slice_index = [int(s) for s in batch["slice_index"]]
            acc.update(pred, y, list(batch["case_id"]), slice_index)
            n_batches += 1
            n_slices += x.shape[0]
            if keep_slices:
                kept["image"].append(batch["image"][:, 0].numpy().astype(np.float16))
                kept["mask"].append(batch["mask"].numpy().astype(np.uint8))
                kept["pred"].append(pred.cpu().numpy().astype(np.uint8))
                kept["case_id"].extend(str(c) for c in batch["case_id"])
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
