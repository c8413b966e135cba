"""Search-space distributions that validate themselves (Optuna style), with no Optuna import.

Each distribution answers three questions: is this value inside me (`contains`), give me a random
value (`sample`, with a ``numpy.random.Generator``), and describe yourself for a report (`to_dict`).
The sweep launcher translates them into Optuna/Ray objects; everything else stays pure and fast.

TAO's schema dialect has open bounds (`math_cond: "> 0.0"` on `lr_decay` means (0, 1]), which Optuna
cannot express, so :class:`FloatDist` carries ``low_open``/``high_open`` and offers ``closed_low`` /
``closed_high``: the nearest representable floats inside the open interval.
"""
from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple

import numpy as np

#: rejection sampling only retries when a draw lands exactly on an open bound (probability ~0)
_MAX_REDRAWS = 64


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _same_value(a: Any, b: Any) -> bool:
    """Equality that keeps True apart from 1 (YAML and JSON both have real booleans)."""
    if isinstance(a, (bool, np.bool_)) or isinstance(b, (bool, np.bool_)):
        return isinstance(a, (bool, np.bool_)) and isinstance(b, (bool, np.bool_)) and bool(a) == bool(b)
    return a == b


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, so samples serialise to YAML/JSON unchanged."""
    return value.item() if isinstance(value, np.generic) else value


class Distribution(ABC):
    """What every search dimension offers the sweep and the reports."""

    kind: str = ""

    @abstractmethod
    def contains(self, value: Any) -> bool:
        """True when `value` could have been sampled from this distribution."""

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Any:
        """One random value (a plain Python scalar)."""

    @abstractmethod
    def to_dict(self) -> dict:
        """JSON-ready description, e.g. ``{"kind": "float", "low": 1e-6, "high": 1e-3, "log": True}``."""


@dataclass(frozen=True)
class FloatDist(Distribution):
    """Uniform (or log-uniform when `log`) over [low, high]; either end may be open."""

    low: float
    high: float
    log: bool = False
    low_open: bool = False
    high_open: bool = False
    kind = "float"

    def __post_init__(self) -> None:
        if not (_is_real(self.low) and _is_real(self.high)):
            raise ValueError(f"`low` and `high` must be real numbers, but got (low={self.low!r}, "
                             f"high={self.high!r}).")
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"`low` and `high` must be finite, but got (low={self.low}, high={self.high}).")
        if not self.low <= self.high:
            raise ValueError(f"`low <= high` must hold, but got (low={self.low}, high={self.high}).")
        if (self.low_open or self.high_open) and self.low == self.high:
            raise ValueError(f"an open interval needs `low < high`, but got (low={self.low}, high={self.high}).")
        if self.log and not self.low > 0:
            raise ValueError(f"`low > 0` must hold for log=True, but got (low={self.low}, high={self.high}).")

    @property
    def closed_low(self) -> float:
        """Smallest float the distribution may return (for samplers without open bounds)."""
        return float(np.nextafter(self.low, math.inf)) if self.low_open else float(self.low)

    @property
    def closed_high(self) -> float:
        return float(np.nextafter(self.high, -math.inf)) if self.high_open else float(self.high)

    def contains(self, value: Any) -> bool:
        if not _is_real(value) or not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return bool(above and below)

    def sample(self, rng: np.random.Generator) -> float:
        for _ in range(_MAX_REDRAWS):
            if self.log:
                value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
            else:
                value = self.low + rng.random() * (self.high - self.low)
            # exp/log round-off can step a hair outside; a draw exactly on an open end is drawn again
            # (clamping it to the next float would return e.g. a decay of 5e-324, which means 0)
            value = min(max(value, self.low), self.high)
            if self.contains(value):
                return float(value)
        raise RuntimeError(f"could not draw a value inside {self.to_dict()}")  # pragma: no cover

    def restricted(self, *, low: Optional[float] = None, high: Optional[float] = None,
                   low_open: bool = False, high_open: bool = False) -> "FloatDist":
        """The intersection with another interval (used by `depends_on` relations at sample time)."""
        new_low, new_low_open = self.low, self.low_open
        if low is not None and (low > new_low or (low == new_low and low_open)):
            new_low, new_low_open = low, low_open
        new_high, new_high_open = self.high, self.high_open
        if high is not None and (high < new_high or (high == new_high and high_open)):
            new_high, new_high_open = high, high_open
        return FloatDist(new_low, new_high, self.log, new_low_open, new_high_open)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "low": self.low, "high": self.high, "log": self.log,
                "low_open": self.low_open, "high_open": self.high_open}


@dataclass(frozen=True)
class IntDist(Distribution):
    """Integers low, low+step, ..., high (log-uniform over [low, high] when `log`)."""

    low: int
    high: int
    step: int = 1
    log: bool = False
    kind = "int"

    def __post_init__(self) -> None:
        if not (_is_int(self.low) and _is_int(self.high) and _is_int(self.step)):
            raise ValueError(f"`low`, `high` and `step` must be integers, but got (low={self.low!r}, "
                             f"high={self.high!r}, step={self.step!r}).")
        if not self.low <= self.high:
            raise ValueError(f"`low <= high` must hold, but got (low={self.low}, high={self.high}).")
        if self.step < 1:
            raise ValueError(f"`step >= 1` must hold, but got (step={self.step}).")
        if (self.high - self.low) % self.step:
            raise ValueError(f"`high - low` must be a multiple of `step`, but got (low={self.low}, "
                             f"high={self.high}, step={self.step}).")
        if self.log and self.step != 1:
            raise ValueError(f"`step == 1` must hold for log=True, but got (step={self.step}).")
        if self.log and self.low < 1:
            raise ValueError(f"`low >= 1` must hold for log=True, but got (low={self.low}, high={self.high}).")

    def contains(self, value: Any) -> bool:
        return (_is_int(value) and self.low <= value <= self.high
                and (value - self.low) % self.step == 0)

    def sample(self, rng: np.random.Generator) -> int:
        if self.log:
            # widen by half a unit so both end points keep their share after rounding
            value = round(math.exp(rng.uniform(math.log(self.low - 0.5), math.log(self.high + 0.5))))
            return int(min(max(value, self.low), self.high))
        count = (self.high - self.low) // self.step + 1
        return int(self.low + int(rng.integers(count)) * self.step)

    def restricted(self, *, low: Optional[float] = None, high: Optional[float] = None,
                   low_open: bool = False, high_open: bool = False) -> "IntDist":
        new_low, new_high = self.low, self.high
        if low is not None:
            first = math.floor(low) + 1 if low_open else math.ceil(low)
            new_low = max(new_low, self.low + -(-(first - self.low) // self.step) * self.step)
        if high is not None:
            last = math.ceil(high) - 1 if high_open else math.floor(high)
            new_high = min(new_high, self.low + ((last - self.low) // self.step) * self.step)
        return IntDist(int(new_low), int(new_high), self.step, self.log)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "low": self.low, "high": self.high, "step": self.step, "log": self.log}


@dataclass(frozen=True)
class PowerOfDist(Distribution):
    """The powers of `base` (base**0, base**1, ...) that lie in [low, high], each equally likely.

    TAO's `math_cond: "^ k"`: batch sizes and widths that must be powers of two.
    """

    base: int
    low: int
    high: int
    kind = "power_of"

    def __post_init__(self) -> None:
        if not (_is_int(self.base) and self.base >= 2):
            raise ValueError(f"`base >= 2` must hold for an integer base, but got (base={self.base!r}).")
        if not (_is_int(self.low) and _is_int(self.high)):
            raise ValueError(f"`low` and `high` must be integers, but got (low={self.low!r}, high={self.high!r}).")
        if not 1 <= self.low <= self.high:
            raise ValueError(f"`1 <= low <= high` must hold, but got (low={self.low}, high={self.high}).")
        if not self.choices:
            raise ValueError(f"no power of {self.base} lies in [low, high], got (low={self.low}, high={self.high}).")

    @property
    def choices(self) -> Tuple[int, ...]:
        out, value = [], 1
        while value <= self.high:  # exact integer arithmetic, no log round-off
            if value >= self.low:
                out.append(value)
            value *= self.base
        return tuple(out)

    def contains(self, value: Any) -> bool:
        return _is_int(value) and int(value) in self.choices

    def sample(self, rng: np.random.Generator) -> int:
        choices = self.choices
        return int(choices[int(rng.integers(len(choices)))])

    def restricted(self, *, low: Optional[float] = None, high: Optional[float] = None,
                   low_open: bool = False, high_open: bool = False) -> "PowerOfDist":
        kept = [c for c in self.choices
                if (low is None or (c > low if low_open else c >= low))
                and (high is None or (c < high if high_open else c <= high))]
        if not kept:
            raise ValueError(f"no power of {self.base} in [{self.low}, {self.high}] satisfies "
                             f"low={low}, high={high}.")
        return PowerOfDist(self.base, kept[0], kept[-1])

    def to_dict(self) -> dict:
        return {"kind": self.kind, "base": self.base, "low": self.low, "high": self.high,
                "choices": list(self.choices)}


@dataclass(frozen=True)
class CategoricalDist(Distribution):
    """One of `choices`, drawn with the normalised `weights` (uniform when None).

    `ordered` marks TAO `ordered_int` fields (the order carries meaning for model-based samplers).
    """

    choices: Tuple[Any, ...]
    weights: Optional[Tuple[float, ...]] = None
    ordered: bool = False
    kind = "categorical"

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(_plain(c) for c in self.choices))
        if not self.choices:
            raise ValueError("`choices` must contain one or more elements, but got ().")
        for choice in self.choices:
            if choice is not None and not isinstance(choice, (bool, int, float, str)):
                raise ValueError(f"choices must be None, bool, int, float or str, but got {choice!r}.")
        for i, choice in enumerate(self.choices):
            if any(_same_value(choice, other) for other in self.choices[:i]):
                raise ValueError(f"`choices` must be unique, but {choice!r} appears twice in {self.choices}.")
        if self.weights is not None:
            object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
            if len(self.weights) != len(self.choices):
                raise ValueError(f"`len(weights) == len(choices)` must hold, but got {len(self.weights)} "
                                 f"weights for {len(self.choices)} choices.")
            if any(not math.isfinite(w) or w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError(f"`weights` must be finite, >= 0 and not all 0, but got {self.weights}.")

    def contains(self, value: Any) -> bool:
        return any(_same_value(_plain(value), c) for c in self.choices)

    def sample(self, rng: np.random.Generator) -> Any:
        p = None if self.weights is None else np.asarray(self.weights) / sum(self.weights)
        return self.choices[int(rng.choice(len(self.choices), p=p))]

    def to_dict(self) -> dict:
        out = {"kind": self.kind, "choices": list(self.choices), "ordered": self.ordered}
        if self.weights is not None:
            out["weights"] = list(self.weights)
        return out


@dataclass(frozen=True)
class BoolDist(Distribution):
    """True with probability `p_true` (a fair coin by default, as in TAO)."""

    p_true: float = 0.5
    kind = "bool"

    def __post_init__(self) -> None:
        if not (_is_real(self.p_true) and 0.0 <= self.p_true <= 1.0):
            raise ValueError(f"`0 <= p_true <= 1` must hold, but got (p_true={self.p_true!r}).")

    def contains(self, value: Any) -> bool:
        return isinstance(value, (bool, np.bool_))

    def sample(self, rng: np.random.Generator) -> bool:
        return bool(rng.random() < self.p_true)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "p_true": self.p_true}


#: the distribution classes a `depends_on` relation can narrow
NUMERIC = (FloatDist, IntDist, PowerOfDist)


def as_rng(rng: Any = None) -> np.random.Generator:
    """A Generator from a Generator, a seed or None (fresh entropy)."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


__all__: Sequence[str] = ("Distribution", "FloatDist", "IntDist", "PowerOfDist", "CategoricalDist",
                          "BoolDist", "NUMERIC", "as_rng")
