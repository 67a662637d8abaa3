"""The budget in optimiser steps (issue 24, part 1): the schedule, the profiles, and a run that
makes exactly its budget's steps, resumed exactly."""

from __future__ import annotations

import pandas as pd
import pytest

from _tiny_data import make_tiny_dataset
from spineseg_core.data.prepare import prepare_data
from spineseg_core.errors import ConfigError
from spineseg_core.models import model_info
from spineseg_core.training import loop as train_mod
from spineseg_core.training.config import CPU_STEPS, lr_factor, planned_epochs, planned_steps, resolve_config
from spineseg_core.training.loop import run_training


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "data")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPINESEG_CACHE", str(tmp_path / "cache"))


def _cfg(data_dir, out_dir, **kw):
    values = dict(data_dir=data_dir, out_dir=out_dir, image_size=32, batch_size=4,
                  model_kwargs={"base_width": 4, "depth": 2}, threads=1, hd95=False)
    return resolve_config("smoke", **{**values, **kw})


def test_cosine_and_warm_up_by_hand():
    assert [round(lr_factor(s, 4, "cosine"), 4) for s in range(4)] == [1.0, 0.8536, 0.5, 0.1464]
    # Two warm-up steps, then the half cosine over the remaining four.
    assert [round(lr_factor(s, 6, "cosine", 2), 4) for s in range(6)] == \
        [0.5, 1.0, 1.0, 0.8536, 0.5, 0.1464]
    assert [lr_factor(s, 5, "constant", 2) for s in range(4)] == [0.5, 1.0, 1.0, 1.0]
    assert lr_factor(10, 10, "cosine") == 0.0


def test_profiles_budget_in_steps_and_an_epoch_budget_on_request():
    cpu = resolve_config("cpu")
    assert (cpu.steps, str(cpu.scheduler), CPU_STEPS) == (5880, "cosine", 5880)
    assert resolve_config("paper", phantom=True).steps == 120 * 435
    assert resolve_config("cpu", epochs=2).steps is None  # an epoch budget replaces it
    assert resolve_config("cpu", epochs=2, steps=10).steps == 10
    assert planned_epochs(cpu, 98) == 60 and planned_epochs(cpu, 97) == 61
    assert planned_steps(cpu, 97) == 5880
    assert planned_steps(resolve_config("cpu", epochs=3), 97) == 291
    for model in ("unet", "unet_25d3", "unet3d"):  # 2D, 2.5D, 3D: the same steps
        assert resolve_config("cpu", model=model).steps == CPU_STEPS
    with pytest.raises(ConfigError, match="warmup_steps: expected fewer than the budget's 10"):
        resolve_config("cpu", steps=10, warmup_steps=10)
    with pytest.raises(ConfigError, match="steps: expected a positive integer"):
        resolve_config("cpu", steps=0)


def test_a_run_makes_exactly_its_steps_and_resumes_exactly(tiny_data, tmp_path, monkeypatch):
    warm = _cfg(tiny_data, tmp_path / "probe", epochs=1)
    prepare_data(warm, model_info(warm.model))  # warm the cache
    per_epoch = run_training(_cfg(tiny_data, tmp_path / "probe", epochs=1))["steps_per_epoch"]
    assert per_epoch >= 2
    budget = per_epoch + 1  # the second epoch is partial
    cfg = _cfg(tiny_data, tmp_path / "straight", steps=budget)
    calls = []
    real_step = train_mod.TrainStep.__call__

    def counting(self, *a, **k):
        calls.append(self.opt.param_groups[0]["lr"])
        return real_step(self, *a, **k)

    monkeypatch.setattr(train_mod.TrainStep, "__call__", counting)
    straight = run_training(cfg)
    assert len(calls) == budget and straight["steps_completed"] == budget
    assert straight["epochs_completed"] == 2
    assert calls == pytest.approx([cfg.lr * lr_factor(s, budget, "constant") for s in
                                   range(budget)])
    hist = pd.read_csv(tmp_path / "straight" / "history.csv")
    assert hist["step"].tolist() == [per_epoch, budget]
    assert hist["dice"].notna().all()  # validated every epoch and at the end

    # Cosine, interrupted after its first epoch and resumed: the same run.
    cos = dict(steps=budget, scheduler="cosine", warmup_steps=2)
    whole = run_training(_cfg(tiny_data, tmp_path / "whole", **cos))
    real_epoch = train_mod._train_epoch

    def stop_at_two(step, loader, cfg, epoch, **kw):
        if epoch == 2:
            raise KeyboardInterrupt
        return real_epoch(step, loader, cfg, epoch, **kw)

    monkeypatch.setattr(train_mod, "_train_epoch", stop_at_two)
    with pytest.raises(KeyboardInterrupt):
        run_training(_cfg(tiny_data, tmp_path / "cut", **cos))
    monkeypatch.setattr(train_mod, "_train_epoch", real_epoch)
    calls.clear()
    resumed = run_training(_cfg(tiny_data, tmp_path / "cut", **cos))
    assert calls == pytest.approx([cfg.lr * lr_factor(s, budget, "cosine", 2)
                                   for s in range(per_epoch, budget)])
    drop = {"train_seconds", "test_seconds"}
    assert {k: v for k, v in resumed.items() if k not in drop} == \
        {k: v for k, v in whole.items() if k not in drop}
    a = pd.read_csv(tmp_path / "whole" / "history.csv").drop(columns="epoch_seconds")
    b = pd.read_csv(tmp_path / "cut" / "history.csv").drop(columns="epoch_seconds")
    pd.testing.assert_frame_equal(a, b)
    assert a["lr"].tolist() == pytest.approx([cfg.lr / 2, cfg.lr])  # warm-up, then the cosine


def test_table_d_states_the_step_budget():
    from spineseg_core.report.deviations import deviations

    row = next(d for d in deviations() if d.aspect == "Budget and learning-rate schedule")
    assert f"{CPU_STEPS} on the cpu profile, provisional until the budget seed;" in row.ours
    assert "cosine decay to 0 at the budget" in row.ours and "3D U-Net" in row.reason


def test_table_d_follows_the_budget_seed():
    """The budget's status in Table D is the plateau labels' (study.plateau.budget_verdict)."""
    from spineseg_core.models import list_models
    from spineseg_core.report.deviations import budget_status

    twelve = list_models()

    def labels(n_plateaued, n_not):
        return pd.DataFrame({"model": twelve[:n_plateaued + n_not],
                             "label": ["plateaued"] * n_plateaued + ["not plateaued"] * n_not})

    assert budget_status(labels(2, 1)) == (
        f"{CPU_STEPS} on the cpu profile, provisional until the budget seed; 2 of the 3 of the "
        "12 models it has labelled so far plateaued")
    assert budget_status(labels(11, 1)) == (
        f"{CPU_STEPS} on the cpu profile, kept: 11 of the 12 models the budget seed measured "
        "plateaued at it")
    # raised once (budget.json): the new budget, the old one and why; final whatever follows
    raised = {"steps": 2 * CPU_STEPS, "raised_from": CPU_STEPS, "reason": "3 did not plateau."}
    assert budget_status(labels(1, 0), raised) == (
        f"{2 * CPU_STEPS} on the cpu profile, raised once from {CPU_STEPS} because 3 did not "
        "plateau; 1 of the 1 models the budget seed has labelled at it so far plateaued")
    assert budget_status(labels(1, 3), raised).endswith(
        "; final (the budget is raised once): 1 of the 4 models the budget seed measured "
        "plateaued at it, so fewer than 10 of the 12 can plateau at it and the book names those "
        "that do not")
    assert budget_status(labels(10, 2), raised).endswith(
        "; final (the budget is raised once): 10 of the 12 models the budget seed measured "
        "plateaued at it")
    assert budget_status(None, raised) == (f"{2 * CPU_STEPS} on the cpu profile, raised once "
                                           f"from {CPU_STEPS} because 3 did not plateau")
    # labels aggregated before the raise are the old budget's: they say nothing of the new one
    stale = labels(1, 3).assign(steps=CPU_STEPS)
    assert budget_status(stale, raised) == budget_status(None, raised)
    assert budget_status(labels(1, 3)).endswith("to be raised once: only 1 of the 4 models the "
                                                "budget seed measured plateaued at it")
    # a raised budget is the seed's runs' (the pinned code keeps CPU_STEPS)
    assert budget_status(labels(11, 1).assign(steps=5880)).startswith(
        "5880 on the cpu profile, kept:")


def test_the_study_plans_a_step_budget_without_an_epoch_target(tmp_path):
    from spineseg_core.commands.study import epoch_target
    from spineseg_core.study.plateau import HALF_VARIANT, half_steps
    from spineseg_core.study.runner import plan_study

    assert epoch_target(resolve_config("cpu")) is None
    assert epoch_target(resolve_config("cpu", epochs=4)) == 4
    half = resolve_config("cpu", steps=half_steps(CPU_STEPS))
    assert (half.steps, epoch_target(half)) == (2940, None)
    plan = plan_study("cpu", ["unet"], [0], [0], tmp_path, variant=HALF_VARIANT,
                      epochs_of=lambda spec: epoch_target(half))
    assert plan[0].spec.epochs is None and plan[0].run_dir == tmp_path / "cpu-half/unet/seed_0/fold_0"


def test_a_partial_last_epoch_loads_only_the_batches_it_trains_on():
    import torch

    from spineseg_core.training import loop as train_mod
    from spineseg_core.training.config import resolve_config

    class Counting:
        """A loader that counts the batches taken from it."""

        def __init__(self, n: int) -> None:
            self.n, self.taken = n, 0

        def __len__(self) -> int:
            return self.n

        def __iter__(self):
            for _ in range(self.n):
                self.taken += 1
                yield {"image": torch.zeros(1), "mask": torch.zeros(1)}

    class Step:
        device = torch.device("cpu")
        augment = None

        def __call__(self, x, y, gen):
            return torch.tensor(0.5)

    cfg = resolve_config("smoke", model="unet")
    loader = Counting(10)
    loss, steps = train_mod._train_epoch(Step(), loader, cfg, 1, max_steps=3)
    assert (steps, loader.taken, loss) == (3, 3, 0.5)
    full = Counting(4)
    assert train_mod._train_epoch(Step(), full, cfg, 1)[1] == 4 and full.taken == 4
