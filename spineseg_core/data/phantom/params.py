"""The difficulty knobs of the procedural spine phantom.

Every case of the phantom is a pure function of ``(seed, case_id, size, PhantomParams)``; the
parameters are what a study changes to make the task harder or easier (noise, bias field,
contrast overlap, degenerated discs, shape jitter, transitional vertebrae) and to match the
real data's acquisition (field of view, slice thickness, slice-count mix, presence of the rare
upper thoracic levels). Three more knobs, all 0 by default, put hard cases into the set (a
complete transitional vertebra, a field of view that misses the sacrum); their random numbers
come from a stream of their own, so the default phantom is unchanged by their existence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from spineseg_core.errors import ConfigError

DEFAULT_PRESENCE: tuple[tuple[int, float], ...] = (
    (7, 1.0),     # T12
    (17, 0.97),   # T11/T12
    (8, 0.94),    # T11
    (18, 0.37),   # T10/T11
    (9, 0.26),    # T10
    (19, 0.08),   # T9/T10
    (10, 0.05),   # T9
)
"""Target presence rate of the upper labels, bottom-up (MRSpineSeg: T11 94 %, T10 26 %, T9 5 %,
T10/T11 37 %, T9/T10 8 %). The field of view's top edge is drawn so that exactly these rates
hold in expectation; everything below T12 is always in view."""

HARD_CASE_RATES: tuple[str, ...] = ("sacralised_l5_rate", "lumbarised_s1_rate", "fov_cut_rate")
"""The hard-case knobs. Each is the probability of one of three disjoint events (a subject
carries at most one hard case), so their sum must not exceed 1. At 0 they are left out of
:meth:`PhantomParams.to_dict`, so the marker and records of a default phantom are unchanged."""


@dataclass(frozen=True)
class PhantomParams:
    """Difficulty and acquisition knobs of the phantom (all have the study's defaults).

    Attributes:
        noise: Rician noise sigma relative to the CSF signal (~1.0).
        bias: strength of the smooth multiplicative bias field (log-amplitude of a quadratic
            polynomial over the volume).
        contrast_overlap: 0..1, how far marrow, annulus and degenerated nucleus means may be
            pulled towards each other in a case (0 keeps the textbook contrast).
        degeneration_rate: probability that the lowest disc (L5/S) is desiccated; higher
            discs are desiccated with a geometrically decreasing rate.
        shape_jitter: multiplier of the per-level size, wedge and concavity jitter.
        transitional_rate: probability of a *partial* lumbosacral transitional anatomy that
            keeps the count of levels (image only: a lumbarised S1 shows as a rudimentary disc
            inside the sacrum, a half-fused L5 as a thin, dark L5/S disc); the complete forms
            are the two knobs below.
        sacralised_l5_rate: probability of a complete sacralised L5 (default 0): L5 and its
            disc fuse into the sacrum's top segment, leaving four free lumbar vertebrae. The
            mask counts up from the sacrum, as MRSpineSeg's annotation does: the fused L5 is
            ``S`` (1), the anatomical L4 is labelled ``L5`` (2), its lower disc ``L5/S`` (11),
            and every level above is named one level lower than its anatomy (the anatomical
            T12 is labelled ``L1``). Literature: transitional vertebrae of any Castellvi type
            are common, 15.8 % of 5,860 adults (Tang et al. 2014, Eur J Radiol 83:1679,
            doi:10.1016/j.ejrad.2014.05.036) and 18.1 % of 4,636 (Nardo et al. 2012, Radiology,
            doi:10.1148/radiol.12112747), with sacralisation about ten times as frequent as
            lumbarisation (17.2 % vs 1.7 % of 3,607 abdominal films, Ucar et al. 2013,
            Arthritis 2013:461425). The fused forms this knob draws
            (Castellvi III/IV) are 12.0 % (Tang) and 16.7 % (Nardo) of those, about 2-3 % of
            people. A realistic setting is therefore ~0.03 for the fused form, up to ~0.17 if
            every sacralisation is counted as one (uncertain: rates vary with the population,
            the modality and whether type I counts).
        lumbarised_s1_rate: probability of a complete lumbarised S1 (default 0): S1 becomes a
            mobile, lumbar-type vertebra above a hypoplastic, desiccated S1/S2 disc, giving six
            lumbar-type vertebrae. Counting up from the sacrum, S1 is labelled ``L5`` (2), the
            S1/S2 disc ``L5/S`` (11), the anatomical L5 ``L4`` (3) and so on; the anatomical L1
            is labelled ``T12`` (7). Literature: 1.7 % (Ucar et al. 2013, above); 0.2 % of
            2,078 (5 lumbarisations, Saudi Med J 2017 38:794); six non-ribbed lumbar vertebrae
            in 6.6 % of 211 subjects (Apazidis et al. 2011, Spine J 11:858, whose overall LSTV
            rate is 35.6 %, not the ~12 % sometimes attributed to it). A realistic setting is
            0.002-0.02 (uncertain, the studies disagree by ten times).
        fov_cut_rate: probability that the field of view misses the sacrum (default 0): the
            field is moved up the spine until its inferior edge passes through the upper
            sacrum (12-45 mm of it in view) or above it (no sacrum; the lowest level in view is
            L5 or L4), half of each. Labels keep their anatomical names: the reference is
            right even where a model that counts from the sacrum cannot be. No population
            rate exists: it is a property of the protocol. MRSpineSeg's lumbar fields include
            the sacrum (the project's dataset notes name no case without it: ~0 %); thoracic or
            whole-spine series, and lumbar series planned high, miss it, which is where users
            of current tools report wrong levels (TotalSpineSeg issues #123, #67). Choose the
            rate for the scenario to test.
        p_15_slices: probability of 15 sagittal slices instead of 12 (MRSpineSeg: 35/172).
        slice_mm: slice thickness and spacing in mm.
        fov_mm: in-plane square field of view in mm; pixel spacing is ``fov_mm / size``.
        sub_slices: odd number of sub-slices averaged across each slice's thickness
            (through-plane partial volume); labels come from the centre one.
        scoliosis_mm: largest amplitude (mm) of the mild lateral curvature; each case draws
            its own amplitude in ``[0, scoliosis_mm]``.
        annotation_jitter_mm: sd (mm) of the smooth in-plane displacement between the image
            and its labels, so label boundaries do not sit exactly on intensity edges.
        presence: ``(label, rate)`` pairs, bottom-up, for the upper levels (see
            :data:`DEFAULT_PRESENCE`); rates must not increase upwards.
    """

    noise: float = 0.035
    bias: float = 0.35
    contrast_overlap: float = 0.2
    degeneration_rate: float = 0.35
    shape_jitter: float = 1.0
    transitional_rate: float = 0.08
    sacralised_l5_rate: float = 0.0
    lumbarised_s1_rate: float = 0.0
    fov_cut_rate: float = 0.0
    p_15_slices: float = 0.2
    slice_mm: float = 4.4
    fov_mm: float = 303.4
    sub_slices: int = 3
    scoliosis_mm: float = 4.0
    annotation_jitter_mm: float = 0.6
    presence: tuple[tuple[int, float], ...] = DEFAULT_PRESENCE

    def __post_init__(self) -> None:
        for name in ("noise", "bias", "shape_jitter"):
            if not 0.0 <= getattr(self, name) <= 5.0:
                raise ConfigError(f"PhantomParams.{name} must be in [0, 5], got {getattr(self, name)}")
        for name in ("contrast_overlap", "degeneration_rate", "transitional_rate", "p_15_slices",
                     *HARD_CASE_RATES):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"PhantomParams.{name} must be in [0, 1], got {getattr(self, name)}")
        total = sum(getattr(self, name) for name in HARD_CASE_RATES)
        if total > 1.0 + 1e-9:
            raise ConfigError(f"PhantomParams.{' + '.join(HARD_CASE_RATES)} must sum to at most 1 "
                              f"(a subject has at most one hard case), got {total:g}")
        if not 1.0 <= self.slice_mm <= 10.0:
            raise ConfigError(f"PhantomParams.slice_mm must be in [1, 10] mm, got {self.slice_mm}")
        if not 250.0 <= self.fov_mm <= 450.0:
            raise ConfigError(f"PhantomParams.fov_mm must be in [250, 450] mm, got {self.fov_mm}")
        if not (1 <= int(self.sub_slices) <= 9 and int(self.sub_slices) % 2 == 1
                and self.sub_slices == int(self.sub_slices)):
            raise ConfigError(f"PhantomParams.sub_slices must be an odd integer in [1, 9], "
                              f"got {self.sub_slices}")
        object.__setattr__(self, "sub_slices", int(self.sub_slices))
        for name in ("scoliosis_mm", "annotation_jitter_mm"):
            if not 0.0 <= getattr(self, name) <= 20.0:
                raise ConfigError(f"PhantomParams.{name} must be in [0, 20] mm, "
                                  f"got {getattr(self, name)}")
        labels = [int(lab) for lab, _ in self.presence]
        rates = [float(r) for _, r in self.presence]
        if labels != [lab for lab, _ in DEFAULT_PRESENCE]:
            raise ConfigError("PhantomParams.presence must list the labels "
                              f"{[lab for lab, _ in DEFAULT_PRESENCE]} bottom-up, got {labels}")
        if any(not 0.0 < r <= 1.0 for r in rates) or any(b > a for a, b in zip(rates, rates[1:])):
            raise ConfigError("PhantomParams.presence rates must be in (0, 1] and must not "
                              f"increase upwards, got {rates}")
        object.__setattr__(self, "presence", tuple((lab, r) for lab, r in zip(labels, rates)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (``presence`` as a list of pairs; hard-case rates only when not 0)."""
        d = asdict(self)
        d["presence"] = [list(p) for p in self.presence]
        for name in HARD_CASE_RATES:
            if d[name] == 0.0:
                del d[name]
        return d

    @property
    def has_hard_cases(self) -> bool:
        """Whether any hard-case rate is above 0."""
        return any(getattr(self, name) > 0.0 for name in HARD_CASE_RATES)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PhantomParams:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown PhantomParams field(s) {unknown}; known: {sorted(known)}")
        kw = dict(d)
        if "presence" in kw:
            kw["presence"] = tuple((int(a), float(b)) for a, b in kw["presence"])
        return cls(**kw)
