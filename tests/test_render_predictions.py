"""scripts/render_predictions.py on committed records: it draws a run folder, a main-group
record and a side-group record (whose images come from ``study.records.main_group_images``),
and refuses a folder without predictions in one line."""

import importlib.util
from pathlib import Path

import matplotlib.image as mpimg
import pytest

from fake_runs import write_fake_run
from spineseg_core.study.records import write_record

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "render_predictions.py"


@pytest.fixture(scope="module")
def render():
    spec = importlib.util.spec_from_file_location("render_predictions", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.render


def test_render_draws_runs_and_records(render, tmp_path):
    run = write_fake_run(tmp_path / "run", "unet", n_cases=2, n_slices=2, size=64)
    main = write_record(run, tmp_path / "records/test/unet/seed_0/fold_0")
    side = write_record(run, tmp_path / "records/test-context/unet/seed_0/fold_0")
    alone = write_record(run, tmp_path / "only/test-context/unet/seed_0/fold_0")
    render([run, main, side, alone], tmp_path / "four.png")
    render([side], tmp_path / "one.png")
    four, one = (mpimg.imread(tmp_path / f"{n}.png").shape for n in ("four", "one"))
    assert four[1] == one[1] and four[0] == 4 * one[0]  # a row group of three slices each


def test_a_folder_without_predictions_is_refused(render, tmp_path):
    run = write_fake_run(tmp_path / "run", "unet", n_cases=1, n_slices=1, size=64)
    (run / "predictions.npz").unlink()
    with pytest.raises(SystemExit, match="no predictions.npz"):
        render([run], tmp_path / "x.png")
