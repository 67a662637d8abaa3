"""One configuration for every entry point: the per-model budget exceptions
(:mod:`spineseg_core.training.budgets`) are part of the resolved configuration, so the
notebook, ``spineseg train``, ``study``, ``bench`` and ``efficiency`` train and measure a model
with the same values; MiniSeg's fp32 safeguard holds on the CPU's bf16 path."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from _tiny_data import make_tiny_dataset
from spineseg_core.cli import main
from spineseg_core.errors import ConfigError
from spineseg_core.measure import speed
from spineseg_core.measure.efficiency import efficiency_table
from spineseg_core.training import config, loop as train_mod
from spineseg_core.training.budgets import BUDGET_EXCEPTIONS, budget_exception
from spineseg_core.training.config import BUDGET_FIELDS, resolve_config, resolve_with_overrides

MODELS = ("danet", "miniseg", "unet3d")
FIELDS = (*BUDGET_FIELDS, "model_kwargs")
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "train.ipynb"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPINESEG_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def resolved(monkeypatch) -> list[config.TrainConfig]:
    """Every configuration resolve_config validates from now on (whoever calls it)."""
    seen: list[config.TrainConfig] = []
    real = config._check_names

    def spy(cfg: config.TrainConfig) -> None:
        real(cfg)
        seen.append(cfg)

    monkeypatch.setattr(config, "_check_names", spy)
    return seen


def budget(cfg: config.TrainConfig) -> dict:
    return {k: getattr(cfg, k) for k in FIELDS}


def _cell(tag: str | None = None, contains: str | None = None) -> str:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    return next("".join(c["source"]) for c in cells if c["cell_type"] == "code"
                and (tag is None or tag in c.get("metadata", {}).get("tags", []))
                and (contains is None or contains in "".join(c["source"])))


def notebook_config(profile: str, model: str) -> config.TrainConfig:
    """The training notebook's own cells: its parameters (as papermill injects them), then
    the cell that resolves them."""
    from spineseg_core.training.run_folder import RunFolder, default_run_dir

    ns: dict = {}
    exec(_cell(tag="parameters"), ns)  # noqa: S102 - the notebook's own code
    ns.update(model=model, profile=profile, resolve_with_overrides=resolve_with_overrides,
              RunFolder=RunFolder, default_run_dir=default_run_dir, pd=pd,
              display=lambda *a, **k: None, print=lambda *a, **k: None)
    exec(_cell(contains="resolve_with_overrides("), ns)  # noqa: S102
    return ns["cfg"]


def test_every_entry_point_resolves_a_model_alike(resolved, monkeypatch, tmp_path):
    profile = "cpu"
    direct = {m: budget(resolve_config(profile, model=m)) for m in MODELS}
    # The exceptions themselves, as the deviations table lists them.
    assert direct["danet"]["model_kwargs"] == {"output_stride": 8}
    assert direct["miniseg"]["amp"] is False and direct["unet3d"]["batch_size"] == 1
    assert direct["unet3d"]["model_kwargs"] is None and direct["danet"]["amp"] is True

    via: dict[str, dict[str, dict]] = {m: {} for m in MODELS}
    for m in MODELS:
        via[m]["notebook"] = budget(notebook_config(profile, m))

    trained: list[config.TrainConfig] = []
    monkeypatch.setattr(train_mod, "run_training", lambda cfg: trained.append(cfg) or {})
    for m in MODELS:
        assert main(["train", "--profile", profile, "--model", m,
                     "--out-dir", str(tmp_path / m)]) == 0
        via[m]["spineseg train"] = budget(trained[-1])

    resolved.clear()
    assert main(["study", "--profile", profile, "--models", *MODELS, "--runs-dir",
                 str(tmp_path / "runs"), "--dry-run"]) == 0
    for m in MODELS:
        planned = {json.dumps(budget(c), sort_keys=True, default=str)
                   for c in resolved if c.model == m}
        assert len(planned) == 1
        via[m]["spineseg study"] = json.loads(planned.pop())

    benched: dict[str, config.TrainConfig] = {}
    monkeypatch.setattr(speed, "bench_model",
                        lambda name, cfg, *a, **k: benched.setdefault(name, cfg) and {})
    speed.bench_table(profile, ["danet", "miniseg"], device="cpu", with_data=False)
    resolved.clear()
    efficiency_table(["danet", "miniseg"], 64, measure_size=32, batch=None, profile=profile,
                     with_throughput=False)
    effective = {c.model: c for c in resolved}
    for m in ("danet", "miniseg"):  # bench and efficiency measure slice models only
        via[m]["spineseg bench"] = budget(benched[m])
        via[m]["spineseg efficiency"] = budget(effective[m])
    for entry in (speed.bench_table, efficiency_table):
        with pytest.raises(ConfigError, match="unet3d is fed whole volumes"):
            entry(profile, ["unet3d"]) if entry is speed.bench_table else entry(["unet3d"])

    for m in MODELS:
        for entry, values in via[m].items():
            values = {k: str(v) if k == "scheduler" else v for k, v in values.items()}
            want = {k: str(v) if k == "scheduler" else v for k, v in direct[m].items()}
            assert values == want, (m, entry)


def test_efficiency_builds_and_times_the_model_as_it_trains(resolved):
    table = efficiency_table(["danet", "miniseg"], 64, measure_size=32, batch=None,
                             profile="cpu", with_throughput=False)
    precision = dict(zip(table["model"], table["precision"]))
    assert precision["miniseg"] == "fp32"
    stride8 = efficiency_table(["danet"], 64, batch=2, profile="cpu", with_throughput=False)
    stride32 = efficiency_table(["danet"], 64, batch=2, with_throughput=False)
    assert stride8["gmacs_880"].iloc[0] > 2 * stride32["gmacs_880"].iloc[0]  # dilated: more


def test_the_users_explicit_values_win_and_are_recorded():
    assert resolve_config("cpu", model="miniseg", amp=True).amp is True
    assert resolve_config("cpu", model="unet3d", batch_size=3).batch_size == 3
    own = resolve_config("cpu", model="danet", model_kwargs='{"output_stride": 32}')
    assert own.model_kwargs == {"output_stride": 32}
    # model_kwargs merge key by key: a width of one's own keeps the stride exception
    both = resolve_config("cpu", model="danet", model_kwargs={"key_channels": 32})
    assert both.model_kwargs == {"output_stride": 8, "key_channels": 32}
    assert both.to_dict()["model_kwargs"] == {"output_stride": 8, "key_channels": 32}
    cfg = resolve_with_overrides("cpu", '{"batch_size": 2}', model="unet3d")
    assert cfg.batch_size == 2


def test_miniseg_trains_in_fp32_on_every_profile():
    for profile in ("smoke", "cpu", "paper"):
        assert budget_exception("miniseg", profile).params == {"amp": False}
        assert resolve_config(profile, model="miniseg", phantom=profile == "paper").amp is False
    assert all(e.reason for e in BUDGET_EXCEPTIONS)
    assert budget_exception("unet", "cpu") is None and budget_exception("danet", "paper") is None


@pytest.mark.slow
def test_miniseg_smoke_run_on_the_bf16_path_keeps_every_loss_finite(tmp_path):
    """MiniSeg's smoke run where the CPU runs bf16 natively (AMX or AVX512-BF16; elsewhere
    ``amp`` means fp32 anyway). In bf16 autocast torch 2.13's weight gradient of its dilated
    depthwise convolutions is wrong (``scripts/dwconv_bf16_probe.py``) and its loss became
    non-finite within these 6 epochs (48 steps) in 3 of 4 tries on this data and the smoke
    phantom (at epoch 1, 2 or 3); its budget exception trains it in fp32, and every loss stays
    finite."""
    data = make_tiny_dataset(tmp_path / "data", cases=8, slices=8, size=64)
    cfg = resolve_config("smoke", model="miniseg", data_dir=data, out_dir=tmp_path / "run",
                         epochs=6, threads=1)
    assert cfg.amp is False
    train_mod.run_training(cfg)
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert len(history) == 6 and history["train_loss"].map(math.isfinite).all()
    assert history["val_loss"].map(math.isfinite).all()
    params = json.loads((tmp_path / "run" / "params.json").read_text())
    assert params["precision"] == "fp32" and params["amp"] is False


def test_a_recorded_run_is_rebuilt_as_it_was_made(tmp_path):
    """A run made before (or without) its model's exception keeps its own values when its
    configuration is read back from params.json (hard cases rescore it so)."""
    from spineseg_core.study.hard_cases import run_config
    from spineseg_core.training.run_folder import RunFolder

    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    made = {**resolve_config("cpu", model="danet", exceptions=False).to_dict()}
    assert made["model_kwargs"] is None  # DANet at its default stride 32
    run.params.write_text(json.dumps(made))
    assert run_config(run).model_kwargs is None
    assert resolve_config("cpu", model="danet").model_kwargs == {"output_stride": 8}


def test_the_gpu_check_resolves_a_model_as_spineseg_train_does(monkeypatch, tmp_path):
    """scripts/gpu_check.py times each model on the paper profile with the values the paper
    profile's runs get: DANet's stride, MiniSeg's fp32 and the 3D U-Net's batch of 1."""
    import importlib.util

    import torch

    script = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("_gpu_check_budgets", script)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    trained: list[config.TrainConfig] = []
    monkeypatch.setattr(train_mod, "run_training", lambda cfg: trained.append(cfg) or {})
    for m in MODELS:
        assert main(["train", "--profile", "paper", "--model", m, "--phantom", "--device", "cpu",
                     "--out-dir", str(tmp_path / m)]) == 0
        checked = gpu_check.model_config(m, 880, torch.device("cpu"))
        assert budget(checked) == budget(trained[-1]), m
    assert budget(gpu_check.model_config("unet3d", 880, torch.device("cpu")))["batch_size"] == 1
    assert budget(gpu_check.model_config("miniseg", 880, torch.device("cpu")))["amp"] is False
