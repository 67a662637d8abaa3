"""The results bundle's zip (spineseg_core.report.bundle_zip): complete, readable, reproducible."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import pytest

from spineseg_core.errors import DataError
from spineseg_core.report.bundle_zip import FIXED_DATE_TIME, bundle_members, write_bundle_zip

FILES = {
    "bundle.json": b'{"profile": "cpu"}\n',
    "models.csv": b"model,dice_mean\nunet,0.8\n",
    "runs/cpu/unet/seed_0/fold_0/metrics.json": b'{"dice": 0.8}\n',
    "runs/cpu/unet/seed_0/fold_0/per_case.csv": b"case_id,dice\n1,0.8\n",
    "runs/cpu/test_set.npz": bytes(range(256)) * 40,
    "Zeta.csv": b"upper-case names sort before lower-case ones\n",
}
SKIPPED = {".models.csv.abc.tmp": b"half-written", ".ipynb_checkpoints/x.csv": b"editor copy",
           "runs/cpu/unet/seed_0/fold_0/params.json.tmp": b"{"}


def _bundle(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


@pytest.fixture
def bundle(tmp_path) -> Path:
    return _bundle(tmp_path / "results/cpu", {**FILES, **SKIPPED})


def test_zip_holds_every_bundle_file_and_record(bundle, tmp_path):
    target = tmp_path / "out/spineseg-results-cpu.zip"
    names = write_bundle_zip(bundle, target)
    expected = sorted(f"results/cpu/{rel}" for rel in FILES)
    assert names == expected
    assert names[0] == "results/cpu/Zeta.csv" and names[-1].endswith("per_case.csv")
    with zipfile.ZipFile(target) as zf:
        assert zf.testzip() is None
        assert zf.namelist() == expected
        for info in zf.infolist():
            assert info.date_time == FIXED_DATE_TIME
            assert info.compress_type == zipfile.ZIP_DEFLATED
            assert (info.external_attr >> 16) == 0o100644
            assert zf.read(info) == FILES[info.filename.removeprefix("results/cpu/")]
    assert [p for p in target.parent.iterdir()] == [target]  # no temporary file left


def test_zip_is_byte_identical_across_builds(bundle, tmp_path):
    first = tmp_path / "a.zip"
    write_bundle_zip(bundle, first)
    write_bundle_zip(bundle, tmp_path / "b.zip")
    assert first.read_bytes() == (tmp_path / "b.zip").read_bytes()
    # Another checkout: other folder, other mtimes, files created in another order.
    other = _bundle(tmp_path / "elsewhere/cpu", dict(reversed(list(FILES.items()))))
    for p in other.rglob("*"):
        os.utime(p, (1_900_000_000, 1_900_000_000))
    write_bundle_zip(other, tmp_path / "c.zip")
    assert first.read_bytes() == (tmp_path / "c.zip").read_bytes()
    # A changed file changes the archive.
    (bundle / "models.csv").write_bytes(b"model,dice_mean\nunet,0.7\n")
    write_bundle_zip(bundle, tmp_path / "d.zip")
    assert first.read_bytes() != (tmp_path / "d.zip").read_bytes()


def test_unzipped_at_a_root_gives_the_bundle_back(bundle, tmp_path):
    write_bundle_zip(bundle, tmp_path / "r.zip")
    shutil.unpack_archive(tmp_path / "r.zip", tmp_path / "clone")
    back = tmp_path / "clone/results/cpu"
    assert sorted(p.as_posix() for p in bundle_members(back)) == sorted(FILES)
    assert all((back / rel).read_bytes() == data for rel, data in FILES.items())


def test_prefix(bundle, tmp_path):
    assert write_bundle_zip(bundle, tmp_path / "p.zip", prefix="")[0] == "Zeta.csv"
    assert write_bundle_zip(bundle, tmp_path / "q.zip", prefix="study/")[0] == "study/Zeta.csv"


def test_a_folder_without_bundle_json_is_refused(tmp_path):
    folder = _bundle(tmp_path / "results/cpu", {"models.csv": b"x\n"})
    with pytest.raises(DataError, match=r"results/cpu: not a results bundle: no bundle.json"):
        write_bundle_zip(folder, tmp_path / "x.zip")
    with pytest.raises(DataError, match="missing: not a results bundle"):
        bundle_members(tmp_path / "missing")
    assert not (tmp_path / "x.zip").exists()
