"""The training notebook runs end to end under papermill and fills its run folder."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from spineseg_core.training.run_folder import RunFolder

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "train.ipynb"


def test_notebook_has_one_parameters_cell_and_python3_kernel():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    names = {line.split("=")[0].strip() for line in tagged[0].source.splitlines() if "=" in line}
    assert {"model", "profile", "data_dir", "image_size", "epochs", "batch_size", "lr", "loss",
            "seed", "fold", "out_dir", "device", "num_workers", "resume"} <= names
    assert 'model = "unet"' in tagged[0].source and 'profile = "cpu"' in tagged[0].source
    assert not any('matplotlib.use(' in c.source for c in nb.cells)


@pytest.mark.slow
def test_papermill_smoke_run(tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill")
    monkeypatch.setenv("SPINESEG_CACHE", str(tmp_path / "cache"))
    run_dir = tmp_path / "run"
    out = run_dir / "notebook.ipynb"
    run_dir.mkdir()
    papermill.execute_notebook(
        str(NOTEBOOK), str(out), kernel_name="python3", cwd=str(tmp_path), progress_bar=False,
        parameters={"model": "unet", "profile": "smoke", "out_dir": str(run_dir),
                    "overrides": {"model_kwargs": {"base_width": 4, "depth": 2}}})
    run = RunFolder(run_dir)
    for name in (*RunFolder.RESULT_FILES, "notebook.ipynb"):
        assert (run.path / name).is_file(), name
    metrics = json.loads(run.metrics.read_text())
    assert metrics["model"] == "unet" and metrics["profile"] == "smoke"
    nb = nbformat.read(out, as_version=4)
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) == 2  # learning curves and predictions
