"""The fit-to-engine policy: pad when the image fits, else shrink keeping the aspect ratio, then pad."""
import pytest
import torch

from stereo.deploy.engine_io import (
    EngineShape,
    crop_prediction,
    fit_images,
    ground_truth_in_engine_frame,
    plan_fit,
    target_shape,
    to_native,
)


def test_image_that_fits_is_padded_evenly_without_resize():
    fit = plan_fit((60, 100), (64, 128))
    assert fit.mode == "pad" and not fit.resized and fit.disp_scale == 1.0
    assert fit.pad == (14, 14, 2, 2)
    img = torch.arange(60 * 100, dtype=torch.float32).reshape(1, 60, 100).expand(3, -1, -1)
    out = fit_images(img, fit)
    assert out.shape == (3, 64, 128)
    assert torch.equal(crop_prediction(out, fit), img)  # the crop is exactly the original
    assert torch.equal(out[:, 0, 14:114], img[:, 0])  # edge replication above the image


def test_exact_size_is_identity():
    fit = plan_fit((64, 128), (64, 128))
    assert fit.mode == "identity" and fit.pad == (0, 0, 0, 0)


def test_larger_image_is_shrunk_keeping_aspect_then_padded():
    fit = plan_fit((128, 512), (64, 128))  # aspect 4:1 into 2:1 -> 32x128, padded to 64 rows
    assert fit.mode == "resize+pad" and fit.resized_hw == (32, 128) and fit.pad == (0, 0, 16, 16)
    assert fit.disp_scale == pytest.approx(0.25)
    assert fit_images(torch.full((1, 3, 128, 512), 7.0), fit).shape == (1, 3, 64, 128)


def test_ground_truth_follows_the_resize_and_width_ratio():
    fit = plan_fit((128, 256), (64, 128))
    disp = torch.full((1, 128, 256), 40.0)
    valid = torch.ones(1, 128, 256)
    valid[:, :, :128] = 0
    gt, v = ground_truth_in_engine_frame(disp, valid, fit)
    assert gt.shape == (1, 64, 128) and torch.allclose(gt, torch.full_like(gt, 20.0))
    assert v[:, :, :64].sum() == 0 and v[:, :, 64:].min() == 1


def test_padded_ground_truth_is_unchanged_and_padding_never_scored():
    fit = plan_fit((60, 100), (64, 128))
    disp, valid = torch.rand(1, 60, 100), torch.ones(1, 60, 100)
    assert ground_truth_in_engine_frame(disp, valid, fit) == (disp, valid)
    assert crop_prediction(torch.zeros(1, 64, 128), fit).shape == (1, 60, 100)


def test_to_native_undoes_the_fit():
    fit = plan_fit((128, 256), (64, 128))
    engine_pred = torch.full((1, 64, 128), 10.0)  # 10 px in the engine frame = 20 px natively
    native = to_native(engine_pred, fit)
    assert native.shape == (1, 128, 256) and torch.allclose(native, torch.full_like(native, 20.0))
    fit = plan_fit((60, 100), (64, 128))
    assert to_native(torch.ones(1, 64, 128), fit).shape == (1, 60, 100)


def test_target_shape_static_dynamic_and_profile_limits():
    assert target_shape((60, 100), EngineShape(hw=(64, 128))) == (64, 128)
    assert target_shape((60, 100), EngineShape()) == (64, 128)  # dynamic: round up to 32
    assert target_shape((60, 100), EngineShape(), requested=(96, 160)) == (96, 160)
    bounded = EngineShape(min_hw=(96, 96), max_hw=(128, 256))
    assert target_shape((60, 100), bounded) == (96, 128)
    assert target_shape((500, 900), bounded) == (128, 256)
    with pytest.raises(ValueError, match="outside the engine's H/W range"):
        target_shape((60, 100), bounded, requested=(320, 736))


def test_batch_for_static_and_ranges():
    assert EngineShape(batch=4).batch_for(1) == 4
    assert EngineShape(max_batch=2).batch_for(8) == 2
    assert EngineShape(min_batch=2, max_batch=4).batch_for(1) == 2
