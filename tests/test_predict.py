"""Prediction keeps every input's geometry: shape, affine and header (NIfTI), origin, spacing
and direction (.mha), for files in orientations other than the study's."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from _tiny_data import make_case_arrays, make_tiny_dataset
from spineseg_core.cli import main
from spineseg_core.errors import DataError
from spineseg_core.labels import NUM_CLASSES
from spineseg_core.training.config import resolve_config
from spineseg_core.training.loop import run_training
from spineseg_core.training.predict import output_name, predict_path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    mp = pytest.MonkeyPatch()
    mp.setenv("SPINESEG_CACHE", str(root / "cache"))
    try:
        data = make_tiny_dataset(root / "data")
        cfg = resolve_config("smoke", data_dir=data, out_dir=root / "run", image_size=32,
                             model_kwargs={"base_width": 4, "depth": 2}, threads=1)
        run_training(cfg)
    finally:
        mp.undo()
    return root / "run"


def _oblique_nifti(path, shape_study=(3, 40, 36)):
    """A NIfTI in LAS-like order ("A", "S", "L"): axes (W, H, S) of the study, flipped."""
    image, _ = make_case_arrays(np.random.default_rng(1), shape_study[0], shape_study[1])
    image = image[:, :, :shape_study[2]]
    data = np.ascontiguousarray(image.transpose(2, 1, 0)[::-1, ::-1, ::-1])  # (W, H, S)
    affine = np.array([[0.0, 0.0, -4.0, 30.0],
                       [0.9, 0.0, 0.0, -12.0],
                       [0.0, 0.8, 0.0, 5.5],
                       [0.0, 0.0, 0.0, 1.0]])
    img = nib.Nifti1Image(data.astype(np.int16), affine)
    img.header["descrip"] = b"spineseg predict test"
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=2)
    nib.save(img, path)
    return nib.load(path)


def test_output_name():
    assert output_name("Case12.nii.gz") == "mask_case12.nii.gz"
    assert output_name("patient_t2.mha") == "patient_t2.mha"


def test_predict_nifti_keeps_shape_affine_and_header(run_dir, tmp_path):
    src = _oblique_nifti(tmp_path / "Case7.nii.gz")
    assert nib.aff2axcodes(src.affine) == ("A", "S", "L")
    (tmp_path / "out").mkdir()
    (written,) = predict_path(run_dir, tmp_path / "Case7.nii.gz", tmp_path / "out",
                              device="cpu")
    assert written == tmp_path / "out" / "mask_case7.nii.gz"
    out = nib.load(written)
    assert out.shape == src.shape
    assert np.array_equal(out.affine, src.affine)
    assert out.get_data_dtype() == np.uint8
    for field in ("dim", "pixdim", "qform_code", "sform_code", "quatern_b", "quatern_c",
                  "quatern_d", "qoffset_x", "srow_x", "srow_y", "srow_z", "descrip",
                  "xyzt_units"):
        assert np.array_equal(out.header[field], src.header[field]), field
    labels = np.asanyarray(out.dataobj)
    assert labels.min() >= 0 and labels.max() < NUM_CLASSES


def test_predict_mha_and_folder(run_dir, tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    src_dir = tmp_path / "in"
    src_dir.mkdir()
    _oblique_nifti(src_dir / "Case3.nii.gz")
    image = sitk.GetImageFromArray(np.random.default_rng(0).integers(0, 900, (4, 30, 28))
                                   .astype(np.int16))
    image.SetSpacing((0.7, 0.9, 3.5))
    image.SetOrigin((1.0, -2.0, 3.0))
    image.SetDirection((0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0))
    sitk.WriteImage(image, str(src_dir / "p1_t2.mha"))
    written = predict_path(run_dir, src_dir, tmp_path / "out", device="cpu")
    assert sorted(p.name for p in written) == ["mask_case3.nii.gz", "p1_t2.mha"]
    out = sitk.ReadImage(str(tmp_path / "out" / "p1_t2.mha"))
    assert out.GetSize() == image.GetSize()
    assert out.GetSpacing() == image.GetSpacing() and out.GetOrigin() == image.GetOrigin()
    assert out.GetDirection() == image.GetDirection()
    assert out.GetPixelID() == sitk.sitkUInt8


def test_predict_command_and_errors(run_dir, tmp_path, capsys):
    _oblique_nifti(tmp_path / "Case1.nii.gz")
    assert main(["predict", "--run", str(run_dir), str(tmp_path / "Case1.nii.gz"), "-o",
                 str(tmp_path / "labels.nii.gz"), "--device", "cpu"]) == 0
    assert nib.load(tmp_path / "labels.nii.gz").shape == (36, 40, 3)
    assert main(["predict", "--run", str(run_dir), str(tmp_path / "nope.nii.gz"), "-o",
                 str(tmp_path / "x.nii.gz")]) == 2
    assert "nope.nii.gz: input does not exist" in capsys.readouterr().err
    with pytest.raises(DataError, match="metrics.json|model.json"):
        predict_path(tmp_path, tmp_path / "Case1.nii.gz", tmp_path / "y.nii.gz")


def test_predict_into_a_new_folder_prints_the_file_written(run_dir, tmp_path, capsys):
    """`-o DIR/` with DIR not yet made: the label file goes into DIR under the input's name,
    and the printed line is that file; `-o pred` (no suffix, no slash) is one clear error."""
    _oblique_nifti(tmp_path / "Case1.nii.gz")
    out = tmp_path / "pred"
    assert main(["predict", "--run", str(run_dir), str(tmp_path / "Case1.nii.gz"), "-o",
                 f"{out}/", "--device", "cpu"]) == 0
    written = out / "mask_case1.nii.gz"
    assert capsys.readouterr().out.strip() == str(written)
    assert nib.load(written).shape == (36, 40, 3)
    assert sorted(p.name for p in out.iterdir()) == ["mask_case1.nii.gz"]
    assert main(["predict", "--run", str(run_dir), str(tmp_path / "Case1.nii.gz"), "-o",
                 str(tmp_path / "other"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"spineseg predict: error: -o {tmp_path / 'other'}: expected a label file "
                   "ending in .nii.gz, .nii, .mha, or a folder (end it with /)")
    assert not (tmp_path / "other").exists()


def test_predict_and_aggregate_reject_bad_options_in_one_line(tmp_path, capsys):
    from spineseg_core.cli import main

    (tmp_path / "in").mkdir()
    (tmp_path / "out").write_text("a file")
    assert main(["predict", "--run", str(tmp_path), str(tmp_path / "in"), "-o",
                 str(tmp_path / "x"), "--batch-size", "0"]) == 2
    assert "--batch-size: expected a positive integer" in capsys.readouterr().err
    assert main(["predict", "--run", str(tmp_path), str(tmp_path / "in"), "-o",
                 str(tmp_path / "out")]) == 2
    assert "must be a folder, but it is an existing file" in capsys.readouterr().err
    (tmp_path / "model.json").write_text("{broken")
    (tmp_path / "case.nii.gz").write_bytes(b"")
    code = main(["predict", "--run", str(tmp_path), str(tmp_path / "case.nii.gz"), "-o",
                 str(tmp_path / "pred.nii.gz")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert main(["aggregate", "--profile", "cpu", "--runs-dir", str(tmp_path), "--out",
                 str(tmp_path / "res"), "--n-boot", "0"]) == 2
    assert "--n-boot" in capsys.readouterr().err
