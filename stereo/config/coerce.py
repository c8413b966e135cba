"""Check a raw (YAML/dict) spec against the dataclass tree, then build the dataclasses from it.

The walker visits every key, so one load reports every unknown key, wrong type and unfilled
`<placeholder>` at once (`${...}` interpolations are resolved before it, stereo.config.interpolation). It
returns a cleaned copy holding only values that fit their fields, converted to the field's exact type
(ints to floats, 'true' to True, enum case for `ignore_case` fields, null to "" for strings); `build`
turns that copy into the typed spec, every key it does not set keeping its dataclass default (no spec
field is required).
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import typing
from typing import Any, Dict, List, Optional, Set, Tuple

from stereo.config.errors import Problem
from stereo.config.source_lines import PathT, render_key

_PLACEHOLDER = re.compile(r"<[A-Za-z_][A-Za-z0-9_\- ]*>")
_FLOAT_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")  # PyYAML reads '1e-5' as a string
_BAD = object()


@dataclasses.dataclass
class Checked:
    """Result of the walk: the cleaned data, the problems, and which keys the user set explicitly."""
    data: Dict[str, Any]
    problems: List[Problem]
    explicit: Set[str]


def check_raw(raw: Dict[str, Any], spec_type: type, *, file: Optional[str] = None) -> Checked:
    out = Checked({}, [], set())
    out.data = _walk_section(raw, spec_type, (), spec_type, out, file)
    return out


def build(cls: type, data: Dict[str, Any]) -> Any:
    """The dataclass `cls` from `check_raw(...).data` (sections as dicts, lists of sections as lists)."""
    hints = _hints(cls)
    return cls(**{key: _build_value(_unwrap(hints[key]), value) for key, value in data.items()})


def _build_value(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    if dataclasses.is_dataclass(tp):
        return build(tp, value)
    if typing.get_origin(tp) is list and dataclasses.is_dataclass(typing.get_args(tp)[0]):
        return [build(typing.get_args(tp)[0], item) for item in value]
    return value


def _walk_section(raw: Any, cls: type, path: PathT, root: type, out: Checked, file: Optional[str]) -> Any:
    if not isinstance(raw, dict):
        out.problems.append(Problem(render_key(path), raw, f"expected a mapping of {cls.__name__} keys",
                                    "write the section as 'key: value' lines indented under its name",
                                    file=file))
        return _BAD
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = _hints(cls)
    clean: Dict[str, Any] = {}
    for key, value in raw.items():
        sub = path + (str(key),)
        if key not in fields:
            out.problems.append(_unknown_key(sub, root, file))
            continue
        out.explicit.add(render_key(sub))
        new = _coerce(value, hints[key], fields[key], sub, root, out, file)
        if new is not _BAD:
            clean[key] = new
    return clean


def _coerce(value: Any, tp: Any, fld: dataclasses.Field, path: PathT, root: type, out: Checked,
            file: Optional[str]) -> Any:
    key = render_key(path)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union:  # Optional[T]
        if value is None:
            return None
        tp = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or origin is dict or tp is dict:
        return value
    if dataclasses.is_dataclass(tp):
        if value is None:  # an empty section ("train:" with nothing under it) means all defaults
            return {}
        return _walk_section(value, tp, path, root, out, file)
    if origin in (list, List):
        if not isinstance(value, (list, tuple)):
            return _fail(out, key, value, f"expected a list{_of(args[0])}", _list_fix(key, value), file)
        items = []
        for index, item in enumerate(value):
            new = _coerce(item, args[0], fld, path + (index,), root, out, file)
            if new is _BAD:
                return _BAD
            items.append(new)
        return items
    return _scalar(value, tp, fld, key, out, file)


def _scalar(value: Any, tp: type, fld: dataclasses.Field, key: str, out: Checked, file: Optional[str]) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"  # TAO writes do_flip: "False"
        return _fail(out, key, value, "expected true or false", f"set {key}: true or {key}: false", file)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return _fail(out, key, value, "expected an integer", f"set {key} to a whole number", file)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT_TEXT.match(value.strip()):
            return float(value)
        return _fail(out, key, value, "expected a number", f"set {key} to a number such as 0.5 or 1.0e-4",
                     file)
    if tp is str:
        if value is None:
            return ""  # TAO writes null for "not set"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            return _fail(out, key, value, "expected a string", f"quote the value of {key}", file)
        placeholder = _PLACEHOLDER.search(value)
        if placeholder:
            return _fail(out, key, value, f"unfilled template placeholder {placeholder.group(0)}",
                         f"replace {placeholder.group(0)} with a real value", file)
        enum = fld.metadata.get("enum")
        if enum and fld.metadata.get("ignore_case"):
            for option in enum:
                if str(option).lower() == value.lower():
                    return option
        return value
    raise TypeError(f"{fld.name}: field type {tp!r} is not supported by stereo.config.coerce; use bool, int, "
                    "float, str, List[...], Optional[...] or a dataclass")


def _fail(out: Checked, key: str, value: Any, message: str, fix: str, file: Optional[str]) -> Any:
    out.problems.append(Problem(key, value, message, fix, file=file))
    return _BAD


def _of(tp: Any) -> str:
    names = {int: " of integers", float: " of numbers", str: " of strings", bool: " of booleans"}
    if dataclasses.is_dataclass(tp):
        return f" of {tp.__name__} mappings"
    return names.get(tp, "")


def _list_fix(key: str, value: Any) -> str:
    if isinstance(value, dict):
        return f"write {key} as a YAML list ('- ' items)"
    return f"write {key}: [{value}]"


def _unknown_key(path: PathT, root: type, file: Optional[str]) -> Problem:
    key = render_key(path)
    suggestion = suggest_key(path, root)
    fix = f"did you mean '{suggestion}'?" if suggestion else "remove it"
    if suggestion and len(suggestion.split(".")) != len(key.split(".")):
        fix += f" ({path[-1]} belongs at {suggestion})"
    return Problem(key, path[-1], "unknown key", fix, file=file)


def suggest_key(path: PathT, root: type) -> Optional[str]:
    """Closest valid key for an unknown one: the same name elsewhere in the tree (a misplaced key such as
    model.stereo_backbone.encoder -> model.encoder), else a close spelling among its siblings, else a close
    spelling anywhere."""
    name = str(path[-1])
    parent = path[:-1]
    valid = all_keys(root)
    concrete = [_concrete(k, parent) for k in valid]
    same = [k for k in concrete if k.rsplit(".", 1)[-1] == name]
    if same:
        want = render_key(path)
        return max(same, key=lambda k: difflib.SequenceMatcher(None, k, want).ratio())
    prefix = render_key(parent)
    if prefix:
        siblings = [k.rsplit(".", 1)[-1] for k in concrete if "." in k and k.rsplit(".", 1)[0] == prefix]
    else:
        siblings = [k for k in concrete if "." not in k]
    close = difflib.get_close_matches(name, siblings, n=1, cutoff=0.6)
    if close:
        return f"{prefix}.{close[0]}" if prefix else close[0]
    close = difflib.get_close_matches(render_key(path), concrete, n=1, cutoff=0.75)
    return close[0] if close else None


def _concrete(key: str, parent: PathT) -> str:
    """Fill the '[]' list markers of a schema key with the indices the user's path uses."""
    indices = [p for p in parent if isinstance(p, int)]
    while "[]" in key:
        key = key.replace("[]", f"[{indices.pop(0) if indices else 0}]", 1)
    return key


@functools.lru_cache(maxsize=None)
def all_keys(cls: type) -> Tuple[str, ...]:
    """Every valid dotted key of a spec type (list items as '[]')."""
    keys: List[str] = []
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp = _unwrap(hints[f.name])
        keys.append(f.name)
        if dataclasses.is_dataclass(tp):
            keys += [f"{f.name}.{k}" for k in all_keys(tp)]
        elif typing.get_origin(tp) is list and dataclasses.is_dataclass(typing.get_args(tp)[0]):
            keys += [f"{f.name}[].{k}" for k in all_keys(typing.get_args(tp)[0])]
    return tuple(keys)


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> Dict[str, Any]:
    return typing.get_type_hints(cls)


def field_type(cls: type, name: str) -> Any:
    """The resolved annotation of `cls.name` with Optional removed."""
    return _unwrap(_hints(cls)[name])


def _unwrap(tp: Any) -> Any:
    if typing.get_origin(tp) is typing.Union:
        return next(a for a in typing.get_args(tp) if a is not type(None))
    return tp
