"""sequence_loss against hand-computed values."""
from __future__ import annotations

import math

import pytest
import torch

from stereo.losses import sequence_loss, sequence_weights, validation_loss


def _gt(value=8.0):
    gt = torch.full((1, 1, 8, 8), value)
    valid = torch.ones(1, 1, 8, 8)
    return gt, valid


def test_weights_last_is_one_first_is_gamma15():
    assert sequence_weights(1) == [1.0]
    w = sequence_weights(3, 0.9)
    assert w == pytest.approx([0.9 ** 15, 0.9 ** 7.5, 1.0])
    assert sequence_weights(22, 0.9)[0] == pytest.approx(0.9 ** 15)


def test_total_is_init_smooth_l1_plus_weighted_l1_by_hand():
    gt, valid = _gt(8.0)
    init = torch.full((1, 1, 2, 2), 1.5, requires_grad=True)  # gt/4 = 2 → |d| = 0.5 → 0.5·0.5² = 0.125
    preds = [gt + 2.0, gt + 1.0]
    loss, parts = sequence_loss(init, preds, gt, valid, max_disparity=100.0, gamma=0.9)
    assert parts["init"].item() == pytest.approx(0.125)
    assert parts["sequence"].item() == pytest.approx(2.0 * 0.9 ** 15 + 1.0)
    assert loss.item() == pytest.approx(0.125 + 2.0 * 0.9 ** 15 + 1.0)
    assert parts["valid_pixels"].item() == 64
    loss.backward()
    assert init.grad.abs().sum() > 0


def test_init_term_uses_linear_branch_beyond_one_pixel():
    gt, valid = _gt(8.0)
    loss, parts = sequence_loss(torch.full((1, 1, 2, 2), 5.0), [gt], gt, valid, 100.0)
    assert parts["init"].item() == pytest.approx(3.0 - 0.5)  # |5 − 2| − 0.5
    assert loss.item() == pytest.approx(2.5)  # the single prediction is exact, weight 1


def test_quarter_res_gt_and_mask_are_nearest_downsampled():
    gt, valid = _gt(8.0)
    gt[..., 0::4, 0::4] = 40.0  # exactly the pixels nearest-downsampling picks
    valid[..., 0, 0] = 0.0  # drops quarter-res pixel (0,0)
    init = torch.full((1, 1, 2, 2), 10.0)  # matches 40/4 → zero error where scored
    _, parts = sequence_loss(init, [gt], gt, valid, 100.0)
    assert parts["init"].item() == pytest.approx(0.0)


def test_invalid_gt_inf_nan_and_beyond_max_are_excluded():
    gt, valid = _gt(8.0)
    gt[0, 0, 0, 1] = math.inf
    gt[0, 0, 1, 1] = math.nan
    gt[0, 0, 2, 2] = 150.0  # ≥ max_disparity
    gt[0, 0, 3, 3] = 0.0
    pred = gt.clone().nan_to_num(0.0)
    pred[0, 0, 5, 5] += 6.0  # one scored pixel off by 6
    init = torch.full((1, 1, 2, 2), 2.0)
    loss, parts = sequence_loss(init, [pred.requires_grad_()], gt, valid, 100.0)
    assert parts["valid_pixels"].item() == 60
    assert loss.item() == pytest.approx(6.0 / 60)
    loss.backward()


def test_no_valid_pixel_gives_zero_with_grad_path():
    gt, valid = _gt(8.0)
    init = torch.ones(1, 1, 2, 2, requires_grad=True)
    pred = torch.ones(1, 1, 8, 8, requires_grad=True)
    loss, _ = sequence_loss(init, [pred], gt, torch.zeros_like(valid), 100.0)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(pred.grad, torch.zeros_like(pred)) and torch.isfinite(init.grad).all()


def test_nan_prediction_makes_loss_nan():
    gt, valid = _gt(8.0)
    pred = gt.clone()
    pred[0, 0, 0, 0] = math.nan
    loss, _ = sequence_loss(torch.full((1, 1, 2, 2), 2.0), [pred], gt, valid, 100.0)
    assert math.isnan(loss.item())


def test_validation_loss_is_full_res_smooth_l1():
    gt, valid = _gt(8.0)
    pred = gt.clone()
    pred[0, 0, 0, :2] += torch.tensor([0.5, 3.0])
    assert validation_loss(pred, gt, valid, 100.0).item() == pytest.approx((0.125 + 2.5) / 64)


@pytest.mark.parametrize("init_hw, preds, match", [((3, 3), 1, "1/4 resolution"), ((2, 2), 0, "at least one"),])
def test_bad_shapes_raise(init_hw, preds, match):
    gt, valid = _gt()
    with pytest.raises(ValueError, match=match):
        sequence_loss(torch.zeros(1, 1, *init_hw), [gt] * preds, gt, valid, 100.0)


def test_gamma_out_of_range_raises():
    with pytest.raises(ValueError, match="gamma"):
        sequence_weights(3, 1.5)
