"""Geometry of one phantom case, in millimetres, before any rasterisation.

The spine is a smooth centre line in the mid-sagittal plane, parameterised by arc length
``s`` (0 at the centre of the sacral top endplate, growing upwards). Its tangent angle
``theta`` (from the superior direction, positive towards anterior) carries the sacral slope,
the lumbar lordosis and a mild thoracic kyphosis. Structures are intervals of ``s`` between
*boundaries*: the sacrum below boundary 0, then the L5/S disc, L5, L4/L5, ... upwards. A
boundary is an endplate: a line perpendicular to the centre line, bowed by the endplate
concavity and tilted by a small wedge angle, shared by the vertebra and the disc on either
side — so every vertebra touches its two discs by construction.

World coordinates are ``(z, a)``: ``z`` from the field of view's top edge towards inferior,
``a`` from its anterior edge towards posterior, both in mm, so pixel ``(row, col)`` has its
centre at ``((row + 0.5) * dz, (col + 0.5) * da)``.

:func:`sample_geometry` draws everything that decides which labels are present (sizes, curve,
field of view) from its own random stream, so presence can be computed for hundreds of cases
without rasterising (:func:`present_labels`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np
from scipy.ndimage import gaussian_filter1d

from spineseg_core.data.phantom.params import PhantomParams

DS_MM = 0.5
"""Sampling step of the centre line (mm)."""


class StructureKind(StrEnum):
    """What an interval of the centre line holds."""

    DISC = "disc"
    VERTEBRA = "vertebra"


class Transitional(StrEnum):
    """Partial lumbosacral transitional anatomy (image only: the count of levels is kept)."""

    NONE = "none"
    LUMBARISED = "lumbarised"   # S1 looks mobile: a rudimentary disc inside the sacrum
    SACRALISED = "sacralised"   # L5 half fused: a very thin, dark L5/S disc


class HardCase(StrEnum):
    """The hard case a phantom subject carries (at most one; see :mod:`.params`).

    ``SACRALISED_L5`` and ``LUMBARISED_S1`` are complete transitional vertebrae that change the
    count of mobile levels (four or six lumbar-type vertebrae above the sacrum); the masks name
    the levels by counting up from the sacrum, as MRSpineSeg's annotation does, so the labels
    sit one level away from the anatomical names. ``FOV_CUT`` moves the field of view up until
    its inferior edge passes through or above the sacrum; the labels keep their names.
    """

    NONE = "none"
    SACRALISED_L5 = "sacralised_l5"
    LUMBARISED_S1 = "lumbarised_s1"
    FOV_CUT = "fov_cut"


class FovCut(StrEnum):
    """Where the inferior edge of a cut field of view lies."""

    NONE = "none"
    THROUGH_SACRUM = "through_sacrum"   # part of the upper sacrum still in view
    ABOVE_SACRUM = "above_sacrum"       # no sacrum in view


# Bottom-up above the sacrum: (label, kind, height mm, half depth mm, lateral half width mm).
# Label 0: drawn in the image above T9 but unlabelled, as in the real masks.
_LEVELS: tuple[tuple[int, StructureKind, float, float, float], ...] = (
    (11, StructureKind.DISC, 10.0, 17.5, 24.0),
    (2, StructureKind.VERTEBRA, 27.0, 17.5, 25.0),
    (12, StructureKind.DISC, 11.0, 17.5, 24.0),
    (3, StructureKind.VERTEBRA, 28.0, 17.5, 24.0),
    (13, StructureKind.DISC, 10.5, 17.2, 23.0),
    (4, StructureKind.VERTEBRA, 28.0, 17.0, 23.0),
    (14, StructureKind.DISC, 10.0, 16.8, 22.0),
    (5, StructureKind.VERTEBRA, 27.0, 16.5, 22.0),
    (15, StructureKind.DISC, 9.0, 16.2, 21.0),
    (6, StructureKind.VERTEBRA, 26.0, 16.0, 21.0),
    (16, StructureKind.DISC, 7.0, 15.5, 20.0),
    (7, StructureKind.VERTEBRA, 23.0, 15.0, 19.0),
    (17, StructureKind.DISC, 6.0, 14.8, 18.0),
    (8, StructureKind.VERTEBRA, 22.0, 14.5, 18.0),
    (18, StructureKind.DISC, 5.0, 14.2, 17.0),
    (9, StructureKind.VERTEBRA, 21.0, 14.0, 17.0),
    (19, StructureKind.DISC, 4.5, 13.8, 16.0),
    (10, StructureKind.VERTEBRA, 20.0, 13.5, 16.0),
    (0, StructureKind.DISC, 4.5, 13.2, 15.0),
    (0, StructureKind.VERTEBRA, 19.5, 13.0, 15.0),
    (0, StructureKind.DISC, 4.5, 13.0, 15.0),
    (0, StructureKind.VERTEBRA, 19.0, 13.0, 15.0),
    (0, StructureKind.DISC, 4.5, 12.8, 15.0),
    (0, StructureKind.VERTEBRA, 19.0, 12.5, 15.0),
)
_ANATOMY: tuple[str, ...] = (
    "L5/S1", "L5", "L4/L5", "L4", "L3/L4", "L3", "L2/L3", "L2", "L1/L2", "L1", "T12/L1", "T12",
    "T11/T12", "T11", "T10/T11", "T10", "T9/T10", "T9", "T8/T9", "T8", "T7/T8", "T7", "T6/T7",
    "T6")
"""Anatomical name of each row of :data:`_LEVELS` (bottom-up, for a spine with five lumbar
vertebrae: the label is then the anatomical name)."""
_EXTRA_TOP: tuple[tuple[str, StructureKind, float, float, float], ...] = (
    ("T5/T6", StructureKind.DISC, 4.5, 12.8, 15.0), ("T5", StructureKind.VERTEBRA, 19.0, 12.5, 15.0),
    ("T4/T5", StructureKind.DISC, 4.5, 12.8, 15.0), ("T4", StructureKind.VERTEBRA, 18.5, 12.5, 15.0))
"""Unlabelled levels added on top of a hard case's stack, so that a field moved up the spine
(or a sacralised L5 taking a level from the stack) still shows vertebrae up to its top edge."""
S1_VERTEBRA = (24.0, 17.0, 26.0)
"""Height, half depth and lateral half width (mm) of a lumbarised S1 (a little smaller than L5)."""
S1_DISC_MM = 6.0
"""Height (mm) of the hypoplastic disc below a lumbarised S1 (a normal L5/S1 disc is ~10 mm)."""
FOV_CUT_THROUGH_MM = (12.0, 40.0)
"""A field cut through the sacrum shows this much (mm, superior-inferior) of its upper part
(up to :data:`MIN_SLIVER_MM` more where the field moves down to drop a sliver at its top)."""

MIN_SLIVER_MM = 5.0
"""A level cut by the top edge shows at least this much (mm) of itself, so that whether it is
present does not depend on the pixel size."""
SUPERELLIPSE_P = 6.0
"""Exponent of a vertebral body's rounded-rectangle outline."""
ENDPLATE_STRETCH = 1.25
"""A body's superellipse is this much taller than its interval, so the outline rounds only the
corners and the endplates stay in contact with the discs over ~95 % of their depth."""


@dataclass(frozen=True)
class Structure:
    """One interval of the centre line: a disc or a vertebral body."""

    label: int             # mask value; 0 for drawn-but-unlabelled levels above T9
    kind: StructureKind
    s_lo: float            # lower boundary position on the centre line (mm)
    s_hi: float            # upper boundary position (mm)
    half_depth: float      # anterior-posterior half extent (mm)
    half_width: float      # left-right half extent (mm)
    degenerated: bool = False
    anatomy: str = ""      # anatomical name ("L4", "L4/L5", "S1"...); differs from the label's
                           # name when a transitional vertebra shifts the count


@dataclass(frozen=True)
class SpineGeometry:
    """Everything spatial about one case, in mm (see the module docstring for the frames)."""

    s: np.ndarray          # centre-line arc length samples (K,)
    z: np.ndarray          # world z of each sample (K,)
    a: np.ndarray          # world a of each sample (K,)
    theta: np.ndarray      # tangent angle from superior, + towards anterior (K,)
    structures: tuple[Structure, ...]
    bnd_pos: np.ndarray    # boundary positions on the centre line (M+1,)
    bnd_conc: np.ndarray   # signed endplate concavity (mm) at n = 0
    bnd_tilt: np.ndarray   # tan(wedge angle): s shift per mm of n
    bnd_hd: np.ndarray     # half depth that scales the concavity bump
    sacrum_length: float
    sacrum_hd_top: float
    sacrum_hd_tip: float
    sacrum_hw: float
    canal_depth: float
    canal_hw: float
    back_depth: float      # skin behind the posterior body wall (mm)
    front_depth: float     # skin in front of the anterior body wall (mm)
    fat_back: float
    fat_front: float
    conus_s: float         # the cord ends here (mm on the centre line)
    diaphragm_s: float
    transitional: Transitional
    rudimentary_disc_s: float
    fov_mm: float
    n_slices: int
    slice_mm: float
    lateral_offset: float  # left-right position of the midline relative to the slice grid
    scoliosis_mm: float = 0.0        # amplitude of the mild lateral curvature (mm)
    scoliosis_wavelength: float = 300.0  # its wavelength along the centre line (mm)
    scoliosis_phase: float = 0.0
    hard_case: HardCase = HardCase.NONE
    fov_cut: FovCut = FovCut.NONE
    sacral_segments: int = 5         # fused segments drawn in the sacrum (6 with a sacralised L5)
    # A hard case draws its per-level rendering values from a stream of this seed and skips
    # as many draws of the rendering stream as its default twin makes there (see render).
    hard_render_seed: int = 0
    twin_level_draws: int = 0

    # --- centre-line helpers -------------------------------------------------------------
    def point(self, s: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World ``(z, a)`` of centre-line coordinates ``(s, n)`` (``n`` posterior)."""
        th = np.interp(s, self.s, self.theta)
        z = np.interp(s, self.s, self.z) - n * np.sin(th)
        a = np.interp(s, self.s, self.a) + n * np.cos(th)
        return z, a

    def boundary_s(self, b: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Position on the centre line of boundary(ies) ``b`` at normal offset ``n``."""
        hd = self.bnd_hd[b]
        bump = np.clip(1.0 - (n / hd) ** 2, 0.0, None)
        return self.bnd_pos[b] + self.bnd_conc[b] * bump + self.bnd_tilt[b] * n

    def slice_positions(self) -> np.ndarray:
        """Left-right position (mm, + right) of each slice centre relative to the midline."""
        k = np.arange(self.n_slices) - (self.n_slices - 1) / 2.0
        return k * self.slice_mm + self.lateral_offset

    def lateral_shift(self, s: np.ndarray) -> np.ndarray:
        """Left-right displacement (mm, + right) of the column at centre-line position ``s``.

        A mild scoliosis-like curve: a sine of the arc length, zero at the sacral top
        endplate's phase-shifted origin, whose steepest slope is
        ``2 pi scoliosis_mm / scoliosis_wavelength`` (at most ~6.5 degrees with the default 4 mm).
        """
        s = np.asarray(s, dtype=np.float64)
        return self.scoliosis_mm * (np.sin(2.0 * np.pi * s / self.scoliosis_wavelength
                                           + self.scoliosis_phase) - np.sin(self.scoliosis_phase))

    def half_depth_at(self, s: np.ndarray) -> np.ndarray:
        """Smooth anterior-posterior half depth of the column along the centre line."""
        mids = np.array([(st.s_lo + st.s_hi) / 2 for st in self.structures])
        hds = np.array([st.half_depth for st in self.structures])
        return np.interp(s, np.r_[-self.sacrum_length, 0.0, mids],
                         np.r_[self.sacrum_hd_tip, self.sacrum_hd_top, hds])

    # --- presence ------------------------------------------------------------------------
    def index_of(self, anatomy: str) -> int:
        """Index in :attr:`structures` of the level with this anatomical name."""
        return next(i for i, st in enumerate(self.structures) if st.anatomy == anatomy)

    def lowest_z(self, index: int) -> float:
        """World z of the most inferior point of structure ``index`` (its outline sampled)."""
        return float(self._outline_z(index).max())

    def highest_z(self, index: int) -> float:
        """World z of the most superior point of structure ``index`` (its outline sampled)."""
        return float(self._outline_z(index).min())

    def sacrum_top_z(self) -> float:
        """World z of the sacrum's most superior point (its outline sampled as rendered)."""
        ls = self.sacrum_length
        s = np.linspace(-ls, 0.0, 81)
        v = np.linspace(-1.0, 1.0, 41)
        ss, vv = np.meshgrid(s, v, indexing="ij")
        frac = np.clip(-ss / ls, 0.0, 1.0)
        n = vv * (self.sacrum_hd_top + (self.sacrum_hd_tip - self.sacrum_hd_top) * frac)
        us = (ss + ls / 2.0) / (ls / 2.0) / 1.08
        inside = ((np.abs(us) ** 4 + np.abs(vv) ** 4 <= 1.0)
                  & (ss <= self.boundary_s(np.zeros(ss.shape, dtype=int), n)))
        z, _ = self.point(ss[inside], n[inside])
        return float(z.min())

    def _outline_z(self, index: int) -> np.ndarray:
        """World z of sample points over structure ``index``'s outline."""
        st = self.structures[index]
        u = np.linspace(-1.0, 1.0, 21)
        v = np.linspace(-1.0, 1.0, 21)
        uu, vv = np.meshgrid(u, v, indexing="ij")
        if st.kind is StructureKind.VERTEBRA:
            inside = (np.abs(uu / ENDPLATE_STRETCH) ** SUPERELLIPSE_P
                      + np.abs(vv) ** SUPERELLIPSE_P) <= 1.0
            uu, vv = uu[inside], vv[inside]
        n = vv.ravel() * st.half_depth
        b = index  # structure i sits between boundaries i (below) and i + 1 (above)
        lo = self.boundary_s(np.full(n.shape, b), n)
        hi = self.boundary_s(np.full(n.shape, b + 1), n)
        s = lo + (uu.ravel() + 1.0) / 2.0 * (hi - lo)
        z, _ = self.point(s, n)
        return z


def _level_index(structures: tuple[Structure, ...], label: int) -> int:
    return next(i for i, st in enumerate(structures) if st.label == label)


def _anatomy_index(structures: tuple[Structure, ...], anatomy: str) -> int:
    return next(i for i, st in enumerate(structures) if st.anatomy == anatomy)


@dataclass(frozen=True)
class _HardDraw:
    """A case's hard-case draws, from a stream of their own (see :func:`_draw_hard`)."""

    kind: HardCase
    cut: FovCut
    u_pos: float           # where the cut edge falls within its range (0..1)
    jitter: np.ndarray     # standard normals for the sizes of added levels
    render_seed: int       # seed of the rendering's per-level draws of a hard case
    rng: np.random.Generator  # the rest of the stream (endplates of added levels)


def _draw_hard(case_id: int, seed: int, params: PhantomParams) -> _HardDraw:
    """Draw the case's hard case from the stream ``(seed, case_id, 2)``.

    The geometry's stream ``(seed, case_id, 0)`` and the rendering's ``(seed, case_id, 1)`` are
    left untouched, so with every hard-case rate at 0 a case is bit-for-bit the phantom it was
    before the hard cases existed. The same draws are made whatever the rates, so one case keeps
    its cut position when only the rates change. One uniform picks at most one hard case: the
    rates are the probabilities of disjoint events.
    """
    hard = np.random.default_rng([int(seed), int(case_id), 2])
    u_kind, u_cut, u_pos = (float(u) for u in hard.random(3))
    jitter = hard.normal(0.0, 1.0, 2 + len(_EXTRA_TOP))
    render_seed = int(hard.integers(2 ** 63))
    bounds = np.cumsum([params.sacralised_l5_rate, params.lumbarised_s1_rate,
                        params.fov_cut_rate])
    kinds = (HardCase.SACRALISED_L5, HardCase.LUMBARISED_S1, HardCase.FOV_CUT)
    kind = next((k for k, b in zip(kinds, bounds) if u_kind < b), HardCase.NONE)
    cut = FovCut.NONE
    if kind is HardCase.FOV_CUT:
        cut = FovCut.THROUGH_SACRUM if u_cut < 0.5 else FovCut.ABOVE_SACRUM
    return _HardDraw(kind, cut, u_pos, jitter, render_seed, hard)


@dataclass
class _Row:
    """One level of the stack before it is placed: kind, sizes (mm), state, anatomical name."""

    kind: StructureKind
    height: float
    half_depth: float
    half_width: float
    degenerated: bool
    anatomy: str


def _hard_stack(rows: list[_Row], draw: _HardDraw, scale: float,
                jit: float) -> tuple[list[_Row], float, float | None, int]:
    """The stack of a hard case: ``(rows, sacrum length change, rudimentary disc s, segments)``.

    Four unlabelled levels go on top (T5/T6..T4). A sacralised L5 leaves the stack with the
    L5/S1 disc below it: both become the sacrum's top segment (six segments, a thin disc
    remnant between L5 and S1). A lumbarised S1 joins the stack as a lumbar-type vertebra with
    a hypoplastic, desiccated S1/S2 disc below it; the sacrum keeps S2-S5 (four segments).
    Labels are given later by position, counting up from the sacrum.
    """
    extra = [_Row(kind, h * scale * (1.0 + 0.05 * jit * float(j)), hd * scale, hw * scale,
                  False, name)
             for (name, kind, h, hd, hw), j in zip(_EXTRA_TOP, draw.jitter[2:])]
    rows = rows + extra
    if draw.kind is HardCase.SACRALISED_L5:
        disc, l5 = rows[0], rows[1]
        remnant = 0.4 * disc.height
        return rows[2:], l5.height + remnant, -(l5.height + remnant / 2.0), 6
    if draw.kind is HardCase.LUMBARISED_S1:
        h, hd, hw = S1_VERTEBRA
        s1 = _Row(StructureKind.VERTEBRA, h * scale * (1.0 + 0.05 * jit * float(draw.jitter[0])),
                  rows[1].half_depth * 0.97, hw * scale, False, "S1")
        s1s2 = _Row(StructureKind.DISC, S1_DISC_MM * scale * (1.0 + 0.1 * jit * float(draw.jitter[1])),
                    rows[1].half_depth * 0.95, 24.0 * scale, True, "S1/S2")
        return [s1s2, s1, *rows], -(s1.height + s1s2.height), None, 4
    return rows, 0.0, None, 5


def present_labels(geom: SpineGeometry) -> frozenset[int]:
    """Labels with at least part of their outline inside the field of view.

    The field of view's top edge is ``z = 0``: a structure is present if its most inferior
    point is below it. The bottom of the field of view is placed so that the sacrum, L5/S and
    L5 are always in view, so they are always present — except in a case whose field is cut
    (:attr:`HardCase.FOV_CUT`): there a structure must also start above the bottom edge
    ``z = fov_mm``.
    """
    cut = geom.hard_case is HardCase.FOV_CUT
    out = {1} if not cut or geom.sacrum_top_z() < geom.fov_mm else set()
    for i, st in enumerate(geom.structures):
        if st.label and geom.lowest_z(i) > 0.0 and (not cut or geom.highest_z(i) < geom.fov_mm):
            out.add(st.label)
    return frozenset(out)


def _centre_line(rng: np.random.Generator, jit: float, s_lumbar_top: float, s_top: float,
                 sacrum_length: float) -> tuple[np.ndarray, ...]:
    """Sample the centre line: angles from curvature, positions from angles."""
    s = np.arange(-sacrum_length - 220.0, s_top + 220.0, DS_MM)
    sacral_slope = np.deg2rad(rng.uniform(30.0, 45.0))
    lordosis = np.deg2rad(rng.uniform(40.0, 60.0))
    kyphosis_per_mm = np.deg2rad(rng.uniform(0.05, 0.12))
    sacral_curve = np.deg2rad(rng.uniform(35.0, 55.0))
    kappa = np.zeros_like(s)
    sac = (s >= -sacrum_length) & (s < 0)
    kappa[sac] = sacral_curve / sacrum_length
    lum = (s >= 0) & (s < s_lumbar_top)
    w = 1.6 - s[lum] / s_lumbar_top       # lordosis concentrated low, at L4-S1
    kappa[lum] = -lordosis * w / (w.sum() * DS_MM)
    tho = (s >= s_lumbar_top + 30.0) & (s < s_top + 40.0)
    kappa[tho] = kyphosis_per_mm
    kappa = gaussian_filter1d(kappa, 15.0 / DS_MM)
    theta = np.cumsum(kappa) * DS_MM
    i0 = int(np.searchsorted(s, 0.0))
    theta = theta - theta[i0] + sacral_slope
    dz = -np.cos(theta) * DS_MM
    da = -np.sin(theta) * DS_MM
    z = np.cumsum(dz)
    a = np.cumsum(da)
    return s, z - z[i0], a - a[i0], theta


def sample_geometry(case_id: int, seed: int, params: PhantomParams) -> SpineGeometry:
    """Draw the geometry of case ``case_id`` (its own random stream, independent of size)."""
    rng = np.random.default_rng([int(seed), int(case_id), 0])
    jit = params.shape_jitter
    scale = rng.uniform(0.93, 1.07)

    transitional = Transitional.NONE
    if rng.random() < params.transitional_rate:
        transitional = Transitional(rng.choice([Transitional.LUMBARISED.value,
                                                Transitional.SACRALISED.value]))
    draw = _draw_hard(case_id, seed, params)
    twin_transitional = transitional
    if draw.kind in (HardCase.SACRALISED_L5, HardCase.LUMBARISED_S1):
        transitional = Transitional.NONE   # the complete form replaces the partial one

    # Desiccation: L5/S at the given rate, each disc above with 0.6 times the rate below.
    n_disc = sum(1 for lv in _LEVELS if lv[1] is StructureKind.DISC)
    degen = rng.random(n_disc) < params.degeneration_rate * 0.6 ** np.arange(n_disc)
    h_jit = rng.normal(0.0, 0.05 * jit, len(_LEVELS))
    d_jit = rng.normal(0.0, 0.04 * jit, len(_LEVELS))
    shrink = rng.uniform(0.5, 0.75, n_disc)

    heights, hds, hws, degenerated = [], [], [], []
    di = 0
    for k, (_label, kind, h, hd, hw) in enumerate(_LEVELS):
        h = h * scale * (1.0 + h_jit[k])
        hd = hd * scale * (1.0 + d_jit[k])
        deg = False
        if kind is StructureKind.DISC:
            deg = bool(degen[di])
            if deg:
                h *= shrink[di]
            if di == 0 and transitional is Transitional.SACRALISED:
                h, deg = h * 0.35, True
            di += 1
        heights.append(h)
        hds.append(hd)
        hws.append(hw * scale)
        degenerated.append(deg)

    sacrum_hd_top = hds[1] * rng.uniform(0.95, 1.08)
    # The twin's nucleus draws skip its desiccated discs (its L5/S one too if half sacralised).
    twin_dry = [d or (i == 0 and twin_transitional is Transitional.SACRALISED)
                for i, d in enumerate(degenerated)]
    twin_level_draws = len(_LEVELS) + sum(not d for d in twin_dry)
    kinds = [lv[1] for lv in _LEVELS]
    anatomy = list(_ANATOMY)
    sacrum_change, rudimentary_s, segments = 0.0, None, 5
    if draw.kind is not HardCase.NONE:
        rows = [_Row(*r) for r in zip(kinds, heights, hds, hws, degenerated, anatomy)]
        rows, sacrum_change, rudimentary_s, segments = _hard_stack(rows, draw, scale, jit)
        kinds = [r.kind for r in rows]
        heights = [r.height for r in rows]
        hds = [r.half_depth for r in rows]
        hws = [r.half_width for r in rows]
        degenerated = [r.degenerated for r in rows]
        anatomy = [r.anatomy for r in rows]
        if draw.kind is HardCase.LUMBARISED_S1:
            sacrum_hd_top *= 0.92          # the sacrum now starts at the narrower S2
    # Labels by position, counting up from the sacrum (MRSpineSeg's convention).
    labels = [lv[0] for lv in _LEVELS] + [0] * (len(heights) - len(_LEVELS))
    bounds = np.concatenate([[0.0], np.cumsum(heights)])
    structures = tuple(
        Structure(labels[k], kinds[k], float(bounds[k]), float(bounds[k + 1]), float(hds[k]),
                  float(hws[k]), degenerated[k], anatomy[k])
        for k in range(len(heights)))

    # Boundary b sits below structure b (b = 0: the sacral top endplate). Endplates bow into
    # the vertebral body next to them; wedge tilts are limited so intervals never cross.
    m = len(bounds)
    conc = np.zeros(m)
    tilt = np.zeros(m)
    bhd = np.zeros(m)
    for b in range(m):
        # Boundaries beyond the default stack's draw from the hard-case stream, so the
        # geometry stream stays aligned with the case's default twin (a paired subject).
        src = rng if b <= len(_LEVELS) else draw.rng
        below = structures[b - 1] if b > 0 else None
        above = structures[b] if b < len(structures) else None
        body_below = below is None or below.kind is StructureKind.VERTEBRA
        body = (below if (below is not None and below.kind is StructureKind.VERTEBRA) else above)
        hd_ref = body.half_depth if body is not None else sacrum_hd_top
        body_h = (body.s_hi - body.s_lo) if body is not None else 20.0
        c = min(src.uniform(0.5, 2.0) * jit, 0.12 * body_h)
        conc[b] = -c if body_below else c
        bhd[b] = hd_ref
        thin = min(st.s_hi - st.s_lo for st in (below, above) if st is not None)
        max_tilt = 0.2 * thin / hd_ref
        tilt[b] = float(np.clip(np.tan(np.deg2rad(src.normal(0.0, 2.0 * jit))),
                                -max_tilt, max_tilt))

    sacrum_length = rng.uniform(95.0, 115.0) * scale + sacrum_change
    s_lumbar_top = structures[_anatomy_index(structures, "L1")].s_hi
    s, z, a, theta = _centre_line(rng, jit, s_lumbar_top, float(bounds[-1]), sacrum_length)

    n_slices = 15 if rng.random() < params.p_15_slices else 12
    geom = SpineGeometry(
        s=s, z=z, a=a, theta=theta, structures=structures, bnd_pos=bounds, bnd_conc=conc,
        bnd_tilt=tilt, bnd_hd=bhd, sacrum_length=float(sacrum_length),
        sacrum_hd_top=float(sacrum_hd_top), sacrum_hd_tip=float(rng.uniform(4.0, 7.0)),
        sacrum_hw=float(rng.uniform(40.0, 50.0) * scale),
        canal_depth=float(rng.uniform(12.0, 17.0)), canal_hw=float(rng.uniform(8.0, 11.0)),
        back_depth=float(rng.uniform(70.0, 100.0)), front_depth=float(rng.uniform(110.0, 190.0)),
        fat_back=float(rng.uniform(8.0, 30.0)), fat_front=float(rng.uniform(10.0, 35.0)),
        conus_s=float(structures[_anatomy_index(structures, "L1")].s_lo
                      + rng.uniform(-10.0, 25.0)),
        diaphragm_s=float(structures[_anatomy_index(structures, "T12")].s_lo
                          + rng.uniform(-15.0, 30.0)),
        transitional=transitional, rudimentary_disc_s=float(-rng.uniform(20.0, 28.0) * scale),
        fov_mm=params.fov_mm, n_slices=n_slices, slice_mm=params.slice_mm,
        lateral_offset=float(rng.uniform(-0.5, 0.5) * params.slice_mm),
        hard_case=draw.kind, fov_cut=draw.cut, sacral_segments=segments,
        hard_render_seed=draw.render_seed, twin_level_draws=twin_level_draws,
    )
    if rudimentary_s is not None:
        geom = replace(geom, rudimentary_disc_s=float(rudimentary_s))
    geom = _place_in_view(geom, rng, params, draw.u_pos)
    # Drawn after the field of view, so presence does not depend on the lateral curve.
    return replace(geom, scoliosis_mm=float(rng.uniform(0.0, 1.0) * params.scoliosis_mm),
                   scoliosis_wavelength=float(rng.uniform(220.0, 380.0)),
                   scoliosis_phase=float(rng.uniform(0.0, 2.0 * np.pi)))


def _cut_edge(geom: SpineGeometry, u: float) -> float:
    """World z of a cut field's inferior edge (geometry not yet shifted into view).

    Through the sacrum: :data:`FOV_CUT_THROUGH_MM` of it stay in view. Above it: the edge lies
    between 1 mm above the sacrum's highest point and :data:`MIN_SLIVER_MM` below the top of
    the vertebra labelled L4. The field is then moved where a level would show as a sliver
    thinner than :data:`MIN_SLIVER_MM` at either edge, so presence does not depend on the
    pixel size: down (taking in more sacrum) for a field through the sacrum, up otherwise.
    """
    top = geom.sacrum_top_z()
    if geom.fov_cut is FovCut.THROUGH_SACRUM:
        lo, hi = FOV_CUT_THROUGH_MM
        edge = top + lo + u * (hi - lo)
    else:
        upper = geom.highest_z(_level_index(geom.structures, 3)) + MIN_SLIVER_MM
        edge = upper + u * (top - 1.0 - upper)
    labelled = [i for i, st in enumerate(geom.structures) if st.label]
    low = [geom.lowest_z(i) for i in labelled]
    high = [geom.highest_z(i) for i in labelled]
    down = geom.fov_cut is FovCut.THROUGH_SACRUM
    for _ in range(20):
        before = edge
        for lz in low:                      # a sliver at the top edge (edge - fov_mm)
            if 0.0 < lz - (edge - geom.fov_mm) < MIN_SLIVER_MM:
                edge = (lz + 0.5 if down else lz - MIN_SLIVER_MM) + geom.fov_mm
        for hz in high:                     # a sliver at the bottom edge
            if 0.0 < edge - hz < MIN_SLIVER_MM:
                edge = hz - 1.0
        if edge == before:
            break
    return edge


def _place_in_view(geom: SpineGeometry, rng: np.random.Generator,
                   params: PhantomParams, cut_u: float = 0.0) -> SpineGeometry:
    """Shift the world so the field of view's top edge is at ``z = 0`` and anterior at ``a = 0``.

    The top edge is drawn from a piecewise-linear distribution whose knots are the lowest
    points of the upper levels, so ``P(label present) = rate`` for every ``(label, rate)`` in
    ``params.presence``; it is then lowered, if needed, until the L5/S disc is in view, and
    raised a little where a level would show as a sliver thinner than :data:`MIN_SLIVER_MM`.
    A cut field (:attr:`FovCut`) instead puts its inferior edge at :func:`_cut_edge` (the same
    random numbers are drawn, so the later draws of the stream stay where they were).
    """
    labels = [lab for lab, _ in params.presence]
    rates = [r for _, r in params.presence]
    anchors = [geom.lowest_z(_level_index(geom.structures, lab)) for lab in labels]
    knots_z = np.array([anchors[-1] - 15.0, *anchors[::-1]])
    knots_p = np.array([0.0, *rates[::-1]])
    keep = np.r_[True, np.diff(knots_p) > 0]
    z_top = float(np.interp(rng.random(), knots_p[keep], knots_z[keep]))
    l5s = geom.lowest_z(_level_index(geom.structures, 11))
    z_top = max(z_top, l5s + 12.0 - params.fov_mm)
    for _ in range(3):   # no slivers thinner than MIN_SLIVER_MM: presence then survives pixels
        for anchor in anchors:
            if 0.0 < anchor - z_top < MIN_SLIVER_MM:
                z_top = anchor - MIN_SLIVER_MM
    if geom.fov_cut is not FovCut.NONE:
        z_top = _cut_edge(geom, cut_u) - params.fov_mm

    i_l3 = _level_index(geom.structures, 4)
    st = geom.structures[i_l3]
    _, a_l3 = geom.point(np.array([(st.s_lo + st.s_hi) / 2]), np.array([0.0]))
    a_shift = rng.uniform(0.44, 0.56) * params.fov_mm - float(a_l3[0])
    return replace(geom, z=geom.z - z_top, a=geom.a + a_shift)
