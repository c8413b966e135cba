"""Our checkpoint format: `<name>.safetensors` (weights only) + `<name>.json` sidecar (what they are).

The sidecar holds the format version, the model config dict the weights belong to, the SHA-256 of the
safetensors file, creation time, torch version and free-form `meta` (MLflow run id, parent checkpoint
hash, ...). Both files are written atomically (stereo/atomic_io.py), the sidecar first: under a new name a
crash between the two leaves a sidecar without weights (nothing loads), never weights without their sidecar
(which would load unverified); over an existing pair it leaves a sidecar whose hash no longer matches, which
`read_checkpoint` reports instead of loading.

A symlinked `<link>.safetensors` (the training layout's `dn_model_latest`, `dn_model_best`) is followed and
the sidecar read is the one beside its *target*: only the weights link decides what is loaded, so the pair
can never be mixed from two checkpoints while the links move (see :func:`resolve_pair`).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from stereo.atomic_io import atomic_path, atomic_write_json
from stereo.errors import CheckpointError, CheckpointFormatError, CheckpointNotFoundError

SIDECAR_FORMAT = "stereo-automl-checkpoint"
SIDECAR_FORMAT_VERSION = 1
_HASH_CHUNK = 1 << 20


def checkpoint_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (checkpoints can be GBs)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"{path}: file not found; cannot hash it")
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(weights, sidecar) for 'run/best', 'run/best.safetensors' or 'run/best.json'."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    elif path.suffix and path.suffix[1:].isalpha():  # 'best.pth' would silently become 'best.pth.safetensors'
        raise CheckpointError(f"{path}: our checkpoints are '<name>.safetensors' + '<name>.json'; got suffix "
                              f"{path.suffix!r}, pass '{path.with_suffix('.safetensors')}' instead")
    return Path(f"{path}.safetensors"), Path(f"{path}.json")


def resolve_pair(path: str | os.PathLike) -> tuple[Path, Path]:
    """(weights, sidecar) that are actually read for `path`: like :func:`checkpoint_paths`, but a symlinked
    weights file is resolved and the sidecar is the one beside its target (a `.json` path is kept as given)."""
    given = Path(path)
    weights, sidecar = checkpoint_paths(given)
    if given.suffix != ".json" and weights.is_symlink():
        weights = weights.resolve()
        sidecar = weights.with_suffix(".json")
    return weights, sidecar


def _json_ready(value: Any, what: str) -> Any:
    if hasattr(value, "_content") and hasattr(value, "_metadata"):  # OmegaConf container
        from omegaconf import OmegaConf
        value = OmegaConf.to_container(value, resolve=True)
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"save_checkpoint: {what} is not JSON-serialisable ({exc}); pass plain dicts, "
                              "lists, strings and finite numbers (dataclasses.asdict / "
                              "OmegaConf.to_container first)") from None
    return value


def _safetensors_ready(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors, no two sharing storage (safetensors refuses shared memory)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, tensor in state_dict.items():
        if not isinstance(key, str) or not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"save_checkpoint: entry {key!r} is {type(tensor).__name__}; a state dict "
                                  "maps str keys to tensors")
        tensor = tensor.detach().cpu().contiguous()
        ptr = tensor.untyped_storage().data_ptr()
        if ptr in seen and tensor.numel():  # aliases (e.g. FS cnet downsample.1 == norm3) get own copies
            tensor = tensor.clone()
        seen.add(tensor.untyped_storage().data_ptr())
        out[key] = tensor
    return out


def save_checkpoint(path: str | os.PathLike, state_dict: Mapping[str, torch.Tensor], *,
                    config: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> Path:
    """Write `<name>.safetensors` and its `<name>.json` sidecar; returns the safetensors path.

    `config` is the model config the weights belong to (e.g. `dataclasses.asdict(model_cfg)`); `meta`
    is free-form provenance (mlflow run id, parent checkpoint sha256, epoch, metrics).
    """
    from safetensors.torch import save_file

    weights, sidecar = checkpoint_paths(path)
    config = _json_ready(dict(config), "config")
    meta = _json_ready(dict(meta or {}), "meta")
    tensors = _safetensors_ready(state_dict)
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", "sidecar": sidecar.name})
        digest = checkpoint_sha256(tmp)
        # the sidecar is published before the weights are renamed into place (see the module docstring)
        atomic_write_json(sidecar, {
            "format": SIDECAR_FORMAT,
            "format_version": SIDECAR_FORMAT_VERSION,
            "weights": weights.name,
            "sha256": digest,
            "num_tensors": len(tensors),
            "num_elements": sum(t.numel() for t in tensors.values()),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "torch_version": torch.__version__,
            "config": config,
            "meta": meta,
        })
    return weights



def check_format_version(where: Any, version: Any, newest: int) -> None:
    """A file format's ``format_version`` must be an int this code reads (<= `newest`)."""
    if not isinstance(version, int) or version > newest:
        raise CheckpointFormatError(f"{where}: format_version {version!r} is newer than this code reads "
                                    f"({newest}); upgrade stereo-automl")

def read_sidecar(path: str | os.PathLike) -> dict[str, Any]:
    """The sidecar dict of one of our checkpoints (`path` = the .safetensors, the .json or the stem; a
    symlinked .safetensors is followed, see :func:`resolve_pair`)."""
    _, sidecar = resolve_pair(path)
    if not sidecar.is_file():
        raise CheckpointNotFoundError(f"{sidecar}: sidecar not found; our checkpoints are written by "
                                      "stereo.checkpoints.save_checkpoint as .safetensors + .json")
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointFormatError(f"{sidecar}: not valid JSON ({exc}); the sidecar is corrupt, re-save "
                                    "the checkpoint") from None
    found = data.get("format") if isinstance(data, dict) else data
    if found != SIDECAR_FORMAT:
        raise CheckpointFormatError(f"{sidecar}: 'format' is {found!r}, expected {SIDECAR_FORMAT!r}; not a "
                                    "stereo-automl checkpoint sidecar")
    check_format_version(sidecar, data.get("format_version"), SIDECAR_FORMAT_VERSION)
    for key in ("sha256", "config", "weights"):
        if key not in data:
            raise CheckpointFormatError(f"{sidecar}: missing key {key!r}; the sidecar is damaged, re-save")
    return data


def is_sidecar(path: Path) -> bool:
    """True when `path` is a JSON file written by `save_checkpoint` (foreign JSON next to weights is not)."""
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("format") == SIDECAR_FORMAT
    except (OSError, ValueError, UnicodeDecodeError, AttributeError):
        return False
