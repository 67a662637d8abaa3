"""Training losses: soft Dice (the paper's choice), cross-entropy, weighted cross-entropy.

Every loss built by :func:`build_loss` maps logits ``(N, C, H, W)`` and a target label map
``(N, H, W)`` (long) to a scalar. :func:`total_loss` combines the several outputs of a model
with deep supervision (a :class:`~spineseg_core.models.base.MultiOutput`).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spineseg_core.errors import ConfigError
from spineseg_core.models.base import MultiOutput


class LossName(StrEnum):
    """The losses the paper compares (section 4.2); ``dice`` is the one it trains with."""

    DICE = "dice"
    CE = "ce"
    WEIGHTED_CE = "weighted_ce"
    DICE_CE = "dice_ce"


class WeightKind(StrEnum):
    """How class weights follow from label frequencies."""

    INVERSE_SQRT = "inverse_sqrt"
    MEDIAN = "median"


def _check_pair(logits: Tensor, target: Tensor) -> None:
    if logits.ndim < 3 or target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(f"expected logits (N, C, H, W) and target (N, H, W), got "
                         f"{tuple(logits.shape)} and {tuple(target.shape)}")


class DicePooling(StrEnum):
    """Where the soft Dice sums run: over the whole batch at once (one Dice per class, nnU-Net's
    "batch Dice", MONAI's ``batch=True``) or per image (a Dice per image and class, then the
    mean over both, MONAI's ``batch=False``)."""

    BATCH = "batch"
    IMAGE = "image"


class SoftDiceLoss(nn.Module):
    """Multi-class soft Dice loss, the paper's eq. 1 on softmax probabilities.

    For each class ``c``: ``dice_c = (2 * sum(p_c * g_c) + smooth_nr) / (sum(p_c) + sum(g_c) +
    smooth_dr)`` with ``p`` the softmax probabilities and ``g`` the one-hot target, the sums
    over the batch (``pooling="batch"``) or over each image (``"image"``); the loss is ``1 -
    mean dice``. The denominator is the plain sum ``|A| + |B|`` as the paper prints it (V-Net
    squares both terms; MONAI's ``squared_pred=False``). Same arguments and values as MONAI's
    ``DiceLoss(softmax=True, to_onehot_y=True)`` (tested against it).

    The paper's eq. 1 leaves open the three choices made here, and they decide whether the loss
    trains a sane model (``book/losses.md``, :data:`DICE_DEFAULTS`):

    * ``include_background``: with background left out, nothing in the loss asks for the
      background to be predicted as background; softmax then pours the background into a class
      absent from the batch, whose term ``smooth_nr / (sum(p_c) + smooth_dr)`` saturates near
      zero gradient once that mass is there (the first bundle's "background collapse").
    * ``pooling``: per-image sums give every class absent from an image its own saturating term.
    * ``smooth_nr`` / ``smooth_dr``: with ``smooth_nr = smooth_dr = 1`` an absent class scores 1
      while the model predicts none of it; with ``smooth_nr = 0`` it scores 0 whatever is
      predicted (a constant, no gradient).

    The defaults are the most literal reading of eq. 1 (every class, one sum over the batch, no
    smoothing but a ``1e-5`` guard in the denominator, nnU-Net's); :mod:`~spineseg_core.
    loss_study` measured every reading (``results/cpu/loss_variants.csv``).
    """

    def __init__(self, include_background: bool = True,
                 pooling: str | DicePooling = DicePooling.BATCH, smooth_nr: float = 0.0,
                 smooth_dr: float = 1e-5) -> None:
        super().__init__()
        if smooth_nr < 0 or smooth_dr < 0:
            raise ConfigError(f"loss_kwargs: smooth_nr and smooth_dr must be >= 0, got "
                              f"{smooth_nr} and {smooth_dr}")
        self.include_background = bool(include_background)
        self.pooling = _parse_pooling(pooling)
        self.smooth_nr, self.smooth_dr = float(smooth_nr), float(smooth_dr)

    def per_class(self, logits: Tensor, target: Tensor) -> Tensor:
        """Soft Dice per class, background included: ``(C,)`` for batch pooling, ``(N, C)``
        per image."""
        _check_pair(logits, target)
        num_classes = logits.shape[1]
        probs = logits.float().softmax(dim=1)
        onehot = F.one_hot(target.long(), num_classes).movedim(-1, 1).to(probs.dtype)
        spatial = tuple(range(2, logits.ndim))
        dims = (0, *spatial) if self.pooling is DicePooling.BATCH else spatial
        intersection = (probs * onehot).sum(dims)
        denominator = probs.sum(dims) + onehot.sum(dims)
        return ((2 * intersection + self.smooth_nr)
                / (denominator + self.smooth_dr).clamp(min=1e-12))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        dice = self.per_class(logits, target)
        if not self.include_background:
            dice = dice[..., 1:]
        return 1.0 - dice.mean()


def _parse_pooling(value: str | DicePooling) -> DicePooling:
    try:
        return DicePooling(value)
    except ValueError:
        raise ConfigError(f"loss_kwargs: pooling must be one of "
                          f"{', '.join(DicePooling)}, got {value!r}") from None


class DiceCELoss(nn.Module):
    """Sum of :class:`SoftDiceLoss` and (optionally class-weighted) cross-entropy, weight 1 each
    (nnU-Net's default loss)."""

    def __init__(self, class_weights: Tensor | None = None, **dice_kwargs: Any) -> None:
        super().__init__()
        self.dice = SoftDiceLoss(**dice_kwargs)
        self.ce = nn.CrossEntropyLoss(weight=class_weights)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.dice(logits, target) + self.ce(logits, target)


def class_weights_from_frequencies(freq: Tensor, kind: str | WeightKind = WeightKind.INVERSE_SQRT
                                   ) -> Tensor:
    """Class weights ``(C,)`` float32 from training pixel counts (or fractions) per class.

    ``inverse_sqrt``: ``w_c = 1 / sqrt(f_c)``; ``median``: median-frequency balancing
    ``w_c = median(f) / f_c`` (Eigen & Fergus), the median taken over the classes seen. A class
    with zero count gets the largest weight of the seen classes: it is at least as rare as any
    of them, and a validation fold that holds it then still counts it. The weights are scaled to
    mean 1, so the weighted loss keeps the scale of the unweighted one.
    """
    try:
        kind = WeightKind(kind)
    except ValueError:
        raise ConfigError(f"class weight kind must be one of "
                          f"{', '.join(WeightKind)}, got {kind!r}") from None
    f = torch.as_tensor(freq, dtype=torch.float64)
    if f.ndim != 1 or f.numel() == 0:
        raise ConfigError(f"frequencies must be a non-empty 1-D tensor, got shape {tuple(f.shape)}")
    if torch.any(f < 0) or not torch.all(torch.isfinite(f)):
        raise ConfigError(f"frequencies must be finite and non-negative, got {f.tolist()}")
    seen = f > 0
    if not seen.any():
        raise ConfigError("frequencies are all zero: no labelled pixel to weigh classes by")
    f = f / f.sum()
    w = torch.zeros_like(f)
    if kind is WeightKind.INVERSE_SQRT:
        w[seen] = f[seen].rsqrt()
    else:
        # quantile(0.5) averages the two middle values like numpy; torch.median takes the lower.
        w[seen] = torch.quantile(f[seen], 0.5) / f[seen]
    w[~seen] = w[seen].max()
    return (w / w.mean()).to(torch.float32)


DICE_KWARGS: frozenset[str] = frozenset({"include_background", "pooling", "smooth_nr",
                                          "smooth_dr"})
"""Options of the Dice term (``loss_kwargs``), taken by ``dice`` and ``dice_ce``."""


def _dice(class_weights: Tensor | None, **kwargs: Any) -> nn.Module:
    if class_weights is not None:
        raise ConfigError(f"loss {LossName.DICE.value!r} takes no class weights; they are used "
                          f"by {LossName.WEIGHTED_CE.value!r} and {LossName.DICE_CE.value!r}")
    return SoftDiceLoss(**kwargs)


def _ce(class_weights: Tensor | None, **_: Any) -> nn.Module:
    if class_weights is not None:
        raise ConfigError(f"loss {LossName.CE.value!r} takes no class weights; they are used by "
                          f"{LossName.WEIGHTED_CE.value!r} and {LossName.DICE_CE.value!r}")
    return nn.CrossEntropyLoss()


def _weighted_ce(class_weights: Tensor | None, **_: Any) -> nn.Module:
    if class_weights is None:
        raise ConfigError("loss 'weighted_ce' needs class_weights "
                          "(see class_weights_from_frequencies)")
    return nn.CrossEntropyLoss(weight=torch.as_tensor(class_weights, dtype=torch.float32))


def _dice_ce(class_weights: Tensor | None, **kwargs: Any) -> nn.Module:
    weights = None if class_weights is None else torch.as_tensor(class_weights,
                                                                 dtype=torch.float32)
    return DiceCELoss(weights, **kwargs)


_LOSSES: dict[LossName, Callable[..., nn.Module]] = {
    LossName.DICE: _dice,
    LossName.CE: _ce,
    LossName.WEIGHTED_CE: _weighted_ce,
    LossName.DICE_CE: _dice_ce,
}
_TAKES_DICE_KWARGS = frozenset({LossName.DICE, LossName.DICE_CE})


def build_loss(name: str | LossName, class_weights: Tensor | None = None,
               loss_kwargs: dict[str, Any] | None = None) -> nn.Module:
    """The loss module called ``name``: ``(logits (N, C, H, W), target (N, H, W)) -> scalar``.

    ``class_weights`` (``(C,)``) is required by ``weighted_ce``, optional for ``dice_ce`` (its
    cross-entropy term) and refused by the others. ``loss_kwargs`` are options of the Dice term
    (:data:`DICE_KWARGS`) for ``dice`` and ``dice_ce``. The weights are a buffer: move the
    module to the training device with ``.to(device)``.
    """
    try:
        key = LossName(name)
    except ValueError:
        raise ConfigError(f"unknown loss {name!r}; valid names: "
                          f"{', '.join(n.value for n in LossName)}") from None
    kwargs = dict(loss_kwargs or {})
    if kwargs and key not in _TAKES_DICE_KWARGS:
        raise ConfigError(f"loss_kwargs: loss {key.value!r} takes none, got {sorted(kwargs)}")
    unknown = sorted(set(kwargs) - DICE_KWARGS)
    if unknown:
        raise ConfigError(f"loss_kwargs: unknown option(s) {unknown}; valid: "
                          f"{', '.join(sorted(DICE_KWARGS))}")
    return _LOSSES[key](class_weights, **kwargs)


def total_loss(outputs: Tensor | MultiOutput, target: Tensor,
               loss_fn: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """``sum_i weight_i * loss_fn(logits_i, target)`` over a model's outputs (not normalised).

    A plain tensor counts as one output of weight 1; a :class:`MultiOutput` carries the main
    and auxiliary logits with the weights its reference implementation trains them with.
    """
    if isinstance(outputs, Tensor):
        return loss_fn(outputs, target)
    if not isinstance(outputs, MultiOutput):
        raise TypeError(f"outputs must be a Tensor or a MultiOutput, got {type(outputs).__name__}")
    if len(outputs.logits) != len(outputs.weights) or not outputs.logits:
        raise ValueError(f"MultiOutput has {len(outputs.logits)} logits and "
                         f"{len(outputs.weights)} weights")
    terms = [w * loss_fn(logits, target) for logits, w in zip(outputs.logits, outputs.weights)]
    return torch.stack(terms).sum()
