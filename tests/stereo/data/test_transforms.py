import cv2
import numpy as np
import pytest

from stereo.config.dataset import AugmentationConfig
from stereo.data.synthetic import make_scene
from stereo.data.transforms import StereoAugmentor, swap_flip


def _no_photometric(**kw):
    """Geometry only: no colour change, no eraser, no y-jitter, no stretch."""
    base = {"color_aug_prob": 0.0, "color_aug_brightness": 0.0, "color_aug_contrast": 0.0,
            "color_aug_saturation": [1.0, 1.0], "color_aug_hue_range": [0.0, 0.0], "eraser_aug_prob": 0.0,
            "yjitter_prob": 0.0, "stretch_prob": 0.0}
    base.update(kw)
    return AugmentationConfig(**base)


def _sample(h=40, w=80, disp=5.0, seed=0):
    rng = np.random.default_rng(seed)
    return {"left": rng.uniform(0, 255, (h, w, 3)).astype(np.float32),
            "right": rng.uniform(0, 255, (h, w, 3)).astype(np.float32),
            "disp": np.full((h, w), disp, np.float32), "valid": np.ones((h, w), np.float32)}


@pytest.mark.parametrize("hw", [(40, 80), (20, 24), (100, 50)])
def test_output_has_crop_size(hw):
    aug = StereoAugmentor(AugmentationConfig(crop_size=[32, 64]), max_disparity=64)
    out = aug(_sample(*hw), np.random.default_rng(0))
    assert {k: v.shape for k, v in out.items()} == {"left": (32, 64, 3), "right": (32, 64, 3),
                                                     "disp": (32, 64), "valid": (32, 64)}
    assert all(v.dtype == np.float32 for v in out.values())


def test_padding_is_invalid_and_zero():
    aug = StereoAugmentor(_no_photometric(crop_size=[32, 64], spatial_aug_prob=0.0), max_disparity=64)
    out = aug(_sample(20, 50), np.random.default_rng(0))
    # crop of a 32x64 canvas that holds the 20x50 image top-left: rows >= 20, cols >= 50 are padding
    assert out["valid"][20:].sum() == 0 and out["valid"][:, 50:].sum() == 0
    assert out["disp"][20:].sum() == 0 and out["disp"][:, 50:].sum() == 0
    assert out["valid"][:20, :50].min() == 1 and np.all(out["disp"][:20, :50] == 5.0)


def test_disparity_scales_with_horizontal_resize():
    # log2 scale fixed at 1 -> 2x in both axes; disparity 5 -> 10
    aug = StereoAugmentor(_no_photometric(crop_size=[32, 64], min_scale=1.0, max_scale=1.0), max_disparity=64)
    out = aug(_sample(40, 80), np.random.default_rng(0))
    np.testing.assert_allclose(out["disp"][out["valid"] > 0], 10.0, rtol=1e-5)
    assert out["valid"].mean() == 1.0


def test_stretch_scales_disparity_by_the_x_factor_only():
    cfg = _no_photometric(crop_size=[16, 16], min_scale=0.0, max_scale=0.0, stretch_prob=1.0, max_stretch=0.5)
    aug = StereoAugmentor(cfg, max_disparity=64)
    sample = _sample(40, 80)
    # disparity = x, so after resizing by sx it is sx * x' / sx... i.e. the resized value equals x_new
    sample["disp"] = np.tile(np.arange(80, dtype=np.float32), (40, 1))
    out = aug(sample, np.random.default_rng(4))
    # each row increases by exactly sx per resized pixel times 1/sx pixels -> slope 1 along x
    slope = np.diff(out["disp"], axis=1)
    np.testing.assert_allclose(slope, 1.0, atol=1e-3)


def test_invalid_gt_never_leaks_into_valid_pixels():
    sample = _sample(40, 80)
    sample["valid"][:, 30:40] = 0
    sample["disp"][:, 30:40] = 0
    aug = StereoAugmentor(AugmentationConfig(crop_size=[32, 64]), max_disparity=64)
    for seed in range(5):
        out = aug(sample, np.random.default_rng(seed))
        assert np.all(out["disp"][out["valid"] > 0] > 0)
        assert np.all(out["disp"][out["valid"] == 0] == 0)


def test_deterministic_for_a_generator_seed():
    aug = StereoAugmentor(AugmentationConfig(crop_size=[32, 64], color_aug_prob=0.5, do_flip=True),
                          max_disparity=64)
    a = aug(_sample(), np.random.default_rng(11))
    b = aug(_sample(), np.random.default_rng(11))
    c = aug(_sample(), np.random.default_rng(12))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["left"], c["left"])


def test_min_valid_ratio_retries_to_the_valid_region():
    sample = _sample(64, 128)
    sample["valid"][:] = 0
    sample["valid"][:, 96:] = 1
    cfg = _no_photometric(crop_size=[32, 32], spatial_aug_prob=0.0, crop_min_valid_disp_ratio=1.0)
    out = StereoAugmentor(cfg, max_disparity=64)(sample, np.random.default_rng(0))
    assert out["valid"].mean() == 1.0


def test_eraser_touches_only_the_right_image():
    cfg = _no_photometric(crop_size=[120, 120], eraser_aug_prob=1.0, spatial_aug_prob=0.0)
    s = _sample(120, 120)
    out = StereoAugmentor(cfg, max_disparity=64)(s, np.random.default_rng(1))
    np.testing.assert_array_equal(out["left"], s["left"])
    erased = np.all(out["right"] == s["right"].reshape(-1, 3).mean(axis=0), axis=-1)
    assert erased.sum() >= 50 * 50


def test_symmetric_jitter_keeps_identical_views_identical_asymmetric_does_not():
    s = _sample()
    s["right"] = s["left"].copy()
    sym = StereoAugmentor(AugmentationConfig(crop_size=[40, 80], color_aug_prob=0.0), 64)
    left, right = sym.color(s["left"], s["right"], np.random.default_rng(0))
    np.testing.assert_allclose(left, right)
    assert not np.allclose(left, s["left"]) and left.min() >= 0 and left.max() <= 255
    asym = StereoAugmentor(AugmentationConfig(crop_size=[40, 80], color_aug_prob=1.0), 64)
    left, right = asym.color(s["left"], s["right"], np.random.default_rng(0))
    assert not np.allclose(left, right)


def test_swap_flip_keeps_stereo_geometry():
    scene = make_scene(40, 80, 20, np.random.default_rng(3))
    out = swap_flip({"left": scene.left, "right": scene.right, "disp": scene.disp,
                     "valid": np.ones_like(scene.disp)})
    h, w = out["disp"].shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    warped = cv2.remap(out["right"], x - out["disp"], y, cv2.INTER_LINEAR)
    err = np.abs(warped - out["left"]).mean(axis=-1)
    ok = cv2.erode((out["valid"] > 0).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert ok.mean() > 0.5 and np.median(err[ok]) < 1.0
    assert np.all(out["disp"][out["valid"] > 0] > 0)  # disparities stay positive


def test_flip_probability_is_honoured():
    cfg = _no_photometric(crop_size=[40, 80], spatial_aug_prob=0.0, do_flip=True, h_flip_prob=1.0)
    s = _sample()
    out = StereoAugmentor(cfg, 64)(s, np.random.default_rng(0))
    np.testing.assert_array_equal(out["left"], s["right"][:, ::-1])
    cfg.do_flip = False
    out = StereoAugmentor(cfg, 64)(s, np.random.default_rng(0))
    np.testing.assert_array_equal(out["left"], s["left"])
