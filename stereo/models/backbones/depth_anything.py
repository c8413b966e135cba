"""DepthAnything-V2 = DINOv2 (`pretrained.*`) + DPT head (`depth_head.*`), as FoundationStereo uses it.

FoundationStereo takes the DPT `output_conv1(path_1)` map (DPT features/2 channels: vitt 16, vits 32,
vitb 64, vitl 128) at the ViT input resolution. The branch is frozen: no parameter requires grad, it is
kept in eval mode even inside a model in train mode, and it runs under `no_grad`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from stereo.models.backbones.dinov2 import DinoVisionTransformer, vit_config
from stereo.models.backbones.dpt import DPTHead


@dataclass(frozen=True)
class DepthAnythingConfig:
    features: int
    out_channels: tuple[int, int, int, int]
    layers: tuple[int, ...]  # ViT blocks whose (final-normed) tokens feed the DPT head


#: DepthAnything-V2 head widths and tapped layers per ViT size (upstream `model_configs` and
#: `intermediate_layer_idx`); `vitt` is our tiny test configuration.
DEPTH_ANYTHING_CONFIGS = {
    "vitt": DepthAnythingConfig(32, (16, 32, 64, 64), (0, 1, 2, 3)),
    "vits": DepthAnythingConfig(64, (48, 96, 192, 384), (2, 5, 8, 11)),
    "vitb": DepthAnythingConfig(128, (96, 192, 384, 768), (2, 5, 8, 11)),
    "vitl": DepthAnythingConfig(256, (256, 512, 1024, 1024), (4, 11, 17, 23)),
}


def vit_feature_dim(encoder: str) -> int:
    """Channels of the DAv2 map FoundationStereo consumes (DPT features // 2)."""
    if encoder not in DEPTH_ANYTHING_CONFIGS:
        raise ValueError(f"model.encoder={encoder!r} is not a known ViT size; use one of "
                         f"{sorted(DEPTH_ANYTHING_CONFIGS)}")
    return DEPTH_ANYTHING_CONFIGS[encoder].features // 2


class DepthAnythingV2(nn.Module):
    def __init__(self, encoder: str = "vits", use_bn: bool = False, use_clstoken: bool = False):
        super().__init__()
        cfg = DEPTH_ANYTHING_CONFIGS.get(encoder)
        if cfg is None:
            vit_feature_dim(encoder)  # raises with the list of valid sizes
        self.encoder = encoder
        self.layers = cfg.layers
        self.pretrained = DinoVisionTransformer(vit_config(encoder))
        self.depth_head = DPTHead(self.pretrained.embed_dim, cfg.features, cfg.out_channels,
                                  use_bn=use_bn, use_clstoken=use_clstoken)

    @property
    def out_channels(self) -> int:
        return self.depth_head.scratch.output_conv1.out_channels

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """DPT `output_conv1` map (B, features/2, H, W) for an ImageNet-normalised x with H, W multiples of 14."""
        h, w = x.shape[-2:]
        p = self.pretrained.patch_size
        tokens = self.pretrained.get_intermediate_layers(x, self.layers)
        return self.depth_head(tokens, h // p, w // p, patch_size=p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Relative depth (B, 1, H, W)."""
        return self.depth_head.depth(self.features(x))


class FrozenDepthAnything(nn.Module):
    """Holds `depth_anything` (so keys read `...depth_anything.pretrained.*`) and keeps it frozen.

    `train()` on a parent module would flip the ViT's mode; this wrapper overrides it so the branch stays
    in eval mode (BatchNorm statistics, if `use_bn`, never update), and forward runs under `no_grad`.
    """

    def __init__(self, encoder: str = "vits", use_bn: bool = False, use_clstoken: bool = False):
        super().__init__()
        self.depth_anything = DepthAnythingV2(encoder, use_bn=use_bn, use_clstoken=use_clstoken)
        self.freeze()

    def freeze(self) -> FrozenDepthAnything:
        for p in self.depth_anything.parameters():
            p.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> FrozenDepthAnything:
        return super().train(False)

    @property
    def out_channels(self) -> int:
        return self.depth_anything.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.depth_anything.features(x)
