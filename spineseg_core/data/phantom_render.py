"""Rasterise a phantom geometry into a label volume and a T2 TSE-like image.

Every pixel of the sagittal plane is given centre-line coordinates ``(s, n)`` once (nearest
centre-line sample, then projection on its tangent); each slice then decides tissues and labels
with vectorised inequalities in those coordinates, scaled by each structure's left-right
profile at the slice's lateral position. Intensities follow a T2 TSE look: CSF brightest, fat
and healthy nuclei bright, marrow mid-grey with a dark cortex, muscle dark, air black; then
texture, partial-volume blur, a polynomial bias field and Rician noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter, zoom
from scipy.spatial import cKDTree

from .phantom_geometry import (ENDPLATE_STRETCH, SUPERELLIPSE_P, Kind, SpineGeometry,
                               Transitional)
from .phantom_params import PhantomParams

CORTEX_MM = 1.3
"""Thickness of the dark cortical rim of a vertebral body (mm)."""

# Per-case tissue means are drawn uniformly from these ranges (CSF ~ 1).
TISSUE_RANGES: dict[str, tuple[float, float]] = {
    "csf": (0.85, 1.0),
    "fat": (0.5, 0.72),
    "nucleus": (0.6, 0.85),
    "annulus": (0.16, 0.28),
    "dry_nucleus": (0.17, 0.3),
    "marrow": (0.27, 0.42),
    "cortex": (0.03, 0.08),
    "muscle": (0.09, 0.16),
    "cord": (0.33, 0.48),
    "abdomen": (0.08, 0.2),
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


def plane_coords(geom: SpineGeometry, size: int) -> PlaneCoords:
    """Compute :class:`PlaneCoords` for a ``size`` x ``size`` grid over the field of view."""
    px = geom.fov_mm / size
    centres = (np.arange(size, dtype=np.float64) + 0.5) * px
    zz, aa = np.meshgrid(centres, centres, indexing="ij")
    tree = cKDTree(np.c_[geom.z, geom.a])
    _, i = tree.query(np.c_[zz.ravel(), aa.ravel()])
    i = i.reshape(size, size)
    th = geom.theta[i]
    dz, da = zz - geom.z[i], aa - geom.a[i]
    s = geom.s[i] - dz * np.cos(th) - da * np.sin(th)
    n = -dz * np.sin(th) + da * np.cos(th)
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


def render_slices(geom: SpineGeometry, size: int, params: PhantomParams,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Label volume (uint8) and noise-free, unscaled intensity volume (float32), ``(S, H, W)``."""
    pc = plane_coords(geom, size)
    tis = _draw_tissues(rng, params)
    structs = geom.structures
    nst = len(structs)
    px = geom.fov_mm / size
    labels_of = np.array([st.label for st in structs] + [0, 0], dtype=np.uint8)
    is_vert = np.array([st.kind is Kind.VERTEBRA for st in structs] + [False, False])
    is_disc = np.array([st.kind is Kind.DISC for st in structs] + [False, False])
    hd_of = np.array([st.half_depth for st in structs] + [1.0, 1.0])
    hw_of = np.array([st.half_width for st in structs] + [1.0, 1.0])
    nucleus_of = np.array([tis["dry_nucleus"] if st.degenerated else
                           tis["nucleus"] * rng.uniform(0.85, 1.1) for st in structs] + [0, 0])
    marrow_of = np.array([tis["marrow"] * rng.uniform(0.9, 1.1) for _ in structs] + [0, 0])

    s, n, hd_col = pc.s, pc.n, pc.hd_col
    gi = np.where(pc.si >= 0, pc.si, nst)            # gather index; nst = "no structure"
    gi = np.minimum(gi, nst)
    height = np.maximum(pc.hi - pc.lo, 1e-3)
    u = 2.0 * (s - pc.lo) / height - 1.0             # -1 at the lower endplate, +1 upper

    # Soft tissue layout, shared by all slices.
    wiggle = 6.0 * np.sin(s / 70.0 + geom.back_depth)
    n_back = hd_col + geom.back_depth + wiggle
    n_front = -(hd_col + geom.front_depth) - wiggle
    body = (n < n_back) & (n > n_front)
    canal_front = hd_col + 1.5
    canal_depth = geom.canal_depth * np.clip(1.0 + s / 70.0, 0.15, 1.0)
    canal_depth = np.where(s > geom.structures[11].s_lo, canal_depth * 0.85, canal_depth)
    canal_back = canal_front + canal_depth
    canal_mid = (canal_front + canal_back) / 2.0

    # Posterior elements: intervals of s shifted upwards so processes hang below their body.
    s_post = s + 8.0 + 0.35 * np.clip(n - hd_col - geom.canal_depth, 0.0, None)
    k_post = np.searchsorted(geom.bnd_pos, s_post) - 1
    k_post_c = np.clip(k_post, 0, nst - 1)
    post_lo = geom.bnd_pos[k_post_c]
    post_hi = geom.bnd_pos[k_post_c + 1]
    u_post = (s_post - post_lo) / (post_hi - post_lo)
    post_vert = (k_post >= 0) & (k_post < nst) & is_vert[k_post_c] & (u_post > 0.08) \
        & (u_post < 0.85) & (s > -geom.sacrum_length * 0.7)

    tex_lo = max(size // 6, 8)
    n_sl = geom.n_slices
    tex = rng.standard_normal((n_sl, tex_lo, tex_lo)).astype(np.float32)
    tex = zoom(gaussian_filter(tex, (0, 0.8, 0.8)), (1, size / tex_lo, size / tex_lo), order=1)
    tex = tex / (tex.std() + 1e-6)
    fine = gaussian_filter(rng.standard_normal((n_sl, size, size)).astype(np.float32),
                           (0, 1.2 / px, 1.2 / px))
    fine = fine / (fine.std() + 1e-6)

    aorta_x = rng.uniform(-20.0, -10.0)
    aorta_r = rng.uniform(8.0, 12.0)
    aorta_val = tis["vessel"] if rng.random() < 0.6 else 0.6 * tis["csf"]
    bladder = rng.random() < 0.6
    bl_s = -geom.sacrum_length * rng.uniform(0.5, 0.8)
    bl_n = -(geom.sacrum_hd_top + rng.uniform(25.0, 45.0))
    bl_r = rng.uniform(18.0, 32.0, 2)

    mask = np.zeros((n_sl, size, size), dtype=np.uint8)
    img = np.zeros((n_sl, size, size), dtype=np.float32)
    for k, x in enumerate(geom.slice_positions()):
        t = tex[k]
        im = np.zeros((size, size), dtype=np.float32)
        # Body: posterior muscle with fat streaks, anterior abdomen / lung / pelvis.
        post = n > hd_col
        muscle = tis["muscle"] * (1.0 + 0.15 * fine[k])
        streak = np.clip(t - 1.3, 0.0, None) * 0.2 * tis["fat"]
        im = np.where(body & post, muscle + streak, im)
        abdomen = tis["abdomen"] * (1.0 + 0.35 * t) + 0.04 * np.clip(fine[k], 0, None)
        dome = geom.diaphragm_s + 0.6 * np.clip(-n - hd_col - 10.0, 0.0, None)
        lung = (s > dome + 8.0 * np.abs(x) / 25.0) & (n < -(hd_col + 8.0))
        ant = np.where(lung, tis["lung"], abdomen)
        im = np.where(body & ~post, np.clip(ant, 0.0, None), im)
        fat = (body & ((n > n_back - geom.fat_back) | (n < n_front + geom.fat_front)))
        im = np.where(fat, tis["fat"] * (1.0 + 0.05 * t), im)
        if bladder and abs(x) < 35.0:
            e = ((s - bl_s) / bl_r[0]) ** 2 + ((n - bl_n) / bl_r[1]) ** 2
            im = np.where(e < 1.0 - (x / 35.0) ** 2, tis["bladder"], im)
        if abs(x - aorta_x) < aorta_r:
            half = np.sqrt(aorta_r ** 2 - (x - aorta_x) ** 2)
            ao_c = -(hd_col + 3.0 + aorta_r)
            im = np.where((np.abs(n - ao_c) < half) & (s > geom.structures[3].s_lo),
                          aorta_val, im)
        # Canal, cord, epidural fat.
        fc = float(_lateral(x, geom.canal_hw))
        if fc > 0:
            cdepth = canal_depth * fc
            in_canal = (np.abs(n - canal_mid) < cdepth / 2.0) & (s > -geom.sacrum_length * 0.8)
            im = np.where(in_canal, tis["csf"] * (1.0 + 0.03 * fine[k]), im)
            epi = (n > canal_mid + cdepth / 2.0) & (n < canal_mid + cdepth / 2.0 + 2.5) & (s > 0)
            im = np.where(epi, 0.8 * tis["fat"], im)
            fcord = float(_lateral(x, 6.0))
            if fcord > 0:
                cord = (np.abs(n - canal_mid) < 4.2 * fcord) & (s > geom.conus_s)
                im = np.where(cord & in_canal, tis["cord"], im)
        # Posterior elements: spinous processes near the midline, laminae and facets laterally.
        ax = abs(x)
        bone_post = np.zeros((size, size), dtype=bool)
        if ax < 5.0:
            bone_post |= post_vert & (n > canal_back + 1.0) & (n < canal_back + 28.0)
        if geom.canal_hw - 2.0 < ax < 26.0:
            bone_post |= post_vert & (n > canal_front + 2.0) & (n < canal_back + 9.0)
        im = np.where(bone_post, 0.6 * tis["marrow"] * (1.0 + 0.1 * fine[k]), im)

        # Labelled structures.
        f = _lateral(x, hw_of)
        f[nst:] = 0.0
        hd_eff = (hd_of * f)[gi]
        v = n / np.maximum(hd_eff, 1e-3)
        vert_r = (np.abs(u / ENDPLATE_STRETCH) ** SUPERELLIPSE_P
                  + np.abs(v) ** SUPERELLIPSE_P)
        in_struct = (pc.si >= 0) & (pc.si < nst) & (hd_eff > 0.5)
        vert = in_struct & is_vert[gi] & (vert_r <= 1.0)
        disc = in_struct & is_disc[gi] & (np.abs(v) <= 1.0)
        lab = np.where(vert | disc, labels_of[gi], 0).astype(np.uint8)

        edge_mm = np.minimum(np.minimum(s - pc.lo, pc.hi - s),
                             (1.0 - vert_r ** (1.0 / SUPERELLIPSE_P)) * hd_eff)
        marrow = marrow_of[gi] * (1.0 + 0.12 * t + 0.06 * fine[k])
        im = np.where(vert, np.where(edge_mm < CORTEX_MM, tis["cortex"], marrow), im)
        nuc = (v / 0.72) ** 2 + (u / 0.62) ** 2 < 1.0
        cleft = np.abs(u) < 0.1
        disc_val = np.where(nuc, nucleus_of[gi] * np.where(cleft, 0.8, 1.0), tis["annulus"])
        im = np.where(disc, disc_val * (1.0 + 0.04 * fine[k]), im)

        # Sacrum: a tapering, curved wedge below boundary 0.
        ls = geom.sacrum_length
        frac = np.clip(-s / ls, 0.0, 1.0)
        hd_s = geom.sacrum_hd_top + (geom.sacrum_hd_tip - geom.sacrum_hd_top) * frac
        hw_s = geom.sacrum_hw + (12.0 - geom.sacrum_hw) * frac
        hd_s = hd_s * _lateral(x, hw_s)
        us = (s + ls / 2.0) / (ls / 2.0) / 1.08
        vs = n / np.maximum(hd_s, 1e-3)
        sac = (pc.si < 0) & (hd_s > 0.5) & (np.abs(us) ** 4 + np.abs(vs) ** 4 <= 1.0)
        sac_r = (np.abs(us) ** 4 + np.abs(vs) ** 4) ** 0.25
        sac_edge = np.minimum(pc.lo - s, (1.0 - sac_r) * hd_s)
        seg_line = np.abs(((-s) % (ls / 5.0)) - ls / 10.0) > ls / 10.0 - 1.2
        sac_val = np.where(sac_edge < CORTEX_MM, tis["cortex"],
                           tis["marrow"] * (1.0 + 0.12 * t) * np.where(seg_line & (s < -5), 0.6, 1.0))
        if geom.transitional is Transitional.LUMBARISED:
            rud = np.abs(s - geom.rudimentary_disc_s) < 2.5
            sac_val = np.where(rud & (np.abs(vs) < 0.85), 0.5 * (tis["nucleus"] + tis["annulus"]),
                               sac_val)
        im = np.where(sac, sac_val, im)
        lab = np.where(sac, np.uint8(1), lab)

        mask[k] = lab
        img[k] = im
    return mask, img


def finish_image(img: np.ndarray, geom: SpineGeometry, params: PhantomParams,
                 rng: np.random.Generator) -> np.ndarray:
    """Blur, bias, Rician noise and int16 scaling of a noise-free intensity volume."""
    n_sl, size, _ = img.shape
    px = geom.fov_mm / size
    out = gaussian_filter(img, (0.0, 0.45 / px, 0.45 / px))
    zz = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    xs = np.linspace(-1.0, 1.0, n_sl, dtype=np.float32)
    c = rng.normal(0.0, 1.0, 7) * params.bias
    r, w = zz[:, None], zz[None, :]
    poly = (c[0] * r + c[1] * w + c[2] * r * r + c[3] * w * w + c[4] * r * w)[None]
    poly = poly + (c[5] * xs + c[6] * xs * xs)[:, None, None] * 0.5
    coil = rng.uniform(0.35, 0.6)                        # posterior coil: brighter at the back
    poly = poly + coil * w[None]
    out = out * np.exp(poly - poly.mean())
    sigma = params.noise
    n1 = rng.standard_normal(out.shape, dtype=np.float32) * sigma
    n2 = rng.standard_normal(out.shape, dtype=np.float32) * sigma
    out = np.sqrt((out + n1) ** 2 + n2 ** 2)
    target = float(np.clip(2100.0 + rng.lognormal(np.log(300.0), 0.9), 2100.0, 3930.0))
    out = out * (target / float(out.max()))
    return np.round(out).astype(np.int16)
