"""`check_dataset` and `spineseg check`: summary of a valid folder, one line per problem."""

from __future__ import annotations

import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from spine_files import write_mrspineseg_case, write_nifti
from spineseg_core.cli import main
from spineseg_core.data import Layout, check_dataset
from spineseg_core.errors import DataError


@pytest.fixture
def good_root(tmp_path):
    root = tmp_path / "data"
    write_mrspineseg_case(root, 2, 12, 24)
    write_mrspineseg_case(root, 3, 15, 32)
    write_mrspineseg_case(root, 4, 12, 24)
    write_mrspineseg_case(root, 60, 12, 24, subset="test1", labelled=False)
    mask_path = root / "train" / "Mask" / "mask_case4.nii.gz"
    m = nib.load(str(mask_path))
    data = np.asarray(m.dataobj).copy()
    data[data == 10] = 0  # T9 absent from Case4
    write_nifti(mask_path, data, m.affine)
    return root


def _break(root):
    """Three problems: truncated image, out-of-range labels, an image without its mask."""
    img = root / "train" / "MR" / "Case2.nii.gz"
    img.write_bytes(img.read_bytes()[:200])
    mask_path = root / "train" / "Mask" / "mask_case3.nii.gz"
    m = nib.load(str(mask_path))
    data = np.asarray(m.dataobj).copy()
    data[0, 0, 0] = 42
    write_nifti(mask_path, data, m.affine)
    write_mrspineseg_case(root, 5, 12, 24)
    (root / "train" / "Mask" / "mask_case5.nii.gz").unlink()
    return [str(img), str(mask_path), str(root / "train" / "MR" / "Case5.nii.gz")]


def test_check_dataset_summary(good_root):
    r = check_dataset(good_root)
    assert r.layout is Layout.MRSPINESEG and r.usable and r.problems == []
    assert r.cases["train"] == {"labelled": 3, "unlabelled": 0}
    assert r.cases["test1"] == {"labelled": 0, "unlabelled": 1}
    assert r.sizes == {"24x24": 3, "32x32": 1}
    assert r.slice_counts == {12: 3, 15: 1}
    assert r.orientations == {"PIR": 4}
    assert sum(r.spacings.values()) == 4 and "4.4x12.64x12.64" in r.spacings
    assert r.label_presence["background"] == 3 and r.label_presence["S"] == 3
    assert r.label_presence["T9"] == 2 and r.label_presence["T9/T10"] == 3
    assert r.unlabelled == ["test1/Case60"]
    text = r.format()
    assert "layout: mrspineseg" in text and "T9/T10" in text and "test1/Case60" in text


def test_check_dataset_collects_every_problem(good_root):
    expected = _break(good_root)
    r = check_dataset(good_root)
    assert not r.usable
    assert sorted(p for p, _ in r.problems) == sorted(expected)
    reasons = dict(r.problems)
    assert "outside 0..19: 42" in reasons[expected[1]]
    assert r.cases["train"]["labelled"] == 1  # only Case4 is left


def test_cli_check_ok(good_root, capsys):
    assert main(["check", str(good_root)]) == 0
    out = capsys.readouterr().out
    assert "cases train: 3 labelled, 0 unlabelled" in out and "problems: 0" in out


def test_cli_check_reports_one_line_per_problem(good_root, capsys):
    expected = _break(good_root)
    assert main(["check", str(good_root)]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 3
    for path in expected:
        assert sum(path in line for line in err_lines) == 1
    assert all(line.startswith("spineseg check: error: ") for line in err_lines)


def test_cli_check_skip_bad(good_root, capsys):
    expected = _break(good_root)
    assert main(["check", str(good_root), "--skip-bad"]) == 0
    out = capsys.readouterr().out
    skipped = [line for line in out.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == 3 and all(any(p in s for s in skipped) for p in expected)


def test_cli_check_missing_folder_subprocess(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "spineseg_core", "check", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"spineseg check: error: {tmp_path / 'nope'}: dataset folder does not exist"


def test_check_rejects_non_dataset(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="not a recognised dataset"):
        check_dataset(tmp_path)
