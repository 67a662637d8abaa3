"""The code a GPU runs, run on the CPU: the device and capability queries are injected, so each
defect of the CUDA path found in issue 12 has a test here that failed before its fix."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from _tiny_data import make_tiny_dataset
from spineseg_core import envinfo
from spineseg_core.data.batch_augment import BatchAugment, BatchAugmentConfig, gaussian_blur
from spineseg_core.data.prepare import prepare_data
from spineseg_core.errors import ConfigError
from spineseg_core.measure import speed, timing
from spineseg_core.measure.efficiency import CudaMemory, MemMethod, fits_24gb, throughput, train_step_memory
from spineseg_core.measure.timing import BenchSettings
from spineseg_core.models import build_model, model_info
from spineseg_core.training import loop as train_mod, predict, state as train_state
from spineseg_core.training.config import resolve_config
from spineseg_core.training.precision import Precision, native_bf16, precision_for
from spineseg_core.training.run_folder import RunFolder
from spineseg_core.training.step import TrainStep, batch_augmentation, epoch_seed, train_loader

CPU = torch.device("cpu")
TINY_UNET = {"base_width": 4, "depth": 2}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPINESEG_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "data")


def tiny_config(data_dir, out_dir, **kw):
    values = dict(data_dir=data_dir, out_dir=out_dir, image_size=32, batch_size=4,
                  model_kwargs=TINY_UNET, threads=1, hd95=False)
    values.update(kw)
    return resolve_config("smoke", **values)


def _fake_cuda(monkeypatch, **fns):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for name, fn in fns.items():
        monkeypatch.setattr(torch.cuda, name, fn)


# --- 1. precision: emulated bf16 does not count; AVX512-BF16 does ----------------------------

def test_cuda_bf16_counts_only_native_support(monkeypatch):
    # A V100/T4: bf16 "supported" only through emulation.
    _fake_cuda(monkeypatch, is_bf16_supported=lambda including_emulation=True:
               including_emulation)
    assert not native_bf16(torch.device("cuda"))
    assert precision_for(torch.device("cuda"), amp=True) is Precision.FP32
    _fake_cuda(monkeypatch, is_bf16_supported=lambda including_emulation=True: True)
    assert precision_for(torch.device("cuda"), amp=True) is Precision.BF16


@pytest.mark.parametrize("caps, expected", [
    ({"amx_bf16": True}, Precision.BF16), ({"avx512_bf16": True}, Precision.BF16),
    ({"avx512_f": True, "avx2": True}, Precision.FP32), ({}, Precision.FP32)])
def test_cpu_bf16_on_amx_and_avx512_bf16(monkeypatch, caps, expected):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: caps)
    assert precision_for(CPU, amp=True) is expected
    assert precision_for(CPU, amp=False) is Precision.FP32


# --- 2./3. memory: the trainer's step, after warm-up, max_memory_reserved ---------------------

class _Probe:
    """A MemoryProbe that records what the model had done when it was reset and read."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.calls: list[tuple[bool, bool, torch.dtype]] = []
        model.register_forward_hook(self._hook)
        self.reset_after = self.read_after = None

    def _hook(self, module, args, out):
        x = args[0]
        self.calls.append((torch.is_autocast_enabled("cpu"),
                           x.is_contiguous(memory_format=torch.channels_last), x.dtype))

    def reset(self) -> None:
        self.reset_after = len(self.calls)

    def peak_mb(self) -> float:
        self.read_after = len(self.calls)
        return 123.0


def test_bench_memory_is_reset_after_warm_up(monkeypatch):
    model = build_model("unet", **TINY_UNET)
    probe = _Probe(model)
    monkeypatch.setattr(speed, "build_model", lambda name, **kw: model)
    cfg = resolve_config("smoke", model="unet", image_size=32, batch_size=2)
    row = speed.bench_model("unet", cfg, CPU, BenchSettings(steps=1, warmup=2), 1e12,
                            memory=probe)
    assert (probe.reset_after, probe.read_after) == (2, 3)  # two warm-up steps, then one
    assert row["peak_mem_mb"] == 123.0 and row["mem_method"].startswith(str(MemMethod.CUDA_PEAK))


def test_efficiency_memory_is_the_trainers_step(monkeypatch):
    """bf16 autocast and channels-last inputs in the measured step (the old step was fp32,
    contiguous and the first one)."""
    model = build_model("unet", **TINY_UNET)
    probe = _Probe(model)
    report = train_step_memory(model, 32, 2, CPU, precision=Precision.BF16, probe=probe)
    assert report.peak_mb == 123.0 and report.method is MemMethod.CUDA_PEAK
    assert probe.reset_after == 1 and probe.read_after == 2
    autocast_on, channels_last, _ = probe.calls[-1]
    assert autocast_on and channels_last


def test_cuda_probe_reads_max_memory_reserved(monkeypatch):
    log = []
    _fake_cuda(monkeypatch, synchronize=lambda d=None: log.append("sync"),
               empty_cache=lambda: log.append("empty"),
               reset_peak_memory_stats=lambda d=None: log.append("reset"),
               max_memory_reserved=lambda d=None: 3 * 2**30,
               max_memory_allocated=lambda d=None: 2**30)
    probe = CudaMemory(torch.device("cuda"))
    probe.reset()
    assert log == ["sync", "empty", "reset"]
    assert probe.peak_mb() == 3 * 1024
    assert fits_24gb(23 * 1024) and not fits_24gb(23 * 1024 + 1)


def test_efficiency_throughput_times_the_benchs_step(monkeypatch):
    seen = {}

    def fake(step, x, y, settings):
        seen.update(step=step, x=x, settings=settings)
        return 0.5, 0.25

    monkeypatch.setattr("spineseg_core.measure.efficiency.model_throughput", fake)
    train_ips, infer_ips = throughput(build_model("unet", **TINY_UNET), 32, 4, CPU, steps=3,
                                      warmup=2, precision=Precision.BF16)
    assert (train_ips, infer_ips) == (8.0, 16.0)
    step = seen["step"]
    assert isinstance(step, TrainStep) and step.precision is Precision.BF16
    assert seen["x"].is_contiguous(memory_format=torch.channels_last)
    assert (seen["settings"].steps, seen["settings"].warmup) == (3, 2)


# --- 4. blur radius with a spacing tensor on the GPU; trainer and bench in the same units ----

class _OnGpu(torch.Tensor):
    """A CPU tensor that says it lives on a GPU (the old code branched on ``is_cuda``)."""

    @property
    def is_cuda(self) -> bool:
        return True


def test_blur_radius_follows_the_spacing_of_a_gpu_tensor():
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    spacing = torch.tensor([0.35, 0.35]).as_subclass(_OnGpu)
    cfg = BatchAugmentConfig(p_noise=0.0, p_blur=1.0, p_motion=0.0, p_ghosting=0.0,
                             blur_std_mm=(2.0, 2.0))
    x = torch.zeros(1, 1, 96, 96)
    x[..., 48, 48] = 1.0
    out = BatchAugment(cfg)(x, spacing)
    sigma = 2.0 / 0.35  # 5.7 px, so scipy's kernel reaches 23 px, not 8
    ref = scipy_ndimage.gaussian_filter(x[0, 0].numpy().astype(np.float64), sigma,
                                        mode="reflect", truncate=4.0)
    assert np.abs(out[0, 0].numpy() - ref).max() < 1e-4
    # and the blur itself agrees with scipy for the same sigma
    blurred = gaussian_blur(x, torch.tensor([[sigma, sigma]]))
    assert np.abs(blurred[0, 0].numpy() - ref).max() < 1e-4


def test_bench_batched_data_path_is_the_trainers_augmentation(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, tmp_path / "run", p_blur=1.0, p_noise=0.0, p_motion=0.0,
                      p_ghosting=0.0)
    pipe = speed.build_data_pipe(cfg, CPU, "batched")
    trainer = batch_augmentation(
        tiny_config(tiny_data, tmp_path / "run", p_blur=1.0, p_noise=0.0, p_motion=0.0,
                    p_ghosting=0.0, gpu_augment=True), CPU)
    x = torch.rand(4, 1, 32, 32)
    a = pipe.augment(x, generator=torch.Generator().manual_seed(epoch_seed(0, 1)))
    b = trainer(x, generator=torch.Generator().manual_seed(epoch_seed(0, 1)))
    assert torch.equal(a, b)  # pixel units in both: slices carry no spacing
    xb, yb = next(pipe.batches())
    assert xb.shape == (4, 1, 32, 32) and yb.shape == (4, 32, 32)


# --- 5. FLOP counting leaves the caller's loss where it was ----------------------------------

def test_flop_count_does_not_move_the_callers_loss():
    loss = timing.bench_loss("weighted_ce")
    model = build_model("unet", **TINY_UNET)
    assert timing.train_step_flops(model, loss, 32, 2) > 0
    assert all(t.device.type == "cpu" for t in loss.buffers())
    step = TrainStep.create(model, loss, CPU, precision=Precision.FP32)
    x, y = timing.random_batch(2, 32, CPU)
    assert torch.isfinite(step(x, y))


# --- 6. PSANet's indices are module buffers, built outside the compiled graph ----------------

def test_psa_indices_are_buffers_not_a_global_cache():
    from spineseg_core.models import psanet

    assert not hasattr(psanet.psa_indices, "cache_info")
    module = psanet.PointwiseSpatialAttention(16, 8, mask_size=(7, 7))
    assert "index_collect" not in module.state_dict()  # checkpoints keep their keys
    module(torch.randn(2, 16, 8, 8))
    buffers = dict(module.named_buffers())
    collect, distribute = psanet.psa_indices(4, 4, 7, 7)
    assert torch.equal(buffers["index_collect"], collect)
    assert torch.equal(buffers["index_distribute"], distribute)
    module.to("meta")
    assert module.index_collect.device.type == "meta"


def test_compiled_psa_graph_holds_no_index_construction():
    from spineseg_core.models import psanet

    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    module = psanet.PointwiseSpatialAttention(16, 8, mask_size=(7, 7))
    compiled = torch.compile(module, backend=backend)
    x = torch.randn(2, 16, 8, 8)
    for _ in range(3):
        out = compiled(x)
    assert torch.allclose(out, module(x), atol=1e-5)
    targets = {str(n.target) for g in graphs for n in g.graph.nodes}
    assert not any("arange" in t or "repeat_interleave" in t for t in targets), targets
    torch._dynamo.reset()


# --- 7. resuming in another precision is refused, params.json kept ----------------------------

def test_resume_in_another_precision_is_refused(tiny_data, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    monkeypatch.setattr(train_mod, "precision_for", lambda device, amp, **_: Precision.FP32)
    train_mod.run_training(tiny_config(tiny_data, run_dir, epochs=1,
                                 keep_last_checkpoint=True))
    params = RunFolder(run_dir).params.read_text()
    assert json.loads(params)["precision"] == "fp32"
    # The same run continued where bf16 is native (a CPU run resumed on a GPU).
    monkeypatch.setattr(train_mod, "precision_for", lambda device, amp, **_: Precision.BF16)
    with pytest.raises(ConfigError, match=r"was trained with precision fp32, augmentation "
                                          r"slice; on cpu it would continue with precision "
                                          r"bf16-autocast"):
        train_mod.run_training(tiny_config(tiny_data, run_dir, epochs=2))
    assert RunFolder(run_dir).params.read_text() == params


def test_checkpoint_without_mode_is_judged_by_its_params_json(tiny_data, tmp_path,
                                                              monkeypatch):
    """A checkpoint of an earlier version (no ``mode``): its params.json says how it ran."""
    run_dir = tmp_path / "run"
    monkeypatch.setattr(train_mod, "precision_for", lambda device, amp, **_: Precision.FP32)
    train_mod.run_training(tiny_config(tiny_data, run_dir, epochs=1,
                                 keep_last_checkpoint=True))
    run = RunFolder(run_dir)
    state = torch.load(run.checkpoint_last, weights_only=True)
    del state["mode"]
    state["config"]["gpu_augment"] = True  # the old default: batched on CUDA only
    torch.save(state, run.checkpoint_last)
    metrics = train_mod.run_training(tiny_config(tiny_data, run_dir, epochs=2))
    assert metrics["epochs_completed"] == 2
    monkeypatch.setattr(train_mod, "precision_for", lambda device, amp, **_: Precision.BF16)
    run.metrics.unlink()
    torch.save(state, run.checkpoint_last)
    with pytest.raises(ConfigError, match="was trained with precision fp32"):
        train_mod.run_training(tiny_config(tiny_data, run_dir, epochs=2))


# --- 8. the CUDA random state of the training device only ------------------------------------

def test_rng_state_saves_only_the_training_gpu(monkeypatch):
    def every_gpu():
        raise AssertionError("every GPU's state was read")

    got = []
    _fake_cuda(monkeypatch, get_rng_state_all=every_gpu,
               get_rng_state=lambda device="cuda": got.append(device) or torch.zeros(8,
                                                                                 dtype=torch.uint8),
               set_rng_state=lambda state, device="cuda": got.append(("set", device)),
               set_rng_state_all=lambda states: every_gpu())
    cpu_state = train_state.rng_state(CPU)
    assert "cuda" not in cpu_state
    train_state.set_rng_state(cpu_state, CPU)
    gpu_state = train_state.rng_state(torch.device("cuda:1"))
    assert got == [torch.device("cuda:1")] and gpu_state["cuda"].dtype == torch.uint8
    train_state.set_rng_state(gpu_state, torch.device("cuda:1"))
    assert got[-1] == ("set", torch.device("cuda:1"))
    # A checkpoint of an older version (every GPU's list) restores the first onto the device.
    train_state.set_rng_state({**gpu_state, "cuda": [torch.ones(8, dtype=torch.uint8)]},
                              torch.device("cuda:0"))
    assert got[-1] == ("set", torch.device("cuda:0"))


# --- 9. predict in the run's recorded precision ---------------------------------------------

def test_predict_uses_the_recorded_precision(tmp_path, monkeypatch):
    run = RunFolder(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    run.params.write_text(json.dumps({"amp": True, "precision": "bf16-autocast"}))
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {})  # no native bf16 here
    assert predict.run_precision(run, CPU) is Precision.BF16
    run.params.write_text(json.dumps({"amp": True, "precision": "fp32"}))
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True})
    assert predict.run_precision(run, CPU) is Precision.FP32
    run.params.write_text(json.dumps({"amp": True}))  # a run folder from before the record
    assert predict.run_precision(run, CPU) is Precision.BF16
    seen = []
    real = predict.autocast
    monkeypatch.setattr(predict, "autocast", lambda d, p: seen.append(p) or real(d, p))
    labels = predict.segment_volume(build_model("unet", **TINY_UNET), np.zeros((2, 32, 32)),
                                    CPU, precision=Precision.BF16)
    assert labels.shape == (2, 32, 32) and seen == [Precision.BF16]


# --- 10. the env stamp names the training GPU -------------------------------------------------

def test_env_stamp_names_the_training_device(monkeypatch):
    _fake_cuda(monkeypatch, get_device_name=lambda d=None: f"GPU {torch.device(d).index}")
    assert envinfo.env_stamp("cuda:1")["gpu"] == "GPU 1"
    assert envinfo.env_stamp(CPU)["gpu"] is None


# --- the epoch loop without host syncs --------------------------------------------------------

def _tiny_epoch_parts(tmp_path, tiny_data, loss_factor=1.0, bad_at=None):
    cfg = tiny_config(tiny_data, tmp_path / "run", max_train_slices_per_epoch=None, batch_size=2)
    data = prepare_data(cfg, model_info(cfg.model))
    model = build_model("unet", **TINY_UNET)

    class Loss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner, self.calls = timing.bench_loss("dice"), 0

        def forward(self, logits, target):
            self.calls += 1
            bad = bad_at is not None and self.calls == bad_at + 1
            return self.inner(logits, target) * (float("nan") if bad else loss_factor)

    # SGD: Adam reads its CPU-side step counters (no device sync, but a read all the same).
    step = TrainStep(model, Loss(), torch.optim.SGD(model.parameters(), lr=1e-3), CPU,
                     precision=Precision.FP32)
    loader = train_loader(data.train, cfg, 1, pin=False)
    return cfg, step, loader


def test_epoch_loop_reads_the_device_once_per_check(tiny_data, tmp_path, monkeypatch):
    cfg, step, loader = _tiny_epoch_parts(tmp_path, tiny_data)
    batches = list(loader)
    reads = []
    for name in ("__bool__", "__int__", "__float__", "item"):
        real = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name,
                            lambda self, *a, _real=real, _n=name: reads.append(_n) or
                            _real(self, *a))
    monkeypatch.setattr(torch.Tensor, "__index__", torch.Tensor.__int__)
    loss, made = train_mod._train_epoch(step, batches, cfg, 1, check_every=1000)
    monkeypatch.undo()
    assert len(batches) >= 2 and np.isfinite(loss) and made == len(batches)
    assert sorted(reads) == ["__float__", "__int__"]  # once at the end, not per step


def test_epoch_loop_reports_the_first_bad_step_when_deferred(tiny_data, tmp_path):
    cfg, step, loader = _tiny_epoch_parts(tmp_path, tiny_data, bad_at=1)
    batches = list(loader)
    assert len(batches) >= 3
    with pytest.raises(train_mod.NonFiniteLossError, match="epoch 1, step 2"):
        train_mod._train_epoch(step, batches, cfg, 1, check_every=1000)


def _psa_net() -> torch.nn.Module:
    """PSANet's attention module between two convolutions: the part torch.compile traced
    through the index cache (the Res2Net-101 around it takes inductor many minutes)."""
    from spineseg_core.models.psanet import PointwiseSpatialAttention

    return torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, stride=4, padding=1),
                               PointwiseSpatialAttention(16, 8, mask_size=(7, 7)),
                               torch.nn.Conv2d(32, 20, 1),
                               torch.nn.Upsample(scale_factor=4, mode="bilinear"))


@pytest.mark.slow
def test_psa_trains_through_torch_compile():
    """The compile path with PSANet's indices as buffers: Dynamo and AOTAutograd capture the
    forward and backward graphs (where the cached indices used to be traced), and the compiled
    training steps give the eager steps' losses; the indices stay out of the state dict.
    ``aot_eager`` leaves out only inductor's C++ code generation, which on a shared 2-core
    machine takes many minutes; ``tests/test_cuda.py`` runs inductor on the GPU."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = _psa_net()
    compiled_model = _psa_net()
    compiled_model.load_state_dict(eager.state_dict())
    x, y = timing.random_batch(2, 32, CPU)
    losses = []
    compile_ = lambda m: torch.compile(m, backend="aot_eager")  # noqa: E731
    for model, wrap in ((eager, lambda m: m), (compiled_model, compile_)):
        step = TrainStep(wrap(model), torch.nn.CrossEntropyLoss(),
                         torch.optim.SGD(model.parameters(), lr=0.1), CPU,
                         precision=Precision.FP32, channels_last=False)
        losses.append([float(step(x, y)) for _ in range(3)])
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    assert not any("index" in k for k in compiled_model.state_dict())
    torch._dynamo.reset()
