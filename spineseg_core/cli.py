"""The ``spineseg`` command: a thin face over the core.

Each sub-command lives in its own module under :mod:`spineseg_core.commands` and exposes
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``. Errors a user can cause
(:class:`~spineseg_core.errors.SpinesegError`) print one line per problem, no traceback, and
exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from spineseg_core import commands
from spineseg_core.errors import SpinesegError


def _command_modules() -> dict[str, object]:
    mods = {}
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mods[info.name.replace("_", "-")] = importlib.import_module(
            f"{commands.__name__}.{info.name}")
    return mods


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already names it or there
    is none to name (``None``, a flag that is off, an empty list); valid values show as
    ``{a,b,c}`` through ``choices``."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text or default in (None, False, argparse.SUPPRESS, [])
                or not action.option_strings or isinstance(action, argparse._VersionAction)):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {str(shown).replace('%', '%%')})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spineseg", description="Spine MRI segmentation study: data, models, training, book.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, mod in _command_modules().items():
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP,
                           formatter_class=HelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except SpinesegError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"spineseg {args.command}: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"spineseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
