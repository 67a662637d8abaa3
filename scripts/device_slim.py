"""Make the working tree fit the device tool for a call, without a commit and losing nothing.

    python scripts/device_slim.py size    # what would travel now, against the 64 MiB
    python scripts/device_slim.py out     # take out of the working tree what the device never reads
    python scripts/device_slim.py back    # put it back from git, as committed

The device tool sends the working tree as it is on disk (tracked files and untracked ones git
does not ignore) and the carried paths, 64 MiB in all. The committed records of the 6-epoch
study (``results/cpu/runs``, about 43 MiB) and their level tables are most of the tree, and
neither ``scripts/gpu_check.sh`` nor ``scripts/gpu_study.sh`` reads them: the GPU study reads
``results/plateau`` (the pin, the budget, the records it skips). ``out`` deletes :data:`SLIM`
from the working tree only (git still holds every file: nothing is staged or committed), and
refuses while a file there has uncommitted changes, which ``back`` could not restore. ``back``
restores them with ``git checkout``. Until then ``git status`` shows them deleted: never commit
in between (``out`` says so), and run ``back`` right after the device call.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from gpu_wheels import travel_line, tree_bytes  # noqa: E402

SLIM: tuple[str, ...] = ("results/cpu/runs", "results/cpu/levels")
"""What ``out`` takes out of the working tree: tracked folders no device script reads."""

WHEELS = ".gpu-wheels"
"""The wheel folder a device call carries (``scripts/gpu_wheels.py``)."""


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"device_slim: git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def size_line(repo: Path) -> str:
    """What would travel with ``repo``: its tree and :data:`WHEELS`, against the limit
    (``gpu_wheels.travel_line``)."""
    wheels = repo / WHEELS
    folder = sum(p.stat().st_size for p in wheels.iterdir() if p.is_file()) \
        if wheels.is_dir() else 0
    return travel_line(tree_bytes(repo), folder, who="device_slim")


def take_out(repo: Path, paths: Sequence[str] = SLIM) -> int:
    """Delete the tracked files of ``paths`` from ``repo``'s working tree (refused, in one
    line, while any has uncommitted changes); how many."""
    changed = git(repo, "status", "--porcelain", "--untracked-files=all", "--", *paths)
    if changed.strip():
        first = changed.splitlines()[0][3:]
        sys.exit(f"device_slim: {first}: uncommitted changes under {', '.join(paths)}; commit "
                 "or drop them first (back restores only what git holds)")
    files = [f for f in git(repo, "ls-files", "-z", "--", *paths).split("\0") if f]
    for name in files:
        (repo / name).unlink(missing_ok=True)
    for path in paths:  # the folders left empty, deepest first
        top = repo / path
        folders = [*sorted(top.rglob("*"), reverse=True), top] if top.is_dir() else []
        for folder in folders:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    return len(files)


def put_back(repo: Path, paths: Sequence[str] = SLIM) -> int:
    """Restore the tracked files of ``paths`` that are missing from the working tree; how
    many."""
    missing = [f for f in git(repo, "ls-files", "-z", "--deleted", "--", *paths).split("\0")
               if f]
    if missing:
        git(repo, "checkout", "--", *paths)
    return len(missing)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["size", "out", "back"])
    args = ap.parse_args(argv)
    if args.action == "out":
        n = take_out(REPO)
        print(f"device_slim: {n} files of {', '.join(SLIM)} out of the working tree (git keeps "
              "them); do not commit until `python scripts/device_slim.py back`")
    elif args.action == "back":
        print(f"device_slim: {put_back(REPO)} files of {', '.join(SLIM)} restored from git")
    print(size_line(REPO))


if __name__ == "__main__":
    main()
