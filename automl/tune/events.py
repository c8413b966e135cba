"""The driver's side of a trial's life: verdicts in the ledger, one console line per event plus the
progress line (on each event and at least every 30 s), and the trial's MLflow runs closed with their
outcome (``automl.outcome``: completed | stopped | failed | interrupted; docs/automl.md "Outcomes").
Ray-free: automl/tune/backend.py forwards Ray Tune's callback events here, and automl/driver.py uses
:func:`end_trial_runs` for trials a dead or stopped driver left running.

Why the driver closes runs at all: the trial process may be dead (SIGKILL, out of memory) or stopped
mid-step by the scheduler, so its run would stay RUNNING; and a Ray retry (``--max-failures``) opens one
run per attempt, of which only the last is the trial's. Every run of a finished trial ends in a
terminal state: the verdict's run with its status, earlier attempts' FAILED and tagged ``retried``.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, Mapping, Optional

from automl.tune.ledger import Ledger, finished_on_its_own
from automl.tune.trial_runs import INDEX_KEY, best_checkpoint_on_disk, end_trial_runs, trial_dir

OUTCOME_TAG = "automl.outcome"  # completed | stopped | failed | interrupted
RUN_STATUS = {"completed": "FINISHED", "stopped": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
PROGRESS_EVERY_S = 30.0  # the progress line is printed on each trial event and at least this often


def outcome_of(entry: Mapping[str, Any]) -> str:
    """completed / stopped (early, by the scheduler) / failed / interrupted (the sweep stopped first)."""
    return "interrupted" if entry.get("interrupted") else str(entry["status"])


def run_tags(entry: Mapping[str, Any]) -> Dict[str, str]:
    """The tags a trial's verdict run carries: its outcome, why it failed, where its best checkpoint is."""
    outcome = outcome_of(entry)
    tags = {OUTCOME_TAG: outcome, "automl.status": outcome}
    if entry.get("error"):
        tags["automl.error"] = str(entry["error"])
    if entry.get("checkpoint") and outcome in ("completed", "stopped"):
        tags["automl.checkpoint"] = str(entry["checkpoint"])
    return tags


def status_says_failed(run_dir, trial_id: str, reason: str) -> None:
    """A failed trial's ``train/status.json`` must end FAILURE with the reason. The trial's action writes
    it when it raises; it cannot when its process was killed (the file then ends RUNNING), nor when the
    training itself succeeded but the trial did not (it never validated): the line is appended here."""
    from stereo.actions.status import StatusLogger, read_status

    folder = trial_dir(run_dir, trial_id) / "train"
    try:
        lines = read_status(folder)
    except (FileNotFoundError, OSError, ValueError):
        return  # the trial failed before its action started (a bad sample): nothing claims otherwise
    if lines and lines[-1].get("status") != "FAILURE":
        StatusLogger(folder).write("FAILURE", f"trial failed: {reason}", verbosity="ERROR")


def _clock(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def progress_line(ledger: Ledger, target: int, spent_s: float, metric: str, mode: str,
                  running: Optional[int] = None) -> str:
    """'progress: 3 of 8 trials done (2 completed, 1 stopped, 0 failed), 2 running | best val/epe 3.73
    (t0005) | elapsed 1m23s | ETA 2m10s'. The ETA assumes the remaining trials take as long as the
    finished ones did on average (all attempts together). `running`: trials Ray has started and not
    ended (a trial that just started may not have written its ledger file yet); else the ledger's count."""
    trials = ledger.trials()
    counted = [t for t in trials if t["status"] != "running" and not t["interrupted"]]
    counts = {s: sum(1 for t in counted if t["status"] == s) for s in ("completed", "stopped", "failed")}
    if running is None:
        running = sum(1 for t in trials if t["status"] == "running")
    scored = [t for t in counted if t["metric"] is not None and t["status"] != "failed"]
    scored += [t for t in trials if t["status"] == "running" and t["metric"] is not None]  # best so far
    best = (min if mode == "min" else max)(scored, key=lambda t: t["metric"]) if scored else None
    left = max(0, int(target) - len(counted))
    eta = 0.0 if not left else (spent_s / len(counted) * left if counted else None)
    shown = f"best {metric} {best['metric']:.4g} ({best['trial_id']})" if best else "best: none yet"
    return (f"progress: {len(counted)} of {target} trials done ({counts['completed']} completed, "
            f"{counts['stopped']} stopped, {counts['failed']} failed), {running} running | {shown} | "
            f"elapsed {_clock(spent_s)} | ETA {_clock(eta)}")


def trial_id_of(config: Mapping[str, Any]) -> str:
    return f"t{int(config.get(INDEX_KEY, -1)):04d}"


def sampled(config: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in config.items() if not str(k).startswith("_")}


def finalize_finished(ledger: Ledger, trial_id: str, status: str) -> dict:
    """A completed or early-stopped verdict, with the trial's best checkpoint found on disk when its own
    record has none yet (Ray reports a stop before the trial thread writes it; a killed one never does)."""
    recorded = (ledger.progress(trial_id) or {}).get("checkpoint")
    found = None if recorded else best_checkpoint_on_disk(ledger.run_dir, trial_id)
    return ledger.finalize(trial_id, status, checkpoint=found)


class TrialEvents:
    """What the driver does per trial event; `tick()` books the sweep's elapsed time (--time-budget)."""

    def __init__(self, ledger: Ledger, *, metric: str, max_t: int, max_failures: int, experiment: str,
                 tracker=None, printer: Callable[[str], None] = print, tick: Optional[Callable[[], None]] = None,
                 progress: Optional[Callable[[Optional[int]], str]] = None):
        self.ledger, self.metric, self.max_t, self.max_failures = ledger, metric, max_t, max_failures
        self.experiment, self.tracker, self.printer, self.tick = experiment, tracker, printer, tick or (lambda: None)
        self.progress, self._shown, self.live = progress, 0.0, set()

    def heartbeat(self, force: bool = False) -> None:
        """The progress line, on each event (`force`) and at least every PROGRESS_EVERY_S."""
        now = time.monotonic()
        if self.progress is None or (not force and now - self._shown < PROGRESS_EVERY_S):
            return
        self._shown = now
        try:
            self.printer(self.progress(len(self.live)))
        except Exception as exc:  # noqa: BLE001 - a progress line must never stop the sweep
            self.printer(f"progress: unavailable ({exc})")

    def started(self, config: Mapping[str, Any]) -> None:
        shown = ", ".join(f"{k.split('.')[-1]}={v:.4g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}"
                          for k, v in sampled(config).items())
        self.printer(f"trial {trial_id_of(config)} started ({shown})")
        self.live.add(trial_id_of(config))
        self.heartbeat(force=True)

    def completed(self, config: Mapping[str, Any]) -> None:
        """Ray says the trial ended without an error: it returned, or the scheduler stopped it (also at
        max_t, when its budget is spent: that is complete)."""
        tid = trial_id_of(config)
        self.live.discard(tid)
        done = finished_on_its_own(self.ledger.progress(tid) or {}, self.max_t)
        self._close(finalize_finished(self.ledger, tid, "completed" if done else "stopped"), "FINISHED")

    def retrying(self, config: Mapping[str, Any], failures: int, died: str) -> None:
        tid = trial_id_of(config)
        progress = self.ledger.progress(tid) or {}
        attempt = int(progress.get("attempt", 1))
        self.printer(f"trial {tid} attempt {attempt} failed ({progress.get('error') or died}); retrying "
                     f"({failures} of --max-failures {self.max_failures})")
        self._end_runs({"trial_id": tid}, "FAILED", None, up_to_attempt=attempt)
        self.tick()
        self.heartbeat(force=True)

    def errored(self, config: Mapping[str, Any], died: str) -> None:
        tid = trial_id_of(config)
        self.live.discard(tid)
        reason = (self.ledger.progress(tid) or {}).get("error") or died
        entry = self.ledger.finalize(tid, "failed", error=reason, params=sampled(config))
        try:  # the trial's process has ended (it raised, or it died): nothing else writes its status.json
            status_says_failed(self.ledger.run_dir, tid, entry["error"] or reason)
        except OSError as exc:
            self.printer(f"warning: could not write the FAILURE line of {tid}'s status.json: {exc}")
        self._close(entry, "FAILED")

    def _close(self, entry: Optional[dict], end_status: str) -> None:
        self.tick()
        if entry is None:
            return
        metric = "n/a" if entry["metric"] is None else f"{entry['metric']:.4g}"
        deployed = ", ".join(f"{k}={v:.4g}" for k, v in sorted((entry.get("metrics") or {}).items())
                             if k.startswith("deploy/") and k != self.metric)  # --score-on deploy
        self.printer(f"trial {entry['trial_id']} {entry['status']}: {self.metric}={metric} after {entry['epochs']} "
                     f"validation(s)" + (f"; {deployed}" if deployed else "")
                     + (f" ({entry['error']})" if entry["error"] else ""))
        # the trial may still be finishing (writing status.json, its checkpoint artifact, best/<metric>):
        # only its run's status and tags are set here; driver.py fills a missing best/<metric> at the end
        self._end_runs(entry, end_status, run_tags(entry))
        self.heartbeat(force=True)

    def _end_runs(self, entry: Mapping[str, Any], status: str, tags, **kw) -> None:
        if self.tracker is None:
            return
        try:
            end_trial_runs(self.tracker, self.experiment, entry, status, tags, **kw)
        except Exception as exc:  # noqa: BLE001 - tracking must never stop the sweep
            self.printer(f"warning: could not update the MLflow runs of {entry['trial_id']}: {exc}")
