"""A fingerprint of the source that shapes training and evaluation.

A git commit names a whole tree, so two runs from commits that differ only in the book, the
tests or the study's aggregation carry different commits yet computed the same numbers, and a
run from a dirty working tree carries a commit that is not what ran. The fingerprint hashes
what computes a run's numbers, by content: the data pipeline, the models, the losses and
metrics, the training package (config, loop, step, evaluation, prediction) and the training
notebook. It leaves out what only orchestrates or reports runs (the study runner and its
aggregation, measurement, the command line, atomic writing, error messages), so the book and
its analysis can improve while a long re-run, spanning sessions, stays one code version. Each
run stamps it into ``params.json`` (:func:`spineseg_core.envinfo.env_stamp`) and
:func:`spineseg_core.study.aggregate.aggregate` refuses to put runs of different fingerprints
into one bundle unless told to.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
"""The folder holding ``spineseg_core/`` (the repository root for an editable install)."""

SOURCE_PATTERNS: tuple[str, ...] = (
    "spineseg_core/data/**/*.py", "spineseg_core/models/**/*.py", "spineseg_core/training/**/*.py",
    "spineseg_core/labels.py", "spineseg_core/losses.py", "spineseg_core/metrics.py",
    "notebooks/train.ipynb")
"""What is hashed, relative to :data:`REPO`: the code that computes a run's numbers and the
training notebook; not the study, measurement, command line, book, tests or results. A file
that is absent (the notebook, beside a non-editable install) is not hashed."""

UNRECORDED = "unrecorded"
"""What stands for the fingerprint of a run made before runs recorded one."""

SHORT = 12
"""Hex digits shown where a fingerprint is printed (the full one is stored)."""


def source_files(root: str | Path = REPO) -> list[Path]:
    """The files of :data:`SOURCE_PATTERNS` under ``root``, by sorted relative POSIX path."""
    root = Path(root)
    found = {p for pattern in SOURCE_PATTERNS for p in root.glob(pattern) if p.is_file()}
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def source_fingerprint(root: str | Path = REPO) -> str:
    """SHA-256 (hex) of the source files under ``root``: each one's relative path and bytes.

    Independent of timestamps, of the checkout's location and of git: the same files give the
    same fingerprint anywhere; changing, adding, removing or renaming one changes it. Each file
    enters as its path, its size and its bytes, so no two file sets can run together into the
    same stream.
    """
    root = Path(root)
    h = hashlib.sha256()
    for path in source_files(root):
        data = path.read_bytes()
        h.update(f"{path.relative_to(root).as_posix()}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def short(fingerprint: object) -> str:
    """The first :data:`SHORT` hex digits, or :data:`UNRECORDED` for a run that has none
    (``None``, an empty cell read back from a CSV as NaN)."""
    if isinstance(fingerprint, str) and fingerprint and fingerprint != UNRECORDED:
        return fingerprint[:SHORT]
    return UNRECORDED


def describe(runs_per_fingerprint: Mapping[str | None, int]) -> str:
    """``"aaaaaaaaaaaa (2 runs), unrecorded (1 run)"``: short fingerprints and their run counts."""
    return ", ".join(f"{short(fp)} ({n} run{'s' * (n != 1)})"
                     for fp, n in runs_per_fingerprint.items())


def commit_fingerprint(commit: str, repo: str | Path = REPO) -> str:
    """The fingerprint of the source at git ``commit`` of ``repo``, without checking it out:
    the fingerprinted paths are exported (``git archive``) into a temporary folder and hashed
    there, with this version's :data:`SOURCE_PATTERNS` (the pinned commits so far have the
    same). What a bundle's pinned commit is checked against (its records' fingerprint)."""
    import io
    import subprocess
    import tarfile
    import tempfile

    from spineseg_core.errors import ConfigError

    tops = sorted({pattern.split("/")[0] for pattern in SOURCE_PATTERNS})
    done = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", commit, "--",
                           *tops], capture_output=True)
    if done.returncode != 0:
        raise ConfigError(f"commit {commit!r} of {repo}: git archive failed: "
                          f"{done.stderr.decode(errors='replace').strip()}")
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        tar.extractall(tmp, filter="data")
        return source_fingerprint(tmp)


def read_pin(path: str | Path) -> tuple[str, str]:
    """``(commit, fingerprint)`` from a pin file (``results/plateau/CODE``: one line,
    ``<commit> <fingerprint>``, written by the budget seed: ``scripts/plateau_rerun.py --parts
    seed``, which ``scripts/budget_seed.sh`` runs), checked for form."""
    from spineseg_core.errors import ConfigError

    fields = Path(path).read_text().split()
    if (len(fields) != 2 or not all(len(f) in (40, 64) and all(c in "0123456789abcdef" for c in f)
                                    for f in fields)):
        raise ConfigError(f"{path}: expected '<40-hex commit> <64-hex fingerprint>', got "
                          f"{' '.join(fields)[:120]!r}")
    return fields[0], fields[1]


def verify_pin(path: str | Path, root: str | Path = REPO) -> tuple[str, str]:
    """:func:`read_pin` of ``path``, refused (:class:`ConfigError`, one line) when the pin is
    missing or the source under ``root`` (a checkout of the pinned commit, or the tree a GPU
    study is sent) does not have the pinned fingerprint."""
    from spineseg_core.errors import ConfigError

    if not Path(path).is_file():
        raise ConfigError(f"{path}: missing; the budget seed (scripts/budget_seed.sh, the part "
                          "seed of scripts/plateau_rerun.py) pins the code of the runs at the "
                          "plateau budget")
    commit, fingerprint = read_pin(path)
    mine = source_fingerprint(root)
    if mine != fingerprint:
        raise ConfigError(f"{root} has source fingerprint {short(mine)}, the runs at the "
                          f"plateau budget {short(fingerprint)} (commit {commit[:7]}): run "
                          "them from that commit")
    return commit, fingerprint
