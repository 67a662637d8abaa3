"""Training runs: configuration errors, the run-folder contract, resume, non-finite loss."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from _tiny_data import make_tiny_dataset
from spineseg_core.data.prepare import prepare_data
from spineseg_core.errors import ConfigError, SpinesegError
from spineseg_core.labels import NUM_CLASSES
from spineseg_core.models import model_info
from spineseg_core.training import loop as train_mod
from spineseg_core.training.config import PROFILE_DEFAULTS, Profile, TrainConfig, resolve_config
from spineseg_core.training.loop import HISTORY_COLUMNS, run_training
from spineseg_core.training.precision import Precision, autocast, precision_for
from spineseg_core.training.run_folder import RunFolder, default_run_dir, load_model

TINY_UNET = {"base_width": 4, "depth": 2}
METRIC_KEYS = {"dice", "miou", "fnr", "fpr", "recall", "bg_recall", "absent_fraction",
               "dice3d_mean", "dice3d_std", "hd95_mean", "evaluated_on", "best_epoch",
               "val_dice", "epochs_completed", "steps_completed", "train_seconds", "test_seconds",
               "n_train_cases",
               "n_train_slices", "steps_per_epoch",
               "n_val_cases", "n_test_cases", "n_test_slices", "params", "model", "profile",
               "seed", "fold"}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "data")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPINESEG_CACHE", str(tmp_path / "cache"))


def tiny_config(data_dir, out_dir, **kw) -> TrainConfig:
    values = dict(data_dir=data_dir, out_dir=out_dir, image_size=32, batch_size=4,
                  model_kwargs=TINY_UNET, threads=1, hd95=True)
    values.update(kw)
    return resolve_config("smoke", **values)


# --- configuration ---------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, parameter", [
    ({"model": "no_such_net"}, "model"),
    ({"loss": "focal"}, "loss"),
    ({"epochs": "three"}, "epochs"),
    ({"epochs": "[3]"}, "epochs"),
    ({"epochs": -2}, "epochs"),
    ({"lr": "fast"}, "lr"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"resume": "yes"}, "resume"),
    ({"device": "tpu"}, "device"),
    ({"p_motion": 1.5}, "p_motion"),
    ({"data_dir": "/no/such/folder"}, "data_dir"),
    ({"fold": 3}, "fold"),
    ({"model_kwargs": {"no_such_option": 1}}, "model_kwargs"),
])
def test_bad_parameter_is_named(overrides, parameter):
    with pytest.raises(ConfigError, match=rf"^{parameter}: "):
        resolve_config("smoke", **overrides)


def test_unknown_profile_and_parameter():
    with pytest.raises(ConfigError, match="profile: expected one of smoke, cpu, paper"):
        resolve_config("laptop")
    with pytest.raises(ConfigError, match="unknown parameter.*epoch_count"):
        resolve_config("smoke", epoch_count=3)


def test_profile_defaults_and_overrides():
    cfg = resolve_config("smoke", epochs=None, lr=1e-3, data_dir=None)
    assert cfg.profile is Profile.SMOKE
    assert cfg.epochs == PROFILE_DEFAULTS[Profile.SMOKE]["epochs"]  # None keeps the default
    assert cfg.lr == 1e-3 and cfg.data_dir is None
    paper = resolve_config("paper", phantom=True)
    assert (paper.image_size, paper.lr, paper.loss, paper.batch_size) == (880, 5e-4, "dice_ce", 4)
    assert resolve_config().profile is Profile.CPU and resolve_config().model == "unet"
    assert default_run_dir(cfg).parts[-4:] == ("smoke", "unet", "seed_0", "fold_0")


def test_bad_config_fails_before_any_file_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError):
        resolve_config("smoke", model="nope", out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


# --- a full run ------------------------------------------------------------------------------

def test_smoke_run_writes_every_file(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, tmp_path / "run", epochs=2)
    metrics = run_training(cfg)
    run = RunFolder(tmp_path / "run")
    for name in RunFolder.RESULT_FILES:
        assert (run.path / name).is_file(), name
    # Resuming is over: the last state is dropped (keep_last_checkpoint=False, the default).
    assert run.is_finished() and not run.has_checkpoint()

    assert set(metrics) == METRIC_KEYS
    assert json.loads(run.metrics.read_text()) == metrics
    assert metrics["epochs_completed"] == 2 and metrics["best_epoch"] in (1, 2)
    # 5 patients: 1 held out for test (frozen), then 3 train / 1 validation.
    assert (metrics["n_train_cases"], metrics["n_val_cases"], metrics["n_test_cases"]) == (3, 1, 1)
    assert metrics["n_test_slices"] == 3 and metrics["evaluated_on"] == "test"
    # Every training slice once per epoch, in full batches of 4 (the last partial one dropped).
    assert metrics["steps_per_epoch"] == metrics["n_train_slices"] // 4 >= 1
    assert 0.0 <= metrics["dice"] <= 1.0

    history = run.load_history()
    assert list(history.columns) == list(HISTORY_COLUMNS)
    assert history["epoch"].tolist() == [1, 2]
    assert history["lr"].tolist() == [5e-4, 5e-4]

    per_class = run.load_per_class()
    assert len(per_class) == NUM_CLASSES
    assert per_class["class_value"].tolist() == list(range(NUM_CLASSES))
    per_case = run.load_per_case()
    assert {"case_id", "class_value", "dice", "hd95"} <= set(per_case.columns)
    assert len(per_case) == NUM_CLASSES - 1

    with np.load(run.predictions) as npz:
        assert npz["image"].dtype == np.float16 and npz["pred"].dtype == np.uint8
        assert npz["image"].shape == npz["mask"].shape == npz["pred"].shape == (3, 32, 32)
        assert npz["case_id"].tolist() == [metrics_case := npz["case_id"][0]] * 3
        assert npz["slice_index"].tolist() == [0, 1, 2] and npz["dice"].shape == (3,)
    assert metrics_case in per_case["case_id"].tolist()

    params = run.load_params()
    assert params["model"] == "unet" and params["env"]["torch"] == torch.__version__
    assert {"host", "cpu", "gpu", "python", "spineseg", "git_commit", "device",
            "threads"} <= set(params["env"])

    assert params["precision"] == precision_for(torch.device("cpu"), cfg.amp)

    # The best checkpoint rebuilds without the trainer and reproduces the stored predictions
    # (in the precision the run used).
    model = load_model(run.path)
    with np.load(run.predictions) as npz:
        x = torch.from_numpy(npz["image"].astype(np.float32))[:, None]
        with torch.no_grad(), autocast(torch.device("cpu"), Precision(params["precision"])):
            pred = model(x).float().argmax(1).numpy()
        assert (pred == npz["pred"]).mean() > 0.99  # float16 images: a few pixels may flip

    # A finished run with the same parameters is reused, not retrained, without its last
    # checkpoint too.
    mtime = run.metrics.stat().st_mtime_ns
    again = run_training(cfg)
    assert again == metrics and run.metrics.stat().st_mtime_ns == mtime


def test_keep_last_checkpoint_keeps_the_resumable_state(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, tmp_path / "run", epochs=1, keep_last_checkpoint=True)
    run_training(cfg)
    run = RunFolder(tmp_path / "run")
    state = torch.load(run.checkpoint_last, weights_only=True)
    assert run.is_finished() and state["epoch"] == 1 and len(state["history"]) == 1
    # Asking for more epochs without the kept state trains again from the start.
    run.checkpoint_last.unlink()
    longer = run_training(tiny_config(tiny_data, tmp_path / "run", epochs=2))
    assert longer["epochs_completed"] == 2 and run.load_history()["epoch"].tolist() == [1, 2]
    assert not run.has_checkpoint()


def test_resume_equals_uninterrupted(tiny_data, tmp_path):
    # Warm the volume cache first: a cache miss currently returns float32 images while a hit
    # returns the stored float16 ones, so the very first run would see other inputs.
    warm = tiny_config(tiny_data, tmp_path / "straight", epochs=2)
    prepare_data(warm, model_info(warm.model))
    straight = run_training(tiny_config(tiny_data, tmp_path / "straight", epochs=2))
    run_training(tiny_config(tiny_data, tmp_path / "resumed", epochs=1,
                             keep_last_checkpoint=True))
    resumed = run_training(tiny_config(tiny_data, tmp_path / "resumed", epochs=2))
    drop = {"train_seconds", "test_seconds"}
    assert {k: v for k, v in resumed.items() if k not in drop} == \
        {k: v for k, v in straight.items() if k not in drop}
    a = pd.read_csv(tmp_path / "straight" / "history.csv").drop(columns="epoch_seconds")
    b = pd.read_csv(tmp_path / "resumed" / "history.csv").drop(columns="epoch_seconds")
    pd.testing.assert_frame_equal(a, b)
    with np.load(tmp_path / "straight" / "predictions.npz") as p, \
            np.load(tmp_path / "resumed" / "predictions.npz") as q:
        assert np.array_equal(p["pred"], q["pred"])


def test_resume_with_other_parameters_is_refused(tiny_data, tmp_path):
    run_training(tiny_config(tiny_data, tmp_path / "run", epochs=1))
    with pytest.raises(ConfigError, match=r"lr: 0.0005 -> 0.001"):
        run_training(tiny_config(tiny_data, tmp_path / "run", epochs=2, lr=1e-3))


class _NanAfter(torch.nn.Module):
    """A loss that is finite for ``good`` calls, then NaN."""

    def __init__(self, inner: torch.nn.Module, good: int) -> None:
        super().__init__()
        self.inner, self.good, self.calls = inner, good, 0

    def forward(self, logits, target):
        self.calls += 1
        loss = self.inner(logits, target)
        return loss if self.calls <= self.good or not self.training else loss * float("nan")


def test_non_finite_loss_stops_and_keeps_last_checkpoint(tiny_data, tmp_path, monkeypatch):
    run_training(tiny_config(tiny_data, tmp_path / "run", epochs=1, keep_last_checkpoint=True))
    before = torch.load(tmp_path / "run" / "checkpoint_last.pt", weights_only=True)
    real_build = train_mod.build_loss
    monkeypatch.setattr(train_mod, "build_loss",
                        lambda name, class_weights=None, loss_kwargs=None:
                        _NanAfter(real_build(name, loss_kwargs=loss_kwargs), good=1))
    with pytest.raises(SpinesegError, match=r"unet: non-finite training loss at epoch 2, step 2"):
        run_training(tiny_config(tiny_data, tmp_path / "run", epochs=2))
    after = torch.load(tmp_path / "run" / "checkpoint_last.pt", weights_only=True)
    assert after["epoch"] == 1
    for k, v in before["model"].items():
        assert torch.equal(v, after["model"][k]), k
    assert not RunFolder(tmp_path / "run").is_finished()
    assert math.isfinite(pd.read_csv(tmp_path / "run" / "history.csv")["train_loss"].iloc[-1])


def test_fresh_start_clears_previous_results(tiny_data, tmp_path):
    run_training(tiny_config(tiny_data, tmp_path / "run", epochs=2))
    run_training(tiny_config(tiny_data, tmp_path / "run", epochs=1, resume=False))
    assert RunFolder(tmp_path / "run").load_history()["epoch"].tolist() == [1]


# --- command line ----------------------------------------------------------------------------

def test_train_command(tiny_data, tmp_path, capsys):
    from spineseg_core.cli import main

    assert main(["train", "--profile", "smoke", "--model", "no_such_net"]) == 2
    assert "spineseg train: error: model: unknown model 'no_such_net'" in capsys.readouterr().err
    assert main(["train", "--profile", "smoke", "--data-dir", str(tiny_data), "--out-dir",
                 str(tmp_path / "run"), "--image-size", "32", "--threads", "1", "--no-augment",
                 "--model-kwargs", json.dumps(TINY_UNET)]) == 0
    assert "dice=" in capsys.readouterr().out
    params = RunFolder(tmp_path / "run").load_params()
    assert params["augment"] is False and params["image_size"] == 32


# --- every model -----------------------------------------------------------------------------

def _models():
    from spineseg_core.models import list_models
    return list_models(None)  # the twelve and the context family


@pytest.mark.slow
@pytest.mark.parametrize("model", _models())
def test_every_model_smoke_run(model, tiny_data, tmp_path):
    cfg = resolve_config("smoke", model=model, data_dir=tiny_data, out_dir=tmp_path / "run",
                         image_size=64, batch_size=2, max_train_slices_per_epoch=4, threads=2)
    metrics = run_training(cfg)
    run = RunFolder(tmp_path / "run")
    for name in RunFolder.RESULT_FILES:
        assert (run.path / name).is_file(), name
    assert metrics["model"] == model and metrics["epochs_completed"] == 1
    assert len(run.load_per_class()) == NUM_CLASSES
    assert load_model(run.path).name == model


def test_batch_augmentation_on_cuda_by_default_and_on_the_cpu_when_asked():
    from spineseg_core.data.batch_augment import BatchAugment
    from spineseg_core.training.step import batch_augmentation

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    cfg = resolve_config("smoke", p_blur=0.5)
    assert cfg.gpu_augment is None
    assert batch_augmentation(cfg, cpu) is None
    aug = batch_augmentation(cfg, cuda)
    assert isinstance(aug, BatchAugment) and aug.config.p_blur == 0.5
    assert isinstance(batch_augmentation(resolve_config("smoke", gpu_augment=True), cpu),
                      BatchAugment)
    assert batch_augmentation(resolve_config("smoke", augment=False), cuda) is None
    assert batch_augmentation(resolve_config("smoke", gpu_augment=False), cuda) is None


def test_batched_augmentation_trains_on_the_cpu_when_asked(tiny_data, tmp_path):
    """The GPU's data path (batched augmentation on the device, seeded per epoch) runs in CI:
    recorded in params.json, and resumed runs equal uninterrupted ones on it too."""
    warm = tiny_config(tiny_data, tmp_path / "a")
    prepare_data(warm, model_info(warm.model))  # warm cache: same inputs
    straight = run_training(tiny_config(tiny_data, tmp_path / "a", epochs=2, gpu_augment=True))
    params = RunFolder(tmp_path / "a").load_params()
    assert params["augmentation"] == "batched"
    run_training(tiny_config(tiny_data, tmp_path / "b", epochs=1, gpu_augment=True))
    resumed = run_training(tiny_config(tiny_data, tmp_path / "b", epochs=2, gpu_augment=True))
    assert resumed["dice"] == straight["dice"] and resumed["best_epoch"] == straight["best_epoch"]
    default = run_training(tiny_config(tiny_data, tmp_path / "c", epochs=1))
    assert RunFolder(tmp_path / "c").load_params()["augmentation"] == "slice"
    assert math.isfinite(default["dice"])


def test_every_model_of_a_profile_gets_the_same_budget():
    """Equal budgets: no per-model or per-family epochs, batch or precision, but for the
    listed exceptions (training.budgets)."""
    from spineseg_core.models import list_models
    from spineseg_core.training.budgets import budget_exception
    from spineseg_core.training.config import BUDGET_FIELDS

    budget = {(*(getattr(c, k) for k in BUDGET_FIELDS), c.crop_width)
              for c in (resolve_config("cpu", model=m) for m in list_models()
                        if budget_exception(m, "cpu") is None)}
    assert len(budget) == 1
    assert resolve_config("cpu", model="miniseg", epochs=2).epochs == 2  # the user still wins


# --- parameters as users type them (papermill -p, a shell) -----------------------------------

def test_text_parameters_are_parsed_as_json():
    from spineseg_core.training.config import parse_mapping

    assert parse_mapping("overrides", '{"epochs": 2}') == {"epochs": 2}
    assert parse_mapping("overrides", None) == {} and parse_mapping("overrides", {"a": 1}) == {
        "a": 1}
    cfg = resolve_config("smoke", epochs="3", lr="1e-3", amp="false",
                         model_kwargs='{"base_width": 8}', **parse_mapping(
                             "overrides", '{"max_train_slices_per_epoch": 16}'))
    assert (cfg.epochs, cfg.lr, cfg.amp, cfg.model_kwargs) == (3, 1e-3, False, {"base_width": 8})
    assert cfg.max_train_slices_per_epoch == 16


@pytest.mark.parametrize("value", ['[1, 2]', "epochs=2", 7])
def test_a_bad_overrides_value_is_one_line(value):
    from spineseg_core.training.config import parse_mapping

    with pytest.raises(ConfigError, match=r"^overrides: expected a mapping") as exc:
        parse_mapping("overrides", value)
    assert "\n" not in str(exc.value)


def test_an_override_given_twice_is_named():
    from spineseg_core.training.config import resolve_with_overrides

    with pytest.raises(ConfigError, match=r"^overrides: epochs also given as a parameter"):
        resolve_with_overrides("smoke", '{"epochs": 2}', epochs=3)
    assert resolve_with_overrides("smoke", '{"epochs": 2}', epochs=None).epochs == 2


def test_train_command_reads_json_and_names_a_bad_value(tmp_path, capsys):
    from spineseg_core.cli import main

    assert main(["train", "--profile", "smoke", "--model-kwargs", '{"no_such": 1}',
                 "--out-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("spineseg train: error: model_kwargs:")


@pytest.mark.slow
def test_notebook_text_overrides_and_a_bad_one(tiny_data, tmp_path):
    """``papermill -p overrides '{...}'`` delivers text: it is parsed; a bad value stops the
    notebook with one line naming the parameter, not a traceback."""
    papermill = pytest.importorskip("papermill")
    from pathlib import Path

    notebook = Path(__file__).resolve().parent.parent / "notebooks" / "train.ipynb"
    params = {"model": "unet", "profile": "smoke", "out_dir": str(tmp_path / "run"),
              "data_dir": str(tiny_data),
              "overrides": '{"model_kwargs": {"base_width": 4, "depth": 2}, "image_size": 32, '
                           '"hd95": false}'}
    papermill.execute_notebook(str(notebook), str(tmp_path / "ok.ipynb"), kernel_name="python3",
                               progress_bar=False, parameters=params)
    assert RunFolder(tmp_path / "run").is_finished()
    with pytest.raises(papermill.PapermillExecutionError) as exc:
        papermill.execute_notebook(str(notebook), str(tmp_path / "bad.ipynb"),
                                   kernel_name="python3", progress_bar=False,
                                   parameters={**params, "overrides": '["epochs", 2]'})
    assert exc.value.ename == "ConfigError"
    assert exc.value.traceback == [f"ConfigError: {exc.value.evalue}"]
    assert exc.value.evalue.startswith("overrides: expected a mapping")
