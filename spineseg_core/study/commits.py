"""Committing a study's results as they land, from scripts that run for hours.

Every study script commits only its own results folder, and under one lock (:data:`LOCK`), so
a record landing while another script, or a person, commits waits instead of taking a
half-staged index. The message travels as an argument, never through the shell's quoting.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

LOCK = "/tmp/spineseg-git.lock"
"""The lock every study script commits under (``flock``; a commit made by hand at the same
moment with ``flock /tmp/spineseg-git.lock git commit ...`` waits too)."""

_SCRIPT = ('git add -A -- "$@" && { git diff --cached --quiet -- "$@" '
           '|| git commit -q -m "$0" -- "$@"; }')


def commit_paths(root: str | Path, paths: Sequence[str], message: str,
                 lock: str = LOCK) -> bool:
    """Stage ``paths`` (relative to the repository ``root``; additions, changes and removals)
    and commit them alone with ``message`` when they changed, holding ``lock``. Other staged
    files stay staged and out of the commit. Whether git succeeded (nothing to commit is a
    success)."""
    if not paths:
        raise ValueError("commit_paths: no paths given")
    done = subprocess.run(["flock", lock, "sh", "-c", _SCRIPT, message, *paths], cwd=root)
    return done.returncode == 0
