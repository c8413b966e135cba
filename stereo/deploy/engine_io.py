"""Fit an image pair to a deployed network's input shape, and map predictions and ground truth with it.

A deployed graph (ONNX or TensorRT engine) has a fixed input H×W or a bounded dynamic range, while a
data set's images have their own size. The policy, in one sentence: **pad when the image fits; when it
does not, shrink it keeping the aspect ratio until it fits, then pad.** Never stretch: an engine of a
different aspect ratio gets padding, not distorted images (TAO's deploy loader stretches, pitfall 15).

* Images are padded with edge replication, split evenly between the sides (as the network's own
  padding to a multiple of 32 does), so an engine of size ceil32(image) sees exactly what the PyTorch
  path sees and both score the same.
* Resizing is bilinear; disparity is horizontal, so it scales with the **width** ratio:
  `disp_engine = disp_native × new_w / orig_w`.
* Metrics are computed in the engine frame: the prediction is cropped to the (resized) image, the
  ground truth is resized the same way (nearest, so sparse GT stays sparse, × new_w/orig_w). Padding
  never counts. Without a resize this equals scoring at the native resolution.
* Predictions written by inference go back to the native size (crop, resize, × orig_w/new_w).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

MULTIPLE = 32  # every network input is a multiple of 32 (three 2x downsamplings after a 4x stem)
HW = tuple[int, int]


@dataclass(frozen=True)
class EngineShape:
    """What a deployed graph accepts: a static H×W (`hw`) or a range (`min_hw`..`max_hw`, None = open),
    and a static batch (`batch`) or a batch range."""
    hw: HW | None = None
    min_hw: HW = (MULTIPLE, MULTIPLE)
    max_hw: HW | None = None
    batch: int | None = None
    min_batch: int = 1
    max_batch: int | None = None

    @property
    def dynamic_hw(self) -> bool:
        return self.hw is None

    def batch_for(self, wanted: int) -> int:
        """How many images one call takes when `wanted` are available (static batch wins)."""
        if self.batch is not None:
            return self.batch
        hi = self.max_batch if self.max_batch is not None else wanted
        return max(self.min_batch, min(wanted, hi))


@dataclass(frozen=True)
class Fit:
    """How one image maps into the engine frame: resize `orig_hw` -> `resized_hw`, then pad
    (left, right, top, bottom) to `target_hw`."""
    orig_hw: HW
    resized_hw: HW
    target_hw: HW
    pad: tuple[int, int, int, int]

    @property
    def resized(self) -> bool:
        return self.resized_hw != self.orig_hw

    @property
    def disp_scale(self) -> float:
        """Factor from native to engine-frame disparity (the width ratio)."""
        return self.resized_hw[1] / self.orig_hw[1]

    @property
    def mode(self) -> str:
        return "resize+pad" if self.resized else ("identity" if self.resized_hw == self.target_hw else "pad")


def ceil_multiple(x: int, multiple: int = MULTIPLE) -> int:
    return -(-int(x) // multiple) * multiple


def nearest_multiples(x: int, multiple: int = MULTIPLE) -> str:
    """'96 or 128' for 100: the fix to print when a size is not a multiple of 32."""
    lo = max(multiple, (int(x) // multiple) * multiple)
    hi = ceil_multiple(x, multiple)
    return str(lo) if lo == hi else f"{lo} or {hi}"


def target_shape(orig_hw: HW, engine: EngineShape, requested: HW | None = None) -> HW:
    """The engine input size for an image of `orig_hw`.

    Static engine: its size. Dynamic: `requested` (evaluate/inference.input_height/width) if given,
    else the image rounded up to a multiple of 32; clamped into the engine's range.
    """
    if engine.hw is not None:
        return engine.hw
    want = requested if requested is not None else (ceil_multiple(orig_hw[0]), ceil_multiple(orig_hw[1]))
    h, w = (max(v, lo) for v, lo in zip(want, engine.min_hw))
    if engine.max_hw is not None:
        h, w = min(h, engine.max_hw[0]), min(w, engine.max_hw[1])
    if requested is not None and (h, w) != tuple(requested):
        raise ValueError(f"input size {requested[0]}x{requested[1]} is outside the engine's H/W range "
                         f"{engine.min_hw[0]}x{engine.min_hw[1]}..{engine.max_hw[0]}x{engine.max_hw[1]}; set "
                         "input_height/input_width inside it or rebuild the engine with a wider profile")
    return h, w


def plan_fit(orig_hw: HW, target_hw: HW) -> Fit:
    """Pad if `orig_hw` fits in `target_hw`; otherwise shrink (keeping aspect ratio) to fit, then pad."""
    (h, w), (th, tw) = orig_hw, target_hw
    if min(h, w, th, tw) < 1:
        raise ValueError(f"sizes must be positive, got image {h}x{w} and target {th}x{tw}")
    scale = min(1.0, th / h, tw / w)
    nh, nw = (h, w) if scale == 1.0 else (min(th, max(1, math.floor(h * scale + 0.5))),
                                          min(tw, max(1, math.floor(w * scale + 0.5))))
    ph, pw = th - nh, tw - nw
    return Fit((h, w), (nh, nw), (th, tw), (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


def fit_images(img: torch.Tensor, fit: Fit) -> torch.Tensor:
    """[B,3,H,W] (or [3,H,W]) RGB 0..255 -> the engine frame: bilinear resize if needed, edge padding."""
    squeeze = img.dim() == 3
    x = img[None] if squeeze else img
    if fit.resized:
        x = F.interpolate(x, size=fit.resized_hw, mode="bilinear", align_corners=False, antialias=True)
    if any(fit.pad):
        x = F.pad(x, fit.pad, mode="replicate")
    return x[0] if squeeze else x


def crop_prediction(pred: torch.Tensor, fit: Fit) -> torch.Tensor:
    """Engine-frame prediction [..., TH, TW] -> the part that covers the (resized) image."""
    left, _, top, _ = fit.pad
    nh, nw = fit.resized_hw
    return pred[..., top:top + nh, left:left + nw]


def ground_truth_in_engine_frame(disp: torch.Tensor, valid: torch.Tensor, fit: Fit
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """GT [1,H,W] and valid [1,H,W] at the cropped engine-frame resolution (scaled by the width ratio)."""
    if not fit.resized:
        return disp, valid
    size = fit.resized_hw
    d = F.interpolate(disp[None].float(), size=size, mode="nearest")[0] * fit.disp_scale
    v = F.interpolate(valid[None].float(), size=size, mode="nearest")[0]
    return d, v


def to_native(pred: torch.Tensor, fit: Fit) -> torch.Tensor:
    """Engine-frame prediction [1,TH,TW] -> native resolution [1,H,W] in native pixels."""
    p = crop_prediction(pred, fit)
    if not fit.resized:
        return p
    p = F.interpolate(p[None].float(), size=fit.orig_hw, mode="bilinear", align_corners=False)[0]
    return p / fit.disp_scale
