"""Batched, device-agnostic versions of the paper's four TorchIO augmentations.

TorchIO transforms one subject at a time on the CPU (at 880 px its ``RandomMotion`` alone costs
about two seconds per volume on one core), which starves a GPU. These functions apply the same
artefact models to a whole batch of 2D slices ``(N, 1, H, W)`` as tensor operations on whatever
device the batch lives on, sampling the parameters from the same distributions as TorchIO's
defaults:

* noise — additive Gaussian, ``std ~ U(0, 0.25)`` (``tio.RandomNoise``);
* blur — Gaussian kernel with ``std ~ U(0, 2)`` mm per axis, divided by the pixel spacing,
  kernel radius ``int(4 * sigma + 0.5)`` and half-sample symmetric borders, exactly as the
  ``scipy.ndimage.gaussian_filter`` call inside ``tio.Blur``;
* ghosting — in the centred k-space, every ``n``-th line (``n ~ U{4..10}``) along a random
  in-plane axis is scaled by ``1 - s`` (``s ~ U(0.5, 1)``) and the central line restored, as
  ``tio.Ghosting`` does;
* motion — ``tio.RandomMotion``'s model (Shaw et al., 2019): ``num_transforms`` rigid in-plane
  movements (rotation ``~ U(-10, 10)`` degrees, translation ``~ U(-10, 10)`` mm) at perturbed
  equally spaced times; k-space is filled segment by segment along the phase-encoding (last)
  axis from the moved copies, the centre from the unmoved image.

One difference is deliberate: on a 2D slice TorchIO's ``Motion`` segments k-space along its
third, singleton axis, so it degenerates into a single rigid transform of the slice. Here the
segments run along the slice's last in-plane axis, which is the artefact the transform is meant
to simulate (the same thing TorchIO produces on 3D volumes). Each transform fires with its own
probability per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class BatchAugmentConfig:
    """Probabilities and parameter ranges (TorchIO's defaults) of the batched augmentation."""

    p_noise: float = 0.25
    p_blur: float = 0.25
    p_motion: float = 0.25
    p_ghosting: float = 0.25
    noise_std: tuple[float, float] = (0.0, 0.25)
    blur_std_mm: tuple[float, float] = (0.0, 2.0)
    ghosts: tuple[int, int] = (4, 10)
    ghost_intensity: tuple[float, float] = (0.5, 1.0)
    motion_degrees: float = 10.0
    motion_translation_mm: float = 10.0
    motion_transforms: int = 2

    def __post_init__(self) -> None:
        for name in ("p_noise", "p_blur", "p_motion", "p_ghosting"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        if self.motion_transforms < 1:
            raise ValueError(f"motion_transforms must be >= 1, got {self.motion_transforms}")


def _uniform(n: int, lo: float, hi: float, g: torch.Generator | None, device) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, device=device)


def _spacing(spacing: Tensor | tuple[float, float] | None, n: int, device) -> Tensor:
    if spacing is None:
        return torch.ones(n, 2, device=device)
    s = torch.as_tensor(spacing, dtype=torch.float32, device=device)
    return s.expand(n, 2) if s.ndim == 1 else s


def add_noise(x: Tensor, std: Tensor, g: torch.Generator | None = None) -> Tensor:
    """Add zero-mean Gaussian noise with per-sample ``std`` (shape ``(N,)``)."""
    noise = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
    return x + noise * std.view(-1, 1, 1, 1).to(x.dtype)


def _symmetric_pad_index(size: int, radius: int, device) -> Tensor:
    # Half-sample symmetric extension (scipy's "reflect"): ... b a | a b c ... c b a | a b ...
    idx = torch.arange(-radius, size + radius, device=device)
    period = 2 * size
    idx = torch.remainder(idx, period)
    return torch.where(idx >= size, period - 1 - idx, idx)


def _gauss_kernels(sigma: Tensor, radius: int) -> Tensor:
    # (N, 2r+1) normalised Gaussian kernels; sigma == 0 gives a delta.
    t = torch.arange(-radius, radius + 1, device=sigma.device, dtype=torch.float32)
    s = sigma.clamp_min(1e-12).view(-1, 1)
    k = torch.exp(-0.5 * (t / s) ** 2)
    k = torch.where(sigma.view(-1, 1) > 0, k, (t == 0).float().expand_as(k))
    return k / k.sum(dim=1, keepdim=True)


def gaussian_blur(x: Tensor, sigma_px: Tensor, radius: int | None = None) -> Tensor:
    """Blur each sample with its own separable Gaussian, ``sigma_px`` of shape ``(N, 2)``.

    Matches ``scipy.ndimage.gaussian_filter(..., mode="reflect", truncate=4.0)`` per sample.
    ``radius`` (the kernel half-width shared by the batch) defaults to that of the largest sigma;
    pass it to avoid reading ``sigma_px`` back to the host (a sync on a GPU).
    """
    n, c, h, w = x.shape
    out = x
    for axis, size in ((2, h), (3, w)):
        sig = sigma_px[:, axis - 2].float()
        r = radius if radius is not None else int(4.0 * float(sig.max()) + 0.5)
        if r == 0:
            continue
        # scipy uses radius = int(4*sigma+0.5) per sample; a shared larger support with the
        # same Gaussian differs only by the tail beyond 4 sigma, renormalised (< 1e-4).
        idx = _symmetric_pad_index(size, r, x.device)
        padded = out.index_select(axis, idx)
        k = _gauss_kernels(sig, r).to(x.dtype)                    # (N, K)
        grouped = padded.reshape(1, n * c, *padded.shape[2:])
        kk = k.repeat_interleave(c, dim=0)
        weight = kk.view(n * c, 1, -1, 1) if axis == 2 else kk.view(n * c, 1, 1, -1)
        out = F.conv2d(grouped, weight, groups=n * c).reshape(n, c, h, w)
    return out


def _fft2c(x: Tensor) -> Tensor:
    return torch.fft.fftshift(torch.fft.fft2(x.float()), dim=(-2, -1))


def _ifft2c(k: Tensor) -> Tensor:
    return torch.fft.ifft2(torch.fft.ifftshift(k, dim=(-2, -1))).real


def add_ghosting(x: Tensor, num_ghosts: Tensor, axis: Tensor, intensity: Tensor) -> Tensor:
    """TorchIO's ghosting model, per sample: ``num_ghosts``, ``axis`` (0 = rows, 1 = cols)
    and ``intensity`` are ``(N,)`` tensors."""
    n, c, h, w = x.shape
    dev = x.device
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    ng = num_ghosts.view(-1, 1, 1)
    on_rows = axis.view(-1, 1, 1) == 0
    line = torch.where(on_rows, rows.expand(n, h, w), cols.expand(n, h, w))
    mid = torch.where(on_rows, torch.full_like(ng, h // 2), torch.full_like(ng, w // 2))
    hit = (torch.remainder(line, ng) == 0) & (line != mid)
    scale = torch.where(hit, 1.0 - intensity.view(-1, 1, 1).float(), torch.ones((), device=dev))
    k = _fft2c(x) * scale.unsqueeze(1)
    return _ifft2c(k).to(x.dtype)


def _rigid_grids(deg: Tensor, trans_px: Tensor, h: int, w: int) -> Tensor:
    # deg (N, T), trans_px (N, T, 2) in (row, col) pixels -> sampling grids (N*T, H, W, 2).
    n, t = deg.shape
    rad = torch.deg2rad(deg.float()).reshape(-1)
    cos, sin = torch.cos(rad), torch.sin(rad)
    # Work in pixel units about the image centre, then map to normalised coordinates.
    theta = torch.zeros(n * t, 2, 3, device=deg.device)
    sx, sy = (w - 1) / 2 if w > 1 else 1.0, (h - 1) / 2 if h > 1 else 1.0
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin * sy / sx
    theta[:, 1, 0] = sin * sx / sy
    theta[:, 1, 1] = cos
    tr = trans_px.reshape(-1, 2).float()
    theta[:, 0, 2] = -tr[:, 1] / sx
    theta[:, 1, 2] = -tr[:, 0] / sy
    return F.affine_grid(theta, (n * t, 1, h, w), align_corners=True)


def rigid_warp(x: Tensor, degrees: Tensor, translation_px: Tensor) -> Tensor:
    """Moved copies of each sample: ``(N, C, H, W)`` -> ``(N, T, C, H, W)``.

    Rotation about the image centre by ``degrees`` ``(N, T)`` and translation of the content by
    ``translation_px`` ``(N, T, 2)`` (rows, cols); bilinear, outside filled with the image
    minimum like TorchIO's resampler.
    """
    n, c, h, w = x.shape
    t = degrees.shape[1]
    grids = _rigid_grids(degrees, translation_px, h, w)
    xs = x.float().repeat_interleave(t, dim=0)
    lo = xs.amin(dim=(1, 2, 3), keepdim=True)
    moved = F.grid_sample(xs - lo, grids, mode="bilinear", padding_mode="zeros",
                          align_corners=True) + lo
    return moved.view(n, t, c, h, w)


def compose_kspace(copies: Tensor, times: Tensor) -> Tensor:
    """Fill k-space segment by segment along the last axis from ``copies`` ``(N, T+1, C, H, W)``
    (copy 0 unmoved) at ``times`` ``(N, T)``; TorchIO's ``Motion`` rule: segment ``i`` covers
    columns ``[int(t_i W), int(t_{i+1} W))`` and the unmoved spectrum is swapped into the first
    segment that starts after the middle of the acquisition (the last one if none does)."""
    n, tp1, c, h, w = copies.shape
    t = tp1 - 1
    spectra = _fft2c(copies)
    bounds = (times.float() * w).long()
    col = torch.arange(w, device=copies.device).view(1, 1, w)
    seg = (col >= bounds.unsqueeze(-1)).sum(dim=1)                      # (N, W) in 0..T
    over = times > 0.5
    swap_to = torch.where(over.any(dim=1), over.float().argmax(dim=1),
                          torch.full((n,), t, dtype=torch.long, device=copies.device))
    swap_to = swap_to.view(-1, 1)
    src = torch.where(seg == 0, swap_to, torch.where(seg == swap_to, torch.zeros_like(seg), seg))
    idx = src.view(n, 1, 1, 1, w).expand(n, 1, c, h, w)
    k = torch.gather(spectra, 1, idx).squeeze(1)
    return _ifft2c(k)


def add_motion(x: Tensor, degrees: Tensor, translation_px: Tensor, times: Tensor) -> Tensor:
    """TorchIO's k-space motion model, batched: :func:`rigid_warp` then :func:`compose_kspace`."""
    copies = torch.cat([x.float().unsqueeze(1), rigid_warp(x, degrees, translation_px)], dim=1)
    return compose_kspace(copies, times).to(x.dtype)


def blur_radius(cfg: BatchAugmentConfig, spacing: Tensor | tuple[float, float] | None) -> int:
    """Half-width of the blur kernel shared by a batch: scipy's ``int(4 sigma + 0.5)`` for the
    largest sigma the configuration can draw, in pixels of the finest ``spacing`` (mm; ``None``
    is pixel units). Read on the host: pass the spacing as numbers, or a GPU tensor costs one
    wait for the device per batch."""
    finest = 1.0 if spacing is None else float(torch.as_tensor(spacing).detach().min().cpu())
    if finest <= 0:
        raise ValueError(f"pixel spacing must be positive, got {spacing}")
    return int(4.0 * cfg.blur_std_mm[1] / finest + 0.5)


class BatchAugment:
    """Apply noise, blur, ghosting and motion to a batch, each with its own probability.

    ``spacing`` is the in-plane pixel spacing in mm, ``(2,)`` or ``(N, 2)``; blur and motion are
    specified in mm like TorchIO's. Without it they are in pixels, as in the trainer and the
    benchmark, whose slices carry no spacing (like the per-slice TorchIO path). The order (motion,
    ghosting, blur, noise) follows the
    acquisition: movement during the scan, then reconstruction artefacts, then noise.
    """

    def __init__(self, config: BatchAugmentConfig | None = None) -> None:
        self.config = config or BatchAugmentConfig()

    def __call__(self, x: Tensor, spacing: Tensor | tuple[float, float] | None = None,
                 generator: torch.Generator | None = None) -> Tensor:
        cfg, g, dev = self.config, generator, x.device
        n = x.shape[0]
        sp = _spacing(spacing, n, dev)
        radius = blur_radius(cfg, spacing)

        def fires(p: float) -> Tensor:
            return torch.rand(n, generator=g, device=dev) < p

        out = x
        m = fires(cfg.p_motion)
        t = cfg.motion_transforms
        deg = _uniform(n * t, -cfg.motion_degrees, cfg.motion_degrees, g, dev).view(n, t)
        tr = _uniform(n * t * 2, -cfg.motion_translation_mm, cfg.motion_translation_mm, g,
                      dev).view(n, t, 2) / sp.view(n, 1, 2)
        step = 1.0 / (t + 1)
        times = (torch.arange(1, t + 1, device=dev) * step).view(1, t) + \
            _uniform(n * t, -0.3 * step, 0.3 * step, g, dev).view(n, t)
        if x.is_cuda or bool(m.any()):  # no host sync on a GPU
            out = torch.where(m.view(-1, 1, 1, 1), add_motion(out, deg, tr, times), out)

        gh = fires(cfg.p_ghosting)
        ng = torch.randint(cfg.ghosts[0], cfg.ghosts[1] + 1, (n,), generator=g, device=dev)
        ax = torch.randint(0, 2, (n,), generator=g, device=dev)
        inten = _uniform(n, *cfg.ghost_intensity, g, dev)
        if x.is_cuda or bool(gh.any()):
            out = torch.where(gh.view(-1, 1, 1, 1), add_ghosting(out, ng, ax, inten), out)

        b = fires(cfg.p_blur)
        sig = _uniform(n * 2, *cfg.blur_std_mm, g, dev).view(n, 2) / sp
        if x.is_cuda or bool(b.any()):
            out = torch.where(b.view(-1, 1, 1, 1), gaussian_blur(out, sig * b.view(-1, 1), radius), out)

        nz = fires(cfg.p_noise)
        std = _uniform(n, *cfg.noise_std, g, dev) * nz
        out = add_noise(out, std, g)
        return out


def expected_noise_std(cfg: BatchAugmentConfig) -> float:
    """Standard deviation of the added noise over many samples (both std range ends)."""
    lo, hi = cfg.noise_std
    return math.sqrt(cfg.p_noise * (lo * lo + lo * hi + hi * hi) / 3.0)
