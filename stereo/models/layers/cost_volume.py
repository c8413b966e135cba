"""Cost volumes at 1/4 resolution, built without Python loops over disparities.

Convention: volume[..., d, y, x] compares left pixel x with right pixel x - d; cells with x < d have no
partner and hold zero (right half of the concatenation volume, all of the correlation volumes).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _shift_index(width: int, max_disp: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """idx[d, x] = clamp(x - d, 0), valid[d, x] = x >= d; shape (D, W)."""
    x = torch.arange(width, device=device)
    d = torch.arange(max_disp, device=device)
    src = x[None, :] - d[:, None]
    return src.clamp(min=0), src >= 0


def build_gwc_volume(left: torch.Tensor, right: torch.Tensor, max_disp: int, num_groups: int,
                     normalize: bool = True) -> torch.Tensor:
    """Group-wise correlation [B,G,D,H,W] (fp32): mean-free dot product of each channel group.

    With `normalize` each group vector is L2-normalised first (F.normalize, eps 1e-12), i.e. cosine
    similarity per group. Computed as one batched matmul per row (all x, x' pairs) and a gather of the
    D diagonals, which is cheaper than D shifted products when D is not much smaller than W.
    """
    b, c, h, w = left.shape
    if c % num_groups:
        raise ValueError(f"feature channels {c} must be divisible by cv_group {num_groups}")
    cg = c // num_groups
    lf = left.float().reshape(b, num_groups, cg, h, w)
    rf = right.float().reshape(b, num_groups, cg, h, w)
    if normalize:
        lf = F.normalize(lf, dim=2)
        rf = F.normalize(rf, dim=2)
    # all pairs along each row: [B,G,H,W(left x),W(right x')]
    pairs = torch.matmul(lf.permute(0, 1, 3, 4, 2), rf.permute(0, 1, 3, 2, 4))
    idx, valid = _shift_index(w, max_disp, left.device)
    gathered = torch.gather(pairs, 4, idx.t().reshape(1, 1, 1, w, max_disp).expand(b, num_groups, h, w, max_disp))
    vol = gathered * valid.t().to(gathered.dtype)
    return vol.permute(0, 1, 4, 2, 3).contiguous()


def build_concat_volume(left: torch.Tensor, right: torch.Tensor, max_disp: int) -> torch.Tensor:
    """[B,2C,D,H,W]: channels :C = left feature at every d, C: = right feature at x - d (0 where x < d)."""
    b, c, h, w = left.shape
    idx, valid = _shift_index(w, max_disp, left.device)
    shifted = right[..., idx] * valid.to(right.dtype)  # [B,C,H,D,W]
    ref = left.unsqueeze(2).expand(b, c, max_disp, h, w)
    return torch.cat((ref, shifted.permute(0, 1, 3, 2, 4)), dim=1).contiguous()


def disparity_regression(prob: torch.Tensor, max_disp: int) -> torch.Tensor:
    """Expectation of disparity under `prob` [B,D,H,W] -> [B,1,H,W] (soft-argmax)."""
    values = torch.arange(max_disp, dtype=prob.dtype, device=prob.device).reshape(1, max_disp, 1, 1)
    return torch.sum(prob * values, dim=1, keepdim=True)
