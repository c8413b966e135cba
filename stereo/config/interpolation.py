"""Resolve `${...}` interpolations in a raw spec, before any key is type-checked.

OmegaConf's one job in stereo.config: `train.max_steps: ${train.num_epochs}`, `results_dir:
${model.model_type}/run1` and OmegaConf's own resolvers (`${oc.env:DATA_ROOT}`) work in every field. A
value that is exactly one `${key}` takes the referenced value with its type (a number stays a number, a
section is copied); text around it makes a string. A reference sees the values the spec (and its
`key=value` overrides) writes, else the field's default. Only the interpolated values are replaced, so a
spec without `${` never reaches OmegaConf. A reference that cannot be resolved (missing key, cycle,
unknown resolver, bad syntax) is one Problem on the key holding it; the value is dropped so the later
checks do not report it twice.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import re
from typing import Any, Dict, List, Tuple

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationKeyError, OmegaConfBaseException

from stereo.config.coerce import suggest_key
from stereo.config.errors import Problem, missing_value
from stereo.config.source_lines import PathT, parse_key, render_key

MARK = "${"
DOC = "docs/spec_reference.md (Interpolation)"
_MISSING_KEY = re.compile(r"Interpolation key '([^']+)' not found")


def resolve_interpolations(raw: Dict[str, Any], spec_type: type) -> Tuple[Dict[str, Any], List[Problem]]:
    """`raw` with every `${...}` value resolved (a new dict when any is), and one Problem per failure."""
    paths = list(_interpolated(raw, ()))
    if not paths:
        return raw, []
    problems: List[Problem] = []
    view = _with_defaults(_defaults(spec_type), raw)
    cfg = _create(view, paths, problems, spec_type)
    out = copy.deepcopy(raw)
    failed = {p.key for p in problems}
    for path in paths:
        if cfg is None or render_key(path) in failed:
            _drop(out, path)
            continue
        try:
            value = _get(cfg, path)  # reading the node resolves it
            if isinstance(value, (DictConfig, ListConfig)):
                value = OmegaConf.to_container(value, resolve=True)
        except OmegaConfBaseException as exc:
            problems.append(_problem(path, _get(raw, path), exc, spec_type))
            _drop(out, path)
            continue
        _get(out, path[:-1])[path[-1]] = value
    return out, problems


def _interpolated(node: Any, path: PathT):
    """Paths of the string values holding `${`."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _interpolated(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _interpolated(value, path + (index,))
    elif isinstance(node, str) and MARK in node:
        yield path


def _create(view: Dict[str, Any], paths: List[PathT], problems: List[Problem], spec_type: type) -> Any:
    """OmegaConf's tree of `view`. It checks every interpolation's syntax (and every value's type) when it
    is built; a value it refuses is left out, then it is built again. A refused `${...}` is a Problem here;
    any other refused value (a YAML date, say) is reported by the type checks that follow."""
    interpolated = {render_key(p) for p in paths}
    while True:
        try:
            return OmegaConf.create(view)
        except OmegaConfBaseException as exc:
            key = getattr(exc, "full_key", "") or ""
            try:
                path = parse_key(key)
                value = _get(view, path)
            except (KeyError, IndexError, TypeError, ValueError):  # not located: nothing is resolved
                problems.append(Problem(key, missing_value(), _first_line(exc), f"fix the value; see {DOC}"))
                return None
            if render_key(path) in interpolated:
                problems.append(_problem(path, value, exc, spec_type))
            if not _drop(view, path):  # each round must remove a value, or it would never end
                problems.append(Problem(key, value, _first_line(exc), f"fix the value; see {DOC}"))
                return None


def _problem(path: PathT, value: Any, exc: Exception, spec_type: type) -> Problem:
    key = render_key(path)
    text = _first_line(exc)
    missing = _MISSING_KEY.search(text)
    if isinstance(exc, InterpolationKeyError) and missing:
        target = missing.group(1)
        message = f"interpolation refers to '{target}', which the spec does not have"
        try:
            suggestion = suggest_key(parse_key(target), spec_type)
        except ValueError:
            suggestion = None
        fix = (f"did you mean '${{{suggestion}}}'?" if suggestion else
               "refer to an existing key (e.g. ${train.num_epochs}) or write the value")
        return Problem(key, value, message, fix)
    if "Recursive interpolation" in text:
        return Problem(key, value, "interpolation cycle: the value refers back to itself through ${...}",
                       "write a plain value in one of the keys of the cycle")
    return Problem(key, value, f"cannot resolve interpolation: {text}",
                   f"write ${{section.key}} or ${{oc.env:NAME}}; see {DOC}")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@functools.lru_cache(maxsize=None)
def _defaults_cached(spec_type: type) -> Dict[str, Any]:
    return dataclasses.asdict(spec_type())


def _defaults(spec_type: type) -> Dict[str, Any]:
    return copy.deepcopy(_defaults_cached(spec_type))


def _with_defaults(defaults: Any, raw: Any) -> Any:
    """`raw` laid over the defaults, section by section (what a reference may point at)."""
    if isinstance(defaults, dict) and isinstance(raw, dict):
        merged = dict(defaults)
        for key, value in raw.items():
            merged[key] = _with_defaults(defaults.get(key), value)
        return merged
    if raw is None and isinstance(defaults, dict):  # "train:" with nothing under it
        return defaults
    return copy.deepcopy(raw)


def _get(node: Any, path: PathT) -> Any:
    for part in path:
        node = node[part]
    return node


def _drop(root: Dict[str, Any], path: PathT) -> bool:
    """Remove the failed value (a list holding it goes whole: a list with a hole would be a second error)."""
    while len(path) > 1 and not isinstance(path[-1], str):
        path = path[:-1]
    parent = _get(root, path[:-1])
    if isinstance(parent, dict) and path[-1] in parent:
        del parent[path[-1]]
        return True
    return False
