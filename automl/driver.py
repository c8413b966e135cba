"""The sweep driver: one parent MLflow run, attempts, interruption and resume, the final report.

Ray-free itself (automl/sweep.py holds every Ray/Optuna call); this is the order of events:
write launch.json -> create the MLflow experiment in this process (workers must never migrate a fresh
SQLite DB concurrently) -> reuse or start the parent run -> close trials a dead driver left running ->
run the remaining budget with Ray Tune -> judge complete/interrupted from the ledger -> write_report.

A sweep is ``completed`` only when its budget was used: every trial counted (``--num-samples`` or every
grid point) or the time budget spent. Anything else, Ctrl-C, SIGTERM, an exception, is ``interrupted``
and the resume command is printed. SIGKILL leaves the ledger as it was; ``--resume`` sorts it out.
"""
from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from automl.launch import LaunchPlan
from automl.ledger import Ledger
from automl.space import SearchSpace
from automl.sweep import grid_points, ray_session, run_tune, trial_context, trial_spec_path
def _close_interrupted(ledger: Ledger, tracker, plan: LaunchPlan, printer) -> None:
    """Trials the ledger still shows running belong to a dead or stopped driver: mark them interrupted
    (not counted against the budget) and close their MLflow runs as KILLED."""
    from stereo.tracking import RunHandle

    for t in ledger.unfinished():
        ledger.finalize(t["trial_id"], "stopped", interrupted=True,
                        error="interrupted: the sweep stopped before this trial finished; not counted, the "
                              "resumed sweep samples a new trial instead")
        printer(f"trial {t['trial_id']} interrupted (not counted)")
        if tracker is not None and t["run_id"]:
            with contextlib.suppress(Exception):
                tracker.end_run(RunHandle(t["run_id"], "", t["trial_id"]), "KILLED")
                tracker.set_tags(RunHandle(t["run_id"], "", t["trial_id"]), {"automl.status": "interrupted"})


def _parent_run(plan: LaunchPlan, tracker, ledger: Ledger, space: SearchSpace):
    from stereo.tracking import RunHandle

    known = ledger.sweep().get("parent_run_id")
    if known:
        return RunHandle(known, "", "sweep")
    d = plan.decision
    tags = {"automl.kind": "sweep", "automl.decision": d["mode"], "automl.policy": d["policy_used"],
            "automl.reasons": " | ".join(d.get("reasons", ())), "automl.algorithm": plan.algorithm,
            "automl.scheduler": plan.scheduler, "automl.search_space": json.dumps(space.to_dict(), default=str),
            "automl.budget": f"{plan.num_samples} trials, {plan.max_concurrent} concurrent, time budget "
                             f"{plan.time_budget_s or 'none'}", "automl.run_dir": plan.run_dir,
            "automl.skill": plan.skill_name}
    run = tracker.start_run(f"sweep {Path(plan.run_dir).name}", experiment=plan.experiment, tags=tags)
    tracker.log_params(run, {"metric": plan.metric, "mode": plan.mode, "algorithm": plan.algorithm,
                             "scheduler": plan.scheduler, "num_samples": plan.num_samples,
                             "max_concurrent": plan.max_concurrent, "grace_period": plan.grace_period,
                             "reduction_factor": plan.reduction_factor, "max_t": plan.max_t, "seed": plan.seed,
                             "cpus_per_trial": plan.cpus_per_trial, "gpus_per_trial": plan.gpus_per_trial,
                             "search_space": plan.search_space_file or "schema defaults",
                             **{f"base.{k}": v for k, v in _flat(plan.base_spec).items()}})
    ledger.update_sweep(parent_run_id=run.run_id)
    return run


def _flat(spec: Mapping[str, Any]) -> Dict[str, Any]:
    from stereo.tracking import flatten_dict

    return flatten_dict(spec)


def run_sweep(plan: LaunchPlan, *, printer=print, stream=None) -> dict:
    """Run (or continue) the plan's sweep to its budget; returns ``{state, trials, report}``.

    State is ``completed`` only when the budget was used (all trials counted, or the time budget ran
    out); an interruption leaves ``interrupted`` and the resume command is printed.
    """
    from automl.report import write_report
    from stereo.tracking import MlflowTracker, ensure_experiment

    run_dir = Path(plan.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    plan.save()
    ledger = Ledger(run_dir, metric=plan.metric, mode=plan.mode)
    ensure_experiment(plan.tracking_uri, plan.experiment)  # schema + experiment before any worker logs
    tracker = MlflowTracker(plan.tracking_uri)
    space = plan.search_space()
    parent = _parent_run(plan, tracker, ledger, space)
    attempt = int(ledger.sweep().get("attempts", 0)) + 1
    ledger.update_sweep(state="running", attempts=attempt, parent_run_id=parent.run_id)
    printer(f"sweep {run_dir.name}: attempt {attempt}; if it is interrupted, resume with: {plan.resume_command()}")
    _close_interrupted(ledger, tracker, plan, printer)
    target = len(grid_points(space, plan.grid_points)[0]) if plan.algorithm == "grid" else plan.num_samples

    def _term(signum, frame):  # SIGTERM outside Tune's own handler: unwind like Ctrl-C
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, _term) if _main_thread() else None
    started, interrupted = time.time(), False
    try:
        if len(ledger.counted()) < target:
            with ray_session(plan):
                _, interrupted = run_tune(plan, space, trial_context(plan, parent.run_id), ledger, attempt, printer)
    except (KeyboardInterrupt, SystemExit):
        interrupted = True
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
    _close_interrupted(ledger, tracker, plan, printer)
    counted = len(ledger.counted())
    out_of_time = bool(plan.time_budget_s) and time.time() - started >= 0.95 * float(plan.time_budget_s)
    complete = not interrupted and (counted >= target or out_of_time)
    state = "completed" if complete else "interrupted"
    ledger.update_sweep(state=state, counted=counted, target=target)
    trials = ledger.trials()
    best = _best_trial(trials, plan.mode)
    best_spec = _read_yaml(trial_spec_path(run_dir, best["trial_id"])) if best else None
    report = write_report(run_dir, trials, metric=plan.metric, mode=plan.mode, space=space, best_spec=best_spec,
                          complete=complete, tracker=tracker, parent_run=parent,
                          algorithm=f"{plan.algorithm}+{plan.scheduler}",
                          resume_command=None if complete else plan.resume_command(), stream=stream or sys.stdout)
    counts = {s: sum(1 for t in trials if t["status"] == s and not t["interrupted"])
              for s in ("completed", "failed", "stopped")}
    tracker.log_metrics(parent, {f"trials_{k}": v for k, v in counts.items()}, step=attempt)
    tracker.set_tags(parent, {"automl.state": state})
    tracker.end_run(parent, "FINISHED" if complete else "KILLED")
    if not complete:
        printer(f"sweep INCOMPLETE: {counted} of {target} trial(s) finished. Resume with: {plan.resume_command()}")
    return {"state": state, "trials": trials, "report": report}


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _best_trial(trials: List[dict], mode: str) -> Optional[dict]:
    scored = [t for t in trials if t["metric"] is not None and t["status"] in ("completed", "stopped")]
    if not scored:
        return None
    return (min if mode == "min" else max)(scored, key=lambda t: t["metric"])


def _read_yaml(path: Path) -> Optional[dict]:
    import yaml

    return yaml.safe_load(path.read_text()) if path.is_file() else None
