"""Rasterise a phantom geometry into a label volume and a T2 TSE-like image.

Every pixel of the sagittal plane is given centre-line coordinates ``(s, n)`` once (nearest
centre-line sample, then projection on its tangent); each slice then decides tissues and labels
with vectorised inequalities in those coordinates, scaled by each structure's left-right
profile at the slice's lateral position (less the column's lateral curve). Intensities follow
a T2 TSE look calibrated against a real scan (:mod:`.calibration`): CSF brightest (with flow
voids and, below the conus, dark nerve roots), fat and healthy nuclei bright, textured marrow
about 3.6 times darker than CSF with a basivertebral vein and an irregular dark cortex,
posterior elements with a cortex, muscle dark, air black. Each slice averages sub-slices
across its thickness (partial volume); the image is then displaced against its labels by a
smooth field (annotation jitter), blurred, given a polynomial bias field and Rician noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter, map_coordinates
from scipy.spatial import cKDTree

from spineseg_core.data.phantom.geometry import (
    ENDPLATE_STRETCH,
    SUPERELLIPSE_P,
    HardCase,
    SpineGeometry,
    StructureKind,
    Transitional,
)
from spineseg_core.data.phantom.params import PhantomParams

CORTEX_MM = 1.3
"""Thickness of the dark cortical rim of a vertebral body (mm); irregular around this."""
MARROW_GRAIN_MM = 1.5
"""Feature size of the trabecular marrow texture (mm)."""
MARROW_TEXTURE = 0.14
"""Amplitude of the marrow texture (relative sd of its finest component)."""
POSTERIOR_MARROW = 0.8
"""Marrow of the posterior elements relative to the vertebral bodies' marrow."""
VEIN_GAIN = 1.8
"""Basivertebral vein signal relative to its body's marrow (slow flow: bright on T2)."""
VEIN_HALF_WIDTH_MM = 3.0
"""Left-right half extent of the basivertebral vein around the midline (mm)."""
CSF_FLOW = 0.35
"""Depth of the CSF's flow voids (dark patches where the fluid moves; relative signal loss)."""
ROOT_SPACING_MM = 4.0
"""Spacing of the cauda equina's nerve roots across the canal (mm)."""
ROOT_FRACTION = 0.35
"""Signal of a nerve root relative to the CSF around it (roots are dark on T2)."""

# Per-case tissue means are drawn uniformly from these ranges (CSF ~ 1).
TISSUE_RANGES: dict[str, tuple[float, float]] = {
    "csf": (0.85, 1.0),
    "fat": (0.5, 0.72),
    "nucleus": (0.6, 0.85),
    "annulus": (0.16, 0.28),
    "dry_nucleus": (0.17, 0.3),
    "marrow": (0.145, 0.22),
    "cortex": (0.03, 0.08),
    "muscle": (0.06, 0.11),
    "cord": (0.33, 0.48),
    "abdomen": (0.06, 0.15),
    "lung": (0.01, 0.04),
    "vessel": (0.02, 0.1),
    "bladder": (0.75, 0.95),
}


@dataclass(frozen=True)
class PlaneCoords:
    """Centre-line coordinates of every pixel of the sagittal plane."""

    s: np.ndarray      # (H, W) arc length of the nearest centre-line point + tangent offset
    n: np.ndarray      # (H, W) signed distance, + posterior
    si: np.ndarray     # (H, W) structure index (-1: sacrum side, len: above the stack)
    lo: np.ndarray     # (H, W) lower boundary of the pixel's interval at its n
    hi: np.ndarray     # (H, W) upper boundary
    hd_col: np.ndarray  # (H, W) smooth half depth of the column at the pixel's s


def _interp_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """``(len(dst), len(src))`` matrix of linear interpolation from ascending ``src`` to ``dst``."""
    i0 = np.clip(np.searchsorted(src, dst, side="right") - 1, 0, len(src) - 2)
    w = np.clip((dst - src[i0]) / (src[i0 + 1] - src[i0]), 0.0, 1.0)
    r = np.zeros((len(dst), len(src)))
    r[np.arange(len(dst)), i0] = 1.0 - w
    r[np.arange(len(dst)), i0 + 1] = w
    return r


def _project(geom: SpineGeometry, zz: np.ndarray, aa: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(s, n)`` of world points: nearest centre-line sample, then its tangent."""
    tree = cKDTree(np.c_[geom.z, geom.a])
    _, i = tree.query(np.c_[zz.ravel(), aa.ravel()])
    i = i.reshape(zz.shape)
    th = geom.theta[i]
    dz, da = zz - geom.z[i], aa - geom.a[i]
    return geom.s[i] - dz * np.cos(th) - da * np.sin(th), -dz * np.sin(th) + da * np.cos(th)


def plane_coords(geom: SpineGeometry, size: int) -> PlaneCoords:
    """Compute :class:`PlaneCoords` for a ``size`` x ``size`` grid over the field of view.

    ``(s, n)`` are smooth functions of position near the spine, so above 192 px they are
    computed on a 192 x 192 grid and interpolated linearly (within 0.1 mm of the full-grid
    projection over the column).
    """
    px = geom.fov_mm / size
    centres = (np.arange(size, dtype=np.float64) + 0.5) * px
    if size <= 192:
        zz, aa = np.meshgrid(centres, centres, indexing="ij")
        s, n = _project(geom, zz, aa)
    else:
        coarse = np.linspace(centres[0], centres[-1], 192)
        zz, aa = np.meshgrid(coarse, coarse, indexing="ij")
        s_c, n_c = _project(geom, zz, aa)
        r = _interp_matrix(coarse, centres)
        s, n = r @ s_c @ r.T, r @ n_c @ r.T
    m = len(geom.bnd_pos)
    idx = np.zeros(s.shape, dtype=np.int16)
    for b in range(m):
        idx += s >= geom.boundary_s(np.full(s.shape, b), n)
    si = idx.astype(np.int64) - 1
    b_lo = np.clip(si, 0, m - 1)
    b_hi = np.clip(si + 1, 0, m - 1)
    lo = geom.boundary_s(b_lo, n)
    hi = geom.boundary_s(b_hi, n)
    f32 = np.float32
    return PlaneCoords(s.astype(f32), n.astype(f32), si, lo.astype(f32), hi.astype(f32),
                       geom.half_depth_at(s).astype(f32))


def _lateral(x: float, hw: np.ndarray | float) -> np.ndarray:
    """Anterior-posterior depth factor of an elliptical cross-section at lateral offset x."""
    return np.sqrt(np.clip(1.0 - (x / np.asarray(hw, dtype=np.float64)) ** 2, 0.0, None))


def _draw_tissues(rng: np.random.Generator, params: PhantomParams) -> dict[str, float]:
    t = {k: float(rng.uniform(*r)) for k, r in TISSUE_RANGES.items()}
    ov = params.contrast_overlap * rng.random()
    mid = (t["marrow"] + t["annulus"] + t["dry_nucleus"]) / 3.0
    for k in ("marrow", "annulus", "dry_nucleus"):
        t[k] += ov * (mid - t[k])
    return t


def smooth_noise(rng: np.random.Generator, n_slices: int, size: int, grain_mm: float,
                 fov_mm: float) -> np.ndarray:
    """Unit-variance noise with features of ~``grain_mm``, ``(n_slices, size, size)`` float32.

    White noise on a coarse grid, lightly smoothed, then interpolated bilinearly to full size
    (much cheaper than filtering full-size noise at 880 px). The interpolation is torch's
    (corner-aligned, equal to ``scipy.ndimage.zoom(order=1)`` within 1e-4): seven times faster
    than ``zoom`` at 880 px, and unlike small BLAS matrix products not slowed down by thread
    contention on a busy machine.
    """
    m = max(4, int(round(fov_mm / grain_mm))) + 1
    low = gaussian_filter(rng.standard_normal((n_slices, m, m), dtype=np.float32), (0, 0.7, 0.7))
    out = F.interpolate(torch.from_numpy(low)[None], size=(size, size), mode="bilinear",
                        align_corners=True)[0].numpy()
    return out / (out[:, ::7, ::7].std() + 1e-6)


class TissueCode(IntEnum):
    """Tissues the phantom records beside its labels, for calibration against real scans."""

    OTHER = 0
    CSF = 1          # canal fluid, without the cord
    POSTERIOR = 2    # posterior elements (laminae, spinous processes)


@dataclass(frozen=True)
class RenderedCase:
    """Output of :func:`render_slices`, all ``(S, H, W)``."""

    mask: np.ndarray     # uint8 labels, from the centre sub-slice
    image: np.ndarray    # float32 noise-free intensities, averaged over the sub-slices
    tissue: np.ndarray   # uint8 :class:`TissueCode`, from the centre sub-slice


def sub_slice_offsets(slice_mm: float, sub_slices: int) -> np.ndarray:
    """Left-right offsets (mm) of the sub-slices that tile one slice's thickness."""
    return (np.arange(sub_slices) - (sub_slices - 1) / 2.0) * (slice_mm / sub_slices)


def render_slices(geom: SpineGeometry, size: int, params: PhantomParams,
                  rng: np.random.Generator) -> RenderedCase:
    """Labels, noise-free unscaled intensities and tissue codes of one case.

    Slice-independent soft tissue is painted once; per sub-slice only the pixels of the spinal
    band (canal, posterior elements, vessels) and of the column (bodies, discs, sacrum) are
    recomputed, as 1D subsets. Each slice's image is the mean of ``params.sub_slices``
    sub-slices across its thickness (through-plane partial volume); its labels are those of
    the centre sub-slice. The column follows the geometry's lateral curve.
    """
    pc = plane_coords(geom, size)
    tis = _draw_tissues(rng, params)
    structs = geom.structures
    nst = len(structs)
    n_sl = geom.n_slices
    labels_of = np.array([st.label for st in structs] + [0, 0], dtype=np.uint8)
    is_vert = np.array([st.kind is StructureKind.VERTEBRA for st in structs] + [False, False])
    is_disc = np.array([st.kind is StructureKind.DISC for st in structs] + [False, False])
    hd_of = np.array([st.half_depth for st in structs] + [1.0, 1.0])
    hw_of = np.array([st.half_width for st in structs] + [1.0, 1.0])
    level_rng = rng
    if geom.hard_case is not HardCase.NONE:
        # A hard case has another stack of levels: it draws their values from its own stream
        # and skips the draws its default twin makes here, so that everything drawn after
        # (vessels, bladder, textures, noise) is the twin's: a paired subject.
        rng.random(geom.twin_level_draws)
        level_rng = np.random.default_rng(geom.hard_render_seed)
    nucleus_of = np.array([tis["dry_nucleus"] if st.degenerated else
                           tis["nucleus"] * level_rng.uniform(0.85, 1.1) for st in structs]
                          + [0, 0])
    marrow_of = np.array([tis["marrow"] * level_rng.uniform(0.9, 1.1) for _ in structs] + [0, 0])
    aorta_x = rng.uniform(-20.0, -10.0)
    aorta_r = rng.uniform(8.0, 12.0)
    aorta_val = tis["vessel"] if rng.random() < 0.6 else 0.6 * tis["csf"]
    bladder = rng.random() < 0.6
    bl_s = -geom.sacrum_length * rng.uniform(0.5, 0.8)
    bl_n = -(geom.sacrum_hd_top + rng.uniform(25.0, 45.0))
    bl_r = rng.uniform(18.0, 32.0, 2)
    root_phase = rng.uniform(0.0, 2.0 * np.pi)
    tex = smooth_noise(rng, n_sl, size, 12.0, geom.fov_mm)
    fine = smooth_noise(rng, n_sl, size, 3.0, geom.fov_mm)
    speck = smooth_noise(rng, n_sl, size, MARROW_GRAIN_MM, geom.fov_mm)

    s, n, hd_col = pc.s, pc.n, pc.hd_col
    ls = geom.sacrum_length

    # Slice-independent soft tissue: base value and texture amplitudes.
    wiggle = 6.0 * np.sin(s / 70.0 + geom.back_depth)
    n_back = hd_col + geom.back_depth + wiggle
    n_front = -(hd_col + geom.front_depth) - wiggle
    body = (n < n_back) & (n > n_front)
    post = n > hd_col
    dome = geom.diaphragm_s + 0.6 * np.clip(-n - hd_col - 10.0, 0.0, None)
    lung = (s > dome) & (n < -(hd_col + 8.0))
    fat = body & ((n > n_back - geom.fat_back) | (n < n_front + geom.fat_front))
    base = np.where(post, tis["muscle"], np.where(lung, tis["lung"], tis["abdomen"]))
    base = np.where(fat, tis["fat"], np.where(body, base, 0.0)).astype(np.float32)
    amp_t = np.where(fat, 0.05, np.where(post | lung, 0.0, 0.35)).astype(np.float32) * body
    amp_f = np.where(fat, 0.03, 0.15).astype(np.float32) * body
    streak_w = (0.2 * tis["fat"] * (body & post & ~fat)).astype(np.float32)
    if bladder:
        e = ((s - bl_s) / bl_r[0]) ** 2 + ((n - bl_n) / bl_r[1]) ** 2
        bl_idx = np.flatnonzero(e < 1.0)
        bl_e = e.ravel()[bl_idx]

    # The spinal band: canal, cord, posterior elements, aorta.
    canal_reach = geom.canal_depth + 40.0
    band = ((n > -(hd_col + 6.0 + 2.0 * aorta_r)) & (n < hd_col + canal_reach)
            & (s > -ls - 10.0))
    bi = np.flatnonzero(band)
    bs, bn, bhd = s.ravel()[bi], n.ravel()[bi], hd_col.ravel()[bi]
    b_shift = geom.lateral_shift(bs)
    canal_front = bhd + 1.5
    canal_depth = geom.canal_depth * np.clip(1.0 + bs / 70.0, 0.15, 1.0)
    canal_depth = np.where(bs > structs[geom.index_of("T12")].s_lo, canal_depth * 0.85,
                           canal_depth)
    canal_back = canal_front + canal_depth
    canal_mid = (canal_front + canal_back) / 2.0
    in_cauda = (bs < geom.conus_s) & (bs > -ls * 0.8)
    s_post = bs + 8.0 + 0.35 * np.clip(bn - bhd - geom.canal_depth, 0.0, None)
    k_post = np.searchsorted(geom.bnd_pos, s_post) - 1
    k_post_c = np.clip(k_post, 0, nst - 1)
    h_post = geom.bnd_pos[k_post_c + 1] - geom.bnd_pos[k_post_c]
    u_post = (s_post - geom.bnd_pos[k_post_c]) / h_post
    post_vert = ((k_post >= 0) & (k_post < nst) & is_vert[k_post_c] & (u_post > 0.08)
                 & (u_post < 0.85) & (bs > -ls * 0.7))
    edge_u = np.minimum(u_post - 0.08, 0.85 - u_post) * h_post
    spinous = post_vert & (bn > canal_back + 1.0) & (bn < canal_back + 28.0)
    edge_sp = np.minimum(edge_u, np.minimum(bn - canal_back - 1.0, canal_back + 28.0 - bn))
    lamina = post_vert & (bn > canal_front + 2.0) & (bn < canal_back + 9.0)
    edge_la = np.minimum(edge_u, np.minimum(bn - canal_front - 2.0, canal_back + 9.0 - bn))
    aorta_c = -(bhd + 3.0 + aorta_r)
    aorta_s = bs > structs[geom.index_of("L4")].s_lo

    # The column: bodies, discs, sacrum.
    hd_max = max(max(hd_of[:nst]), geom.sacrum_hd_top) + 2.0
    col = (np.abs(n) < hd_max) & (pc.si < nst) & (s > -ls - 2.0)
    ci = np.flatnonzero(col)
    cs, cn = s.ravel()[ci], n.ravel()[ci]
    c_shift = geom.lateral_shift(cs)
    csi = pc.si.ravel()[ci]
    clo, chi = pc.lo.ravel()[ci], pc.hi.ravel()[ci]
    cgi = np.where(csi >= 0, csi, nst)
    cu = 2.0 * (cs - clo) / np.maximum(chi - clo, 1e-3) - 1.0
    c_mid_mm = np.abs(cs - (clo + chi) / 2.0)
    in_range = csi >= 0
    c_is_vert, c_is_disc = is_vert[cgi], is_disc[cgi]
    c_hd, c_hw = hd_of[cgi], hw_of[cgi]
    frac = np.clip(-cs / ls, 0.0, 1.0)
    hd_sac = geom.sacrum_hd_top + (geom.sacrum_hd_tip - geom.sacrum_hd_top) * frac
    hw_sac = geom.sacrum_hw + (12.0 - geom.sacrum_hw) * frac
    us = (cs + ls / 2.0) / (ls / 2.0) / 1.08
    seg = float(geom.sacral_segments)
    seg_line = ((np.abs(((-cs) % (ls / seg)) - ls / (2.0 * seg)) > ls / (2.0 * seg) - 1.2)
                & (cs < -5.0))
    rud = np.abs(cs - geom.rudimentary_disc_s) < 2.5
    # A disc remnant inside the sacrum: a partly lumbarised S1, or a sacralised L5's fused disc.
    remnant = (geom.transitional is Transitional.LUMBARISED
               or geom.hard_case is HardCase.SACRALISED_L5)

    offsets = sub_slice_offsets(geom.slice_mm, params.sub_slices)
    centre = len(offsets) // 2
    mask = np.zeros((n_sl, size, size), dtype=np.uint8)
    tissue = np.zeros((n_sl, size, size), dtype=np.uint8)
    img = np.empty((n_sl, size, size), dtype=np.float32)
    for k, x0 in enumerate(geom.slice_positions()):
        tk, fk, sk = tex[k], fine[k], speck[k]
        im_k = base * (1.0 + amp_t * tk + amp_f * fk) + streak_w * np.clip(tk - 1.3, 0.0, None)
        bf, bt, bsp = fk.ravel()[bi], tk.ravel()[bi], sk.ravel()[bi]
        ct, cf, csp = tk.ravel()[ci], fk.ravel()[ci], sk.ravel()[ci]
        csf_val = tis["csf"] * (1.0 - CSF_FLOW * np.clip(0.8 * bt + 0.6 * bf + 0.4, 0.0, 2.0))
        post_bone = POSTERIOR_MARROW * tis["marrow"] * (1.0 + 0.6 * MARROW_TEXTURE * (bf + bsp))
        marrow = marrow_of[cgi] * (1.0 + MARROW_TEXTURE * (0.25 * ct + 0.35 * cf + csp))
        cortex_c = CORTEX_MM * np.clip(1.0 + 0.5 * cf, 0.4, None)
        acc = np.zeros(size * size, dtype=np.float32)
        for j, dx in enumerate(offsets):
            x = x0 + dx
            flat = im_k.ravel().copy()
            if bladder and abs(x) < 35.0:
                flat[bl_idx[bl_e < 1.0 - (x / 35.0) ** 2]] = tis["bladder"]

            # Band.
            bv = flat[bi]
            if abs(x - aorta_x) < aorta_r:
                half = np.sqrt(aorta_r ** 2 - (x - aorta_x) ** 2)
                bv = np.where((np.abs(bn - aorta_c) < half) & aorta_s, aorta_val, bv)
            xb = x - b_shift
            cdepth = canal_depth * _lateral(xb, geom.canal_hw)
            in_canal = (np.abs(bn - canal_mid) < cdepth / 2.0) & (bs > -ls * 0.8)
            roots = in_cauda & (np.cos(2.0 * np.pi * (bn - canal_mid) / ROOT_SPACING_MM
                                       + 0.9 * xb + root_phase) > 0.55)
            bv = np.where(in_canal, np.where(roots, ROOT_FRACTION * csf_val, csf_val), bv)
            epi = ((bn > canal_mid + cdepth / 2.0) & (bn < canal_mid + cdepth / 2.0 + 2.5)
                   & (bs > 0) & (cdepth > 0))
            bv = np.where(epi, 0.8 * tis["fat"], bv)
            cord = (in_canal & (np.abs(bn - canal_mid) < 4.2 * _lateral(xb, 6.0))
                    & (bs > geom.conus_s))
            bv = np.where(cord, tis["cord"] * (1.0 + 0.05 * bf), bv)
            ax = np.abs(xb)
            sp = spinous & (ax < 5.0)
            la = lamina & (ax > geom.canal_hw - 2.0) & (ax < 26.0)
            bone = sp | la
            edge = np.maximum(np.where(sp, np.minimum(edge_sp, 5.0 - ax), -1.0),
                              np.where(la, np.minimum(edge_la, np.minimum(
                                  ax - geom.canal_hw + 2.0, 26.0 - ax)), -1.0))
            bv = np.where(bone, np.where(edge < CORTEX_MM, tis["cortex"], post_bone), bv)
            flat[bi] = bv

            # Column.
            cv = flat[ci]
            xc = x - c_shift
            hd_eff = c_hd * _lateral(xc, c_hw)
            v = cn / np.maximum(hd_eff, 1e-3)
            vert_r = np.abs(cu / ENDPLATE_STRETCH) ** SUPERELLIPSE_P + np.abs(v) ** SUPERELLIPSE_P
            ok = in_range & (hd_eff > 0.5)
            vert = ok & c_is_vert & (vert_r <= 1.0)
            disc = ok & c_is_disc & (np.abs(v) <= 1.0)
            edge_mm = np.minimum(np.minimum(cs - clo, chi - cs),
                                 (1.0 - vert_r ** (1.0 / SUPERELLIPSE_P)) * hd_eff)
            vein = ((np.abs(xc) < VEIN_HALF_WIDTH_MM) & (v > 0.3)
                    & (c_mid_mm < 0.9 + 2.5 * np.clip((v - 0.7) / 0.3, 0.0, 1.0)))
            bone_c = np.where(vein, VEIN_GAIN * marrow_of[cgi], marrow)
            cv = np.where(vert, np.where(edge_mm < cortex_c, tis["cortex"], bone_c), cv)
            nuc = (v / 0.72) ** 2 + (cu / 0.62) ** 2 < 1.0
            disc_val = np.where(nuc, nucleus_of[cgi] * np.where(np.abs(cu) < 0.1, 0.8, 1.0),
                                tis["annulus"])
            cv = np.where(disc, disc_val * (1.0 + 0.04 * cf + 0.08 * csp), cv)

            hd_s = hd_sac * _lateral(xc, hw_sac)
            vs = cn / np.maximum(hd_s, 1e-3)
            sac_q = np.abs(us) ** 4 + np.abs(vs) ** 4
            sac = (csi < 0) & (hd_s > 0.5) & (sac_q <= 1.0)
            sac_edge = np.minimum(clo - cs, (1.0 - sac_q ** 0.25) * hd_s)
            sac_val = np.where(sac_edge < CORTEX_MM, tis["cortex"],
                               tis["marrow"] * (1.0 + MARROW_TEXTURE * (0.35 * ct + csp))
                               * np.where(seg_line, 0.6, 1.0))
            if remnant:
                sac_val = np.where(rud & (np.abs(vs) < 0.85),
                                   0.5 * (tis["nucleus"] + tis["annulus"]), sac_val)
            cv = np.where(sac, sac_val, cv)
            flat[ci] = cv
            acc += flat
            if j == centre:
                lab = np.where(vert | disc, labels_of[cgi], 0).astype(np.uint8)
                mask.reshape(n_sl, -1)[k, ci] = np.where(sac, np.uint8(1), lab)
                tis_k = tissue.reshape(n_sl, -1)[k]
                tis_k[bi[in_canal & ~cord & ~bone]] = TissueCode.CSF
                tis_k[bi[bone]] = TissueCode.POSTERIOR
        img[k] = (acc / len(offsets)).reshape(size, size)
    return RenderedCase(mask, img, tissue)


def jitter_image(img: np.ndarray, geom: SpineGeometry, params: PhantomParams,
                 rng: np.random.Generator) -> np.ndarray:
    """Displace the image in-plane by a smooth random field, leaving the labels where they are.

    Real annotations do not sit exactly on intensity edges; moving the image by a field of sd
    ``params.annotation_jitter_mm`` (features of ~25 mm, the same for every slice) gives label
    boundaries that miss the edges by up to a pixel or two, in both directions.
    """
    n_sl, size, _ = img.shape
    px = geom.fov_mm / size
    field = smooth_noise(rng, 2, size, 25.0, geom.fov_mm) * np.float32(
        params.annotation_jitter_mm / px)
    if params.annotation_jitter_mm <= 0:
        return img
    rows, cols = np.meshgrid(np.arange(size, dtype=np.float32),
                             np.arange(size, dtype=np.float32), indexing="ij")
    coords = np.stack([rows + field[0], cols + field[1]])
    return np.stack([map_coordinates(sl, coords, order=1, mode="nearest") for sl in img])


def finish_image(img: np.ndarray, geom: SpineGeometry, params: PhantomParams,
                 rng: np.random.Generator) -> np.ndarray:
    """Blur, bias, Rician noise and int16 scaling of a noise-free intensity volume.

    The bias field is ``exp`` of a quadratic polynomial (strength ``params.bias``) plus a
    posterior-coil gradient; Rician noise is the magnitude of the signal plus complex Gaussian
    noise of sigma ``params.noise``; the volume is then scaled to a per-case maximum drawn like
    MRSpineSeg's (2100-3930, median ~2400).
    """
    n_sl, size, _ = img.shape
    px = geom.fov_mm / size
    out = gaussian_filter(img, (0.0, 0.45 / px, 0.45 / px))
    zz = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    xs = np.linspace(-1.0, 1.0, n_sl, dtype=np.float32)
    c = rng.normal(0.0, 1.0, 7) * params.bias
    coil = rng.uniform(0.35, 0.6)
    r, w = zz[:, None], zz[None, :]
    plane = c[0] * r + c[1] * w + c[2] * r * r + c[3] * w * w + c[4] * r * w + coil * w
    across = 0.5 * (c[5] * xs + c[6] * xs * xs)
    gain = np.exp(plane - plane.mean())[None] * np.exp(across - across.mean())[:, None, None]
    out *= gain.astype(np.float32)
    sigma = np.float32(params.noise)
    n1 = rng.standard_normal(out.shape, dtype=np.float32)
    out += n1 * sigma
    np.square(out, out=out)
    n1 = rng.standard_normal(out.shape, dtype=np.float32)
    n1 *= sigma
    out += n1 * n1
    np.sqrt(out, out=out)
    target = float(np.clip(2100.0 + rng.lognormal(np.log(300.0), 0.9), 2100.0, 3930.0))
    out *= np.float32(target / float(out.max()))
    return np.rint(out).astype(np.int16)
