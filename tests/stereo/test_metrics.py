"""Metrics against hand-computed values on tiny arrays."""
from __future__ import annotations

import math

import pytest
import torch

from stereo.metrics import (
    StereoMetrics,
    bad_pixel_rate,
    d1_rate,
    end_point_error,
    find_metric,
    per_image_metrics,
    prefixed,
    rmse,
    strip_namespace,
    valid_mask,
)

INF = math.inf

# Image A: errors 0.5, 2, 4, 0 on four scored pixels.
GT_A = [[1.0, 2.0], [4.0, 10.0]]
PRED_A = [[1.5, 4.0], [8.0, 10.0]]
# Image B: only (0,0) is scored (inf GT, zero GT, GT beyond max_disparity=100); error 5.
GT_B = [[2.0, INF], [0.0, 200.0]]
PRED_B = [[7.0, 0.0], [0.0, 0.0]]
# Image C: errors 4, 5, 0, 0 with gt 80: |err| > 3 everywhere it is non-zero, but 4 is not > 0.05*80.
GT_C = [[80.0, 80.0], [80.0, 80.0]]
PRED_C = [[84.0, 85.0], [80.0, 80.0]]


def t(rows):
    return torch.tensor([rows])  # [1,H,W]


def one(pred, gt, valid=None, max_disp=100.0):
    return per_image_metrics(t(pred), t(gt), valid, max_disp)[0]


def test_valid_mask_excludes_nonfinite_zero_and_out_of_range():
    mask = valid_mask(t(GT_B), None, 100.0)
    assert mask.tolist() == [[[True, False], [False, False]]]
    nan_gt = torch.tensor([[[math.nan, 5.0]]])
    assert valid_mask(nan_gt, torch.ones(1, 1, 1, 2), 100.0).tolist() == [[[False, True]]]
    assert valid_mask(t(GT_A), t([[1.0, 0.0], [1.0, 1.0]]), 100.0).tolist() == [[[True, False], [True, True]]]


def test_gt_equal_to_max_disparity_is_excluded():
    assert valid_mask(torch.tensor([[[99.0, 100.0]]]), None, 100.0).tolist() == [[[True, False]]]


def test_image_a_every_metric_by_hand():
    m = one(PRED_A, GT_A)
    assert m["valid_pixels"] == 4
    assert m["epe"] == pytest.approx(6.5 / 4)
    assert m["bp1"] == pytest.approx(0.5)  # 2 and 4 exceed 1
    assert m["bp2"] == pytest.approx(0.25)  # 2 is not > 2
    assert m["bp3"] == pytest.approx(0.25)
    assert m["d1"] == pytest.approx(0.25)  # 4 > 3 and 4 > 0.05*8
    assert m["rmse"] == pytest.approx(2.25)  # sqrt((0.25 + 4 + 16 + 0) / 4), one square root


def test_d1_needs_both_absolute_and_relative_error():
    m = one(PRED_C, GT_C)
    assert m["bp3"] == pytest.approx(0.5)
    assert m["d1"] == pytest.approx(0.25)  # only err 5 > 0.05*80 = 4


def test_inf_nan_zero_and_large_gt_are_not_scored():
    m = one(PRED_B, GT_B)
    assert m["valid_pixels"] == 1
    assert m["epe"] == pytest.approx(5.0) and m["rmse"] == pytest.approx(5.0)
    assert m["bp1"] == m["bp3"] == m["d1"] == 1.0


def test_pure_functions_match_and_take_thresholds():
    pred, gt = torch.tensor([PRED_A, PRED_C]), torch.tensor([GT_A, GT_C])
    mask = valid_mask(gt, None, 100.0)
    assert end_point_error(pred, gt, mask).tolist() == pytest.approx([1.625, 2.25])
    assert bad_pixel_rate(pred, gt, mask, 0.4).tolist() == pytest.approx([0.75, 0.5])
    assert d1_rate(pred, gt, mask, abs_threshold=3.0, rel_threshold=0.0).tolist() == pytest.approx([0.25, 0.5])
    assert rmse(pred, gt, mask).tolist() == pytest.approx([2.25, math.sqrt(41 / 4)])


def test_accepts_b1hw_and_bhw_alike():
    a = per_image_metrics(t(PRED_A)[:, None], t(GT_A)[:, None], torch.ones(1, 1, 2, 2), 100.0)
    assert a == per_image_metrics(t(PRED_A), t(GT_A), None, 100.0)


def test_nan_prediction_counts_as_bad_and_makes_epe_inf():
    m = one([[math.nan, 2.0], [4.0, 10.0]], GT_A)
    assert m["epe"] == INF
    assert m["bp3"] == pytest.approx(0.25)


def test_accumulator_per_image_mean_and_pooled_and_skips_empty_image():
    sm = StereoMetrics(max_disparity=100.0)
    sm.update(torch.tensor([PRED_A, PRED_B]), torch.tensor([GT_A, GT_B]), None, names=["a", "b"])
    sm.update(t(PRED_A), t(GT_A), torch.zeros(1, 2, 2), names=["empty"])
    out = sm.compute()
    assert all(math.isfinite(v) for v in out.values())
    assert out["epe"] == pytest.approx((1.625 + 5.0) / 2)
    assert out["epe_pooled"] == pytest.approx((6.5 + 5.0) / 5)
    assert out["bp2"] == pytest.approx((0.25 + 1.0) / 2)
    assert out["bp2_pooled"] == pytest.approx(2 / 5)
    assert out["rmse"] == pytest.approx((2.25 + 5.0) / 2)
    assert out["rmse_pooled"] == pytest.approx(math.sqrt((20.25 + 25.0) / 5))
    assert sm.counts() == {"images": 3, "images_scored": 2, "images_without_valid": 1, "valid_pixels": 5}
    rows = sm.per_sample()
    assert [r["name"] for r in rows] == ["a", "b", "empty"]
    assert rows[1]["valid_pixels"] == 1 and rows[1]["epe"] == pytest.approx(5.0)
    assert rows[2]["valid_pixels"] == 0 and math.isnan(rows[2]["epe"])
    assert list(rows[0]) == ["name", "valid_pixels", "epe", "bp1", "bp2", "bp3", "d1", "rmse"]


def test_batch_size_does_not_change_results():
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(3, 1, 6, 7, generator=g) * 50
    gt[1, 0, :2] = 0  # some invalid pixels
    pred = gt + torch.randn(3, 1, 6, 7, generator=g) * 3
    valid = (torch.rand(3, 1, 6, 7, generator=g) > 0.2).float()
    batched, single = StereoMetrics(40.0), StereoMetrics(40.0)
    batched.update(pred, gt, valid)
    for i in range(3):
        single.update(pred[i:i + 1], gt[i:i + 1], valid[i:i + 1])
    b, s = batched.compute(), single.compute()
    assert b.keys() == s.keys()
    for k in b:
        assert b[k] == pytest.approx(s[k], rel=1e-12), k


def test_no_scored_image_gives_nan_not_zero():
    sm = StereoMetrics(10.0)
    sm.update(t(PRED_A), t(GT_A), torch.zeros(1, 2, 2))
    assert all(math.isnan(v) for v in sm.compute().values())


def test_custom_thresholds_name_the_keys():
    sm = StereoMetrics(100.0, thresholds=(0.5, 4))
    sm.update(t(PRED_A), t(GT_A), None)
    out = sm.compute()
    assert out["bp0.5"] == pytest.approx(0.5) and out["bp4"] == 0.0
    assert "bp1" not in out


@pytest.mark.parametrize("kwargs, match", [({"max_disparity": 0}, "max_disparity"),
                                           ({"max_disparity": 10, "thresholds": (1, 1)}, "distinct")])
def test_bad_arguments_raise_naming_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StereoMetrics(**kwargs)


def test_shape_mismatch_and_wrong_names_count_raise():
    sm = StereoMetrics(10.0)
    with pytest.raises(ValueError, match="pred has shape"):
        sm.update(torch.zeros(1, 2, 3), torch.zeros(1, 2, 2), None)
    with pytest.raises(ValueError, match="2 names for a batch of 1"):
        sm.update(t(PRED_A), t(GT_A), None, names=["x", "y"])
    with pytest.raises(ValueError, match="batch dimension"):
        valid_mask(torch.zeros(2), None, 10.0)


def test_prefix_strip_and_find_metric():
    assert prefixed({"epe": 1.0}, "val/") == {"val/epe": 1.0}
    assert strip_namespace("val/epe") == "epe" and strip_namespace("epe") == "epe"
    assert find_metric({"val/epe": 2.0}, "epe") == 2.0
    assert find_metric({"epe": 3.0}, "val/epe") == 3.0
    assert find_metric({"epe": 3.0, "val/epe": 4.0}, "val/epe") == 4.0
    with pytest.raises(KeyError, match="available"):
        find_metric({"val/d1": 1.0}, "epe")
    with pytest.raises(ValueError, match="ambiguous"):
        find_metric({"val/epe": 1.0, "test/epe": 2.0}, "epe")
