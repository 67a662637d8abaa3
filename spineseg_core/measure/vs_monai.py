"""The project side by side with MONAI, in one process: two networks and the Dice metric.

* **Networks.** Our ``unet`` and ``attention_unet`` against MONAI's ``UNet`` and
  ``AttentionUnet`` given the same width at each resolution (:func:`monai_twin`), trained with
  the same :class:`~spineseg_core.training.step.TrainStep` on the same batch. MONAI's blocks
  are not ours, so the MACs differ: the fair speed figure is achieved FLOP/s
  (``FlopCounterMode`` per step), beside
  the raw images/s.
* **Metric.** Our confusion-matrix Dice (one ``bincount``) against MONAI's ``DiceMetric``
  (``include_background=False``, one-hot inputs) on the same 20-class spine-like volume pair
  (:func:`spine_like_pair`): the values must agree wherever both are defined, and the time is
  compared. MONAI is timed on one-hot tensors built beforehand (its input format), i.e. the
  one-hot encoding is not charged to it.

MONAI is the optional ``bench`` extra; it is imported here only inside functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from spineseg_core import metrics as M
from spineseg_core.errors import ConfigError
from spineseg_core.labels import NUM_CLASSES
from spineseg_core.measure.efficiency import count_macs
from spineseg_core.measure.timing import (
    BenchSettings,
    backend_like_trainer,
    bench_loss,
    model_throughput,
    random_batch,
    timed,
    train_step_flops,
)
from spineseg_core.models import build_model
from spineseg_core.training.config import DeviceChoice, resolve_config
from spineseg_core.training.device import resolve_device
from spineseg_core.training.precision import precision_for
from spineseg_core.training.step import TrainStep

MONAI_COLUMNS: tuple[str, ...] = (
    "comparison", "ours", "monai", "device", "size", "batch", "params_ours", "params_monai",
    "gmacs_ours", "gmacs_monai", "img_s_ours", "img_s_monai", "img_s_ratio", "gflop_s_ours",
    "gflop_s_monai", "gflop_s_ratio", "seconds_ours", "seconds_monai", "speed_ratio",
    "max_abs_diff", "n_compared", "precision", "differences")
"""Columns of :func:`monai_comparison`: one row per network pair, one for the metric. Ratios
are ours / MONAI for rates (``img_s_ratio``, ``gflop_s_ratio``) and MONAI / ours for times
(``speed_ratio``), so above 1 means the project is faster."""

TWIN_DIFFERENCES: dict[str, str] = {
    "unet": ("MONAI UNet, channels 64-128-256-512-512-512, strides 1-2-2-2-2, "
             "num_res_units=0, BatchNorm+ReLU: same width per resolution (64 at full size ... "
             "512 at 1/16), but one 3x3 conv per level (ours two), strided-conv downsampling "
             "(ours max-pool), transposed-conv upsampling (ours bilinear + double conv), "
             "an extra 512 conv at the bottom"),
    "attention_unet": ("MONAI AttentionUnet, channels 64-128-256-512-1024, strides 2-2-2-2: "
                       "double conv blocks and additive gates as ours, but strided-conv "
                       "downsampling (ours max-pool), 3x3 transposed-conv upsampling (ours "
                       "nearest + 3x3 conv), gate inner width C/2 without the psi BatchNorm"),
}
"""What differs between each of our networks and its MONAI twin."""


def _require_monai() -> None:
    try:
        import monai  # noqa: F401
    except ImportError:
        raise ConfigError("MONAI is not installed: it is the optional 'bench' extra "
                          "(pip install -e '.[bench]')") from None


def monai_twin(name: str, in_channels: int = 1, num_classes: int = NUM_CLASSES) -> nn.Module:
    """MONAI's network closest to our ``name`` (``unet`` or ``attention_unet``); see
    :data:`TWIN_DIFFERENCES` for what still differs."""
    _require_monai()
    from monai.networks.nets import AttentionUnet, UNet

    if name == "unet":
        net: nn.Module = UNet(spatial_dims=2, in_channels=in_channels, out_channels=num_classes,
                              channels=(64, 128, 256, 512, 512, 512), strides=(1, 2, 2, 2, 2),
                              num_res_units=0, act="RELU", norm="BATCH")
    elif name == "attention_unet":
        net = AttentionUnet(spatial_dims=2, in_channels=in_channels, out_channels=num_classes,
                            channels=(64, 128, 256, 512, 1024), strides=(2, 2, 2, 2))
    else:
        raise ConfigError(f"no MONAI twin for {name!r}; expected one of "
                          f"{', '.join(TWIN_DIFFERENCES)}")
    net.in_channels = in_channels  # what efficiency.count_macs reads
    return net


def spine_like_pair(slices: int, size: int = 880, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``(reference, prediction)`` pair of uint8 label volumes ``(slices, size, size)``.

    The reference stacks the 19 foreground labels as bands of random height and depth per
    slice, fewer levels on lateral slices (so some classes are absent from some slices, and
    at small sizes from the whole volume); the prediction is the reference shifted by a few
    pixels with 1 % of the voxels relabelled at random.
    """
    rng = np.random.default_rng(seed)
    ref = np.zeros((slices, size, size), dtype=np.uint8)
    order = (1, 11, 2, 12, 3, 13, 4, 14, 5, 15, 6, 16, 7, 17, 8, 18, 9, 19, 10)  # S, L5/S, L5...
    for s in range(slices):
        lateral = abs(s - (slices - 1) / 2) / (slices / 2)
        n_levels = int(round(len(order) * (1 - 0.6 * lateral)))
        bottom = int(size * rng.uniform(0.85, 0.95))
        front = int(size * rng.uniform(0.3, 0.4))
        for label in order[:n_levels]:
            height = int(rng.integers(10, 30) if label >= 11 else rng.integers(30, 55))
            depth = int(rng.integers(int(size * 0.15), int(size * 0.22)))
            top = max(bottom - height, 0)
            ref[s, top:bottom, front:front + depth] = label
            bottom = top
            front += int(rng.integers(-8, 9))
    shift = tuple(int(v) for v in rng.integers(-4, 5, size=2))
    pred = np.roll(ref, shift, axis=(1, 2))
    noise = rng.random(ref.shape) < 0.01
    pred[noise] = rng.integers(0, NUM_CLASSES, size=int(noise.sum()), dtype=np.uint8)
    return torch.from_numpy(ref), torch.from_numpy(pred)


def ours_dice(pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-class Dice ``(C,)`` of the project: confusion matrix -> counts -> scores."""
    return M.scores(M.counts_from_confusion(M.confusion_matrix(pred, ref)))["dice"]


def metric_comparison(slices: int = 12, size: int = 880, repeats: int = 3,
                      seed: int = 0) -> dict[str, Any]:
    """Our Dice against MONAI's ``DiceMetric`` on :func:`spine_like_pair`.

    Returns ``dice_ours`` and ``dice_monai`` (classes 1..19, NaN where undefined), the max
    absolute difference over classes both define, how many those are, and the median seconds
    of each (MONAI given one-hot tensors prepared beforehand).
    """
    _require_monai()
    from monai.metrics import DiceMetric

    ref, pred = spine_like_pair(slices, size, seed)

    def onehot(v: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(v.long(), NUM_CLASSES).movedim(-1, 0)[None].bool()

    oh_pred, oh_ref = onehot(pred), onehot(ref)
    metric = DiceMetric(include_background=False, reduction="none")

    def monai_fn() -> torch.Tensor:
        metric.reset()
        return metric(oh_pred, oh_ref)[0]

    t_ours, d_ours = timed(lambda: ours_dice(pred, ref), repeats)
    t_monai, d_monai = timed(monai_fn, repeats)
    d_ours = d_ours[1:].double()
    d_monai = d_monai.double()
    both = ~torch.isnan(d_ours) & ~torch.isnan(d_monai)
    diff = float((d_ours[both] - d_monai[both]).abs().max()) if bool(both.any()) else float("nan")
    return dict(dice_ours=d_ours, dice_monai=d_monai, max_abs_diff=diff,
                n_compared=int(both.sum()), seconds_ours=t_ours, seconds_monai=t_monai,
                shape=tuple(ref.shape))


def _network_row(name: str, size: int, batch: int, device: torch.device, loss: str,
                 settings: BenchSettings, channels_last: bool, amp: bool,
                 lr: float) -> dict[str, Any]:
    sides: dict[str, dict[str, float]] = {}
    precision = precision_for(device, amp)  # one device, one setting: the same for both sides
    makers: dict[str, Callable[[], nn.Module]] = {
        "ours": lambda: build_model(name), "monai": lambda: monai_twin(name)}
    for side, make in makers.items():
        torch.manual_seed(0)
        model = make()
        loss_fn = bench_loss(loss)
        flops = train_step_flops(model, loss_fn, size, batch, device=device)
        step = TrainStep.create(model, loss_fn, device, channels_last=channels_last,
                                precision=precision, lr=lr)
        x, y = random_batch(batch, size, device)
        train_s, _ = model_throughput(step, x, y, settings)
        sides[side] = dict(params=sum(p.numel() for p in model.parameters()),
                           gmacs=count_macs(model, size) / 1e9, img_s=batch / train_s,
                           gflop_s=flops / train_s / 1e9)
        del step, model
    o, m = sides["ours"], sides["monai"]
    twin = "monai.networks.nets." + ("UNet" if name == "unet" else "AttentionUnet")
    return dict(comparison="network training step", ours=name, monai=twin, device=str(device),
                size=size, batch=batch, params_ours=o["params"], params_monai=m["params"],
                gmacs_ours=o["gmacs"], gmacs_monai=m["gmacs"], img_s_ours=o["img_s"],
                img_s_monai=m["img_s"], img_s_ratio=o["img_s"] / m["img_s"],
                gflop_s_ours=o["gflop_s"], gflop_s_monai=m["gflop_s"],
                gflop_s_ratio=o["gflop_s"] / m["gflop_s"], precision=str(precision),
                differences=TWIN_DIFFERENCES[name])


def monai_comparison(profile: str = "cpu", *, size: int | None = None, batch: int | None = None,
                     device: DeviceChoice | str = DeviceChoice.AUTO,
                     settings: BenchSettings | None = None,
                     networks: tuple[str, ...] = ("unet", "attention_unet"),
                     metric_slices: int = 12, metric_size: int = 880,
                     metric_repeats: int = 3) -> pd.DataFrame:
    """The side-by-side table (:data:`MONAI_COLUMNS`): each network pair at the profile's size
    and batch (or ``size``/``batch``), then the Dice metric on a ``metric_slices`` x
    ``metric_size``^2 volume pair (``metric_slices=0`` skips it)."""
    _require_monai()
    settings = settings or BenchSettings()
    dev = resolve_device(device)
    cfg = resolve_config(profile, image_size=size, batch_size=batch, device=str(dev),
                         phantom=True)  # random batches: no data, real or phantom
    rows = []
    with backend_like_trainer(dev):
        for name in networks:
            rows.append(_network_row(name, cfg.image_size, cfg.batch_size, dev, cfg.loss,
                                     settings, cfg.channels_last, cfg.amp, cfg.lr))
    if metric_slices:
        res = metric_comparison(metric_slices, metric_size, metric_repeats)
        rows.append(dict(
            comparison="per-class Dice of a volume pair", ours="metrics.confusion_matrix+scores",
            monai="monai.metrics.DiceMetric(include_background=False), one-hot input",
            device="cpu", size=metric_size, batch=metric_slices,
            seconds_ours=res["seconds_ours"], seconds_monai=res["seconds_monai"],
            speed_ratio=res["seconds_monai"] / res["seconds_ours"],
            max_abs_diff=res["max_abs_diff"], n_compared=res["n_compared"],
            differences=("a class absent from the reference: MONAI NaN, ours 0 if predicted "
                         "(NaN if absent from both); MONAI timed without its one-hot encoding")))
    return pd.DataFrame(rows, columns=list(MONAI_COLUMNS))
