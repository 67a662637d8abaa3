"""Losses: limits of the soft Dice, optimisation decreases every loss, weights, multi-output sum."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from spineseg_core.errors import ConfigError
from spineseg_core.losses import (
    LossName,
    SoftDiceLoss,
    build_loss,
    class_weights_from_frequencies,
    total_loss,
)
from spineseg_core.models.base import MultiOutput

C = 20


def _target(n=2, h=32, w=32, seed=0) -> torch.Tensor:
    """Vertical stripes so that every one of the 20 classes is present."""
    g = torch.Generator().manual_seed(seed)
    t = (torch.arange(w) * C // w).expand(n, h, w).clone()
    return t[:, :, torch.randperm(w, generator=g)]


def _logits_for(labels: torch.Tensor, scale: float = 50.0) -> torch.Tensor:
    return scale * F.one_hot(labels, C).movedim(-1, 1).float()


def test_dice_loss_of_perfect_prediction_is_zero():
    target = _target()
    loss = SoftDiceLoss()(_logits_for(target), target)
    assert loss.item() == pytest.approx(0.0, abs=1e-5)


def test_dice_loss_of_fully_wrong_prediction_is_near_one():
    target = _target()
    wrong = (target + 1) % C
    loss = SoftDiceLoss(include_background=True)(_logits_for(wrong), target)
    # Each class: no overlap, |A| + |B| = 2 * 102 or so: dice = 1 / (|A| + |B| + 1) < 0.005.
    assert 0.99 < loss.item() <= 1.0


def test_dice_loss_matches_hand_computation_and_background_choice():
    target = torch.tensor([[[0, 1], [1, 2]]])
    logits = torch.zeros(1, 3, 2, 2)  # uniform probabilities 1/3
    loss_fn = SoftDiceLoss(include_background=False, smooth_nr=0.0, smooth_dr=0.0)
    per_class = loss_fn.per_class(logits, target)
    # class 0: 2 * (1/3) / (4/3 + 1) = 2/7; class 1: 2 * (2/3) / (4/3 + 2) = 2/5; class 2 as 0.
    torch.testing.assert_close(per_class, torch.tensor([2 / 7, 2 / 5, 2 / 7]))
    assert loss_fn(logits, target).item() == pytest.approx(1 - (2 / 5 + 2 / 7) / 2)
    with_bg = SoftDiceLoss(include_background=True, smooth_nr=0.0, smooth_dr=0.0)(logits, target)
    assert with_bg.item() == pytest.approx(1 - (2 / 7 + 2 / 5 + 2 / 7) / 3)


@pytest.mark.parametrize("include_background", [False, True])
@pytest.mark.parametrize("pooling", ["batch", "image"])
@pytest.mark.parametrize("smooth", [(1.0, 1.0), (0.0, 1e-5), (1e-5, 1e-5)])
def test_dice_loss_agrees_with_monai(include_background, pooling, smooth):
    losses = pytest.importorskip("monai.losses")
    target = _target(h=8, w=8)
    target[0, :4] = 0  # some classes absent from one image only
    logits = torch.randn(2, C, 8, 8, generator=torch.Generator().manual_seed(1))
    monai = losses.DiceLoss(include_background=include_background, to_onehot_y=True,
                            softmax=True, batch=pooling == "batch", smooth_nr=smooth[0],
                            smooth_dr=smooth[1])
    ours = SoftDiceLoss(include_background=include_background, pooling=pooling,
                        smooth_nr=smooth[0], smooth_dr=smooth[1])
    torch.testing.assert_close(ours(logits, target), monai(logits, target[:, None]))


def test_per_image_dice_is_the_mean_of_each_image_alone():
    target = _target(n=2, h=8, w=8)
    target[1] = 0
    logits = torch.randn(2, C, 8, 8, generator=torch.Generator().manual_seed(2))
    per_image = SoftDiceLoss(pooling="image")
    alone = [SoftDiceLoss(pooling="batch")(logits[i:i + 1], target[i:i + 1]) for i in range(2)]
    torch.testing.assert_close(per_image(logits, target), torch.stack(alone).mean())


def test_foreground_only_dice_rewards_a_sink_class():
    """The first bundle's defect, by hand. With background left out and two classes absent
    from a background-only reference, each absent class scores ``1 / (sum p_c + 1)``; with
    ``sum p_1 + sum p_2`` fixed, that sum is largest when one class takes all the mass. So the
    loss is lower for one "sink" class than for the mass split in two, and its gradient pushes
    the sink further up; with background included, the gradient pulls background up instead."""
    target = torch.zeros(1, 16, 16, dtype=torch.long)
    fg_only = SoftDiceLoss(include_background=False, smooth_nr=1.0, smooth_dr=1.0)
    split = torch.zeros(1, 3, 16, 16)
    split[:, 1:] = 5.0
    sink = torch.zeros(1, 3, 16, 16)
    sink[:, 2] = 5.0 + torch.log(torch.tensor(2.0))  # same background probability as `split`
    assert fg_only(sink, target) < fg_only(split, target) - 0.2
    logits = sink.clone().requires_grad_(True)
    fg_only(logits, target).backward()
    assert logits.grad[:, 2].mean().item() < 0  # descent raises the sink's logit
    fg_grad_bg = logits.grad[:, 0].mean().item()
    logits.grad = None
    SoftDiceLoss(include_background=True, smooth_nr=1.0, smooth_dr=1.0)(logits, target).backward()
    assert logits.grad[:, 0].mean().item() < 5 * fg_grad_bg < 0  # background pulled up harder


def test_without_numerator_smoothing_an_absent_class_rewards_nothing():
    """The literal reading (smooth_nr = 0): an absent class's term is 0 whatever is predicted,
    so pouring mass into one absent class lowers the loss no more than spreading it."""
    target = torch.zeros(1, 16, 16, dtype=torch.long)
    literal = SoftDiceLoss(include_background=False)
    split = torch.zeros(1, 3, 16, 16)
    split[:, 1:] = 5.0
    sink = torch.zeros(1, 3, 16, 16)
    sink[:, 2] = 5.0 + torch.log(torch.tensor(2.0))
    assert literal(sink, target).item() == pytest.approx(literal(split, target).item(), abs=1e-6)
    assert literal(sink, target).item() == pytest.approx(1.0, abs=1e-6)


def test_loss_kwargs_are_checked():
    with pytest.raises(ConfigError, match="loss_kwargs: unknown option"):
        build_loss("dice", loss_kwargs={"smooth": 1.0})
    with pytest.raises(ConfigError, match="loss_kwargs: loss 'ce' takes none"):
        build_loss("ce", loss_kwargs={"pooling": "batch"})
    with pytest.raises(ConfigError, match="pooling must be one of"):
        build_loss("dice", loss_kwargs={"pooling": "volume"})
    dice_ce = build_loss("dice_ce", loss_kwargs={"include_background": False})
    assert dice_ce.dice.include_background is False


@pytest.mark.parametrize("name", list(LossName))
def test_every_loss_decreases_under_optimisation(name):
    torch.manual_seed(0)
    target = _target(h=8, w=C)  # every class present: an absent one is a constant term of the
    logits = torch.zeros(2, C, 8, C, requires_grad=True)  # literal Dice, which cannot decrease
    weights = class_weights_from_frequencies(torch.bincount(target.flatten(), minlength=C))
    loss_fn = build_loss(name, weights if name in (LossName.WEIGHTED_CE, LossName.DICE_CE) else None)
    opt = torch.optim.Adam([logits], lr=0.1)
    initial = loss_fn(logits, target).item()
    for _ in range(30):
        opt.zero_grad()
        loss = loss_fn(logits, target)
        loss.backward()
        opt.step()
    final = loss_fn(logits, target).item()
    assert final < 0.5 * initial, (initial, final)


def test_build_loss_errors():
    with pytest.raises(ConfigError, match="unknown loss 'focal'.*dice, ce, weighted_ce, dice_ce"):
        build_loss("focal")
    with pytest.raises(ConfigError, match="needs class_weights"):
        build_loss("weighted_ce")
    with pytest.raises(ConfigError, match="takes no class weights"):
        build_loss("dice", torch.ones(C))


def test_weighted_ce_uses_the_weights():
    target = torch.tensor([[[0, 1]]])
    logits = torch.zeros(1, 2, 1, 2)
    logits[0, 0, 0, 1] = 2.0  # wrong on the class-1 pixel
    w = torch.tensor([1.0, 3.0])
    loss = build_loss("weighted_ce", w)(logits, target)
    l0, l1 = torch.log(torch.tensor(2.0)), torch.log(1 + torch.exp(torch.tensor(2.0)))
    assert loss.item() == pytest.approx(((1 * l0 + 3 * l1) / 4).item())


def test_class_weights_inverse_sqrt_and_median_by_hand():
    freq = torch.tensor([64.0, 16.0, 4.0, 0.0])
    w = class_weights_from_frequencies(freq, "inverse_sqrt")
    # fractions 64/84, 16/84, 4/84 -> 1/sqrt proportional to 1, 2, 4; the unseen class gets 4.
    raw = torch.tensor([1.0, 2.0, 4.0, 4.0])
    torch.testing.assert_close(w, raw / raw.mean())
    assert w.mean().item() == pytest.approx(1.0)
    m = class_weights_from_frequencies(freq, "median")
    # median of (64, 16, 4) is 16: weights 1/4, 1, 4, and 4 for the unseen class.
    raw = torch.tensor([0.25, 1.0, 4.0, 4.0])
    torch.testing.assert_close(m, raw / raw.mean())
    with pytest.raises(ConfigError, match="kind must be one of inverse_sqrt, median"):
        class_weights_from_frequencies(freq, "log")
    with pytest.raises(ConfigError, match="all zero"):
        class_weights_from_frequencies(torch.zeros(3))
    with pytest.raises(ConfigError, match="non-negative"):
        class_weights_from_frequencies(torch.tensor([1.0, -1.0]))


def test_total_loss_weights_multiple_outputs():
    target = _target(h=8, w=8)
    g = torch.Generator().manual_seed(2)
    outs = tuple(torch.randn(2, C, 8, 8, generator=g) for _ in range(3))
    loss_fn = build_loss("ce")
    multi = MultiOutput(outs, (1.0, 0.4, 0.4))
    expected = sum(w * F.cross_entropy(o, target) for o, w in zip(outs, (1.0, 0.4, 0.4)))
    assert total_loss(multi, target, loss_fn).item() == pytest.approx(expected.item(), rel=1e-6)
    assert total_loss(outs[0], target, loss_fn).item() == pytest.approx(
        F.cross_entropy(outs[0], target).item(), rel=1e-6)
    with pytest.raises(ValueError, match="2 logits and 1 weights"):
        total_loss(MultiOutput(outs[:2], (1.0,)), target, loss_fn)
