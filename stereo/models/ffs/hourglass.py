"""FFS bp2 NAS cost filtering (`cost_agg`), widths in units of c = volume_dim.

    x (c, D)     -> feature_att_8  [s2 conv c->c, APC c->2c kd17, FeatureAtt]        (2c, D/2, 1/8)
                 -> feature_att_16 [s2 conv 2c->4c, APC 4c->2c kd13, APC 2c->4c kd3] (4c, D/4, 1/16)
                 -> conv3 [s2 conv 4c->6c, APC kd17] -> feature_att_32               (6c, D/8, 1/32)
    post32_to_16: deconv k3 6c->4c (+BN+LReLU) + 1/16, FeatureAtt, conv, APC kd9, conv
    post16_to_8:  deconv k4 4c->2c + 1/8, conv, FeatureAtt, APC kd9
    conv1_up:     deconv k4 2c->c
    post8_to_4:   on conv1_up's output: conv k4 s4 + BN (no activation), disparity transformer
                  (1 layer, heads-as-sequence for bp2), trilinear x4; + the input volume x;
                  conv, ResnetBasicBlock3D
"""
from __future__ import annotations

from typing import List

import torch
import torch.nn as nn

from stereo.models.layers.attention import FeatureAtt
from stereo.models.layers.containers import ForwardHelper, PostForwardHelper
from stereo.models.layers.conv import BasicConv, Conv3dNormActReduced, ResnetBasicBlock3D
from stereo.models.layers.transformer import CostVolumeDisparityAttention


def _conv3d(cin: int, cout: int, **kw) -> BasicConv:
    kw.setdefault("kernel_size", 3)
    kw.setdefault("padding", 1)
    return BasicConv(cin, cout, is_3d=True, norm="bn", **kw)


class FFSHourglass(nn.Module):
    def __init__(self, c: int, feat_dims: List[int], max_disparity: int, attention_layout: str = "heads_as_sequence"):
        super().__init__()
        self.feature_att_8 = ForwardHelper([
            _conv3d(c, c, stride=2),
            Conv3dNormActReduced(c, 2 * c, kernel_size=3, kernel_disp=17),
            FeatureAtt(2 * c, feat_dims[1])])
        self.feature_att_16 = ForwardHelper([
            _conv3d(2 * c, 4 * c, stride=2),
            Conv3dNormActReduced(4 * c, 2 * c, kernel_size=3, kernel_disp=13),
            Conv3dNormActReduced(2 * c, 4 * c, kernel_size=3, kernel_disp=3)])
        self.conv3 = nn.Sequential(_conv3d(4 * c, 6 * c, stride=2),
                                   Conv3dNormActReduced(6 * c, 6 * c, kernel_size=3, kernel_disp=17))
        self.feature_att_32 = FeatureAtt(6 * c, feat_dims[3])
        self.post32_to_16 = PostForwardHelper(
            [_conv3d(6 * c, 4 * c, deconv=True, stride=2, output_padding=1)],
            [FeatureAtt(4 * c, feat_dims[2]), _conv3d(4 * c, 4 * c),
             Conv3dNormActReduced(4 * c, 4 * c, kernel_size=3, kernel_disp=9), _conv3d(4 * c, 4 * c)])
        self.post16_to_8 = PostForwardHelper(
            [_conv3d(4 * c, 2 * c, deconv=True, kernel_size=4, stride=2)],
            [_conv3d(2 * c, 2 * c), FeatureAtt(2 * c, feat_dims[1]),
             Conv3dNormActReduced(2 * c, 2 * c, kernel_size=3, kernel_disp=9)])
        self.conv1_up = _conv3d(2 * c, c, deconv=True, kernel_size=4, stride=2)
        self.post8_to_4 = PostForwardHelper(
            [_conv3d(c, c, relu=False, kernel_size=4, stride=4, padding=0),
             CostVolumeDisparityAttention(d_model=c, nhead=4, dim_feedforward=4 * c, num_transformer=1,
                                          max_len=max_disparity // 16, layout=attention_layout),
             nn.Upsample(scale_factor=4, mode="trilinear", align_corners=False)],
            [_conv3d(c, c), ResnetBasicBlock3D(c, c, kernel_size=3, padding=1)])

    def forward(self, x: torch.Tensor, features: List[torch.Tensor]) -> torch.Tensor:
        conv1 = self.feature_att_8(x, features[1])
        conv2 = self.feature_att_16(conv1, features[2])
        conv3 = self.feature_att_32(self.conv3(conv2), features[3])
        conv2 = self.post32_to_16(conv2, conv3, features[2])
        conv1 = self.post16_to_8(conv1, conv2, features[1])
        # the transformer branch runs on conv1_up's output and is added to the input volume x
        return self.post8_to_4(x, self.conv1_up(conv1))
