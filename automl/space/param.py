"""One searched parameter: Optuna's own distribution plus what TAO's schema dialect adds to it.

Samplers only ever see Optuna's objects (:attr:`Param.optuna`: ``FloatDistribution``,
``IntDistribution`` or ``CategoricalDistribution``), and Optuna's samplers draw every value of a sweep
(and of :meth:`automl.space.build.SearchSpace.sample`). What stays ours, and why:

- **open bounds** (``math_cond: "> 0.0"`` makes ``lr_decay`` (0, 1]): Optuna's bounds are closed, so
  its distribution gets the nearest float inside (``closed_low``), while reports, relations and
  ``contains`` keep the bound the schema wrote;
- **kinds Optuna has no word for**: ``power_of`` (``math_cond: "^ 2"``, a categorical of powers that
  still knows its base and narrows by value) and ``bool`` (TAO's fair coin, a categorical of False/True);
- **TAO's prior** (``option_weights``) and ``ordered_int``: recorded for the review and the report;
  Optuna's samplers model the objective and take no prior;
- **relations** (``depends_on``): :meth:`Param.restricted` narrows a parameter once its parent is drawn;
- **contains**: Optuna's ``CategoricalDistribution`` takes True for 1 (``(1, 0).to_internal_repr(True)``
  is 0); YAML and JSON have real booleans, so a choice of 1 must not accept True.

Optuna's objects are built on first use, not here: importing optuna costs ~0.38 s on top of numpy
(``python -X importtime``), which ``automl --help`` (0.4 s today) and ``automl run --dry-run`` would pay
for nothing. Optuna validates them again when they are built (a test builds every kind).
The error messages name only the distribution; automl/space/build.py prefixes the YAML key.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Optional, Tuple

#: Param.kind values; power_of/float/int can be narrowed by a relation
KINDS = ("float", "int", "power_of", "categorical", "bool")
NUMERIC_KINDS = ("float", "int", "power_of")


def _is_bool(value: Any) -> bool:
    # numpy's bool_ (dtype kind "b") without importing numpy
    return isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", None) == "b"


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not _is_bool(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not _is_bool(value)


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, so values serialise to YAML/JSON unchanged."""
    return value.item() if hasattr(value, "item") and type(value).__module__ == "numpy" else value


def same_value(a: Any, b: Any) -> bool:
    """Equality that keeps True apart from 1."""
    if _is_bool(a) or _is_bool(b):
        return _is_bool(a) and _is_bool(b) and bool(a) == bool(b)
    return a == b


def _powers(base: int, low: int, high: int) -> Tuple[int, ...]:
    out, value = [], 1
    while value <= high:  # exact integer arithmetic, no log round-off
        if value >= low:
            out.append(value)
        value *= base
    return tuple(out)


@dataclass(frozen=True)
class Param:
    """A search dimension: ``kind`` plus the fields that kind uses (build one with the class methods)."""

    kind: str
    low: Any = None
    high: Any = None
    log: bool = False
    step: int = 1
    low_open: bool = False
    high_open: bool = False
    base: int = 0
    choices: Tuple[Any, ...] = ()
    weights: Optional[Tuple[float, ...]] = None
    ordered: bool = False

    # --- constructors, one per kind ------------------------------------------------------------
    @classmethod
    def real(cls, low: float, high: float, log: bool = False, low_open: bool = False,
              high_open: bool = False) -> "Param":
        """Uniform (log-uniform when `log`) over [low, high]; either end may be open."""
        return cls("float", low, high, log=log, low_open=low_open, high_open=high_open)

    @classmethod
    def integer(cls, low: int, high: int, step: int = 1, log: bool = False) -> "Param":
        """low, low+step, ..., high."""
        return cls("int", low, high, log=log, step=step)

    @classmethod
    def power_of(cls, base: int, low: int, high: int) -> "Param":
        """The powers of `base` in [low, high], each equally likely (TAO's ``math_cond: "^ k"``)."""
        if not (_is_int(base) and base >= 2):
            raise ValueError(f"`base >= 2` must hold for an integer base, but got (base={base!r}).")
        if not (_is_int(low) and _is_int(high)) or not 1 <= low <= high:
            raise ValueError(f"`1 <= low <= high` must hold for integers, but got (low={low!r}, high={high!r}).")
        return cls("power_of", low, high, base=base, choices=_powers(base, low, high))

    @classmethod
    def categorical(cls, choices, weights=None, ordered: bool = False) -> "Param":
        """One of `choices`; `weights` is TAO's prior (reported, not used by Optuna's samplers)."""
        return cls("categorical", choices=tuple(_plain(c) for c in choices), ordered=ordered,
                   weights=None if weights is None else tuple(float(w) for w in weights))

    @classmethod
    def boolean(cls) -> "Param":
        """False or True, a fair coin as in TAO."""
        return cls("bool", choices=(False, True))

    # --- validation (Optuna's words; Optuna checks again when `optuna` is built) ----------------------
    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"`kind` must be one of {', '.join(KINDS)}, but got {self.kind!r}.")
        if self.kind in ("float", "int"):
            ok = _is_real if self.kind == "float" else _is_int
            if not (ok(self.low) and ok(self.high) and math.isfinite(self.low) and math.isfinite(self.high)):
                what = "real numbers" if self.kind == "float" else "integers"
                raise ValueError(f"`low` and `high` must be finite {what}, but got (low={self.low!r}, "
                                 f"high={self.high!r}).")
            if not self.low <= self.high:
                raise ValueError(f"`low <= high` must hold, but got (low={self.low}, high={self.high}).")
            if self.log and not self.low > 0:
                raise ValueError(f"`low > 0` must hold for log=True, but got (low={self.low}, high={self.high}).")
        if self.kind == "float" and (self.low_open or self.high_open) and self.low == self.high:
            raise ValueError(f"an open interval needs `low < high`, but got (low={self.low}, high={self.high}).")
        if self.kind == "int" and (not _is_int(self.step) or self.step < 1 or (self.high - self.low) % self.step
                                   or (self.log and self.step != 1)):
            raise ValueError(f"`step` must be an integer >= 1 that divides `high - low` (1 for log=True), but "
                             f"got (low={self.low}, high={self.high}, step={self.step!r}).")
        if self.kind == "power_of" and not self.choices:
            raise ValueError(f"no power of {self.base} lies in [low, high], got (low={self.low}, high={self.high}).")
        if self.kind == "categorical":
            self._check_choices()

    def _check_choices(self) -> None:
        if not self.choices:
            raise ValueError("`choices` must contain one or more elements, but got ().")
        for i, choice in enumerate(self.choices):
            if choice is not None and not isinstance(choice, (bool, int, float, str)):
                raise ValueError(f"choices must be None, bool, int, float or str, but got {choice!r}.")
            if any(same_value(choice, other) for other in self.choices[:i]):
                raise ValueError(f"`choices` must be unique, but {choice!r} appears twice in {self.choices}.")
        if self.weights is not None:
            if len(self.weights) != len(self.choices):
                raise ValueError(f"`len(weights) == len(choices)` must hold, but got {len(self.weights)} "
                                 f"weights for {len(self.choices)} choices.")
            if any(not math.isfinite(w) or w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError(f"`weights` must be finite, >= 0 and not all 0, but got {self.weights}.")

    # --- what samplers see ---------------------------------------------------------------------
    @property
    def closed_low(self) -> float:
        """Smallest value Optuna may return (the next float inside an open bound)."""
        return math.nextafter(self.low, math.inf) if self.low_open else self.low

    @property
    def closed_high(self) -> float:
        return math.nextafter(self.high, -math.inf) if self.high_open else self.high

    @property
    def optuna(self):
        """Optuna's distribution for this parameter (optuna imported here, on first use)."""
        import optuna.distributions as od

        if self.kind == "float":
            return od.FloatDistribution(float(self.closed_low), float(self.closed_high), log=self.log)
        if self.kind == "int":
            return od.IntDistribution(self.low, self.high, log=self.log, step=self.step)
        return od.CategoricalDistribution(list(self.choices))

    def suggest(self, trial, name: str) -> Any:
        """Draw `name` in an Optuna trial with the public ``suggest_*`` call of this kind (Ray's
        OptunaSearch records define-by-run values through them)."""
        if self.kind == "float":
            return trial.suggest_float(name, float(self.closed_low), float(self.closed_high), log=self.log)
        if self.kind == "int":
            return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)
        return trial.suggest_categorical(name, list(self.choices))

    # --- TAO's dialect ---------------------------------------------------------------------------
    def contains(self, value: Any) -> bool:
        """True when `value` could have been drawn (open bounds excluded, True never taken for 1)."""
        value = _plain(value)
        if self.kind == "float":
            if not _is_real(value) or not math.isfinite(value):
                return False
            above = value > self.low if self.low_open else value >= self.low
            below = value < self.high if self.high_open else value <= self.high
            return bool(above and below)
        if self.kind == "int":
            return _is_int(value) and self.low <= value <= self.high and (value - self.low) % self.step == 0
        return any(same_value(value, c) for c in self.choices)

    def restricted(self, *, low: Optional[float] = None, high: Optional[float] = None,
                   low_open: bool = False, high_open: bool = False) -> "Param":
        """The intersection with another interval (``depends_on`` relations); ValueError when empty."""
        if self.kind == "float":
            new_low, new_low_open = self.low, self.low_open
            if low is not None and (low > new_low or (low == new_low and low_open)):
                new_low, new_low_open = low, low_open
            new_high, new_high_open = self.high, self.high_open
            if high is not None and (high < new_high or (high == new_high and high_open)):
                new_high, new_high_open = high, high_open
            return Param.real(new_low, new_high, self.log, new_low_open, new_high_open)
        if self.kind == "int":
            new_low, new_high = self.low, self.high
            if low is not None:
                first = math.floor(low) + 1 if low_open else math.ceil(low)
                new_low = max(new_low, self.low + -(-(first - self.low) // self.step) * self.step)
            if high is not None:
                last = math.ceil(high) - 1 if high_open else math.floor(high)
                new_high = min(new_high, self.low + ((last - self.low) // self.step) * self.step)
            return Param.integer(int(new_low), int(new_high), self.step, self.log)
        if self.kind == "power_of":
            kept = [c for c in self.choices if (low is None or (c > low if low_open else c >= low))
                    and (high is None or (c < high if high_open else c <= high))]
            if not kept:
                raise ValueError(f"no power of {self.base} in [{self.low}, {self.high}] satisfies "
                                 f"low={low}, high={high}.")
            return Param.power_of(self.base, kept[0], kept[-1])
        raise ValueError(f"a {self.kind} parameter cannot be narrowed by a relation")

    def to_dict(self) -> dict:
        """JSON-ready description for search_space.json, results.json and the review."""
        if self.kind == "float":
            return {"kind": "float", "low": self.low, "high": self.high, "log": self.log,
                    "low_open": self.low_open, "high_open": self.high_open}
        if self.kind == "int":
            return {"kind": "int", "low": self.low, "high": self.high, "step": self.step, "log": self.log}
        if self.kind == "power_of":
            return {"kind": "power_of", "base": self.base, "low": self.low, "high": self.high,
                    "choices": list(self.choices)}
        if self.kind == "bool":
            return {"kind": "bool", "p_true": 0.5}
        out = {"kind": "categorical", "choices": list(self.choices), "ordered": self.ordered}
        if self.weights is not None:
            out["weights"] = list(self.weights)
        return out
