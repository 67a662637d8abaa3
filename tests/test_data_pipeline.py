"""Resampling, normalisation, the volume cache, slice datasets, augmentation and build_datasets."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import numpy as np
import pytest
import torch

import spineseg_core.data.cache as cache_mod
from spine_files import write_mrspineseg_case
from spineseg_core.data import (
    AugmentConfig,
    CaseRef,
    InPlaneMotion,
    Layout,
    PercentileNormalisation,
    SliceDataset,
    VolumeCache,
    build_augmentation,
    build_datasets,
    list_cases,
    load_case,
    normalise_percentile,
    resample_inplane,
)
from spineseg_core.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def mixed_root(tmp_path_factory):
    """The real in-plane sizes and slice counts: 512 (0.588 mm), 880 and 1008 px, 12/15 slices."""
    root = tmp_path_factory.mktemp("mixed")
    write_mrspineseg_case(root, 2, 12, 512, spacing=(4.4, 0.588, 0.588))
    write_mrspineseg_case(root, 3, 12, 880, spacing=(4.4, 0.3448, 0.3448))
    write_mrspineseg_case(root, 10, 15, 1008, spacing=(4.0, 0.3, 0.3))
    return root


def _small_root(root, n=5, size=24):
    for num in range(1, n + 1):
        write_mrspineseg_case(root, num, 3, size)
    return root


# ---------------------------------------------------------------- preprocessing

def test_resampling_keeps_field_of_view_and_label_set(mixed_root):
    for ref in list_cases(mixed_root):
        vol = load_case(ref)
        out = resample_inplane(vol, 64)
        assert out.image.shape == (vol.num_slices, 64, 64) and out.mask.shape == out.image.shape
        assert out.mask.dtype == np.uint8
        n = vol.image.shape[1]
        fov = n * vol.spacing[1]
        assert out.spacing[1] * 64 == pytest.approx(fov) and out.spacing[2] * 64 == pytest.approx(fov)
        assert out.spacing[0] == vol.spacing[0]
        assert set(np.unique(out.mask)) <= set(np.unique(vol.mask))
        assert set(np.unique(out.mask)) == set(range(20))  # bands >= 1 output pixel survive
        # the outer edge of the field of view is the same world point before and after
        edge_old = vol.affine @ np.array([0, -0.5, -0.5, 1.0])
        edge_new = out.affine @ np.array([0, -0.5, -0.5, 1.0])
        np.testing.assert_allclose(edge_new, edge_old, atol=1e-9)
        edge_old = vol.affine @ np.array([0, n - 0.5, n - 0.5, 1.0])
        edge_new = out.affine @ np.array([0, 63.5, 63.5, 1.0])
        np.testing.assert_allclose(edge_new, edge_old, atol=1e-9)


def test_resampling_non_square_and_values(tmp_path):
    ref = CaseRef("a", *write_mrspineseg_case(tmp_path, 1, 2, 8), "train")
    vol = load_case(ref)
    vol = replace(vol, image=np.ones((2, 8, 12), np.float32) * 5, mask=np.zeros((2, 8, 12), np.uint8))
    out = resample_inplane(vol, 6)
    assert out.image.shape == (2, 6, 6)
    np.testing.assert_allclose(out.image, 5.0, rtol=1e-6)  # linear keeps constants
    assert out.spacing[1] == pytest.approx(vol.spacing[1] * 8 / 6)
    assert out.spacing[2] == pytest.approx(vol.spacing[2] * 12 / 6)
    # nearest for masks: a 2x2 checkerboard upsampled x2 becomes 4x4 blocks
    small = replace(vol, image=np.zeros((1, 2, 2), np.float32),
                    mask=np.array([[[1, 2], [3, 4]]], np.uint8))
    np.testing.assert_array_equal(resample_inplane(small, 4).mask[0],
                                  np.kron([[1, 2], [3, 4]], np.ones((2, 2), int)))
    with pytest.raises(ConfigError, match="image_size"):
        resample_inplane(vol, 0)


def test_percentile_normalisation_hand_values():
    image = np.arange(101, dtype=np.float32).reshape(1, 1, 101)
    out = normalise_percentile(image, lower=10, upper=90)
    assert out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == 1.0
    assert out[0, 0, 50] == pytest.approx(0.5)
    assert out[0, 0, 30] == pytest.approx(0.25)
    assert (out[0, 0, :11] == 0).all() and (out[0, 0, 90:] == 1).all()
    np.testing.assert_array_equal(normalise_percentile(np.full((2, 2, 2), 7.0)), 0)
    with pytest.raises(ConfigError, match="percentiles"):
        PercentileNormalisation(lower=60, upper=40)


# ---------------------------------------------------------------- cache

def test_cache_decodes_once_and_rebuilds_when_needed(tmp_path, monkeypatch):
    root = _small_root(tmp_path / "data", n=2)
    ref = list_cases(root)[0]
    calls = []

    def counting_load(r, **kw):
        calls.append(r.case_id)
        return load_case(r, **kw)

    monkeypatch.setattr(cache_mod, "load_case", counting_load)
    cache = VolumeCache(tmp_path / "cache", 16)
    first = cache.get(ref)
    assert first.image.shape == (3, 16, 16) and first.image.min() >= 0.0 and first.image.max() <= 1.0
    second = VolumeCache(tmp_path / "cache", 16).get(ref)  # a fresh instance reads the disk entry
    assert calls == ["Case1"]
    # A miss hands back exactly what every later hit reads (the stored precision).
    np.testing.assert_array_equal(second.image, first.image)
    np.testing.assert_array_equal(second.mask, first.mask)
    np.testing.assert_allclose(second.affine, first.affine)
    assert second.spacing == pytest.approx(first.spacing) and second.source == ref.image_path
    assert second.source_axcodes == ("P", "I", "R")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1

    VolumeCache(tmp_path / "cache", 20).get(ref)  # another size: another entry
    assert calls == ["Case1", "Case1"] and len(list((tmp_path / "cache").glob("*.npz"))) == 2

    entry = cache.path_for(ref)
    entry.write_bytes(b"corrupt")
    assert cache.get(ref).image.shape == (3, 16, 16)
    assert len(calls) == 3

    st = ref.image_path.stat()
    os.utime(ref.image_path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    cache.get(ref)
    assert len(calls) == 4
    assert not entry.exists()  # the stale entry of the old source was replaced
    assert cache.clear() == 2 and not list((tmp_path / "cache").glob("*.npz"))


def test_cache_raises_data_error_for_bad_case(tmp_path):
    root = _small_root(tmp_path / "data", n=1)
    ref = list_cases(root)[0]
    ref.image_path.write_bytes(b"\x1f\x8b broken")
    with pytest.raises(DataError) as err:
        VolumeCache(tmp_path / "cache", 16).get(ref)
    assert err.value.path == ref.image_path


# ---------------------------------------------------------------- slices and augmentation

def test_slice_dataset_items(tmp_path):
    root = _small_root(tmp_path / "data", n=2)
    write_mrspineseg_case(root, 9, 4, 24, subset="test1", labelled=False)
    vols = [load_case(r) for r in list_cases(root)]
    ds = SliceDataset(vols)
    assert len(ds) == 6 and ds.case_ids == ["Case1", "Case2"]
    item = ds[4]
    assert item["case_id"] == "Case2" and item["slice_index"] == 1
    assert item["image"].shape == (1, 24, 24) and item["image"].dtype == torch.float32
    assert item["mask"].shape == (24, 24) and item["mask"].dtype == torch.long
    np.testing.assert_array_equal(item["mask"].numpy(), vols[1].mask[1])
    item["image"][:] = -1  # items never alias the cached volume
    assert vols[1].image.min() >= 0
    everything = SliceDataset(vols, labelled_only=False)
    assert len(everything) == 10 and "mask" not in everything[9] and "mask" in everything[0]
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 1, 24, 24) and batch["mask"].shape == (4, 24, 24)


def test_augmentation_changes_images_only():
    torch.manual_seed(0)
    image = torch.zeros(1, 32, 32)
    image[0, 8:24, 8:24] = 1.0
    mask = (image[0] > 0).long()
    item = {"image": image.clone(), "mask": mask.clone(), "case_id": "c", "slice_index": 3}
    full = build_augmentation(AugmentConfig(p_noise=1, p_blur=1, p_motion=1, p_ghosting=1))
    out = full(item)
    assert out["image"].shape == (1, 32, 32) and out["image"].dtype == torch.float32
    assert not torch.equal(out["image"], image)
    assert out["mask"] is item["mask"] and out["case_id"] == "c" and out["slice_index"] == 3
    assert torch.equal(item["image"], image)  # input untouched
    for off in (AugmentConfig(enabled=False),
                AugmentConfig(p_noise=0, p_blur=0, p_motion=0, p_ghosting=0), None):
        assert torch.equal(build_augmentation(off)(item)["image"], image)
    with pytest.raises(ConfigError, match="p_blur"):
        AugmentConfig(p_blur=1.5)


def test_in_plane_motion_does_not_shift_the_anatomy():
    """TorchIO's RandomMotion on a 2D slice shifts the whole image; ours leaves artefacts only."""
    torch.manual_seed(1)
    image = torch.zeros(1, 64, 64)
    image[0, 20:40, 24:44] = 1.0
    rows, cols = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")

    def centre(t):
        w = t[0].abs()
        return float((w * rows).sum() / w.sum()), float((w * cols).sum() / w.sum())

    motion = InPlaneMotion(p=1.0)
    for _ in range(5):
        out = motion(image)
        assert out.shape == image.shape and not torch.equal(out, image)
        cy, cx = centre(out)
        assert abs(cy - 29.5) < 2.5 and abs(cx - 33.5) < 2.5


# ---------------------------------------------------------------- build_datasets

def test_build_datasets_end_to_end(tmp_path):
    root = _small_root(tmp_path / "data", n=6)
    kw = dict(image_size=16, cache_dir=tmp_path / "cache", splits_path=tmp_path / "splits.json",
              test_split_path=tmp_path / "test.json", seed=3)
    b = build_datasets(root, fold=0, augment=AugmentConfig(), crop_width=0.5, **kw)
    assert b.layout is Layout.MRSPINESEG and b.skipped == []
    # 6 patients: round(0.2 * 6) = 1 held out for test, then 8:2 of the other 5 -> 4 / 1.
    assert (len(b.train_ids), len(b.val_ids), len(b.test_ids)) == (4, 1, 1)
    assert not set(b.train_ids) & set(b.val_ids) and not set(b.test_ids) & set(b.train_ids + b.val_ids)
    assert len(b.train) == 12 and len(b.val) == 3 and len(b.test) == 3
    assert [v.case_id for v in b.val_volumes] == b.val_ids
    assert [v.case_id for v in b.test_volumes] == b.test_ids
    assert b.train.transform is not None and b.val.transform is None and b.test.transform is None
    # Only training slices are cropped (a band of half the width); evaluation sees everything.
    assert b.train[0]["image"].shape == (1, 16, 8) and b.train[0]["mask"].shape == (16, 8)
    assert b.val[0]["image"].shape == (1, 16, 16) and b.test[0]["image"].shape == (1, 16, 16)
    assert b.val.crop is None and b.test.crop is None
    assert json.loads((tmp_path / "splits.json").read_text())[0]["val"] == b.val_ids
    assert json.loads((tmp_path / "test.json").read_text())["test"] == b.test_ids
    again = build_datasets(root, fold=0, **{**kw, "seed": 99})  # frozen files win over the seed
    assert again.val_ids == b.val_ids and again.test_ids == b.test_ids
    other = build_datasets(root, fold=0, **{**kw, "seed": 99,
                                            "splits_path": tmp_path / "other.json"})
    assert other.test_ids == b.test_ids  # a new train/val split never moves the test set
    with pytest.raises(ConfigError, match="fold must be between 0 and 0"):
        build_datasets(root, fold=1, **kw)
    few = build_datasets(root, fold=2, k_folds=3, max_cases=4,
                         **{**kw, "splits_path": tmp_path / "folds.json",
                            "test_split_path": tmp_path / "test4.json"})
    assert len(few.train_ids) + len(few.val_ids) == 3 and len(few.test_ids) == 1


def test_a_separate_test_folder_is_the_whole_test_set(tmp_path):
    root = _small_root(tmp_path / "data", n=3)
    test_root = _small_root(tmp_path / "test", n=2)
    b = build_datasets(root, image_size=16, cache_dir=tmp_path / "cache",
                       splits_path=tmp_path / "s.json", seed=0, fold=0, test_dir=test_root)
    assert len(b.train_ids) + len(b.val_ids) == 3 and b.test_ids == ["Case1", "Case2"]
    assert not (tmp_path / "test.json").exists()
    with pytest.raises(ConfigError, match="give test_dir or test_split_path"):
        build_datasets(root, image_size=16, cache_dir=tmp_path / "cache",
                       splits_path=tmp_path / "s.json", seed=0, fold=0)


def test_frozen_test_split_is_checked(tmp_path):
    from spineseg_core.data.splits import TEST_SPLIT_SEED, get_or_create_test_split

    ids = [f"P{i}" for i in range(10)]
    test = get_or_create_test_split(tmp_path / "t.json", ids, 0.2)
    assert len(test) == 2 and set(test) <= set(ids)
    assert json.loads((tmp_path / "t.json").read_text())["seed"] == TEST_SPLIT_SEED
    assert get_or_create_test_split(tmp_path / "t.json", ids + ["P99"], 0.5) == test
    with pytest.raises(DataError, match="no longer exist"):
        get_or_create_test_split(tmp_path / "t.json", [i for i in ids if i not in test])
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(DataError, match='expected {"test"'):
        get_or_create_test_split(tmp_path / "bad.json", ids)


def test_build_datasets_bad_case_raises_or_is_skipped(tmp_path):
    root = _small_root(tmp_path / "data", n=5)
    bad = root / "train" / "Mask" / "mask_case2.nii.gz"
    bad.write_bytes(b"\x1f\x8b not gzip")
    kw = dict(image_size=16, cache_dir=tmp_path / "cache", seed=0, fold=0)
    kw["test_split_path"] = tmp_path / "test.json"
    with pytest.raises(DataError) as err:
        build_datasets(root, splits_path=tmp_path / "s1.json", **kw)
    assert err.value.path == bad
    (root / "train" / "MR" / "Case4.nii.gz").unlink()
    b = build_datasets(root, splits_path=tmp_path / "s2.json", skip_bad=True, **kw)
    assert sorted(b.train_ids + b.val_ids + b.test_ids) == ["Case1", "Case3", "Case5"]
    reasons = dict(b.skipped)
    assert "mask_case2.nii.gz: unreadable NIfTI" in reasons["Case2"]
    assert "mask without its image" in reasons[str(root / "train" / "Mask" / "mask_case4.nii.gz")]


def test_crop_box_from_mask_is_square_around_the_foreground(tmp_path):
    from spineseg_core.data.preprocess import crop_box_from_mask, crop_volume

    mask = np.zeros((2, 100, 80), np.uint8)
    mask[1, 30:50, 20:30] = 3                       # 20 rows x 10 cols, centre (40, 25)
    rows, cols = crop_box_from_mask(mask, margin=0.25)
    assert (rows.stop - rows.start, cols.stop - cols.start) == (30, 30)
    assert (rows.start, cols.start) == (25, 10)
    assert crop_box_from_mask(np.zeros((1, 8, 6), np.uint8)) == (slice(0, 8), slice(0, 6))
    edge = np.zeros((1, 10, 10), np.uint8)
    edge[0, 0:2, 8:10] = 1
    assert crop_box_from_mask(edge, margin=1.0) == (slice(0, 6), slice(4, 10))  # clipped inside
    ref = CaseRef("a", *write_mrspineseg_case(tmp_path, 1, 2, 16), "train")
    vol = load_case(ref)
    box = (slice(3, 11), slice(5, 13))
    out = crop_volume(vol, box)
    assert out.image.shape == (2, 8, 8)
    np.testing.assert_array_equal(out.mask, vol.mask[:, 3:11, 5:13])
    np.testing.assert_allclose(out.affine @ np.array([1, 0, 0, 1.0]), vol.affine @ np.array([1, 3, 5, 1.0]))


def test_spine_band_box_and_random_band_range():
    from spineseg_core.data import RandomSpineBand, spine_band_box, spine_centre_column

    mask = np.zeros((2, 10, 20), np.uint8)
    mask[:, 2:8, 11:15] = 3  # foreground columns 11..14: centre 13
    assert spine_centre_column(mask) == 13.0
    assert spine_band_box(mask, 0.5) == (slice(0, 10), slice(8, 18))
    mask[0, 0, 19] = 1  # extent 11..19 -> centre 15.5, band of 10 clipped to the right edge
    assert spine_band_box(mask, 0.5) == (slice(0, 10), slice(10, 20))
    assert spine_band_box(np.zeros_like(mask), 0.5) == (slice(0, 10), slice(5, 15))
    with pytest.raises(ValueError, match="width_fraction"):
        spine_band_box(mask, 0.0)
    crop = RandomSpineBand(0.5)
    # Band of 50 in 100 columns, spine centre at 50, centre within the band's middle 80 %:
    # start in [50 - 50 + 5, 50 - 5] = [5, 45].
    assert crop.start_range(50.0, 100) == (5, 45)
    assert crop.start_range(5.0, 100) == (0, 0)  # clipped at the left edge
    assert crop.start_range(None, 100) == (0, 50)  # no spine: anywhere
    assert RandomSpineBand(1.0).start_range(50.0, 100) == (0, 0)
    image = torch.arange(100.0).expand(1, 4, 100)
    seen = set()
    torch.manual_seed(0)
    for _ in range(200):
        im, mk = crop(image, image[0].long(), 50.0)
        assert im.shape == (1, 4, 50) and torch.equal(im[0].long(), mk)
        start = int(im[0, 0, 0])
        assert 5 <= start <= 45
        seen.add(start)
    assert len(seen) > 30  # the band moves
