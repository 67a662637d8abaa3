"""The GPU path without TorchIO and SimpleITK, as on the lent GPU machine (docs/gpu.md).

The machine's wheel folder (scripts/gpu_wheels.py) carries no TorchIO: the package must import,
and a run that augments whole batches on its device must build its data, with both blocked;
only the per-slice augmentation needs TorchIO, and says so in one line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent("""
    import sys
    sys.modules["torchio"] = None      # an import of either now raises ImportError
    sys.modules["SimpleITK"] = None
    from pathlib import Path

    import torch

    import spineseg_core.training.loop  # noqa: F401  (the trainer and all it imports)
    from spineseg_core.data.prepare import batch_augment, prepare_data
    from spineseg_core.errors import MissingPackageError
    from spineseg_core.models import model_info
    from spineseg_core.training.config import resolve_config
    from _tiny_data import make_tiny_dataset

    tmp = Path(sys.argv[1])
    cfg = resolve_config("smoke", data_dir=make_tiny_dataset(tmp / "data", cases=4),
                         out_dir=tmp / "run", image_size=32, batch_size=2, gpu_augment=True,
                         device="cpu")
    data = prepare_data(cfg, model_info(cfg.model), slice_augment=False)
    items = [data.train[i] for i in range(2)]
    images = torch.stack([it["image"] for it in items]).float()
    out = batch_augment(cfg)(images, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and torch.isfinite(out).all()
    print("batched", len(data.train), tuple(out.shape))
    try:
        prepare_data(cfg, model_info(cfg.model), slice_augment=True)
    except MissingPackageError as exc:
        print("error", exc)
    else:
        print("no error")
""")


def test_the_gpu_path_builds_its_data_without_torchio_and_slice_augmentation_names_it(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]),
           "SPINESEG_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True,
                          text=True, env=env, cwd=REPO, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("batched ") and lines[0].endswith("(2, 1, 32, 32)"), lines
    assert int(lines[0].split()[1]) > 0
    assert len(lines) == 2 and lines[1].startswith("error "), lines
    message = lines[1].removeprefix("error ")
    assert "\n" not in message and "torchio" in message and "per-slice augmentation" in message
