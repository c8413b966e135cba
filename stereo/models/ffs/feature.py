"""FFS student feature extractor: EdgeNeXt + FS decoder + 1x1 `conv4` (no ViT runs).

Pyramid: [2*c0 + v @1/4, 2*c1 @1/8, 2*c2 @1/16, c3 @1/32], c = EdgeNeXt dims, v = the "phantom" ViT band
that conv4 still allocates because the student was distilled to the FS teacher's 1/4 feature width.
"""
from __future__ import annotations

from typing import List

import torch
import torch.nn as nn

from stereo.models.layers.conv import Conv2x
from stereo.models.layers.edgenext import EdgeNeXt

#: DPT `features // 2` per ViT size (vitt is our tiny test ViT): the 1/4 channels the FS teacher adds.
VIT_FEATURE_BAND = {"vitt": 16, "vits": 32, "vitb": 64, "vitl": 128}


class FFSFeature(nn.Module):
    def __init__(self, cnn_backbone: str = "edgenext_small", encoder: str = "vitl"):
        super().__init__()
        if encoder not in VIT_FEATURE_BAND:
            raise ValueError(f"model.encoder must be one of {sorted(VIT_FEATURE_BAND)}, got {encoder!r}")
        trunk = EdgeNeXt(cnn_backbone)
        self.stem = trunk.stem
        self.stages = trunk.stages
        c = trunk.dims
        v = VIT_FEATURE_BAND[encoder]
        # decoder: NVlabs Conv2x_IN (ConvTranspose k4 s2 + IN + LReLU, concat skip, IN residual block)
        self.deconv32_16 = Conv2x(c[3], c[2], deconv=True, norm="IN", resnet_conv2=True)
        self.deconv16_8 = Conv2x(2 * c[2], c[1], deconv=True, norm="IN", resnet_conv2=True)
        self.deconv8_4 = Conv2x(2 * c[1], c[0], deconv=True, norm="IN", resnet_conv2=True)
        self.conv4 = nn.Conv2d(2 * c[0], 2 * c[0] + v, kernel_size=1, padding=0)
        self.d_out = [2 * c[0] + v, 2 * c[1], 2 * c[2], c[3]]

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        x4 = self.stages[0](self.stem(x))
        x8 = self.stages[1](x4)
        x16 = self.stages[2](x8)
        x32 = self.stages[3](x16)
        x16 = self.deconv32_16(x32, x16)
        x8 = self.deconv16_8(x16, x8)
        x4 = self.deconv8_4(x8, x4)
        return [self.conv4(x4), x8, x16, x32]
