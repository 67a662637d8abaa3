"""One training run, following the paper's protocol: fit, validate, checkpoint, resume.

:func:`run_training` takes a resolved :class:`~spineseg_core.training.config.TrainConfig` and leaves a
complete run folder behind (CONTRIBUTING, "Run folder contract"). Choices the paper leaves open
are documented where they are made:

* Adam at the configured rate, its schedule (:func:`~spineseg_core.training.config.lr_factor`)
  stepped once per optimiser step so that it ends at the run's budget. A budget in steps
  (``steps``) is obeyed exactly: the epochs are ``ceil(steps / steps per epoch)`` and the last
  one stops after the budget's last step; ``history.csv`` records the step count at each
  validation (``step``).
* Three sets (:mod:`spineseg_core.data.bundle`): validation with every metric after each
  epoch (every ``val_every`` epochs) chooses the best checkpoint (highest pooled validation
  Dice); the held-out test set is scored once, by that checkpoint, at the end, and is what
  ``metrics.json``, ``per_class.csv``, ``per_case.csv`` and ``predictions.npz`` hold.
  Validation and test slices are the full field of view: nothing of their masks shapes their
  input.
* Reproducible on the CPU: every generator is seeded, deterministic algorithms are requested,
  the shuffling generator is re-seeded from ``(seed, epoch)`` each epoch and every random state
  is saved per epoch, so an interrupted run resumed from ``checkpoint_last.pt`` ends with the
  same metrics as an uninterrupted one.
* bf16 autocast where the device runs bf16 natively (a CUDA GPU with bf16 units, or a CPU with
  AMX-bf16 or AVX512-BF16: :mod:`~spineseg_core.training.precision`), fp32 elsewhere; channels-last
  tensors; the step itself is :class:`~spineseg_core.training.step.TrainStep`, shared with the
  benchmark. The training loss is summed on the device and its finiteness read every
  :data:`GPU_CHECK_EVERY` steps on a GPU (every step on the CPU, where reading costs nothing),
  so a GPU never waits inside an epoch. A run is resumed only in the precision and
  augmentation path it was trained in (:func:`run_mode`).
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm  # text bars: they go to the terminal (progress_stream)

from spineseg_core.data.prepare import prepare_data
from spineseg_core.envinfo import env_stamp
from spineseg_core.errors import ConfigError, DataError, SpinesegError
from spineseg_core.io import finite_or_none, write_json, write_with
from spineseg_core.losses import build_loss, class_weights_from_frequencies
from spineseg_core.models import build_model, model_info
from spineseg_core.training.config import TrainConfig, lr_factor, planned_epochs, planned_steps
from spineseg_core.training.device import configure_backend, resolve_device
from spineseg_core.training.evaluate import evaluate, write_final_results
from spineseg_core.training.precision import Precision, autocast as precision_autocast, precision_for
from spineseg_core.training.progress import eta_text, progress_stream
from spineseg_core.training.run_folder import RunFolder, default_run_dir
from spineseg_core.training.state import (
    cpu_state_dict,
    load_state,
    rng_state,
    save_state,
    seed_everything,
    set_rng_state,
)
from spineseg_core.training.step import (
    AugmentPath,
    TrainStep,
    augment_path,
    batch_augmentation,
    epoch_generator,
    eval_loader,
    train_loader,
    uses_channels_last,
)

HISTORY_COLUMNS: tuple[str, ...] = ("epoch", "step", "train_loss", "val_loss", "dice", "miou", "fnr",
                                    "fpr", "recall", "dice3d", "bg_recall", "absent_fraction",
                                    "lr", "epoch_seconds")
"""Columns of ``history.csv`` (CONTRIBUTING)."""

RESUMABLE_CHANGES: frozenset[str] = frozenset(
    {"epochs", "resume", "device", "num_workers", "threads", "out_dir", "val_every", "hd95",
     "keep_last_checkpoint"})
"""Parameters that may differ when a run is resumed (they do not change what was learnt)."""

MODE_PARAMETERS: frozenset[str] = frozenset({"amp", "gpu_augment"})
"""Parameters compared on resume by what they make the device do (:func:`run_mode`), not by
value: a checkpoint of ``gpu_augment=True`` from before ``None`` meant "batched on CUDA" still
resumes on the CPU it was trained on."""

GPU_CHECK_EVERY = 50
"""On CUDA, steps between checks of the loss for NaN/inf (each check waits for the device)."""


class NonFiniteLossError(SpinesegError):
    """The training loss became NaN or infinite."""


def _build_loss(cfg: TrainConfig, train_set) -> nn.Module:
    weights = None
    if cfg.loss == "weighted_ce":
        freq = np.zeros(20, dtype=np.float64)
        for vol in train_set.volumes:
            freq += np.bincount(vol.mask.ravel(), minlength=20)[:20]
        weights = class_weights_from_frequencies(freq / max(freq.sum(), 1.0))
    return build_loss(cfg.loss, class_weights=weights, loss_kwargs=cfg.loss_kwargs)


def _scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer,
               total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The run's schedule, stepped after every optimiser step, ending at ``total_steps``."""
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: lr_factor(step, total_steps, cfg.scheduler, cfg.warmup_steps))


def _configure_backend(cfg: TrainConfig, device: torch.device) -> None:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    configure_backend(device)


def run_mode(cfg: TrainConfig, device: torch.device) -> dict[str, str]:
    """What ``cfg`` computes on ``device``: its ``precision`` and its ``augmentation`` path
    (recorded in ``params.json`` and in the checkpoint)."""
    volumetric = model_info(cfg.model).volumetric
    return {"precision": str(precision_for(device, cfg.amp, volumetric=volumetric)),
            "augmentation": str(augment_path(cfg, device))}


def _recorded_mode(state: dict[str, Any], run: RunFolder) -> dict[str, str] | None:
    """The mode a checkpoint was trained in: saved with it, or, for a checkpoint written before
    it was, read from ``params.json`` (precision and device of the same start, with the rule of
    that time: batched augmentation exactly on CUDA); ``None`` when unknown."""
    if "mode" in state:
        return {k: str(v) for k, v in state["mode"].items()}
    try:
        params = run.load_params()
    except DataError:
        return None
    device = (params.get("env") or {}).get("device")
    if "precision" not in params or device is None:
        return None
    saved = state["config"]
    aug = (AugmentPath.NONE if not saved.get("augment", True) else
           AugmentPath.BATCHED if str(device).startswith("cuda") and saved.get("gpu_augment")
           else AugmentPath.SLICE)
    return {"precision": str(params["precision"]), "augmentation": str(aug)}


def _check_mode(recorded: dict[str, str] | None, now: dict[str, str], run: RunFolder,
                device: torch.device) -> None:
    """Refuse to continue a run in another precision or augmentation path than it was trained
    in (e.g. a CPU run resumed on a GPU): its epochs would not be those of one run."""
    if recorded is None or recorded == now:
        return
    was = ", ".join(f"{k} {v}" for k, v in recorded.items())
    would = ", ".join(f"{k} {v}" for k, v in now.items())
    raise ConfigError(f"{run.path}: was trained with {was}; on {device} it would continue with "
                      f"{would}; resume it where it was trained (device, amp, gpu_augment) or "
                      "start over with resume=False")


def _check_resumable(saved: dict[str, Any], cfg: TrainConfig, run: RunFolder) -> None:
    now = cfg.to_dict()
    # A parameter added to TrainConfig after the checkpoint was written counts as its default.
    defaults = TrainConfig().to_dict()
    # amp and gpu_augment are compared by their effect on this device (_check_mode).
    diff = [f"{k}: {saved.get(k, defaults[k])!r} -> {now[k]!r}" for k in now
            if k not in RESUMABLE_CHANGES | MODE_PARAMETERS
            and saved.get(k, defaults[k]) != now[k]]
    if diff:
        raise ConfigError(f"{run.path}: holds a run with other parameters ({'; '.join(diff)}); "
                          "use resume=False to start over or choose another out_dir")


def _history_row(epoch: int, step: int, train_loss: float, val: dict[str, float] | None, val_loss: float,
                 lr: float, seconds: float) -> dict[str, float]:
    val = val or {}
    return {"epoch": epoch, "step": step, "train_loss": train_loss, "val_loss": val_loss,
            **{k: val.get(k, math.nan) for k in ("dice", "miou", "fnr", "fpr", "recall")},
            **{k: val.get(k, math.nan) for k in ("bg_recall", "absent_fraction")},
            "dice3d": val.get("dice3d_mean", math.nan), "lr": lr, "epoch_seconds": seconds}


def _write_history(run: RunFolder, history: list[dict[str, float]]) -> None:
    frame = pd.DataFrame(history, columns=list(HISTORY_COLUMNS))
    write_with(run.history, lambda p: frame.to_csv(p, index=False))


def loss_check_every(device: torch.device) -> int:
    """Steps between reads of the loss's finiteness: every step on the CPU (reading costs
    nothing there), :data:`GPU_CHECK_EVERY` elsewhere (each read waits for the device)."""
    return 1 if device.type == "cpu" else GPU_CHECK_EVERY


def _train_epoch(step: TrainStep, loader: DataLoader, cfg: TrainConfig, epoch: int, *,
                 check_every: int | None = None, max_steps: int | None = None,
                 after_step: Callable[[], None] | None = None,
                 epochs: int | None = None) -> tuple[float, int]:
    """One pass of ``step`` over ``loader``, stopped after ``max_steps`` optimiser steps when
    given (the budget's last, partial epoch), calling ``after_step`` after each (the
    schedule); returns the mean loss and the steps made. Raises on a non-finite loss.

    The loss is summed on the device and the first non-finite step is remembered there; the
    host reads them every ``check_every`` steps (default :func:`loss_check_every`) and once at
    the end, so with a large ``check_every`` the loop never waits for the device in between.
    """
    device = step.device
    check_every = check_every or loss_check_every(device)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    bad_step = torch.full((), -1, device=device, dtype=torch.long)

    def fail(at: int) -> None:
        raise NonFiniteLossError(
            f"model {cfg.model}: non-finite training loss at epoch {epoch}, step {at + 1} "
            f"(lr {cfg.lr}, loss {cfg.loss}); the run folder keeps the checkpoint of the "
            f"last completed epoch")

    steps = 0
    # Seeded per epoch, so a resumed run draws the same artefacts.
    gen = epoch_generator(cfg.seed, epoch, device) if step.augment is not None else None
    bar = tqdm(loader, desc=f"{cfg.model} epoch {epoch}/{epochs or cfg.epochs}", leave=False,
               unit="batch", dynamic_ncols=True, mininterval=2.0, file=progress_stream())
    batches = itertools.islice(bar, max_steps) if max_steps is not None else bar
    for i, batch in enumerate(batches):  # a partial last epoch loads only the batches it uses
        loss = step(batch["image"], batch["mask"], gen)
        if after_step is not None:
            after_step()
        bad_step = torch.where((bad_step < 0) & ~torch.isfinite(loss),
                               torch.full_like(bad_step, i), bad_step)
        if (i + 1) % check_every == 0 and int(bad_step) >= 0:
            fail(int(bad_step))
        loss_sum += loss.to(torch.float64)
        steps += 1
    if int(bad_step) >= 0:
        fail(int(bad_step))
    return float(loss_sum) / max(steps, 1), steps


def run_training(cfg: TrainConfig) -> dict[str, Any]:
    """Train ``cfg.model`` as ``cfg`` says and return the final metrics (``metrics.json``).

    With ``cfg.resume`` an existing ``checkpoint_last.pt`` of the same parameters is continued
    (a finished run with as many epochs, or steps, is returned as is, also when its last
    checkpoint was dropped); without it the folder's results are deleted and the run starts
    over. A finished run deletes its ``checkpoint_last.pt`` unless ``cfg.keep_last_checkpoint``.
    """
    run = RunFolder(default_run_dir(cfg))
    device = resolve_device(cfg.device, cfg.profile)
    _configure_backend(cfg, device)
    mode = run_mode(cfg, device)
    state: dict[str, Any] | None = None
    if not cfg.resume:
        run.clear()
    elif run.has_checkpoint():
        state = load_state(run.checkpoint_last)
        _check_resumable(state["config"], cfg, run)
        done = (state["epoch"] >= cfg.epochs if cfg.steps is None
                else int(state.get("step", -1)) >= cfg.steps)
        if run.is_finished() and done:
            tqdm.write(f"{run.path}: finished run found ({state['epoch']} epochs), reused")
            return run.load_metrics()
        _check_mode(_recorded_mode(state, run), mode, run, device)
    elif run.is_finished():  # finished, its checkpoint_last.pt dropped (keep_last_checkpoint)
        _check_resumable(run.load_params(), cfg, run)
        finished = run.load_metrics()
        if cfg.steps is None:
            done, budget, unit = int(finished.get("epochs_completed") or 0), cfg.epochs, "epochs"
        else:
            done, budget, unit = int(finished.get("steps_completed") or 0), cfg.steps, "steps"
        if done >= budget:
            tqdm.write(f"{run.path}: finished run found ({done} {unit}), reused")
            return finished
        tqdm.write(f"{run.path}: finished after {done} {unit} without its last checkpoint; "
                   f"training again from the start to {budget} {unit}")
        run.clear()
    run.metrics.unlink(missing_ok=True)  # the run is unfinished from here on
    run.path.mkdir(parents=True, exist_ok=True)
    precision = Precision(mode["precision"])
    write_json(run.params, {**cfg.to_dict(), "run_dir": str(run.path), **mode,
                            "env": env_stamp(device)})

    seed_everything(cfg.seed)
    gpu_augment = batch_augmentation(cfg, device)
    data = prepare_data(cfg, model_info(cfg.model), slice_augment=gpu_augment is None)
    if len(data.train) == 0 or len(data.val) == 0 or len(data.test) == 0:
        raise ConfigError(f"data: the split left {len(data.train)} training, "
                          f"{len(data.val)} validation and {len(data.test)} test slices; need "
                          f"at least one of each")
    seed_everything(cfg.seed)
    # a 3D model is scored on each volume alone: it pads it to the depth it trained at
    depth = {"min_depth": data.train.depth} if model_info(cfg.model).volumetric else {}
    model = build_model(cfg.model, **depth, **(cfg.model_kwargs or {})).to(device)
    channels_last = uses_channels_last(cfg)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    write_json(run.model_json, {"model": cfg.model, "build_kwargs": model.init_kwargs(),
                                "image_size": cfg.image_size,
                                "num_params": sum(p.numel() for p in model.parameters())})
    # torch.compile wraps the module for the training steps only; checkpoints, validation and
    # prediction use the plain module, so state-dict keys stay the same either way.
    step_model = torch.compile(model) if cfg.compile else model
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    pin = device.type == "cuda"
    steps_per_epoch = len(train_loader(data.train, cfg, 1, pin))
    n_epochs = planned_epochs(cfg, steps_per_epoch)
    total_steps = planned_steps(cfg, steps_per_epoch)
    sched = _scheduler(cfg, opt, total_steps)
    loss_fn = _build_loss(cfg, data.train).to(device)

    def autocast() -> AbstractContextManager:
        return precision_autocast(device, precision)

    step = TrainStep(step_model, loss_fn, opt, device, precision=precision,
                     channels_last=channels_last, augment=gpu_augment)
    val_loader = eval_loader(data.val, cfg, pin)
    history: list[dict[str, float]] = []
    start_epoch, best_dice, best_epoch, train_seconds, done_steps = 1, -math.inf, 0, 0.0, 0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        # A checkpoint from before per-step schedules counted whole epochs.
        done_steps = int(state.get("step", int(state["epoch"]) * steps_per_epoch))
        sched.load_state_dict({**state["scheduler"], "last_epoch": done_steps})
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_factor(done_steps, total_steps, cfg.scheduler,
                                             cfg.warmup_steps)
        set_rng_state(state["rng"], device)
        history = [dict(r) for r in state["history"]]
        start_epoch = int(state["epoch"]) + 1
        best_dice, best_epoch = float(state["best_dice"]), int(state["best_epoch"])
        train_seconds = float(state["train_seconds"])
        _write_history(run, history)

    out = progress_stream()  # the terminal, also from a papermill kernel
    for epoch in tqdm(range(start_epoch, n_epochs + 1), desc=f"{cfg.model} ({cfg.profile})",
                      initial=start_epoch - 1, total=n_epochs, unit="epoch",
                      dynamic_ncols=True, file=out):
        t0 = time.perf_counter()
        lr = opt.param_groups[0]["lr"]
        loader = train_loader(data.train, cfg, epoch, pin)
        train_loss, made = _train_epoch(step, loader, cfg, epoch,
                                        max_steps=total_steps - done_steps,
                                        after_step=sched.step, epochs=n_epochs)
        done_steps += made
        val, val_loss = None, math.nan
        if epoch % cfg.val_every == 0 or epoch == n_epochs:
            res = evaluate(model, val_loader, device, loss_fn, autocast=autocast,
                           channels_last=channels_last)
            val, val_loss = res.acc.summary(with_hd95=False), res.loss
            score = val["dice"] if math.isfinite(val["dice"]) else -math.inf
            if score > best_dice or best_epoch == 0:
                best_dice, best_epoch = score, epoch
                write_with(run.checkpoint_best,  # calls the lambda at once, in this epoch
                           lambda p: save_file(cpu_state_dict(model), str(p),
                                               metadata={"model": cfg.model,
                                                         "epoch": str(epoch)}))  # noqa: B023
        seconds = time.perf_counter() - t0
        train_seconds += seconds
        history.append(_history_row(epoch, done_steps, train_loss, val, val_loss, lr, seconds))
        _write_history(run, history)
        save_state(run.checkpoint_last, {
            "config": cfg.to_dict(), "epoch": epoch, "step": done_steps,
            "model": cpu_state_dict(model),
            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "rng": rng_state(device), "mode": mode, "best_dice": best_dice, "best_epoch": best_epoch,
            "train_seconds": train_seconds, "history": history})
        shown = f"dice {val['dice']:.4f} (best {best_dice:.4f} @ {best_epoch})" if val else ""
        eta = eta_text(train_seconds / len(history), n_epochs - epoch)
        tqdm.write(f"{cfg.model} epoch {epoch}/{n_epochs}: train_loss {train_loss:.4f} "
                   f"val_loss {val_loss:.4f} {shown} [{seconds:.1f} s{', ' + eta if eta else ''}]",
                   file=out)

    metrics = _finish(run, cfg, model, data, loss_fn, device, autocast, pin,
                      best_epoch=best_epoch, best_val_dice=best_dice,
                      train_seconds=train_seconds, epochs_completed=len(history),
                      steps_completed=done_steps)
    if not cfg.keep_last_checkpoint:  # resuming is over; the best weights stay
        run.checkpoint_last.unlink(missing_ok=True)
    return metrics


def _finish(run: RunFolder, cfg: TrainConfig, model: nn.Module, data, loss_fn: nn.Module,
            device: torch.device, autocast: Callable[[], AbstractContextManager], pin: bool, *,
            best_epoch: int, best_val_dice: float, train_seconds: float,
            epochs_completed: int, steps_completed: int) -> dict[str, Any]:
    """Score the best checkpoint (chosen on validation) on the held-out test set, once; write
    the result files, then ``metrics.json`` last."""
    model.load_state_dict(load_file(str(run.checkpoint_best), device="cpu"))
    t0 = time.perf_counter()
    res = evaluate(model, eval_loader(data.test, cfg, pin), device, loss_fn, autocast=autocast,
                   channels_last=uses_channels_last(cfg), keep_slices=True)
    spacing = {v.case_id: tuple(float(s) for s in v.spacing) for v in data.test_volumes}
    summary = write_final_results(run, res, spacing, with_hd95=cfg.hd95)
    metrics = {
        **finite_or_none(summary), "evaluated_on": "test", "best_epoch": best_epoch,
        "val_dice": best_val_dice if math.isfinite(best_val_dice) else None,
        "epochs_completed": epochs_completed, "steps_completed": steps_completed,
        "train_seconds": round(train_seconds, 3),
        "test_seconds": round(time.perf_counter() - t0, 3),
        "n_train_cases": len(data.train_ids), "n_train_slices": data.train.n_slices,
        "steps_per_epoch": len(train_loader(data.train, cfg, 1, pin)),
        "n_val_cases": len(data.val_ids),
        "n_test_cases": len(res.acc.case_ids), "n_test_slices": res.n_slices,
        "params": sum(p.numel() for p in model.parameters()),
        "model": cfg.model, "profile": str(cfg.profile), "seed": cfg.seed, "fold": cfg.fold,
    }
    write_json(run.metrics, metrics)
    tqdm.write(f"{cfg.model}: best epoch {best_epoch} (validation), test " +
               json.dumps({k: round(v, 4) for k, v in summary.items() if math.isfinite(v)}),
               file=progress_stream())
    return metrics
