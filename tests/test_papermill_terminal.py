"""What the papermill command shows in its terminal: each epoch with its ETA, and a bad
parameter as one line (spineseg_core.training.progress, spineseg_core.papermill_hook)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from spineseg_core.papermill_hook import ENTRY_POINT, is_user_error, one_line
from spineseg_core.training.progress import eta_text, progress_stream

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "train.ipynb"
PAPERMILL = Path(sys.executable).with_name("papermill")
KERNEL_CONFIG = Path(sys.prefix) / "etc" / "ipython" / "ipython_kernel_config.py"


def test_eta_text():
    assert eta_text(30.0, 2) == "ETA 01:00"
    assert eta_text(1800.0, 3) == "ETA 1:30:00"
    assert eta_text(30.0, 0) == ""


def test_progress_goes_to_stderr_outside_a_kernel():
    assert progress_stream() is sys.stderr


class _ExecutionError(Exception):
    """Stands in for papermill's PapermillExecutionError (same name, same attributes)."""

    def __init__(self, ename: str, evalue: str, traceback: list[str]) -> None:
        self.ename, self.evalue, self.traceback = ename, evalue, traceback


_ExecutionError.__name__ = "PapermillExecutionError"


def test_hook_prints_a_user_error_as_one_line_and_passes_the_rest_on(capsys):
    seen = []
    hook = one_line(lambda *exc: seen.append(exc[1]))
    brief = _ExecutionError("ConfigError", "epochs: expected int",
                            ["ConfigError: epochs: expected int"])
    bug = _ExecutionError("KeyError", "'x'", ["---", "KeyError Traceback", "KeyError: 'x'"])
    assert is_user_error(brief) and not is_user_error(bug)
    assert not is_user_error(KeyError("x"))
    hook(type(brief), brief, None)
    assert capsys.readouterr().err == "papermill: error: ConfigError: epochs: expected int\n"
    hook(type(bug), bug, None)
    assert seen == [bug] and capsys.readouterr().err == ""


def _papermill(tmp_path: Path, *params: str) -> subprocess.CompletedProcess:
    if not any(ep.name == ENTRY_POINT for ep in metadata.entry_points(group="papermill.io")):
        pytest.skip("spineseg's papermill entry point is not installed here (run make setup)")
    env = {**os.environ, "PYTHONPATH": str(REPO), "SPINESEG_CACHE": str(tmp_path / "cache")}
    argv = [str(PAPERMILL), str(NOTEBOOK), str(tmp_path / "out.ipynb"), "--cwd", str(tmp_path)]
    for pair in params:
        argv += ["-p", *pair.split("=", 1)]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.parametrize("params, line", [
    (("model=TransUNett",), "ConfigError: model: unknown model 'TransUNett'; did you mean "
                            "transunet? (valid models: unet, "),
    (("overrides={bad",), "ConfigError: overrides: expected a mapping of parameter names"),
    (("epochs=three",), "ConfigError: epochs: expected "),
])
def test_bad_parameter_ends_in_one_line(tmp_path, params, line):
    result = _papermill(tmp_path, "profile=smoke", *params)
    last = result.stderr.rstrip("\n").splitlines()[-1]
    assert result.returncode != 0
    assert last.startswith(f"papermill: error: {line}"), result.stderr
    assert "Traceback" not in result.stderr
    if KERNEL_CONFIG.is_file():  # make setup installs it
        assert "WARNING" not in result.stderr, result.stderr


@pytest.mark.slow
def test_each_epoch_and_its_eta_reach_the_terminal(tmp_path):
    overrides = json.dumps({"model_kwargs": {"base_width": 4, "depth": 2}, "image_size": 32,
                            "max_train_slices_per_epoch": 8})
    result = _papermill(tmp_path, "model=unet", "profile=smoke", "epochs=2",
                        f"out_dir={tmp_path / 'run'}", f"overrides={overrides}")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stderr.replace("\r", "\n").splitlines()
    first = [x for x in lines if x.startswith("unet epoch 1/2: train_loss")]
    second = [x for x in lines if x.startswith("unet epoch 2/2: train_loss")]
    assert len(first) == len(second) == 1, result.stderr[-3000:]
    assert ", ETA " in first[0] and "ETA" not in second[0]
    assert any(x.startswith("unet (smoke):") and "epoch" in x for x in lines)
