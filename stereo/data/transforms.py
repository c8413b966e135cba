"""Training augmentation (train split only): colour jitter, eraser, optional L/R-swapping flip, scale +
stretch + random crop with y-jitter. TAO's chain (§5 of the reference notes) with these fixes:

* the resize really rescales and disparity is multiplied by the horizontal factor (TAO resizes down and
  back up, a blur), and validity is resampled so no invalid GT leaks into valid pixels;
* regions the augmentation pads are invalid (TAO zero-pads disparity and counts it as valid GT);
* the flip swaps left and right *and* moves the GT to the new left view (stereo geometry is kept).

Everything is drawn from the numpy Generator passed in, so a sample is reproducible from its seed.
Samples are dicts of numpy arrays: `left`/`right` float32 `[H,W,3]` 0..255, optional `disp`/`valid` `[H,W]`.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from stereo.config.dataset import AugmentationConfig
from stereo.data.disparity_warp import left_to_right_disparity

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_ASYM_BRIGHTNESS, _ASYM_CONTRAST, _ASYM_SATURATION = 0.4, 0.4, (0.6, 1.4)  # TAO's hard-coded asymmetric jitter
_ERASER_SIDE = (50, 100)  # rectangle sides drawn from [50, 100) px, as RAFT-Stereo / TAO
_CROP_RETRIES = 100
_FIT_MARGIN = 8  # resized images keep crop + 8 px, as RAFT-Stereo, so crops have room to move


def _draw_jitter(rng: np.random.Generator, brightness: float, contrast: float,
                 saturation: tuple[float, float], hue: tuple[float, float]) -> tuple:
    order = rng.permutation(4)
    return (order, rng.uniform(max(0.0, 1 - brightness), 1 + brightness),
            rng.uniform(max(0.0, 1 - contrast), 1 + contrast), rng.uniform(*saturation), rng.uniform(*hue))


def _apply_jitter(images: list[np.ndarray], params: tuple) -> list[np.ndarray]:
    """torchvision ColorJitter semantics on 0..255 floats; contrast uses the mean over all `images`
    (the symmetric branch jitters the stacked pair)."""
    order, b, c, s, h = params
    out = [im.astype(np.float32) for im in images]
    for op in order:
        if op == 0:
            out = [np.clip(im * b, 0, 255) for im in out]
        elif op == 1:
            mean = float(np.mean([float((im @ _LUMA).mean()) for im in out]))
            out = [np.clip(c * im + (1 - c) * mean, 0, 255) for im in out]
        elif op == 2:
            out = [np.clip(s * im + (1 - s) * (im @ _LUMA)[..., None], 0, 255) for im in out]
        elif h != 0.0:
            out = [_shift_hue(im, h) for im in out]
    return out


def _shift_hue(img: np.ndarray, turns: float) -> np.ndarray:
    hsv = cv2.cvtColor(np.ascontiguousarray(img / 255.0, dtype=np.float32), cv2.COLOR_RGB2HSV)
    hsv[..., 0] = np.mod(hsv[..., 0] + 360.0 * turns, 360.0)  # float HSV hue is in degrees
    return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0, 0, 255)


def _resize_disparity(disp: np.ndarray, valid: np.ndarray, size: tuple[int, int],
                      sx: float) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear resize where all four source pixels are valid (no blending with missing GT), then
    scale by the horizontal factor because disparity is measured in horizontal pixels."""
    w, h = size
    d = cv2.resize(disp * valid, (w, h), interpolation=cv2.INTER_LINEAR)
    v = cv2.resize(valid, (w, h), interpolation=cv2.INTER_LINEAR)
    keep = v > 0.999
    return np.where(keep, d * sx, 0.0).astype(np.float32), keep.astype(np.float32)


def _pad_to(sample: dict, min_h: int, min_w: int) -> dict:
    """Pad bottom/right up to the crop size: images mirrored, disparity 0 and invalid."""
    h, w = sample["left"].shape[:2]
    ph, pw = max(0, min_h - h), max(0, min_w - w)
    if ph == 0 and pw == 0:
        return sample
    border = cv2.BORDER_REFLECT_101 if (ph < h and pw < w) else cv2.BORDER_REPLICATE
    out = {k: cv2.copyMakeBorder(sample[k], 0, ph, 0, pw, border) for k in ("left", "right")}
    if "disp" in sample:
        out["disp"] = np.pad(sample["disp"], ((0, ph), (0, pw)))
        out["valid"] = np.pad(sample["valid"], ((0, ph), (0, pw)))
    return out


class StereoAugmentor:
    """Callable `(sample, rng) -> sample` producing a `crop_size` training sample."""

    def __init__(self, cfg: AugmentationConfig, max_disparity: int):
        if len(cfg.crop_size) != 2 or min(cfg.crop_size) < 1:
            raise ValueError(f"augmentation.crop_size must be [H, W] with positive values, got {cfg.crop_size}")
        if cfg.min_scale > cfg.max_scale:
            raise ValueError(f"augmentation.min_scale ({cfg.min_scale}) must be <= max_scale ({cfg.max_scale})")
        self.cfg = cfg
        self.max_disparity = max_disparity
        self.crop_h, self.crop_w = int(cfg.crop_size[0]), int(cfg.crop_size[1])

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        sample = dict(sample)
        sample["left"], sample["right"] = self.color(sample["left"], sample["right"], rng)
        sample["right"] = self.erase(sample["right"], rng)
        if self.cfg.do_flip and rng.random() < self.cfg.h_flip_prob:
            sample = swap_flip(sample)
        sample = self.rescale(sample, rng)
        return self.crop(sample, rng)

    def color(self, left: np.ndarray, right: np.ndarray, rng: np.random.Generator):
        cfg = self.cfg
        hue = (float(cfg.color_aug_hue_range[0]), float(cfg.color_aug_hue_range[1]))
        if rng.random() < cfg.color_aug_prob:
            sat = _ASYM_SATURATION
            left = _apply_jitter([left], _draw_jitter(rng, _ASYM_BRIGHTNESS, _ASYM_CONTRAST, sat, hue))[0]
            right = _apply_jitter([right], _draw_jitter(rng, _ASYM_BRIGHTNESS, _ASYM_CONTRAST, sat, hue))[0]
            return left, right
        sat = (float(cfg.color_aug_saturation[0]), float(cfg.color_aug_saturation[1]))
        params = _draw_jitter(rng, cfg.color_aug_brightness, cfg.color_aug_contrast, sat, hue)
        left, right = _apply_jitter([left, right], params)
        return left, right

    def erase(self, right: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Occlude 1-2 rectangles of the right image with its mean colour (forces use of context)."""
        if rng.random() >= self.cfg.eraser_aug_prob:
            return right
        right = right.copy()
        h, w = right.shape[:2]
        mean = right.reshape(-1, 3).mean(axis=0)
        for _ in range(int(rng.integers(1, 3))):
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            dx, dy = int(rng.integers(*_ERASER_SIDE)), int(rng.integers(*_ERASER_SIDE))
            right[y0:y0 + dy, x0:x0 + dx] = mean
        return right

    def rescale(self, sample: dict, rng: np.random.Generator) -> dict:
        """Resize by 2^U(min_scale, max_scale), stretched per axis with prob stretch_prob, never below
        crop + 8 px; fires with prob spatial_aug_prob."""
        cfg = self.cfg
        h, w = sample["left"].shape[:2]
        fit = max((self.crop_h + _FIT_MARGIN) / h, (self.crop_w + _FIT_MARGIN) / w)
        scale = 2.0 ** rng.uniform(cfg.min_scale, cfg.max_scale)
        sx = sy = scale
        if rng.random() < cfg.stretch_prob:
            sx *= 2.0 ** rng.uniform(-cfg.max_stretch, cfg.max_stretch)
            sy *= 2.0 ** rng.uniform(-cfg.max_stretch, cfg.max_stretch)
        sx, sy = max(sx, fit), max(sy, fit)
        if rng.random() >= cfg.spatial_aug_prob:
            return sample
        nw, nh = max(1, math.ceil(w * sx)), max(1, math.ceil(h * sy))
        sx = nw / w  # the factor actually applied, so disparity matches the resized pixel grid
        out = {k: cv2.resize(sample[k], (nw, nh), interpolation=cv2.INTER_LINEAR) for k in ("left", "right")}
        if "disp" in sample:
            out["disp"], out["valid"] = _resize_disparity(sample["disp"], sample["valid"], (nw, nh), sx)
        return out

    def crop(self, sample: dict, rng: np.random.Generator) -> dict:
        """Random crop; the right crop moves +-2 rows with prob yjitter_prob (imperfect rectification).
        With crop_min_valid_disp_ratio > 0, retry up to 100 positions and keep the first good (or best)."""
        sample = _pad_to(sample, self.crop_h, self.crop_w)
        h, w = sample["left"].shape[:2]
        ch, cw = self.crop_h, self.crop_w

        def draw() -> tuple[int, int]:
            return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))

        y0, x0 = draw()
        need = self.cfg.crop_min_valid_disp_ratio
        if need > 0 and "disp" in sample:
            usable = (sample["valid"] > 0) & (sample["disp"] <= self.max_disparity)
            best, best_ratio = (y0, x0), -1.0
            for attempt in range(_CROP_RETRIES):
                if attempt:
                    y0, x0 = draw()
                ratio = float(usable[y0:y0 + ch, x0:x0 + cw].mean())
                if ratio > best_ratio:
                    best, best_ratio = (y0, x0), ratio
                if ratio >= need:
                    break
            y0, x0 = best
        y1 = y0
        if rng.random() < self.cfg.yjitter_prob:
            y1 = int(np.clip(y0 + rng.integers(-2, 3), 0, h - ch))
        out = {"left": sample["left"][y0:y0 + ch, x0:x0 + cw], "right": sample["right"][y1:y1 + ch, x0:x0 + cw]}
        for k in ("disp", "valid"):
            if k in sample:
                out[k] = sample[k][y0:y0 + ch, x0:x0 + cw]
        return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def swap_flip(sample: dict) -> dict:
    """Mirror both views and swap them: the mirrored right view is a valid left view of the mirrored
    scene. Its GT is the right-view disparity, obtained by forward-warping the left GT."""
    out = {"left": np.ascontiguousarray(sample["right"][:, ::-1]),
           "right": np.ascontiguousarray(sample["left"][:, ::-1])}
    if "disp" in sample:
        disp_r, valid_r = left_to_right_disparity(sample["disp"], sample["valid"])
        out["disp"] = np.ascontiguousarray(disp_r[:, ::-1])
        out["valid"] = np.ascontiguousarray(valid_r[:, ::-1])
    return out
