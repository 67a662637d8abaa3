"""The study's protocol: the reference never reaches evaluation, and the sanity scores that
catch a model painting background with absent structures."""

from __future__ import annotations

import shutil
from contextlib import nullcontext

import nibabel as nib
import numpy as np
import pytest
import torch

from _tiny_data import make_tiny_dataset
from spineseg_core.data import build_datasets
from spineseg_core.metrics import EvalAccumulator, sanity_scores
from spineseg_core.models import build_model
from spineseg_core.training.evaluate import evaluate


def _alter_masks(root):
    """Rewrite every mask of ``root``: labels shifted by one level, a block erased."""
    for path in sorted((root / "train" / "Mask").glob("*.nii.gz")):
        img = nib.load(path)
        m = np.asarray(img.dataobj).astype(np.uint8)
        m = np.where(m > 0, (m % 19) + 1, 0).astype(np.uint8)
        m[: m.shape[0] // 2] = 0
        nib.save(nib.Nifti1Image(m, img.affine), path)


def test_evaluation_cannot_see_the_masks(tmp_path):
    """Same images, altered masks: validation and test inputs and every prediction are identical
    (only the scores differ). Training slices may differ (their band follows the mask)."""
    a = make_tiny_dataset(tmp_path / "a", cases=6, slices=2, size=32)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    _alter_masks(b)
    bundles = [build_datasets(root, image_size=32, cache_dir=tmp_path / f"cache_{root.name}",
                              splits_path=tmp_path / f"s_{root.name}.json",
                              test_split_path=tmp_path / f"t_{root.name}.json", seed=0, fold=0,
                              crop_width=0.5)
               for root in (a, b)]
    assert bundles[0].test_ids == bundles[1].test_ids and bundles[0].val_ids == bundles[1].val_ids
    torch.manual_seed(0)
    model = build_model("unet", base_width=4, depth=2).eval()
    preds = []
    for bundle in bundles:
        for part in (bundle.val, bundle.test):
            loader = torch.utils.data.DataLoader(part, batch_size=2)
            res = evaluate(model, loader, torch.device("cpu"), lambda lo, y: lo.sum() * 0,
                           autocast=nullcontext, keep_slices=True)
            preds.append((np.concatenate(res.slices["image"]), np.concatenate(res.slices["pred"]),
                          np.concatenate(res.slices["mask"])))
    for (img_a, pred_a, mask_a), (img_b, pred_b, mask_b) in zip(preds[:2], preds[2:]):
        np.testing.assert_array_equal(img_a, img_b)
        np.testing.assert_array_equal(pred_a, pred_b)
        assert not np.array_equal(mask_a, mask_b)  # the masks did change


def test_sanity_scores_by_hand():
    # Case A: reference holds background (0) and class 1; class 2 is absent from A.
    # Rows = reference, columns = prediction, 3 classes.
    a = np.array([[90, 4, 6],    # 90 background right, 4 -> class 1, 6 -> class 2 (absent)
                  [0, 10, 0],
                  [0, 0, 0]])
    # Case B: holds all three; nothing is absent.
    b = np.array([[50, 0, 0],
                  [0, 25, 0],
                  [0, 5, 20]])
    s = sanity_scores([a, b])
    assert s["bg_recall"] == pytest.approx((90 + 50) / (100 + 50))
    # Absent in A: class 2, predicted on 6 pixels; B has none absent; 110 + 100 pixels in all.
    assert s["absent_fraction"] == pytest.approx(6 / 210)
    with pytest.raises(ValueError, match="at least one"):
        sanity_scores([])


def test_accumulator_summary_carries_the_sanity_scores():
    acc = EvalAccumulator(keep_volumes=False)
    ref = torch.tensor([[[0, 0, 1, 1]]])
    pred = torch.tensor([[[0, 2, 1, 1]]])  # one background pixel painted with absent class 2
    acc.update(pred, ref, ["c"], [0])
    s = acc.summary(with_hd95=False)
    assert s["bg_recall"] == pytest.approx(0.5) and s["absent_fraction"] == pytest.approx(0.25)


def test_structure_heights_and_feature_maps_by_hand():
    from spineseg_core.data.resolution import feature_map_sizes, structure_heights

    mask = np.zeros((2, 20, 10), np.uint8)
    mask[:, 2:4, 3:7] = 19   # disc T9/T10: 2 px high in 4 columns, both slices
    mask[:, 4:10, 3:7] = 10  # vertebra T9: 6 px
    mask[:, 10:13, 3:7] = 11  # disc L5/S: 3 px
    mask[0, 13:18, 3:5] = 1  # sacrum: 5 px in 2 columns of one slice
    t = structure_heights([mask], spacing_mm=2.0).set_index("kind")
    assert t.loc["thoracic disc", "median_px"] == 2 and t.loc["thoracic disc", "n_columns"] == 8
    assert t.loc["thoracic vertebra", "median_mm"] == 12.0
    assert t.loc["lumbar disc", "median_px"] == 3 and t.loc["sacrum", "median_px"] == 5
    maps = feature_map_sizes(128, 64)
    assert maps.values.tolist() == [[8, 16, 8], [16, 8, 4], [32, 4, 2]]
    assert feature_map_sizes(100, 100).values.tolist()[2] == [32, 4, 4]


def test_resolution_command_measures_the_training_volumes(tmp_path, monkeypatch):
    from spineseg_core.cli import main as cli_main

    monkeypatch.setenv("SPINESEG_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "resolution.csv"
    assert cli_main(["resolution", "--profile", "smoke", "--out", str(out)]) == 0
    import pandas as pd

    table = pd.read_csv(out)
    heights = table[table["section"] == "height"].set_index("kind")
    assert {"lumbar disc", "lumbar vertebra", "sacrum"} <= set(heights.index)
    assert (heights["p10_px"] <= heights["median_px"]).all()
    assert (heights["median_px"] <= heights["p90_px"]).all()
    maps = table[table["section"] == "map, evaluated field of view"]
    assert maps["rows"].tolist() == [8, 4, 2] and (table["image_size"] == 64).all()


def test_budget_exceptions_against_the_studys_own_budget():
    """Records of an older code version are judged by the budget their own study shared."""
    from spineseg_core.training.config import budget_exceptions, consensus_budget

    old = {"profile": "cpu", "epochs": 6, "scheduler": "constant", "phantom_cases": 40,
           "batch_size": 4, "amp": True, "lr": 5e-4, "image_size": 128, "crop_width": 0.5}
    runs = [dict(old, model=m) for m in ("unet", "pspnet", "emanet")]
    runs.append(dict(old, model="miniseg", amp=False))
    base = consensus_budget(runs)
    assert base["scheduler"] == "constant" and base["phantom_cases"] == 40 and base["amp"] is True
    assert [budget_exceptions(r, base) for r in runs] == [[], [], [],
                                                          ["amp=False (profile: True)"]]
    # against today's profile every one of them differs (the reason for the consensus)
    assert "scheduler='constant' (profile: 'cosine')" in budget_exceptions(runs[0])
    # a tie goes to today's profile value when it is one of the tied values
    tie = [dict(old, amp=True), dict(old, amp=False)]
    assert consensus_budget(tie)["amp"] is True
    assert consensus_budget([dict(old, amp=False), dict(old, amp=True)])["amp"] is True


def test_budget_exceptions_name_what_differs_from_the_profile():
    from spineseg_core.training.config import budget_exceptions, resolve_config

    params = resolve_config("cpu", model="unet").to_dict()
    assert budget_exceptions(params) == []
    params.update(epochs=24, amp=False)  # epochs are not read under a step budget
    assert budget_exceptions(params) == ["amp=False (profile: True)"]
    params.update(steps=2940)  # the budget seed's B/2
    assert budget_exceptions(params) == ["steps=2940 (profile: 5880)", "amp=False (profile: True)"]
    old = {**params, "epochs": 6, "scheduler": "constant"}  # a record of the epoch budget
    del old["steps"], old["warmup_steps"]
    assert budget_exceptions(old) == ["scheduler='constant' (profile: 'cosine')",
                                      "amp=False (profile: True)"]
    assert budget_exceptions({"profile": "laptop"}) == ["profile='laptop' (not a known profile)"]
    # A model's own budget exception (training.budgets) is listed against the profile too.
    mini = resolve_config("paper", model="miniseg", phantom=True).to_dict()
    assert budget_exceptions(mini) == ["amp=False (profile: True)"]
    danet = resolve_config("cpu", model="danet").to_dict()
    assert budget_exceptions(danet) == [
        "model_kwargs={'output_stride': 8} (profile: the model's defaults)"]


def test_validation_gap_parts_by_hand():
    import pandas as pd

    from spineseg_core.study.validation import gap_parts, held_classes

    # validation holds classes 1 and 2 in every subject, class 3 in one of four
    val = pd.DataFrame({"class_value": [1, 2, 3], "share": [1.0, 1.0, 0.25], "n_subjects": 4})
    assert held_classes(val) == [1, 2]
    runs = pd.DataFrame({"model": ["unet", "unet"], "display_name": ["U-Net", "U-Net"],
                         "val_dice": [0.80, 0.70], "dice": [0.55, 0.45]})
    per_class = pd.DataFrame({"model": "unet", "class_value": [0, 1, 2, 3],
                              "dice": [0.99, 0.7, 0.8, 0.0]})
    row = gap_parts(runs, per_class, val).iloc[0]
    assert row["gap"] == pytest.approx(0.25)
    assert row["test_dice_held_classes"] == pytest.approx(0.75)  # classes 1, 2; not background
    assert row["composition"] == pytest.approx(0.75 - 0.5)       # against (0.7 + 0.8 + 0) / 3
