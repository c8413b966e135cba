"""Load any supported weight file into a built network (shared by the train, evaluate and inference actions).

`read_checkpoint` normalises file formats and wrapper prefixes; TAO-named FastFoundationStereo and
FoundationStereo state dicts are renamed to our (upstream NVlabs) names through the remap tables.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from stereo.errors import BadInputError


def load_weights(model: torch.nn.Module, path: str | os.PathLike, *, model_type: str,
                 what: str = "checkpoint") -> dict[str, Any]:
    """Load `path` into `model` strictly; returns the checkpoint's meta plus `format` and `sha256`."""
    from stereo.checkpoints import checkpoint_sha256, read_checkpoint
    from stereo.errors import CheckpointError

    path = Path(path).expanduser()
    if not path.is_file():
        raise BadInputError(f"{what}={str(path)!r} does not exist; fix the path in the spec.")
    try:
        ckpt = read_checkpoint(path)
    except CheckpointError as exc:
        raise BadInputError(f"{what}={str(path)!r} cannot be read: {exc}") from exc
    state = _to_our_names(dict(ckpt.state_dict), model_type)
    _load_strict(model, state, what, path)
    return {**ckpt.meta, "format": ckpt.format, "sha256": checkpoint_sha256(path.resolve())}


def _to_our_names(state: dict, model_type: str) -> dict:
    if model_type == "FastFoundationStereo":
        from stereo.checkpoints.remap_ffs import is_tao_naming, tao_to_upstream

        return tao_to_upstream(state) if is_tao_naming(state.keys()) else state
    if model_type == "FoundationStereo":
        from stereo.checkpoints.remap_fs import looks_like_tao_fs, remap_tao_fs_to_nvlabs

        return remap_tao_fs_to_nvlabs(state) if looks_like_tao_fs(state.keys()) else state
    return state


def _load_strict(model: torch.nn.Module, state: dict, what: str, path: Path) -> None:
    from stereo.checkpoints import load_state_dict_into
    from stereo.errors import CheckpointError

    # TAO's int8 lookup offsets ('dx') have no counterpart in our modules; FFS checkpoints also carry the
    # never-executed legacy modules of the research code, which our FFS does not register
    ignored = ("dx",) + tuple(sorted(model.ignored_keys())) if hasattr(model, "ignored_keys") else ("dx",)
    try:
        load_state_dict_into(model, state, ignore_unexpected=ignored, what=f"{what} {path}")
    except CheckpointError as exc:
        raise BadInputError(f"{exc} (the spec's `model` section must match the checkpoint; see its .json "
                            "sidecar 'config')") from exc

