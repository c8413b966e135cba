"""The sweep driver: one parent MLflow run, attempts, interruption and resume, the final report.

Ray-free itself (automl/tune/backend.py holds every Ray/Optuna call); this is the order of events:
write launch.json -> create the MLflow experiment in this process (workers must never migrate a fresh
SQLite DB concurrently) -> reuse or start the parent run -> close trials a dead driver left running ->
run the remaining budget with Ray Tune -> judge complete/interrupted from the ledger -> write_report.

A sweep is ``completed`` only when its budget was used: every trial counted (``--num-samples`` or every
grid point) or the time budget spent (``--time-budget`` is for the whole sweep: each attempt books its
time in the ledger and a resumed attempt gets what is left). Anything else, Ctrl-C or SIGTERM, is
``interrupted`` and the resume command is printed; an error is ``failed`` (also resumable). SIGKILL
leaves the ledger as it was; ``--resume`` sorts it out: a trial whose own record says it finished is
kept, the others it left running are ``interrupted`` and not counted.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import List, Mapping, Optional

from automl.errors import AutomlError
from automl.plan.dead_params import mlflow_tags
from automl.plan.launch import LaunchPlan
from automl.tune.ledger import Ledger, finished_on_its_own
from automl.space.build import SearchSpace
from automl.space.grid import grid_points
from automl.tune.ray_session import ray_session
from automl.tune.backend import record_study, run_tune
from automl.tune.trial import TrialContext
from automl.tune.trial_runs import trial_dir
from automl.tune.trial_runs import end_trial_runs
from automl.tune.events import RUN_STATUS, finalize_finished, outcome_of, progress_line, run_tags

SEARCH_SPACE_FILE = "search_space.json"  # the full space, also an artifact of the parent run
BASE_SPEC_FILE = "base_spec.yaml"  # the trials' common spec, also an artifact of the parent run
DRIVER_FILE = "driver.json"  # <run_dir>/ledger/driver.json: the live driver's pid
_TAG_ROOM = 4000  # MLflow cuts tag values at 8000 characters; the tag must stay valid JSON


def _close_interrupted(ledger: Ledger, tracker, plan: LaunchPlan, printer) -> None:
    """Trials the ledger still shows running belong to a dead or stopped driver. A trial whose own record
    says it trained to the end (the driver died before writing the verdict) is kept as completed;
    the others are marked interrupted (not counted against the budget). Every MLflow run of theirs
    still RUNNING is closed: FINISHED for the kept trial's run, KILLED (or FAILED for an earlier Ray
    retry attempt) otherwise."""
    for t in ledger.unfinished():
        tid = t["trial_id"]
        if finished_on_its_own(ledger.progress(tid) or {}, plan.max_t):
            entry = finalize_finished(ledger, tid, "completed")
            printer(f"trial {tid} had finished before the sweep stopped: kept as completed")
            _end_runs(tracker, plan, entry, "FINISHED", run_tags(entry))
            continue
        entry = ledger.finalize(tid, "stopped", interrupted=True,
                                error="interrupted: the sweep stopped before this trial finished; not counted, "
                                      "the resumed sweep samples a new trial instead")
        printer(f"trial {tid} interrupted (not counted)")
        _end_runs(tracker, plan, entry, "KILLED", run_tags(entry))
    _reconcile_runs(ledger, tracker, plan)


def _reconcile_runs(ledger: Ledger, tracker, plan: LaunchPlan) -> None:
    """Make every trial run under this sweep's parent agree with its verdict, with no trial alive: the
    status its outcome gives (FINISHED completed/stopped, FAILED failed, KILLED interrupted), its
    ``automl.outcome`` tags, and the value it is ranked by (``best/val/<metric>``, ``best/step``) where the
    trial could not log it (its process was ended first, or the driver died before the verdict).
    Each run is read once and written only where it disagrees, so nothing is logged twice."""
    from automl.tune.trial_runs import TRIAL_TAG
    from stereo.tracking import PARENT_RUN_TAG

    parent_id = ledger.sweep().get("parent_run_id")
    if tracker is None or not parent_id:
        return
    with contextlib.suppress(Exception):  # tracking must never stop the sweep
        done = set()
        for run in tracker.find_runs(plan.experiment, tags={PARENT_RUN_TAG: parent_id}):
            entry = ledger.trial(run.tags.get(TRIAL_TAG, ""))
            if entry is None or entry["status"] == "running" or entry["trial_id"] in done:
                continue
            done.add(entry["trial_id"])
            _end_runs(tracker, plan, entry, RUN_STATUS[outcome_of(entry)], run_tags(entry), metric=plan.metric)


def _end_runs(tracker, plan: LaunchPlan, entry: dict, status: str, tags: Mapping[str, str], **kw) -> None:
    if tracker is not None:
        with contextlib.suppress(Exception):  # tracking must never stop the sweep
            end_trial_runs(tracker, plan.experiment, entry, status, tags, **kw)


def _space_tag(space: SearchSpace) -> str:
    """Short, valid JSON for the parent run's tag: the parameter names (the full space is an artifact)."""
    names = list(space.names)
    while True:
        text = json.dumps({"parameters": names, "more": len(space.names) - len(names), "full": SEARCH_SPACE_FILE})
        if len(text) <= _TAG_ROOM or not names:
            return text
        names = names[:-1]


def _parent_run(plan: LaunchPlan, tracker, ledger: Ledger, space: SearchSpace):
    from stereo.tracking import RunHandle

    known = ledger.sweep().get("parent_run_id")
    if known:
        return RunHandle(known, "", "sweep")
    d = plan.decision
    tags = {"automl.kind": "sweep", "automl.decision": d.mode, "automl.policy": d.policy_used,
            "automl.reasons": " | ".join(d.reasons), "automl.algorithm": plan.algorithm,
            "automl.scheduler": plan.scheduler, "automl.search_space": _space_tag(space),
            "automl.budget": f"{plan.num_samples} trials, {plan.max_concurrent} concurrent, time budget "
                             f"{plan.time_budget_s or 'none'}", "automl.run_dir": plan.run_dir,
            "automl.skill": plan.skill_name, **mlflow_tags(plan.dead, plan.keep_dead_params)}
    run = tracker.start_run(f"sweep {Path(plan.run_dir).name}", experiment=plan.experiment, tags=tags)
    tracker.log_params(run, {"metric": plan.metric, "mode": plan.mode, "algorithm": plan.algorithm,
                             "scheduler": plan.scheduler, "num_samples": plan.num_samples,
                             "max_concurrent": plan.max_concurrent, "grace_period": plan.grace_period,
                             "reduction_factor": plan.reduction_factor, "max_t": plan.max_t, "seed": plan.seed,
                             "cpus_per_trial": plan.cpus_per_trial, "gpus_per_trial": plan.gpus_per_trial,
                             "search_space": plan.search_space_file or "schema defaults",
                             **_goal_params(plan)})
    ledger.update_sweep(parent_run_id=run.run_id)
    from stereo.atomic_io import atomic_write_text

    path = atomic_write_text(Path(plan.run_dir) / SEARCH_SPACE_FILE, json.dumps(space.to_dict(), indent=1, default=str))
    tracker.log_artifact(run, str(path))
    tracker.log_artifact(run, str(write_base_spec(plan)))
    return run


def _goal_params(plan: LaunchPlan) -> dict:
    """The parent run's objectives, constraints and warm start as params (one objective: metric/mode say it)."""
    objectives, constraints = plan.goals()
    out = {"objectives": ", ".join(o.text() for o in objectives)} if len(objectives) > 1 else {}
    if constraints:
        out["constraints"] = ", ".join(c.text() for c in constraints)
    if plan.warm_start:
        out.update(warm_start=plan.warm_start["source"], warm_start_trials=len(plan.warm_start["trials"]))
    return out


def write_base_spec(plan: LaunchPlan) -> Path:
    """``<run_dir>/base_spec.yaml``: the spec every trial starts from (an artifact of the parent run, not
    ~360 params that would bury the sampled ones). Its results_dir names the trials' folder: the
    template's placeholder is never what a trial ran with."""
    import yaml

    from stereo.atomic_io import atomic_write_text

    base = {**plan.base_spec, "results_dir": str(Path(plan.run_dir) / "trials")}
    text = ("# the spec every trial of this sweep starts from; each trial sets its sampled values and\n"
            "# results_dir: <this folder>/trials/<trial id> (trials/<id>/train/experiment.yaml is the one it ran)\n"
            + yaml.safe_dump(base, sort_keys=False))
    return atomic_write_text(Path(plan.run_dir) / BASE_SPEC_FILE, text)


def run_sweep(plan: LaunchPlan, *, printer=print, stream=None) -> dict:
    """Run (or continue) the plan's sweep to its budget; returns ``{state, trials, report}``.

    State is ``completed`` only when the budget was used (all trials counted, or the time budget ran
    out); an interruption leaves ``interrupted`` and the resume command is printed. A folder another
    live driver is running is refused (:class:`RunInUseError`) before anything is touched.
    """
    run_dir = Path(plan.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(run_dir, metric=plan.metric, mode=plan.mode)
    _claim_run_dir(ledger)  # before anything is touched: a second driver would close the first one's trials
    try:
        return _run_sweep(plan, ledger, printer, stream)
    finally:
        (ledger.root / DRIVER_FILE).unlink(missing_ok=True)


def _claim_run_dir(ledger: Ledger) -> None:
    from automl.tune.run_owner import owner_alive, owner_record
    from stereo.atomic_io import atomic_write_json

    path = ledger.root / DRIVER_FILE
    with contextlib.suppress(OSError, ValueError):
        owner = json.loads(path.read_text())
        if isinstance(owner, dict) and owner_alive(owner):
            raise RunInUseError(f"{ledger.run_dir} is being run by another sweep driver (pid {owner['pid']}); wait "
                                f"for it to finish, or stop it (kill {owner['pid']}) and then resume")
    atomic_write_json(path, owner_record())


class RunInUseError(AutomlError):
    """Another live driver runs this sweep folder."""


def _run_sweep(plan: LaunchPlan, ledger: Ledger, printer, stream) -> dict:
    from automl.report.results import write_report
    from stereo.tracking import MlflowTracker, ensure_experiment

    run_dir = Path(plan.run_dir)
    plan.save()
    ensure_experiment(plan.tracking_uri, plan.experiment)  # schema + experiment before any worker logs
    tracker = MlflowTracker(plan.tracking_uri)
    space = plan.search_space()
    parent = _parent_run(plan, tracker, ledger, space)
    attempt = int(ledger.sweep().get("attempts", 0)) + 1
    ledger.update_sweep(state="running", attempts=attempt, parent_run_id=parent.run_id)
    printer(f"sweep {run_dir.name}: attempt {attempt}; if it is interrupted, resume with: {plan.resume_command()}")
    if plan.warm_start and attempt == 1:
        from automl.tune.warm_start import WarmStart

        warm = WarmStart(**plan.warm_start)
        printer(f"warm start: {warm.summary()}; they seed the Optuna study"
                + "".join(f"\n  differs: {d}" for d in warm.differences))
    _close_interrupted(ledger, tracker, plan, printer)
    target = len(grid_points(space, plan.grid_points)[0]) if plan.algorithm == "grid" else plan.num_samples

    def _term(signum, frame):  # SIGTERM outside Tune's own handler: unwind like Ctrl-C
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, _term) if _main_thread() else None
    clock = SweepClock(ledger, plan.time_budget_s)

    def progress(running: Optional[int] = None) -> str:
        return progress_line(ledger, target, clock.spent(), plan.metric, plan.mode, running)

    try:
        if len(ledger.counted()) < target and not clock.out_of_time():
            with ray_session(plan):  # inside, SIGTERM is turned into Ctrl-C: Tune stops gracefully
                run_tune(plan, space, trial_context(plan, parent.run_id), ledger, attempt, printer,
                         time_budget_s=clock.remaining(), tick=clock.tick, progress=progress)
    except (KeyboardInterrupt, SystemExit):
        pass  # judged below from the ledger, like an attempt that ended on its own
    except Exception:
        _close_interrupted(ledger, tracker, plan, printer)
        ledger.update_sweep(state="failed")
        with contextlib.suppress(Exception):
            tracker.end_run(parent, "FAILED")
        raise
    finally:
        clock.tick()
        if old is not None:
            signal.signal(signal.SIGTERM, old)
    _close_interrupted(ledger, tracker, plan, printer)
    record_study(plan, space, ledger)  # <run_dir>/study.journal agrees with every verdict (automl/tune/study.py)
    counted = len(ledger.counted())
    # the budget decides, not how the attempt ended: a signal after the last trial finished loses nothing
    complete = counted >= target or clock.out_of_time()
    state = "completed" if complete else "interrupted"
    ledger.update_sweep(state=state, counted=counted, target=target)
    trials = ledger.trials()

    def best_spec(trial_id: str):  # the report picks the best (by the one metric, or from the Pareto front)
        return _read_yaml(trial_spec_path(run_dir, trial_id))

    report = write_report(run_dir, trials, metric=plan.metric, mode=plan.mode, space=space, best_spec=best_spec,
                          complete=complete, tracker=tracker, parent_run=parent,
                          algorithm=f"{plan.algorithm}+{plan.scheduler}",
                          resume_command=None if complete else plan.resume_command(), stream=stream or sys.stdout,
                          step=attempt, objectives=plan.goals()[0], constraints=plan.goals()[1])
    counts = {s: sum(1 for t in trials if t["status"] == s and not t["interrupted"])
              for s in ("completed", "failed", "stopped")}
    tracker.log_metrics(parent, {f"trials_{k}": v for k, v in counts.items()}, step=attempt)
    tracker.set_tags(parent, {"automl.state": state})
    links = _describe_parent(plan, tracker, parent, report, space)
    tracker.end_run(parent, "FINISHED" if complete else "KILLED")
    if not complete:
        printer(f"sweep INCOMPLETE: {counted} of {target} trial(s) finished. Resume with: {plan.resume_command()}")
    printer(progress())
    for line in pointers(report, plan, links):
        printer(line)
    handed = None
    if getattr(plan, "then", None) == "deploy" and complete:  # --then deploy (automl/handoff.py)
        from automl.handoff import then_deploy

        best_id = (report.results.get("best") or {}).get("trial_id")  # the report's pick (front or metric)
        best = next((t for t in trials if t["trial_id"] == best_id), None)
        if best is None:
            printer("then deploy: no trial was scored, so there is nothing to deploy")
        else:
            handed = then_deploy(plan, best, best_spec(best["trial_id"]) or {}, tracker, parent.run_id, printer)
    return {"state": state, "trials": trials, "report": report, "links": links, "then_deploy": handed}


def _describe_parent(plan: LaunchPlan, tracker, parent, report, space: SearchSpace):
    """The sweep's shared view in the UI (automl/ui/links.py) and the parent run's note (automl/report/note.py);
    returns the links (None when tracking failed: that must never fail a finished sweep)."""
    from automl.report.note import sweep_note
    from automl.ui.links import publish_sweep_view

    try:
        links = publish_sweep_view(tracker, plan.experiment, parent.run_id, list(space.names), plan.metric,
                                   plan.mode, report.results.get("history", []))
        budget = (f"{plan.num_samples} trials, {plan.max_concurrent} at a time, time budget "
                  f"{plan.time_budget_s or 'none'}, max_t {plan.max_t} validations")
        tracker.set_note(parent, sweep_note(
            name=Path(plan.run_dir).name, results=report.results, metric=plan.metric, mode=plan.mode,
            decision=plan.decision.to_dict(), budget=budget, algorithm=f"{plan.algorithm}+{plan.scheduler}",
            experiment_id=links.experiment_id, parent_run_id=parent.run_id, links=links,
            report_path=str(report.html_path)))
        return links
    except Exception as exc:  # noqa: BLE001 - the report on disk is complete; say what is missing
        print(f"warning: could not write the sweep's MLflow view and note: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return None


def pointers(report, plan: LaunchPlan, links=None) -> List[str]:
    """Where the results are, a UI command that works as printed, and the links that open the trials
    ranked (with the sampled values as columns) and the compare view of the best ones once it runs."""
    from automl.ui.server import ui_command

    def where(path) -> str:
        return str(path) if path else "none (no trial was scored)"

    lines = [f"report:          {report.html_path}"]
    best = (report.results.get("best") or {}).get("trial_id")
    if getattr(plan, "stage", "train") == "deploy":  # nothing was trained: the best trial's deployed graph
        folder = Path(plan.run_dir) / "trials" / str(best) / "export"
        graphs = [g for g in (folder / "model_int8.onnx", folder / "model.onnx") if best and g.is_file()]
        lines.append(f"best graph:      {graphs[0] if graphs else 'none (no trial was scored)'}")
    else:
        lines += [f"best spec:       {where(report.best_spec_path)}",
                  f"best checkpoint: {where(report.best_checkpoint)}"]
    lines.append(f"MLflow UI:       {ui_command(plan.tracking_uri, plan.run_dir)}")
    if links is not None:
        lines.append(f"  then open:     {links.runs}")
        if links.compare:
            lines.append(f"  compare top:   {links.compare}")
    return lines


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class SweepClock:
    """--time-budget is for the whole sweep: every attempt books its time in the ledger (``elapsed_s``)
    and a resumed attempt gets only what is left."""

    def __init__(self, ledger: Ledger, budget_s: Optional[float]):
        self.ledger, self.budget = ledger, float(budget_s) if budget_s else None
        self.before, self.started = ledger.elapsed(), time.time()

    def spent(self) -> float:
        return self.before + time.time() - self.started

    def tick(self) -> None:
        self.ledger.update_sweep(elapsed_s=round(self.spent(), 3))

    def remaining(self) -> Optional[float]:
        return None if self.budget is None else max(0.0, self.budget - self.spent())

    def out_of_time(self) -> bool:
        # Tune stops starting trials at the budget, so the last few percent are spent in the final trials
        return self.budget is not None and self.spent() >= 0.95 * self.budget


def _read_yaml(path: Path) -> Optional[dict]:
    import yaml

    return yaml.safe_load(path.read_text()) if path.is_file() else None


def trial_context(plan: LaunchPlan, parent_run_id: Optional[str]) -> TrialContext:
    return TrialContext(run_dir=plan.run_dir, base_spec=plan.base_spec, metric=plan.metric, mode=plan.mode,
                        tracking_uri=plan.tracking_uri, experiment=plan.experiment, parent_run_id=parent_run_id,
                        cpus_per_trial=plan.cpus_per_trial, sweep_name=Path(plan.run_dir).name, max_t=plan.max_t,
                        scheduler=plan.scheduler, deploy=dict(plan.deploy or {}),
                        workers=int(plan.workers_per_trial), use_gpu=plan.gpus_per_trial >= 1)


def trial_spec_path(run_dir: str | os.PathLike, trial_id: str) -> Path:
    return trial_dir(run_dir, trial_id) / "train" / "experiment.yaml"

