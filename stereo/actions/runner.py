"""The wrapper every ``depth_net`` action runs inside: results dir, experiment.yaml, status.json, tracking.

``run_action`` differs from TAO's status decorator in one way that matters: SUCCESS is *earned*. The
action function must return an :class:`ActionResult` whose declared outputs exist and are non-empty and
whose KPIs are all finite numbers; otherwise the action is a FAILURE with the reason (TAO reports
"finished successfully" after a NaN loss or with no predictions written).

Exit codes for the CLI (:func:`exit_code`): 0 success (or skipped), 2 bad input (stereo.errors.BadInputError
and its subclasses SpecError, DataError, ...; CheckpointError; FileNotFoundError), 1 any other failure. The
mapping is by exception type: each class carries its `exit_code` (stereo/errors.py, :func:`categorize`).

The tracker (MLflow store) is opened only after the action's pre-flight (stereo.actions.preflight) passed,
so bad input never creates a store; a run a killed process left RUNNING is ended KILLED when the same
action starts again in the same folder (:func:`close_abandoned_runs`).
"""
from __future__ import annotations

import contextlib

import dataclasses
import functools
import math
import os
import socket
import subprocess
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stereo.actions.layout import EXPERIMENT_FILE, action_dir, save_experiment_yaml
from stereo.actions.preflight import preflight
from stereo.actions.run_inputs import log_spec_datasets
from stereo.actions.status import STATUS_FILE, StatusLogger
from stereo.config.errors import SpecError
from stereo.config.spec import ExperimentSpec
from stereo.errors import EXIT_BAD_INPUT, EXIT_FAILURE, ActionError, StereoError, exit_code_of
from stereo.tracking.base import RunHandle, Tracker

DEFAULT_EXPERIMENT = "depth_net"
GIT_COMMIT_TAG = "mlflow.source.git.commit"  # the tag MLflow's UI shows as the source version
#: which process owns a run: a RUNNING run whose process is gone was killed (see close_abandoned_runs)
OUT_DIR_TAG, HOST_TAG, PID_TAG = "stereo.out_dir", "stereo.host", "stereo.pid"
EXIT_SUCCESS = 0
__all__ = ["ActionResult", "ActionContext", "run_action", "run_spec_action",
           "exit_code", "categorize", "EXIT_SUCCESS", "EXIT_FAILURE", "EXIT_BAD_INPUT"]


@dataclass
class ActionResult:
    """What an action returns. ``outputs`` are files/dirs (relative to the action dir, or absolute)
    that must exist and be non-empty for SUCCESS."""
    status: str = "SUCCESS"
    kpi: dict[str, float] = field(default_factory=dict)
    message: str = ""
    outputs: list[Path] = field(default_factory=list)
    kpi_logged: bool = False  # the action logged these metrics to the tracker as it went: do not log them twice


@dataclass
class ActionContext:
    """Handed to the action function: where to write and how to report progress."""
    action: str
    dir: Path
    spec: Mapping[str, Any]
    status: StatusLogger
    tracker: Tracker | None = None
    run: RunHandle | None = None
    last_step: int = 0

    def report(self, kpi: Mapping[str, Any], step: int | None = None, message: str = "") -> None:
        """Progress KPIs: one RUNNING line in status.json and the same keys as tracker metrics."""
        self.status.write("RUNNING", message, kpi=kpi)
        if step is not None:
            self.last_step = int(step)
        if self.tracker is not None and self.run is not None:
            self.tracker.log_metrics(self.run, kpi, step=self.last_step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self.tracker is not None and self.run is not None:
            self.tracker.log_artifact(self.run, str(path), artifact_path)


@functools.lru_cache(maxsize=1)
def git_revision() -> str:
    """HEAD of the checkout this package runs from, or 'unknown' (no git, not a checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5, check=True)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def is_bad_input(exc: BaseException) -> bool:
    return not isinstance(exc, ActionError) and exit_code_of(exc) == EXIT_BAD_INPUT


def categorize(exc: BaseException) -> tuple[str, int]:
    """(category, exit code) of an exception raised by an action; the code comes from its type."""
    if isinstance(exc, FileNotFoundError) and not isinstance(exc, StereoError):
        return "missing file", EXIT_BAD_INPUT  # a path the user gave (the CLI promises exit 2 for it)
    if is_bad_input(exc):
        return "bad input", EXIT_BAD_INPUT
    if isinstance(exc, (FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)):
        return "file system error", EXIT_FAILURE
    if isinstance(exc, NotImplementedError):
        return "not implemented", EXIT_FAILURE
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return "out of memory", EXIT_FAILURE
    return "runtime error", EXIT_FAILURE


def exit_code(outcome: ActionResult | BaseException) -> int:
    """0 success/skipped, 2 bad input, 1 failure — for a returned result or a raised exception."""
    if isinstance(outcome, ActionResult):
        return EXIT_SUCCESS if outcome.status in ("SUCCESS", "SKIPPED") else EXIT_FAILURE
    if isinstance(outcome, ActionError):
        return outcome.exit_code
    return categorize(outcome)[1]


def _one_line(exc: BaseException, limit: int = 500) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)  # python, numpy and one-element torch scalars
    except (TypeError, ValueError, RuntimeError):
        return None


def _kpi_problem(kpi: Mapping[str, Any]) -> str | None:
    for k, v in kpi.items():
        f = _as_float(v)
        if f is None:
            return f"kpi {k!r} is {v!r}, not a number"
        if not math.isfinite(f):
            return f"kpi {k!r} is {f} (not finite)"
    return None


def _output_problem(outputs: list[Path]) -> str | None:
    for p in outputs:
        if not p.exists():
            return f"declared output {p} was not written"
        if p.is_file() and p.stat().st_size == 0:
            return f"declared output {p} is empty"
        if p.is_dir() and not any(p.iterdir()):
            return f"declared output directory {p} is empty"
    return None


def _judge(name: str, result: Any, outputs: list[Path]) -> tuple[str, str]:
    """(final status, message) for what the action function returned."""
    if not isinstance(result, ActionResult):
        return "FAILURE", f"{name} returned {type(result).__name__}, expected an ActionResult"
    if result.status == "FAILURE":
        return "FAILURE", result.message or f"{name} reported FAILURE"
    if result.status == "SKIPPED":
        return "SKIPPED", result.message or f"{name} skipped."
    if result.status != "SUCCESS":
        return "FAILURE", f"{name} returned status {result.status!r}; expected SUCCESS, FAILURE or SKIPPED"
    problem = _kpi_problem(result.kpi) or _output_problem(outputs)
    if problem:
        return "FAILURE", problem
    return "SUCCESS", result.message or f"{name} finished successfully."


def run_action(name: str, spec_dict: Mapping[str, Any], results_dir: str | Path | None,
               fn: Callable[[ActionContext], ActionResult], *, tracker: Tracker | None = None,
               tags: Mapping[str, str] | None = None, experiment: str = DEFAULT_EXPERIMENT,
               parent_run_id: str | None = None, run_name: str | None = None) -> ActionResult:
    """Run ``fn(ctx)`` as action `name` and return its judged :class:`ActionResult`.

    Writes to ``<results_dir>/<name>/`` (or ``spec_dict[name]['results_dir']`` when set): experiment.yaml,
    then status.json STARTED … SUCCESS/FAILURE/SKIPPED. With a tracker, one run per action holds the
    flattened spec as params, tags action/model_type/git commit (+ `tags`), the final KPIs (unless the
    action logged them as it went: ``kpi_logged``), both files as
    artifacts, and ends FINISHED (success/skipped), FAILED, or KILLED (interrupt).

    A returned result that fails the checks comes back with status FAILURE (see :func:`exit_code`); an
    exception is logged as FAILURE and re-raised as :class:`ActionError` (its ``exit_code`` is 2 for bad input).
    """
    section = spec_dict.get(name)
    override = section.get("results_dir") if isinstance(section, Mapping) else None
    try:  # no status.json can exist without a directory: report these by exception only
        out_dir = action_dir(results_dir, name, override)
        out_dir.mkdir(parents=True, exist_ok=True)
    except (ValueError, OSError) as exc:
        category, code = ("bad input", EXIT_BAD_INPUT) if isinstance(exc, ValueError) else categorize(exc)
        raise ActionError(name, category, _one_line(exc), code, ActionResult("FAILURE")) from exc
    status = StatusLogger(out_dir)
    ctx = ActionContext(name, out_dir, spec_dict, status, tracker)
    try:
        status.write("STARTED", f"Starting {name}.")
        save_experiment_yaml(out_dir, spec_dict)
        if tracker is not None:
            model = spec_dict.get("model")
            model_type = model.get("model_type", "unknown") if isinstance(model, Mapping) else "unknown"
            run_tags = {"action": name, "model_type": str(model_type), GIT_COMMIT_TAG: git_revision(),
                        OUT_DIR_TAG: str(out_dir), HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()),
                        **(tags or {})}
            close_abandoned_runs(tracker, experiment, name, out_dir)
            ctx.run = tracker.start_run(run_name or name, experiment=experiment, tags=run_tags,
                                        parent_run_id=parent_run_id)
            tracker.log_params(ctx.run, spec_dict)
            log_spec_datasets(tracker, ctx.run, name, spec_dict)
        with tracker.system_metrics(ctx.run) if tracker is not None else contextlib.nullcontext():
            result = fn(ctx)  # the machine's CPU/memory/GPU sampled into the run meanwhile
    except (KeyboardInterrupt, SystemExit) as exc:
        status.write("FAILURE", f"{name} interrupted ({type(exc).__name__}).", verbosity="ERROR")
        _finish_tracking(ctx, {}, "KILLED")
        raise
    except Exception as exc:
        category, code = categorize(exc)
        message = _one_line(exc)
        status.write("FAILURE", f"{category}: {message}", verbosity="ERROR")
        _finish_tracking(ctx, {}, "FAILED")
        failed = ActionResult("FAILURE", {}, f"{category}: {message}", [])
        raise ActionError(name, category, message, code, failed) from exc

    outputs = [p if p.is_absolute() else out_dir / p for p in map(Path, getattr(result, "outputs", []) or [])]
    final, message = _judge(name, result, outputs)
    kpi = dict(result.kpi) if isinstance(result, ActionResult) else {}
    numeric = {k: f for k, f in ((k, _as_float(v)) for k, v in kpi.items()) if f is not None}
    status.write(final, message, kpi=numeric, verbosity="INFO" if final != "FAILURE" else "ERROR")
    logged = isinstance(result, ActionResult) and result.kpi_logged
    _finish_tracking(ctx, {} if logged else numeric, "FAILED" if final == "FAILURE" else "FINISHED")
    return ActionResult(final, kpi, message, outputs, kpi_logged=logged)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def close_abandoned_runs(tracker: Tracker, experiment: str, action: str, out_dir: Path) -> list[str]:
    """End KILLED the RUNNING runs of `action` in `out_dir` whose process (same host) no longer exists: what a
    SIGKILL, an OOM kill or a power cut leaves behind. A run of a live process, or of another host, is left
    alone. Returns the run ids closed; tracking problems only warn."""
    closed: list[str] = []
    try:
        leftovers = tracker.find_runs(experiment, tags={"action": action, OUT_DIR_TAG: str(out_dir)},
                                      status="RUNNING")
        host = socket.gethostname()
        for run in leftovers:
            pid = run.tags.get(PID_TAG, "")
            if run.tags.get(HOST_TAG) != host or not pid.isdigit() or _process_alive(int(pid)):
                continue
            handle = RunHandle(run.run_id, run.experiment_id, run.name, run.parent_run_id)
            tracker.set_tags(handle, {"stereo.ended_by": f"the next {action} in {out_dir}: process {pid} on "
                                                         f"{host} was gone"})
            tracker.end_run(handle, "KILLED")
            closed.append(run.run_id)
    except Exception as exc:  # noqa: BLE001 - closing leftovers must never stop the new run
        warnings.warn(f"could not close the {action} runs a killed process left RUNNING: {_one_line(exc)}",
                      RuntimeWarning, stacklevel=2)
    return closed


def _finish_tracking(ctx: ActionContext, kpi: dict[str, float], end_status: str) -> None:
    """Final metrics, experiment.yaml + status.json as artifacts, end status. Tracking problems are
    warned about, never allowed to turn a finished action into a crash."""
    if ctx.tracker is None or ctx.run is None:
        return
    try:
        if kpi:
            ctx.tracker.log_metrics(ctx.run, kpi, step=ctx.last_step)
        for fname in (EXPERIMENT_FILE, STATUS_FILE):
            if (ctx.dir / fname).exists():
                ctx.tracker.log_artifact(ctx.run, str(ctx.dir / fname))
        ctx.tracker.end_run(ctx.run, end_status)
    except Exception as exc:  # noqa: BLE001 - the action's own outcome must still be reported
        warnings.warn(f"tracking for {ctx.action} (run {ctx.run.run_id}) failed at the end: {_one_line(exc)}",
                      RuntimeWarning, stacklevel=2)


def action_tracker(spec: Any, name: str, tracker: Any = None) -> Tracker | None:
    """The tracker an action on a typed spec records to: `tracker` as given (False: none), else MLflow
    under the spec's results folder (see stereo.tracking.mlflow_tracker.default_tracker)."""
    from stereo.tracking.mlflow_tracker import default_tracker

    section = getattr(spec, name, None)
    out_dir = action_dir(spec.results_dir, name, getattr(section, "results_dir", None) or None)
    return default_tracker(spec.results_dir or out_dir.parent, tracker)


def require_spec(spec: Any, spec_type: type, function: str) -> None:
    """A library caller passed the typed spec (not a dict or a path): else a TypeError saying how to make one,
    instead of an AttributeError deep inside the action. `function`: the action function's name (for an
    ExperimentSpec action also its `load_spec(action=...)`)."""
    if isinstance(spec, spec_type):
        return
    name = spec_type.__name__
    how = (f"load_spec(path_or_dict, action='{function}')" if spec_type is ExperimentSpec
           else f"load_spec(path_or_dict, spec_type={name})")
    raise TypeError(f"{function}() takes {'an' if name[0] in 'AEIOU' else 'a'} {name}, got {type(spec).__name__}; "
                    f"make one with stereo.config.load.{how} (it checks every key)")


def check_or_raise(spec: Any, action: str, *, deep: bool = False) -> None:
    """For library callers: raise ActionError (exit code 2, `__cause__` the SpecError with every problem)
    when :func:`~stereo.actions.preflight.preflight` finds an error. Nothing is written and no tracker is
    opened before this."""
    problems = [p for p in preflight(spec, action, deep=deep) if p.is_error]
    if problems:
        error = SpecError(problems)
        message = "; ".join(p.render() for p in error.errors)
        raise ActionError(action, "bad input", message, 2, ActionResult("FAILURE", message=message)) from error


def run_spec_action(name: str, spec: Any, work: Callable[[ActionContext], Any],
                    summarize: Callable[[Any], ActionResult], *, tracker: Any = None,
                    parent_run_id: str | None = None, experiment: str = DEFAULT_EXPERIMENT,
                    run_name: str | None = None, tags: Mapping[str, str] | None = None) -> Any:
    """The shape every `depth_net` action on a typed spec shares.

    `work(ctx)` does the action and returns its own result object (a dataclass with `status` and
    `message`); `summarize(res)` turns it into the ActionResult that run_action judges (declared outputs
    must exist, KPIs must be finite). A FAILURE raises ActionError, so no caller can mistake it for
    success; otherwise the action's result comes back with the final status and message filled in.
    """
    check_or_raise(spec, name)  # bad input is one SpecError before any folder, status.json or store
    holder: dict[str, Any] = {}

    def body(ctx: ActionContext) -> ActionResult:
        holder["res"] = work(ctx)
        return summarize(holder["res"])

    result = run_action(name, dataclasses.asdict(spec), spec.results_dir or None, body,
                        tracker=action_tracker(spec, name, tracker), experiment=experiment,
                        parent_run_id=parent_run_id, run_name=run_name, tags=tags)
    if result.status == "FAILURE":
        raise ActionError(name, "failed checks", result.message, result=result)
    res = holder["res"]
    res.status, res.message = result.status, result.message
    return res
