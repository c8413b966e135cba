"""Where an action writes: ``<results_dir>/<action>/`` (TAO's layout) and its resolved ``experiment.yaml``."""
from __future__ import annotations

import enum
import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

import yaml

from stereo.atomic_io import atomic_write_text

EXPERIMENT_FILE = "experiment.yaml"
_ACTION_RE = re.compile(r"^[A-Za-z][\w-]*$")


def action_dir(results_dir: str | os.PathLike | None, action: str,
               override: str | os.PathLike | None = None) -> Path:
    """``override`` (the action's own ``<action>.results_dir``) if set, else ``<results_dir>/<action>``.

    Returned absolute, so it stays valid when a worker changes directory. Not created here.
    """
    if not isinstance(action, str) or not _ACTION_RE.match(action):
        raise ValueError(f"action name {action!r} must be a plain name such as 'train' or 'evaluate'")
    if override:
        return Path(override).expanduser().resolve()
    if not results_dir:
        raise ValueError(f"results_dir is empty for action {action!r}; set results_dir (or "
                         f"{action}.results_dir) in the spec")
    return Path(results_dir).expanduser().resolve() / action


def _plain(value: Any, key: str) -> Any:
    """Spec values as YAML-safe builtins (tuples → lists, paths → str, enums → value)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return _plain(value.value, key)
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise TypeError(f"spec value at {key!r} has type {type(value).__name__}, which cannot be written to "
                    "experiment.yaml; convert the spec to plain dicts/lists/scalars first")


def save_experiment_yaml(directory: str | os.PathLike, spec: Mapping[str, Any]) -> Path:
    """Write the resolved spec as ``<directory>/experiment.yaml`` atomically (key order preserved); secret
    fields are written redacted (stereo.config.secrets)."""
    from stereo.config.secrets import redact

    text = yaml.safe_dump(redact(_plain(spec, "")), sort_keys=False, default_flow_style=False, allow_unicode=True)
    return atomic_write_text(Path(directory) / EXPERIMENT_FILE, text)
