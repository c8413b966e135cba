"""Load ImageNet / DepthAnything-V2 backbone weights (`model.stereo_backbone.*_pretrained_path`).

Accepted layouts
- DepthAnything-V2 (`depth_anything_v2_pretrained_path`): the upstream `depth_anything_v2_vit?.pth`
  (`pretrained.*` DINOv2 + `depth_head.*` DPT), which TAO also uses; TAO/Lightning files that wrap it
  (`{"state_dict": ...}`, `model.`/`module.` prefixes, `...depth_anything.` prefixes such as a whole
  FoundationStereo checkpoint).
- EdgeNeXt (`edgenext_pretrained_path`): timm (`stem.*`, `stages.N.downsample.*`,
  `stages.N.blocks.M.{conv_dw,mlp.fc1,mlp.fc2}`) or the original/TAO layout (`downsample_layers.N.*`,
  `stages.N.M.{dwconv,pwconv1,pwconv2}`, usually under `state_dict`). Classifier keys (`head.*`,
  top-level `norm.*`) are ignored.
Files are read by `stereo.checkpoints.io.read_checkpoint` (no pickled code is executed).
Any missing, unexpected or wrongly-shaped key raises `PretrainedLoadError` listing the first few.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from stereo.checkpoints.io import read_checkpoint
from stereo.checkpoints.remap_fs import strip_wrappers, tao_fs_key_to_nvlabs
from stereo.errors import PretrainedLoadError

_SHOW = 5


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Flat state dict of any weight file `read_checkpoint` understands (no pickled code is executed)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights not found: {path}; fix the *_pretrained_path or set it to ''")
    return read_checkpoint(path).state_dict


def _first(items: list[str]) -> str:
    more = f" ... (+{len(items) - _SHOW} more)" if len(items) > _SHOW else ""
    return ", ".join(items[:_SHOW]) + more


def load_checked(module: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Strict load that reports every problem at once (counts + first few keys) before touching weights."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        parts = []
        if mismatched:
            parts.append(f"{len(mismatched)} mismatched shape(s): {_first(mismatched)}")
        if missing:
            parts.append(f"{len(missing)} missing: {_first(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {_first(unexpected)}")
        raise PretrainedLoadError(f"{what} does not fit the model: " + "; ".join(parts) +
                                  ". Check model.encoder / model.cnn_backbone against the file, or point the "
                                  "path at the matching checkpoint.")
    with torch.no_grad():
        module.load_state_dict(dict(state), strict=True)


def _find(model: nn.Module, attr_chain: str) -> nn.Module:
    obj = model
    for part in attr_chain.split("."):
        obj = getattr(obj, part)
    return obj


def depth_anything_module(model: nn.Module) -> nn.Module:
    """The DepthAnythingV2 inside a FoundationStereo, its feature extractor, the frozen wrapper, or itself."""
    for chain in ("feature.dino.depth_anything", "dino.depth_anything", "depth_anything", ""):
        try:
            m = _find(model, chain) if chain else model
        except AttributeError:
            continue
        if hasattr(m, "pretrained") and hasattr(m, "depth_head"):
            return m
    raise TypeError(f"{type(model).__name__} holds no DepthAnything-V2 module (pretrained + depth_head)")


def edgenext_module(model: nn.Module) -> nn.Module:
    """The module holding `stem` and `stages` (FoundationStereo.feature, FSFeature, EdgeNeXt)."""
    for m in (getattr(model, "feature", None), model):
        if m is not None and hasattr(m, "stem") and hasattr(m, "stages"):
            return m
    raise TypeError(f"{type(model).__name__} holds no EdgeNeXt (stem + stages)")


def depth_anything_state(raw: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys reduced to `pretrained.*` / `depth_head.*` whatever prefix the file uses."""
    out: dict[str, torch.Tensor] = {}
    for old, key in strip_wrappers(raw.keys()).items():
        for marker in ("pretrained.", "depth_head."):
            if key.startswith(marker):
                out[key] = raw[old]
                break
            i = key.find("." + marker)
            if i >= 0:
                out[key[i + 1:]] = raw[old]
                break
    return out


def edgenext_state(raw: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys in timm layout (`stem.*`, `stages.N.downsample.*`, `stages.N.blocks.M.*`), classifier dropped."""
    out: dict[str, torch.Tensor] = {}
    for old, key in strip_wrappers(raw.keys()).items():
        key = key.removeprefix("feature.")
        if key.startswith(("head.", "norm.", "head_norm.", "norm_pre.")):
            continue  # ImageNet classifier, not part of the feature backbone
        if not key.startswith(("stem.", "stages.", "downsample_layers.")):
            continue  # other parts of a whole stereo checkpoint
        # The TAO/original EdgeNeXt names are exactly what remap_fs translates under `feature.`
        out[tao_fs_key_to_nvlabs("feature." + key)[len("feature."):]] = raw[old]
    return out


def load_depth_anything_v2(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a DepthAnything-V2 file into the ViT branch of `model`; returns the branch."""
    target = depth_anything_module(model)
    state = depth_anything_state(read_state_dict(path))
    if not state:
        raise PretrainedLoadError(f"{path} has no `pretrained.*` / `depth_head.*` keys: not a DepthAnything-V2 "
                                  "checkpoint; set model.stereo_backbone.depth_anything_v2_pretrained_path to one")
    load_checked(target, state, f"DepthAnything-V2 weights {path}")
    return target


def load_edgenext(model: nn.Module, path: str | Path) -> nn.Module:
    """Load EdgeNeXt ImageNet weights (timm or TAO layout) into the CNN branch of `model`."""
    target = edgenext_module(model)
    state = edgenext_state(read_state_dict(path))
    if not state:
        raise PretrainedLoadError(f"{path} has no EdgeNeXt keys (stem/stages/downsample_layers); set "
                                  "model.stereo_backbone.edgenext_pretrained_path to an EdgeNeXt checkpoint")
    sub = nn.Module()  # view of just the backbone so that strictness ignores decoder/ViT keys
    sub.stem, sub.stages = target.stem, target.stages
    load_checked(sub, state, f"EdgeNeXt weights {path}")
    return target


def load_stereo_backbones(model: nn.Module, depth_anything_v2_pretrained_path: str = "",
                          edgenext_pretrained_path: str = "") -> None:
    """Apply the two `model.stereo_backbone.*_pretrained_path` settings (empty = skip)."""
    if depth_anything_v2_pretrained_path:
        load_depth_anything_v2(model, depth_anything_v2_pretrained_path)
    if edgenext_pretrained_path:
        load_edgenext(model, edgenext_pretrained_path)
