"""``make setup``'s torch: PyTorch's CPU index when it answers, else pip's own indexes; a CUDA
build is a notice, an error only under CI's SPINESEG_REQUIRE_CPU_TORCH=1
(scripts/torch_build.py)."""

from __future__ import annotations

import functools
import http.server
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "torch_build.py"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60)


def _dist(site: Path, name: str, version: str) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_no_index_given_adds_nothing():
    result = _run("source", "")
    assert result.returncode == 0 and result.stdout == ""


def test_unreachable_index_falls_back_to_pips_own():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = _run("source", f"http://127.0.0.1:{port}/whl/cpu")
    assert result.returncode == 0 and result.stdout == ""
    assert f"CPU index http://127.0.0.1:{port}/whl/cpu is not reachable" in result.stderr


def test_reachable_index_is_added(tmp_path):
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "index.html").write_text("<html></html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = _run("source", url)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0 and result.stdout.strip() == f"--extra-index-url {url}"
    assert "torch's CPU build from" in result.stderr


@pytest.mark.parametrize("cuda, require, code, text", [
    (False, "", 0, "setup: torch 2.13.0, CPU build"),
    (True, "", 0, "setup: notice: torch 2.13.0 is a CUDA build (2 CUDA packages: "
                  "cuda-toolkit, nvidia-cublas)"),
    (True, "1", 1, "setup: error: torch 2.13.0 is a CUDA build"),
])
def test_check_cuda_build(tmp_path, cuda, require, code, text):
    _dist(tmp_path, "torch", "2.13.0")
    if cuda:
        _dist(tmp_path, "nvidia-cublas", "13.1.1.3")
        _dist(tmp_path, "cuda-toolkit", "13.0.3.0")
    result = _run("check", env={"PYTHONPATH": str(tmp_path),
                                "SPINESEG_REQUIRE_CPU_TORCH": require})
    assert result.returncode == code
    assert (result.stdout + result.stderr).startswith(text), result.stdout + result.stderr
