"""Metrics: hand-computed cases, an independent numpy computation and MONAI as oracles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from spineseg_core import metrics as M
from spineseg_core.labels import FOREGROUND, NUM_CLASSES


def _structured_pair(seed: int, shape=(3, 24, 24), num_classes=NUM_CLASSES):
    """Blocky label maps (runs of one class) with a reference and a perturbed prediction."""
    rng = np.random.default_rng(seed)
    s, h, w = shape
    coarse = rng.integers(0, num_classes, size=(s, h // 4, w // 4))
    ref = np.kron(coarse, np.ones((1, 4, 4), dtype=np.int64))
    pred = ref.copy()
    flip = rng.random(ref.shape) < 0.2
    pred[flip] = rng.integers(0, num_classes, size=int(flip.sum()))
    return pred, ref


def _numpy_scores(pred: np.ndarray, ref: np.ndarray, c: int) -> dict[str, float]:
    """Per-class scores by boolean masks, one class at a time (independent of the bincount)."""
    p, r = pred == c, ref == c
    tp, fp = float((p & r).sum()), float((p & ~r).sum())
    fn, tn = float((~p & r).sum()), float((~p & ~r).sum())
    nan = float("nan")
    if tp + fp + fn == 0:
        return dict(dice=nan, iou=nan, fnr=nan, fpr=nan, recall=nan)
    return dict(dice=2 * tp / (2 * tp + fp + fn), iou=tp / (tp + fp + fn),
                fnr=fn / (fn + tp) if fn + tp else nan, fpr=fp / (fp + tn) if fp + tn else nan,
                recall=tp / (tp + fn) if tp + fn else nan)


def test_confusion_matrix_rows_are_reference_columns_prediction():
    ref = torch.tensor([0, 0, 1, 2, 2, 2])
    pred = torch.tensor([0, 1, 1, 2, 0, 2])
    cm = M.confusion_matrix(pred, ref, num_classes=3)
    assert cm.dtype == torch.int64
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_confusion_matrix_accepts_uint8_without_overflow():
    ref = torch.full((4,), 19, dtype=torch.uint8)
    cm = M.confusion_matrix(ref, ref)
    assert cm[19, 19] == 4 and cm.sum() == 4


@pytest.mark.parametrize("num_classes", [3, 20, 200])
def test_confusion_matrix_matches_numpy_for_any_index_width(num_classes):
    rng = np.random.default_rng(num_classes)
    ref = rng.integers(0, num_classes, size=(2, 30, 30))
    pred = rng.integers(0, num_classes, size=(2, 30, 30))
    expected = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(expected, (ref.ravel(), pred.ravel()), 1)
    cm = M.confusion_matrix(torch.as_tensor(pred), torch.as_tensor(ref), num_classes)
    np.testing.assert_array_equal(cm.numpy(), expected)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_confusion_matrix_runs_on_cuda():
    pred, ref = (torch.as_tensor(a) for a in _structured_pair(4))
    cm = M.confusion_matrix(pred.cuda(), ref.cuda())
    assert cm.device.type == "cuda"
    assert torch.equal(cm.cpu(), M.confusion_matrix(pred, ref))


def test_confusion_matrix_errors_name_the_problem():
    with pytest.raises(ValueError, match="same shape"):
        M.confusion_matrix(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"target: .*\[0, 19\].*\[20, 25\]"):
        M.confusion_matrix(torch.tensor([0, 1, 2]), torch.tensor([0, 20, 25]))
    with pytest.raises(ValueError, match=r"pred: .*\[-1\]"):
        M.confusion_matrix(torch.tensor([-1, 1]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="integer"):
        M.confusion_matrix(torch.zeros(3), torch.zeros(3, dtype=torch.long))


def test_counts_from_confusion():
    cm = torch.tensor([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    c = M.counts_from_confusion(cm)
    assert c.tp.tolist() == [1, 1, 2]
    assert c.fp.tolist() == [1, 1, 0]
    assert c.fn.tolist() == [1, 0, 1]
    assert c.tn.tolist() == [3, 4, 3]
    assert (c.tp + c.fp + c.fn + c.tn).tolist() == [6, 6, 6]


def test_perfect_prediction_scores_one():
    pred, ref = _structured_pair(0)
    s = M.scores(M.counts_from_confusion(M.confusion_matrix(ref, ref)))
    present = np.unique(ref)
    for k in ("dice", "iou", "recall"):
        assert torch.all(s[k][present] == 1.0)
    assert torch.all(s["fnr"][present] == 0.0) and torch.all(s["fpr"][present] == 0.0)
    summary = M.summarize(M.counts_from_confusion(M.confusion_matrix(ref, ref)))
    assert summary == {"dice": 1.0, "miou": 1.0, "fnr": 0.0, "fpr": 0.0, "recall": 1.0}


def test_empty_prediction_scores_zero_dice_full_fnr():
    ref = torch.zeros(8, 8, dtype=torch.long)
    ref[2:4, 2:6] = 1
    ref[5:7, 1:3] = 2
    pred = torch.zeros_like(ref)
    s = M.scores(M.counts_from_confusion(M.confusion_matrix(pred, ref, num_classes=3)))
    assert s["dice"][1:].tolist() == [0.0, 0.0]
    assert s["iou"][1:].tolist() == [0.0, 0.0]
    assert s["fnr"][1:].tolist() == [1.0, 1.0]
    assert s["recall"][1:].tolist() == [0.0, 0.0]
    assert s["fpr"][1:].tolist() == [0.0, 0.0]
    # Background: 52 reference pixels, all 64 predicted: TP 52, FP 12.
    assert s["dice"][0].item() == pytest.approx(104 / 116)
    assert s["fpr"][0].item() == 1.0


def test_one_pixel_off_exact_fractions():
    ref = torch.zeros(6, 6, dtype=torch.long)
    ref[1:3, 1:3] = 1  # 4 pixels of class 1
    pred = ref.clone()
    pred[1, 1] = 2  # one class-1 pixel predicted as class 2 (absent from the reference)
    s = M.scores(M.counts_from_confusion(M.confusion_matrix(pred, ref, num_classes=3)))
    # class 1: TP 3, FP 0, FN 1, TN 32
    assert s["dice"][1].item() == pytest.approx(6 / 7)
    assert s["iou"][1].item() == pytest.approx(3 / 4)
    assert s["fnr"][1].item() == pytest.approx(1 / 4)
    assert s["recall"][1].item() == pytest.approx(3 / 4)
    assert s["fpr"][1].item() == 0.0
    # class 2: TP 0, FP 1, FN 0, TN 35: absent from the reference, predicted once.
    assert s["dice"][2].item() == 0.0 and s["iou"][2].item() == 0.0
    assert math.isnan(s["fnr"][2].item()) and math.isnan(s["recall"][2].item())
    assert s["fpr"][2].item() == pytest.approx(1 / 36)  # FP / (FP + TN) = 1 / (1 + 35)


def test_class_absent_from_both_is_nan_and_left_out_of_the_mean():
    ref = torch.zeros(4, 4, dtype=torch.long)
    ref[0, :2] = 1  # class 1: 2 pixels
    ref[3, :] = 2  # class 2: 4 pixels
    pred = ref.clone()
    pred[0, 1] = 0  # class 1: TP 1, FN 1 -> dice 2/3
    counts = M.counts_from_confusion(M.confusion_matrix(pred, ref, num_classes=4))
    s = M.scores(counts)
    for k in M.SCORE_NAMES:
        assert math.isnan(s[k][3].item()), k  # class 3 absent from both
    summary = M.summarize(counts, classes=(1, 2, 3))
    assert summary["dice"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert summary["miou"] == pytest.approx((1 / 2 + 1.0) / 2)
    assert summary["fnr"] == pytest.approx((1 / 2 + 0.0) / 2)
    assert summary["recall"] == pytest.approx((1 / 2 + 1.0) / 2)
    assert summary["fpr"] == 0.0


def test_summary_of_nothing_present_is_nan():
    ref = torch.zeros(4, 4, dtype=torch.long)
    summary = M.summarize(M.counts_from_confusion(M.confusion_matrix(ref, ref)))
    assert all(math.isnan(v) for v in summary.values())
    assert set(summary) == {"dice", "miou", "fnr", "fpr", "recall"}


@pytest.mark.parametrize("seed", [1, 2])
def test_scores_match_independent_numpy_loop(seed):
    pred, ref = _structured_pair(seed)
    pred[pred == 7] = 0  # a class present in the reference but never predicted
    ref[ref == 9] = 0
    pred[pred == 9] = 0  # a class absent from both
    s = M.scores(M.counts_from_confusion(M.confusion_matrix(pred, ref)))
    for c in range(NUM_CLASSES):
        expected = _numpy_scores(pred, ref, c)
        for k, v in expected.items():
            np.testing.assert_allclose(s[k][c].item(), v, rtol=1e-12, equal_nan=True,
                                       err_msg=f"{k} of class {c}")


def test_dice_and_iou_match_monai_where_reference_is_present():
    monai_metrics = pytest.importorskip("monai.metrics")
    pred, ref = _structured_pair(3, shape=(2, 32, 32))
    pred_t, ref_t = torch.as_tensor(pred), torch.as_tensor(ref)

    def onehot(x):  # (S, H, W) -> one batch item (1, C, S, H, W)
        return torch.nn.functional.one_hot(x, NUM_CLASSES).permute(3, 0, 1, 2)[None].float()

    ours = M.scores(M.counts_from_confusion(M.confusion_matrix(pred_t, ref_t)))
    dm = monai_metrics.DiceMetric(include_background=True, reduction="none")
    dm(onehot(pred_t), onehot(ref_t))
    monai_dice = dm.aggregate()[0]
    monai_iou = monai_metrics.compute_iou(onehot(pred_t), onehot(ref_t), include_background=True)[0]
    present = np.unique(ref)  # MONAI scores a class absent from the reference NaN; we do 0
    assert len(present) > 10
    torch.testing.assert_close(ours["dice"][present].float(), monai_dice[present])
    torch.testing.assert_close(ours["iou"][present].float(), monai_iou[present])


def test_dice_3d_per_subject_skips_absent_labels():
    ref = np.zeros((2, 4, 4), dtype=np.uint8)
    ref[0, :2, :2] = 1  # 4 voxels
    ref[1, 0, 0] = 5  # 1 voxel, missed
    pred = ref.copy()
    pred[1, 0, 0] = 0
    pred[0, 0, 0] = 3  # label 3 predicted, absent from the reference
    d = M.dice_3d_per_subject(pred, ref)
    assert d == {1: pytest.approx(6 / 7), 3: 0.0, 5: 0.0}
    assert set(d) <= set(FOREGROUND)


def _brute_hd95(pred: np.ndarray, ref: np.ndarray, spacing) -> float:
    from scipy import ndimage

    def surface_points(m):
        s = m ^ ndimage.binary_erosion(m)
        return np.argwhere(s) * np.asarray(spacing, dtype=float)

    a, b = surface_points(pred), surface_points(ref)
    d = cdist(a, b)
    return max(np.percentile(d.min(axis=1), 95), np.percentile(d.min(axis=0), 95))


def _two_blobs(seed: int):
    rng = np.random.default_rng(seed)
    ref = np.zeros((5, 20, 22), dtype=np.uint8)
    ref[1:4, 4:14, 5:15] = 2
    pred = np.zeros_like(ref)
    pred[1:5, 6:17, 4:13] = 2
    pred[2, 2, 18] = 2  # a stray voxel far away
    noise = rng.random(ref.shape) < 0.05
    pred[noise & (pred == 0)] = 7
    return pred, ref


def test_hd95_matches_brute_force_cdist():
    pred, ref = _two_blobs(0)
    ref[ref == 0] = np.where(np.random.default_rng(5).random(ref.shape) < 0.05, 7, 0)[ref == 0]
    spacing = (4.4, 0.5, 0.7)
    ours = M.hd95(pred, ref, spacing, 2)
    assert ours > 0
    assert ours == pytest.approx(_brute_hd95(pred == 2, ref == 2, spacing), rel=1e-9)
    many = M.hd95_per_label(pred, ref, spacing, labels=(2, 7, 9))
    assert many[2] == ours
    assert many[7] == pytest.approx(_brute_hd95(pred == 7, ref == 7, spacing), rel=1e-9)
    assert math.isnan(many[9])


def test_label_surfaces_equal_binary_erosion_per_mask():
    from scipy import ndimage

    pred, _ = _two_blobs(3)
    edge = M._boundary(pred)
    for c in (0, 2, 7):
        mask = pred == c
        np.testing.assert_array_equal(mask & edge, mask ^ ndimage.binary_erosion(mask))


@pytest.mark.filterwarnings("ignore:.*always_return_as_numpy:FutureWarning")  # MONAI's own call
def test_hd95_matches_monai():
    monai_metrics = pytest.importorskip("monai.metrics")
    pred, ref = _two_blobs(1)
    spacing = (2.0, 1.0, 0.5)
    onehot = lambda v: torch.as_tensor(v == 2)[None, None].float()  # noqa: E731
    expected = monai_metrics.compute_hausdorff_distance(
        onehot(pred), onehot(ref), include_background=True, percentile=95, spacing=spacing)
    assert M.hd95(pred, ref, spacing, 2) == pytest.approx(float(expected), rel=1e-5)


def test_hd95_identical_is_zero_and_absent_is_nan():
    pred, ref = _two_blobs(2)
    assert M.hd95(ref, ref, (1, 1, 1), 2) == 0.0
    assert math.isnan(M.hd95(pred, ref, (1, 1, 1), 7))  # predicted only
    assert math.isnan(M.hd95(ref, ref, (1, 1, 1), 9))  # absent from both
    with pytest.raises(ValueError, match="one value per axis"):
        M.hd95(ref, ref, (1, 1), 2)


def test_per_slice_dice():
    ref = torch.zeros(3, 4, 4, dtype=torch.long)
    pred = torch.zeros_like(ref)
    ref[0, 0, :2] = 1
    pred[0, 0, :1] = 1  # slice 0, class 1: TP 1, FN 1 -> 2/3
    ref[0, 3, :] = 2
    pred[0, 3, :] = 2  # slice 0, class 2: 1.0
    pred[1, 2, 2] = 4  # slice 1: class 4 predicted only -> 0
    # slice 2: no foreground anywhere -> NaN
    d = M.per_slice_dice(pred, ref)
    assert d.shape == (3,)
    assert d[0].item() == pytest.approx((2 / 3 + 1.0) / 2)
    assert d[1].item() == 0.0
    assert math.isnan(d[2].item())


def _cases():
    out = {}
    for i, n in enumerate((3, 2, 4)):
        pred, ref = _structured_pair(10 + i, shape=(n, 16, 16))
        out[f"case{i}"] = (torch.as_tensor(pred), torch.as_tensor(ref))
    return out


def _fill(acc: M.EvalAccumulator, cases) -> None:
    """Feed slices in a shuffled order, in batches that mix cases."""
    items = [(cid, k) for cid, (p, _) in cases.items() for k in range(p.shape[0])]
    order = np.random.default_rng(0).permutation(len(items))
    items = [items[i] for i in order]
    for start in range(0, len(items), 4):
        batch = items[start:start + 4]
        acc.update(torch.stack([cases[c][0][k] for c, k in batch]),
                   torch.stack([cases[c][1][k] for c, k in batch]),
                   [c for c, _ in batch], [k for _, k in batch])


def test_accumulator_pools_counts_over_cases():
    cases = _cases()
    acc = M.EvalAccumulator()
    _fill(acc, cases)
    pooled = sum(M.confusion_matrix(p, r) for p, r in cases.values())
    assert torch.equal(acc.confusion(), pooled)
    table = acc.per_class()
    assert list(table.columns) == ["class_value", "class_name", "kind", "dice", "iou", "fnr",
                                   "fpr", "recall", "tp", "fp", "fn", "tn"]
    assert len(table) == NUM_CLASSES and table.loc[12, "class_name"] == "L4/L5"
    counts = M.counts_from_confusion(pooled)
    np.testing.assert_array_equal(table["tp"].to_numpy(), counts.tp.numpy())
    np.testing.assert_allclose(table["dice"].to_numpy(), M.scores(counts)["dice"].numpy())
    summary = acc.summary(with_hd95=False)
    expected = M.summarize(counts)
    for k in expected:
        assert summary[k] == pytest.approx(expected[k])


def test_accumulator_per_case_is_3d_dice_of_the_stacked_volume():
    cases = _cases()
    acc = M.EvalAccumulator()
    _fill(acc, cases)
    spacing = {c: (4.0, 1.0, 1.0) for c in cases}
    table = acc.per_case(spacing)
    assert list(table.columns) == ["case_id", "class_value", "class_name", "tp", "fp", "fn",
                                   "tn", "dice", "hd95"]
    assert len(table) == len(cases) * 19
    subject_means = []
    for cid, (p, r) in cases.items():
        pv, rv = acc.volumes(cid)
        assert np.array_equal(pv, p.numpy()) and np.array_equal(rv, r.numpy())
        d3 = M.dice_3d_per_subject(p, r)
        rows = table[table.case_id == cid].set_index("class_value")
        for c in FOREGROUND:
            if c in d3:
                assert rows.loc[c, "dice"] == pytest.approx(d3[c])
            else:
                assert math.isnan(rows.loc[c, "dice"])
        assert rows.loc[3, "hd95"] == pytest.approx(M.hd95(p, r, spacing[cid], 3), nan_ok=True)
        subject_means.append(np.mean(list(d3.values())))
    summary = acc.summary(spacing)
    assert summary["dice3d_mean"] == pytest.approx(np.mean(subject_means))
    assert summary["dice3d_std"] == pytest.approx(np.std(subject_means))
    assert summary["hd95_mean"] > 0


def test_accumulator_errors():
    acc = M.EvalAccumulator(keep_volumes=False)
    x = torch.zeros(2, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="2 slices but 1 case ids"):
        acc.update(x, x, ["a"], [0, 1])
    acc.update(x, x, ["a", "a"], [0, 1])
    with pytest.raises(ValueError, match="keep_volumes"):
        acc.per_case()
    assert math.isnan(acc.summary()["hd95_mean"])
    kept = M.EvalAccumulator()
    kept.update(x, x, ["a", "a"], [0, 1])
    with pytest.raises(ValueError, match="slice 1 was added twice"):
        kept.update(x[:1], x[:1], ["a"], [1])
    with pytest.raises(KeyError, match="no entry for case 'a'"):
        kept.per_case({"b": (1, 1, 1)})
