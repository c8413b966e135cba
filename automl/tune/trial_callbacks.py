"""Your own Lightning callbacks in every sweep trial: ``AUTOML_TRIAL_CALLBACKS=module:factory[,module:factory]``.

Each entry names a function, imported in the trial's process (Ray workers inherit the driver's
environment, so set the variable, and ``PYTHONPATH`` if the module is not installed, where you run
``automl run``). Before each attempt of each trial the factory is called with a :class:`TrialInfo`
and returns a ``pytorch_lightning.Callback``, a list of them, or None; they are added to that trial's
trainer after the sweep's own reporter, so at each hook they see the validation it has just booked in
the ledger, before it is reported to the scheduler. Examples: log extra plots of one trial, stop a trial
on a condition of yours (raise: the trial fails with your error as its reason), or, in our tests,
inject the failures the sweep must survive (tests/automl/trial_faults.py).

``automl run`` checks the variable before anything starts (:func:`check`): a malformed entry, a module
that does not import or a missing function is a one-line error naming the entry and the fix.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional

ENV = "AUTOML_TRIAL_CALLBACKS"


class TrialCallbacksError(ValueError):
    """``AUTOML_TRIAL_CALLBACKS`` cannot be used; the message names the entry and the fix."""


@dataclass(frozen=True)
class TrialInfo:
    """What a factory knows about the trial it equips."""

    trial_id: str  # "t0003": the Optuna trial number, unique across resumed attempts
    index: int  # that number as an int
    attempt: int  # 1, then 2, ... for Ray's retries (--max-failures)
    folder: Path  # <run_dir>/trials/<trial_id>
    params: Mapping[str, Any] = field(default_factory=dict)  # the sampled values, dotted keys


def _entries(text: str) -> List[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _factory(entry: str) -> Callable[[TrialInfo], Any]:
    module_name, sep, attr = entry.partition(":")
    if not sep or not module_name or not attr or not all(p.isidentifier() for p in module_name.split(".")) \
            or not all(p.isidentifier() for p in attr.split(".")):
        raise TrialCallbacksError(f"{ENV}: {entry!r} is not module:function (e.g. my_pkg.callbacks:make); "
                                  "separate several with commas")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's to fix
        raise TrialCallbacksError(f"{ENV}: cannot import {module_name!r} for {entry!r} ({type(exc).__name__}: "
                                  f"{exc}); install it or put its folder on PYTHONPATH") from None
    for part in attr.split("."):
        target = getattr(target, part, None)
    if not callable(target):
        raise TrialCallbacksError(f"{ENV}: {module_name!r} has no function {attr!r} (from {entry!r}); name a "
                                  "function that takes a TrialInfo and returns Lightning callbacks")
    return target


def factories(text: Optional[str] = None) -> List[Callable[[TrialInfo], Any]]:
    """The factories the variable names (``text`` defaults to the environment); [] when unset."""
    text = os.environ.get(ENV, "") if text is None else text
    return [_factory(entry) for entry in _entries(text)]


def check(text: Optional[str] = None) -> List[str]:
    """Problems with the variable, for ``automl run``'s pre-flight (one line each)."""
    try:
        factories(text)
    except TrialCallbacksError as exc:
        return [str(exc)]
    return []


def trial_callbacks(info: TrialInfo, text: Optional[str] = None) -> List[Any]:
    """Every callback the factories give this attempt of this trial, in the variable's order."""
    import pytorch_lightning as pl

    out: List[Any] = []
    for entry, make in zip(_entries(os.environ.get(ENV, "") if text is None else text), factories(text)):
        made = make(info)
        items = [] if made is None else list(made) if isinstance(made, (list, tuple)) else [made]
        for item in items:
            if not isinstance(item, pl.Callback):
                raise TrialCallbacksError(f"{ENV}: {entry} returned {type(item).__name__!r}, not a "
                                          "pytorch_lightning.Callback (return a callback, a list of them, or None)")
        out.extend(items)
    return out

