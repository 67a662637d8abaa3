"""Exceptions of the study.

Every error a user can cause (bad data, bad parameter) is a :class:`SpinesegError`; the
command line prints its message on one line, without a traceback, and exits non-zero.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TypeVar

E = TypeVar("E", bound=StrEnum)


class SpinesegError(Exception):
    """Base class of every user-facing error."""


class DataError(SpinesegError):
    """A data file or folder is not what the study expects.

    The message always names the file and what was expected.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class ConfigError(SpinesegError, ValueError):
    """A parameter has an invalid name, type or value."""


class MissingPackageError(SpinesegError, ImportError):
    """A package that only one optional part of the study needs (e.g. TorchIO for the per-slice
    augmentation) is not installed."""


def parse_choice(choices: type[E], value: object, name: str) -> E:
    """``choices(value)``, or a :class:`ConfigError` naming ``name`` and the valid values."""
    try:
        return choices(value)
    except ValueError:
        raise ConfigError(f"{name}: expected one of {', '.join(c.value for c in choices)}, "
                          f"got {value!r}") from None


def show_user_errors_briefly() -> None:
    """In IPython or Jupyter (the papermill notebook), show a :class:`SpinesegError` as one
    line, its type and message, as the command line does; other exceptions keep their
    traceback. Outside IPython nothing changes."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def one_line(shell, etype, value, tb, tb_offset=None):  # IPython's custom-handler signature
        stb = [f"{etype.__name__}: {value}"]
        shell._showtraceback(etype, value, stb)
        return stb

    shell.set_custom_exc((SpinesegError,), one_line)
