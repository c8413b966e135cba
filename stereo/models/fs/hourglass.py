"""FoundationStereo attentive hybrid cost filtering (AHCF): 3-D hourglass + disparity transformer.

Module names follow NVlabs `hourglass` (`conv1..3`, `conv3_up`, `conv2_up`, `conv1_up`, `agg_0`, `agg_1`,
`conv_out`, `atts["4"]`, `conv_patch`, `feature_att_{8,16,32,up_16,up_8}`).

Variant differences (foundation_stereo.md §2.5):
- nvlabs: FeatureAtt hidden conv with BatchNorm; `agg_1.0` a 1x1 Conv3d; the transformer runs on the
  patchified input volume (k4 s4 depthwise conv, D/4 tokens = max_disp/16) and its output is trilinearly
  upsampled x4 before being added to `conv1_up`.
- tao: FeatureAtt with InstanceNorm; `agg_1.0` a 1x1 ConvTranspose3d; `conv_patch` padding (1,1,0); the
  patchified volume is upsampled x4 *first* and the transformer runs on D = max_disp/4 tokens per 1/4-res
  pixel.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from stereo.models.layers.attention import FeatureAtt
from stereo.models.layers.conv import BasicConv, Conv3dNormActReduced
from stereo.models.layers.transformer import CostVolumeDisparityAttention

KERNEL_DISP = 17  # APC disparity kernel used at every FS site


def _down(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        BasicConv(c_in, c_out, is_3d=True, kernel_size=3, padding=1, stride=2),
        Conv3dNormActReduced(c_out, c_out, kernel_size=3, kernel_disp=KERNEL_DISP))


def _up(c_in: int, c_out: int) -> BasicConv:
    return BasicConv(c_in, c_out, is_3d=True, deconv=True, kernel_size=4, padding=1, stride=2)


def _agg(c_in: int, c_out: int, transposed: bool) -> nn.Sequential:
    return nn.Sequential(
        BasicConv(c_in, c_out, is_3d=True, deconv=transposed, kernel_size=1, padding=0, stride=1),
        Conv3dNormActReduced(c_out, c_out, kernel_size=3, kernel_disp=KERNEL_DISP),
        Conv3dNormActReduced(c_out, c_out, kernel_size=3, kernel_disp=KERNEL_DISP))


class FSHourglass(nn.Module):
    def __init__(self, in_channels: int, feat_dims: Sequence[int], max_disp: int, variant: str = "nvlabs",
                 attention_layout: str = "standard", num_transformer: int = 4, nhead: int = 4):
        super().__init__()
        if variant not in ("nvlabs", "tao"):
            raise ValueError(f"model.variant must be 'nvlabs' or 'tao', got {variant!r}")
        c = in_channels
        self.variant = variant
        att_norm = "bn" if variant == "nvlabs" else "IN"
        self.conv1 = _down(c, 2 * c)
        self.conv2 = _down(2 * c, 4 * c)
        self.conv3 = _down(4 * c, 6 * c)
        self.conv3_up = _up(6 * c, 4 * c)
        self.conv2_up = _up(4 * c, 2 * c)
        self.conv1_up = _up(2 * c, c)
        self.conv_out = nn.Sequential(
            Conv3dNormActReduced(c, c, kernel_size=3, kernel_disp=KERNEL_DISP),
            Conv3dNormActReduced(c, c, kernel_size=3, kernel_disp=KERNEL_DISP))
        self.agg_0 = _agg(8 * c, 4 * c, transposed=False)
        self.agg_1 = _agg(4 * c, 2 * c, transposed=variant == "tao")
        # tokens along disparity: nvlabs patchifies first (D/4 = max_disp/16), TAO upsamples first (max_disp/4)
        max_len = max_disp // 16 if variant == "nvlabs" else max_disp // 4
        self.atts = nn.ModuleDict({"4": CostVolumeDisparityAttention(
            d_model=c, nhead=nhead, dim_feedforward=c, num_transformer=num_transformer, max_len=max_len,
            layout=attention_layout)})
        padding = 0 if variant == "nvlabs" else (1, 1, 0)
        self.conv_patch = nn.Sequential(
            nn.Conv3d(c, c, kernel_size=4, stride=4, padding=padding, groups=c), nn.BatchNorm3d(c))
        self.feature_att_8 = FeatureAtt(2 * c, feat_dims[1], norm=att_norm)
        self.feature_att_16 = FeatureAtt(4 * c, feat_dims[2], norm=att_norm)
        self.feature_att_32 = FeatureAtt(6 * c, feat_dims[3], norm=att_norm)
        self.feature_att_up_16 = FeatureAtt(4 * c, feat_dims[2], norm=att_norm)
        self.feature_att_up_8 = FeatureAtt(2 * c, feat_dims[1], norm=att_norm)

    def forward(self, x: torch.Tensor, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """x: (B, C, D, H/4, W/4) volume; features: left pyramid [f4, f8, f16, f32]."""
        conv1 = self.feature_att_8(self.conv1(x), features[1])
        conv2 = self.feature_att_16(self.conv2(conv1), features[2])
        conv3 = self.feature_att_32(self.conv3(conv2), features[3])
        conv2 = self.agg_0(torch.cat((self.conv3_up(conv3), conv2), dim=1))
        conv2 = self.feature_att_up_16(conv2, features[2])
        conv1 = self.agg_1(torch.cat((self.conv2_up(conv2), conv1), dim=1))
        conv1 = self.feature_att_up_8(conv1, features[1])
        conv = self.conv1_up(conv1)
        t = self.conv_patch(x)
        if self.variant == "nvlabs":
            t = F.interpolate(self.atts["4"](t), scale_factor=4, mode="trilinear", align_corners=False)
        else:
            t = self.atts["4"](F.interpolate(t, scale_factor=4, mode="trilinear", align_corners=False))
        return self.conv_out(conv + t)
