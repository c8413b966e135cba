"""Convolution building blocks shared by FoundationStereo and Fast-FoundationStereo.

Attribute names follow the NVlabs code so that checkpoints load by name: a `BasicConv` keeps its
convolution in `conv` and its norm in `bn` (BatchNorm) or `IN` (InstanceNorm, stateless).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

NORMS = ("bn", "IN", None)


def _norm(kind: Optional[str], channels: int, is_3d: bool) -> Optional[nn.Module]:
    if kind == "bn":
        return nn.BatchNorm3d(channels) if is_3d else nn.BatchNorm2d(channels)
    if kind == "IN":
        # affine=False, no running stats: the NVlabs BasicConv_IN has no state, so nothing to load
        return nn.InstanceNorm3d(channels) if is_3d else nn.InstanceNorm2d(channels)
    if kind is None:
        return None
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


class BasicConv(nn.Module):
    """conv (no bias) -> optional norm (`bn` / `IN`) -> optional LeakyReLU(0.01).

    `deconv` selects ConvTranspose, `is_3d` the 3-D variants; remaining keyword arguments go to the
    convolution (kernel_size, stride, padding, output_padding, groups, dilation).
    """

    def __init__(self, in_channels: int, out_channels: int, *, is_3d: bool = False, deconv: bool = False,
                 norm: Optional[str] = "bn", relu: bool = True, **conv_kwargs):
        super().__init__()
        if is_3d:
            conv_cls = nn.ConvTranspose3d if deconv else nn.Conv3d
        else:
            conv_cls = nn.ConvTranspose2d if deconv else nn.Conv2d
        self.conv = conv_cls(in_channels, out_channels, bias=False, **conv_kwargs)
        self.norm_kind = norm
        layer = _norm(norm, out_channels, is_3d)
        if layer is not None:
            setattr(self, norm, layer)  # `bn` or `IN`, the upstream attribute names
        self.use_relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm_kind is not None:
            x = getattr(self, self.norm_kind)(x)
        if self.use_relu:
            x = F.leaky_relu(x, 0.01)
        return x


class ResnetBasicBlock(nn.Module):
    """torchvision-style basic residual block (conv-norm-relu-conv-norm + identity, relu), no bias."""

    def __init__(self, inplanes: int, planes: int, kernel_size: int = 3, stride: int = 1, padding: int = 1,
                 norm_layer: Optional[type] = nn.BatchNorm2d, bias: bool = False):
        super().__init__()
        if stride != 1 or inplanes != planes:
            raise ValueError(f"ResnetBasicBlock has no downsample branch: needs stride 1 and inplanes == planes, "
                             f"got stride={stride}, {inplanes}->{planes}")
        conv = self._conv_cls()
        self.conv1 = conv(inplanes, planes, kernel_size, stride=stride, padding=padding, bias=bias)
        self.conv2 = conv(planes, planes, kernel_size, stride=stride, padding=padding, bias=bias)
        self.has_norm = norm_layer is not None
        if self.has_norm:
            self.bn1 = norm_layer(planes)
            self.bn2 = norm_layer(planes)

    @staticmethod
    def _conv_cls():
        return nn.Conv2d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        if self.has_norm:
            out = self.bn1(out)
        out = F.relu(out)
        out = self.conv2(out)
        if self.has_norm:
            out = self.bn2(out)
        return F.relu(out + x)


class ResnetBasicBlock3D(ResnetBasicBlock):
    def __init__(self, inplanes: int, planes: int, kernel_size: int = 3, stride: int = 1, padding: int = 1,
                 norm_layer: Optional[type] = nn.BatchNorm3d, bias: bool = False):
        super().__init__(inplanes, planes, kernel_size, stride, padding, norm_layer, bias)

    @staticmethod
    def _conv_cls():
        return nn.Conv3d


class Conv3dNormActReduced(nn.Module):
    """APC: a (1,k,k) spatial conv then a (kd,1,1) disparity conv, each + BatchNorm3d + ReLU (convs biased).

    Factorising the 3-D kernel keeps the receptive field along disparity long (kd=17) at a fraction of
    the cost of a full k x k x kd convolution.
    """

    def __init__(self, c_in: int, c_out: int, hidden: Optional[int] = None, kernel_size: int = 3,
                 kernel_disp: Optional[int] = None, stride: int = 1):
        super().__init__()
        kd = kernel_size if kernel_disp is None else kernel_disp
        hidden = c_out if hidden is None else hidden
        k = kernel_size
        self.conv1 = nn.Sequential(
            nn.Conv3d(c_in, hidden, kernel_size=(1, k, k), padding=(0, k // 2, k // 2), stride=(1, stride, stride)),
            nn.BatchNorm3d(hidden), nn.ReLU())
        self.conv2 = nn.Sequential(
            nn.Conv3d(hidden, c_out, kernel_size=(kd, 1, 1), padding=(kd // 2, 0, 0), stride=(stride, 1, 1)),
            nn.BatchNorm3d(c_out), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv, norm, act = self.conv1
        x = act(norm(spatial_conv(x, conv)))
        conv, norm, act = self.conv2
        return act(norm(disparity_conv(x, conv)))


def spatial_conv(x: torch.Tensor, conv: nn.Conv3d) -> torch.Tensor:
    """A (1,k,k) Conv3d computed as a Conv2d over [B*D, C, H, W] (same weights, same result; oneDNN path)."""
    b, c, d, h, w = x.shape
    x2 = x.transpose(1, 2).reshape(b * d, c, h, w)
    y = F.conv2d(x2, conv.weight.squeeze(2), conv.bias, stride=conv.stride[1:], padding=conv.padding[1:])
    return y.reshape(b, d, y.shape[1], y.shape[2], y.shape[3]).transpose(1, 2)


def disparity_conv(x: torch.Tensor, conv: nn.Conv3d) -> torch.Tensor:
    """A (kd,1,1) Conv3d computed as a Conv2d over [B, C, D, H*W] (same weights, same result).

    PyTorch's CPU backend sends (kd,1,1) 3-D kernels to its slow reference path; the 2-D form runs on
    oneDNN and is 3-10x faster for the FFS volumes.
    """
    b, c, d, h, w = x.shape
    y = F.conv2d(x.reshape(b, c, d, h * w), conv.weight.squeeze(-1), conv.bias,
                 stride=(conv.stride[0], 1), padding=(conv.padding[0], 0))
    return y.reshape(b, y.shape[1], y.shape[2], h, w)


class Conv2x(nn.Module):
    """Upsample (or downsample) by 2 with `conv1`, merge with a skip tensor, refine with `conv2`.

    Widths follow the FFS knob `[in, mid, rem, out]`: conv1 in->mid, concat with the `rem`-channel
    skip, conv2 (mid+rem)->out. Defaults reproduce NVlabs `Conv2x` (rem = mid, out = 2*mid).
    `resnet_conv2` makes conv2 a ResnetBasicBlock (NVlabs `Conv2x_IN` in the feature decoder).
    """

    def __init__(self, in_channels: int, out_channels: int, *, deconv: bool = True, is_3d: bool = False,
                 norm: Optional[str] = "bn", relu: bool = True, rem_channels: Optional[int] = None,
                 conv2_out_channels: Optional[int] = None, resnet_conv2: bool = False):
        super().__init__()
        kernel = 4 if deconv else 3
        self.conv1 = BasicConv(in_channels, out_channels, is_3d=is_3d, deconv=deconv, norm=norm, relu=relu,
                               kernel_size=kernel, stride=2, padding=1)
        rem = out_channels if rem_channels is None else rem_channels
        out2 = 2 * out_channels if conv2_out_channels is None else conv2_out_channels
        if resnet_conv2:
            if out2 != out_channels + rem:
                raise ValueError(f"resnet_conv2 keeps the width: conv2_out_channels must be {out_channels + rem}, "
                                 f"got {out2}")
            norm_layer = {"IN": nn.InstanceNorm3d if is_3d else nn.InstanceNorm2d,
                          "bn": nn.BatchNorm3d if is_3d else nn.BatchNorm2d, None: None}[norm]
            block = ResnetBasicBlock3D if is_3d else ResnetBasicBlock
            self.conv2 = block(out2, out2, kernel_size=3, stride=1, padding=1, norm_layer=norm_layer)
        else:
            self.conv2 = BasicConv(out_channels + rem, out2, is_3d=is_3d, norm=norm, relu=relu,
                                   kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor, rem: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        if x.shape[-2:] != rem.shape[-2:]:
            # odd sizes: the transposed conv overshoots by one pixel; NVlabs resizes bilinearly
            x = F.interpolate(x, size=rem.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv2(torch.cat((x, rem), dim=1))
