"""Fast-FoundationStereo bp2: research-checkpoint (upstream) <-> TAO 7 state-dict key remap.

Rules of `remap_rules_ffs_bp2.tsv`, applied in TAO's order (upstream -> TAO); the inverse undoes them
in reverse order. Only names change; values are passed through untouched.

    stage  upstream                               TAO
    0      model. / module. (leading wrappers)    dropped
    1      cost_agg.atts.4.                       cost_agg.atts.cost_vol_disp.
    1      corr_feature_att.layers.               corr_feature_att.
    1      classifier.layers.                     classifier.
    1      feature.stem.                          feature.downsample_layers.0.
    1      feature.stages.N.downsample. (N=1..3)  feature.downsample_layers.N.
    1      feature.stages.N.blocks.               feature.stages.N.
    2      .conv_dw. / .mlp.fc1. / .mlp.fc2.      .dwconv. / .pwconv1. / .pwconv2.   (EdgeNeXt blocks only)
    3      <m>.bn.<x> / <m>.IN.<x>                <m>.norm.<x>   where <m> is a conv helper (<m>.conv.weight exists)
    -      (absent)                               dx  (TAO's int8 lookup offsets; dropped going upstream)

Stage 2 is scoped to `feature.stages.*` (TAO applies it globally; for bp2 that is the same set of keys,
for models with a ViT it would wrongly rename DINOv2's `mlp.fc1`).
"""
from __future__ import annotations

import re
from typing import Dict, Iterable, Mapping, TypeVar

V = TypeVar("V")

TAO_ONLY_KEYS = frozenset({"dx"})

# stage 1, upstream -> TAO, longest prefix first
_PREFIXES = (
    ("cost_agg.atts.4.", "cost_agg.atts.cost_vol_disp."),
    ("corr_feature_att.layers.", "corr_feature_att."),
    ("classifier.layers.", "classifier."),
    ("feature.stem.", "feature.downsample_layers.0."),
)
_UP_DOWNSAMPLE = re.compile(r"^feature\.stages\.([1-3])\.downsample\.")
_UP_BLOCKS = re.compile(r"^feature\.stages\.(\d+)\.blocks\.")
_TAO_DOWNSAMPLE = re.compile(r"^feature\.downsample_layers\.([1-3])\.")
_TAO_LISTS = re.compile(r"^(corr_feature_att|classifier)\.(\d+)\.")
_TAO_BLOCK = re.compile(r"^feature\.stages\.(\d+)\.(\d+)\.")
_TOKENS = ((".conv_dw.", ".dwconv."), (".mlp.fc1.", ".pwconv1."), (".mlp.fc2.", ".pwconv2."))
_NORM = re.compile(r"^(.*)\.(bn|IN|norm)\.([^.]+)$")


def _strip_wrappers(keys: Iterable[str]) -> Dict[str, str]:
    keys = list(keys)
    has_model = any(k.startswith("model.") for k in keys)
    out = {}
    for k in keys:
        new = k[len("model."):] if has_model and k.startswith("model.") else k
        new = new[len("module."):] if new.startswith("module.") else new
        out[k] = new
    return out


def _rename(mapping: Mapping[str, V], names: Dict[str, str], direction: str) -> Dict[str, V]:
    out: Dict[str, V] = {}
    source: Dict[str, str] = {}
    for old, value in mapping.items():
        new = names[old]
        if new is None:
            continue
        if new in out:
            raise ValueError(f"FFS {direction} remap: keys {source[new]!r} and {old!r} both map to {new!r}; "
                             f"the state dict mixes naming conventions, pass one convention only")
        out[new] = value
        source[new] = old
    return out


def _up_to_tao_name(key: str) -> str:
    for up, tao in _PREFIXES:
        if key.startswith(up):
            return tao + key[len(up):]
    m = _UP_DOWNSAMPLE.match(key)
    if m:
        return f"feature.downsample_layers.{m.group(1)}." + key[m.end():]
    m = _UP_BLOCKS.match(key)
    if m:
        key = f"feature.stages.{m.group(1)}." + key[m.end():]
        for up, tao in _TOKENS:
            key = key.replace(up, tao)
    return key


def _tao_to_up_name(key: str) -> str:
    for up, tao in (_PREFIXES[0], _PREFIXES[3]):
        if key.startswith(tao):
            return up + key[len(tao):]
    m = _TAO_LISTS.match(key)
    if m:
        return f"{m.group(1)}.layers.{m.group(2)}." + key[m.end():]
    m = _TAO_DOWNSAMPLE.match(key)
    if m:
        return f"feature.stages.{m.group(1)}.downsample." + key[m.end():]
    m = _TAO_BLOCK.match(key)
    if m:
        rest = key[m.end():]
        for up, tao in _TOKENS:
            rest = ("." + rest).replace(tao, up)[1:]
        return f"feature.stages.{m.group(1)}.blocks.{m.group(2)}." + rest
    return key


def _conv_helpers(keys: Iterable[str]) -> set:
    """Module paths that hold a `conv` child: NVlabs BasicConv / TAO Conv (their norm is the renamed one)."""
    return {k[: -len(".conv.weight")] for k in keys if k.endswith(".conv.weight")}


def upstream_to_tao(state_dict: Mapping[str, V]) -> Dict[str, V]:
    """Research-checkpoint names -> TAO 7 names (what TAO's loader does to a bp2 pickle's state dict)."""
    stripped = _strip_wrappers(state_dict)
    names = {old: _up_to_tao_name(new) for old, new in stripped.items()}
    convs = _conv_helpers(names.values())
    for old, new in names.items():
        m = _NORM.match(new)
        if m and m.group(2) in ("bn", "IN") and m.group(1) in convs:
            names[old] = f"{m.group(1)}.norm.{m.group(3)}"
    return _rename(state_dict, names, "upstream->TAO")


def tao_to_upstream(state_dict: Mapping[str, V]) -> Dict[str, V]:
    """TAO 7 names -> research-checkpoint names (the names of our modules); drops TAO's `dx` buffer."""
    stripped = _strip_wrappers(state_dict)
    convs = _conv_helpers(stripped.values())
    names: Dict[str, str] = {}
    for old, new in stripped.items():
        if new in TAO_ONLY_KEYS:
            names[old] = None
            continue
        m = _NORM.match(new)
        if m and m.group(2) == "norm" and m.group(1) in convs:
            new = f"{m.group(1)}.bn.{m.group(3)}"
        names[old] = _tao_to_up_name(new)
    return _rename(state_dict, names, "TAO->upstream")


def is_tao_naming(keys: Iterable[str]) -> bool:
    """True when the keys look TAO-named (EdgeNeXt `downsample_layers` or a `dx` buffer)."""
    return any(k.startswith(("feature.downsample_layers.", "model.feature.downsample_layers.")) or k == "dx"
               for k in keys)
