"""FoundationStereo feature extractor: the side-tuning adapter (STA), NVlabs `Feature`.

Left and right images go through one network as a 2B batch:
- CNN branch: EdgeNeXt (`stem`, `stages`, timm names directly under `feature.`) with widths c4..c32, then
  the decoder `deconv32_16`, `deconv16_8`, `deconv8_4` (deconv + InstanceNorm + LeakyReLU, concat skip,
  IN residual block) giving 2*c16 @1/16, 2*c8 @1/8, 2*c4 @1/4.
- ViT branch (`dino`, frozen DepthAnything-V2): the image is resized bicubically to multiples of
  112 = lcm(14, 16) (capped at 1344 on the long side), the DPT `output_conv1` map is computed and
  resized bilinearly (align_corners=True) to 1/4 of the input.
- Fusion at 1/4 only: cat(decoder 2*c4, ViT v) -> `conv4` (IN conv + 2 IN residual blocks).
Pyramid `d_out = [2*c4 + v, 2*c8, 2*c16, c32]` (edgenext_small + vits: 128, 192, 320, 304).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from stereo.models.backbones.depth_anything import FrozenDepthAnything
from stereo.models.fs.context import ResidualBlock
from stereo.models.layers.conv import BasicConv, Conv2x
from stereo.models.layers.edgenext import EdgeNeXt

VIT_DIVISOR = 112  # lcm(ViT patch 14, CNN stride 16)
VIT_MAX_SIDE = 1344


def vit_input_size(h: int, w: int, divisor: int = VIT_DIVISOR, max_side: int = VIT_MAX_SIDE) -> tuple[int, int]:
    """Round H, W up to multiples of `divisor`; if a side exceeds `max_side`, shrink keeping the aspect ratio.

    Matches NVlabs `get_resize_keep_aspect_ratio(H, W, divider=112, max_H=1344, max_W=1344)`.
    """
    def up(x: float) -> int:
        return int(math.ceil(x / divisor) * divisor)

    hr, wr = up(h), up(w)
    if hr > max_side or wr > max_side:
        if hr > wr:
            hr, wr = max_side, up(wr * max_side / hr)
        else:
            hr, wr = up(hr * max_side / wr), max_side
    return hr, wr


def _decoder(in_ch: int, out_ch: int) -> Conv2x:
    return Conv2x(in_ch, out_ch, deconv=True, norm="IN", resnet_conv2=True)


class FSFeature(nn.Module):
    def __init__(self, encoder: str = "vits", cnn_backbone: str = "edgenext_small", dpt_use_bn: bool = False,
                 dpt_use_clstoken: bool = False):
        super().__init__()
        cnn = EdgeNeXt(cnn_backbone)
        # timm keeps stem and stages at the top of the backbone; the checkpoint has them directly under feature.
        self.stem = cnn.stem
        self.stages = cnn.stages
        c = list(cnn.dims)
        self.dino = FrozenDepthAnything(encoder, use_bn=dpt_use_bn, use_clstoken=dpt_use_clstoken)
        v = self.dino.out_channels
        self.deconv32_16 = _decoder(c[3], c[2])
        self.deconv16_8 = _decoder(2 * c[2], c[1])
        self.deconv8_4 = _decoder(2 * c[1], c[0])
        c4 = 2 * c[0] + v
        self.conv4 = nn.Sequential(
            BasicConv(c4, c4, norm="IN", kernel_size=3, stride=1, padding=1),
            ResidualBlock(c4, c4, norm_fn="instance"),
            ResidualBlock(c4, c4, norm_fn="instance"))
        self.vit_dim = v
        self.d_out = [c4, 2 * c[1], 2 * c[2], c[3]]

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """x: normalised images (2B, 3, H, W), H and W multiples of 32 -> ([f4, f8, f16, f32], vit map @1/4)."""
        h, w = x.shape[-2:]
        hr, wr = vit_input_size(h, w)
        vit_feat = self.dino(F.interpolate(x, size=(hr, wr), mode="bicubic", align_corners=False))
        vit_feat = F.interpolate(vit_feat, size=(h // 4, w // 4), mode="bilinear", align_corners=True)
        x = self.stem(x)
        x4 = self.stages[0](x)
        x8 = self.stages[1](x4)
        x16 = self.stages[2](x8)
        x32 = self.stages[3](x16)
        x16 = self.deconv32_16(x32, x16)
        x8 = self.deconv16_8(x16, x8)
        x4 = self.deconv8_4(x8, x4)
        x4 = self.conv4(torch.cat([x4, vit_feat], dim=1))
        return [x4, x8, x16, x32], vit_feat
