"""DINOv2 + DPT (DepthAnything-V2) behaviour without pretrained weights."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stereo.models.backbones.depth_anything import (
    DEPTH_ANYTHING_CONFIGS,
    DepthAnythingV2,
    FrozenDepthAnything,
    vit_feature_dim,
)
from stereo.models.backbones.dinov2 import DinoVisionTransformer, vit_config
from stereo.models.backbones.dpt import DPTHead
from stereo.models.fs.feature import vit_input_size


def test_pos_embed_is_kept_on_the_pretraining_grid_and_interpolated_elsewhere():
    torch.manual_seed(0)
    vit = DinoVisionTransformer(vit_config("vitt"))  # 224 -> 16x16 stored grid
    assert vit.interpolate_pos_encoding(1 + 16 * 16, 224, 224) is vit.pos_embed
    pe = vit.interpolate_pos_encoding(1 + 8 * 24, 112, 336)
    assert pe.shape == (1, 1 + 8 * 24, 32)
    assert torch.equal(pe[:, 0], vit.pos_embed[:, 0])  # class position untouched
    # same bicubic resize computed independently (scale factor includes the +0.1 hub offset)
    grid = vit.pos_embed[:, 1:].reshape(1, 16, 16, 32).permute(0, 3, 1, 2)
    ref = F.interpolate(grid, scale_factor=(8.1 / 16, 24.1 / 16), mode="bicubic")
    assert torch.allclose(pe[:, 1:], ref.permute(0, 2, 3, 1).reshape(1, -1, 32))


def test_constant_pos_embed_stays_constant_after_interpolation():
    vit = DinoVisionTransformer(vit_config("vitt"))
    with torch.no_grad():
        vit.pos_embed.fill_(0.5)
    assert torch.allclose(vit.interpolate_pos_encoding(1 + 4 * 10, 56, 140), torch.full((1, 41, 32), 0.5))


def test_vit_rejects_inputs_not_multiple_of_patch():
    vit = DinoVisionTransformer(vit_config("vitt"))
    with pytest.raises(ValueError, match="multiple of the patch size"):
        vit(torch.zeros(1, 3, 100, 112))


@pytest.mark.parametrize("encoder,channels", [("vitt", 16), ("vits", 32), ("vitb", 64)])
def test_output_conv1_map_channels_and_size(encoder, channels):
    torch.manual_seed(0)
    dav2 = DepthAnythingV2(encoder).eval()
    with torch.no_grad():
        out = dav2.features(torch.randn(1, 3, 112, 224))
        depth = dav2(torch.randn(1, 3, 112, 224))
    assert out.shape == (1, channels, 112, 224) and vit_feature_dim(encoder) == channels
    assert depth.shape == (1, 1, 112, 224) and (depth >= 0).all()


def test_vitl_head_width():
    cfg = DEPTH_ANYTHING_CONFIGS["vitl"]
    head = DPTHead(vit_config("vitl").embed_dim, cfg.features, cfg.out_channels)
    tokens = [(torch.randn(1, 8 * 16, 1024), torch.randn(1, 1024)) for _ in range(4)]
    with torch.no_grad():
        assert head(tokens, 8, 16).shape == (1, 128, 112, 224)
    assert vit_feature_dim("vitl") == 128


def test_frozen_wrapper_has_no_grad_and_ignores_train():
    m = FrozenDepthAnything("vitt")
    m.train()
    assert not m.training and not any(x.training for x in m.modules())
    assert not any(p.requires_grad for p in m.parameters())
    x = torch.randn(1, 3, 112, 112, requires_grad=True)
    assert not m(x).requires_grad


def test_vit_input_size_rounds_to_112_and_caps_at_1344():
    assert vit_input_size(64, 128) == (112, 224)
    assert vit_input_size(480, 640) == (560, 672)
    assert vit_input_size(1080, 1920) == (784, 1344)  # long side capped, aspect kept (rounded up to 112)


def test_unknown_encoder_lists_valid_sizes():
    with pytest.raises(ValueError, match="vitl"):
        DepthAnythingV2("vitg")
