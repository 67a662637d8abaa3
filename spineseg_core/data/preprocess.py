"""Per-volume preprocessing: in-plane resampling to a square size and percentile normalisation.

The paper resamples every slice to 880x880. Resampling here keeps the field of view: the output
grid covers the same extent as the input, so the new spacing is ``old * old_n / size`` (pixel
edges aligned, like ``align_corners=False``). Images are interpolated bilinearly (antialiased
when shrinking), masks with exact nearest neighbour so no new label appears.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from spineseg_core.data.readers import Volume
from spineseg_core.errors import ConfigError

PREPROCESS_VERSION = 1
"""Bumped whenever preprocessing changes its output; part of every cache key."""


@dataclass(frozen=True)
class PercentileNormalisation:
    """Clip a volume to its ``[lower, upper]`` percentiles, then scale that range to ``[0, 1]``."""

    lower: float = 0.5
    upper: float = 99.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.lower < self.upper <= 100.0:
            raise ConfigError(f"percentiles must satisfy 0 <= lower < upper <= 100, got "
                              f"lower={self.lower}, upper={self.upper}")

    @property
    def key(self) -> str:
        return f"percentile-{self.lower:g}-{self.upper:g}"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return normalise_percentile(image, self.lower, self.upper)


def normalise_percentile(image: np.ndarray, lower: float = 0.5, upper: float = 99.5) -> np.ndarray:
    """Clip ``image`` to its ``lower``/``upper`` percentiles and scale to ``[0, 1]`` (float32).

    A constant image becomes all zeros.
    """
    lo, hi = np.percentile(image, [lower, upper])
    if hi <= lo:
        return np.zeros(image.shape, dtype=np.float32)
    out = (np.clip(image, lo, hi) - lo) / (hi - lo)
    return out.astype(np.float32, copy=False)


def _resize_stack(stack: np.ndarray, size: tuple[int, int], *, labels: bool) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(stack))[:, None]
    if labels:
        out = F.interpolate(t.to(torch.float32), size=size, mode="nearest-exact")
        return out[:, 0].to(torch.uint8).numpy()
    shrinking = size[0] < stack.shape[1] or size[1] < stack.shape[2]
    out = F.interpolate(t.to(torch.float32), size=size, mode="bilinear", align_corners=False,
                        antialias=shrinking)
    return out[:, 0].numpy()


def resample_inplane(volume: Volume, size: int) -> Volume:
    """Resample every sagittal slice of ``volume`` to ``size x size``, keeping the field of view.

    Non-square slices are resized along each axis to ``size``. The affine and spacing are
    updated so that world coordinates of the field of view are unchanged.
    """
    if size < 1:
        raise ConfigError(f"image_size must be a positive integer, got {size}")
    _, h, w = volume.image.shape
    if (h, w) == (size, size):
        return volume
    image = _resize_stack(volume.image, (size, size), labels=False)
    mask = (_resize_stack(volume.mask, (size, size), labels=True)
            if volume.mask is not None else None)
    fh, fw = h / size, w / size
    scale = np.eye(4)
    scale[1, 1], scale[2, 2] = fh, fw
    scale[1, 3], scale[2, 3] = 0.5 * fh - 0.5, 0.5 * fw - 0.5  # new pixel centres in old indices
    spacing = (volume.spacing[0], volume.spacing[1] * fh, volume.spacing[2] * fw)
    return replace(volume, image=image, mask=mask, spacing=spacing, affine=volume.affine @ scale)


def preprocess_volume(volume: Volume, size: int,
                      normalise: PercentileNormalisation | None = PercentileNormalisation()
                      ) -> Volume:
    """Resample to ``size`` (in-plane) and normalise intensities: what the cache stores."""
    out = resample_inplane(volume, size)
    if normalise is not None:
        out = replace(out, image=normalise(out.image))
    return out


def crop_box_from_mask(mask: np.ndarray, margin: float = 0.1) -> tuple[slice, slice]:
    """A square in-plane box around all foreground of a ``(S, H, W)`` mask, for cropping.

    The foreground's bounding box (over every slice) is grown by ``margin`` of its larger side
    on each side, made square around its centre and clipped to the image; an empty mask gives
    the whole slice. Apply the same box to the image, the mask and (via :func:`crop_volume`)
    the affine, before resampling, to spend pixels on the spine rather than on air.
    """
    if mask.ndim != 3:
        raise ValueError(f"expected a (S, H, W) mask, got shape {mask.shape}")
    _, h, w = mask.shape
    rows = np.flatnonzero(mask.any(axis=(0, 2)))
    cols = np.flatnonzero(mask.any(axis=(0, 1)))
    if rows.size == 0:
        return slice(0, h), slice(0, w)
    side = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
    side = min(int(np.ceil(side * (1 + 2 * margin))), h, w)
    box = []
    for idx, n in ((rows, h), (cols, w)):
        centre = (idx[0] + idx[-1] + 1) / 2
        start = int(np.clip(round(centre - side / 2), 0, n - side))
        box.append(slice(start, start + side))
    return box[0], box[1]


def crop_volume(volume: Volume, box: tuple[slice, slice]) -> Volume:
    """Crop every slice of ``volume`` to ``box`` (rows, cols), shifting the affine's origin."""
    rows, cols = box
    shift = np.eye(4)
    shift[1, 3], shift[2, 3] = rows.start or 0, cols.start or 0
    return replace(volume, image=np.ascontiguousarray(volume.image[:, rows, cols]),
                   mask=(np.ascontiguousarray(volume.mask[:, rows, cols])
                         if volume.mask is not None else None),
                   affine=volume.affine @ shift)


def spine_centre_column(mask: np.ndarray) -> float | None:
    """Middle of the foreground's column extent over all slices of a ``(S, H, W)`` mask, in
    pixels (``None`` for an empty mask)."""
    cols = np.flatnonzero(mask.any(axis=(0, 1)))
    if cols.size == 0:
        return None
    return (cols[0] + cols[-1] + 1) / 2


def spine_band_box(mask: np.ndarray, width_fraction: float) -> tuple[slice, slice]:
    """Full-height box whose columns are a band of ``width_fraction`` of the slice width,
    centred on :func:`spine_centre_column` and clipped to the image; a band wider than the
    extent keeps every labelled pixel. It reads the reference mask, so it is for training
    slices only (:class:`RandomSpineBand`); validation and test run on the full field of view.
    """
    if not 0.0 < width_fraction <= 1.0:
        raise ValueError(f"width_fraction must be in (0, 1], got {width_fraction}")
    _, h, w = mask.shape
    band = max(1, int(round(w * width_fraction)))
    centre = spine_centre_column(mask)
    if centre is None or band >= w:
        start = (w - band) // 2
    else:
        start = int(np.clip(round(centre - band / 2), 0, w - band))
    return slice(0, h), slice(start, start + band)


class RandomSpineBand:
    """Training-time crop of a slice to a full-height band of ``width_fraction`` of its width,
    placed at random so that the spine's centre column (of the whole training volume) falls
    anywhere in the middle :data:`BAND_SPREAD` of the band.

    A speed knob of the miniature profiles: half the columns cost half the compute. The
    random placement shows the model the anterior abdomen and the posterior skin as well, so
    that a model trained on bands predicts background there when it is scored on the full
    field of view. Every row is kept, so levels must still be counted from the sacrum. It uses
    the reference mask, which is allowed in training only; validation and test slices are
    never cropped (``data.bundle.build_datasets``).
    """

    BAND_SPREAD = 0.8

    def __init__(self, width_fraction: float) -> None:
        if not 0.0 < width_fraction <= 1.0:
            raise ValueError(f"width_fraction must be in (0, 1], got {width_fraction}")
        self.width_fraction = width_fraction

    def start_range(self, centre: float | None, width: int) -> tuple[int, int]:
        """Inclusive range of the band's first column for a slice ``width`` px wide."""
        band = max(1, int(round(width * self.width_fraction)))
        if band >= width:
            return 0, 0
        if centre is None:
            return 0, width - band
        margin = (1 - self.BAND_SPREAD) / 2 * band
        lo = int(np.clip(np.ceil(centre - band + margin), 0, width - band))
        hi = int(np.clip(np.floor(centre - margin), 0, width - band))
        return lo, max(lo, hi)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor, centre: float | None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Crop a ``(C, H, W)`` image and its ``(H, W)`` mask (torch's global generator)."""
        width = image.shape[-1]
        lo, hi = self.start_range(centre, width)
        start = lo if hi == lo else int(torch.randint(lo, hi + 1, ()).item())
        band = max(1, int(round(width * self.width_fraction)))
        return image[..., start:start + band], mask[..., start:start + band]
