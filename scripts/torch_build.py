"""Which torch build ``make setup`` installs, and what it says about the one it got.

Run by the Makefile with the standard library only (before the project is installed):

* ``torch_build.py source URL`` prints ``--extra-index-url URL`` when PyTorch's CPU index at
  ``URL`` answers, so pip takes torch's CPU build from it; otherwise it prints nothing, and pip
  takes torch from PyPI (on Linux x86_64 the CUDA build, several GB) or from local wheels
  (``find-links``). Either way one line on stderr says which. An empty ``URL`` skips the probe.
* ``torch_build.py check`` reports the torch build installed. A CUDA build is a valid install
  (a user with a GPU wants it; on a CPU it only costs disk), so it gets a notice, never an
  error, unless ``SPINESEG_REQUIRE_CPU_TORCH=1`` (CI's guard) asks for the CPU build.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from importlib import metadata

PROBE_TIMEOUT_S = 10.0
REQUIRE_CPU_ENV = "SPINESEG_REQUIRE_CPU_TORCH"
CUDA_PREFIXES = ("nvidia-", "cuda-")
"""Distributions that come only with a CUDA build of torch (``nvidia-cublas``,
``cuda-toolkit``...)."""


def index_reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """``None`` when ``url``'s page for torch answers, else the reason it did not."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/torch/", timeout=timeout) as reply:
            return None if reply.status == 200 else f"HTTP {reply.status}"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def source(url: str) -> int:
    if not url:
        print("setup: torch from pip's own indexes (TORCH_INDEX is empty)", file=sys.stderr)
        return 0
    problem = index_reachable(url)
    if problem is None:
        print(f"setup: torch's CPU build from {url}", file=sys.stderr)
        print(f"--extra-index-url {url}")
    else:
        print(f"setup: PyTorch's CPU index {url} is not reachable ({problem}); torch comes "
              "from pip's own indexes or local wheels (PyPI's Linux torch is the CUDA build, "
              "several GB)", file=sys.stderr)
    return 0


def cuda_packages() -> list[str]:
    """Installed distributions that only a CUDA build of torch brings."""
    names = {(d.metadata["Name"] or "").lower() for d in metadata.distributions()}
    return sorted(n for n in names if n.startswith(CUDA_PREFIXES))


def check() -> int:
    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        print("setup: error: torch is not installed", file=sys.stderr)
        return 1
    cuda = cuda_packages()
    if not cuda:
        print(f"setup: torch {version}, CPU build")
        return 0
    what = (f"torch {version} is a CUDA build ({len(cuda)} CUDA packages: {', '.join(cuda[:3])}"
            f"{', ...' if len(cuda) > 3 else ''})")
    if os.environ.get(REQUIRE_CPU_ENV) == "1":
        print(f"setup: error: {what}, but {REQUIRE_CPU_ENV}=1 asks for the CPU build",
              file=sys.stderr)
        return 1
    print(f"setup: notice: {what}: it uses a GPU when there is one and runs on the CPU "
          "otherwise; for the smaller CPU build remove .venv and run make again where "
          "PyTorch's CPU index is reachable")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["source"] and len(argv) <= 2:
        return source(argv[1] if len(argv) == 2 else "")
    if argv == ["check"]:
        return check()
    print("usage: torch_build.py source URL | check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
