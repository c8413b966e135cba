"""DINOv2 vision transformer (ViT-S/B/L/14 and a tiny test ViT) with the upstream parameter names.

Names and shapes follow facebookresearch/dinov2 as vendored by NVlabs FoundationStereo, so DepthAnything-V2
and FoundationStereo checkpoints load strictly: `cls_token`, `pos_embed`, `mask_token`, `patch_embed.proj`,
`blocks.N.{norm1,attn.qkv,attn.proj,ls1.gamma,norm2,mlp.fc1,mlp.fc2,ls2.gamma}`, `norm`. No register tokens
(the `dinov2_vit?14` hub models have none).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ViTConfig:
    embed_dim: int
    depth: int
    num_heads: int
    img_size: int = 518  # pretraining resolution: sizes the stored pos_embed grid (518/14 = 37)
    patch_size: int = 14
    mlp_ratio: float = 4.0


#: `vitt` is ours: a tiny ViT that keeps every code path (layer scale, pos-embed interpolation) for CPU tests.
VIT_CONFIGS = {
    "vitt": ViTConfig(embed_dim=32, depth=4, num_heads=2, img_size=224),
    "vits": ViTConfig(embed_dim=384, depth=12, num_heads=6),
    "vitb": ViTConfig(embed_dim=768, depth=12, num_heads=12),
    "vitl": ViTConfig(embed_dim=1024, depth=24, num_heads=16),
}


def vit_config(encoder: str) -> ViTConfig:
    if encoder not in VIT_CONFIGS:
        raise ValueError(f"model.encoder={encoder!r} is not a known ViT size; use one of {sorted(VIT_CONFIGS)}")
    return VIT_CONFIGS[encoder]


class PatchEmbed(nn.Module):
    """Non-overlapping 14x14 patches -> tokens (B, N, C)."""

    def __init__(self, patch_size: int, embed_dim: int, in_chans: int = 3):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"ViT input {h}x{w} is not a multiple of the patch size {self.patch_size}; "
                             "resize it first (FoundationStereo resizes to multiples of 112)")
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"ViT embed_dim={dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.unbind(2)
        x = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class LayerScale(nn.Module):
    def __init__(self, dim: int, init_value: float = 1.0):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block with layer scale (init 1.0 as in the DINOv2 hub models)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoVisionTransformer(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_size = cfg.patch_size
        self.embed_dim = cfg.embed_dim
        # The hub models add 0.1 to the target grid before turning it into a scale factor (a DINO-era
        # float-rounding workaround); kept because it changes the interpolated values.
        self.interpolate_offset = 0.1
        grid = cfg.img_size // cfg.patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, cfg.embed_dim))
        # Masked-image-modelling token: never used at inference, kept so checkpoints load strictly.
        self.mask_token = nn.Parameter(torch.zeros(1, cfg.embed_dim))
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.embed_dim)
        self.blocks = nn.ModuleList(Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def interpolate_pos_encoding(self, n_tokens: int, h: int, w: int) -> torch.Tensor:
        """Stored pos_embed (square grid M x M) resized bicubically to the (h/14, w/14) token grid."""
        n_stored = self.pos_embed.shape[1] - 1
        if n_tokens - 1 == n_stored and h == w:
            return self.pos_embed
        pos = self.pos_embed.float()
        m = int(math.sqrt(n_stored))
        h0, w0 = h // self.patch_size, w // self.patch_size
        grid = pos[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2)
        scale = ((h0 + self.interpolate_offset) / m, (w0 + self.interpolate_offset) / m)
        grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=False)
        if grid.shape[-2:] != (h0, w0):  # the offset guarantees this; fail loudly rather than misalign
            raise RuntimeError(f"pos_embed interpolation produced {tuple(grid.shape[-2:])}, expected {(h0, w0)}")
        grid = grid.permute(0, 2, 3, 1).reshape(1, h0 * w0, -1)
        return torch.cat([pos[:, :1], grid], dim=1).to(self.pos_embed.dtype)

    def prepare_tokens(self, x: torch.Tensor) -> torch.Tensor:
        # Plain ints on purpose: under ONNX/JIT tracing the grid size becomes a constant of the traced
        # shape (why FoundationStereo exports with static H/W only), instead of a traced tensor that
        # F.interpolate's scale_factor cannot take.
        h, w = int(x.shape[-2]), int(x.shape[-1])
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        return tokens + self.interpolate_pos_encoding(tokens.shape[1], h, w).to(tokens.dtype)

    def get_intermediate_layers(self, x: torch.Tensor, layers: Sequence[int]
                                ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(final-norm patch tokens (B, N, C), class token (B, C)) after each block index in `layers`."""
        bad = [i for i in layers if not 0 <= i < len(self.blocks)]
        if bad:
            raise ValueError(f"intermediate layers {bad} out of range for a {len(self.blocks)}-block ViT")
        x = self.prepare_tokens(x)
        outputs = []
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i in layers:
                out = self.norm(x)
                outputs.append((out[:, 1:], out[:, 0]))
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Final normalised class token (B, C)."""
        x = self.prepare_tokens(x)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)[:, 0]
