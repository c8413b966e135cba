"""StereoModel: the forward contract every stereo network here follows (see docs/ARCHITECTURE.md).

`model(left, right, iters=None, test_mode=False)` takes RGB 0..255 float images [B,3,H,W] of any size,
pads them to a multiple of 32, normalises with ImageNet mean/std, runs `forward_padded`, and crops
the outputs back: training -> (init_disp [B,1,~H/4,~W/4] in 1/4-res px, [disp_k [B,1,H,W]]),
test -> disp [B,1,H,W].
"""
from __future__ import annotations

from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn

from stereo.models.padding import pad_pair, unpad

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PAD_MULTIPLE = 32

Output = Union[torch.Tensor, Tuple[torch.Tensor, List[torch.Tensor]]]


def normalize_image(img: torch.Tensor) -> torch.Tensor:
    """(img / 255 - mean) / std per RGB channel, the arithmetic of NVlabs `normalize_image`."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
    return (img / 255.0 - mean) / std


def _is_graph_capture() -> bool:
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export():
        return True
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and compiler.is_compiling())


def check_image_range(img: torch.Tensor, name: str) -> None:
    """Raise when `img` looks ImageNet-normalised or 0..1 instead of RGB 0..255."""
    if img.dim() != 4 or img.shape[1] != 3:
        raise ValueError(f"{name} must be [B,3,H,W] RGB, got shape {tuple(img.shape)}")
    if not img.is_floating_point():
        raise ValueError(f"{name} must be a float tensor holding RGB 0..255, got dtype {img.dtype}; "
                         f"convert with .float()")
    lo, hi = float(img.min()), float(img.max())
    if lo < -1e-3 or (hi <= 1.5 and hi - lo > 1e-6):
        raise ValueError(f"{name} has values in [{lo:.3g}, {hi:.3g}]; the network expects RGB in 0..255 and "
                         f"normalises internally. Pass the un-normalised image (e.g. x_n * std * 255 + mean * 255), "
                         f"not an ImageNet-normalised or 0..1 tensor.")


class StereoModel(nn.Module):
    """Base class: subclasses implement `forward_padded(left_n, right_n, iters, test_mode)` on normalised,
    padded images and set `train_iters` / `valid_iters`."""

    train_iters: int = 22
    valid_iters: int = 22

    def forward_padded(self, left: torch.Tensor, right: torch.Tensor, iters: int, test_mode: bool) -> Output:
        raise NotImplementedError

    def forward(self, left: torch.Tensor, right: torch.Tensor, iters: Optional[int] = None,
                test_mode: bool = False) -> Output:
        if not _is_graph_capture():
            check_image_range(left, "left")
            check_image_range(right, "right")
        if iters is None:
            iters = self.valid_iters if test_mode else self.train_iters
        if iters < 1:
            raise ValueError(f"iters must be >= 1, got {iters}")
        left_p, right_p, padding = pad_pair(left, right, PAD_MULTIPLE)
        out = self.forward_padded(normalize_image(left_p), normalize_image(right_p), iters, test_mode)
        if test_mode:
            return unpad(out, padding)
        init_disp, preds = out
        return unpad(init_disp, padding, scale=4), [unpad(p, padding) for p in preds]
