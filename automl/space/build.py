"""TAO-dialect JSON schema -> :class:`SearchSpace` (automl/space/search_space.py): which fields, which distribution.

Semantics (docs/automl.md "Search spaces"):
- default parameters = the schema's top-level ``automl_default_parameters``. TAO's runner ignores that
  narrowed list and searches every ``automl_enabled`` field; we honour it.
- ``float`` is uniform, except scale parameters (``lr``, ``*_lr``, ``learning_rate``, ``weight_decay``
  or ``log_scale: true``), which are log-uniform: linear sampling over 1e-6..1e-2 puts 90 % of the
  trials above 1e-3.
- ``math_cond``: ``"> x"``/``">= x"``/``"< x"``/``"<= x"`` make a bound open or closed (``lr_decay`` lives
  in (0, 1], never 0); ``"^ k"`` samples powers of k; ``"/ k"`` multiples of k.
- ``depends_on`` in every TAO form (automl/space/relations.py): ``"> other.param"`` (or ``math_cond: "> depends_on"``)
  is a relation applied at sample time, parents first; with ``math_cond: "/ k"`` the parameter is
  derived, ``parent // k``, never sampled.
- `fixed`: keys the user set on the command line leave the space (their value reaches every trial).
- a missing/infinite bound falls back to default/10 .. default*10 (TAO's rule), recorded in ``notes``.
- architecture fields of a pretrained checkpoint and val/test/infer augmentation are never searched.
"""
from __future__ import annotations

import math
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence

from automl.space.param import NUMERIC_KINDS, Param
from automl.space.relations import (check_parent, derived_distribution, fixed_parent_value, narrow_parent,
                              parent_values, parents_first, parse_relation)
from automl.space.schema import (SearchSpaceError, did_you_mean, field_default, field_kind, is_automl_enabled,
                                  leaf_names, lookup_field, numeric_bounds, parse_math_cond)
from automl.space.search_space import SearchSpace

#: keys one entry of ``overrides`` (a search-space file's ``parameters.<name>``) may carry
OVERRIDE_KEYS = ("distribution", "low", "high", "base", "choices", "weights", "depends_on")
DISTRIBUTIONS = ("uniform", "log_uniform", "power_of", "categorical", "bool")
#: model.* fields that do not change a checkpoint's tensors (everything else under model.* does)
SEARCHABLE_MODEL_FIELDS = ("model.train_iters", "model.valid_iters", "model.low_memory",
                           "model.mixed_precision")
_KINDS = ("float", "int", "categorical", "bool")
_SCALE_NAME = re.compile(r"(^|_)(lr|learning_rate|weight_decay)$")
_EVAL_AUGMENTATION = re.compile(r"^dataset\.(val|test|infer)_dataset\.augmentation\.")


def refusal_reason(name: str) -> Optional[str]:
    """Why `name` must never be searched, or None when it may be."""
    if name.startswith("model.") and name not in SEARCHABLE_MODEL_FIELDS:
        return ("is part of the network architecture, and a sweep never changes the architecture of a "
                "pretrained checkpoint (searchable model fields: " + ", ".join(SEARCHABLE_MODEL_FIELDS) + ")")
    if _EVAL_AUGMENTATION.match(name):
        return "augments validation/test/inference data, which is never augmented here (a no-op to search)"
    return None


def build_search_space(schema: Mapping[str, Any], *, parameters: Optional[Sequence[str]] = None,
                       overrides: Optional[Mapping[str, Mapping[str, Any]]] = None,
                       origin: str = "search space", fixed: Optional[Mapping[str, Any]] = None,
                       known: Optional[Mapping[str, Any]] = None) -> SearchSpace:
    """Search space for `parameters` (default: the schema's ``automl_default_parameters``).

    `overrides` maps a dotted name to ``{distribution, low, high, base, choices, weights, depends_on}``
    (all optional) and opts that name in even when the schema does not flag it ``automl_enabled``.
    `fixed` maps dotted names the user set on the command line to their values: they are never
    searched (the user's value reaches every trial), and relations to them use that value. `known`
    holds the base spec's values (dotted) for relations to other parents that are not searched.
    `origin` prefixes error messages (a search-space file passes its path).
    """
    if not isinstance(schema, Mapping) or not isinstance(schema.get("properties"), Mapping):
        raise SearchSpaceError(f"{origin}: the schema has no top-level 'properties' object; pass a "
                               "schemas/<action>.schema.json dict")
    overrides, fixed, known = dict(overrides or {}), dict(fixed or {}), dict(known or {})
    notes: List[str] = []
    selected = _select(schema, parameters, overrides, origin, notes)
    names = [n for n in selected if n not in fixed]
    notes += [f"{n} fixed at {fixed[n]} by your override; not searched" for n in selected if n in fixed]
    if not names:
        raise SearchSpaceError(f"{origin}: nothing left to search: your overrides fix every parameter "
                               f"({', '.join(selected)}); drop one of those overrides or search other parameters")
    rels = {}
    for name in selected:
        rel = parse_relation(schema, name, lookup_field(schema, name), overrides.get(name) or {},
                             f"{origin}: 'parameters.{name}'", notes)
        if rel is not None:
            rels[name] = rel
    relations = {n: (r,) for n, r in rels.items() if n in names and r.parent in names}
    params: Dict[str, Param] = {}
    defaults: Dict[str, Any] = {}
    for name in parents_first(names, relations, origin):
        prop, ov, key = lookup_field(schema, name), overrides.get(name) or {}, f"{origin}: 'parameters.{name}'"
        rel = rels.get(name)
        parent_fixed = None if rel is None or rel.parent in names else \
            fixed_parent_value(schema, rel, fixed, known, key)
        if rel is not None and rel.derived:
            low, high = parent_values(params[rel.parent]) if parent_fixed is None else (parent_fixed[0],) * 2
            if parent_fixed is None:
                check_parent(rel, params[rel.parent], key)
            dist = derived_distribution(name, prop, ov, rel, low, high, key)
            where = f"; {rel.parent} is fixed at {parent_fixed[0]} ({parent_fixed[1]})" if parent_fixed else ""
            notes.append(f"{name}: derived, {name} {rel} (TAO's depends_on + math_cond '/ {rel.k}'), never "
                         f"sampled{where}")
        else:
            dist = _distribution(name, prop, ov, key, notes)
        if rel is not None and not rel.derived:
            if dist.kind not in NUMERIC_KINDS:
                raise SearchSpaceError(f"{key}.depends_on: '{rel}' needs a numeric parameter, but {name} is "
                                       f"{dist.kind}; remove depends_on")
            if parent_fixed is None:
                check_parent(rel, params[rel.parent], key)
            else:
                value, source = parent_fixed
                try:
                    dist = dist.restricted(**rel.bounds(value))
                except ValueError as exc:
                    raise SearchSpaceError(f"{key}.depends_on: '{rel}' with {rel.parent} fixed at {value} "
                                           f"({source}) leaves nothing to search ({exc})") from exc
                notes.append(f"{name}: '{rel}' applied with {rel.parent} fixed at {value} ({source})")
        params[name] = dist
        default = field_default(prop)
        defaults[name] = default
        if default is not None and not dist.contains(default):
            notes.append(f"{name}: the schema default {default!r} lies outside the search space")
    for child in (n for n in selected if n in fixed and n in rels and rels[n].parent in params):
        narrow_parent(params, rels[child], child, fixed[child], f"{origin}: 'parameters.{child}'", notes)
    return SearchSpace(params, relations, defaults, tuple(notes))


def _select(schema: Mapping[str, Any], parameters: Optional[Sequence[str]], overrides: Mapping[str, Any],
            origin: str, notes: List[str]) -> List[str]:
    """The parameter names to search, checked against the schema."""
    explicit = parameters is not None
    if explicit:
        names = list(parameters)
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SearchSpaceError(f"{origin}: parameters {dupes} are listed twice; list each once")
    elif schema.get("automl_default_parameters"):
        names = list(dict.fromkeys(schema["automl_default_parameters"]))
        notes.append("parameters: the schema's automl_default_parameters " + str(names) +
                     " (TAO's runner would search every automl_enabled field instead)")
    else:
        names = [n for n in leaf_names(schema) if is_automl_enabled(lookup_field(schema, n))]
        notes.append("parameters: the schema has no automl_default_parameters; searching every "
                     "automl_enabled field")
    names += [n for n in overrides if n not in names]
    known = leaf_names(schema)
    selected = []
    for name in names:
        key = f"{origin}: 'parameters.{name}'"
        if not isinstance(name, str) or lookup_field(schema, name) is None:
            raise SearchSpaceError(f"{key}: not a field of the schema{did_you_mean(str(name), known)}")
        reason = refusal_reason(name)
        if reason and (explicit or name in overrides):
            raise SearchSpaceError(f"{key}: {name} {reason}; remove it")
        if reason:
            notes.append(f"{name}: skipped although the schema lists it: it {reason}")
            continue
        if not explicit and name not in overrides and field_kind(lookup_field(schema, name))[0] not in _KINDS:
            notes.append(f"{name}: skipped: schema type {lookup_field(schema, name).get('type')!r} is not searchable")
            continue
        if not is_automl_enabled(lookup_field(schema, name)) and name not in overrides:
            raise SearchSpaceError(f"{key}: the schema marks {name} automl_enabled: false; give it an explicit "
                                   "range in the search-space file to search it anyway")
        selected.append(name)
    if not selected:
        raise SearchSpaceError(f"{origin}: nothing left to search; list parameters explicitly")
    return selected


def _distribution(name: str, prop: Mapping[str, Any], ov: Mapping[str, Any], where: str,
                  notes: List[str]) -> Param:
    unknown = [k for k in ov if k not in OVERRIDE_KEYS]
    if unknown:
        raise SearchSpaceError(f"{where}: unknown key '{unknown[0]}'{did_you_mean(unknown[0], OVERRIDE_KEYS)}; "
                               f"known: {', '.join(OVERRIDE_KEYS)}")
    kind, ordered = field_kind(prop)
    wanted = ov.get("distribution")
    if wanted is not None and wanted not in DISTRIBUTIONS:
        raise SearchSpaceError(f"{where}.distribution: {wanted!r} is not one of {', '.join(DISTRIBUTIONS)}"
                               f"{did_you_mean(str(wanted), DISTRIBUTIONS)}")
    allowed = {"float": ("uniform", "log_uniform", "categorical"), "int": DISTRIBUTIONS[:4],
               "categorical": ("categorical",), "bool": ("bool", "categorical")}.get(kind, ())
    if kind not in _KINDS:
        raise SearchSpaceError(f"{where}: a {kind} field cannot be searched; pick a float, int, bool or enum "
                               "field")
    if wanted is not None and wanted not in allowed:
        raise SearchSpaceError(f"{where}.distribution: {wanted!r} does not fit a {kind} field; use one of "
                               f"{', '.join(allowed)}")
    categorical = kind == "categorical" or wanted == "categorical" or "choices" in ov
    for key in ("low", "high", "base") if categorical or kind == "bool" else ("choices", "weights"):
        if key in ov:
            raise SearchSpaceError(f"{where}.{key}: does not apply to a "
                                   f"{'categorical' if categorical else kind} distribution; remove it")
    if kind == "bool" and wanted != "categorical":
        return Param.boolean()
    if categorical:
        return _categorical(name, prop, ov, where, kind, ordered)
    return _numeric(name, prop, ov, where, kind, wanted, notes)


def _categorical(name: str, prop: Mapping[str, Any], ov: Mapping[str, Any], where: str, kind: str,
                 ordered: bool) -> Param:
    enum = list(prop.get("enum") or ([True, False] if kind == "bool" else []))
    weights = prop.get("option_weights")
    choices = ov.get("choices", enum)
    if not isinstance(choices, (list, tuple)) or not choices:
        raise SearchSpaceError(f"{where}.choices: expected a non-empty list, got {choices!r}")
    probe = Param.categorical(tuple(enum)) if enum else None
    lo, _, hi, _ = numeric_bounds(prop) if kind in ("float", "int") else (None, False, None, False)
    for choice in choices:
        if probe is not None and not probe.contains(choice):
            raise SearchSpaceError(f"{where}.choices: {choice!r} is not in the schema enum {enum}")
        if kind in ("float", "int") and ((lo is not None and choice < lo) or (hi is not None and choice > hi)):
            raise SearchSpaceError(f"{where}.choices: {choice!r} is outside the schema range [{lo}, {hi}]")
    if "weights" in ov:
        weights = ov["weights"]
    elif weights is not None and "choices" in ov:  # narrowed choices keep their own schema weights
        weights = [weights[next(i for i, e in enumerate(enum) if Param.categorical((e,)).contains(c))]
                   for c in choices]
    try:
        return Param.categorical(tuple(choices), None if weights is None else tuple(weights),
                               ordered=ordered or kind == "int")
    except ValueError as exc:
        raise SearchSpaceError(f"{where}: {exc}") from exc


def _numeric(name: str, prop: Mapping[str, Any], ov: Mapping[str, Any], where: str, kind: str,
             wanted: Optional[str], notes: List[str]) -> Param:
    cond = parse_math_cond(prop.get("math_cond"), where)
    lo, lo_open, hi, hi_open = numeric_bounds(prop)
    power = int(cond[1]) if cond and cond[0] == "^" else None
    multiple = int(cond[1]) if cond and cond[0] == "/" else None
    if multiple is not None and kind != "int":
        raise SearchSpaceError(f"{where}: math_cond '/ {multiple}' only makes sense for int fields")
    # explicit bounds must stay inside what the schema allows
    for side in ("low", "high"):
        if side not in ov:
            continue
        value = ov[side]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise SearchSpaceError(f"{where}.{side}: expected a finite number, got {value!r}")
        if kind == "int" and float(value) != int(value):
            raise SearchSpaceError(f"{where}.{side}: {name} is an integer field, got {value!r}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise SearchSpaceError(f"{where}.{side}: {value!r} is outside the schema range "
                                   f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'} of {name}; "
                                   "pick a value inside it")
    if "low" in ov:
        lo, lo_open = ov["low"], lo_open and ov["low"] == lo
    if "high" in ov:
        hi, hi_open = ov["high"], hi_open and ov["high"] == hi
    default = field_default(prop)
    for side in ("low", "high"):
        if (lo if side == "low" else hi) is not None:
            continue
        if not isinstance(default, (int, float)) or isinstance(default, bool) or default <= 0:
            raise SearchSpaceError(f"{where}: the schema gives no finite {'minimum' if side == 'low' else 'maximum'} "
                                   f"and no positive default to derive one from; set '{side}' in the "
                                   "search-space file")
        value = default / 10 if side == "low" else default * 10
        if kind == "int":
            value = max(1, math.ceil(value)) if side == "low" else int(value)
        notes.append(f"{name}: no finite {'minimum' if side == 'low' else 'maximum'} in the schema; using "
                     f"{value} = default {default} {'/' if side == 'low' else '*'} 10 (TAO's rule)")
        lo, hi = (value, hi) if side == "low" else (lo, value)
    if "base" in ov and wanted != "power_of" and power is None:
        raise SearchSpaceError(f"{where}.base: only the power_of distribution takes a base")
    if power is not None and ov.get("base", power) != power:
        raise SearchSpaceError(f"{where}.base: the schema's math_cond '^ {power}' requires powers of {power}, "
                               f"got base {ov['base']!r}")
    log = _wants_log(name, prop, wanted, lo, lo_open, where, notes)
    try:
        if kind == "float":
            return Param.real(float(lo), float(hi), log, lo_open, hi_open)
        first = math.floor(lo) + 1 if lo_open and float(lo).is_integer() else math.ceil(lo)
        last = math.ceil(hi) - 1 if hi_open and float(hi).is_integer() else math.floor(hi)
        if wanted == "power_of" or power is not None:
            base = ov.get("base", power if power is not None else 2)
            return Param.power_of(base, max(1, first), last)
        if multiple is not None:
            first, last = -(-first // multiple) * multiple, (last // multiple) * multiple
        return Param.integer(first, last, multiple or 1, log)
    except ValueError as exc:
        if isinstance(exc, SearchSpaceError):
            raise
        raise SearchSpaceError(f"{where}: {exc}") from exc


def _wants_log(name: str, prop: Mapping[str, Any], wanted: Optional[str], lo: float, lo_open: bool,
               where: str, notes: List[str]) -> bool:
    if wanted in ("uniform", "power_of"):
        return False
    if wanted == "log_uniform" or prop.get("log_scale") is True:
        if not lo > 0:
            raise SearchSpaceError(f"{where}: log-uniform sampling needs low > 0, but low is {lo}; set 'low' "
                                   "to a positive value")
        return True
    if prop.get("log_scale") is False or not _SCALE_NAME.search(name.rsplit(".", 1)[-1]):
        return False
    if lo > 0:
        return True
    notes.append(f"{name}: scale parameter sampled uniformly because its range starts at {lo}; set a positive "
                 "'low' to sample it log-uniformly")
    return False
