"""Segmentation metrics of the study, all computed from confusion counts.

Every score is a reduction over one ``(C, C)`` confusion matrix (rows = reference, columns =
prediction), so per-class, per-case and pooled tables come from the same counts:

* Dice ``2TP / (2TP + FP + FN)`` (paper eq. 2), IoU ``TP / (TP + FP + FN)`` (eq. 3),
  FNR ``FN / (FN + TP)`` (eq. 4), FPR ``FP / (FP + TN)`` (eq. 5), recall ``TP / (TP + FN)``.
* **Absent classes.** A class absent from both prediction and reference (``TP + FP + FN == 0``)
  is not evaluated: every score of it is NaN and it is left out of every mean. This is the
  rule of the challenge's official metric (per-subject 3D Dice over labels 1-19, a label absent
  from both skipped); libraries that score such a class 1 or 0 would move the means of the rare
  levels (T9, T10) a lot. A class absent from the reference but predicted scores Dice 0 (MONAI's
  ``ignore_empty`` would make it NaN and so forgive false positives). Any other zero denominator
  is NaN too: FNR and recall
  when the class is absent from the reference (``TP + FN == 0``), FPR when the class covers
  every pixel (``FP + TN == 0``).
* Means over classes are taken over the 19 foreground labels, ignoring NaN.

The challenge metric (3D Dice per subject) and HD95 work on whole volumes ``(S, H, W)``;
:class:`EvalAccumulator` gathers validation slices into both kinds of tables.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from spineseg_core.labels import FOREGROUND, LABELS, NUM_CLASSES

SCORE_NAMES: tuple[str, ...] = ("dice", "iou", "fnr", "fpr", "recall")
"""Per-class scores returned by :func:`scores`."""

SUMMARY_KEYS: dict[str, str] = {"dice": "dice", "miou": "iou", "fnr": "fnr", "fpr": "fpr",
                                "recall": "recall"}
"""Keys of :func:`summarize` (the paper's Table 1 columns) and the score each averages."""

ArrayLike = Tensor | np.ndarray


class Counts(NamedTuple):
    """True/false positives/negatives per class, each of shape ``(C,)`` (int64)."""

    tp: Tensor
    fp: Tensor
    fn: Tensor
    tn: Tensor


def _as_label_tensor(x: ArrayLike, what: str) -> Tensor:
    t = torch.as_tensor(x)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{what}: expected an integer label map, got dtype {t.dtype}")
    return t


def _check_range(t: Tensor, num_classes: int, what: str) -> None:
    lo, hi = torch.aminmax(t) if t.numel() else (torch.tensor(0), torch.tensor(0))
    if int(lo) < 0 or int(hi) >= num_classes:
        bad = torch.unique(t[(t < 0) | (t >= num_classes)])[:10].tolist()
        raise ValueError(f"{what}: label values must lie in [0, {num_classes - 1}], "
                         f"found {bad}")


def _index_dtype(n_bins: int) -> torch.dtype:
    for dtype in (torch.int16, torch.int32):
        if n_bins <= torch.iinfo(dtype).max:
            return dtype
    return torch.int64


def confusion_matrix(pred: ArrayLike, target: ArrayLike, num_classes: int = NUM_CLASSES) -> Tensor:
    """Confusion matrix ``(C, C)`` int64 of two label maps of equal shape, on their device.

    Rows index the reference class, columns the predicted class. One ``bincount`` over
    ``target * C + pred``: linear in the number of pixels, and runs on CUDA unchanged.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    p = _as_label_tensor(pred, "pred")
    t = _as_label_tensor(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(p.shape)} "
                         f"and {tuple(t.shape)}")
    if p.device != t.device:
        raise ValueError(f"pred and target are on different devices ({p.device}, {t.device})")
    _check_range(p, num_classes, "pred")
    _check_range(t, num_classes, "target")
    # The narrowest exact index type: int16 (20 classes: 400 bins) moves a quarter of int64's
    # bytes and makes the whole computation ~3x faster on the CPU.
    index_dtype = _index_dtype(num_classes * num_classes)
    index = t.reshape(-1).to(index_dtype) * num_classes + p.reshape(-1).to(index_dtype)
    cm = torch.bincount(index, minlength=num_classes * num_classes)
    return cm.reshape(num_classes, num_classes).to(torch.int64)


def counts_from_confusion(cm: ArrayLike) -> Counts:
    """TP, FP, FN, TN per class from a ``(C, C)`` confusion matrix (rows = reference)."""
    m = torch.as_tensor(cm).to(torch.int64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"confusion matrix must be square (C, C), got {tuple(m.shape)}")
    tp = torch.diagonal(m)
    fp = m.sum(dim=0) - tp
    fn = m.sum(dim=1) - tp
    tn = m.sum() - tp - fp - fn
    return Counts(tp.clone(), fp, fn, tn)


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    return torch.where(den > 0, num / den.clamp(min=1), torch.full_like(num, float("nan")))


def scores(counts: Counts) -> dict[str, Tensor]:
    """Per-class ``dice, iou, fnr, fpr, recall`` (float64, shape ``(C,)``) from counts.

    A class absent from both prediction and reference is NaN in every score; FNR/recall are NaN
    when the class is absent from the reference, FPR when it fills every pixel (module doc).
    """
    tp, fp, fn, tn = (torch.as_tensor(c).to(torch.float64) for c in counts)
    out = {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "iou": _ratio(tp, tp + fp + fn),
        "fnr": _ratio(fn, fn + tp),
        "fpr": _ratio(fp, fp + tn),
        "recall": _ratio(tp, tp + fn),
    }
    absent = (tp + fp + fn) == 0
    return {k: torch.where(absent, torch.full_like(v, float("nan")), v) for k, v in out.items()}


def _nanmean(x: Tensor) -> float:
    x = x[~torch.isnan(x)]
    return float(x.mean()) if x.numel() else float("nan")


def summarize(counts: Counts, classes: Sequence[int] = FOREGROUND) -> dict[str, float]:
    """Means over ``classes`` (NaN ignored) of the Table 1 metrics: dice, miou, fnr, fpr, recall."""
    s = scores(counts)
    idx = torch.as_tensor(list(classes), dtype=torch.long)
    return {key: _nanmean(s[score].cpu()[idx]) for key, score in SUMMARY_KEYS.items()}


def sanity_scores(case_confusions: Sequence[ArrayLike]) -> dict[str, float]:
    """Whether a model predicts background as background, from per-case confusion matrices
    (rows = reference): the protocol's check against the "background collapse" defect.

    * ``bg_recall``: pooled recall of the background class, TP_0 / (TP_0 + FN_0);
    * ``absent_fraction``: pixels predicted as a structure that the case's reference does not
      contain anywhere in its evaluated slices, over all pixels (a case's own absent levels:
      T9 in a lumbar field of view, say).
    """
    cms = [torch.as_tensor(cm).to(torch.int64).cpu() for cm in case_confusions]
    if not cms:
        raise ValueError("no cases: sanity_scores needs at least one confusion matrix")
    pooled = torch.stack(cms).sum(0)
    bg_ref = int(pooled[0].sum())
    absent = total = 0
    for cm in cms:
        absent_classes = (cm.sum(dim=1) == 0)
        absent_classes[0] = False
        absent += int(cm.sum(dim=0)[absent_classes].sum())
        total += int(cm.sum())
    return {"bg_recall": int(pooled[0, 0]) / bg_ref if bg_ref else float("nan"),
            "absent_fraction": absent / total}


def dice_3d_per_subject(pred_vol: ArrayLike, ref_vol: ArrayLike,
                        classes: Sequence[int] = FOREGROUND) -> dict[int, float]:
    """The challenge metric of one subject: 3D Dice per label, labels absent from both skipped."""
    num_classes = max(NUM_CLASSES, max(classes, default=0) + 1)
    dice = scores(counts_from_confusion(confusion_matrix(pred_vol, ref_vol, num_classes)))["dice"]
    return {int(c): float(dice[c]) for c in classes if not torch.isnan(dice[c])}


def _boundary(vol: np.ndarray) -> np.ndarray:
    """Voxels with a face neighbour of another value, or on the array's border.

    For a boolean mask, ``mask & _boundary(mask)`` is ``mask ^ binary_erosion(mask)`` with
    scipy's default (face-connected) structure and border value 0, MONAI's surface; for a label
    volume it gives the surfaces of every label in one pass.
    """
    edge = np.zeros(vol.shape, dtype=bool)
    for axis in range(vol.ndim):
        lo = [slice(None)] * vol.ndim
        hi = [slice(None)] * vol.ndim
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        differs = vol[tuple(lo)] != vol[tuple(hi)]
        edge[tuple(lo)] |= differs
        edge[tuple(hi)] |= differs
        first = [slice(None)] * vol.ndim
        first[axis] = [0, -1] if vol.shape[axis] > 1 else [0]
        edge[tuple(first)] = True
    return edge


def _surface_points(vol: np.ndarray, labels: Sequence[int], spacing: np.ndarray
                    ) -> dict[int, np.ndarray]:
    """Physical coordinates ``(K, ndim)`` of the surface voxels of each label present."""
    wanted = np.asarray(sorted({int(c) for c in labels}))
    coords = np.nonzero(_boundary(vol) & np.isin(vol, wanted))
    values = vol[coords]
    order = np.argsort(values, kind="stable")
    points = np.stack([c[order] for c in coords], axis=1) * spacing
    present, starts = np.unique(values[order], return_index=True)
    return {int(c): part for c, part in zip(present, np.split(points, starts[1:]))}


def _as_volume(x: ArrayLike) -> np.ndarray:
    return np.asarray(x.detach().cpu() if isinstance(x, Tensor) else x)


def hd95_per_label(pred_vol: ArrayLike, ref_vol: ArrayLike, spacing: Sequence[float],
                   labels: Sequence[int] = FOREGROUND) -> dict[int, float]:
    """:func:`hd95` of every label in ``labels`` (one pass over the volumes for all of them)."""
    p, r = _as_volume(pred_vol), _as_volume(ref_vol)
    if p.shape != r.shape:
        raise ValueError(f"pred_vol and ref_vol must have the same shape, got {p.shape} and {r.shape}")
    if len(spacing) != p.ndim:
        raise ValueError(f"spacing must have one value per axis ({p.ndim}), got {tuple(spacing)}")
    sp = np.asarray([float(s) for s in spacing])
    pred_pts, ref_pts = _surface_points(p, labels, sp), _surface_points(r, labels, sp)
    out = {}
    for c in labels:
        if c not in pred_pts or c not in ref_pts:
            out[int(c)] = float("nan")
            continue
        a, b = pred_pts[c], ref_pts[c]
        to_ref = cKDTree(b).query(a, workers=-1)[0]
        to_pred = cKDTree(a).query(b, workers=-1)[0]
        out[int(c)] = float(max(np.percentile(to_ref, 95), np.percentile(to_pred, 95)))
    return out


def hd95(pred_vol: ArrayLike, ref_vol: ArrayLike, spacing: Sequence[float], label: int) -> float:
    """95th-percentile symmetric Hausdorff distance (mm) between the surfaces of ``label``.

    Surfaces are the voxels one binary erosion removes (face connectivity, outside counts as
    background: MONAI's convention). Each surface voxel's distance to the nearest voxel of the
    other surface is exact Euclidean in physical units (``spacing`` in the volume's axis order,
    ``(slice, row, column)`` mm in the study), found with a k-d tree: the same values as
    ``scipy.ndimage.distance_transform_edt(sampling=spacing)`` read at the surface, but its cost
    follows the number of surface voxels, not the bounding box, so stray predicted voxels far
    away cannot make a (15, 880, 880) case slow. The result is the larger of the two directed
    95th percentiles, as ``monai.metrics.compute_hausdorff_distance(percentile=95)``. NaN when
    the label is absent from either volume.
    """
    return hd95_per_label(pred_vol, ref_vol, spacing, (label,))[int(label)]


def _bincount_per_group(pred: Tensor, target: Tensor, group: Tensor, n_groups: int,
                        num_classes: int) -> Tensor:
    """Confusion matrices ``(G, C, C)`` of pixels grouped by ``group`` (one per pixel's slice)."""
    c2 = num_classes * num_classes
    index = (group.to(torch.int64).view(-1, *([1] * (pred.ndim - 1))) * c2
             + target.to(torch.int64) * num_classes + pred.to(torch.int64))
    cm = torch.bincount(index.reshape(-1), minlength=n_groups * c2)
    return cm.reshape(n_groups, num_classes, num_classes)


def _check_batch(pred: Tensor, target: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    p = _as_label_tensor(pred, "pred")
    t = _as_label_tensor(target, "target")
    if p.ndim != 3 or p.shape != t.shape:
        raise ValueError(f"pred and target must both be (N, H, W), got {tuple(p.shape)} "
                         f"and {tuple(t.shape)}")
    _check_range(p, num_classes, "pred")
    _check_range(t, num_classes, "target")
    return p, t


def per_slice_dice(pred: ArrayLike, target: ArrayLike, num_classes: int = NUM_CLASSES) -> Tensor:
    """Mean foreground Dice of each slice of ``(N, H, W)`` label maps, shape ``(N,)`` float64.

    Classes absent from both maps of a slice are skipped; a slice with no foreground in either
    map is NaN.
    """
    p, t = _check_batch(torch.as_tensor(pred), torch.as_tensor(target), num_classes)
    n = p.shape[0]
    cm = _bincount_per_group(p, t, torch.arange(n, device=p.device), n, num_classes)
    tp = torch.diagonal(cm, dim1=1, dim2=2).to(torch.float64)
    fp = cm.sum(dim=1) - tp
    fn = cm.sum(dim=2) - tp
    dice = _ratio(2 * tp, 2 * tp + fp + fn)[:, 1:]
    present = ~torch.isnan(dice)
    total = torch.where(present, dice, torch.zeros_like(dice)).sum(dim=1)
    k = present.sum(dim=1)
    return torch.where(k > 0, total / k.clamp(min=1), torch.full_like(total, float("nan")))


def _class_info(value: int) -> tuple[str, str]:
    if value < len(LABELS):
        return LABELS[value].name, str(LABELS[value].kind)
    return str(value), "unknown"


class EvalAccumulator:
    """Gathers validation slices case by case into pooled, per-class and per-case metrics.

    ``update`` adds one batch: a confusion matrix per case is accumulated on the batch's device
    (one ``bincount``), and with ``keep_volumes`` the slices are kept as uint8 numpy arrays so
    that each case can be stacked, in slice-index order, into a volume for 3D Dice and HD95.
    Pooled scores (``per_class``, ``summary``'s dice..recall) count every pixel of every case
    together, like the paper; ``dice3d_*`` follow the challenge (per subject, then over subjects).
    """

    def __init__(self, num_classes: int = NUM_CLASSES, keep_volumes: bool = True) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = num_classes
        self.keep_volumes = keep_volumes
        self._cm: dict[str, Tensor] = {}
        self._slices: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = defaultdict(dict)
        self._hd95_cache: dict[tuple[str, tuple[float, ...]], dict[int, float]] = {}

    @property
    def case_ids(self) -> list[str]:
        """Cases seen so far, in order of first appearance."""
        return list(self._cm)

    def update(self, pred: Tensor, target: Tensor, case_ids: Sequence[str],
               slice_indices: Sequence[int]) -> None:
        """Add a batch of predicted and reference slices ``(N, H, W)`` of the named cases."""
        p, t = _check_batch(pred, target, self.num_classes)
        n = p.shape[0]
        if len(case_ids) != n or len(slice_indices) != n:
            raise ValueError(f"got {n} slices but {len(case_ids)} case ids and "
                             f"{len(slice_indices)} slice indices")
        batch_cases = list(dict.fromkeys(str(c) for c in case_ids))
        group = torch.as_tensor([batch_cases.index(str(c)) for c in case_ids], device=p.device)
        cms = _bincount_per_group(p, t, group, len(batch_cases), self.num_classes)
        for i, case in enumerate(batch_cases):
            self._cm[case] = self._cm[case] + cms[i] if case in self._cm else cms[i]
        if self.keep_volumes:
            pn = p.detach().cpu().numpy().astype(np.uint8)
            tn = t.detach().cpu().numpy().astype(np.uint8)
            for k, (case, idx) in enumerate(zip(case_ids, slice_indices)):
                store = self._slices[str(case)]
                if int(idx) in store:
                    raise ValueError(f"case {case}: slice {int(idx)} was added twice")
                store[int(idx)] = (pn[k], tn[k])
        self._hd95_cache.clear()

    def confusion(self, case_id: str | None = None) -> Tensor:
        """The confusion matrix of one case, or pooled over all cases (``None``), on the CPU."""
        if not self._cm:
            raise ValueError("no slices have been added")
        if case_id is None:
            return torch.stack([m.cpu() for m in self._cm.values()]).sum(dim=0)
        if case_id not in self._cm:
            raise KeyError(f"unknown case {case_id!r}; known: {', '.join(self._cm)}")
        return self._cm[case_id].cpu()

    def volumes(self, case_id: str) -> tuple[np.ndarray, np.ndarray]:
        """The (prediction, reference) volumes ``(S, H, W)`` uint8 of one case, by slice index."""
        if not self.keep_volumes:
            raise ValueError("volumes were not kept (EvalAccumulator(keep_volumes=False))")
        if case_id not in self._slices:
            raise KeyError(f"unknown case {case_id!r}; known: {', '.join(self._slices)}")
        store = self._slices[case_id]
        order = sorted(store)
        return (np.stack([store[i][0] for i in order]), np.stack([store[i][1] for i in order]))

    def per_class(self) -> pd.DataFrame:
        """Pooled scores and counts per class (all classes, background included)."""
        counts = counts_from_confusion(self.confusion())
        s = scores(counts)
        rows = []
        for c in range(self.num_classes):
            name, kind = _class_info(c)
            rows.append({"class_value": c, "class_name": name, "kind": kind,
                         **{k: float(s[k][c]) for k in SCORE_NAMES},
                         **{k: int(getattr(counts, k)[c]) for k in Counts._fields}})
        return pd.DataFrame(rows)

    def _hd95_of_case(self, case_id: str, spacing: tuple[float, ...]) -> dict[int, float]:
        key = (case_id, spacing)
        if key not in self._hd95_cache:
            pv, rv = self.volumes(case_id)
            self._hd95_cache[key] = hd95_per_label(pv, rv, spacing, range(1, self.num_classes))
        return self._hd95_cache[key]

    def per_case(self, spacing_by_case: dict[str, tuple] | None = None,
                 with_hd95: bool = True) -> pd.DataFrame:
        """Long table ``case_id, class_value, class_name, tp, fp, fn, tn, dice, hd95``.

        One row per case and foreground class. Counts and Dice are 3D, over the case's evaluated
        slices (Dice NaN for a class absent from both). HD95 is in the units of
        ``spacing_by_case[case]`` (``(slice, row, column)`` mm); without it, in voxels. With
        ``with_hd95=False`` the column is NaN and no volume is needed.
        """
        if with_hd95 and not self.keep_volumes:
            raise ValueError("hd95 needs the volumes: use EvalAccumulator(keep_volumes=True) "
                             "or per_case(with_hd95=False)")
        rows = []
        for case in self.case_ids:
            counts = counts_from_confusion(self.confusion(case))
            dice = scores(counts)["dice"]
            if with_hd95:
                if spacing_by_case is not None and case not in spacing_by_case:
                    raise KeyError(f"spacing_by_case has no entry for case {case!r}")
                spacing = tuple(float(s) for s in
                                (spacing_by_case[case] if spacing_by_case else (1.0, 1.0, 1.0)))
                dist = self._hd95_of_case(case, spacing)
            for c in range(1, self.num_classes):
                rows.append({"case_id": case, "class_value": c, "class_name": _class_info(c)[0],
                             **{k: int(getattr(counts, k)[c]) for k in Counts._fields},
                             "dice": float(dice[c]),
                             "hd95": dist[c] if with_hd95 else float("nan")})
        return pd.DataFrame(rows)

    def summary(self, spacing_by_case: dict[str, tuple] | None = None,
                with_hd95: bool | None = None) -> dict[str, float]:
        """Pooled ``dice, miou, fnr, fpr, recall``, :func:`sanity_scores` (``bg_recall,
        absent_fraction``) plus ``dice3d_mean, dice3d_std, hd95_mean``.

        ``dice3d_*``: each subject's mean Dice over its present labels, then the mean and the
        population standard deviation over subjects. ``hd95_mean``: each subject's mean HD95 over
        labels present in both volumes, then the mean over subjects; NaN when ``with_hd95`` is
        False (default: computed exactly when volumes are kept).
        """
        out = summarize(counts_from_confusion(self.confusion()))
        out.update(sanity_scores([self.confusion(c) for c in self.case_ids]))
        with_hd95 = self.keep_volumes if with_hd95 is None else with_hd95
        table = self.per_case(spacing_by_case, with_hd95=with_hd95)
        by_case = table.groupby("case_id", sort=False)
        subject_dice = by_case["dice"].mean().dropna().to_numpy()
        out["dice3d_mean"] = float(subject_dice.mean()) if subject_dice.size else float("nan")
        out["dice3d_std"] = float(subject_dice.std()) if subject_dice.size else float("nan")
        subject_hd = by_case["hd95"].mean().dropna().to_numpy()
        out["hd95_mean"] = float(subject_hd.mean()) if subject_hd.size else float("nan")
        return out
