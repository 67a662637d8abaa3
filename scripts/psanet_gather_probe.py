"""PSANet's training step with the PSA re-indexing's backward as ``index_select``'s own (a
serial sorted ``index_add`` under the trainer's deterministic algorithms on the CPU) and as a
gather through the inverse index (``models.psanet._InjectiveSelect``): step times, interleaved,
and the largest difference of any parameter's gradient between the two (0: the same numbers).

Usage: python scripts/psanet_gather_probe.py [--rounds 5] [--out results/probes/psanet_gather.txt]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from spineseg_core.envinfo import cpu_features, cpu_model
from spineseg_core.io import write_with
from spineseg_core.measure.timing import backend_like_trainer, bench_loss, random_batch
from spineseg_core.models import build_model
from spineseg_core.models.psanet import PointwiseSpatialAttention
from spineseg_core.training.config import resolve_config
from spineseg_core.training.step import TrainStep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("results/probes/psanet_gather.txt"))
    args = ap.parse_args()
    cfg = resolve_config("cpu", model="psanet", phantom=True)
    dev = torch.device("cpu")
    x, y = random_batch(cfg.batch_size, (cfg.image_size, round(cfg.image_size * cfg.crop_width)),
                        dev)
    steps = {}
    torch.manual_seed(0)
    proto = build_model("psanet")
    for name in ("index_add backward", "inverse gather backward"):
        model = build_model("psanet")
        model.load_state_dict(proto.state_dict())
        if name.startswith("index_add"):
            for m in model.modules():
                if isinstance(m, PointwiseSpatialAttention):
                    m.inverses = lambda: (None, None)  # type: ignore[method-assign]
        steps[name] = TrainStep.create(model, bench_loss(cfg.loss), dev, amp=cfg.amp,
                                       channels_last=cfg.channels_last)
    lines = [f"PSANet training step, cpu profile ({cfg.batch_size} x {tuple(x.shape[-2:])}), "
             f"{torch.get_num_threads()} threads, torch {torch.__version__}, {cpu_model()} "
             f"({cpu_features()})"]
    with backend_like_trainer(dev):
        # one step each from the same weights: the gradients it leaves must agree
        grads = {}
        for name, step in steps.items():
            step(x, y)
            grads[name] = [p.grad.detach().clone() for p in step.model.parameters()
                           if p.grad is not None]
        a, b = grads.values()
        diff = max(float((g1.float() - g2.float()).abs().max()) for g1, g2 in zip(a, b, strict=True))
        lines.append(f"largest gradient difference between the two: {diff:.3g}")
        times: dict[str, list[float]] = {n: [] for n in steps}
        prepared = {n: s.prepare(x) for n, s in steps.items()}
        for n, s in steps.items():
            s(prepared[n], y, prepared=True)
        for _ in range(args.rounds):
            for n, s in steps.items():
                t0 = time.perf_counter()
                s(prepared[n], y, prepared=True)
                times[n].append(time.perf_counter() - t0)
    for n, t in times.items():
        lines.append(f"{n}: median {statistics.median(t):.2f} s a step over {args.rounds} "
                     f"(min {min(t):.2f}, max {max(t):.2f})")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    write_with(args.out, lambda p: p.write_text(text))


if __name__ == "__main__":
    main()
