"""Containers of the FFS NAS cost-filtering blocks (`<name>.layers.N`, `<name>.upsample.N` / `.out.N`).

They reproduce the module trees of the research checkpoint so that its keys load by name.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn

from stereo.models.layers.attention import FeatureAtt


def _run(layers, x: torch.Tensor, feat: Optional[torch.Tensor]) -> torch.Tensor:
    for layer in layers:
        # FeatureAtt gates the volume with the image feature of the same resolution
        x = layer(x, feat) if isinstance(layer, FeatureAtt) else layer(x)
    return x


class ForwardHelper(nn.Module):
    """A `layers` list run in order; FeatureAtt members also receive the side feature."""

    def __init__(self, layers: Sequence[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, feat: Optional[torch.Tensor] = None) -> torch.Tensor:
        return _run(self.layers, x, feat)


class PostForwardHelper(nn.Module):
    """Merge block: `upsample` the coarse volume, add (or concatenate) the finer one, then run `out`."""

    def __init__(self, upsample: Sequence[nn.Module], out: Sequence[nn.Module], op: str = "sum"):
        super().__init__()
        if op not in ("sum", "concat"):
            raise ValueError(f"op must be 'sum' or 'concat', got {op!r}")
        self.op = op
        self.upsample = nn.Sequential(*upsample)
        self.out = nn.ModuleList(out)

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor,
                feat: Optional[torch.Tensor] = None) -> torch.Tensor:
        up = self.upsample(coarse)
        x = up + fine if self.op == "sum" else torch.cat((up, fine), dim=1)
        return _run(self.out, x, feat)
