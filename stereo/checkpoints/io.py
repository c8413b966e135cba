"""`read_checkpoint`: one reader for every weight file a depth_net user may hand us.

| format            | file                                                                           |
|-------------------|--------------------------------------------------------------------------------|
| `stereo`          | our `<name>.safetensors` + `<name>.json` sidecar (meta = the sidecar)          |
| `safetensors`     | any other `.safetensors` (meta = its header metadata)                          |
| `lightning`       | `{'state_dict': {'model.…': …}, 'epoch', …}` (TAO depth_net `.pth`/`.ckpt`/`.tlt`) |
| `nvlabs`          | `{'model': state_dict, 'global_step', 'epoch'}` (NVlabs FoundationStereo)      |
| `state_dict`      | a plain dict of tensors                                                        |
| `research_pickle` | a whole pickled `nn.Module` (FFS `*_serialize.pth`), alone or under `'model'`  |

Torch files go through `torch.load(weights_only=True)` first; only when that refuses (the file pickles
module objects) does the restricted unpickler of `safe_pickle.py` run. `weights_only=False` is never used.
Key prefixes are normalised here (Lightning `model.`, DDP `module.`); renaming between naming families
(TAO ↔ NVlabs) is the remap tables' job.
"""
from __future__ import annotations

import os
import pickle
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from stereo.errors import CheckpointError, CheckpointFormatError, CheckpointNotFoundError
from stereo.checkpoints.module_tree import (
    is_pickled_module,
    pickled_class_name,
    plain_value,
    state_dict_of_pickled_module,
)
from stereo.checkpoints.safe_pickle import load_pickled_checkpoint
from stereo.checkpoints.sidecar_format import (
    checkpoint_sha256,
    is_sidecar,
    read_sidecar,
)
from stereo.checkpoints.tao_pth import verify_pth

FORMATS = ("stereo", "safetensors", "lightning", "nvlabs", "state_dict", "research_pickle")
# Lightning/TAO bookkeeping that is never model weights; kept out of `meta`
_BULKY_KEYS = {"state_dict", "model", "stereo_automl", "optimizer", "optimizer_states", "lr_schedulers",
               "callbacks", "loops",
               "scaler", "ema", "model_ema"}


@dataclass(frozen=True)
class Checkpoint:
    """Weights as a flat state dict (CPU tensors), the detected `format` (one of FORMATS) and `meta`
    (epoch, step, pickled `args`, sidecar contents, `stripped_prefixes`, `loader`, ...)."""
    state_dict: dict[str, torch.Tensor]
    format: str
    meta: dict[str, Any] = field(default_factory=dict)


def read_checkpoint(path: str | os.PathLike, *, verify: bool = True) -> Checkpoint:
    """Read any supported weight file; `verify` checks our sidecar's SHA-256 against the weights."""
    path = Path(path)
    if not path.exists():
        raise CheckpointNotFoundError(f"{path}: checkpoint not found; check the path (model.pretrained / "
                                      "train.resume)")
    if path.is_dir():
        raise CheckpointFormatError(f"{path}: is a directory; pass the .pth/.ckpt/.safetensors file in it")
    kind = _sniff(path)
    if kind == "safetensors":
        return _read_safetensors(path, verify=verify)
    if kind == "tar":
        raise CheckpointFormatError(f"{path}: legacy tar checkpoint (torch < 0.4), not supported; load it "
                                    "with an old torch in a trusted environment and re-save the state dict")
    if kind is None:
        hint = (" An encrypted TAO .tlt (TAO < 5) must be decrypted with its key first."
                if path.suffix == ".tlt" else "")
        raise CheckpointFormatError(f"{path}: not a checkpoint: neither safetensors, a torch zip archive nor "
                                    f"a torch pickle.{hint}")
    obj, loader = _load_torch(path, kind)
    ours = verify_pth(obj, path, check=verify)  # our TAO-style .pth carries its tensors hash and model config
    state_dict, fmt, meta = _interpret(obj, path)
    meta["loader"] = loader
    if ours is not None:
        meta.update({"config": ours.get("config", {}), "meta": ours.get("meta", {}),
                     "verified": "tensors_sha256" if verify else "no (verify=False)"})
    return Checkpoint(state_dict=state_dict, format=fmt, meta=meta)


def _sniff(path: Path) -> str | None:
    """'safetensors', 'zip', 'pickle', 'tar' or None, from the first bytes (suffixes lie: .tlt, .ckpt)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    if len(head) >= 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if head[8:9] == b"{" and 8 + header_len <= size:
            return "safetensors"
    if head[257:262] == b"ustar":
        return "tar"
    return None


def _read_safetensors(path: Path, *, verify: bool) -> Checkpoint:
    from safetensors import SafetensorError, safe_open

    # a link (dn_model_latest, dn_model_best) is resolved once: the tensors, the hash and the sidecar all
    # come from its target, even if the link is moved while we read
    if path.is_symlink():
        path = path.resolve()
    sidecar = path.with_suffix(".json")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            header_meta = dict(handle.metadata() or {})
            state_dict = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError) as exc:
        raise CheckpointFormatError(f"{path}: corrupt or truncated safetensors file ({exc}); re-download or "
                                    "re-save it") from None
    # our writer names the sidecar in the header: then it must be there and intact, and a .json beside the
    # weights that does not even parse is refused too; only someone else's valid JSON is left alone
    ours = header_meta.get("sidecar") == sidecar.name
    if not ours and (not sidecar.is_file() or (not is_sidecar(sidecar) and _parses_as_json(sidecar))):
        return Checkpoint(state_dict=state_dict, format="safetensors", meta=header_meta)
    meta = read_sidecar(sidecar)
    if meta["weights"] != path.name:
        raise CheckpointFormatError(f"{sidecar}: describes {meta['weights']!r}, not {path.name!r}; a renamed "
                                    "checkpoint must keep '<name>.safetensors' and '<name>.json' together")
    if verify:
        digest = checkpoint_sha256(path)
        if digest != meta["sha256"]:
            raise CheckpointFormatError(
                f"{path}: sha256 {digest[:12]}… differs from {meta['sha256'][:12]}… in {sidecar.name}; the "
                "weights changed after saving or the write was interrupted; re-save the checkpoint (or "
                "read_checkpoint(..., verify=False) if you edited it on purpose)")
    return Checkpoint(state_dict=state_dict, format="stereo", meta=meta)


def _parses_as_json(path: Path) -> bool:
    import json

    try:
        json.loads(path.read_text(encoding="utf-8"))
        return True
    except (OSError, ValueError, UnicodeDecodeError):
        return False


def _load_torch(path: Path, kind: str) -> tuple[Any, str]:
    try:
        return (torch.load(path, map_location="cpu", weights_only=True, mmap=kind == "zip"),
                "torch.load(weights_only=True)")
    except pickle.UnpicklingError:
        # weights_only refuses pickled modules (and damaged pickles): the restricted unpickler either
        # reads them without executing anything or raises UnsafeCheckpointError / CheckpointFormatError
        return load_pickled_checkpoint(path), "restricted_unpickler"
    except CheckpointError:
        raise
    # torch's zip reader raises RuntimeError on a truncated archive, legacy files EOFError, ...
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointFormatError(f"{path}: torch cannot read it ({first}); the file is corrupt or "
                                    "truncated, re-download or re-save it") from None


def _interpret(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], str, dict[str, Any]]:
    source = str(path)
    if is_pickled_module(obj):
        return _from_module(obj, source, {})
    if not isinstance(obj, Mapping):
        raise CheckpointFormatError(f"{path}: holds a {type(obj).__name__}; expected a state dict, a dict "
                                    "with 'state_dict'/'model', or a pickled nn.Module")
    meta = {str(k): plain_value(v) for k, v in obj.items() if k not in _BULKY_KEYS
            and not isinstance(v, torch.Tensor) and not _is_tensor_dict(v)}
    if isinstance(obj.get("state_dict"), Mapping):
        state_dict, stripped = _strip_prefixes(_tensors(obj["state_dict"], source, "state_dict"),
                                               ("model.", "module."))
        return state_dict, "lightning", {**meta, "stripped_prefixes": stripped}
    if "model" in obj:
        inner = obj["model"]
        if is_pickled_module(inner):
            return _from_module(inner, source, meta)
        if isinstance(inner, Mapping):
            state_dict, stripped = _strip_prefixes(_tensors(inner, source, "model"), ("module.",))
            return state_dict, "nvlabs", {**meta, "stripped_prefixes": stripped}
    if obj and _is_tensor_dict(obj):
        state_dict, stripped = _strip_prefixes(_tensors(obj, source, None), ("module.",))
        return state_dict, "state_dict", {"stripped_prefixes": stripped}
    keys = ", ".join(repr(k) for k in list(obj)[:12])
    raise CheckpointFormatError(f"{path}: no state dict inside (top-level keys: {keys}); expected "
                                "'state_dict' (Lightning), 'model' (NVlabs) or a dict of tensors")


def _from_module(module: Any, source: str, meta: dict) -> tuple[dict, str, dict]:
    state_dict, stripped = _strip_prefixes(dict(state_dict_of_pickled_module(module, source=source)),
                                           ("module.",))
    meta = {**meta, "class": pickled_class_name(module), "stripped_prefixes": stripped}
    if "args" in module.pickled_attrs:  # FFS keeps its run config (vit_size, normalize, ...) as `model.args`
        meta["args"] = plain_value(module.pickled_attrs["args"])
    return state_dict, "research_pickle", meta


def _is_tensor_dict(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(isinstance(v, torch.Tensor)
                                                              for v in value.values())


def _tensors(mapping: Mapping, source: str, where: str | None) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in mapping.items():
        if isinstance(value, torch.Tensor):
            out[str(key)] = value.detach()
        elif not str(key).endswith("_extra_state"):  # module extra state is not a tensor; skip it
            place = f"['{where}']" if where else ""
            raise CheckpointFormatError(f"{source}: {place}[{key!r}] is a {type(value).__name__}, not a "
                                        "tensor; the state dict is damaged or not a model's")
    return out


def _strip_prefixes(state_dict: dict[str, torch.Tensor],
                    prefixes: tuple[str, ...]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Drop each prefix in turn when *every* key carries it (Lightning `model.`, then DDP `module.`)."""
    stripped = []
    for prefix in prefixes:
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            state_dict = {k[len(prefix):]: v for k, v in state_dict.items()}
            stripped.append(prefix)
    return state_dict, stripped
