"""The sweep's Optuna study, kept in the run folder: ``<run_dir>/study.journal`` (Optuna's JournalStorage,
file backend), so Optuna's own tools open any sweep, finished, interrupted or running::

    optuna.load_study(study_name="automl", storage=JournalStorage(JournalFileBackend("<run_dir>/study.journal")))
    optuna-dashboard <run_dir>/study.journal

Trial number n is the sweep's trial ``t{n:04d}``. Who writes what:

- Ray's OptunaSearch (automl/tune/backend.py) asks the study for each trial's values and reports each
  validation of the sweep's metric as an intermediate value (step = validation count);
- the driver tells it each trial's **verdict** once the ledger holds it (:func:`tell_verdict`, from the
  trial-event callback), instead of OptunaSearch's own tell of the trial's *last* result: COMPLETE
  with the trial's best value (the number the ledger, results.json and MLflow's ``best/val/<metric>``
  rank by), PRUNED for an early stop by the scheduler, FAIL for a failure or an interruption (never a
  value). Each told trial carries the user attrs ``trial_id``, ``outcome`` and, for a failure, ``error``.

The ledger (automl/tune/ledger.py) stays the record of truth: a SIGKILL can fall between a verdict and
its tell, and Ray's own state is not trusted at all. At the start of every attempt and at its end
:func:`sync_study` tells every trial still RUNNING in the study what the ledger says (FAIL when the
ledger never saw it start), and adds, with their own numbers, the trials the study lacks (a run folder
from before the study file, or a deleted file: the study is rebuilt from the ledger). A trial number
is in the study once: a resume continues the same journal, never replays it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from automl.plan.objectives import values_of, violations_of
from automl.tune.events import outcome_of
from automl.tune.ledger import Ledger, metric_value

STUDY_FILE = "study.journal"
STUDY_NAME = "automl"
INFEASIBLE = 1e12  # a missing constraint metric: infeasible, and finite for the samplers

#: params -> {name: Optuna distribution} of the sweep's space (automl/tune/backend.py DefineByRun.distributions)
Distributions = Callable[[Mapping[str, Any]], Dict[str, Any]]


class StudyFileError(RuntimeError):
    """The study file cannot be read; the message says how to recover (the ledger rebuilds it)."""


def study_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / STUDY_FILE


def study_storage(run_dir: str | os.PathLike):
    """The run folder's JournalStorage (the file is created on first write)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(study_path(run_dir))))


def open_study(run_dir: str | os.PathLike, mode: str | Sequence[str] = "min", storage=None):
    """The sweep's study (on `storage`, default :func:`study_storage`), created on first use; `mode` a list of
    modes for several objectives."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = study_path(run_dir)
    modes = [mode] if isinstance(mode, str) else list(mode)
    try:
        return optuna.create_study(storage=storage or study_storage(run_dir), study_name=STUDY_NAME,
                                   load_if_exists=True,
                                   directions=["minimize" if m == "min" else "maximize" for m in modes])
    except (ValueError, KeyError, OSError) as exc:
        raise StudyFileError(f"{path} cannot be read ({type(exc).__name__}: {exc}); move it away and run again: the "
                             "study is rebuilt from the ledger, which holds every trial") from None


@dataclass(frozen=True)
class Goals:
    """The sweep's objectives and constraints (automl/plan/objectives.py) as the study sees them; without
    them the study's one value is the ledger's metric."""

    objectives: Tuple[Any, ...] = ()
    constraints: Tuple[Any, ...] = ()

    @property
    def many(self) -> bool:
        return len(self.objectives) > 1


def _violations(entry: Mapping[str, Any], goals: Goals) -> Dict[str, float]:
    """{constraint text: value} (<= 0 feasible), as Optuna 5 keeps them (``Trial.set_constraint``; every sampler
    and ``plot_pareto_front`` read ``trial.constraints``). A missing value is infeasible, finite for the samplers."""
    return {c.text(): min(v, INFEASIBLE) for c, v in zip(goals.constraints, violations_of(entry, goals.constraints))}


def verdict(entry: Optional[Mapping[str, Any]], goals: Optional[Goals] = None) -> Tuple[Any, Any]:
    """(Optuna TrialState, value or values) for a ledger trial: a failure teaches the sampler nothing, never a
    0; with several objectives a trial lacking one of them is FAIL too."""
    from optuna.trial import TrialState

    if not entry or entry["status"] == "running" or entry["interrupted"] or entry["status"] == "failed" \
            or entry["metric"] is None:
        return TrialState.FAIL, None
    if goals is None or not goals.objectives:
        if entry["status"] == "stopped":
            return TrialState.PRUNED, None
        return TrialState.COMPLETE, float(entry["metric"])
    values = list(values_of(entry, goals.objectives).values())
    if any(v is None for v in values):
        return TrialState.FAIL, None
    if entry["status"] == "stopped" and not goals.many:
        return TrialState.PRUNED, None
    return TrialState.COMPLETE, values if goals.many else values[0]


def _steps(entry: Optional[Mapping[str, Any]], metric: str) -> Dict[int, float]:
    """{validation count: value of the sweep's metric} of a trial's history (OptunaSearch's steps)."""
    rows = (entry or {}).get("history") or []
    return {int(r["iteration"]): v for r in rows if (v := metric_value(r, metric)) is not None}


def _attrs(entry: Optional[Mapping[str, Any]], number: int) -> Dict[str, str]:
    if not entry:
        return {"trial_id": f"t{number:04d}", "outcome": "never started"}
    attrs = {"trial_id": entry["trial_id"], "outcome": outcome_of(entry)}
    if entry.get("error"):
        attrs["error"] = str(entry["error"])
    return attrs


def tell_verdict(study, number: int, entry: Optional[Mapping[str, Any]], metric: str,
                 goals: Optional[Goals] = None) -> bool:
    """Tell the study trial `number` its ledger verdict (`entry`; None: it never started). A trial the
    study has already finished is left as it is (finished means finished); returns whether it told."""
    from optuna.trial import TrialState

    # Optuna's public API tells a trial by number but sets intermediate values and user attrs only on a
    # live optuna.Trial; its storage does both for any running trial (private names, Optuna is pinned)
    storage = study._storage
    trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    trial = storage.get_trial(trial_id)
    if trial.state != TrialState.RUNNING:
        return False
    if not (goals and goals.many):  # Optuna keeps no intermediate values for several objectives
        for step, value in _steps(entry, metric).items():
            if step not in trial.intermediate_values:  # what OptunaSearch did not report (the stopping result)
                storage.set_trial_intermediate_value(trial_id, step, value)
    for key, value in _attrs(entry, number).items():
        storage.set_trial_user_attr(trial_id, key, value)
    state, value = verdict(entry, goals)
    if goals and goals.constraints and state != TrialState.FAIL:
        import optuna

        live = optuna.trial.Trial(study, trial_id)
        for key, bound_gap in _violations(entry, goals).items():
            live.set_constraint(key, bound_gap)
    study.tell(number, value, state=state)
    return True


def sync_study(study, ledger: Ledger, metric: str, distributions: Optional[Distributions] = None,
               goals: Optional[Goals] = None) -> None:
    """Make the study agree with the ledger when no trial runs (see the module docstring)."""
    from optuna.trial import TrialState, create_trial

    known = {t["index"]: t for t in ledger.trials()}
    trials = study.get_trials(deepcopy=False)
    for trial in trials:
        entry = known.get(trial.number)
        if trial.state == TrialState.RUNNING and (entry is None or entry["status"] != "running"):
            tell_verdict(study, trial.number, entry, metric, goals)
    for number in range(len(trials), max(known, default=-1) + 1):  # what the study lacks, in number order
        entry = known.get(number)
        params = dict(entry["params"]) if entry else {}
        try:
            dists = distributions(params) if params and distributions else {}
        except (KeyError, ValueError):
            params, dists = {}, {}
        if params and not dists:
            params = {}
        state, value = verdict(entry, goals)
        many = bool(goals and goals.many)
        trial = create_trial(state=state, value=None if many else value, values=value if many else None,
                             params=params, distributions=dists,
                             intermediate_values=None if many else (_steps(entry, metric) or None),
                             user_attrs=_attrs(entry, number))
        if entry and goals and goals.constraints and state != TrialState.FAIL:
            for key, v in _violations(entry, goals).items():
                trial.set_constraint(key, v)
        study.add_trial(trial)


def seed_study(study, trials: Sequence[Mapping[str, Any]], distributions: Distributions, source: str,
               goals: Optional[Goals] = None) -> int:
    """--warm-start: add a finished sweep's completed trials (automl/tune/warm_start.py) to an empty study,
    as COMPLETE trials with their values (and constraint values); returns how many were added."""
    from optuna.trial import TrialState, create_trial

    many = bool(goals and goals.many)
    for t in trials:
        values = [float(v) for v in t["values"]]
        trial = create_trial(state=TrialState.COMPLETE, value=None if many else values[0],
                             values=values if many else None, params=dict(t["params"]),
                             distributions=distributions(t["params"]),
                             user_attrs={"trial_id": f"warm:{t['trial_id']}", "outcome": "completed",
                                         "warm_start": source})
        for c, v in zip(goals.constraints if goals else (), t["violations"]):
            trial.set_constraint(c.text(), min(float(v), INFEASIBLE))
        study.add_trial(trial)
    return len(trials)


def enqueue_missing(study, points: Sequence[Mapping[str, Any]], finished: List[Mapping[str, Any]]) -> int:
    """Grid: enqueue the points not finished yet and not already waiting in the study (an earlier
    attempt enqueued them); returns how many points are left to run."""
    from optuna.trial import TrialState

    waiting = [t.system_attrs.get("fixed_params")
               for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))]
    todo = [dict(p) for p in points if p not in finished]
    for point in todo:
        if point not in waiting:
            study.enqueue_trial(point)
    return len(todo)
