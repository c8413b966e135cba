"""Disparity transformer (DT): self-attention along the disparity axis of a cost volume.

Three attention layouts exist in the wild and checkpoints depend on them (see manifests README,
"NVlabs FS vs TAO FS"). With Q, K, V of shape (N, L, C), C = heads * head_dim:

- `standard`: textbook multi-head attention, (N, heads, L, head_dim); tokens attend to each other.
- `heads_as_sequence`: (N, L, heads, head_dim) handed to SDPA as is; SDPA takes dim -2 as the sequence,
  so each token's heads attend to each other and disparity tokens never mix. Current NVlabs code
  (an SDPA swap for flash-attn without a transpose); what FFS bp2 was trained with.
- `tao_view`: TAO FoundationStereo, a `view(N, heads, L, head_dim)` without transpose (mixes chunks).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

LAYOUTS = ("standard", "heads_as_sequence", "tao_view")


class DisparityMultiheadAttention(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int, layout: str = "standard"):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"attention layout must be one of {LAYOUTS}, got {layout!r}")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} must be divisible by num_heads {num_heads}")
        self.layout = layout
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        n, length, _ = t.shape
        if self.layout == "standard":
            return t.view(n, length, self.num_heads, self.head_dim).transpose(1, 2)
        if self.layout == "heads_as_sequence":
            return t.view(n, length, self.num_heads, self.head_dim)
        return t.view(n, self.num_heads, length, self.head_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, c = x.shape
        q, k, v = (self._split(p(x)) for p in (self.q_proj, self.k_proj, self.v_proj))
        out = F.scaled_dot_product_attention(q, k, v)
        if self.layout == "standard":
            out = out.transpose(1, 2)
        return self.out_proj(out.reshape(n, length, c))


class DisparityTransformerLayer(nn.Module):
    """Post-norm encoder layer: x = norm1(x + attn(x)); x = norm2(x + W2 gelu(W1 x))."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float = 0.1,
                 layout: str = "standard"):
        super().__init__()
        self.self_attn = DisparityMultiheadAttention(d_model, nhead, layout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.dropout1(self.self_attn(x)))
        ff = self.linear2(self.dropout(F.gelu(self.linear1(x))))
        return self.norm2(x + self.dropout2(ff))


def sinusoidal_table(length: int, d_model: int) -> torch.Tensor:
    """pe[p, 2i] = sin(p * exp(-2i ln(10000)/d)), pe[p, 2i+1] = cos(same); shape (1, length, d)."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(length, d_model)
    pe[:, 0::2] = torch.sin(position * div)
    pe[:, 1::2] = torch.cos(position * div)[:, : d_model // 2]
    return pe.unsqueeze(0)


class PositionalEmbedding(nn.Module):
    """Adds a fixed sinusoidal table; not in the state dict (upstream keeps it as a plain attribute)."""

    def __init__(self, d_model: int, max_len: int):
        super().__init__()
        self.register_buffer("pe", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        if length > self.pe.shape[1]:
            raise ValueError(f"disparity transformer got {length} tokens but its table holds {self.pe.shape[1]}; "
                             f"max_disparity is too small for this volume")
        return x + self.pe[:, :length].to(x.dtype)


class CostVolumeDisparityAttention(nn.Module):
    """Tokens = the disparity cells of each (h, w) site of a [B,C,D,H,W] volume; output has the same shape."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, num_transformer: int, max_len: int,
                 layout: str = "standard", dropout: float = 0.1):
        super().__init__()
        self.sa = nn.ModuleList([DisparityTransformerLayer(d_model, nhead, dim_feedforward, dropout, layout)
                                 for _ in range(num_transformer)])
        self.pos_embed0 = PositionalEmbedding(d_model, max_len)

    def forward(self, cv: torch.Tensor) -> torch.Tensor:
        b, c, d, h, w = cv.shape
        x = cv.permute(0, 3, 4, 2, 1).reshape(b * h * w, d, c)
        x = self.pos_embed0(x)
        for layer in self.sa:
            x = layer(x)
        return x.reshape(b, h, w, d, c).permute(0, 4, 3, 1, 2)
