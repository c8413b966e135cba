"""Reading one field of a TAO-dialect JSON schema (``schemas/<action>.schema.json``).

TAO's schemas are JSON-Schema-like: nested ``properties``, leaf ``type`` in TAO's own words
(``float``, ``int``, ``ordered_int``, ``categorical``, ``bool``, ``list``, ``collection`` ...), ``minimum``,
``maximum``, ``enum``, ``option_weights``, ``automl_enabled``, ``math_cond``, ``depends_on``. Schemas we
generate may use standard JSON-Schema words instead (``number``, ``integer``, ``boolean``,
``exclusiveMinimum``); both are read here, in one place.
"""
from __future__ import annotations

import difflib
import math
import re
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

from automl.errors import AutomlInputError


class SearchSpaceError(AutomlInputError):
    """A search space that cannot be built; the message names the key, the bad value and the fix."""


def did_you_mean(name: str, options: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest option, or an empty string."""
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


_MATH_COND = re.compile(r"^\s*(>=|<=|>|<|\^|/)\s*(\S+)\s*$")


def lookup_field(schema: Mapping[str, Any], dotted: str) -> Optional[Mapping[str, Any]]:
    """The leaf property at `dotted` (``"train.optim.lr"``), or None when there is no such leaf."""
    node: Any = schema
    for part in dotted.split("."):
        props = node.get("properties") if isinstance(node, Mapping) else None
        if not isinstance(props, Mapping) or not isinstance(props.get(part), Mapping):
            return None
        node = props[part]
    return None if isinstance(node.get("properties"), Mapping) else node


def leaf_names(schema: Mapping[str, Any]) -> List[str]:
    """Every dotted leaf name, in schema order (for did-you-mean suggestions and TAO's 'all flagged')."""
    out: List[str] = []

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, child in (node.get("properties") or {}).items():
            if not isinstance(child, Mapping):  # TAO schemas carry stray list entries here
                continue
            if isinstance(child.get("properties"), Mapping):
                walk(child, f"{prefix}{key}.")
            else:
                out.append(prefix + key)

    walk(schema, "")
    return out


def is_automl_enabled(prop: Optional[Mapping[str, Any]]) -> bool:
    """TAO writes the flag as a JSON boolean or as the string "TRUE"."""
    flag = (prop or {}).get("automl_enabled")
    return flag is True or (isinstance(flag, str) and flag.strip().upper() == "TRUE")


def field_default(prop: Optional[Mapping[str, Any]]) -> Any:
    prop = prop or {}
    return prop["default"] if "default" in prop else prop.get("default_value")


def field_kind(prop: Mapping[str, Any]) -> Tuple[str, bool]:
    """(kind, ordered): kind is float, int, categorical, bool, or the raw type when not searchable."""
    raw = prop.get("type")
    if isinstance(raw, list):  # JSON Schema ["number", "null"]
        raw = next((t for t in raw if t != "null"), None)
    kind = str(raw).lower()
    if kind in ("bool", "boolean"):
        return "bool", False
    if prop.get("enum"):
        return "categorical", kind in ("ordered_int", "ordered", "int", "integer")
    if kind in ("float", "number"):
        return "float", False
    if kind in ("int", "integer"):
        return "int", False
    if kind in ("categorical", "ordered_int", "ordered", "string"):
        return f"{kind} without an enum", False
    return kind, False  # list, collection, dict ...: not searchable


def parse_math_cond(cond: Any, where: str) -> Optional[Tuple[str, Union[float, str]]]:
    """``"> 0.0"`` -> (">", 0.0); ``"^ 2"`` -> ("^", 2.0); ``"> depends_on"`` -> (">", "depends_on")."""
    if cond in (None, ""):
        return None
    match = _MATH_COND.match(str(cond))
    if not match:
        raise SearchSpaceError(f"{where}: math_cond {cond!r} is not understood; expected '> x', '>= x', "
                               "'< x', '<= x', '^ k' (powers of k) or '/ k' (multiples of k)")
    op, arg = match.groups()
    if arg == "depends_on":
        return op, arg
    try:
        value = float(arg)
    except ValueError:
        raise SearchSpaceError(f"{where}: math_cond {cond!r} needs a number after '{op}'") from None
    if op in ("^", "/") and (not value.is_integer() or value < 2):
        raise SearchSpaceError(f"{where}: math_cond {cond!r} needs an integer k >= 2")
    return op, value


def _finite(value: Any) -> Optional[float]:
    """A usable bound, or None for absent/infinite ones (TAO writes "inf" or leaves the key out)."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def numeric_bounds(prop: Mapping[str, Any]) -> Tuple[Optional[float], bool, Optional[float], bool]:
    """(low, low_open, high, high_open) from minimum/maximum, exclusive* and a relational math_cond."""
    lo, hi = _finite(prop.get("minimum")), _finite(prop.get("maximum"))
    lo_open = hi_open = False
    for key, is_low in (("exclusiveMinimum", True), ("exclusiveMaximum", False)):
        bound = _finite(prop.get(key)) if not isinstance(prop.get(key), bool) else None
        if bound is not None:
            lo, lo_open, hi, hi_open = _tighten(lo, lo_open, hi, hi_open, ">" if is_low else "<", bound)
    cond = parse_math_cond(prop.get("math_cond"), "math_cond")
    if cond and cond[0] in (">", ">=", "<", "<=") and cond[1] != "depends_on":
        lo, lo_open, hi, hi_open = _tighten(lo, lo_open, hi, hi_open, cond[0], float(cond[1]))
    return lo, lo_open, hi, hi_open


def _tighten(lo, lo_open, hi, hi_open, op, x):
    """Intersect [lo, hi] with {v : v <op> x}; "> 0.0" on [0, 1] gives (0, 1]."""
    if op in (">", ">="):
        if lo is None or x > lo:
            lo, lo_open = x, op == ">"
        elif x == lo:
            lo_open = lo_open or op == ">"
    else:
        if hi is None or x < hi:
            hi, hi_open = x, op == "<"
        elif x == hi:
            hi_open = hi_open or op == "<"
    return lo, lo_open, hi, hi_open
