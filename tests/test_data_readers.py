"""Layouts, case listing and the validating readers, on files the tests write."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from spine_files import pir_affine, study_volume, write_mrspineseg_case, write_nifti, write_spider_case
from spineseg_core.data import (
    SPIDER_LUT,
    CaseRef,
    Layout,
    detect_layout,
    list_cases,
    load_case,
    map_spider_labels,
)
from spineseg_core.errors import DataError


def _case(root: Path, num: int = 1, slices: int = 3, size: int = 16) -> CaseRef:
    img, mask = write_mrspineseg_case(root, num, slices, size)
    return CaseRef(f"Case{num}", img, mask, "train")


# ---------------------------------------------------------------- layouts and listing

def test_detect_layouts(tmp_path):
    mr = tmp_path / "mr"
    write_mrspineseg_case(mr, 1, 3, 8)
    assert detect_layout(mr) is Layout.MRSPINESEG
    (mr / "phantom.json").write_text("{}")
    assert detect_layout(mr) is Layout.PHANTOM
    sp = tmp_path / "sp"
    write_spider_case(sp, "1", "t2", np.zeros((4, 4, 3), np.int16))
    assert detect_layout(sp) is Layout.SPIDER


@pytest.mark.parametrize("make, expected", [
    (lambda p: None, "does not exist"),
    (lambda p: p.mkdir(), "empty"),
    (lambda p: (p.mkdir(), (p / "notes.txt").write_text("x")), "not a recognised dataset"),
])
def test_detect_layout_errors_name_the_folder(tmp_path, make, expected):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(DataError, match=expected) as err:
        detect_layout(root)
    assert err.value.path == root


def test_list_cases_pairs_in_natural_order_and_keeps_unlabelled(tmp_path):
    for num in (10, 2, 3):
        write_mrspineseg_case(tmp_path, num, 3, 8)
    write_mrspineseg_case(tmp_path, 50, 3, 8, subset="test1", labelled=False)
    refs = list_cases(tmp_path)
    assert [(r.subset, r.case_id) for r in refs] == [
        ("train", "Case2"), ("train", "Case3"), ("train", "Case10"), ("test1", "Case50")]
    train = refs[0]
    assert train.mask_path.name == "mask_case2.nii.gz" and train.patient_id == "Case2"
    assert refs[3].mask_path is None and not refs[3].labelled


def test_image_without_mask_and_mask_without_image(tmp_path):
    write_mrspineseg_case(tmp_path, 1, 3, 8)
    img, _ = write_mrspineseg_case(tmp_path, 2, 3, 8)
    (tmp_path / "train" / "Mask" / "mask_case2.nii.gz").unlink()
    with pytest.raises(DataError, match="image without its mask") as err:
        list_cases(tmp_path)
    assert err.value.path == img
    img.unlink()
    _, mask = write_mrspineseg_case(tmp_path, 3, 3, 8)
    (tmp_path / "train" / "MR" / "Case3.nii.gz").unlink()
    with pytest.raises(DataError, match="mask without its image") as err:
        list_cases(tmp_path)
    assert err.value.path == mask


# ---------------------------------------------------------------- orientation

def test_real_axis_order_is_reoriented_from_the_affine(tmp_path):
    image, mask = study_volume(3, 12)
    image[:] = 0
    image[2, 1, 9] = 1000  # study: slice 2 (right), row 1 (superior), col 9 (posterior)
    spacing = (4.4, 0.5, 0.6)
    img = write_nifti(tmp_path / "train/MR/Case1.nii.gz", image.transpose(2, 1, 0), pir_affine(spacing))
    msk = write_nifti(tmp_path / "train/Mask/mask_case1.nii.gz", mask.transpose(2, 1, 0),
                      pir_affine(spacing))
    vol = load_case(CaseRef("Case1", img, msk, "train"))
    assert vol.image.shape == (3, 12, 12) and vol.image.dtype == np.float32
    assert np.unravel_index(vol.image.argmax(), vol.image.shape) == (2, 1, 9)
    np.testing.assert_array_equal(vol.mask, mask)
    assert vol.spacing == pytest.approx(spacing)
    assert vol.source_axcodes == ("P", "I", "R")


def test_another_orientation_lands_at_the_same_study_position(tmp_path):
    s, h, w = 3, 10, 12
    arr = np.zeros((s, w, h), np.int16)       # file axes: L, A, S
    arr[s - 1 - 2, w - 1 - 9, h - 1 - 1] = 1000  # the study voxel (2, 1, 9)
    aff = np.diag([-4.4, 0.6, 0.5, 1.0])
    aff[:3, 3] = (5.0, -30.0, -70.0)
    img = write_nifti(tmp_path / "x.nii.gz", arr, aff)
    vol = load_case(CaseRef("x", img, None, "test1"))
    assert vol.source_axcodes == ("L", "A", "S")
    assert vol.image.shape == (s, h, w)
    assert np.unravel_index(vol.image.argmax(), vol.image.shape) == (2, 1, 9)
    assert vol.spacing == pytest.approx((4.4, 0.5, 0.6))
    # the study affine maps the marker voxel to the same world point as the file affine
    world_file = aff @ np.array([s - 1 - 2, w - 1 - 9, h - 1 - 1, 1.0])
    np.testing.assert_allclose(vol.affine @ np.array([2, 1, 9, 1.0]), world_file)


def test_singleton_4d_is_squeezed(tmp_path):
    image, _ = study_volume(3, 8)
    img = write_nifti(tmp_path / "a.nii.gz", image.transpose(2, 1, 0)[..., None], pir_affine((4, 1, 1)))
    assert load_case(CaseRef("a", img, None, "test1")).image.shape == (3, 8, 8)


# ---------------------------------------------------------------- bad inputs

def test_truncated_file_names_the_file(tmp_path):
    ref = _case(tmp_path, size=32)
    data = ref.image_path.read_bytes()
    ref.image_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="unreadable NIfTI") as err:
        load_case(ref)
    assert err.value.path == ref.image_path


def test_garbage_file_names_the_file(tmp_path):
    ref = _case(tmp_path)
    with gzip.open(ref.mask_path, "wb") as fh:
        fh.write(b"not a nifti header at all" * 20)
    with pytest.raises(DataError, match="unreadable") as err:
        load_case(ref)
    assert err.value.path == ref.mask_path


def test_2d_file_is_rejected(tmp_path):
    img = write_nifti(tmp_path / "flat.nii.gz", np.zeros((8, 8), np.int16), np.eye(4))
    with pytest.raises(DataError, match="expected a 3D volume, got a 2D array") as err:
        load_case(CaseRef("flat", img, None, "test1"))
    assert err.value.path == img


def test_mask_shape_mismatch(tmp_path):
    ref = _case(tmp_path)
    write_nifti(ref.mask_path, np.zeros((16, 16, 4), np.uint8), pir_affine((4.4, 303.4 / 16, 303.4 / 16)))
    with pytest.raises(DataError, match=r"mask shape \(16, 16, 4\) differs from its image") as err:
        load_case(ref)
    assert err.value.path == ref.mask_path


def test_mask_affine_mismatch(tmp_path):
    ref = _case(tmp_path)
    m = nib.load(str(ref.mask_path))
    aff = m.affine.copy()
    aff[0, 3] += 0.01
    write_nifti(ref.mask_path, np.asarray(m.dataobj), aff)
    with pytest.raises(DataError, match="mask affine differs") as err:
        load_case(ref)
    assert err.value.path == ref.mask_path
    aff[0, 3] -= 0.0095  # within tolerance (5e-4 mm)
    write_nifti(ref.mask_path, np.asarray(m.dataobj), aff)
    assert load_case(ref).mask is not None


def test_mask_values_outside_range_are_named(tmp_path):
    ref = _case(tmp_path)
    m = nib.load(str(ref.mask_path))
    data = np.asarray(m.dataobj).copy()
    data[0, 0, 0], data[1, 0, 0] = 20, 255
    write_nifti(ref.mask_path, data, m.affine)
    with pytest.raises(DataError, match=r"outside 0\.\.19: 20, 255") as err:
        load_case(ref)
    assert err.value.path == ref.mask_path


def test_non_integer_mask(tmp_path):
    ref = _case(tmp_path)
    m = nib.load(str(ref.mask_path))
    data = np.asarray(m.dataobj).astype(np.float32)
    write_nifti(ref.mask_path, data, m.affine)
    assert load_case(ref).mask.dtype == np.uint8  # integral floats are fine
    data[0, 0, 0] = 0.5
    write_nifti(ref.mask_path, data, m.affine)
    with pytest.raises(DataError, match="non-integer") as err:
        load_case(ref)
    assert err.value.path == ref.mask_path


# ---------------------------------------------------------------- SPIDER

def test_spider_lut_value_by_value():
    expected = {0: 0, 100: 0, 1: 2, 9: 10, 10: 0, 25: 0, 101: 2, 105: 6, 109: 10, 110: 0,
                201: 11, 202: 12, 209: 19, 210: 0, 225: 0}
    for src, dst in expected.items():
        assert SPIDER_LUT[src] == dst, src
    for k in range(1, 10):
        assert SPIDER_LUT[k] == k + 1 and SPIDER_LUT[100 + k] == k + 1 and SPIDER_LUT[200 + k] == 10 + k
    mapped = map_spider_labels(np.array([[0, 1, 201], [100, 109, 225]]))
    np.testing.assert_array_equal(mapped, [[0, 2, 11], [0, 10, 0]])
    with pytest.raises(DataError, match="outside 0..255: 300"):
        map_spider_labels(np.array([300]), "m.mha")


def test_spider_listing_sequences_and_patients(tmp_path):
    zeros = np.zeros((4, 4, 3), np.int16)
    for pid in ("7", "12"):
        for seq in ("t1", "t2", "t2_SPACE"):
            write_spider_case(tmp_path, pid, seq, zeros)
    refs = list_cases(tmp_path)
    assert [r.case_id for r in refs] == ["7_t2", "12_t2"]
    assert [r.patient_id for r in refs] == ["7", "12"]
    both = list_cases(tmp_path, sequences=("t1", "t2"))
    assert [r.case_id for r in both] == ["7_t1", "7_t2", "12_t1", "12_t2"]
    (tmp_path / "masks" / "12_t2.mha").unlink()
    with pytest.raises(DataError, match="image without its mask") as err:
        list_cases(tmp_path)
    assert err.value.path == tmp_path / "images" / "12_t2.mha"


def test_spider_mha_geometry_and_labels(tmp_path):
    x, y, z = 5, 6, 4                      # ITK index order; identity direction = L, P, S
    m = np.zeros((x, y, z), np.int16)
    m[1, 2, 3] = 201                       # disc L5/S
    m[0, 0, 0] = 3                         # vertebra L3
    m[4, 5, 0] = 100                       # spinal canal -> background
    m[2, 1, 1] = 104                       # partial L2
    img, mask = write_spider_case(tmp_path, "3", "t2", m, spacing=(1.5, 0.8, 3.3))
    vol = load_case(CaseRef("3_t2", img, mask, "train", "3"))
    assert vol.source_axcodes == ("L", "P", "S")
    assert vol.mask.shape == (x, z, y)     # study (R, I, P)
    assert vol.spacing == pytest.approx((1.5, 3.3, 0.8))
    to_study = lambda i, j, k: (x - 1 - i, z - 1 - k, j)  # noqa: E731
    assert vol.mask[to_study(1, 2, 3)] == 11
    assert vol.mask[to_study(0, 0, 0)] == 4
    assert vol.mask[to_study(4, 5, 0)] == 0
    assert vol.mask[to_study(2, 1, 1)] == 5
    assert int((vol.mask > 0).sum()) == 3
    assert vol.image[to_study(1, 2, 3)] == 201 * 3 + 7
    # the RAS affine: ITK's LPS origin with x and y negated
    np.testing.assert_allclose(vol.affine @ np.array([x - 1, z - 1, 0, 1.0]), [-10.0, 5.0, 2.0, 1.0])


def test_spider_rotated_direction(tmp_path):
    m = np.zeros((4, 5, 3), np.int16)
    m[0, 1, 2] = 1
    # ITK axes: x -> S, y -> A (i.e. -P), z -> L  (direction columns in LPS)
    direction = (0.0, 0.0, 1.0,
                 0.0, -1.0, 0.0,
                 1.0, 0.0, 0.0)
    img, mask = write_spider_case(tmp_path, "4", "t2", m, spacing=(1.0, 1.0, 1.0), direction=direction)
    vol = load_case(CaseRef("4_t2", img, mask, "train", "4"))
    assert vol.source_axcodes == ("S", "A", "L")
    # study (R, I, P): R = reversed z, I = reversed x, P = reversed y
    assert vol.mask.shape == (3, 4, 5)
    assert np.argwhere(vol.mask).tolist() == [[3 - 1 - 2, 4 - 1 - 0, 5 - 1 - 1]]
