"""FoundationStereo context network (`cnet`, NVlabs `ContextNetDino`) and the RAFT residual block.

RAFT-Stereo `MultiBasicEncoder` layout with BatchNorm: conv1 7x7 -> layer1 64 -> layer2 96 (s2) ->
layer3 128 (s2) = 1/4; concat the left ViT map -> `conv2` (3x3) -> `outputs04`; `layer4` (s2) ->
`outputs08`; `layer5` (s2) -> `outputs16`. Each level yields (net, inp) heads.
`down` and `norm` are never executed upstream; they are registered so NVlabs checkpoints load strictly.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from stereo.models.layers.conv import BasicConv

_NORMS = {"batch": nn.BatchNorm2d, "instance": nn.InstanceNorm2d}


class ResidualBlock(nn.Module):
    """RAFT residual block: biased 3x3 convs, norm1/norm2, and a 1x1 `downsample` (conv + norm3) when the
    shape changes. The `downsample.1` and `norm3` entries are one module (the checkpoint lists both)."""

    def __init__(self, in_planes: int, planes: int, norm_fn: str = "batch", stride: int = 1):
        super().__init__()
        if norm_fn not in _NORMS:
            raise ValueError(f"norm_fn must be one of {sorted(_NORMS)}, got {norm_fn!r}")
        norm = _NORMS[norm_fn]
        self.conv1 = nn.Conv2d(in_planes, planes, 3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.norm1 = norm(planes)
        self.norm2 = norm(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.norm3 = norm(planes)
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride), self.norm3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.norm1(self.conv1(x)))
        y = self.relu(self.norm2(self.conv2(y)))
        if self.downsample is not None:
            x = self.downsample(x)
        return self.relu(x + y)


class ContextNetDino(nn.Module):
    def __init__(self, vit_dim: int, hidden_dims: Sequence[int], context_dims: Sequence[int],
                 n_downsample: int = 2, conv2_norm: str = "bn"):
        super().__init__()
        if n_downsample != 2:
            raise ValueError(f"model.n_downsample={n_downsample}: FoundationStereo works at 1/4 (2) only")
        self.norm1 = nn.BatchNorm2d(64)
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=1, padding=3)
        self.relu1 = nn.ReLU(inplace=True)
        self.in_planes = 64
        self.layer1 = self._make_layer(64, stride=1)
        self.layer2 = self._make_layer(96, stride=2)
        self.layer3 = self._make_layer(128, stride=2)
        self.layer4 = self._make_layer(128, stride=2)
        self.layer5 = self._make_layer(128, stride=2)
        self.down = nn.Sequential(nn.Conv2d(128, 128, 4, stride=4), nn.BatchNorm2d(128))  # dead upstream
        # TAO FS uses InstanceNorm here (no state) where NVlabs has BatchNorm
        self.conv2 = BasicConv(128 + vit_dim, 128, norm=conv2_norm, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(256)  # dead upstream
        # upstream builds one head per entry of output_dim=[hidden_dims, context_dims], indexing dim[2]
        # (1/4), dim[1] (1/8), dim[0] (1/16)
        heads = [hidden_dims, context_dims]
        self.outputs04 = nn.ModuleList(
            nn.Sequential(ResidualBlock(128, 128), nn.Conv2d(128, d[2], 3, padding=1)) for d in heads)
        self.outputs08 = nn.ModuleList(
            nn.Sequential(ResidualBlock(128, 128), nn.Conv2d(128, d[1], 3, padding=1)) for d in heads)
        self.outputs16 = nn.ModuleList(nn.Conv2d(128, d[0], 3, padding=1) for d in heads)
        self._init_weights()

    def _make_layer(self, dim: int, stride: int) -> nn.Sequential:
        layers = nn.Sequential(ResidualBlock(self.in_planes, dim, stride=stride), ResidualBlock(dim, dim))
        self.in_planes = dim
        return layers

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor, vit_feat: torch.Tensor, num_layers: int = 3
                ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """[(net, inp) at 1/4, 1/8, 1/16][:num_layers]; x is the normalised left image."""
        x = self.relu1(self.norm1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = self.conv2(torch.cat([x, vit_feat], dim=1))
        levels = [tuple(f(x) for f in self.outputs04)]
        if num_layers >= 2:
            y = self.layer4(x)
            levels.append(tuple(f(y) for f in self.outputs08))
            if num_layers >= 3:
                z = self.layer5(y)
                levels.append(tuple(f(z) for f in self.outputs16))
        return levels
