"""Where a run's progress goes: the terminal that started it, also from inside a notebook.

In a Jupyter kernel (a notebook run by papermill, ``spineseg study`` or the book) ``sys.stderr``
is the notebook's stream, so a progress bar written there reaches the notebook file, not the
terminal that started papermill. The kernel process itself still holds that terminal as its own
standard error: ipykernel keeps a copy of the original descriptor (``sys.stderr.fileno()``), and
without that copy ``sys.__stderr__`` is the original. :func:`progress_stream` returns a stream on
it, so ``papermill notebooks/train.ipynb out.ipynb -p model transunet`` shows each epoch and its
ETA in the terminal. Outside a kernel it is plain ``sys.stderr``.
"""

from __future__ import annotations

import io
import os
import sys
from typing import TextIO

_TERMINAL: TextIO | None = None


def _in_kernel() -> bool:
    return type(sys.stderr).__module__.startswith("ipykernel")


def progress_stream() -> TextIO:
    """The stream for progress bars and epoch lines: the kernel process's own standard error
    inside a Jupyter kernel, else ``sys.stderr``."""
    global _TERMINAL
    if not _in_kernel():
        return sys.stderr
    if _TERMINAL is None:
        try:
            fd = sys.stderr.fileno()  # ipykernel's copy of the kernel's original stderr
        except (OSError, io.UnsupportedOperation):
            return sys.__stderr__ or sys.stderr
        _TERMINAL = os.fdopen(os.dup(fd), "w", buffering=1, errors="replace")
    return _TERMINAL


def eta_text(seconds_per_epoch: float, epochs_left: int) -> str:
    """``"ETA 2:05"`` (hours:minutes:seconds as tqdm writes them) for ``epochs_left`` epochs
    at ``seconds_per_epoch`` each; ``""`` when none is left."""
    from tqdm import tqdm

    if epochs_left <= 0:
        return ""
    return f"ETA {tqdm.format_interval(seconds_per_epoch * epochs_left)}"
