"""Named FoundationStereo configurations (the `cfg.yaml` of the published checkpoints, plus a tiny test model).

Each preset is a dict of `ModelConfig` fields; `preset_config(name, **overrides)` makes the config.
"""
from __future__ import annotations

import copy
import difflib
from dataclasses import replace
from typing import Any

from stereo.config.model import ModelConfig, StereoBackboneConfig

_NVLABS = {
    "model_type": "FoundationStereo", "variant": "nvlabs", "cnn_backbone": "edgenext_small",
    "hidden_dims": [128, 128, 128], "n_gru_layers": 3, "corr_radius": 4, "corr_levels": 2, "n_downsample": 2,
    "max_disparity": 416, "valid_iters": 32, "train_iters": 22, "volume_dim": 28, "cv_group": 8,
    "concat_channel": 24, "gwc_feature_normalize": True, "attention_layout": "auto",
}

PRESETS: dict[str, dict[str, Any]] = {
    # NVlabs 11-33-40 checkpoint shape
    "fs_vits": {**_NVLABS, "encoder": "vits"},
    "fs_vitb": {**_NVLABS, "encoder": "vitb"},
    # NVlabs 23-51-11 checkpoint shape
    "fs_vitl": {**_NVLABS, "encoder": "vitl"},
    # TAO FoundationStereo (NGC commercial ViT-S model)
    "fs_vits_tao": {**_NVLABS, "encoder": "vits", "variant": "tao"},
    # ours: tiny ViT + tiny EdgeNeXt, every code path, well under a second at 64x128 on one CPU core
    "fs_tiny": {**_NVLABS, "encoder": "vitt", "cnn_backbone": "edgenext_tiny", "hidden_dims": [32, 32, 32],
                "max_disparity": 32, "volume_dim": 8, "valid_iters": 2, "train_iters": 2},
}
# the TAO architecture variant (ConvTranspose + InstanceNorm heads, TAO's attention view) at tiny size
PRESETS["fs_tao_tiny"] = {**PRESETS["fs_tiny"], "variant": "tao"}


def preset_config(name: str, **overrides: Any) -> ModelConfig:
    """ModelConfig of preset `name` with field overrides (unknown fields raise)."""
    if name not in PRESETS:
        close = difflib.get_close_matches(name, PRESETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise KeyError(f"unknown FoundationStereo preset {name!r}{hint}; choose one of {sorted(PRESETS)}")
    fields = copy.deepcopy({**PRESETS[name], **overrides})  # never share the preset's lists
    known = set(ModelConfig.__dataclass_fields__)
    bad = sorted(set(fields) - known)
    if bad:
        raise TypeError(f"unknown ModelConfig field(s) {bad} for preset {name!r}")
    backbone = fields.pop("stereo_backbone", None)
    cfg = replace(ModelConfig(), **fields)
    if backbone is not None:
        cfg.stereo_backbone = backbone if isinstance(backbone, StereoBackboneConfig) else \
            StereoBackboneConfig(**backbone)
    return cfg
