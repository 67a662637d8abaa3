"""Phantom v2's realism features: partial volume, annotation jitter, lateral curve, cortex, vein."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import binary_erosion

from spineseg_core.data.phantom import (
    MARKER,
    PHANTOM_VERSION,
    PhantomParams,
    TissueCode,
    generate_case,
    sample_presence,
    write_phantom,
)
from spineseg_core.data.phantom.geometry import sample_geometry
from spineseg_core.data.phantom.render import jitter_image, render_slices, sub_slice_offsets
from spineseg_core.errors import ConfigError

QUIET = dict(noise=0.0, bias=0.0, annotation_jitter_mm=0.0)


def test_sub_slices_tile_the_slice_thickness() -> None:
    assert sub_slice_offsets(4.4, 1) == pytest.approx([0.0])
    assert sub_slice_offsets(4.4, 3) == pytest.approx([-4.4 / 3, 0.0, 4.4 / 3])
    with pytest.raises(ConfigError, match="sub_slices"):
        PhantomParams(sub_slices=2)


def test_partial_volume_changes_pixels_not_labels() -> None:
    one = generate_case(3, 0, 96, PhantomParams(sub_slices=1, **QUIET))
    three = generate_case(3, 0, 96, PhantomParams(sub_slices=3, **QUIET))
    assert np.array_equal(one.mask, three.mask)
    # Averaging across the thickness mixes tissues: more distinct grey levels at the edges.
    k = one.mask.shape[0] - 2
    assert not np.array_equal(one.image[k], three.image[k])


def test_annotation_jitter_moves_the_image_not_the_labels() -> None:
    still = generate_case(4, 0, 96, PhantomParams(**QUIET))
    moved = generate_case(4, 0, 96, PhantomParams(noise=0.0, bias=0.0, annotation_jitter_mm=1.0))
    assert np.array_equal(still.mask, moved.mask)
    assert not np.array_equal(still.image, moved.image)


def test_jitter_displaces_an_edge_smoothly_by_about_its_sd() -> None:
    geom = sample_geometry(1, 0, PhantomParams())
    size = 128
    px = geom.fov_mm / size
    step = np.zeros((2, size, size), dtype=np.float32)
    step[:, :, size // 2:] = 1.0
    rng = np.random.default_rng(0)
    same = jitter_image(step, geom, PhantomParams(annotation_jitter_mm=0.0), rng)
    assert np.array_equal(same, step)
    out = jitter_image(step, geom, PhantomParams(annotation_jitter_mm=2.0),
                       np.random.default_rng(0))
    edge = ((1.0 - out[0]).sum(axis=1) - size // 2) * px   # edge shift per row (mm)
    assert edge.std() > 0.3 and np.abs(edge).max() < 5 * 2.0 + px
    assert np.abs(np.diff(edge)).max() < 1.5   # smooth: neighbouring rows move together


def test_lateral_curve_is_bounded_and_leaves_presence_alone() -> None:
    geom = sample_geometry(5, 1, PhantomParams())
    s = np.linspace(-100.0, 400.0, 501)
    shift = geom.lateral_shift(s)
    assert geom.lateral_shift(np.array([0.0]))[0] == pytest.approx(0.0)
    assert np.abs(shift).max() <= 2 * PhantomParams().scoliosis_mm + 1e-9
    slope = np.abs(np.diff(shift) / np.diff(s)).max()
    assert slope <= 2 * np.pi * PhantomParams().scoliosis_mm / 220.0 + 1e-9
    flat = sample_geometry(5, 1, PhantomParams(scoliosis_mm=0.0))
    assert np.all(flat.lateral_shift(s) == 0.0)
    for cid in range(1, 30):
        assert sample_presence(cid, 2) == sample_presence(cid, 2, PhantomParams(scoliosis_mm=0.0))


def test_lateral_curve_moves_upper_levels_sideways() -> None:
    def centroid(mask: np.ndarray, label: int) -> float:
        area = (mask == label).sum(axis=(1, 2)).astype(float)
        return float((area * np.arange(len(area))).sum() / area.sum())

    moved = 0
    for cid in range(1, 6):
        geom = sample_geometry(cid, 0, PhantomParams(scoliosis_mm=10.0))
        st = next(x for x in geom.structures if x.label == 6)   # L1
        expect = float(geom.lateral_shift(np.array([(st.s_lo + st.s_hi) / 2]))[0])
        bent = generate_case(cid, 0, 64, PhantomParams(scoliosis_mm=10.0, **QUIET))
        flat = generate_case(cid, 0, 64, PhantomParams(scoliosis_mm=0.0, **QUIET))
        delta = (centroid(bent.mask, 6) - centroid(flat.mask, 6)) * 4.4   # mm, + right
        assert abs(delta - expect) < 2.5, (cid, delta, expect)
        moved += abs(expect) > 3.0
    assert moved >= 1


def _raw(case_id: int, size: int, params: PhantomParams):
    geom = sample_geometry(case_id, 0, params)
    return geom, render_slices(geom, size, params, np.random.default_rng([0, case_id, 1]))


def test_posterior_elements_have_a_dark_cortex() -> None:
    _, r = _raw(2, 256, PhantomParams(sub_slices=1))
    bone = r.tissue == TissueCode.POSTERIOR
    inner = binary_erosion(bone, np.ones((1, 5, 5), bool))
    rim = bone & ~binary_erosion(bone, np.ones((1, 3, 3), bool))
    assert inner.sum() > 50 and rim.sum() > 50
    assert r.image[rim].mean() < 0.6 * r.image[inner].mean()


def test_basivertebral_vein_is_brighter_than_the_marrow_around_it() -> None:
    params = PhantomParams(sub_slices=1, scoliosis_mm=0.0)
    geom, r = _raw(3, 256, params)
    k = int(np.argmin(np.abs(geom.slice_positions())))   # the vein spans |x| < 3 mm
    for label in (3, 4, 5):                                # L4, L3, L2
        body = binary_erosion(r.mask[k] == label, np.ones((3, 3), bool))
        im = r.image[k]
        bright = body & (im > 1.5 * np.median(im[body]))
        rows, cols = np.nonzero(body)
        posterior = np.zeros_like(body)
        for row in np.unique(rows):
            c = cols[rows == row]
            posterior[row, c[c > (c.min() + c.max()) / 2]] = True
        # bright marrow only in the posterior half, where the vein enters the body
        assert (bright & posterior).sum() >= 5 and not (bright & ~posterior).any(), label


def test_marker_records_the_phantom_version(tmp_path: Path) -> None:
    root = write_phantom(tmp_path / "ph", cases=1, seed=0, size=40, test_cases=0)
    assert json.loads((root / MARKER).read_text())["phantom_version"] == PHANTOM_VERSION >= 2


def test_case_carries_tissue_codes() -> None:
    case = generate_case(1, 0, 64)
    assert case.tissue.shape == case.mask.shape and case.tissue.dtype == np.uint8
    assert set(np.unique(case.tissue)) <= {int(t) for t in TissueCode}
    assert (case.tissue == TissueCode.CSF).any()
    assert replace(PhantomParams(), sub_slices=5).sub_slices == 5
