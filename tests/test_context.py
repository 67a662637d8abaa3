"""The context family's data path: 2.5D stacks of neighbouring slices, whole volumes for the
3D U-Net, and the scoring that treats both slice by slice like the 2D models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from _tiny_data import make_tiny_dataset
from spineseg_core.data.preprocess import RandomSpineBand
from spineseg_core.data.readers import Volume
from spineseg_core.data.slices import SliceDataset, VolumeDataset, neighbour_indices
from spineseg_core.errors import ConfigError
from spineseg_core.models import build_model
from spineseg_core.training.config import resolve_config
from spineseg_core.training.evaluate import _as_slices
from spineseg_core.training.loop import run_training
from spineseg_core.training.predict import segment_volume
from spineseg_core.training.run_folder import RunFolder, load_model

TINY = {"base_width": 4, "depth": 2}


def _volume(case: str, slices: int, size: int = 8) -> Volume:
    """Slice ``s`` of the image is filled with ``s + 1`` (so a stack shows its rows); the mask
    labels slice ``s`` with ``s + 1`` in its upper half."""
    image = np.repeat(np.arange(1, slices + 1, dtype=np.float32), size * size).reshape(
        slices, size, size)
    mask = np.zeros((slices, size, size), np.uint8)
    for s in range(slices):
        mask[s, : size // 2] = s + 1
    return Volume(case, image, mask, (4.0, 1.0, 1.0), np.eye(4), Path(f"{case}.nii.gz"))


@pytest.mark.parametrize("s, n, context, expected", [
    (0, 5, 1, [0]), (2, 5, 3, [1, 2, 3]), (0, 5, 3, [0, 0, 1]), (4, 5, 3, [3, 4, 4]),
    (1, 5, 5, [0, 0, 1, 2, 3]), (0, 1, 5, [0, 0, 0, 0, 0]),
])
def test_neighbour_indices_repeat_the_edge_slice(s, n, context, expected):
    assert neighbour_indices(s, n, context) == expected


@pytest.mark.parametrize("context", [0, 2, -1])
def test_an_even_or_empty_context_is_refused(context):
    with pytest.raises(ValueError, match="context must be odd"):
        neighbour_indices(0, 3, context)


def test_a_stack_is_the_slice_between_its_neighbours():
    vol = _volume("a", 4)
    flat, stack = SliceDataset([vol]), SliceDataset([vol], context=3)
    assert flat[0]["image"].shape == (1, 8, 8) and float(flat[2]["image"][0, 0, 0]) == 3.0
    item = stack[0]
    assert item["image"].shape == (3, 8, 8)
    assert item["image"][:, 0, 0].tolist() == [1.0, 1.0, 2.0]  # slice 0 repeated below itself
    assert stack[3]["image"][:, 0, 0].tolist() == [3.0, 4.0, 4.0]
    assert torch.equal(item["mask"], flat[0]["mask"])  # the target is the middle slice's
    assert len(stack) == stack.n_slices == 4


def test_a_volume_item_is_padded_to_the_deepest_volume():
    data = VolumeDataset([_volume("a", 3), _volume("b", 5)])
    assert len(data) == 2 and data.depth == 5 and data.n_slices == 8
    item = data[0]
    assert item["image"].shape == (1, 5, 8, 8) and item["mask"].shape == (5, 8, 8)
    assert item["num_slices"] == 3 and item["case_id"] == "a"
    assert item["image"][0, :, 0, 0].tolist() == [1.0, 2.0, 3.0, 0.0, 0.0]
    assert item["mask"][3:].sum() == 0  # padding is background
    with pytest.raises(ValueError, match="less than the deepest"):
        VolumeDataset([_volume("a", 3)], depth=2)


def test_a_scored_volume_keeps_its_own_depth_and_comes_one_to_a_batch():
    from spineseg_core.training.config import resolve_config
    from spineseg_core.training.step import eval_loader

    data = VolumeDataset([_volume("a", 3), _volume("b", 5)], own_depth=True)
    assert data.batch_limit == 1 and data.n_slices == 8
    assert data[0]["image"].shape == (1, 3, 8, 8) and data[1]["mask"].shape == (5, 8, 8)
    assert data[0]["image"][0, :, 0, 0].tolist() == [1.0, 2.0, 3.0]
    cfg = resolve_config("smoke", batch_size=4)
    assert [b["image"].shape[2] for b in eval_loader(data, cfg)] == [3, 5]
    padded = VolumeDataset([_volume("a", 3), _volume("b", 5)])
    assert padded.batch_limit is None and eval_loader(padded, cfg).batch_size == 4
    with pytest.raises(ValueError, match="pads nothing"):
        VolumeDataset([_volume("a", 3)], depth=4, own_depth=True)


def test_a_scored_volume_meets_the_zero_slices_it_trained_with():
    """A 3-slice volume scored alone by a model trained among 5-slice volumes: its logits are
    those of the same volume padded with zero slices to 5, as training padded it; without
    ``min_depth`` the network sees a boundary it never trained on and they differ."""
    torch.manual_seed(0)
    trained = build_model("unet3d", min_depth=5, **TINY).eval()
    plain = build_model("unet3d", **TINY).eval()
    plain.load_state_dict(trained.state_dict())
    volume = torch.randn(1, 1, 3, 16, 16)
    as_trained = torch.cat([volume, torch.zeros(1, 1, 2, 16, 16)], dim=2)
    with torch.inference_mode():
        expected = trained(as_trained)[:, :, :3]
        alone = trained(volume)
        unpadded = plain(volume)
    assert alone.shape == (1, 20, 3, 16, 16)
    assert torch.allclose(alone, expected, atol=1e-5)
    assert not torch.allclose(unpadded, expected, atol=1e-3)
    with torch.inference_mode():  # a volume as deep as training, or deeper, is not padded
        deep = torch.randn(1, 1, 6, 16, 16)
        assert torch.allclose(trained(deep), plain(deep), atol=1e-6)


def test_min_depth_is_recorded_for_a_3d_model_and_refused_for_a_2d_one():
    model = build_model("unet3d", min_depth=15, **TINY)
    kwargs = model.init_kwargs()
    assert kwargs["min_depth"] == 15
    assert build_model(kwargs.pop("name"), **kwargs).min_depth == 15
    assert "min_depth" not in build_model("unet3d", **TINY).init_kwargs()
    with pytest.raises(ConfigError, match="'unet'.*min_depth is for a model fed whole volumes"):
        build_model("unet", min_depth=15)
    with pytest.raises(ValueError, match="min_depth must be >= 1, got 0"):
        build_model("unet3d", min_depth=0, **TINY)


def test_a_volume_is_augmented_slice_by_slice_and_cropped_as_one_band():
    seen = []

    def transform(item):
        seen.append((item["case_id"], item["slice_index"], tuple(item["image"].shape)))
        return {**item, "image": item["image"] * 10}

    torch.manual_seed(0)
    data = VolumeDataset([_volume("a", 3, size=16)], transform, crop=RandomSpineBand(0.5),
                         depth=4)
    item = data[0]
    assert seen == [("a", 0, (1, 16, 8)), ("a", 1, (1, 16, 8)), ("a", 2, (1, 16, 8))]
    assert item["image"].shape == (1, 4, 16, 8) and item["mask"].shape == (4, 16, 8)
    assert item["image"][0, :, 0, 0].tolist() == [10.0, 20.0, 30.0, 0.0]  # padding untouched


def test_a_volume_batch_is_scored_on_its_own_slices_only():
    logits = torch.zeros(2, 3, 4, 2, 2)  # 2 volumes, 3 classes, depth 4 (padded)
    logits[0, 1, :2] = 1.0  # volume 0: its 2 slices predict class 1
    logits[1, 2, :3] = 1.0  # volume 1: its 3 slices predict class 2
    y = torch.arange(4).repeat(2, 2, 2, 1).permute(0, 3, 1, 2)  # slice s labelled s
    batch = {"image": torch.randn(2, 1, 4, 2, 2), "case_id": ["a", "b"],
             "num_slices": torch.tensor([2, 3])}
    out, target, image, cases, index = _as_slices(batch, logits, y)
    assert out.shape == (5, 3, 2, 2) and target.shape == image.shape == (5, 2, 2)
    assert out.argmax(1)[:, 0, 0].tolist() == [1, 1, 2, 2, 2]
    assert target[:, 0, 0].tolist() == [0, 1, 0, 1, 2]
    assert cases == ["a", "a", "b", "b", "b"] and index == [0, 1, 0, 1, 2]
    torch.testing.assert_close(image[2], batch["image"][1, 0, 0])


def test_a_slice_batch_passes_as_it_is_and_a_stack_shows_its_middle_slice():
    logits, y = torch.randn(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long)
    stack = torch.stack([torch.full((3, 4, 4), float(c)) for c in range(2)])
    stack[:, 1] += 100  # the middle channel is the slice itself
    batch = {"image": stack, "case_id": ["a", "a"], "slice_index": torch.tensor([0, 1])}
    out, target, image, cases, index = _as_slices(batch, logits, y)
    assert out is logits and target is y and cases == ["a", "a"] and index == [0, 1]
    assert image[:, 0, 0].tolist() == [100.0, 101.0]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "data", slices=4)


@pytest.mark.parametrize("model", ["unet_25d3", "unet3d"])
def test_a_context_model_trains_and_is_scored_like_a_2d_one(model, tiny_data, tmp_path,
                                                             monkeypatch):
    """The same held-out slices as a 2D run, and the checkpoint's own prediction of a test
    volume (2.5D stacks or the whole volume, as in training) reproduces the stored one."""
    monkeypatch.setenv("SPINESEG_CACHE", str(tmp_path / "cache"))
    cfg = resolve_config("smoke", model=model, data_dir=tiny_data, out_dir=tmp_path / "run",
                         image_size=32, batch_size=2, model_kwargs=TINY, threads=1, epochs=1,
                         hd95=False)
    metrics = run_training(cfg)
    run = RunFolder(tmp_path / "run")
    assert metrics["model"] == model and metrics["n_test_slices"] == 4
    assert metrics["n_train_slices"] == 4 * metrics["n_train_cases"]
    assert run.load_params()["augmentation"] == "slice"
    with np.load(run.predictions) as npz:
        assert npz["pred"].shape == npz["mask"].shape == (4, 32, 32)
        assert npz["slice_index"].tolist() == [0, 1, 2, 3]
        image, pred = npz["image"].astype(np.float32), npz["pred"]
    net = load_model(run.path)
    assert net.name == model
    if model == "unet3d":  # scored at the depth it trained at: the tiny volumes' 4 slices
        assert json.loads(run.model_json.read_text())["build_kwargs"]["min_depth"] == 4
        assert net.min_depth == 4
    again = segment_volume(net, image, torch.device("cpu"), batch_size=3,
                           precision=run.load_params()["precision"])
    assert (again == pred).mean() > 0.99  # float16 images: a few pixels may flip


def test_the_cost_tables_measure_2p5d_models_and_name_what_they_do_not_measure():
    from spineseg_core.errors import ConfigError
    from spineseg_core.measure.efficiency import count_macs, efficiency_table
    from spineseg_core.measure.speed import bench_table

    # A 2.5D model costs its 2D network plus the wider first convolution only.
    flat, stack = count_macs("unet", size=64), count_macs("unet_25d5", size=64)
    assert stack - flat == 64 * 64 * 64 * 9 * 4  # 64 filters x 64² px x 3x3 x 4 more channels
    for table in (efficiency_table, bench_table):
        with pytest.raises(ConfigError, match="unet3d is fed whole volumes"):
            table(models=["unet3d"])
