"""Tissue statistics for the phantom-vs-real calibration: hand-made volumes, the real sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spineseg_core.cli import main as cli_main
from spineseg_core.data.phantom import TissueCode, generate_case
from spineseg_core.data.phantom.calibration import (
    COMPARISON_COLUMNS,
    STATISTICS,
    Region,
    calibration_stats,
    comparison_table,
    phantom_regions,
    region_stats,
)
from spineseg_core.errors import DataError


def _blocks() -> tuple[np.ndarray, dict[Region, np.ndarray]]:
    """A volume of four constant blocks: body 100, CSF 360, disc 50, posterior 80.

    A bright corner (1000) fills more than 0.5 % of the voxels, so the 99.5th percentile is
    1000 exactly.
    """
    img = np.zeros((10, 40, 40), dtype=np.float32)
    regions = {r: np.zeros(img.shape, bool) for r in Region}
    for r, (rows, value) in {Region.BODY: (slice(0, 10), 100.0),
                             Region.CSF: (slice(10, 20), 360.0),
                             Region.DISC: (slice(20, 30), 50.0),
                             Region.POSTERIOR: (slice(30, 40), 80.0)}.items():
        img[:, rows, 5:35] = value
        regions[r][:, rows, 5:35] = True
    img[:, :, 36:] = 1000.0   # 10 * 40 * 4 = 1600 voxels of 16000: 10 %
    return img, regions


def test_constant_blocks_give_exact_ratios_and_zero_cv() -> None:
    img, regions = _blocks()
    st = calibration_stats(img, regions)
    assert list(st) == list(STATISTICS)
    assert st["csf_body_ratio"] == pytest.approx(3.6)
    assert st["disc_body_ratio"] == pytest.approx(0.5)
    assert st["posterior_body_ratio"] == pytest.approx(0.8)
    assert st["body_mean"] == pytest.approx(0.1) and st["csf_mean"] == pytest.approx(0.36)
    for k in ("marrow_cv", "canal_cv", "disc_cv", "marrow_hf_cv"):
        assert st[k] == pytest.approx(0.0, abs=1e-7)


def test_erosion_keeps_the_edge_out() -> None:
    # A body of 100 with a one-voxel rim of 0 (its "cortex"): eroded once, the rim is gone.
    img = np.full((9, 9, 9), 1000.0, dtype=np.float32)
    region = np.zeros(img.shape, bool)
    region[1:8, 1:8, 1:8] = True
    img[1:8, 1:8, 1:8] = 0.0
    img[2:7, 2:7, 2:7] = 100.0
    st = region_stats(img, region, scale=1000.0)
    assert st.voxels == 5 ** 3 and st.mean == pytest.approx(0.1) and st.cv == pytest.approx(0.0)
    raw = region_stats(img, region, scale=1000.0, erode=0)
    assert raw.voxels == 7 ** 3 and raw.mean == pytest.approx(0.1 * 125 / 343)


def test_known_coefficient_of_variation_and_noise() -> None:
    # White Gaussian noise of sd 30 on a mean of 100: CV 0.3; row-neighbour differences have
    # sd 30 * sqrt(2), so the robust noise estimate is 0.3 as well.
    rng = np.random.default_rng(0)
    img = (100.0 + 30.0 * rng.standard_normal((8, 60, 60))).astype(np.float32)
    region = np.ones(img.shape, bool)
    st = region_stats(img, region, scale=1.0, erode=0)
    assert st.mean == pytest.approx(100.0, rel=0.01)
    assert st.cv == pytest.approx(0.3, rel=0.03)
    assert st.hf_cv == pytest.approx(0.3, rel=0.05)
    # A smooth ramp along the columns adds variation but no row-neighbour differences.
    ramp = img + np.linspace(-50.0, 50.0, 60, dtype=np.float32)[None, None, :]
    st2 = region_stats(ramp, region, scale=1.0, erode=0)
    assert st2.cv > 0.35 and st2.hf_cv == pytest.approx(st.hf_cv, rel=1e-6)


def test_missing_or_tiny_regions_give_nan_and_bad_images_raise() -> None:
    img, regions = _blocks()
    del regions[Region.POSTERIOR]
    regions[Region.DISC] = np.zeros(img.shape, bool)
    regions[Region.DISC][4, 22, 10] = True
    st = calibration_stats(img, regions)
    assert np.isnan(st["posterior_body_ratio"]) and np.isnan(st["disc_cv"])
    assert st["csf_body_ratio"] == pytest.approx(3.6)
    with pytest.raises(DataError, match="percentile"):
        calibration_stats(np.zeros((4, 8, 8)), regions)


def test_comparison_table_rows_and_summary() -> None:
    real = {k: 1.0 for k in STATISTICS}
    phantom = [{k: v for k in STATISTICS} for v in (1.0, 2.0, 3.0)]
    phantom[2]["canal_cv"] = float("nan")
    table = comparison_table(real, phantom)
    assert tuple(table.columns) == COMPARISON_COLUMNS
    assert list(table.statistic) == list(STATISTICS)
    row = table.set_index("statistic").loc["marrow_cv"]
    assert (row.real, row.phantom_mean, row.phantom_sd, row.phantom_min, row.phantom_max,
            row.phantom_cases) == (1.0, 2.0, 1.0, 1.0, 3.0, 3)
    assert table.set_index("statistic").loc["canal_cv", "phantom_cases"] == 2


def test_phantom_regions_match_its_tissues() -> None:
    case = generate_case(2, seed=0, size=96)
    regions = phantom_regions(case.mask, case.tissue)
    assert regions[Region.BODY].any() and not (regions[Region.BODY] & (case.mask == 1)).any()
    assert regions[Region.CSF].any() and regions[Region.POSTERIOR].any()
    assert not (regions[Region.CSF] & (case.mask > 0)).any()       # CSF is unlabelled
    assert np.array_equal(regions[Region.CSF], case.tissue == TissueCode.CSF)


def test_phantom_is_calibrated_like_the_real_t2() -> None:
    """The default phantom's tissue ratios near the real sample's (CSF/body 3.55, CV 0.32)."""
    stats = [calibration_stats(c.image, phantom_regions(c.mask, c.tissue))
             for c in (generate_case(cid, seed=0, size=128) for cid in range(1, 7))]
    df = pd.DataFrame(stats)
    assert 2.8 < df.csf_body_ratio.median() < 4.5
    assert 0.25 < df.marrow_cv.median() < 0.42
    assert 0.25 < df.canal_cv.median() < 0.5
    assert df.posterior_body_ratio.median() < 1.1


# --- the real sample (downloaded with pip; skipped offline) ------------------------------
def _real_sample_dir() -> Path:
    from spineseg_core.data.cache import cache_root

    return cache_root() / "real_t2_sample"


@pytest.fixture(scope="module")
def real_dir() -> Path:
    from spineseg_core.data.phantom.real_sample import fetch_real_sample

    try:
        return fetch_real_sample(_real_sample_dir())
    except DataError as exc:
        pytest.skip(f"real T2 sample unavailable (offline?): {exc}")


def test_real_sample_header_orientation_and_published_statistics(real_dir: Path) -> None:
    import nibabel as nib

    from spineseg_core.data.phantom.real_sample import REAL_SAMPLE_FILES, load_real_sample

    hdr = nib.load(real_dir / REAL_SAMPLE_FILES["image"]).header
    assert (int(hdr["sform_code"]), int(hdr["qform_code"])) == (2, 0)
    sample = load_real_sample(real_dir)
    assert sample.image.shape == (67, 52, 68) and sample.spacing == pytest.approx((1.5,) * 3)
    st = calibration_stats(sample.image, sample.regions)
    # dataset.md §4: CSF 0.87, body 0.24, CSF/body ~3.6, marrow CV 0.32, canal CV 0.38.
    assert st["csf_mean"] == pytest.approx(0.87, abs=0.01)
    assert st["body_mean"] == pytest.approx(0.245, abs=0.01)
    assert st["csf_body_ratio"] == pytest.approx(3.55, abs=0.05)
    assert st["marrow_cv"] == pytest.approx(0.32, abs=0.01)
    assert st["canal_cv"] == pytest.approx(0.38, abs=0.01)


def test_load_real_sample_names_missing_files(tmp_path: Path) -> None:
    from spineseg_core.data.phantom.real_sample import load_real_sample

    with pytest.raises(DataError, match="real T2 sample"):
        load_real_sample(tmp_path)


def test_calibrate_command_writes_the_table(real_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cmp.csv"
    assert cli_main(["calibrate", "--out", str(out), "--cases", "2", "--size", "64",
                     "--sample-dir", str(real_dir)]) == 0
    table = pd.read_csv(out)
    assert list(table.statistic) == list(STATISTICS)
    assert table.set_index("statistic").loc["marrow_cv", "real"] == pytest.approx(0.32, abs=0.01)
    assert (table.phantom_cases == 2).all() and "wrote" in capsys.readouterr().out
    assert cli_main(["calibrate", "--out", str(out), "--cases", "1"]) == 2
    assert "--cases must be at least 2" in capsys.readouterr().err
