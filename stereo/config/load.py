"""Load a spec: YAML (or a dict) + `key=value` overrides -> typed dataclass, with every problem reported.

Pipeline: read YAML with key lines -> apply overrides to the raw data (so they get the same checks) ->
resolve `${...}` interpolations (OmegaConf's only job here, stereo.config.interpolation) -> fill a
non-train action's `model` block from its checkpoint's sidecar -> walk the raw data against the
dataclasses (unknown keys, types, placeholders; stereo.config.coerce) -> build the dataclasses -> field
checks -> cross-field checks. Errors raise one SpecError; warnings come back with the spec.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Union

import yaml

from stereo.atomic_io import atomic_write_text
from stereo.config.coerce import build, check_raw
from stereo.config.errors import Problem, SpecError, missing_value
from stereo.config.interpolation import resolve_interpolations
from stereo.config.model_source import fill_model_block
from stereo.config.source_lines import line_of, parse_key, read_yaml_with_lines, render_key
from stereo.config.spec import ExperimentSpec
from stereo.config.validate import check_cross_fields, check_fields

log = logging.getLogger(__name__)
OVERRIDE_SOURCE = "command line"
Source = Union[str, Path, Mapping[str, Any]]


@dataclass
class ResolvedSpec:
    """A loaded spec plus the warnings found while loading it."""
    spec: Any
    warnings: List[Problem] = field(default_factory=list)
    file: Optional[str] = None


def load_spec(source: Source, overrides: Sequence[str] = (), *, spec_type: type = ExperimentSpec,
              action: Optional[str] = None) -> Any:
    """Typed spec from a YAML path or a dict plus `a.b=c` overrides; raises SpecError listing every problem.

    `action` (e.g. "train") also checks that the inputs that action needs are set. Warnings are logged.
    """
    resolved = resolve_spec(source, overrides, spec_type=spec_type, action=action)
    for warning in resolved.warnings:
        log.warning("%s", warning.render())
    return resolved.spec


def resolve_spec(source: Source, overrides: Sequence[str] = (), *, spec_type: type = ExperimentSpec,
                 action: Optional[str] = None,
                 checks: Optional[Callable[[Any], List[Problem]]] = None) -> ResolvedSpec:
    """Like load_spec, but returns the warnings instead of logging them (the CLI prints them).

    `checks(spec)`: more problems (the CLI passes the action's disk pre-flight, stereo.actions.preflight),
    run only when the spec itself has no error, and located like the others (file:line of the key)."""
    if isinstance(source, Mapping):
        file, raw, lines = None, copy.deepcopy(dict(source)), {}
    else:
        file = str(source)
        raw, lines = read_yaml_with_lines(source)
    problems: List[Problem] = []
    overridden: Set[str] = set()
    for text in overrides:
        problems += _apply_override(raw, text, overridden)
    raw, unresolved = resolve_interpolations(raw, spec_type)
    problems += unresolved
    filled = fill_model_block(raw, action) if spec_type is ExperimentSpec else None
    checked = check_raw(raw, spec_type)
    problems += checked.problems + (filled.problems if filled else [])
    if filled:  # taken from the checkpoint/ONNX sidecar, not written by the user
        checked.explicit -= filled.keys
    spec = build(spec_type, checked.data)
    problems += check_fields(spec)
    if isinstance(spec, ExperimentSpec):
        problems += check_cross_fields(spec, explicit=checked.explicit, action=action)
    if checks is not None and not any(p.is_error for p in problems):
        problems += checks(spec)
    problems = locate_problems(problems, file, lines, overridden)
    if any(p.is_error for p in problems):
        raise SpecError(problems)
    return ResolvedSpec(spec, problems, file)


def locate_problems(problems: List[Problem], file: Optional[str], lines: Dict[str, int],
                    overridden: Set[str]) -> List[Problem]:
    """Each problem named where its key came from: the command line for an overridden key (or a section an
    override created), else `file`:line (`lines`: read_yaml_with_lines)."""
    out = []
    for p in problems:
        from_override = any(p.key == k or p.key.startswith((k + ".", k + "[")) for k in overridden)
        # a section the file does not have but an override created (e.g. an unknown 'foo' from foo.bar=1)
        created = p.key and p.key not in lines and any(k.startswith((p.key + ".", p.key + "["))
                                                       for k in overridden)
        if from_override or created:
            out.append(p.located(OVERRIDE_SOURCE, None))
        else:
            out.append(p.located(file, line_of(p.key, lines)))
    return out


def parse_override(text: str) -> tuple:
    """'a.b[0].c=value' -> (('a','b',0,'c'), value parsed as YAML, so 8 -> int, [1,2] -> list)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override '{text}' is not key=value; write e.g. train.optim.lr=1.0e-5")
    path = parse_key(key.strip())
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return path, parsed


def _apply_override(raw: Dict[str, Any], text: str, overridden: Set[str]) -> List[Problem]:
    try:
        path, value = parse_override(text)
    except ValueError as exc:
        return [Problem(text, missing_value(), str(exc), "", file=OVERRIDE_SOURCE)]
    error = set_path(raw, path, value)
    if error:
        return [Problem(render_key(path), value, error, "check the key", file=OVERRIDE_SOURCE)]
    overridden.add(render_key(path))
    return []


def set_path(data: Dict[str, Any], path: tuple, value: Any, *, keep_existing: bool = False) -> Optional[str]:
    """Set a nested value, creating sections (and appending one list item) as needed; returns an error
    message instead of raising. `keep_existing`: do not replace a value that is already there."""
    node: Any = data
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        where = render_key(path[:depth]) or "the spec"
        if isinstance(part, int):
            if not isinstance(node, list):
                return f"{where} is not a list"
            if part > len(node):
                return f"list index {part} skips items: {where} has {len(node)}"
            if part == len(node):
                node.append(value if last else {})
                if last:
                    return None
            elif last:
                if not keep_existing:
                    node[part] = value
                return None
            node = node[part]
            continue
        if not isinstance(node, dict):
            return f"{where} is not a section"
        if last:
            if not (keep_existing and part in node):
                node[part] = value
            return None
        if node.get(part) is None:
            node[part] = [] if isinstance(path[depth + 1], int) else {}
        node = node[part]
    return None


def apply_key_defaults(dotted: Mapping[str, Any], spec: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """A nested raw spec from skill_info `key_defaults` ({'model.encoder': 'vitl', ...}); values already in
    `spec` win (they are defaults). Load the result with load_spec to check it."""
    out = copy.deepcopy(dict(spec or {}))
    for key, value in dotted.items():
        error = set_path(out, parse_key(key), copy.deepcopy(value), keep_existing=True)
        if error:
            raise SpecError([Problem(key, value, f"cannot apply key default: {error}",
                                     "fix the key in skill_info.yaml key_defaults")])
    return out


def spec_to_dict(spec: Any) -> Dict[str, Any]:
    """Plain nested dict (YAML/JSON-ready) of a spec dataclass."""
    return dataclasses.asdict(spec)


def spec_to_yaml(spec: Any) -> str:
    """The resolved spec as YAML (what `depth_net validate` prints), secret fields redacted."""
    from stereo.config.secrets import redact

    return yaml.safe_dump(redact(spec_to_dict(spec)), sort_keys=False, default_flow_style=None, width=110)


def save_spec_yaml(spec: Any, path: Union[str, Path]) -> Path:
    """Write the resolved spec (e.g. <results_dir>/<action>/experiment.yaml) atomically."""
    return atomic_write_text(path, spec_to_yaml(spec))
