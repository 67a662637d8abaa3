"""The procedural spine phantom: determinism, anatomy invariants, presence rates, files, CLI."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from spineseg_core.cli import main as cli_main
from spineseg_core.data.orientation import MRSPINESEG_AXCODES, axcodes, spacing_of, to_study
from spineseg_core.data.phantom import (
    MARKER,
    PhantomParams,
    ensure_phantom,
    generate_case,
    sample_presence,
    write_phantom,
)
from spineseg_core.errors import ConfigError
from spineseg_core.labels import VERTEBRA_VALUES, disc_above, disc_below

SIZE = 96
TARGETS = {8: 0.94, 9: 0.26, 10: 0.05, 18: 0.37, 19: 0.08}


@pytest.fixture(scope="module")
def cases() -> list:
    return [generate_case(cid, seed=7, size=SIZE) for cid in range(1, 9)]


def test_same_seed_and_id_give_equal_arrays() -> None:
    a = generate_case(3, seed=11, size=64)
    b = generate_case(3, seed=11, size=64)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)


def test_different_seed_or_id_differ() -> None:
    a = generate_case(3, seed=11, size=64)
    assert not np.array_equal(a.image, generate_case(3, seed=12, size=64).image)
    assert not np.array_equal(a.image, generate_case(4, seed=11, size=64).image)


def test_case_independent_of_generation_order() -> None:
    later = [generate_case(cid, seed=5, size=48) for cid in (9, 2, 5)][-1]
    alone = generate_case(5, seed=5, size=48)
    assert np.array_equal(later.image, alone.image) and np.array_equal(later.mask, alone.mask)


def test_shapes_dtypes_and_spacing(cases: list) -> None:
    for c in cases:
        s, h, w = c.image.shape
        assert (h, w) == (SIZE, SIZE) and s in (12, 15)
        assert c.mask.shape == c.image.shape
        assert c.image.dtype == np.int16 and c.mask.dtype == np.uint8
        assert c.spacing == pytest.approx((4.4, 303.4 / SIZE, 303.4 / SIZE))
        assert c.image.min() >= 0 and 2100 <= c.image.max() <= 3930


def test_labels_in_range_and_lowest_always_present(cases: list) -> None:
    for c in cases:
        vals = set(np.unique(c.mask).tolist())
        assert vals <= set(range(20))
        assert {1, 2, 11} <= vals, f"case {c.case_id} lacks S/L5/L5-S: {sorted(vals)}"


def test_every_vertebra_touches_its_two_discs(cases: list) -> None:
    cross = np.zeros((3, 3), bool)
    cross[1, :] = cross[:, 1] = True
    checked = 0
    for c in cases:
        present = set(np.unique(c.mask).tolist())
        mid = c.mask[c.mask.shape[0] // 2]
        for v in VERTEBRA_VALUES:
            if v not in np.unique(mid):
                continue
            grown = binary_dilation(mid == v, cross)
            below, above = disc_below(v), disc_above(v)
            assert below in present, f"case {c.case_id}: vertebra {v} without disc {below}"
            for d in (below, above):
                if d in np.unique(mid):
                    assert (grown & (mid == d)).any(), f"case {c.case_id}: {v} misses disc {d}"
                    checked += 1
        sac = binary_dilation(mid == 1, cross)
        assert (sac & (mid == 11)).any(), f"case {c.case_id}: sacrum misses L5/S"
    assert checked > 8 * 12


def test_lateral_slices_show_less(cases: list) -> None:
    for c in cases:
        area = (c.mask > 0).sum(axis=(1, 2))
        assert area[0] < area[len(area) // 2] and area[-1] < area[len(area) // 2]


def test_intensity_statistics_like_mrspineseg(cases: list) -> None:
    means = [float(c.image.mean()) for c in cases]
    assert 120 < np.median(means) < 400
    for c in cases:
        mid = c.image[c.image.shape[0] // 2]
        assert mid[c.mask[c.image.shape[0] // 2] == 0].min() < 80   # air around the body


def test_presence_sampler_rates_over_200_cases() -> None:
    counts = Counter()
    for cid in range(1, 201):
        counts.update(sample_presence(cid, seed=0))
    for lab in (1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 14, 15, 16):
        assert counts[lab] == 200
    for lab, rate in TARGETS.items():
        # binomial sd at n=200 is <= 3.5 points; allow ~3 sd
        assert abs(counts[lab] / 200 - rate) < 0.1, (lab, counts[lab] / 200, rate)


def test_sampler_agrees_with_rasterised_masks() -> None:
    agree = 0
    for cid in range(1, 13):
        c = generate_case(cid, seed=3, size=64)
        raster = set(np.unique(c.mask).tolist()) - {0}
        sampled = set(sample_presence(cid, seed=3))
        agree += raster == sampled
        assert len(raster ^ sampled) <= 1, (cid, raster ^ sampled)
    assert agree >= 10


@pytest.mark.slow
def test_rasterised_presence_rates_over_200_cases() -> None:
    counts = Counter()
    for cid in range(1, 201):
        counts.update(set(np.unique(generate_case(cid, seed=0, size=80).mask).tolist()))
    for lab, rate in TARGETS.items():
        assert abs(counts[lab] / 200 - rate) < 0.1, (lab, counts[lab] / 200, rate)


def test_params_validation() -> None:
    with pytest.raises(ConfigError, match="noise"):
        PhantomParams(noise=-1)
    with pytest.raises(ConfigError, match="must not increase"):
        PhantomParams(presence=((7, 1.0), (17, 0.5), (8, 0.9), (18, 0.3), (9, 0.2),
                                (19, 0.1), (10, 0.05)))
    assert PhantomParams.from_dict(PhantomParams(noise=0.1).to_dict()) == PhantomParams(noise=0.1)
    with pytest.raises(ConfigError, match="size"):
        generate_case(1, 0, size=16)


def test_harder_params_change_the_image() -> None:
    easy = generate_case(2, 0, 64, PhantomParams(noise=0.0, bias=0.0))
    hard = generate_case(2, 0, 64, PhantomParams(noise=0.2, bias=0.8))
    assert np.array_equal(easy.mask, hard.mask)
    assert not np.array_equal(easy.image, hard.image)


def test_write_phantom_layout_and_round_trip(tmp_path: Path) -> None:
    root = write_phantom(tmp_path / "ph", cases=3, seed=4, size=64, test_cases=2)
    assert sorted(p.name for p in (root / "train/MR").iterdir()) == \
        ["Case1.nii.gz", "Case2.nii.gz", "Case3.nii.gz"]
    assert sorted(p.name for p in (root / "train/Mask").iterdir()) == \
        ["mask_case1.nii.gz", "mask_case2.nii.gz", "mask_case3.nii.gz"]
    assert sorted(p.name for p in (root / "test1/MR").iterdir()) == ["Case4.nii.gz", "Case5.nii.gz"]
    assert not (root / "test1/Mask").exists()
    marker = json.loads((root / MARKER).read_text())
    assert marker["generator"] == "spineseg-phantom" and marker["cases"] == 3
    assert marker["seed"] == 4 and marker["size"] == 64 and marker["params"]["noise"] == 0.035
    for cid in (1, 2, 3):
        case = generate_case(cid, seed=4, size=64)
        img = nib.load(root / f"train/MR/Case{cid}.nii.gz")
        msk = nib.load(root / f"train/Mask/mask_case{cid}.nii.gz")
        assert img.get_data_dtype() == np.int16 and msk.get_data_dtype() == np.uint8
        assert axcodes(img.affine) == MRSPINESEG_AXCODES
        assert img.shape == (64, 64, case.image.shape[0])            # (AP, SI, slices)
        assert spacing_of(img.affine) == pytest.approx((303.4 / 64, 303.4 / 64, 4.4))
        back, _ = to_study(np.asanyarray(img.dataobj), img.affine)
        mback, _ = to_study(np.asanyarray(msk.dataobj), msk.affine)
        assert np.array_equal(back, case.image) and np.array_equal(mback, case.mask)


def test_write_is_byte_identical_and_resumable(tmp_path: Path) -> None:
    a = write_phantom(tmp_path / "a", cases=2, seed=1, size=48, test_cases=1)
    b = write_phantom(tmp_path / "b", cases=2, seed=1, size=48, test_cases=1)
    for rel in ("train/MR/Case1.nii.gz", "train/Mask/mask_case2.nii.gz", "test1/MR/Case3.nii.gz"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    # resumable: a deleted file is regenerated, the others are kept untouched
    (a / "train/MR/Case2.nii.gz").unlink()
    kept = (a / "train/MR/Case1.nii.gz").stat().st_mtime_ns
    seen: list[tuple[str, bool]] = []
    write_phantom(a, cases=2, seed=1, size=48, test_cases=1,
                  progress=lambda split, case, path: seen.append((path.name, case is None)))
    assert ("Case1.nii.gz", True) in seen and ("Case2.nii.gz", False) in seen
    assert (a / "train/MR/Case1.nii.gz").stat().st_mtime_ns == kept
    assert (a / "train/MR/Case2.nii.gz").read_bytes() == (b / "train/MR/Case2.nii.gz").read_bytes()


def test_ensure_phantom_regenerates_only_on_mismatch(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    ensure_phantom(root, cases=2, seed=0, size=40, test_cases=0)
    stamp = (root / MARKER).stat().st_mtime_ns
    ensure_phantom(root, cases=2, seed=0, size=40, test_cases=0)
    assert (root / MARKER).stat().st_mtime_ns == stamp
    ensure_phantom(root, cases=1, seed=9, size=40, test_cases=0)
    assert json.loads((root / MARKER).read_text())["seed"] == 9
    assert sorted(p.name for p in (root / "train/MR").iterdir()) == ["Case1.nii.gz"]


def test_write_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cases"):
        write_phantom(tmp_path, cases=0, seed=0)
    with pytest.raises(ConfigError, match="size"):
        write_phantom(tmp_path, cases=1, seed=0, size=31)


def test_cli_writes_files_and_rejects_bad_args(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    assert cli_main(["phantom", "--out", str(out), "--cases", "2", "--seed", "3",
                     "--size", "40", "--test-cases", "1"]) == 0
    assert (out / "train/Mask/mask_case2.nii.gz").is_file()
    assert (out / "test1/MR/Case3.nii.gz").is_file() and (out / MARKER).is_file()
    assert "3 case(s) written" in capsys.readouterr().out  # 2 train + 1 test
    assert cli_main(["phantom", "--out", str(out), "--cases", "0"]) == 2
    assert "--cases must be at least 1" in capsys.readouterr().err
    assert cli_main(["phantom", "--out", str(out), "--cases", "2", "--size", "16"]) == 2
    assert "--size must be at least 32" in capsys.readouterr().err
