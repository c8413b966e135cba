"""EdgeNeXt (Maaz et al. 2022) with timm parameter names, as used by the FS/FFS feature extractor.

Names: `stem.{0,1}`, `stages.N.downsample.{0,1}` (N >= 1), `stages.N.blocks.M.*`; conv blocks
`conv_dw`, `norm`, `mlp.fc1`, `mlp.fc2`, `gamma`; SDTA blocks `convs.K`, `pos_embd.token_projection`,
`norm_xca`, `gamma_xca`, `xca.{qkv,proj,temperature}`, `norm`, `mlp.fc1`, `mlp.fc2`, `gamma`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dim of an NCHW tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class EdgeNextConvBlock(nn.Module):
    """x + gamma * MLP(norm(dwconv(x))) with channels-last MLP.

    `timm_names=False` gives the NVlabs `EdgeNextConvEncoder` names (`dwconv`, `pwconv1`, `pwconv2`),
    used by the disparity head; `norm=False` drops the LayerNorm (disparity head).
    """

    def __init__(self, dim: int, kernel_size: int = 7, mlp_dim: Optional[int] = None, norm: bool = True,
                 timm_names: bool = True, layer_scale_init: float = 1e-6):
        super().__init__()
        hidden = 4 * dim if mlp_dim is None else mlp_dim
        self.timm_names = timm_names
        dw = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.gamma = nn.Parameter(layer_scale_init * torch.ones(dim))
        if timm_names:
            self.conv_dw = dw
        else:
            self.dwconv = dw
        self.norm = nn.LayerNorm(dim, eps=1e-6) if norm else None
        if timm_names:
            self.mlp = Mlp(dim, hidden)
        else:
            self.pwconv1 = nn.Linear(dim, hidden)
            self.pwconv2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = (self.conv_dw if self.timm_names else self.dwconv)(x).permute(0, 2, 3, 1)
        if self.norm is not None:
            x = self.norm(x)
        x = self.mlp(x) if self.timm_names else self.pwconv2(F.gelu(self.pwconv1(x)))
        return shortcut + (self.gamma * x).permute(0, 3, 1, 2)


class PositionalEncodingFourier(nn.Module):
    """DETR-style 2-D Fourier features of normalised (y, x) -> 1x1 projection to `dim` channels."""

    def __init__(self, hidden_dim: int = 32, dim: int = 768, temperature: float = 10000.0):
        super().__init__()
        self.token_projection = nn.Conv2d(hidden_dim * 2, dim, kernel_size=1)
        self.hidden_dim = hidden_dim
        self.temperature = temperature

    def forward(self, b: int, h: int, w: int) -> torch.Tensor:
        device = self.token_projection.weight.device
        scale, eps = 2 * math.pi, 1e-6
        # cumulative sums of ones = 1..H / 1..W, normalised to (0, 2*pi]
        y = torch.arange(1, h + 1, dtype=torch.float32, device=device).view(1, h, 1).expand(b, h, w)
        x = torch.arange(1, w + 1, dtype=torch.float32, device=device).view(1, 1, w).expand(b, h, w)
        y = y / (y[:, -1:, :] + eps) * scale
        x = x / (x[:, :, -1:] + eps) * scale
        dim_t = torch.arange(self.hidden_dim, dtype=torch.float32, device=device)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.hidden_dim)
        pos_x = x[..., None] / dim_t
        pos_y = y[..., None] / dim_t
        pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
        pos = torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)
        return self.token_projection(pos)


class CrossCovarianceAttn(nn.Module):
    """XCA: attention between channels (d x d per head) with a learned temperature."""

    def __init__(self, dim: int, num_heads: int = 8):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"XCA dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 4, 1)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, heads, d, N]
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        x = (attn @ v).permute(0, 3, 1, 2).reshape(b, n, c)
        return self.proj(x)


class SplitTransposeBlock(nn.Module):
    """SDTA: multi-scale depthwise convs on channel splits, XCA over tokens, then the MLP."""

    def __init__(self, dim: int, num_scales: int = 1, num_heads: int = 8, use_pos_emb: bool = False,
                 expand_ratio: int = 4, layer_scale_init: float = 1e-6):
        super().__init__()
        width = max(int(math.ceil(dim / num_scales)), int(math.floor(dim // num_scales)))
        self.width = width
        self.num_scales = max(1, num_scales - 1)
        self.convs = nn.ModuleList([nn.Conv2d(width, width, 3, padding=1, groups=width)
                                    for _ in range(self.num_scales)])
        self.pos_embd = PositionalEncodingFourier(dim=dim) if use_pos_emb else None
        self.norm_xca = nn.LayerNorm(dim, eps=1e-6)
        self.gamma_xca = nn.Parameter(layer_scale_init * torch.ones(dim))
        self.xca = CrossCovarianceAttn(dim, num_heads)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, expand_ratio * dim)
        self.gamma = nn.Parameter(layer_scale_init * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        spx = torch.split(x, self.width, 1)
        outs = []
        sp = spx[0]
        for i, conv in enumerate(self.convs):
            sp = conv(sp if i == 0 else sp + spx[i])
            outs.append(sp)
        outs.append(spx[self.num_scales])
        x = torch.cat(outs, 1)
        b, c, h, w = x.shape
        x = x.reshape(b, c, h * w).permute(0, 2, 1)
        if self.pos_embd is not None:
            x = x + self.pos_embd(b, h, w).reshape(b, -1, h * w).permute(0, 2, 1)
        x = x + self.gamma_xca * self.xca(self.norm_xca(x))
        x = self.mlp(self.norm(x.reshape(b, h, w, c)))
        return shortcut + (self.gamma * x).permute(0, 3, 1, 2)


@dataclass(frozen=True)
class EdgeNeXtSpec:
    dims: Tuple[int, int, int, int]
    depths: Tuple[int, int, int, int]
    global_blocks: Tuple[int, int, int, int] = (0, 1, 1, 1)
    kernel_sizes: Tuple[int, int, int, int] = (3, 5, 7, 9)
    d2_scales: Tuple[int, int, int, int] = (2, 2, 3, 4)
    heads: Tuple[int, int, int, int] = (8, 8, 8, 8)
    use_pos_emb: Tuple[bool, bool, bool, bool] = (False, True, False, False)


EDGENEXT_SPECS: Dict[str, EdgeNeXtSpec] = {
    # timm `edgenext_small`: the FS/FFS CNN branch
    "edgenext_small": EdgeNeXtSpec(dims=(48, 96, 160, 304), depths=(3, 3, 9, 3)),
    # ours: every block type once per stage, at test size
    "edgenext_tiny": EdgeNeXtSpec(dims=(16, 24, 32, 48), depths=(1, 1, 2, 1), heads=(4, 4, 4, 4)),
}


class EdgeNeXtStage(nn.Module):
    def __init__(self, in_dim: int, dim: int, depth: int, n_global: int, kernel_size: int, d2_scale: int,
                 heads: int, use_pos_emb: bool, downsample: bool):
        super().__init__()
        self.downsample = (nn.Sequential(LayerNorm2d(in_dim, eps=1e-6), nn.Conv2d(in_dim, dim, 2, stride=2))
                           if downsample else nn.Identity())
        blocks = []
        for j in range(depth):
            if j >= depth - n_global:
                blocks.append(SplitTransposeBlock(dim, d2_scale, heads, use_pos_emb))
            else:
                blocks.append(EdgeNextConvBlock(dim, kernel_size))
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class EdgeNeXt(nn.Module):
    """Stem (4x4/4 + LayerNorm) and four stages; forward returns the features at 1/4, 1/8, 1/16, 1/32."""

    def __init__(self, name: str = "edgenext_small"):
        super().__init__()
        if name not in EDGENEXT_SPECS:
            raise ValueError(f"unknown cnn_backbone {name!r}; choose one of {sorted(EDGENEXT_SPECS)}")
        s = EDGENEXT_SPECS[name]
        self.dims = s.dims
        self.stem = nn.Sequential(nn.Conv2d(3, s.dims[0], 4, stride=4), LayerNorm2d(s.dims[0], eps=1e-6))
        self.stages = nn.Sequential(*[
            EdgeNeXtStage(s.dims[max(i - 1, 0)], s.dims[i], s.depths[i], s.global_blocks[i], s.kernel_sizes[i],
                          s.d2_scales[i], s.heads[i], s.use_pos_emb[i], downsample=i > 0)
            for i in range(4)])

    def forward(self, x: torch.Tensor) -> Sequence[torch.Tensor]:
        x = self.stem(x)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs
