"""Training-time intensity augmentation with TorchIO, as the paper did.

The paper augments with TorchIO's random noise, blur, motion and ghosting. These are intensity
transforms, so only the image changes and masks stay untouched. They run on single 2D slices:
slices are what the model sees, and one slice is far cheaper than a whole 880 px volume
(motion: ~7 ms at 128 px, ~70 ms at 880 px on one core). TorchIO's default parameter ranges are
kept; each transform has its own probability.

Noise, blur and ghosting see the slice as TorchIO's 2D image ``(1, H, W, 1)``. Motion does not:
``tio.Motion`` fills k-space segment by segment along the image's *last* axis, which is the
singleton one for a 2D image, so ``tio.RandomMotion`` on a 2D slice degenerates into one rigid
shift of the image alone, misaligning it with its mask. :class:`InPlaneMotion` therefore lays
the slice out as ``(1, 1, H, W)``, draws TorchIO's default parameters for an in-plane movement
(rotation about the slice normal, translation within the slice) and calls ``tio.Motion``, so
k-space is segmented along the slice's column axis: ghost-like motion artefacts, no net shift.

TorchIO (and SimpleITK, which it imports) is imported only when a transform is built, so the
package, and training with the batched augmentation on the device
(:mod:`spineseg_core.data.batch_augment`), work where TorchIO is not installed, as on the lent
GPU machine (docs/gpu.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from spineseg_core.errors import ConfigError, MissingPackageError

if TYPE_CHECKING:
    import torchio as tio


def _torchio() -> ModuleType:
    """TorchIO, imported on first use; its absence is one :class:`MissingPackageError` line."""
    try:
        import torchio
    except ImportError as exc:
        raise MissingPackageError(
            f"the per-slice augmentation needs torchio, which cannot be imported ({exc}); "
            "install it (pip install -c constraints.txt torchio) or augment whole batches on "
            "the device (gpu_augment)") from None
    return torchio


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations run, each with its own probability per slice."""

    enabled: bool = True
    p_noise: float = 0.25
    p_blur: float = 0.25
    p_motion: float = 0.25
    p_ghosting: float = 0.25

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name.startswith("p_"):
                p = getattr(self, f.name)
                if not 0.0 <= p <= 1.0:
                    raise ConfigError(f"augment.{f.name} must be a probability in [0, 1], got {p}")


SliceTransform = Callable[[torch.Tensor], torch.Tensor]
"""Maps a ``(1, H, W)`` slice image to a new one."""


class _TorchIO2D:
    """A TorchIO transform applied to a slice seen as a 2D image ``(1, H, W, 1)``."""

    def __init__(self, transform: tio.Transform) -> None:
        self.transform = transform

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self.transform(image[..., None])[..., 0]


class InPlaneMotion:
    """TorchIO's motion artefact on one slice, k-space segmented along the column axis.

    Parameters follow ``tio.RandomMotion``'s defaults: ``num_transforms`` movements at
    perturbed, equally spaced times, each a rotation in ``(-degrees, degrees)`` about the slice
    normal and a translation in ``(-translation, translation)`` mm within the slice (1 mm per
    pixel, as TorchIO assumes for a bare tensor).
    """

    def __init__(self, p: float, degrees: float = 10.0, translation: float = 10.0,
                 num_transforms: int = 2, perturbation: float = 0.3) -> None:
        self.p, self.degrees, self.translation = p, degrees, translation
        self.num_transforms, self.perturbation = num_transforms, perturbation
        self._motion = _torchio().Motion

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if torch.rand(1).item() >= self.p:
            return image
        n = self.num_transforms
        degrees = np.zeros((n, 3))
        degrees[:, 0] = torch.empty(n).uniform_(-self.degrees, self.degrees).numpy()
        translation = np.zeros((n, 3))
        translation[:, 1:] = torch.empty(n, 2).uniform_(-self.translation, self.translation).numpy()
        step = 1.0 / (n + 1)
        times = (torch.arange(1, n + 1) * step
                 + torch.empty(n).uniform_(-step * self.perturbation, step * self.perturbation))
        motion = self._motion(degrees=degrees, translation=translation, times=times.numpy(),
                              image_interpolation="linear")
        return motion(image[:, None])[:, 0]


_TRANSFORMS: dict[str, Callable[[float], SliceTransform]] = {
    "p_noise": lambda p: _TorchIO2D(_torchio().RandomNoise(p=p)),
    "p_blur": lambda p: _TorchIO2D(_torchio().RandomBlur(p=p)),
    "p_motion": lambda p: InPlaneMotion(p),
    "p_ghosting": lambda p: _TorchIO2D(_torchio().RandomGhosting(p=p)),
}


class SliceAugmentation:
    """Apply slice transforms in order to the ``image`` of an item; the rest passes through."""

    def __init__(self, transforms: Sequence[SliceTransform] = ()) -> None:
        self.transforms = list(transforms)

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        if not self.transforms:
            return item
        image = item["image"]
        if image.ndim != 3:
            raise ValueError(f"expected a (C, H, W) slice image, got shape {tuple(image.shape)}")
        image = image.float()
        for transform in self.transforms:
            image = transform(image)
        return {**item, "image": image.float().contiguous()}


def build_augmentation(cfg: AugmentConfig | None) -> SliceAugmentation:
    """The slice transform of ``cfg`` (identity when disabled, absent or all probabilities 0)."""
    if cfg is None or not cfg.enabled:
        return SliceAugmentation()
    return SliceAugmentation(
        [make(getattr(cfg, name)) for name, make in _TRANSFORMS.items() if getattr(cfg, name) > 0])
