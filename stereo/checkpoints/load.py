"""Put a state dict into a model, strictly, with an error that says what does not fit and why.

`torch.nn.Module.load_state_dict(strict=True)` lists every key in one unreadable paragraph and raises
on shapes only after the key check. Here all three problems (missing, unexpected, shape-mismatched) are
collected first and reported together, with a summary line, the first few keys of each, and a hint.
Keys known to be absent or unused (FFS `dx`, dead legacy modules) are passed as `ignore_missing` /
`ignore_unexpected`: exact keys or `fnmatch` patterns such as `context_zqr_convs.*`.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

import torch

from stereo.errors import CheckpointMismatchError

SHOWN_KEYS = 8
_FIX = ("check that model_type / encoder / variant (and the width overrides) match the checkpoint; "
        "TAO-named weights need the remap tables (stereo.checkpoints remap); keys that are known "
        "to be unused can be passed as ignore_missing / ignore_unexpected")


@dataclass(frozen=True)
class LoadReport:
    """What a successful load did. `ignored_*` are keys skipped because they matched an ignore pattern."""
    what: str
    loaded: int
    ignored_missing: tuple[str, ...]
    ignored_unexpected: tuple[str, ...]


def _matches(key: str, patterns: Iterable[str]) -> bool:
    return any(key == p or fnmatchcase(key, p) for p in patterns)


def _listing(title: str, items: list[str]) -> str:
    shown = "\n".join(f"    {item}" for item in items[:SHOWN_KEYS])
    more = f"\n    ... and {len(items) - SHOWN_KEYS} more" if len(items) > SHOWN_KEYS else ""
    return f"  {title} ({len(items)}):\n{shown}{more}"


def _prefix_hint(missing: list[str], unexpected: list[str]) -> str:
    """Spot the common wrapper-prefix mistake: every unexpected key is a missing key plus/minus a prefix."""
    missing_set, unexpected_set = set(missing), set(unexpected)
    for prefix in ("model.", "module.", "_orig_mod."):
        if unexpected and all(k.startswith(prefix) and k[len(prefix):] in missing_set for k in unexpected):
            return f"checkpoint keys carry an extra {prefix!r} prefix; strip it (read_checkpoint does)"
        if missing and all(k.startswith(prefix) and k[len(prefix):] in unexpected_set for k in missing):
            return f"model keys carry a {prefix!r} prefix the checkpoint lacks; load into the inner module"
    return ""


def load_state_dict_into(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], *,
                         ignore_missing: Iterable[str] = (), ignore_unexpected: Iterable[str] = (),
                         what: str) -> LoadReport:
    """Strict load of `state_dict` into `model`; `what` names the checkpoint in messages."""
    ignore_missing, ignore_unexpected = tuple(ignore_missing), tuple(ignore_unexpected)
    expected = model.state_dict()
    missing_all = [k for k in expected if k not in state_dict]
    unexpected_all = [k for k in state_dict if k not in expected]
    missing = [k for k in missing_all if not _matches(k, ignore_missing)]
    unexpected = [k for k in unexpected_all if not _matches(k, ignore_unexpected)]
    mismatched = []
    for key, tensor in state_dict.items():
        if key in expected:
            if not isinstance(tensor, torch.Tensor):
                mismatched.append(f"{key}: checkpoint has {type(tensor).__name__}, model "
                                  f"{list(expected[key].shape)}")
            elif tensor.shape != expected[key].shape:
                mismatched.append(f"{key}: checkpoint {list(tensor.shape)}, "
                                  f"model {list(expected[key].shape)}")
    if missing or unexpected or mismatched:
        summary = (f"{what} does not fit {type(model).__name__}: {len(missing)} missing, "
                   f"{len(unexpected)} unexpected, {len(mismatched)} shape-mismatched keys")
        parts = [summary]
        for title, items in (("missing in checkpoint", missing), ("unexpected in checkpoint", unexpected),
                             ("shape mismatch", mismatched)):
            if items:
                parts.append(_listing(title, items))
        hint = _prefix_hint(missing, unexpected)
        parts.append(f"  fix: {hint + '; otherwise ' if hint else ''}{_FIX}")
        raise CheckpointMismatchError("\n".join(parts))
    to_load = {k: v for k, v in state_dict.items() if k in expected}
    result = model.load_state_dict(to_load, strict=False)
    # torch agrees with our key check unless the model has load hooks; trust but verify
    left = [k for k in result.missing_keys if k not in missing_all] + list(result.unexpected_keys)
    if left:
        raise CheckpointMismatchError(f"{what}: {type(model).__name__}.load_state_dict reported keys the "
                                      f"check did not expect: {left[:SHOWN_KEYS]}; a load hook renames keys")
    return LoadReport(what=what, loaded=len(to_load),
                      ignored_missing=tuple(missing_all), ignored_unexpected=tuple(unexpected_all))
