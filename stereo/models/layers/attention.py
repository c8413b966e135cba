"""Attention gates: image-guided cost-volume gating (FeatureAtt) and the context CAM / SAM blocks."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from stereo.models.layers.conv import BasicConv


class FeatureAtt(nn.Module):
    """Gate a cost volume [B,C,D,H,W] by sigmoid(MLP(image feature)), broadcast over disparity.

    `norm` is the norm of the hidden 1x1 conv: NVlabs uses BatchNorm (`bn`), TAO FS InstanceNorm (`IN`).
    """

    def __init__(self, cv_chan: int, feat_chan: int, norm: Optional[str] = "bn"):
        super().__init__()
        self.feat_att = nn.Sequential(
            BasicConv(feat_chan, feat_chan // 2, norm=norm, relu=True, kernel_size=1, stride=1, padding=0),
            nn.Conv2d(feat_chan // 2, cv_chan, 1))

    def forward(self, cv: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        att = self.feat_att(feat).unsqueeze(2)
        return torch.sigmoid(att) * cv


class ChannelAttentionEnhancement(nn.Module):
    """CAM: sigmoid(fc(avgpool x) + fc(maxpool x)) -> per-channel weights [B,C,1,1]."""

    def __init__(self, in_planes: int, mid_channels: Optional[int] = None):
        super().__init__()
        mid = in_planes // 16 if mid_channels is None else mid_channels
        if mid < 1:
            raise ValueError(f"ChannelAttentionEnhancement needs mid_channels >= 1, got {mid} "
                             f"(in_planes={in_planes}); set cam_mid_channels")
        self.fc = nn.Sequential(nn.Conv2d(in_planes, mid, 1, bias=False), nn.ReLU(),
                                nn.Conv2d(mid, in_planes, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.fc(F.adaptive_avg_pool2d(x, 1))
        mx = self.fc(F.adaptive_max_pool2d(x, 1))
        return torch.sigmoid(avg + mx)


class SpatialAttentionExtractor(nn.Module):
    """SAM: sigmoid(conv7x7([mean_c x, max_c x])) -> [B,1,H,W], blends the two GRU kernels."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.samconv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = torch.mean(x, dim=1, keepdim=True)
        mx, _ = torch.max(x, dim=1, keepdim=True)
        return torch.sigmoid(self.samconv(torch.cat([avg, mx], dim=1)))
