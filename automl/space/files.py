"""``search_spaces/<model>.yaml``: what a sweep searches for one model, as data.

Format (every key checked; errors name the file and the YAML key)::

    description: FFS bp2 fine-tuning                 # optional
    model: fast-foundation-stereo                    # optional: the skill it was written for
    metric: val/epe                                  # the objective, read from the evaluate pass
    mode: min                                        # min | max, always explicit (no guessing from names)
    parameters:                                      # exactly the searched parameters, in order
      train.optim.lr: {distribution: log_uniform, low: 1.0e-6, high: 1.0e-3}
      train.optim.lr_decay: {distribution: uniform, low: 0.0, high: 1.0}   # schema "> 0.0": (0, 1]
      train.optim.weight_decay: {}                   # {} or null: the schema's own range

Entry keys: ``distribution`` (uniform | log_uniform | power_of | categorical | bool; default from the
schema type and the scale-parameter rule), ``low``, ``high``, ``base``, ``choices``, ``weights``,
``depends_on``. Ranges must lie inside the schema's; a non-empty entry also opts in a field the schema
does not flag ``automl_enabled``. Architecture fields (``model.*`` widths, volume_dim, cv_group,
hidden_dims ...) are refused: a sweep never changes the architecture of a pretrained checkpoint.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import yaml

from automl.space.build import SearchSpace, SearchSpaceError, build_search_space, did_you_mean

SEARCH_SPACES_ROOT = Path(__file__).resolve().parents[2] / "search_spaces"
TOP_KEYS = ("description", "model", "metric", "mode", "parameters")
MODES = ("min", "max")
# PyYAML follows YAML 1.1, which reads 1e-6 (no dot) as a string; accept it as the number it obviously is
_FLOAT_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


@dataclass(frozen=True)
class SearchSpaceFile:
    """A parsed search-space file: the objective plus the validated :class:`SearchSpace`."""

    path: Optional[Path]
    metric: str
    mode: str
    space: SearchSpace
    description: str = ""
    model: Optional[str] = None

    def to_dict(self) -> dict:
        return {"path": str(self.path) if self.path else None, "model": self.model, "metric": self.metric,
                "mode": self.mode, "description": self.description, **self.space.to_dict()}


def parse_search_space(data: Any, schema: Mapping[str, Any], *, origin: str = "<search space>",
                       fixed: Optional[Mapping[str, Any]] = None,
                       known: Optional[Mapping[str, Any]] = None) -> SearchSpaceFile:
    """Validate a loaded search-space document against `schema` (a ``schemas/train.schema.json`` dict).

    `fixed`/`known`: see :func:`automl.space.build_search_space` (the user's overrides, the base spec).
    """
    if not isinstance(data, Mapping):
        raise SearchSpaceError(f"{origin}: expected a YAML mapping with keys {', '.join(TOP_KEYS)}, got "
                               f"{type(data).__name__}")
    for key in data:
        if key not in TOP_KEYS:
            raise SearchSpaceError(f"{origin}: unknown key '{key}'{did_you_mean(str(key), TOP_KEYS)}; known: "
                                   f"{', '.join(TOP_KEYS)}")
    metric = data.get("metric")
    if not isinstance(metric, str) or not metric.strip():
        raise SearchSpaceError(f"{origin}: key 'metric': expected the objective's name (e.g. val/epe), got "
                               f"{metric!r}")
    mode = data.get("mode")
    if mode not in MODES:
        raise SearchSpaceError(f"{origin}: key 'mode': {mode!r} is not one of {', '.join(MODES)}; say whether "
                               f"{metric} is minimised or maximised")
    params = data.get("parameters")
    if not isinstance(params, Mapping) or not params:
        raise SearchSpaceError(f"{origin}: key 'parameters': expected a non-empty mapping of dotted spec keys "
                               f"(e.g. train.optim.lr: {{distribution: log_uniform, low: 1.0e-6, high: 1.0e-3}}), "
                               f"got {params!r}")
    overrides = {}
    for name, entry in params.items():
        if entry is None:
            entry = {}
        if not isinstance(entry, Mapping):
            raise SearchSpaceError(f"{origin}: key 'parameters.{name}': expected a mapping such as "
                                   f"{{low: ..., high: ...}} or {{}} for the schema range, got {entry!r}")
        entry = {k: _number(v) if k in ("low", "high") else v for k, v in entry.items()}
        if entry:
            overrides[str(name)] = entry
    space = build_search_space(schema, parameters=[str(n) for n in params], overrides=overrides, origin=origin,
                               fixed=fixed, known=known)
    model = data.get("model")
    return SearchSpaceFile(path=None, metric=metric.strip(), mode=mode, space=space,
                           description=str(data.get("description") or ""),
                           model=None if model is None else str(model))


def load_search_space(path: Union[str, os.PathLike], schema: Mapping[str, Any], *,
                      fixed: Optional[Mapping[str, Any]] = None,
                      known: Optional[Mapping[str, Any]] = None) -> SearchSpaceFile:
    """Read and validate a search-space YAML file (`fixed`/`known` as in :func:`parse_search_space`)."""
    path = Path(path)
    if not path.is_file():
        raise SearchSpaceError(f"{path}: search-space file not found; available: "
                               f"{', '.join(list_search_spaces()) or '(none)'}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SearchSpaceError(f"{path}: not valid YAML ({exc})") from None
    parsed = parse_search_space(data, schema, origin=str(path), fixed=fixed, known=known)
    return SearchSpaceFile(path=path, metric=parsed.metric, mode=parsed.mode, space=parsed.space,
                           description=parsed.description, model=parsed.model)


def list_search_spaces(root: Union[str, os.PathLike, None] = None) -> list:
    return sorted(p.stem for p in Path(root or SEARCH_SPACES_ROOT).glob("*.yaml"))


def search_space_path(name: str, root: Union[str, os.PathLike, None] = None) -> Path:
    """``search_spaces/<name>.yaml``; `name` may use ``-`` or ``_`` (skill names use dashes)."""
    root = Path(root or SEARCH_SPACES_ROOT)
    stem = name.strip().lower().replace("-", "_")
    path = root / f"{stem}.yaml"
    if not path.is_file():
        names = list_search_spaces(root)
        raise SearchSpaceError(f"no search space {stem!r} in {root}{did_you_mean(stem, names)}; available: "
                               f"{', '.join(names) or '(none)'}")
    return path


def default_search_space_name(skill: Any) -> Optional[str]:
    """Which ``search_spaces/*.yaml`` a skill uses: its ``search_space`` field, its name, or its model_type.

    ``FastFoundationStereo`` -> ``fast_foundation_stereo`` lets TAO's own skills (named
    ``tao-train-fast-foundation-stereo``) find our file too. None when nothing matches.
    """
    candidates = [skill.extra.get("search_space"), skill.name]
    if skill.model_type:
        candidates.append(re.sub(r"(?<!^)(?=[A-Z])", "_", str(skill.model_type)))
    names = set(list_search_spaces())
    for candidate in candidates:
        stem = str(candidate or "").strip().lower().replace("-", "_")
        if stem in names:
            return stem
    return None


def _number(value: Any) -> Any:
    if isinstance(value, str) and _FLOAT_TEXT.match(value.strip()):
        return float(value)
    return value
