"""TAO-style `.pth` weights: what `<results_dir>/train/dn_model_latest.pth` and `dn_model_best.pth` hold.

TAO's skill chains actions through these names, and TAO users' own scripts read them with
`torch.load(path, weights_only=True)`. So the file is a Lightning-shaped dict of tensors and plain
values only (no pickled classes, nothing that `weights_only=True` refuses):

    {"state_dict": {"model.<TAO key>": tensor, ...},      # TAO 7 names (FFS, FS), `model.` prefix as TAO
     "epoch": 3, "global_step": 120,
     "stereo_automl": {"format": "stereo-automl-pth", "format_version": 1,
                       "naming": "tao" | "ours", "config": {...model config...}, "meta": {...},
                       "tensors_sha256": "<hex>"}}

Integrity: `tensors_sha256` hashes every entry of `state_dict` (name, dtype, shape, bytes) in key order.
FFS files also hold the never-executed legacy tensors (zeros) that TAO's strict loader expects
(stereo.models.ffs.dead_keys.legacy_tensors); TAO's `dx` buffer is left out (TAO's loader allows it to be missing).
The hash travels inside the file, so a `.pth` copied on its own is still checked: `read_checkpoint` recomputes
it and refuses a file whose tensors changed (:func:`verify_pth`). The file is written atomically
(temp + fsync + rename); the JSON sidecar of the same stem (written first by the training layout) holds
the same model config for tools that should not unpickle anything.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from stereo.errors import CheckpointError, CheckpointFormatError
from stereo.checkpoints.sidecar_format import check_format_version

PTH_FORMAT = "stereo-automl-pth"
PTH_FORMAT_VERSION = 1
PTH_SUFFIX = ".pth"
INFO_KEY = "stereo_automl"
MODEL_PREFIX = "model."  # TAO's LightningModule keeps the network as `self.model`


def tensors_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over (name, dtype, shape, raw bytes) of every tensor, in key order."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key]
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointFormatError(f"state_dict[{key!r}] is a {type(tensor).__name__}, not a tensor")
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{key}\0{flat.dtype}\0{tuple(tensor.shape)}\0".encode())
        if flat.numel():
            digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def to_tao_names(state_dict: Mapping[str, torch.Tensor], model_type: str) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict renamed to TAO 7's keys, 'tao') for FFS/FS; unchanged and 'ours' for other models."""
    if model_type == "FastFoundationStereo":
        from stereo.checkpoints.remap_ffs import upstream_to_tao

        return upstream_to_tao(state_dict), "tao"
    if model_type == "FoundationStereo":
        from stereo.checkpoints.remap_fs import remap_nvlabs_fs_to_tao

        return remap_nvlabs_fs_to_tao(state_dict), "tao"
    return dict(state_dict), "ours"


def build_pth(state_dict: Mapping[str, torch.Tensor], *, config: Mapping[str, Any],
              meta: Mapping[str, Any] | None = None,
              legacy: Mapping[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """The dict written to a `.pth` (see the module docstring) from our network's state dict (plus the
    `legacy` tensors of stereo.models.ffs.dead_keys.legacy_tensors)."""
    renamed, naming = to_tao_names({**dict(legacy or {}), **dict(state_dict)}, str(config.get("model_type", "")))
    tensors = {MODEL_PREFIX + k: v.detach().cpu().contiguous() for k, v in renamed.items()}
    meta = dict(meta or {})
    return {"state_dict": tensors, "epoch": int(meta.get("epoch", 0)), "global_step": int(meta.get("step", 0)),
            INFO_KEY: {"format": PTH_FORMAT, "format_version": PTH_FORMAT_VERSION, "naming": naming,
                       "config": _plain(dict(config)), "meta": _plain(meta),
                       "tensors_sha256": tensors_sha256(tensors)}}


def save_pth(path: str | os.PathLike, state_dict: Mapping[str, torch.Tensor], *, config: Mapping[str, Any],
             meta: Mapping[str, Any] | None = None, legacy: Mapping[str, torch.Tensor] | None = None) -> Path:
    """Write `path` (a `.pth`) atomically; returns it."""
    from stereo.atomic_io import atomic_path

    path = Path(path)
    if path.suffix != PTH_SUFFIX:
        raise CheckpointError(f"{path}: TAO-style weights are written as '<name>{PTH_SUFFIX}'")
    obj = build_pth(state_dict, config=config, meta=meta, legacy=legacy)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def verify_pth(obj: Any, path: str | os.PathLike, *, check: bool = True) -> dict[str, Any] | None:
    """Our `stereo_automl` block of a loaded `.pth` after checking its tensors' hash (unless `check` is
    false); None for any other file (a TAO or Lightning checkpoint written elsewhere carries no hash)."""
    if not isinstance(obj, Mapping) or INFO_KEY not in obj:
        return None
    info = obj[INFO_KEY]
    if not isinstance(info, Mapping) or info.get("format") != PTH_FORMAT:
        raise CheckpointFormatError(f"{path}: its {INFO_KEY!r} entry is not a {PTH_FORMAT} block; the file is "
                                    "damaged, re-save it")
    check_format_version(path, info.get("format_version"), PTH_FORMAT_VERSION)
    state = obj.get("state_dict")
    if not isinstance(state, Mapping):
        raise CheckpointFormatError(f"{path}: no 'state_dict'; the file is damaged, re-save it")
    digest = tensors_sha256(state) if check else info.get("tensors_sha256")
    if digest != info.get("tensors_sha256"):
        raise CheckpointFormatError(
            f"{path}: tensors hash {digest[:12]}… differs from {str(info.get('tensors_sha256'))[:12]}… recorded "
            "in the file; the weights changed after saving or the copy is damaged; re-copy or re-save it")
    return dict(info)


def _plain(value: Any) -> Any:
    """JSON-like builtins only, so the file loads with weights_only=True (tuples become lists)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return str(value)
