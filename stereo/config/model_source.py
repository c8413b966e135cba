"""The `model` block of a non-train action, taken from the file the action runs.

A checkpoint written by `depth_net train` / `init-checkpoint` has a JSON sidecar holding the model
config it was built with; an ONNX graph written by `depth_net export` has `<onnx>.json` with the same,
and a TensorRT engine `<engine>.json` (the ONNX sidecar inside). So an evaluate / inference / export /
gen_trt_engine spec need not copy the 17+ FFS bp2 `model.*` fields: every `model.*` key the spec does not
set is filled from that sidecar before the spec is typed and checked (logged in one line). A key the
spec *does* set keeps its value; when it contradicts the sidecar, that is one error line per key (the
rules for our checkpoint sidecars live in checkpoint_rules.py; here the ONNX / engine / `.pth` ones).

Which file: the action's deploy target when it has no PyTorch checkpoint (`<action>.trt_engine`, or a
`.onnx`/engine `<action>.checkpoint`), else its checkpoint; `export.checkpoint`; `gen_trt_engine.onnx_file`.
`train` is never filled (it builds the network the spec describes), nor is a spec loaded without an
action (`depth_net validate` without `--action`, `load_spec(path)`): which file would win is ambiguous
there, so every checkpoint is compared with the spec as written. `validate --action evaluate` shows the
filled spec that evaluate will run.

Only JSON is read here (no torch import, no unpickling): a `.pth` is matched through the sidecar of the
same stem beside it (the training layout writes both); a foreign `.pth` has none and fills nothing.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePath
from typing import Any, Dict, List, Optional, Set, Tuple

from stereo.config.errors import Problem

log = logging.getLogger(__name__)

DEPLOY_SUFFIXES = (".onnx", ".engine", ".plan", ".trt")
#: files whose sidecar checkpoint_rules already compares with the spec (no second error line here)
CHECKED_ELSEWHERE = (".safetensors", ".ckpt", ".json", "")
#: spec keys naming the file each action runs, in order of preference
ACTION_SOURCES = {
    "evaluate": ("evaluate.checkpoint", "evaluate.trt_engine"),
    "inference": ("inference.checkpoint", "inference.trt_engine"),
    "export": ("export.checkpoint",),
    "gen_trt_engine": ("gen_trt_engine.onnx_file",),
    "quantize": ("quantize.model_path",),
}
#: run-time knobs that may differ from the file's without changing what the weights / graph mean
FREE_FIELDS = ("train_iters", "valid_iters", "low_memory", "mixed_precision", "stereo_backbone")


@dataclass
class ModelSource:
    key: str  # the spec key naming the file
    path: str
    sidecar: Path
    config: Dict[str, Any]


@dataclass
class Filled:
    """What `fill_model_block` did: the dotted keys it filled, its source, and contradictions found."""
    keys: Set[str] = field(default_factory=set)
    source: Optional[ModelSource] = None
    problems: List[Problem] = field(default_factory=list)


def fill_model_block(raw: Dict[str, Any], action: Optional[str]) -> Filled:
    """Fill the unset `model.*` keys of the raw spec dict `raw` in place (see the module docstring)."""
    out = Filled()
    if action not in ACTION_SOURCES or not isinstance(raw.get("model", {}), (dict, type(None))):
        return out
    source = find_model_source(raw, action)
    if source is None:
        return out
    out.source = source
    model = raw.get("model") or {}
    raw["model"] = model
    known = _model_fields()
    for name, want in source.config.items():
        if name not in known:
            continue
        if isinstance(want, dict) and isinstance(model.get(name, {}), dict):
            sub = model.setdefault(name, {})
            for inner, value in want.items():
                if inner not in sub:
                    sub[inner] = value
                    out.keys.add(f"model.{name}.{inner}")
            continue
        if name not in model:
            model[name] = want
            out.keys.add(f"model.{name}")
        elif PurePath(source.path).suffix.lower() not in CHECKED_ELSEWHERE:
            out.problems += _contradiction(name, model[name], want, source)
    if out.keys:
        log.info("model: %d keys not set in the spec taken from %s (%s)", len(out.keys), source.sidecar,
                 source.key)
    return out


def find_model_source(raw: Dict[str, Any], action: Optional[str]) -> Optional[ModelSource]:
    """The first file named by the action's keys that has a sidecar with a model config."""
    for name in [action] if action else list(ACTION_SOURCES):
        keys = list(ACTION_SOURCES.get(name, ()))
        section = raw.get(name) if isinstance(raw.get(name), dict) else {}
        ckpt = str(section.get("checkpoint") or "")
        if section.get("trt_engine") and ckpt and PurePath(ckpt).suffix.lower() not in DEPLOY_SUFFIXES:
            keys = [f"{name}.checkpoint"]  # drift: the eager reference model must be built right
        for key in keys:
            value = section.get(key.split(".", 1)[1])
            if not value or not isinstance(value, str):
                continue
            found = sidecar_model_config(value)
            if found is not None:
                sidecar, config = found
                return ModelSource(key, value, sidecar, config)
    return None


def sidecar_model_config(path: str) -> Optional[Tuple[Path, Dict[str, Any]]]:
    """(sidecar, model config) for a checkpoint, `.pth`, ONNX graph or engine we wrote; None otherwise
    (no sidecar, someone else's JSON, unreadable: the action's own checks report those)."""
    p = Path(path).expanduser()
    if p.is_symlink():
        p = p.resolve()  # dn_model_latest.* links: the sidecar beside the target
    suffix = p.suffix.lower()
    candidates = [Path(f"{p}.json")] if suffix in DEPLOY_SUFFIXES else [p.with_suffix(".json") if suffix
                                                                        else Path(f"{p}.json")]
    for sidecar in candidates:
        try:
            data = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        config = _config_of(data)
        if config:
            return sidecar, config
    return None


def _config_of(data: Any) -> Optional[Dict[str, Any]]:
    if not isinstance(data, dict):
        return None
    fmt = data.get("format")
    if fmt == "stereo-automl-checkpoint":
        config = data.get("config")
    elif fmt == "stereo-automl-onnx":
        config = data.get("model_config")
    elif isinstance(data.get("onnx"), dict):  # an engine sidecar carries its ONNX sidecar
        config = _config_of(data["onnx"])
    else:
        return None
    return config if isinstance(config, dict) and config.get("model_type") else None


def _contradiction(name: str, have: Any, want: Any, source: ModelSource) -> List[Problem]:
    if name in FREE_FIELDS or _normal(name, have) == _normal(name, want):
        return []
    return [Problem(f"model.{name}", have, f"contradicts {source.sidecar.name}, the sidecar of "
                    f"{PurePath(source.path).name} ({source.key}), which records {want!r}",
                    f"delete model.{name} from the spec (it is then taken from the sidecar) or set it to "
                    f"{json.dumps(want)}")]


def _normal(name: str, value: Any) -> Any:
    if name == "attention_layout" and value == "auto":
        return "heads_as_sequence"  # what 'auto' resolves to for FFS (stereo.models.ffs.model)
    if isinstance(value, (list, tuple)):
        return [_normal("", v) for v in value]
    return value


def _model_fields() -> Set[str]:
    from stereo.config.model import ModelConfig

    return {f.name for f in fields(ModelConfig)}
