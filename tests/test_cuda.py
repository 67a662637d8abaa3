"""Checks that need the device itself: run by ``scripts/gpu_check.sh`` on a GPU, where a skipped
test fails the check (``scripts/gpu_check.py tests``). Without CUDA they skip in the test suite,
unless ``SPINESEG_TEST_DEVICE=cpu`` (the script's ``--dry-run``) runs them on the CPU, where the
parts that only a GPU has (sync detection, reserved memory) are left out."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from spineseg_core import envinfo
from spineseg_core.data.batch_augment import BatchAugment, BatchAugmentConfig, gaussian_blur
from spineseg_core.data.prepare import prepare_data
from spineseg_core.measure import timing
from spineseg_core.measure.efficiency import CudaMemory, step_peak_memory
from spineseg_core.models import build_model, model_info
from spineseg_core.training import loop as train_mod, state as train_state
from spineseg_core.training.config import resolve_config
from spineseg_core.training.precision import Precision, precision_for
from spineseg_core.training.step import TrainStep, batch_augmentation, train_loader

DEVICE = torch.device(os.environ.get("SPINESEG_TEST_DEVICE", "cuda"))
CUDA = DEVICE.type == "cuda"

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(CUDA and not torch.cuda.is_available(),
                                 reason="no CUDA device (SPINESEG_TEST_DEVICE=cpu runs these "
                                        "on the CPU)")]


def test_bf16_is_native_on_the_gpu():
    if CUDA:
        assert torch.cuda.get_device_capability(DEVICE) >= (8, 0)
        assert precision_for(DEVICE, amp=True) is Precision.BF16
    assert precision_for(DEVICE, amp=False) is Precision.FP32


def test_batched_blur_on_the_device_matches_scipy():
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    x = torch.zeros(2, 1, 64, 64)
    x[:, :, 20, 30] = 1.0
    sigma = torch.tensor([[1.5, 4.0], [5.7, 0.5]])
    out = gaussian_blur(x.to(DEVICE), sigma.to(DEVICE)).cpu()
    for i in range(2):
        ref = scipy_ndimage.gaussian_filter(x[i, 0].double().numpy(), sigma[i].tolist(),
                                            mode="reflect", truncate=4.0)
        assert np.abs(out[i, 0].numpy() - ref).max() < 1e-5


def test_batched_augmentation_runs_on_the_device_without_host_reads():
    aug = BatchAugment(BatchAugmentConfig(p_noise=1, p_blur=1, p_motion=1, p_ghosting=1))
    x = torch.rand(4, 1, 96, 80, device=DEVICE)
    g = torch.Generator(device=DEVICE).manual_seed(0)
    if CUDA:
        torch.cuda.set_sync_debug_mode("error")
    try:
        out = aug(x, generator=g)
    finally:
        if CUDA:
            torch.cuda.set_sync_debug_mode("default")
    assert out.shape == x.shape and out.device.type == DEVICE.type
    assert torch.isfinite(out).all()


def test_an_epoch_on_the_device_never_waits_for_it(tmp_path, monkeypatch):
    from _tiny_data import make_tiny_dataset

    monkeypatch.setenv("SPINESEG_CACHE", str(tmp_path / "cache"))
    data_dir = make_tiny_dataset(tmp_path / "data")
    cfg = resolve_config("smoke", data_dir=data_dir, out_dir=tmp_path / "run", image_size=32,
                         batch_size=2, model_kwargs={"base_width": 4, "depth": 2},
                         gpu_augment=True, device=DEVICE.type)
    data = prepare_data(cfg, model_info(cfg.model), slice_augment=False)
    model = build_model("unet", base_width=4, depth=2).to(DEVICE)
    step = TrainStep(model, timing.bench_loss("dice").to(DEVICE),
                     torch.optim.Adam(model.parameters()), DEVICE,
                     precision=precision_for(DEVICE, True),
                     augment=batch_augmentation(cfg, DEVICE))
    batches = list(train_loader(data.train, cfg, 1, pin=CUDA))
    step(batches[0]["image"], batches[0]["mask"])  # warm-up: lazy initialisation may sync
    calls = []
    step.loss_fn.register_forward_hook(lambda *a: calls.append(1))
    if CUDA:  # every step runs; the first wait for the device is the final read of the loss
        torch.cuda.set_sync_debug_mode("error")
        try:
            with pytest.raises(RuntimeError, match="synchroniz"):
                train_mod._train_epoch(step, batches, cfg, 1, check_every=10_000)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    else:
        train_mod._train_epoch(step, batches, cfg, 1, check_every=10_000)
    assert len(calls) == len(batches) >= 2


def test_step_memory_is_reserved_after_warm_up():
    if not CUDA:
        pytest.skip("max_memory_reserved exists only on CUDA")
    model = build_model("unet", base_width=8, depth=3)
    step = TrainStep.create(model, timing.bench_loss("dice"), DEVICE)
    x, y = timing.random_batch(4, 128, DEVICE)
    peak = step_peak_memory(step, step.prepare(x), y, CudaMemory(DEVICE), warmup=1)
    assert peak * 2**20 >= torch.cuda.max_memory_allocated(DEVICE) > 0


def test_psa_compiles_on_the_device():
    """PSANet's attention with its index buffers through inductor on the device (the whole
    PSANet would spend minutes compiling its Res2Net-101)."""
    from spineseg_core.models.psanet import PointwiseSpatialAttention

    torch._dynamo.reset()
    psa = PointwiseSpatialAttention(16, 8, mask_size=(13, 13))
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, stride=4, padding=1), psa,
                                torch.nn.Conv2d(32, 20, 1),
                                torch.nn.Upsample(scale_factor=4, mode="bilinear"))
    step = TrainStep.create(model, torch.nn.CrossEntropyLoss(), DEVICE, channels_last=False)
    # inductor on the GPU; its C++ code generation on a CPU dry run would take minutes
    step.model = torch.compile(step.model, backend="inductor" if CUDA else "aot_eager")
    x, y = timing.random_batch(2, 64, DEVICE)
    losses = [float(step(x, y)) for _ in range(3)]
    assert all(np.isfinite(losses))
    assert psa.index_collect.device.type == DEVICE.type and psa.index_collect.numel() > 0
    torch._dynamo.reset()


def test_rng_and_env_name_the_training_device():
    state = train_state.rng_state(DEVICE)
    assert ("cuda" in state) == CUDA
    train_state.set_rng_state(state, DEVICE)
    stamp = envinfo.env_stamp(DEVICE)
    assert stamp["gpu"] == (torch.cuda.get_device_name(DEVICE) if CUDA else None)
