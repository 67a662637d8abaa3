"""Hard cases of the phantom: default bit-identity, transitional vertebrae labelled by counting
up from the sacrum, fields of view that miss the sacrum, the manifest, the CLI and bad rates."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from spineseg_core.cli import main as cli_main
from spineseg_core.data.phantom import (
    MARKER,
    PhantomCase,
    PhantomParams,
    generate_case,
    sample_presence,
    write_phantom,
)
from spineseg_core.data.phantom.geometry import (
    FOV_CUT_THROUGH_MM,
    MIN_SLIVER_MM,
    FovCut,
    HardCase,
    StructureKind,
    present_labels,
    sample_geometry,
)
from spineseg_core.data.phantom.hard import MANIFEST, HardPreset, describe, hard_params, read_manifest
from spineseg_core.errors import ConfigError, DataError
from spineseg_core.labels import LABEL_NAMES

SIZE = 96

# sha256 of image and mask bytes of default cases (seed 0), computed with main's code at commit
# e28e2c1 BEFORE the hard cases were added (same venv). The hard cases draw from a stream of
# their own, so these must never change; if they do, every phantom of the study has changed.
# Cases 38 and 42 carry the older, partial transitional forms (lumbarised, sacralised); size 200
# takes the coarse-grid path of the projection.
MAIN_CHECKSUMS: dict[tuple[int, int], tuple[str, str]] = {
    (1, 64): ("d0a2d2c1f0429920214dfe3997c3425bfbe7af2c79c2ae10eb20bd2c8b6ff673",
              "16df73e2f69500c38dd50bec96188658c20090e89fede1b1de8a28d4c5dba33b"),
    (2, 200): ("9f1571e68ef27d71bba304be1bb91744d98c6be5bfdb4d8dae3510b37f7ba83c",
               "6d45673d74f2d2a8bfa1919b5103ebbab4b8252128b26c41949be6b6d6110954"),
    (38, 64): ("ffaa87f880a9a1c5bc08abc0ed76e09ce2389cb510430643e869ad6e0c70db63",
               "7d41bec4a027b9e8a8f49dda13e6fe9d1d91040f6cc544d3fff3fc90cc9b524f"),
    (42, 64): ("18eaf0a47674f5dc98b892f46eda1e8cd58a256f662593ef4e706aa58eae4b16",
               "102375ed3a5da7edafce0e096cb4fad7dc39e757e8fb60250c0d0860232737ab"),
}
# Sampled presence of default cases 1, 4 and 9 (seed 0) on main before the change.
MAIN_PRESENCE = {
    1: {1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 14, 15, 16, 17},
    4: {1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18},
    9: set(range(1, 20)),
}
# Keys of PhantomParams().to_dict() on main: the phantom.json marker of a default phantom.
MAIN_PARAM_KEYS = {"noise", "bias", "contrast_overlap", "degeneration_rate", "shape_jitter",
                   "transitional_rate", "p_15_slices", "slice_mm", "fov_mm", "sub_slices",
                   "scoliosis_mm", "annotation_jitter_mm", "presence"}


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(a.tobytes()).hexdigest()


@pytest.mark.parametrize(("case_id", "size"), sorted(MAIN_CHECKSUMS))
def test_default_phantom_is_bit_identical_to_main(case_id: int, size: int) -> None:
    case = generate_case(case_id, 0, size)
    assert (_sha(case.image), _sha(case.mask)) == MAIN_CHECKSUMS[(case_id, size)]
    assert case.geometry.hard_case is HardCase.NONE


def test_default_presence_and_marker_unchanged() -> None:
    for cid, labels in MAIN_PRESENCE.items():
        assert set(sample_presence(cid, 0)) == labels
    assert set(PhantomParams().to_dict()) == MAIN_PARAM_KEYS
    assert "fov_cut_rate" in PhantomParams(fov_cut_rate=0.5).to_dict()


def _pixel_label(case: PhantomCase, anatomy: str | None) -> int:
    """Mask value at the centre of a level (``None``: the sacrum's top segment) in the slice
    nearest to the column's midline."""
    geom = case.geometry
    if anatomy is None:   # a sacralised L5: centre of the fused top segment of the sacrum
        s = geom.rudimentary_disc_s / 2.0
    else:
        st = geom.structures[geom.index_of(anatomy)]
        s = (st.s_lo + st.s_hi) / 2.0
    z, a = geom.point(np.array([s]), np.array([0.0]))
    k = int(np.argmin(np.abs(geom.slice_positions() - geom.lateral_shift(np.array([s]))[0])))
    px = geom.fov_mm / case.mask.shape[1]
    return int(case.mask[k, int(z[0] / px), int(a[0] / px)])


def test_sacralised_l5_is_sacrum_and_levels_above_count_from_it() -> None:
    params = PhantomParams(sacralised_l5_rate=1.0)
    case = generate_case(3, 0, SIZE, params)
    geom = case.geometry
    assert geom.hard_case is HardCase.SACRALISED_L5 and geom.sacral_segments == 6
    names = {st.anatomy: st.label for st in geom.structures}
    assert "L5" not in names and "L5/S1" not in names        # fused into the sacrum
    assert {k: names[k] for k in ("L4/L5", "L4", "L3", "L1", "T12", "T11")} == {
        "L4/L5": 11, "L4": 2, "L3": 3, "L1": 5, "T12": 6, "T11": 7}
    assert _pixel_label(case, None) == 1                       # the fused L5 is drawn as S
    assert _pixel_label(case, "L4") == 2 and _pixel_label(case, "L4/L5") == 11
    present = set(np.unique(case.mask).tolist()) - {0}
    assert {1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 14, 15, 16} <= present
    # Four lumbar-type bodies (>= 24 mm) above the sacrum, then the thoracic ones.
    bodies = [st for st in geom.structures if st.kind is StructureKind.VERTEBRA]
    assert [st.anatomy for st in bodies[:5]] == ["L4", "L3", "L2", "L1", "T12"]
    assert geom.sacrum_length > 120.0                          # S1-S5 plus the fused L5


def test_lumbarised_s1_is_labelled_l5_with_six_lumbar_type_levels() -> None:
    case = generate_case(3, 0, SIZE, PhantomParams(lumbarised_s1_rate=1.0))
    geom = case.geometry
    assert geom.hard_case is HardCase.LUMBARISED_S1 and geom.sacral_segments == 4
    names = {st.anatomy: st for st in geom.structures}
    assert {k: names[k].label for k in ("S1/S2", "S1", "L5/S1", "L5", "L1", "T12")} == {
        "S1/S2": 11, "S1": 2, "L5/S1": 12, "L5": 3, "L1": 7, "T12": 8}
    assert LABEL_NAMES[names["S1"].label] == "L5" and LABEL_NAMES[names["L1"].label] == "T12"
    assert names["S1/S2"].degenerated and names["S1/S2"].s_hi - names["S1/S2"].s_lo < 8.0
    assert _pixel_label(case, "S1") == 2 and _pixel_label(case, "L5") == 3
    assert _pixel_label(case, "S1/S2") == 11
    bodies = [st for st in geom.structures if st.kind is StructureKind.VERTEBRA]
    assert [st.anatomy for st in bodies[:6]] == ["S1", "L5", "L4", "L3", "L2", "L1"]
    assert all(st.s_hi - st.s_lo > 20.0 for st in bodies[:6])


def _fov_cases(cut: FovCut, n: int) -> list[PhantomCase]:
    params = PhantomParams(fov_cut_rate=1.0)
    ids = [cid for cid in range(1, 40) if sample_geometry(cid, 0, params).fov_cut is cut][:n]
    assert len(ids) == n
    return [generate_case(cid, 0, SIZE, params) for cid in ids]


def test_fov_cut_above_the_sacrum_has_no_sacrum_and_keeps_level_names() -> None:
    for case in _fov_cases(FovCut.ABOVE_SACRUM, 3):
        geom = case.geometry
        labels = set(np.unique(case.mask).tolist()) - {0}
        assert 1 not in labels
        assert geom.sacrum_top_z() > geom.fov_mm             # lowest row above the sacrum
        assert labels == set(present_labels(geom))
        assert {3, 4, 5, 6, 7} <= labels                      # L5 or L4 lowest in view
        assert all(LABEL_NAMES[st.label] == st.anatomy.replace("/S1", "/S")
                   for st in geom.structures if st.label)     # names stay anatomical
        rows = np.nonzero(case.mask.any(axis=(0, 2)))[0]
        assert rows.max() >= case.mask.shape[1] - 3           # the spine runs off the bottom


def test_fov_cut_through_the_sacrum_keeps_part_of_it() -> None:
    lo, hi = FOV_CUT_THROUGH_MM
    for case in _fov_cases(FovCut.THROUGH_SACRUM, 3):
        geom = case.geometry
        labels = set(np.unique(case.mask).tolist()) - {0}
        assert 1 in labels and labels == set(present_labels(geom))
        row_mm = geom.fov_mm / case.mask.shape[1]
        sac_rows = np.nonzero((case.mask == 1).any(axis=(0, 2)))[0]
        assert sac_rows.max() == case.mask.shape[1] - 1       # cut by the bottom edge
        # (up to MIN_SLIVER_MM more where the field moved down to drop a sliver at its top)
        shown = (sac_rows.max() + 1 - sac_rows.min()) * row_mm
        assert lo - 2 * row_mm <= shown <= hi + MIN_SLIVER_MM + 0.5 + row_mm


def test_rates_are_frequencies_and_the_draws_independent() -> None:
    ids = range(1, 201)
    both = PhantomParams(sacralised_l5_rate=0.3, fov_cut_rate=0.2)
    kinds = Counter(sample_geometry(cid, 5, both).hard_case for cid in ids)
    # binomial sd at n=200 is <= 3.3 points; allow ~3 sd
    assert abs(kinds[HardCase.SACRALISED_L5] / 200 - 0.3) < 0.1
    assert abs(kinds[HardCase.FOV_CUT] / 200 - 0.2) < 0.1
    assert kinds[HardCase.LUMBARISED_S1] == 0
    alone = PhantomParams(sacralised_l5_rate=0.3)
    assert ({c for c in ids if sample_geometry(c, 5, alone).hard_case is HardCase.SACRALISED_L5}
            == {c for c in ids if sample_geometry(c, 5, both).hard_case
                is HardCase.SACRALISED_L5})


def test_bad_rates_raise_one_clear_line() -> None:
    for name in ("sacralised_l5_rate", "lumbarised_s1_rate", "fov_cut_rate"):
        for bad in (-0.1, 1.5):
            with pytest.raises(ConfigError, match=rf"PhantomParams\.{name} must be in \[0, 1\]"
                               ) as err:
                PhantomParams(**{name: bad})
            assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="must sum to at most 1") as err:
        PhantomParams(sacralised_l5_rate=0.6, fov_cut_rate=0.6)
    assert "fov_cut_rate" in str(err.value) and "\n" not in str(err.value)
    p = PhantomParams(lumbarised_s1_rate=0.25)
    assert PhantomParams.from_dict(p.to_dict()) == p


BOTTOM_UP = [1, 11, 2, 12, 3, 13, 4, 14, 5, 15, 6, 16, 7, 17, 8, 18, 9, 19, 10]


def _labels_in(path: Path) -> set[int]:
    return set(np.unique(np.asanyarray(nib.load(path).dataobj)).tolist()) - {0}


def test_manifest_written_and_read_back(tmp_path: Path) -> None:
    params = hard_params(HardPreset.ALL)
    root = write_phantom(tmp_path / "hard", cases=6, seed=11, size=48, params=params,
                         test_cases=2)
    frame = read_manifest(root)
    assert list(frame["case_id"]) == list(range(1, 9))
    assert list(frame["split"]) == ["train"] * 6 + ["test1"] * 2
    assert set(frame["hard_case"]) <= {k.value for k in HardCase} - {"none"}
    for row in frame.itertuples():
        geom = sample_geometry(row.case_id, 11, params)
        assert row.hard_case == geom.hard_case.value and row.fov_cut == geom.fov_cut.value
        assert row._asdict() == {"Index": row.Index,
                                 **describe(row.split, row.case_id, geom).__dict__}
        if row.split == "train":
            labels = _labels_in(root / f"train/Mask/mask_case{row.case_id}.nii.gz")
            assert (1 in labels) == (row.sacrum_in_view_mm > 0)
            assert min(labels, key=BOTTOM_UP.index) == row.lowest_label
    lstv = frame[frame["hard_case"] != "fov_cut"]
    assert set(zip(lstv["transitional_vertebra"], lstv["transitional_label"],
                   lstv["label_offset"])) <= {("L5", 1, 1), ("S1", 2, -1)}
    # Rewriting the same folder as a default phantom removes the manifest.
    write_phantom(root, cases=2, seed=11, size=48, test_cases=0)
    assert not (root / MANIFEST).exists() and (root / MARKER).is_file()
    with pytest.raises(DataError, match="hard_cases.csv"):
        read_manifest(root)


def test_cli_hard_option(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    assert cli_main(["phantom", "--out", str(out), "--cases", "3", "--seed", "4", "--size", "40",
                     "--test-cases", "0", "--hard", "fov"]) == 0
    assert "fov_cut" in capsys.readouterr().out
    frame = read_manifest(out)
    assert list(frame["hard_case"]) == ["fov_cut"] * 3
    with pytest.raises(SystemExit):
        cli_main(["phantom", "--out", str(out), "--cases", "1", "--hard", "ribs"])


def test_sampler_agrees_with_rasterised_hard_masks() -> None:
    params = hard_params(HardPreset.ALL)
    kinds = Counter()
    for cid in range(1, 13):
        case = generate_case(cid, 3, 64, params)
        kinds[case.geometry.hard_case] += 1
        assert set(np.unique(case.mask).tolist()) - {0} == set(sample_presence(cid, 3, params))
    assert len(kinds) == 3 and HardCase.NONE not in kinds


def test_a_hard_case_is_its_default_twin_apart_from_the_hard_case() -> None:
    """Same (seed, case): the same random draws outside the hard case's own, so the two can be
    compared as one subject with and without its transitional vertebra or cut field."""
    from spineseg_core.data.phantom.render import render_slices

    for cid in (3, 42):   # 42's twin has the partial sacralised form (a skipped nucleus draw)
        twin = sample_geometry(cid, 0, PhantomParams())
        after = []
        for params in (PhantomParams(), PhantomParams(sacralised_l5_rate=1.0),
                       PhantomParams(lumbarised_s1_rate=1.0), PhantomParams(fov_cut_rate=1.0)):
            geom = sample_geometry(cid, 0, params)
            assert (geom.n_slices, geom.lateral_offset, geom.scoliosis_phase, geom.back_depth) \
                == (twin.n_slices, twin.lateral_offset, twin.scoliosis_phase, twin.back_depth)
            for name in ("L3", "L2/L3", "T12"):
                st, tw = geom.structures[geom.index_of(name)], twin.structures[twin.index_of(name)]
                assert st.s_hi - st.s_lo == pytest.approx(tw.s_hi - tw.s_lo, abs=1e-9)
            rng = np.random.default_rng([0, cid, 1])
            render_slices(geom, 40, params, rng)
            after.append(rng.random())
        assert len(set(after)) == 1    # the rendering stream ends where the twin's does
