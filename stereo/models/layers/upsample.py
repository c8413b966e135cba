"""Learned convex ("spx") upsampling of a 1/4-resolution disparity to full resolution."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def context_upsample(disp_low: torch.Tensor, up_weights: torch.Tensor) -> torch.Tensor:
    """disp_low [B,1,h,w], up_weights [B,9,4h,4w] (softmaxed) -> [B,4h,4w].

    Each full-res pixel is a convex combination of the 3x3 low-res neighbourhood of its parent pixel.
    """
    b, c, h, w = disp_low.shape
    unfolded = F.unfold(disp_low, kernel_size=3, padding=1, stride=1).reshape(b, -1, h, w)
    unfolded = F.interpolate(unfolded, (h * 4, w * 4), mode="nearest").reshape(b, 9, h * 4, w * 4)
    return (unfolded * up_weights).sum(1)


def convex_upsample(disp_low: torch.Tensor, mask: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """RAFT convex upsampling: mask [B, 9*f*f, h, w] logits -> [B,1,f*h,f*w] of f*disp."""
    n, _, h, w = disp_low.shape
    mask = torch.softmax(mask.view(n, 1, 9, factor, factor, h, w), dim=2)
    up = F.unfold(factor * disp_low, [3, 3], padding=1).view(n, 1, 9, 1, 1, h, w)
    up = torch.sum(mask * up, dim=2).permute(0, 1, 4, 2, 5, 3)
    return up.reshape(n, 1, factor * h, factor * w)
