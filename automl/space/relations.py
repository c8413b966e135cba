"""``depends_on`` in TAO's schema dialect: one parameter tied to another, as a :class:`Relation`.

Every form TAO's AutoML reads (tao_depth_net.md §13), and what each means here:

- ``depends_on: "> parent"`` (also >=, <, <=): child > parent, applied when the child is drawn;
- ``depends_on: parent`` + ``math_cond: "> depends_on"``: the same relation, TAO's other spelling;
- ``depends_on: parent`` + ``math_cond: "/ k"``: derived, never drawn: child = parent // k (int);
- ``depends_on: parent`` + any other math_cond: order only (parent first), TAO applies nothing;
- ``parent_param: TRUE`` on the parent: accepted; children see the parent's value either way.

A parent that is not searched has one value (the user's override, else the base spec's, else the
schema default), so the relation is applied once, when the space is built. A *child* that the user
fixed narrows its searched parent the other way round (``max_lr`` fixed at 1e-3 with
``max_lr > lr`` leaves ``lr < 1e-3``). Pure: no Optuna, no Ray (:meth:`Param.restricted` does the narrowing).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

from automl.space.param import NUMERIC_KINDS, Param
from automl.space.schema import (SearchSpaceError, did_you_mean, field_default, field_kind, leaf_names, lookup_field,
                                  numeric_bounds)

ORDER_OPS = (">", ">=", "<", "<=")
DERIVED = "//"
_INVERSE = {">": "<", ">=": "<=", "<": ">", "<=": ">="}
#: keys of a search-space entry that make no sense for a derived (never sampled) parameter
_SAMPLING_KEYS = ("distribution", "low", "high", "base", "choices", "weights")


@dataclass(frozen=True)
class Relation:
    """``child <op> parent``, or with ``op == "//"`` the derived ``child = parent // k``."""

    op: str
    parent: str
    k: int = 0

    @property
    def derived(self) -> bool:
        return self.op == DERIVED

    def bounds(self, parent_value: Any) -> dict:
        """Keyword arguments for ``dist.restricted`` given the parent's value."""
        if self.derived:
            value = int(parent_value) // self.k
            return {"low": value, "high": value}
        return {">": {"low": parent_value, "low_open": True}, ">=": {"low": parent_value},
                "<": {"high": parent_value, "high_open": True}, "<=": {"high": parent_value}}[self.op]

    def parent_bounds(self, child_value: Any) -> dict:
        """``restricted`` arguments for the *parent* when the child is fixed at `child_value`."""
        if self.derived:  # parent // k == v  <=>  v*k <= parent <= v*k + k - 1
            value = int(child_value)
            return {"low": value * self.k, "high": value * self.k + self.k - 1}
        return Relation(_INVERSE[self.op], self.parent).bounds(child_value)

    def holds(self, value: Any, parent_value: Any) -> bool:
        if self.derived:
            return value == int(parent_value) // self.k
        return {">": value > parent_value, ">=": value >= parent_value,
                "<": value < parent_value, "<=": value <= parent_value}[self.op]

    def __str__(self) -> str:
        return f"= {self.parent} // {self.k}" if self.derived else f"{self.op} {self.parent}"


def as_number(value: Any) -> Optional[float]:
    """A spec value as a number (override text such as "5e-4" included), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):
        return value
    text = str(value).strip()
    try:
        return int(text) if text.lstrip("+-").isdigit() else float(text)
    except ValueError:
        return None


def parse_relation(schema: Mapping[str, Any], name: str, prop: Mapping[str, Any], ov: Mapping[str, Any],
                   where: str, notes: List[str]) -> Optional[Relation]:
    """The relation of `name` from its schema entry `prop` and search-space entry `ov`, or None."""
    dep = ov.get("depends_on", prop.get("depends_on"))
    if dep in (None, "", False):
        return None
    parts = str(dep).split()
    cond = str(prop.get("math_cond") or "").split()
    if len(parts) == 2 and parts[0] in ORDER_OPS:
        rel = Relation(parts[0], parts[1])
    elif len(parts) == 1 and len(cond) == 2 and cond[1] == "depends_on" and cond[0] in ORDER_OPS:
        rel = Relation(cond[0], parts[0])
    elif len(parts) == 1 and len(cond) == 2 and cond[0] == "/":
        try:
            k = float(cond[1])
        except ValueError:
            k = 0.0
        if not k.is_integer() or k < 1:
            raise SearchSpaceError(f"{where}: math_cond {' '.join(cond)!r} with depends_on needs an integer "
                                   "k >= 1 (the parameter is parent // k)")
        rel = Relation(DERIVED, parts[0], int(k))
    elif len(parts) == 1 and "depends_on" not in ov:
        # TAO reads this as an ordering hint only (no relational or '/ k' math_cond): nothing to apply
        rel = None
        notes.append(f"{name}: depends_on '{parts[0]}' with math_cond {prop.get('math_cond')!r} carries no "
                     "relation (TAO only samples it after its parent); nothing is constrained")
    else:
        raise SearchSpaceError(f"{where}.depends_on: {dep!r} names no relation; write e.g. '> {parts[-1]}' "
                               "(one of >, >=, <, <=)")
    parent = parts[-1] if rel is None else rel.parent
    if parent == name:
        raise SearchSpaceError(f"{where}.depends_on: {name} cannot depend on itself")
    if lookup_field(schema, parent) is None:
        raise SearchSpaceError(f"{where}.depends_on: '{parent}' is not a field of the schema"
                               f"{did_you_mean(parent, leaf_names(schema))}")
    return rel


def check_parent(rel: Relation, parent_dist: Param, where: str) -> None:
    """A searched parent must give numbers the relation can compare (ints for a derived child)."""
    numeric = parent_dist.kind in NUMERIC_KINDS or (
        parent_dist.kind == "categorical"
        and all(isinstance(c, numbers.Real) and not isinstance(c, bool) for c in parent_dist.choices))
    if not numeric:
        raise SearchSpaceError(f"{where}.depends_on: parent '{rel.parent}' is {parent_dist.kind} with non-numeric "
                               f"values; '{rel}' needs a numeric parent")
    if rel.derived and parent_dist.kind not in ("int", "power_of", "categorical"):
        raise SearchSpaceError(f"{where}.depends_on: '{rel}' divides an integer, but parent '{rel.parent}' is "
                               f"{parent_dist.kind}; derive from an int parameter")


def parent_values(parent_dist: Param) -> tuple:
    """(smallest, largest) value a searched numeric parent can take."""
    if parent_dist.kind in ("categorical", "power_of"):
        return min(parent_dist.choices), max(parent_dist.choices)
    return parent_dist.low, parent_dist.high


def derived_distribution(name: str, prop: Mapping[str, Any], ov: Mapping[str, Any], rel: Relation,
                         low_parent: Any, high_parent: Any, where: str) -> Param:
    """The range of ``name = parent // k`` for parent values in [low_parent, high_parent]."""
    given = [k for k in _SAMPLING_KEYS if k in ov]
    if given:
        raise SearchSpaceError(f"{where}.{given[0]}: {name} is derived ({name} {rel}), never sampled; remove "
                               f"'{given[0]}' (or drop depends_on to sample it in its own range)")
    kind, _ = field_kind(prop)
    if kind != "int":
        raise SearchSpaceError(f"{where}: math_cond '/ {rel.k}' with depends_on makes {name} = {rel.parent} // "
                               f"{rel.k}, which needs an int field, but {name} is {kind}")
    for value in (low_parent, high_parent):
        if not float(value).is_integer():
            raise SearchSpaceError(f"{where}: {name} {rel} needs integer values of {rel.parent}, got {value!r}")
    low, high = int(low_parent) // rel.k, int(high_parent) // rel.k
    lo, lo_open, hi, hi_open = numeric_bounds(prop)
    outside = [v for v in (low, high) if (lo is not None and (v < lo or (lo_open and v == lo)))
               or (hi is not None and (v > hi or (hi_open and v == hi)))]
    if outside:
        raise SearchSpaceError(f"{where}: {name} {rel} spans [{low}, {high}] for {rel.parent} in "
                               f"[{low_parent}, {high_parent}], outside {name}'s schema range "
                               f"{'(' if lo_open else '['}{_num(lo)}, {_num(hi)}{')' if hi_open else ']'}; narrow "
                               f"the range of {rel.parent}")
    return Param.integer(low, high)


def _num(value: Any) -> str:
    return "none" if value is None else f"{value:g}"


def fixed_parent_value(schema: Mapping[str, Any], rel: Relation, fixed: Mapping[str, Any],
                       known: Mapping[str, Any], where: str) -> tuple:
    """(value, where it comes from) of a parent that is not searched."""
    for source, values in (("your override", fixed), ("the base spec", known)):
        if rel.parent in values and as_number(values[rel.parent]) is not None:
            return as_number(values[rel.parent]), source
    default = field_default(lookup_field(schema, rel.parent))
    if as_number(default) is None:
        raise SearchSpaceError(f"{where}.depends_on: parent '{rel.parent}' is not searched and has no numeric "
                               "value in the spec or the schema; search it too or set it")
    return as_number(default), "its default"


def narrow_parent(params: Dict[str, Param], rel: Relation, child: str, value: Any, where: str,
                   notes: List[str]) -> None:
    """A fixed child keeps its relation by narrowing its searched parent (max_lr fixed -> lr below it)."""
    number, parent = as_number(value), rel.parent
    if number is None or params[parent].kind not in NUMERIC_KINDS:
        raise SearchSpaceError(f"{where}: {child} is fixed at {value!r} and must satisfy '{child} {rel}', but "
                               f"{parent} ({params[parent].kind}) cannot be narrowed to match; fix {parent} too")
    try:
        params[parent] = params[parent].restricted(**rel.parent_bounds(number))
    except ValueError as exc:
        raise SearchSpaceError(f"{where}: {child} fixed at {value} with '{child} {rel}' leaves no value of "
                               f"{parent} to search ({exc}); change the override or fix {parent} too") from exc
    notes.append(f"{parent}: narrowed to keep '{child} {rel}' with {child} fixed at {value}")


def parents_first(names: List[str], relations: Mapping[str, Tuple[Relation, ...]], origin: str) -> List[str]:
    """Stable topological order: each parameter after the ones it depends on."""
    order: List[str] = []
    pending = list(names)
    while pending:
        ready = [n for n in pending if all(r.parent in order for r in relations.get(n, ()))]
        if not ready:
            raise SearchSpaceError(f"{origin}: depends_on relations form a cycle among {pending}; break it")
        order += ready
        pending = [n for n in pending if n not in ready]
    return order
