"""Cross-field rules between `model.*` and the checkpoints a spec names (called by validate.check_cross_fields).

* **Our checkpoints** (`<name>.safetensors` + `<name>.json` sidecar; Lightning `<name>.ckpt` resume files
  have the same sidecar beside them) record the model config they were trained with. When either side
  is FastFoundationStereo, every field of `model.*` that shapes the weights must equal the sidecar's;
  each differing field is one error. Reading a small JSON file is cheap, so this is checked by content.
* **Research pickles / TAO `.pth`** carry no sidecar, and unpickling a 70 MB file at validate time is too
  slow, so the file *name* decides: one containing "bp2" is the FFS bp2 network and every bp2 invariant
  (stereo.config.model.FFS_BP2) is required.
* FastFoundationStereo has no separately initialised backbone: `model.stereo_backbone.*_pretrained_path`
  set with it would be silently ignored, so it is an error.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path, PurePath
from typing import Any, List, Optional, Tuple

from stereo.config.errors import Problem, missing_value
from stereo.config.model import FFS_BP2

FFS = "FastFoundationStereo"
#: spec keys that name a checkpoint, in the order they are checked
CHECKPOINT_KEYS = ("train.pretrained_model_path", "train.resume_training_checkpoint_path",
                   "evaluate.checkpoint", "inference.checkpoint", "export.checkpoint")
#: the checkpoints each action loads (validate without --action checks all of them)
ACTION_CHECKPOINT_KEYS = {
    "train": ("train.pretrained_model_path", "train.resume_training_checkpoint_path"),
    "evaluate": ("evaluate.checkpoint",),
    "inference": ("inference.checkpoint",),
    "export": ("export.checkpoint",),
    "gen_trt_engine": (),
    "quantize": (),  # its model block comes from quantize.model_path's sidecar (model_source.py)
}
#: model fields that do not change what FFS weights mean (run-time knobs, or fields FFS never reads)
FFS_FREE_FIELDS = ("train_iters", "valid_iters", "low_memory", "mixed_precision", "variant", "stereo_backbone")
BACKBONE_PATH_FIELDS = ("depth_anything_v2_pretrained_path", "edgenext_pretrained_path")
#: suffixes whose `<stem>.json` may be one of our sidecars
_SIDECAR_BESIDE = (".safetensors", ".ckpt", ".json", "")


def check_checkpoints(spec: Any, explicit: set, action: Optional[str] = None) -> List[Problem]:
    """Every rule of this module; one problem per model key (the first checkpoint that disagrees)."""
    problems = _check_backbone_paths(spec.model)
    seen: set = set()
    for ckpt_key in ACTION_CHECKPOINT_KEYS.get(action, CHECKPOINT_KEYS):
        path = _value(spec, ckpt_key)
        if not path:
            continue
        found = sidecar_config(path)
        if found is not None:
            sidecar, config = found
            new = _match_sidecar(spec, explicit, ckpt_key, path, sidecar, config)
        elif spec.model.model_type == FFS and "bp2" in PurePath(path).name.lower():
            new = _match_bp2(spec, explicit, ckpt_key, path)
        else:
            continue
        problems += [p for p in new if p.key not in seen]
        seen |= {p.key for p in new}
    return problems


def sidecar_config(path: str) -> Optional[Tuple[Path, Any]]:
    """(sidecar, its `config`) when `path` is one of our checkpoints, else None. A damaged sidecar gives
    (sidecar, the CheckpointError) so that the caller can report it."""
    p = Path(path).expanduser()
    if p.suffix not in _SIDECAR_BESIDE:
        return None
    sidecar = p.with_suffix(".json") if p.suffix else Path(f"{p}.json")
    if not sidecar.is_file():
        return None
    # lazy: the checkpoint module imports torch, which a spec without our checkpoints never needs
    from stereo.errors import CheckpointError
    from stereo.checkpoints.sidecar_format import is_sidecar, read_sidecar

    if not is_sidecar(sidecar):
        return None  # someone else's JSON next to the weights
    try:
        return sidecar, read_sidecar(sidecar)["config"]
    except CheckpointError as exc:
        return sidecar, exc


def _match_sidecar(spec: Any, explicit: set, ckpt_key: str, path: str, sidecar: Path,
                   config: Any) -> List[Problem]:
    if isinstance(config, Exception):
        return [Problem(ckpt_key, path, f"its sidecar cannot be read: {config}",
                        "re-save the checkpoint or point the key at another one")]
    if not isinstance(config, dict) or "model_type" not in config:
        return []  # saved without a model config: nothing to compare with
    have_type, want_type = spec.model.model_type, config["model_type"]
    if FFS not in (have_type, want_type):
        return []
    source = f"the checkpoint {PurePath(path).name} ({ckpt_key}) was trained with"
    fix_tail = f", or point {ckpt_key} at a checkpoint trained with this model"
    if have_type != want_type:
        return [Problem("model.model_type", have_type, f"does not match: {source} {want_type!r} (its sidecar "
                        f"{sidecar.name})", f"set model.model_type: {want_type}{fix_tail}")]
    model = dataclasses.asdict(spec.model)
    problems = []
    for name, want in config.items():
        if name in FFS_FREE_FIELDS or name not in model:
            continue
        have = model[name]
        if _normal(name, have) == _normal(name, want):
            continue
        problems.append(_mismatch(f"model.{name}", have, want, explicit,
                                  f"{source} {want!r} (its sidecar {sidecar.name})",
                                  f"set model.{name}: {_yaml(want)}{fix_tail}"))
    return problems


def _match_bp2(spec: Any, explicit: set, ckpt_key: str, path: str) -> List[Problem]:
    problems = []
    for name, want in FFS_BP2.items():
        have = getattr(spec.model, name)
        if have == want:
            continue
        problems.append(_mismatch(
            f"model.{name}", have, want, explicit,
            f"the FastFoundationStereo bp2 checkpoint {PurePath(path).name} ({ckpt_key}) was built with {want!r}",
            f"set model.{name}: {_yaml(want)} (copy the whole bp2 model block from the FFS spec template or the "
            "skill's key_defaults)"))
    return problems


def _check_backbone_paths(model: Any) -> List[Problem]:
    if model.model_type != FFS:
        return []
    problems = []
    for name in BACKBONE_PATH_FIELDS:
        value = getattr(model.stereo_backbone, name)
        if value:
            key = f"model.stereo_backbone.{name}"
            problems.append(Problem(
                key, value, "is not used by FastFoundationStereo: its feature network is the distilled, pruned "
                "student; its weights come from train.pretrained_model_path (the bp2 checkpoint)",
                f'clear {key} (set it to ""), or use model_type: FoundationStereo'))
    return problems


def _mismatch(key: str, have: Any, want: Any, explicit: set, needs: str, fix: str) -> Problem:
    if key in explicit:
        return Problem(key, have, f"does not match: {needs}", fix)
    return Problem(key, missing_value(), f"not set (default {have!r}) but {needs}", fix)


def _normal(name: str, value: Any) -> Any:
    if name == "attention_layout" and value == "auto":
        return "heads_as_sequence"  # what 'auto' resolves to for FFS (stereo.models.ffs.model)
    if isinstance(value, tuple):
        return list(value)
    return value


def _value(spec: Any, dotted: str) -> Any:
    section, name = dotted.split(".")
    return getattr(getattr(spec, section), name)


def _yaml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)

