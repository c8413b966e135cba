"""A sweep's trials as an in-memory Optuna study, for Optuna's plots (and ``optuna.visualization`` in a
notebook) on any finished sweep, straight from its ledger or results.json history.

    study = report_study(ledger.trials(), space, mode="min")   # or results.json's "history"

One Optuna trial per sweep trial, in launch order (trial number = position). A scored trial (completed,
or stopped early by the scheduler with its real, shorter-budget score: the report ranks both) is
COMPLETE with that score; every other one (failed, running, interrupted, no finite metric) is FAIL with
no value, as in the sweep's own study (automl/tune/backend.py): a trial without a score is never a number.
Each parameter keeps the Optuna distribution it was searched with (``Param.optuna``); one the space does
not know (no space, or a value outside it) gets a distribution spanning the values seen.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Sequence

SCORED = ("completed", "stopped")


def trial_score(trial: Mapping[str, Any]) -> Optional[float]:
    """The trial's ``metric``, or None: failed/running/interrupted trials and non-finite values never count
    (an interrupted trial neither finished nor counts toward the budget, so it cannot be the best)."""
    value = trial.get("metric")
    if trial.get("status") not in SCORED or trial.get("interrupted") or value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _observed(values: Sequence[Any]):
    """An Optuna distribution spanning `values` (for parameters the space does not describe)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    if all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        return FloatDistribution(float(min(values)), float(max(values)))
    return CategoricalDistribution(list(dict.fromkeys(values)))


def report_study(trials: Sequence[Mapping[str, Any]], space: Any = None, mode: str = "min"):
    """An in-memory ``optuna.Study`` holding `trials` (dicts with status, params, metric or score)."""
    import optuna
    from optuna.trial import TrialState, create_trial

    params_of = [{k: v for k, v in (t.get("params") or {}).items() if v is not None} for t in trials]
    known = dict(getattr(space, "params", None) or {})
    dists: Dict[str, Any] = {}
    for name in dict.fromkeys(k for p in params_of for k in p):
        values = [p[name] for p in params_of if name in p]
        param = known.get(name)
        fits = param is not None and all(param.contains(v) for v in values)
        dists[name] = param.optuna if fits else _observed(values)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory" line
    try:
        study = optuna.create_study(direction="minimize" if mode == "min" else "maximize")
    finally:
        optuna.logging.set_verbosity(verbosity)
    for trial, params in zip(trials, params_of):
        score = trial_score(trial)
        study.add_trial(create_trial(state=TrialState.COMPLETE if score is not None else TrialState.FAIL,
                                     value=score, params=params, distributions={k: dists[k] for k in params},
                                     user_attrs={"trial_id": str(trial.get("trial_id", "")),
                                                 "status": str(trial.get("status", ""))}))
    return study
