"""Geometry lookup of the GRU refinement (`Combined_Geo_Encoding_Volume`).

Each iteration samples, around the current disparity, 2r+1 taps of (a) the filtered hybrid volume
along disparity and (b) an all-pairs 1-D correlation of the 1/4 features along x, at `corr_levels`
levels (level i pools the sampled axis by 2^i). Output: [B, levels*(2r+1)*(C+1), H, W].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def sample_1d_grid(img: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of img [N,C,1,W] at pixel positions x [N,1,K,1] (zeros outside), via grid_sample.

    align_corners=True maps pixel 0 and W-1 to -1 and 1, as the NVlabs sampler does.
    """
    w = img.shape[-1]
    gx = 2 * x / (w - 1) - 1
    grid = torch.cat([gx, torch.zeros_like(gx)], dim=-1).to(img.dtype)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def sample_1d_gather(img: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Same values as `sample_1d_grid` with two gathers instead of grid_sample (less memory, no 2-D grid)."""
    n, c, _, w = img.shape
    x = x.reshape(n, -1)
    x0 = torch.floor(x)
    frac = (x - x0).to(img.dtype).view(n, 1, 1, -1)
    out = 0
    for corner, weight in ((x0, 1 - frac), (x0 + 1, frac)):
        valid = ((corner >= 0) & (corner <= w - 1)).to(img.dtype).view(n, 1, 1, -1)
        idx = corner.clamp(0, w - 1).long().view(n, 1, 1, -1).expand(n, c, 1, -1)
        out = out + torch.gather(img, 3, idx) * valid * weight
    return out


def all_pairs_correlation(fmap1: torch.Tensor, fmap2: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every left pixel with every right pixel of the same row: [B,H,W1,W2] (fp32)."""
    f1 = F.normalize(fmap1.float(), dim=1)
    f2 = F.normalize(fmap2.float(), dim=1)
    return torch.einsum("bchx,bchy->bhxy", f1, f2)


class CombinedGeoEncodingVolume:
    """Built once per forward; `__call__(disp, coords)` per GRU iteration."""

    def __init__(self, fmap1: torch.Tensor, fmap2: torch.Tensor, geo_volume: torch.Tensor, num_levels: int = 2,
                 radius: int = 4, low_memory: bool = False):
        self.num_levels = num_levels
        self.radius = radius
        self.sampler = sample_1d_gather if low_memory else sample_1d_grid
        b, c, d, h, w = geo_volume.shape
        corr = all_pairs_correlation(fmap1, fmap2)
        w2 = corr.shape[-1]
        geo = geo_volume.float().permute(0, 3, 4, 1, 2).reshape(b * h * w, c, 1, d)
        corr = corr.reshape(b * h * w, 1, 1, w2)
        self.geo_pyramid = [geo]
        self.corr_pyramid = [corr]
        for _ in range(num_levels - 1):
            geo = F.avg_pool2d(geo, [1, 2], stride=[1, 2])
            corr = F.avg_pool2d(corr, [1, 2], stride=[1, 2])
            self.geo_pyramid.append(geo)
            self.corr_pyramid.append(corr)

    def __call__(self, disp: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        b, _, h, w = disp.shape
        r = self.radius
        dx = torch.arange(-r, r + 1, dtype=disp.dtype, device=disp.device).reshape(1, 1, 2 * r + 1, 1)
        disp_flat = disp.reshape(b * h * w, 1, 1, 1)
        x_flat = coords.reshape(b * h * w, 1, 1, 1)
        out = []
        for i in range(self.num_levels):
            scale = 2 ** i
            geo = self.sampler(self.geo_pyramid[i], dx + disp_flat / scale)
            out.append(geo.reshape(b, h, w, -1))
            corr = self.sampler(self.corr_pyramid[i], x_flat / scale - disp_flat / scale + dx)
            out.append(corr.reshape(b, h, w, -1))
        return torch.cat(out, dim=-1).permute(0, 3, 1, 2).contiguous()
