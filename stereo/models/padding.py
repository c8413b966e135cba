"""Pad images to a multiple of 32 (replicate, split evenly) and crop results back, as the NVlabs demo does."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Padding:
    """Pixels added on each side at full resolution (left, right, top, bottom)."""
    left: int
    right: int
    top: int
    bottom: int

    @property
    def is_zero(self) -> bool:
        return not (self.left or self.right or self.top or self.bottom)


def padding_for(height: int, width: int, multiple: int = 32) -> Padding:
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    pad_h = (-height) % multiple
    pad_w = (-width) % multiple
    return Padding(pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)


def pad(x: torch.Tensor, padding: Padding) -> torch.Tensor:
    if padding.is_zero:
        return x
    return F.pad(x, (padding.left, padding.right, padding.top, padding.bottom), mode="replicate")


def unpad(x: torch.Tensor, padding: Padding, scale: int = 1) -> torch.Tensor:
    """Crop a map of `scale`-times-smaller resolution back to the unpadded region.

    At scale > 1 the crop starts at floor(pad/scale) and keeps ceil(size/scale) cells, so a
    1/4-resolution map always covers the original image.
    """
    if padding.is_zero:
        return x
    h, w = x.shape[-2:]
    full_h = h * scale - padding.top - padding.bottom
    full_w = w * scale - padding.left - padding.right
    top, left = padding.top // scale, padding.left // scale
    out_h, out_w = -(-full_h // scale), -(-full_w // scale)
    return x[..., top: top + out_h, left: left + out_w]


def pad_pair(left: torch.Tensor, right: torch.Tensor, multiple: int = 32) -> Tuple[torch.Tensor, torch.Tensor,
                                                                                 Padding]:
    if left.shape != right.shape:
        raise ValueError(f"left and right must have the same shape, got {tuple(left.shape)} and "
                         f"{tuple(right.shape)}")
    p = padding_for(left.shape[-2], left.shape[-1], multiple)
    return pad(left, p), pad(right, p), p
