"""GRU refinement: motion encoder, (selective) ConvGRUs, disparity head, and the update block.

Widths are explicit arguments so that both the FS defaults and the pruned FFS "bp2" knobs build.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from stereo.models.layers.edgenext import EdgeNextConvBlock


class BasicMotionEncoder(nn.Module):
    """corr [B,cor_planes] and disp [B,1] -> motion features [B, final+1] (disp appended)."""

    def __init__(self, cor_planes: int, widths: Sequence[int] = (256, 256, 64, 64), final: int = 127,
                 final_kernel: int = 3):
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"motion_encoder_widths needs 4 values [convc1, convc2, convd1, convd2], got {widths}")
        c1, c2, d1, d2 = widths
        self.convc1 = nn.Conv2d(cor_planes, c1, 1, padding=0)
        self.convc2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.convd1 = nn.Conv2d(1, d1, 7, padding=3)
        self.convd2 = nn.Conv2d(d1, d2, 3, padding=1)
        self.conv = nn.Conv2d(c2 + d2, final, final_kernel, padding=final_kernel // 2)

    def forward(self, disp: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        cor = F.relu(self.convc2(F.relu(self.convc1(corr))))
        d = F.relu(self.convd2(F.relu(self.convd1(disp))))
        out = F.relu(self.conv(torch.cat([cor, d], dim=1)))
        return torch.cat([out, disp], dim=1)


class ConvGRU(nn.Module):
    """RAFT ConvGRU on a precomputed gate input `hx` (z, r from hx; candidate from [r*h, x])."""

    def __init__(self, hidden_dim: int, gate_in: int, cand_in: int, kernel_size: int = 3):
        super().__init__()
        p = kernel_size // 2
        self.convz = nn.Conv2d(gate_in, hidden_dim, kernel_size, padding=p)
        self.convr = nn.Conv2d(gate_in, hidden_dim, kernel_size, padding=p)
        self.convq = nn.Conv2d(cand_in, hidden_dim, kernel_size, padding=p)

    def forward(self, h: torch.Tensor, x: torch.Tensor, hx: torch.Tensor) -> torch.Tensor:
        z = torch.sigmoid(self.convz(hx))
        r = torch.sigmoid(self.convr(hx))
        q = torch.tanh(self.convq(torch.cat([r * h, x], dim=1)))
        return (1 - z) * h + z * q


class SelectiveConvGRU(nn.Module):
    """Selective-IGEV GRU: a 1x1 and a 3x3 ConvGRU blended by the spatial attention map `att`.

    gating widths [w0, w1]: conv0 input->w0, conv1 (w0+hidden)->w1; the GRU gates read the w1-channel
    map, the candidate reads [r*h, conv0 output] (hidden + w0 channels).
    """

    def __init__(self, hidden_dim: int, input_dim: int, gating_widths: Optional[Sequence[int]] = None,
                 small_kernel_size: int = 1, large_kernel_size: int = 3):
        super().__init__()
        w0, w1 = (input_dim, input_dim + hidden_dim) if gating_widths is None else gating_widths
        self.conv0 = nn.Sequential(nn.Conv2d(input_dim, w0, 3, padding=1), nn.ReLU())
        self.conv1 = nn.Sequential(nn.Conv2d(w0 + hidden_dim, w1, 3, padding=1), nn.ReLU())
        self.small_gru = ConvGRU(hidden_dim, w1, hidden_dim + w0, small_kernel_size)
        self.large_gru = ConvGRU(hidden_dim, w1, hidden_dim + w0, large_kernel_size)

    def forward(self, att: torch.Tensor, h: torch.Tensor, *x_list: torch.Tensor) -> torch.Tensor:
        x = self.conv0(torch.cat(x_list, dim=1))
        hx = self.conv1(torch.cat([x, h], dim=1))
        return self.small_gru(h, x, hx) * att + self.large_gru(h, x, hx) * (1 - att)


class DispHead(nn.Module):
    """conv3x3 -> ReLU -> 2 EdgeNeXt conv blocks (7x7 dw, no norm) -> conv3x3 -> delta disparity."""

    def __init__(self, input_dim: int, hidden_dim: Optional[int] = None,
                 pwconv1_widths: Optional[Sequence[int]] = None, output_dim: int = 1):
        super().__init__()
        hidden = input_dim if hidden_dim is None else hidden_dim
        widths = [4 * hidden, 4 * hidden] if pwconv1_widths is None else list(pwconv1_widths)
        self.conv = nn.Sequential(
            nn.Conv2d(input_dim, hidden, 3, padding=1), nn.ReLU(),
            EdgeNextConvBlock(hidden, kernel_size=7, mlp_dim=widths[0], norm=False, timm_names=False),
            EdgeNextConvBlock(hidden, kernel_size=7, mlp_dim=widths[1], norm=False, timm_names=False),
            nn.Conv2d(hidden, output_dim, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def pool2x(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 3, stride=2, padding=1)


def interp(x: torch.Tensor, dest: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, dest.shape[2:], mode="bilinear", align_corners=True)


class BasicSelectiveMultiUpdateBlock(nn.Module):
    """Multi-level selective GRU update (levels 1/16, 1/8, 1/4 as in FS; FFS uses only 1/4).

    forward(net, inp, corr, disp, att) -> (net, mask_feat_4, delta_disp); `inp[i]` is one context tensor
    per level, `att[i]` its spatial attention map. Order per iteration: 1/16, 1/8, then 1/4.
    """

    def __init__(self, *, cor_planes: int, hidden_dim: int, n_gru_layers: int = 1,
                 context_dims: Optional[Sequence[int]] = None,
                 motion_widths: Sequence[int] = (256, 256, 64, 64), motion_final: Optional[int] = None,
                 motion_final_kernel: int = 3, gating_widths: Optional[Sequence[int]] = None,
                 disp_head_hidden: Optional[int] = None, disp_head_pwconv1_widths: Optional[Sequence[int]] = None,
                 mask_widths: Sequence[int] = (64, 32)):
        super().__init__()
        if n_gru_layers not in (1, 2, 3):
            raise ValueError(f"n_gru_layers must be 1, 2 or 3, got {n_gru_layers}")
        self.n_gru_layers = n_gru_layers
        ctx = list(context_dims) if context_dims is not None else [hidden_dim] * 3
        final = hidden_dim - 1 if motion_final is None else motion_final
        self.encoder = BasicMotionEncoder(cor_planes, motion_widths, final, motion_final_kernel)
        if n_gru_layers == 3:
            self.gru16 = SelectiveConvGRU(hidden_dim, ctx[2] + hidden_dim, gating_widths)
        if n_gru_layers >= 2:
            self.gru08 = SelectiveConvGRU(hidden_dim, ctx[1] + hidden_dim * (n_gru_layers == 3) + hidden_dim,
                                          gating_widths)
        gru04_in = ctx[0] + final + 1 + hidden_dim * (n_gru_layers > 1)
        self.gru04 = SelectiveConvGRU(hidden_dim, gru04_in, gating_widths)
        self.disp_head = DispHead(hidden_dim, disp_head_hidden, disp_head_pwconv1_widths)
        self.mask = nn.Sequential(nn.Conv2d(hidden_dim, mask_widths[0], 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(mask_widths[0], mask_widths[1], 3, padding=1), nn.ReLU())

    def forward(self, net: List[torch.Tensor], inp: List[torch.Tensor], corr: torch.Tensor, disp: torch.Tensor,
                att: List[torch.Tensor]):
        net = list(net)
        if self.n_gru_layers == 3:
            net[2] = self.gru16(att[2], net[2], inp[2], pool2x(net[1]))
        if self.n_gru_layers >= 2:
            if self.n_gru_layers > 2:
                net[1] = self.gru08(att[1], net[1], inp[1], pool2x(net[0]), interp(net[2], net[1]))
            else:
                net[1] = self.gru08(att[1], net[1], inp[1], pool2x(net[0]))
        motion = torch.cat([inp[0], self.encoder(disp, corr)], dim=1)
        if self.n_gru_layers > 1:
            net[0] = self.gru04(att[0], net[0], motion, interp(net[1], net[0]))
        else:
            net[0] = self.gru04(att[0], net[0], motion)
        delta = self.disp_head(net[0])
        # 0.25 scales the mask logits as upstream does (keeps the convex weights soft at init)
        mask = 0.25 * self.mask(net[0])
        return net, mask, delta
