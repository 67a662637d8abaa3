"""The foundation: label table, orientation conversions, atomic writes, packaging pins."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from spineseg_core import io, labels
from spineseg_core.data import orientation as ori
from spineseg_core.study import paper

ROOT = Path(__file__).resolve().parents[1]


def test_label_table_matches_paper_table2_order():
    names = list(paper.table2_per_class_dice().columns[1:-1])
    assert list(labels.LABEL_NAMES[1:]) == names
    assert labels.NUM_CLASSES == 20
    assert tuple(range(1, 20)) == labels.FOREGROUND
    assert [labels.LABELS[v].kind for v in (0, 1, 2, 10, 11, 19)] == [
        "background", "sacrum", "vertebra", "vertebra", "disc", "disc"]


@pytest.mark.parametrize("vertebra,below,above", [(2, 11, 12), (6, 15, 16), (10, 19, 20)])
def test_disc_neighbours(vertebra, below, above):
    assert labels.disc_below(vertebra) == below
    assert labels.disc_above(vertebra) == above
    # The disc above T9 would be T8/T9, outside the table; everything else names a real disc.
    if above < 20:
        assert labels.LABELS[above].kind is labels.LabelKind.DISC
    assert "/" in labels.LABELS[below].name


def test_disc_neighbours_reject_non_vertebra():
    with pytest.raises(ValueError, match="vertebra must be one of"):
        labels.disc_below(11)
    with pytest.raises(KeyError, match="valid names"):
        labels.label_by_name("T8")


def test_paper_tables_have_twelve_models():
    for table in (paper.table1_overall(), paper.table2_per_class_dice(), paper.table3_efficiency()):
        assert len(table) == 12
    assert paper.table1_overall().set_index("model").loc["DeepLabv3+", "dice"] == 87.55


@pytest.mark.parametrize("codes", [("P", "I", "R"), ("L", "A", "S"), ("S", "R", "A")])
def test_orientation_round_trip(codes):
    rng = np.random.default_rng(0)
    study = rng.integers(0, 100, size=(3, 5, 7))
    aff = ori.study_affine((4.4, 0.5, 0.6))
    arr, faff = ori.from_study(study, aff, codes)
    assert ori.axcodes(faff) == codes
    back, baff = ori.to_study(arr, faff)
    np.testing.assert_array_equal(back, study)
    np.testing.assert_allclose(baff, aff)
    # World coordinates of one voxel agree before and after.
    idx = np.array([1, 2, 3, 1.0])
    world = aff @ idx
    file_idx = np.linalg.solve(faff, world)
    assert arr[tuple(np.round(file_idx[:3]).astype(int))] == study[1, 2, 3]


def test_study_affine_spacing_and_codes():
    aff = ori.study_affine((4.4, 0.3448, 0.3448))
    assert ori.axcodes(aff) == ori.STUDY_AXCODES
    assert ori.spacing_of(aff) == pytest.approx((4.4, 0.3448, 0.3448))
    img = nib.Nifti1Image(np.zeros((2, 3, 4), np.uint8), aff)
    assert nib.aff2axcodes(img.affine) == ("R", "I", "P")


def test_to_study_rejects_2d():
    with pytest.raises(ValueError, match="3D"):
        ori.to_study(np.zeros((4, 4)), np.eye(4))


def test_atomic_write_keeps_old_content_on_failure(tmp_path):
    target = tmp_path / "metrics.json"
    io.write_json(target, {"dice": 0.5})
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("{truncated")
        raise RuntimeError("killed mid-write")
    assert target.read_text().strip().startswith("{")
    assert '"dice": 0.5' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def _pins(lines):
    return {re.split("==", x)[0].lower(): x for x in lines}


def test_environment_yml_has_the_pyproject_pins():
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = proj["optional-dependencies"]
    wanted = proj["dependencies"] + extras["test"] + extras["bench"]
    env = [ln.strip()[2:] for ln in (ROOT / "environment.yml").read_text().splitlines()
           if ln.strip().startswith("- ") and "==" in ln]
    assert _pins(env) == _pins(wanted)
    assert "torch==2.13.0" in wanted
    assert not any(x.lower().startswith(("torchvision", "timm")) for x in wanted)


def test_constraints_pin_every_direct_dependency():
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    cons = _pins(ln.strip() for ln in (ROOT / "constraints.txt").read_text().splitlines()
                 if "==" in ln)
    for dep in proj["dependencies"]:
        name = dep.split("==")[0].lower()
        got = cons.get(name) or cons.get(name.replace("-", "_"))
        assert got is not None and got.lower() == dep.lower(), dep


def test_atomic_write_leaves_a_readable_file(tmp_path):
    target = tmp_path / "history.csv"
    io.write_text(target, "epoch\n1\n")
    assert target.read_text() == "epoch\n1\n"
    assert target.stat().st_mode & 0o777 == 0o644


def test_finite_or_none_blanks_only_non_finite_floats(tmp_path):
    got = io.finite_or_none({"dice": float("nan"), "hd95": float("inf"), "miou": 0.5,
                             "epochs": 6, "model": "unet", "ok": None})
    assert got == {"dice": None, "hd95": None, "miou": 0.5, "epochs": 6, "model": "unet",
                   "ok": None}
    io.write_json(tmp_path / "m.json", got)
    text = (tmp_path / "m.json").read_text()
    assert "NaN" not in text and "Infinity" not in text  # JSON readers outside Python refuse them
    assert io.read_json(tmp_path / "m.json")["dice"] is None


def test_parse_choice_names_the_parameter_and_the_valid_values():
    from spineseg_core.errors import ConfigError, parse_choice
    from spineseg_core.labels import LabelKind

    assert parse_choice(LabelKind, "disc", "kind") is LabelKind.DISC
    with pytest.raises(ConfigError, match="kind: expected one of background, sacrum, vertebra, "
                                          "disc, got 'bone'"):
        parse_choice(LabelKind, "bone", "kind")
