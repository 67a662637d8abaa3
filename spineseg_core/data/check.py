"""Validate every case of a dataset folder and summarise what the study will see."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spineseg_core.data.layout import Layout, detect_layout, scan_cases
from spineseg_core.data.readers import load_case
from spineseg_core.errors import DataError
from spineseg_core.labels import LABELS, NUM_CLASSES


@dataclass
class CheckReport:
    """The outcome of :func:`check_dataset`: counts over the valid cases, and every problem."""

    root: Path
    layout: Layout
    cases: dict[str, Counter] = field(default_factory=dict)
    sizes: Counter = field(default_factory=Counter)
    spacings: Counter = field(default_factory=Counter)
    slice_counts: Counter = field(default_factory=Counter)
    orientations: Counter = field(default_factory=Counter)
    label_presence: dict[str, int] = field(
        default_factory=lambda: {lab.name: 0 for lab in LABELS})
    unlabelled: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def n_labelled(self) -> int:
        return sum(c["labelled"] for c in self.cases.values())

    @property
    def usable(self) -> bool:
        """No problem at all, and at least one labelled case."""
        return not self.problems and self.n_labelled > 0

    def format(self) -> str:
        """A human-readable multi-line summary (problems excluded: they are printed apart)."""
        def counts(c: Counter) -> str:
            ranked = sorted(c.items(), key=lambda kv: (-kv[1], str(kv[0])))
            return ", ".join(f"{k} ({n})" for k, n in ranked) or "-"

        lines = [f"dataset: {self.root}", f"layout: {self.layout}"]
        for subset, c in self.cases.items():
            lines.append(f"cases {subset}: {c['labelled']} labelled, {c['unlabelled']} unlabelled")
        lines += [f"in-plane sizes: {counts(self.sizes)}",
                  f"spacings (slice x row x col, mm): {counts(self.spacings)}",
                  f"slices per case: {counts(self.slice_counts)}",
                  f"orientations (file axis codes): {counts(self.orientations)}",
                  f"label presence (labelled cases containing each class, of {self.n_labelled}):"]
        lines += [f"  {lab.value:2d} {lab.name:8s} {self.label_presence[lab.name]}" for lab in LABELS]
        if self.unlabelled:
            lines.append(f"unlabelled cases ({len(self.unlabelled)}): {', '.join(self.unlabelled)}")
        lines.append(f"problems: {len(self.problems)}")
        return "\n".join(lines)


def check_dataset(root: str | Path, *, sequences: Sequence[str] = ("t2",)) -> CheckReport:
    """Read and validate every case of ``root``; collect problems instead of stopping at one.

    Raises :class:`DataError` only when the folder itself is not a dataset.
    """
    root = Path(root)
    layout = detect_layout(root)
    refs, scan_problems = scan_cases(root, layout, sequences=sequences)
    report = CheckReport(root=root, layout=layout)
    report.problems += [(str(p.path), p.problem) for p in scan_problems]
    for ref in refs:
        try:
            vol = load_case(ref)
        except DataError as exc:
            report.problems.append((str(exc.path), exc.problem))
            continue
        c = report.cases.setdefault(ref.subset, Counter(labelled=0, unlabelled=0))
        c["labelled" if vol.mask is not None else "unlabelled"] += 1
        _, h, w = vol.shape
        report.sizes[f"{h}x{w}"] += 1
        report.spacings["x".join(f"{s:.4g}" for s in vol.spacing)] += 1
        report.slice_counts[vol.num_slices] += 1
        report.orientations["".join(vol.source_axcodes)] += 1
        if vol.mask is None:
            report.unlabelled.append(f"{ref.subset}/{ref.case_id}")
            continue
        present = np.bincount(vol.mask.ravel(), minlength=NUM_CLASSES) > 0
        for lab in LABELS:
            report.label_presence[lab.name] += int(present[lab.value])
    return report
