"""Dataset layouts on disk and the list of cases in a dataset folder.

Three layouts are recognised, each from its folder structure alone:

- ``MRSPINESEG``: ``<root>/<subset>/MR/Case<N>.nii.gz`` with labels in
  ``<root>/<subset>/Mask/mask_case<N>.nii.gz`` (``subset`` is ``train``, ``test1``, ``test2``).
- ``PHANTOM``: the MRSpineSeg layout plus a ``phantom.json`` marker at the root.
- ``SPIDER``: ``<root>/images/<pid>_<t1|t2|t2_SPACE>.mha`` with masks of the same name under
  ``<root>/masks/``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from spineseg_core.errors import ConfigError, DataError

PHANTOM_MARKER = "phantom.json"
MRSPINESEG_SUBSETS: tuple[str, ...] = ("train", "test1", "test2")
SPIDER_SEQUENCES: tuple[str, ...] = ("t1", "t2", "t2_space")

_MR_IMAGE = re.compile(r"^Case(?P<num>\d+)\.nii\.gz$")
_MR_MASK = re.compile(r"^mask_case(?P<num>\d+)\.nii\.gz$")
_SPIDER_NAME = re.compile(r"^(?P<pid>[^_]+)_(?P<seq>t1|t2|t2_SPACE)\.mha$", re.IGNORECASE)


class Layout(StrEnum):
    """How a dataset folder is organised."""

    MRSPINESEG = "mrspineseg"
    SPIDER = "spider"
    PHANTOM = "phantom"


@dataclass(frozen=True)
class CaseRef:
    """Where one case lives: its image, its mask (``None`` if unlabelled) and its subset.

    ``patient_id`` groups the series of one patient (SPIDER's T1 and T2 share a mask), so that
    splits never put one patient on both sides; for MRSpineSeg it equals ``case_id``.
    """

    case_id: str
    image_path: Path
    mask_path: Path | None
    subset: str
    patient_id: str = ""

    def __post_init__(self) -> None:
        if not self.patient_id:
            object.__setattr__(self, "patient_id", self.case_id)

    @property
    def labelled(self) -> bool:
        return self.mask_path is not None


def detect_layout(root: str | Path) -> Layout:
    """Recognise the layout of the dataset folder ``root`` from its structure."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "dataset folder does not exist")
    if not any(root.iterdir()):
        raise DataError(root, "dataset folder is empty")
    if any((root / s / "MR").is_dir() for s in MRSPINESEG_SUBSETS):
        return Layout.PHANTOM if (root / PHANTOM_MARKER).is_file() else Layout.MRSPINESEG
    if (root / "images").is_dir() and (root / "masks").is_dir():
        if any((root / "images").glob("*.mha")):
            return Layout.SPIDER
        raise DataError(root / "images", "SPIDER layout without any .mha image")
    raise DataError(root, "not a recognised dataset: expected train/MR/Case<N>.nii.gz with "
                          "train/Mask/mask_case<N>.nii.gz (MRSpineSeg) or images/*.mha with "
                          "masks/*.mha (SPIDER)")


def _natural_key(ref: CaseRef) -> tuple:
    parts = re.split(r"(\d+)", ref.case_id)
    rank = MRSPINESEG_SUBSETS.index(ref.subset) if ref.subset in MRSPINESEG_SUBSETS else 99
    return (rank, ref.subset, tuple(int(p) if p.isdigit() else p for p in parts))


def _scan_mrspineseg(root: Path, sequences: Sequence[str]) -> tuple[list[CaseRef], list[DataError]]:
    refs: list[CaseRef] = []
    problems: list[DataError] = []
    for subset in MRSPINESEG_SUBSETS:
        mr_dir, mask_dir = root / subset / "MR", root / subset / "Mask"
        if not mr_dir.is_dir():
            continue
        images: dict[str, Path] = {}
        for p in sorted(mr_dir.iterdir()):
            m = _MR_IMAGE.match(p.name)
            if m:
                images[m["num"]] = p
            elif not p.name.startswith("."):
                problems.append(DataError(p, "unexpected file name: expected Case<N>.nii.gz"))
        masks: dict[str, Path] = {}
        if mask_dir.is_dir():
            for p in sorted(mask_dir.iterdir()):
                m = _MR_MASK.match(p.name)
                if m:
                    masks[m["num"]] = p
                elif not p.name.startswith("."):
                    problems.append(
                        DataError(p, "unexpected file name: expected mask_case<N>.nii.gz"))
        labelled_subset = mask_dir.is_dir()
        for num, img in images.items():
            mask = masks.get(num)
            if labelled_subset and mask is None:
                problems.append(DataError(img, f"image without its mask "
                                               f"{mask_dir / f'mask_case{num}.nii.gz'}"))
                continue
            refs.append(CaseRef(f"Case{num}", img, mask, subset))
        for num, mask in masks.items():
            if num not in images:
                problems.append(DataError(mask, f"mask without its image "
                                                f"{mr_dir / f'Case{num}.nii.gz'}"))
    if not refs and not problems:
        problems.append(DataError(root / "train" / "MR", "no Case<N>.nii.gz image found"))
    return refs, problems


def _scan_spider(root: Path, sequences: Sequence[str]) -> tuple[list[CaseRef], list[DataError]]:
    wanted = {s.lower() for s in sequences}
    unknown = wanted - set(SPIDER_SEQUENCES)
    if unknown:
        raise ConfigError(f"sequences: unknown SPIDER sequence(s) {sorted(unknown)}; "
                          f"valid: {list(SPIDER_SEQUENCES)}")
    refs: list[CaseRef] = []
    problems: list[DataError] = []
    img_dir, mask_dir = root / "images", root / "masks"
    mask_names = {p.name for p in mask_dir.glob("*.mha")}
    image_names = set()
    for p in sorted(img_dir.glob("*.mha")):
        m = _SPIDER_NAME.match(p.name)
        if not m:
            problems.append(DataError(p, "unexpected file name: expected <pid>_<t1|t2|t2_SPACE>.mha"))
            continue
        image_names.add(p.name)
        if m["seq"].lower() not in wanted:
            continue
        if p.name not in mask_names:
            problems.append(DataError(p, f"image without its mask {mask_dir / p.name}"))
            continue
        refs.append(CaseRef(p.name[: -len(".mha")], p, mask_dir / p.name, "train", m["pid"]))
    for name in sorted(mask_names - image_names):
        m = _SPIDER_NAME.match(name)
        if m is None or m["seq"].lower() in wanted:
            problems.append(DataError(mask_dir / name, f"mask without its image {img_dir / name}"))
    if not refs and not problems:
        problems.append(DataError(img_dir, f"no image of sequence(s) {sorted(wanted)} found"))
    return refs, problems


_SCANNERS: dict[Layout, Callable[[Path, Sequence[str]], tuple[list[CaseRef], list[DataError]]]] = {
    Layout.MRSPINESEG: _scan_mrspineseg,
    Layout.PHANTOM: _scan_mrspineseg,
    Layout.SPIDER: _scan_spider,
}


def scan_cases(root: str | Path, layout: Layout | None = None, *,
               sequences: Sequence[str] = ("t2",)) -> tuple[list[CaseRef], list[DataError]]:
    """Every well-formed case of ``root`` plus every naming/pairing problem found on the way.

    Unlike :func:`list_cases` this never raises for a single bad file, so that ``spineseg check``
    and ``skip_bad`` can report all problems at once. ``sequences`` selects SPIDER series.
    """
    root = Path(root)
    layout = detect_layout(root) if layout is None else Layout(layout)
    refs, problems = _SCANNERS[layout](root, sequences)
    return sorted(refs, key=_natural_key), problems


def list_cases(root: str | Path, layout: Layout | None = None, *,
               sequences: Sequence[str] = ("t2",)) -> list[CaseRef]:
    """The cases of the dataset folder ``root``, in natural order (``Case2`` before ``Case10``).

    Raises :class:`DataError` naming the first file that breaks the layout (an image without its
    mask, a mask without its image, a badly named file).
    """
    refs, problems = scan_cases(root, layout, sequences=sequences)
    if problems:
        raise problems[0]
    return refs
