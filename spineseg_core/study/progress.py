"""Progress of the study's runs, read from their run folders while they train.

A run writes one ``history.csv`` row per finished epoch (atomically, see CONTRIBUTING.md);
the study reads those rows while the notebook runs — in a thread beside papermill here, or
from the polling loop of a Slurm job array — and prints one line per new epoch with the run's
ETA (its mean epoch time × the epochs left) and the study's (the time this study has taken
per epoch so far, start-up and evaluation included, × every epoch still to train). The
training code knows nothing of this.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from spineseg_core.training.run_folder import RunFolder


def format_eta(seconds: float | None) -> str:
    """``12:34`` / ``1:02:03`` (tqdm's format), ``?`` when unknown."""
    return "?" if seconds is None else tqdm.format_interval(max(0.0, seconds))


def read_history(run_dir: Path) -> pd.DataFrame | None:
    """The run's ``history.csv``, or ``None`` while it has none (or it cannot be read yet)."""
    try:
        return pd.read_csv(RunFolder(run_dir).history)
    except (OSError, ValueError):  # absent, or empty before the first epoch
        return None


def epochs_done(run_dir: Path) -> int:
    """Epochs the run has completed so far (rows of its ``history.csv``)."""
    history = read_history(run_dir)
    return 0 if history is None else len(history)


def steps_done(run_dir: Path) -> int:
    """Optimiser steps an interrupted run will not make again: the last ``step`` of its
    ``history.csv`` when it has a checkpoint to resume from (written with that row), else 0:
    a run without one starts over."""
    history = read_history(run_dir)
    if not RunFolder(run_dir).has_checkpoint() or history is None or history.empty:
        return 0
    return int(history["step"].iloc[-1])


@dataclass
class RunProgress:
    """The epochs of one run seen so far; :meth:`poll` returns a line per new epoch."""

    run_dir: Path
    label: str
    epochs: int | None
    seen: int = field(init=False, default=-1)

    def poll(self) -> list[tuple[int, str]]:
        """``(new epochs, line)`` for each epoch that appeared since the last poll.

        The first poll only notes the epochs already there (a resumed run's earlier ones)."""
        history = read_history(self.run_dir)
        rows = 0 if history is None else len(history)
        if self.seen < 0:
            self.seen = rows
            return []
        lines = []
        for i in range(self.seen, rows):
            row = history.iloc[i]
            total = f"/{self.epochs}" if self.epochs else ""
            eta = None
            if self.epochs:
                eta = float(history["epoch_seconds"].iloc[: i + 1].mean()) * (self.epochs - i - 1)
            lines.append((1, f"{self.label}: epoch {int(row['epoch'])}{total} "
                             f"({float(row['epoch_seconds']):.0f} s, val dice "
                             f"{float(row['dice']):.3f}), run ETA {format_eta(eta)}"))
        self.seen = max(self.seen, rows)
        return lines


@dataclass
class StudyClock:
    """The study's ETA: seconds this study has spent per epoch trained, × epochs left."""

    epochs_left: int | None
    start: float = field(default_factory=lambda: time.monotonic())
    trained: int = 0

    def advance(self, epochs: int = 1) -> None:
        self.trained += epochs
        if self.epochs_left is not None:
            self.epochs_left = max(0, self.epochs_left - epochs)

    def eta(self) -> float | None:
        if self.epochs_left is None or self.trained == 0:
            return None
        return (time.monotonic() - self.start) / self.trained * self.epochs_left

    def line(self) -> str:
        return f"study ETA {format_eta(self.eta())}"


class EpochWatcher:
    """Polls one run folder in a background thread while its notebook runs in this one."""

    def __init__(self, progress: RunProgress, clock: StudyClock, log: Callable[[str], None],
                 poll_s: float = 2.0) -> None:
        self.progress, self.clock, self.log, self.poll_s = progress, clock, log, poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="spineseg-progress",
                                        daemon=True)

    def _tick(self) -> None:
        for epochs, line in self.progress.poll():
            self.clock.advance(epochs)
            self.log(f"{line}, {self.clock.line()}")

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            self._tick()

    def __enter__(self) -> EpochWatcher:
        self.progress.poll()  # note the epochs already there (a resumed run's)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._tick()  # the last epochs, written after the last poll
