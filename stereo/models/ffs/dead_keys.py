"""State-dict keys of the FFS research checkpoint that the bp2 forward never reads.

The pickled bp2 model still carries the legacy FoundationStereo hourglass inside `cost_agg` and the
unused `context_zqr_convs` (manifests README, "never executed"). We do not register them; instead their
key names are derived here by building those modules on the meta device (no memory, no init cost),
so the loader can ignore exactly these keys and nothing else.
"""
from __future__ import annotations

from functools import lru_cache
from typing import FrozenSet, Tuple

import torch
import torch.nn as nn

from stereo.models.layers.attention import FeatureAtt
from stereo.models.layers.conv import BasicConv, Conv3dNormActReduced
from stereo.models.layers.transformer import CostVolumeDisparityAttention

#: buffer that TAO registers (int8 lookup offsets) and upstream keeps as a plain attribute
OPTIONAL_KEYS = frozenset({"dx"})


def _legacy_modules(c: int, feat_dims: Tuple[int, ...], hidden_dims: Tuple[int, ...], max_disparity: int) -> nn.Module:
    apc = lambda ch: Conv3dNormActReduced(ch, ch, kernel_size=3, kernel_disp=17)  # noqa: E731
    root = nn.Module()
    root.context_zqr_convs = nn.ModuleList([nn.Conv2d(h, 3 * h, 3, padding=1) for h in hidden_dims])
    agg = nn.Module()
    agg.conv3_up = BasicConv(6 * c, 4 * c, is_3d=True, deconv=True, kernel_size=4, stride=2, padding=1)
    agg.conv2_up = BasicConv(4 * c, 2 * c, is_3d=True, deconv=True, kernel_size=4, stride=2, padding=1)
    agg.conv_out = nn.Sequential(apc(c), apc(c))
    agg.agg_0 = nn.Sequential(BasicConv(8 * c, 4 * c, is_3d=True, kernel_size=1), apc(4 * c), apc(4 * c))
    agg.agg_1 = nn.Sequential(BasicConv(4 * c, 2 * c, is_3d=True, kernel_size=1), apc(2 * c), apc(2 * c))
    agg.atts = nn.ModuleDict({"4": CostVolumeDisparityAttention(c, 4, c, 4, max(max_disparity // 16, 1))})
    agg.conv_patch = nn.Sequential(nn.Conv3d(c, c, 4, stride=4, groups=c), nn.BatchNorm3d(c))
    agg.feature_att_up_16 = FeatureAtt(4 * c, feat_dims[2])
    agg.feature_att_up_8 = FeatureAtt(2 * c, feat_dims[1])
    root.cost_agg = agg
    return root


@lru_cache(maxsize=8)
def legacy_key_shapes(volume_dim: int = 28, feat_dims: Tuple[int, ...] = (224, 192, 320, 304),
                      hidden_dims: Tuple[int, ...] = (128,), max_disparity: int = 192) -> Tuple[Tuple[str, tuple], ...]:
    """(key, shape) of every dead tensor for the given widths (defaults: bp2)."""
    with torch.device("meta"):
        root = _legacy_modules(volume_dim, feat_dims, hidden_dims, max_disparity)
    return tuple((k, tuple(v.shape)) for k, v in root.state_dict().items())


def dead_keys(volume_dim: int = 28, feat_dims: Tuple[int, ...] = (224, 192, 320, 304),
              hidden_dims: Tuple[int, ...] = (128,), max_disparity: int = 192) -> FrozenSet[str]:
    return frozenset(k for k, _ in legacy_key_shapes(volume_dim, tuple(feat_dims), tuple(hidden_dims),
                                                      max_disparity))


def legacy_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Zero tensors for the never-executed legacy modules that FFS checkpoints (research pickle, TAO) carry
    and our FFS does not register (the keys above): with them a `.pth` has every key TAO's
    strict loader expects. No forward reads them, so their values do not matter. {} for other models."""
    if not (hasattr(model, "ignored_keys") and hasattr(model, "widths") and hasattr(model, "feature")):
        return {}
    shapes = legacy_key_shapes(model.widths.volume_dim, tuple(model.feature.d_out), tuple(model.cfg.hidden_dims),
                               model.cfg.max_disparity)
    return {k: torch.zeros(shape, dtype=torch.int64 if k.endswith("num_batches_tracked") else torch.float32)
            for k, shape in shapes}


#: the bp2 dead keys (upstream names)
BP2_DEAD_KEYS: FrozenSet[str] = dead_keys()
