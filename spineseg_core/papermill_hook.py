"""A user error in a notebook run by the ``papermill`` command ends in one line.

The notebook shows a :class:`~spineseg_core.errors.SpinesegError` as one line
(:func:`~spineseg_core.errors.show_user_errors_briefly`), but papermill's command line then
raises ``PapermillExecutionError`` and Python prints that with the 25 lines of papermill's own
call stack. papermill loads every ``papermill.io`` entry point when it starts, so this module,
declared as one in ``pyproject.toml``, runs inside the papermill process: it wraps
``sys.excepthook`` so that an execution error whose notebook traceback is that single line is
printed as ``papermill: error: <type>: <message>`` (exit status 1); every other error keeps its
traceback. :class:`LocalFiles`, the entry point's object, only reads and writes local files.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

ENTRY_POINT = "spineseg-local"
"""The entry point's name: papermill routes paths starting with it to :class:`LocalFiles`."""


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is papermill's execution error for a cell that stopped on a user error:
    its notebook traceback is the one line ``"<type>: <message>"`` that the notebook's brief
    handler writes (a programming error has a multi-line traceback)."""
    trace = getattr(exc, "traceback", None)
    return (type(exc).__name__ == "PapermillExecutionError" and isinstance(trace, list)
            and len(trace) == 1 and trace[0] == f"{exc.ename}: {exc.evalue}")


def one_line(previous: Any) -> Any:
    """``sys.excepthook`` that prints a user error (:func:`is_user_error`) as one line and
    hands anything else to ``previous``."""

    def hook(etype: type[BaseException], value: BaseException,
             tb: TracebackType | None) -> None:
        if is_user_error(value):
            print(f"papermill: error: {value.traceback[0]}", file=sys.stderr)
            return
        previous(etype, value, tb)

    hook.spineseg_one_line = True  # type: ignore[attr-defined]
    return hook


def install() -> None:
    """Wrap ``sys.excepthook`` once."""
    if not getattr(sys.excepthook, "spineseg_one_line", False):
        sys.excepthook = one_line(sys.excepthook)


class LocalFiles:
    """papermill I/O handler of the entry point: local files, as papermill's own handler."""

    @staticmethod
    def _local() -> Any:
        from papermill.iorw import LocalHandler

        return LocalHandler()

    @classmethod
    def read(cls, path: str) -> str:
        return cls._local().read(path)

    @classmethod
    def write(cls, buf: str, path: str) -> None:
        return cls._local().write(buf, path)

    @classmethod
    def listdir(cls, path: str) -> list[str]:
        return cls._local().listdir(path)

    @classmethod
    def pretty_path(cls, path: str) -> str:
        return path


install()
