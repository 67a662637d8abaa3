"""scripts/render_predictions.py on committed records: a side group's record borrows the main
group's display images when the slices match, and the figure is written."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from fake_runs import write_fake_run
from spineseg_core.study.records import TEST_SET, load_predictions, write_record

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "render_predictions.py"


@pytest.fixture(scope="module")
def render():
    spec = importlib.util.spec_from_file_location("render_predictions", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _records(tmp_path: Path) -> tuple[Path, Path]:
    run = write_fake_run(tmp_path / "run", "unet", n_cases=2, n_slices=2, size=64)
    main = write_record(run, tmp_path / "records" / "test" / "unet" / "seed_0" / "fold_0")
    side = write_record(run, tmp_path / "records" / "test-context" / "unet" / "seed_0" / "fold_0")
    return main, side


def test_side_record_takes_the_main_groups_images(render, tmp_path):
    main, side = _records(tmp_path)
    p = load_predictions(side)
    assert "image" not in p  # side groups keep no display image
    with np.load(main.parents[2] / TEST_SET) as t:
        expected = t["image"]
    got = render.main_group_images(side, p)
    np.testing.assert_array_equal(got, expected)
    assert got.shape == p["pred"].shape


def test_other_slices_get_black_images(render, tmp_path):
    _, side = _records(tmp_path)
    p = load_predictions(side)
    p["slice_index"] = p["slice_index"][::-1].copy()  # not the main group's order
    got = render.main_group_images(side, p)
    assert got.shape == p["pred"].shape and not got.any()


def test_render_writes_a_figure_from_records(render, tmp_path):
    main, side = _records(tmp_path)
    out = tmp_path / "look.png"
    render.render([main, side], out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_folder_without_predictions_is_refused(render, tmp_path):
    run = write_fake_run(tmp_path / "run", "unet", n_cases=1, n_slices=1, size=64)
    (run / "predictions.npz").unlink()
    with pytest.raises(SystemExit, match="no predictions.npz"):
        render.render([run], tmp_path / "x.png")
