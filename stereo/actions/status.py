"""status.json: TAO's per-action progress log, one JSON object per line, appended and fsync'd.

Line fields (TAO's names): ``date`` "M/D/YYYY", ``time`` "H:M:S" (no zero padding), ``status`` ∈
STATUSES, ``verbosity``, ``message``, and optionally ``kpi``, ``categorical``, ``graphical``.

Difference from TAO: ``kpi`` is **merged** across writes (TAO replaces it), so the last line always
carries every KPI reported so far — e.g. ``train_loss`` survives the next ``val_loss`` write. A new
logger starts with an empty KPI set even when the file exists, so a rerun never shows stale numbers.
Non-finite KPI values are written as ``NaN``/``Infinity`` (Python's json, as TAO does), not dropped.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


STATUS_FILE = "status.json"
STATUSES = ("STARTED", "RUNNING", "SUCCESS", "FAILURE", "SKIPPED")
VERBOSITIES = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not hasattr(value, "__float__"):
        raise TypeError(f"kpi {key!r} must be a number, got {type(value).__name__} {value!r}")
    return float(value)  # numpy / 0-d torch scalars become plain floats


class StatusLogger:
    """Appends status lines to ``<results_dir>/status.json``."""

    def __init__(self, results_dir: str | os.PathLike, filename: str = STATUS_FILE, verbosity: str = "INFO"):
        self.path = Path(results_dir) / filename
        self.verbosity = _check_verbosity(verbosity)
        self.kpi: dict[str, float] = {}

    def write(self, status: str, message: str = "", *, kpi: Mapping[str, Any] | None = None,
              categorical: Mapping[str, Any] | None = None, graphical: Mapping[str, Any] | None = None,
              verbosity: str | None = None) -> dict[str, Any]:
        """Append one line; returns the object written."""
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {STATUSES}")
        if kpi:
            self.kpi.update({k: _number(k, v) for k, v in kpi.items()})
        now = _dt.datetime.now()
        line: dict[str, Any] = {
            "date": f"{now.month}/{now.day}/{now.year}",
            "time": f"{now.hour}:{now.minute}:{now.second}",
            "status": status,
            "verbosity": _check_verbosity(verbosity or self.verbosity),
            "message": str(message),
        }
        if self.kpi:
            line["kpi"] = dict(self.kpi)
        if categorical:
            line["categorical"] = dict(categorical)
        if graphical:
            line["graphical"] = dict(graphical)
        text = json.dumps(line, default=str) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One write per line, then fsync: a reader or a crash sees whole lines (at worst a torn last one).
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        return line


def _check_verbosity(v: str) -> str:
    if v not in VERBOSITIES:
        raise ValueError(f"verbosity {v!r} is not one of {VERBOSITIES}")
    return v


def read_status(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All lines of a status.json (ours or TAO's). A torn final line (crash mid-write) is skipped."""
    path = Path(path)
    if path.is_dir():
        path = path / STATUS_FILE
    if not path.exists():
        raise FileNotFoundError(f"no status file at {path}; did the action run with this results_dir?")
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    out = []
    for i, ln in enumerate(lines):
        try:
            out.append(json.loads(ln))
        except json.JSONDecodeError as exc:
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}: line {i + 1} is not JSON ({exc.msg}); the file is corrupt") from exc
    return out


def last_kpi(path: str | os.PathLike, metric: str | None = None) -> Any:
    """The ``kpi`` dict of the last line that has one ({} if none).

    With `metric`, that metric's value, found as 'val/epe' or 'epe' either way round (TAO's pyt evaluate
    writes 'val/epe', its deploy evaluate 'epe'); raises KeyError when it is missing. The value is
    returned even when it is NaN — use :func:`last_finite_kpi` to treat that as missing.
    """
    kpi: dict[str, Any] = {}
    for line in reversed(read_status(path)):
        if isinstance(line.get("kpi"), dict) and line["kpi"]:
            kpi = line["kpi"]
            break
    if metric is None:
        return kpi
    from stereo.metrics import find_metric  # lazy: stereo.metrics imports torch (pre-flight must not)

    return find_metric(kpi, metric)


def last_finite_kpi(path: str | os.PathLike, metric: str) -> float:
    """Like ``last_kpi(path, metric)`` but raises ValueError for a non-numeric or non-finite value."""
    value = last_kpi(path, metric)
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"kpi {metric!r} in {path} is {value!r}, not a number") from None
    if not math.isfinite(f):
        raise ValueError(f"kpi {metric!r} in {path} is {f}; the action produced no usable value")
    return f
