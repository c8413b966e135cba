"""TAO FoundationStereo <-> NVlabs FoundationStereo state-dict key remap.

Our FoundationStereo modules use the NVlabs names for both variants. TAO FS checkpoints (the NGC
commercial ViT-S model, TAO-trained models) are renamed here. The rules are the FFS-bp2 ones
(manifests README, "NVlabs FS vs TAO FS") with the timm-vs-TAO EdgeNeXt token rules scoped to
`feature.stages.*`: applied globally they would also rename DINOv2's `blocks.N.mlp.fc1/fc2`.

    TAO                                     NVlabs
    model. / module. (leading wrappers)     dropped
    cost_agg.atts.cost_vol_disp.            cost_agg.atts.4.
    corr_feature_att.layers. / classifier.layers.   (FFS helper lists; not present in FS)
    feature.downsample_layers.0.            feature.stem.
    feature.downsample_layers.N. (N=1..3)   feature.stages.N.downsample.
    feature.stages.N.M.                     feature.stages.N.blocks.M.
      .dwconv. / .pwconv1. / .pwconv2.        .conv_dw. / .mlp.fc1. / .mlp.fc2.   (inside feature.stages only)
    <m>.norm.<x> where <m>.conv.weight exists   <m>.bn.<x>   (TAO `Conv` helper vs NVlabs `BasicConv`)
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TypeVar

V = TypeVar("V")

_WRAPPERS = ("model.", "module.")
_TAO_TO_NV_PREFIX = (
    ("cost_agg.atts.cost_vol_disp.", "cost_agg.atts.4."),
    ("feature.downsample_layers.0.", "feature.stem."),
)
_TAO_STAGE_BLOCK = re.compile(r"^feature\.stages\.(\d+)\.(\d+)\.(.*)$")
_TAO_DOWNSAMPLE = re.compile(r"^feature\.downsample_layers\.([1-3])\.(.*)$")
_NV_STAGE_BLOCK = re.compile(r"^feature\.stages\.(\d+)\.blocks\.(\d+)\.(.*)$")
_NV_DOWNSAMPLE = re.compile(r"^feature\.stages\.([1-3])\.downsample\.(.*)$")
# EdgeNeXt block attribute tokens: timm (NVlabs) spelling <-> TAO spelling
_EDGENEXT_TOKENS = (("conv_dw.", "dwconv."), ("mlp.fc1.", "pwconv1."), ("mlp.fc2.", "pwconv2."))


def strip_wrappers(keys: Iterable[str]) -> dict[str, str]:
    """old -> new with leading `model.` (only when some key has it) then `module.` removed."""
    keys = list(keys)
    out = {k: k for k in keys}
    for w in _WRAPPERS:
        if any(v.startswith(w) for v in out.values()):
            out = {k: (v.removeprefix(w)) for k, v in out.items()}
    return out


def tao_fs_key_to_nvlabs(key: str, conv_prefixes: Iterable[str] = ()) -> str:
    """One TAO FS key (wrappers already stripped) under its NVlabs name.

    `conv_prefixes` are the module paths that hold a TAO `Conv` helper (`<m>.conv.weight` exists);
    their `norm` is NVlabs' `bn`.
    """
    for tao, nv in _TAO_TO_NV_PREFIX:
        if key.startswith(tao):
            return nv + key[len(tao):]
    m = _TAO_DOWNSAMPLE.match(key)
    if m:
        return f"feature.stages.{m.group(1)}.downsample.{m.group(2)}"
    m = _TAO_STAGE_BLOCK.match(key)
    if m:
        rest = m.group(3)
        for timm_tok, tao_tok in _EDGENEXT_TOKENS:
            if rest.startswith(tao_tok):
                rest = timm_tok + rest[len(tao_tok):]
        return f"feature.stages.{m.group(1)}.blocks.{m.group(2)}.{rest}"
    head, sep, tail = key.rpartition(".norm.")
    if sep and head in conv_prefixes:
        return f"{head}.bn.{tail}"
    return key


def nvlabs_fs_key_to_tao(key: str) -> str:
    """Inverse of `tao_fs_key_to_nvlabs` (BasicConv `bn` -> `norm` wherever a `.bn.` follows a conv block)."""
    for tao, nv in _TAO_TO_NV_PREFIX:
        if key.startswith(nv):
            return tao + key[len(nv):]
    m = _NV_DOWNSAMPLE.match(key)
    if m:
        return f"feature.downsample_layers.{m.group(1)}.{m.group(2)}"
    m = _NV_STAGE_BLOCK.match(key)
    if m:
        rest = m.group(3)
        for timm_tok, tao_tok in _EDGENEXT_TOKENS:
            if rest.startswith(timm_tok):
                rest = tao_tok + rest[len(timm_tok):]
        return f"feature.stages.{m.group(1)}.{m.group(2)}.{rest}"
    # NVlabs BasicConv norms are `<m>.bn.*`; ResNet blocks use `bn1`/`bn2` and keep their names in TAO.
    return key.replace(".bn.", ".norm.")


def _conv_prefixes(keys: Iterable[str]) -> set:
    return {k[: -len(".conv.weight")] for k in keys if k.endswith(".conv.weight")}


def remap_tao_fs_to_nvlabs(state: Mapping[str, V]) -> dict[str, V]:
    """TAO FS state dict -> NVlabs names. Raises when two TAO keys land on one name."""
    stripped = strip_wrappers(state.keys())
    convs = _conv_prefixes(stripped.values())
    out: dict[str, V] = {}
    origin: dict[str, str] = {}
    for old, key in stripped.items():
        new = tao_fs_key_to_nvlabs(key, convs)
        if new in out:
            raise KeyError(f"TAO->NVlabs remap collision: {origin[new]!r} and {old!r} both map to {new!r}; "
                           "the checkpoint mixes naming conventions — clean it before loading")
        out[new] = state[old]
        origin[new] = old
    return out


def remap_nvlabs_fs_to_tao(state: Mapping[str, V]) -> dict[str, V]:
    """NVlabs FS state dict -> TAO names (for exporting to TAO tooling)."""
    return {nvlabs_fs_key_to_tao(k): v for k, v in state.items()}


def looks_like_tao_fs(keys: Iterable[str]) -> bool:
    """TAO FS layout is recognisable by its EdgeNeXt list or its disparity-attention entry name."""
    keys: list[str] = [k for k in strip_wrappers(keys).values()]
    return any(k.startswith(("feature.downsample_layers.", "cost_agg.atts.cost_vol_disp.")) for k in keys)
