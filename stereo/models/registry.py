"""One registry of stereo networks (timm style).

    build_model(cfg)                 dispatch on cfg.model_type
    create_model("ffs_bp2", **kw)    a named preset with field overrides
    list_models(pattern="*")         preset names
    register_preset(name, fields)    add a preset (duplicates raise)

FoundationStereo presets live in `stereo.models.fs.PRESETS` and are merged on first use, so this module
imports no network code until a model is built.
"""
from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib
from typing import Any, Callable, Dict, List, Mapping

import torch.nn as nn

from stereo.config.model import FFS_BP2, MODEL_TYPES, ModelConfig

#: model_type -> "module:attribute" of the class built from a ModelConfig (imported lazily)
MODEL_CLASSES: Dict[str, str] = {
    "FastFoundationStereo": "stereo.models.ffs:FastFoundationStereo",
    "FoundationStereo": "stereo.models.fs:FoundationStereo",
}

_PRESETS: Dict[str, Dict[str, Any]] = {}
_fs_merged = False
_CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))


def _did_you_mean(name: str, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def register_preset(name: str, fields: Mapping[str, Any]) -> None:
    """Register `name` -> ModelConfig fields. Raises on a duplicate name or an unknown field."""
    if name in _PRESETS:
        raise ValueError(f"model preset {name!r} is already registered; pick another name")
    _check_fields(fields, f"preset {name!r}")
    _PRESETS[name] = dict(fields)


def _check_fields(fields: Mapping[str, Any], what: str) -> None:
    for key in fields:
        if key not in _CONFIG_FIELDS:
            raise KeyError(f"{what}: unknown model field {key!r}{_did_you_mean(key, _CONFIG_FIELDS)}")


def _merge_fs_presets() -> None:
    global _fs_merged
    if _fs_merged:
        return
    _fs_merged = True
    try:
        fs = importlib.import_module("stereo.models.fs")
    except ImportError:  # FoundationStereo not installed in this checkout: only FFS presets
        return
    for name, fields in getattr(fs, "PRESETS", {}).items():
        if name not in _PRESETS:
            register_preset(name, fields)


def list_models(pattern: str = "*") -> List[str]:
    """Sorted preset names matching a shell-style `pattern`."""
    _merge_fs_presets()
    return sorted(n for n in _PRESETS if fnmatch.fnmatch(n, pattern))


def preset_config(name: str, **overrides: Any) -> ModelConfig:
    """The ModelConfig of preset `name`, with field overrides."""
    _merge_fs_presets()
    if name not in _PRESETS:
        raise KeyError(f"unknown model preset {name!r}{_did_you_mean(name, _PRESETS)}; "
                       f"choose one of {sorted(_PRESETS)}")
    _check_fields(overrides, f"create_model({name!r})")
    return ModelConfig(**{**_PRESETS[name], **overrides})


def model_class(model_type: str) -> Callable[[ModelConfig], nn.Module]:
    if model_type not in MODEL_CLASSES:
        raise ValueError(f"unknown model.model_type {model_type!r}{_did_you_mean(model_type, MODEL_CLASSES)}; "
                         f"choose one of {list(MODEL_TYPES)}")
    module, attr = MODEL_CLASSES[model_type].split(":")
    return getattr(importlib.import_module(module), attr)


def build_model(cfg: ModelConfig) -> nn.Module:
    """Build the network that `cfg.model_type` names, sized by `cfg`."""
    return model_class(cfg.model_type)(cfg)


def create_model(preset: str, **overrides: Any) -> nn.Module:
    """Build preset `preset` (see `list_models()`) with ModelConfig field overrides."""
    return build_model(preset_config(preset, **overrides))


register_preset("ffs_bp2", {**FFS_BP2, "valid_iters": 8})
# ours: every FFS code path at test size; a 64x128 forward takes well under a second on one core
register_preset("ffs_tiny", {
    **FFS_BP2, "encoder": "vitt", "cnn_backbone": "edgenext_tiny", "hidden_dims": [16], "max_disparity": 32,
    "volume_dim": 8, "concat_channel": 8, "train_iters": 2, "valid_iters": 2,
    "motion_encoder_widths": [16, 16, 8, 8], "motion_encoder_final": 15, "gru_hidden": 16,
    "gru_gating_conv_widths": [24, 32], "disp_head_input_dim": 16, "disp_head_intermediate": 8,
    "disp_head_pwconv1_widths": [16, 24], "mask_widths": [8, 8], "stem_2_widths": [8, 8],
    "spx_2_gru_widths": [8, 8, 8, 8], "classifier_mid": 4, "cnet_conv04_widths": [16, 16], "cam_mid_channels": 4,
})
