"""The wheels a lent GPU machine lacks, downloaded here into one git-ignored folder.

    python scripts/gpu_wheels.py                 # -> .gpu-wheels/ (CPython 3.12, manylinux x86_64)
    python scripts/gpu_wheels.py --python-version 3.11 --dest /tmp/wheels311

The lent machine (docs/gpu.md) reaches no package registry. Its image holds Python 3.12, a CUDA
torch 2.11, numpy, pandas, scipy, matplotlib, seaborn, tqdm, pytest, pytest-timeout,
safetensors, einops, humanize, jaxtyping, rich, typer, packaging, typing-extensions, wrapt and
setuptools, but not what :data:`PACKAGES` names. The GPU path reads NIfTI with NiBabel and
augments whole batches on the device (``spineseg_core.data.batch_augment``), so TorchIO (and
SimpleITK, 53 MB) stay behind: only the per-slice CPU augmentation imports them.
``scripts/gpu_check.sh`` and ``scripts/gpu_study.sh`` install this folder offline
(``pip install --no-index --find-links``) beside the image's torch, which is never replaced.

Each wheel is pinned by ``constraints.txt`` (setuptools, which pins nothing there, by
:data:`SETUPTOOLS`: the editable install's build backend, installed only where the image's is
missing or older than ``pyproject.toml`` asks). The folder gets ``requirements.txt`` (the names
to install) and ``constraints.txt`` (their pins); a torch, triton or nvidia wheel, or a folder
over :data:`LIMIT_MB`, is refused with one line. The download goes to a temporary folder first,
so a failed run leaves the previous folder as it was. The folder travels with the working tree,
which the device tool caps at :data:`TRAVEL_MIB`: the last line says what both weigh.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PACKAGES: tuple[str, ...] = ("nibabel",)
"""What the GPU path imports that the image lacks (NiBabel's own needs, numpy, packaging and
typing-extensions, are in the image)."""

SETUPTOOLS = "setuptools==81.0.0"
"""The build backend's wheel: >= 68 for ``pyproject.toml``, < 82 for torch 2.11's metadata."""

FORBIDDEN = re.compile(r"^((torch|triton)-|nvidia[-_])", re.IGNORECASE)
"""Wheels that must never travel: the image's CUDA torch is the one the check measures."""

LIMIT_MB = 8.0
"""The most the folder may hold (MB of 10**6 bytes): a small share of :data:`TRAVEL_MIB`, which
the tree itself mostly fills (NiBabel and setuptools are about 4.8 MB)."""

TRAVEL_MIB = 64.0
"""What the device tool sends at most: the tree's tracked and untracked-not-ignored files plus
carried paths such as this folder (MiB of 2**20 bytes; /work/.library/device/README.md)."""

PLATFORMS: tuple[str, ...] = ("manylinux2014_x86_64", "manylinux_2_17_x86_64",
                              "manylinux_2_28_x86_64")


class WheelError(SystemExit):
    """A refusal: exits with one line on stderr."""

    def __init__(self, message: str) -> None:
        super().__init__(f"gpu_wheels: {message}")


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares them (``SimpleITK`` = ``simpleitk``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(constraints: str, names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """``{name: "name==version"}`` of ``names`` from the text of ``constraints.txt``; a name
    it does not pin is a :class:`WheelError`."""
    found: dict[str, str] = {}
    for line in constraints.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = (s.strip() for s in line.split("==", 1))
            found[normalise(name)] = f"{normalise(name)}=={version}"
    missing = [n for n in names if normalise(n) not in found]
    if missing:
        raise WheelError(f"constraints.txt pins no version of {', '.join(missing)}")
    return {n: found[normalise(n)] for n in names}


def check_folder(folder: Path, limit_mb: float = LIMIT_MB) -> float:
    """The folder's size in MB; a forbidden wheel, two versions of one package or a size over
    ``limit_mb`` is a :class:`WheelError`."""
    wheels = sorted(folder.glob("*.whl"))
    bad = [w.name for w in wheels if FORBIDDEN.match(w.name)]
    if bad:
        raise WheelError(f"{folder}: refusing {', '.join(bad)} (the machine's own torch is used)")
    names = [normalise(w.name.split("-", 1)[0]) for w in wheels]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise WheelError(f"{folder}: more than one wheel of {', '.join(twice)}")
    size = sum(w.stat().st_size for w in wheels) / 1e6
    if size > limit_mb:
        raise WheelError(f"{folder}: {size:.1f} MB of wheels, over the {limit_mb:g} MB limit")
    return size


def download(requirements: list[str], dest: Path, python_version: str) -> None:
    """``pip download`` of exactly ``requirements`` (no dependencies) as binary wheels for
    CPython ``python_version`` on manylinux x86_64."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--only-binary=:all:", "--python-version", python_version,
               "--implementation", "cp", *(a for p in PLATFORMS for a in ("--platform", p)),
               "--dest", str(dest), *requirements]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [l for l in done.stderr.splitlines() if l.startswith("ERROR")] or ["pip failed"]
        raise WheelError(f"pip download {' '.join(requirements)}: {lines[-1]}")


def build(dest: Path, python_version: str, constraints: Path = REPO / "constraints.txt",
          limit_mb: float = LIMIT_MB) -> float:
    """Fill ``dest`` (replaced whole) with the pinned wheels, ``requirements.txt`` and
    ``constraints.txt``; returns its size in MB."""
    pinned = pins(constraints.read_text())
    dest = dest.resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}-") as tmp:
        folder = Path(tmp) / "wheels"
        folder.mkdir()
        download([*pinned.values(), SETUPTOOLS], folder, python_version)
        size = check_folder(folder, limit_mb)
        (folder / "requirements.txt").write_text("\n".join(pinned) + "\n")
        (folder / "constraints.txt").write_text("\n".join(pinned.values()) + "\n")
        (folder / "setuptools.txt").write_text(SETUPTOOLS + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        folder.rename(dest)
    return size


def tree_bytes(repo: Path = REPO) -> int:
    """Bytes of the files that travel with ``repo``'s working tree: tracked ones and untracked
    ones git does not ignore, as they are on disk (a deleted tracked file counts nothing)."""
    listed = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], capture_output=True, check=True).stdout
    files = {repo / name for name in listed.decode().split("\0") if name}
    return sum(f.stat().st_size for f in files if f.is_file() and not f.is_symlink())


def travel_line(tree: int, wheels: int, limit_mib: float = TRAVEL_MIB,
                who: str = "gpu_wheels") -> str:
    """What travels to the device machine against its limit, in MiB, with the margin left;
    ``who``: the script that says it."""
    total = (tree + wheels) / 2**20
    return (f"{who}: tree {tree / 2**20:.1f} MiB + wheels {wheels / 2**20:.1f} MiB = "
            f"{total:.1f} MiB of the device tool's {limit_mib:g} MiB "
            + (f"({limit_mib - total:.1f} MiB left)" if total <= limit_mib
               else f"(OVER by {total - limit_mib:.1f} MiB: it will refuse to send them)"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=REPO / ".gpu-wheels")
    parser.add_argument("--python-version", default="3.12",
                        help="the GPU machine's Python (default 3.12)")
    parser.add_argument("--limit-mb", type=float, default=LIMIT_MB)
    args = parser.parse_args(argv)
    size = build(args.dest, args.python_version, limit_mb=args.limit_mb)
    wheels = sorted(p.name for p in args.dest.glob("*.whl"))
    print(f"gpu_wheels: {len(wheels)} wheels, {size:.1f} MB in {args.dest} "
          f"(CPython {args.python_version}, manylinux x86_64): {', '.join(wheels)}")
    folder = sum(p.stat().st_size for p in args.dest.iterdir() if p.is_file())
    print(travel_line(tree_bytes(), folder))


if __name__ == "__main__":
    main()
