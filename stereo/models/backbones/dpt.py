"""DPT head of DepthAnything-V2 (`depth_head.*`) with the upstream parameter names.

Four ViT layers -> `projects` (1x1) -> `resize_layers` (x4, x2, x1, /2) -> `scratch.layerN_rn` (3x3, no bias)
-> `scratch.refinenet4..1` (feature fusion, bilinear align_corners=True) -> `scratch.output_conv1` (3x3,
features -> features/2) -> resize to the patch grid x14 -> `scratch.output_conv2` (depth).
FoundationStereo uses the `output_conv1` map; the depth output is computed but not used.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ResidualConvUnit(nn.Module):
    def __init__(self, features: int, use_bn: bool):
        super().__init__()
        self.use_bn = use_bn
        self.conv1 = nn.Conv2d(features, features, 3, padding=1, bias=True)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1, bias=True)
        if use_bn:
            self.bn1 = nn.BatchNorm2d(features)
            self.bn2 = nn.BatchNorm2d(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(x))
        if self.use_bn:
            out = self.bn1(out)
        out = self.conv2(F.relu(out))
        if self.use_bn:
            out = self.bn2(out)
        return out + x


class FeatureFusionBlock(nn.Module):
    """Adds the (refined) skip, refines, upsamples to `size` (default x2), projects with `out_conv`."""

    def __init__(self, features: int, use_bn: bool):
        super().__init__()
        # Registration order matters only for state-dict order: upstream registers out_conv first.
        self.out_conv = nn.Conv2d(features, features, 1)
        self.resConfUnit1 = ResidualConvUnit(features, use_bn)
        self.resConfUnit2 = ResidualConvUnit(features, use_bn)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None,
                size: tuple[int, int] | None = None) -> torch.Tensor:
        # refinenet4 gets no skip, so its resConfUnit1 is never executed (dead but present in checkpoints).
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)
        return self.out_conv(x)


class DPTHead(nn.Module):
    def __init__(self, in_channels: int, features: int, out_channels: Sequence[int], use_bn: bool = False,
                 use_clstoken: bool = False):
        super().__init__()
        if len(out_channels) != 4:
            raise ValueError(f"DPT out_channels must list 4 widths, got {list(out_channels)}")
        self.use_clstoken = use_clstoken
        self.projects = nn.ModuleList(nn.Conv2d(in_channels, c, 1) for c in out_channels)
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(out_channels[0], out_channels[0], kernel_size=4, stride=4),
            nn.ConvTranspose2d(out_channels[1], out_channels[1], kernel_size=2, stride=2),
            nn.Identity(),
            nn.Conv2d(out_channels[3], out_channels[3], kernel_size=3, stride=2, padding=1),
        ])
        if use_clstoken:
            self.readout_projects = nn.ModuleList(
                nn.Sequential(nn.Linear(2 * in_channels, in_channels), nn.GELU()) for _ in out_channels)
        self.scratch = nn.Module()
        for i, c in enumerate(out_channels, start=1):
            setattr(self.scratch, f"layer{i}_rn", nn.Conv2d(c, features, 3, padding=1, bias=False))
        for i in range(1, 5):
            setattr(self.scratch, f"refinenet{i}", FeatureFusionBlock(features, use_bn))
        self.scratch.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        self.scratch.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, 32, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(32, 1, 1), nn.ReLU(True), nn.Identity())

    def forward(self, features: list[tuple[torch.Tensor, torch.Tensor]], patch_h: int, patch_w: int,
                patch_size: int = 14) -> torch.Tensor:
        """The `output_conv1` map (features/2 channels) resized to the patch grid x patch_size."""
        maps = []
        for i, (tokens, cls_token) in enumerate(features):
            if self.use_clstoken:
                readout = cls_token.unsqueeze(1).expand_as(tokens)
                tokens = self.readout_projects[i](torch.cat([tokens, readout], dim=-1))
            x = tokens.permute(0, 2, 1).reshape(tokens.shape[0], tokens.shape[-1], patch_h, patch_w)
            maps.append(self.resize_layers[i](self.projects[i](x)))
        s = self.scratch
        l1, l2, l3, l4 = (getattr(s, f"layer{i}_rn")(m) for i, m in enumerate(maps, start=1))
        path4 = s.refinenet4(l4, size=l3.shape[2:])
        path3 = s.refinenet3(path4, l3, size=l2.shape[2:])
        path2 = s.refinenet2(path3, l2, size=l1.shape[2:])
        path1 = s.refinenet1(path2, l1)
        out = s.output_conv1(path1)
        return F.interpolate(out, (patch_h * patch_size, patch_w * patch_size), mode="bilinear",
                             align_corners=True)

    def depth(self, feature_map: torch.Tensor) -> torch.Tensor:
        """Relative depth (B, 1, H, W) from the `forward` map; FoundationStereo does not need it."""
        return self.scratch.output_conv2(feature_map)
