"""The sweep's durable memory: one small JSON file per trial in the run folder, written atomically.

Why our own ledger: Ray Tune saves its experiment state only every so often, so after a SIGKILL of the
driver ``Tuner.restore`` re-runs trials that had already finished and a logger callback duplicates
their MLflow runs (docs/automl.md, stack_facts §3). The ledger is written *when things happen* and is
the only thing ``automl run --resume`` trusts: a finished trial is never run again.

Layout under ``<run_dir>/ledger/``::

    sweep.json                      state (running | interrupted | completed | failed), parent run id, attempts,
                                    elapsed_s (all attempts together: --time-budget is for the whole sweep)
    trials/<trial_id>.progress.json written by the trial process: params, MLflow run id, one row per validation,
                                    its own outcome (completed | stopped | failed | interrupted) and peak memory
    trials/<trial_id>.json          written by the driver when the trial ends: status and reason

Two writers never share a file, so a trial that is still winding down cannot overwrite the driver's
verdict. Reading merges both: the verdict wins for status/error, the progress file for everything else.

The trial dict (shared with automl/report/results.py ``write_report``)::

    {trial_id: "t0003",           # "t" + Optuna trial number: unique across resumed attempts
     status: "completed" | "failed" | "stopped" | "running",
     params: {dotted key: value}, # the sampled values only
     metric: float | None,        # best value of the sweep metric over the trial's validations (its best
                                  # checkpoint); None when it never validated. Never 0 for a failure.
     metrics: {...},              # every val/* metric of that best validation
     best_step: int | None,       # the training step of that validation (MLflow best/step)
     epochs: int,                 # validations reported (the scheduler's time unit)
     error: str | None,           # why it failed or was interrupted; None otherwise
     checkpoint: path | None, run_id: str | None, duration_s: float,
     index: int, history: [{iteration, epoch, step, <metrics>}], interrupted: bool, node: str | None,
     attempt: int, earlier_run_ids: [str]}  # Ray retries (--max-failures): the earlier attempts' MLflow runs

The sweep metric is looked up in either namespace (``epe`` finds ``val/epe``), as deploy KPIs use plain
names and training ``val/*``.

``stopped`` is an early stop by the scheduler (ASHA/HyperBand), or, with ``interrupted: true``, a trial
that was running when the driver died; interrupted trials do not count against ``--num-samples``.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Iterable, List, Mapping, Optional

from automl.errors import AutomlInputError
from stereo.atomic_io import atomic_write_json

STATUSES = ("completed", "failed", "stopped", "running")
FINAL = ("completed", "failed", "stopped")
SWEEP_STATES = ("running", "interrupted", "completed", "failed")
LEDGER_DIR = "ledger"


class LedgerError(AutomlInputError):
    """A ledger that cannot be used (missing, corrupt, wrong state); the message says what to do."""


def trial_id_for(index: int) -> str:
    return f"t{int(index):04d}"


def _read(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:  # atomic writes make this a foreign edit, not a crash artefact
        raise LedgerError(f"{path}: not valid JSON ({exc}); restore or delete the file") from None


def metric_value(row: Mapping[str, Any], name: str) -> Optional[float]:
    """The finite value of metric `name` in `row`, either namespace ('epe' finds 'val/epe' and back), or None."""
    from stereo.metrics import find_metric

    if str(name).startswith("deploy/"):  # a deployed-model metric is never a validation's namesake
        return _finite(row.get(name))
    try:
        return _finite(find_metric(row, name))
    except (KeyError, ValueError):
        return None


def best_key(metric: str) -> str:
    """The MLflow metric a trial (and the sweep's parent run) is ranked by: 'epe' and 'val/epe' both give
    'best/val/epe', the key the train action logs for the checkpoint it keeps (its monitor); a deployed-model
    metric keeps its namespace ('deploy/epe' -> 'best/deploy/epe', automl/tune/deploy_score.py)."""
    if str(metric).startswith("deploy/"):
        return "best/" + str(metric)
    return "best/val/" + str(metric).rsplit("/", 1)[-1]


def finished_on_its_own(progress: Mapping[str, Any], max_t: int) -> bool:
    """The trial's own record says it trained its whole budget: it returned, or it validated max_t times
    (the scheduler stops every trial at max_t, and Ray may say so before the trial wrote its outcome)."""
    outcome = progress.get("outcome")
    return outcome == "completed" or (outcome != "failed" and len(progress.get("history") or []) >= max_t)


def _finite(value: Any) -> Optional[float]:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


class Ledger:
    """Per-trial state in ``<run_dir>/ledger``; safe to use from the driver and from trial processes."""

    def __init__(self, run_dir: str | os.PathLike, *, metric: str = "val/epe", mode: str = "min"):
        if mode not in ("min", "max"):
            raise LedgerError(f"mode={mode!r} is not min or max; pass mode='min' or mode='max'")
        self.run_dir = Path(run_dir).expanduser().resolve()
        self.root = self.run_dir / LEDGER_DIR
        self.metric, self.mode = metric, mode

    # --- sweep -------------------------------------------------------------------------------------
    @property
    def sweep_file(self) -> Path:
        return self.root / "sweep.json"

    def sweep(self) -> dict:
        return _read(self.sweep_file) or {}

    def update_sweep(self, **fields: Any) -> dict:
        state = fields.get("state")
        if state is not None and state not in SWEEP_STATES:
            raise LedgerError(f"sweep state {state!r} is not one of {', '.join(SWEEP_STATES)}")
        data = {**self.sweep(), **fields, "updated": time.time()}
        atomic_write_json(self.sweep_file, data)
        return data

    def elapsed(self) -> float:
        """Seconds the sweep's attempts have run so far (booked by the driver, for --time-budget)."""
        return float(self.sweep().get("elapsed_s") or 0.0)

    # --- trial side (the trial process) ------------------------------------------------------------
    def _progress_file(self, trial_id: str) -> Path:
        return self.root / "trials" / f"{trial_id}.progress.json"

    def _final_file(self, trial_id: str) -> Path:
        return self.root / "trials" / f"{trial_id}.json"

    def start_trial(self, trial_id: str, index: int, params: Mapping[str, Any], attempt: int = 1,
                    node: Optional[str] = None) -> dict:
        """A trial (or a retry of it) begins: a fresh progress file; an earlier attempt's rows are dropped,
        its MLflow run id is kept in ``earlier_run_ids``."""
        before = self.progress(trial_id) or {}
        earlier = list(before.get("earlier_run_ids") or []) + ([before["run_id"]] if before.get("run_id") else [])
        data = {"trial_id": trial_id, "index": int(index), "params": dict(params), "attempt": int(attempt),
                "started": time.time(), "history": [], "run_id": None, "checkpoint": None, "outcome": None,
                "error": None, "pid": os.getpid(), "node": node, "earlier_run_ids": earlier}
        atomic_write_json(self._progress_file(trial_id), data)
        return data

    def progress(self, trial_id: str) -> Optional[dict]:
        return _read(self._progress_file(trial_id))

    def update_progress(self, trial_id: str, **fields: Any) -> dict:
        data = {**(self.progress(trial_id) or {"trial_id": trial_id, "history": []}), **fields}
        atomic_write_json(self._progress_file(trial_id), data)
        return data

    def add_validation(self, trial_id: str, row: Mapping[str, Any]) -> dict:
        data = self.progress(trial_id) or {"trial_id": trial_id, "history": []}
        data["history"] = list(data.get("history") or []) + [dict(row)]
        atomic_write_json(self._progress_file(trial_id), data)
        return data

    # --- driver side -------------------------------------------------------------------------------
    def finalize(self, trial_id: str, status: str, *, error: Optional[str] = None, interrupted: bool = False,
                 params: Optional[Mapping[str, Any]] = None, checkpoint: Optional[str] = None,
                 overwrite: bool = False) -> dict:
        """The driver's verdict. An existing verdict is kept unless `overwrite` (finished means finished).
        `checkpoint`: what the driver found on disk, for a trial that could not record its own."""
        if status not in FINAL:
            raise LedgerError(f"final status {status!r} is not one of {', '.join(FINAL)}")
        existing = _read(self._final_file(trial_id))
        if existing is not None and not overwrite:
            return self.trial(trial_id)
        atomic_write_json(self._final_file(trial_id), {"trial_id": trial_id, "status": status, "error": error,
                                                       "interrupted": bool(interrupted),
                                                       "params": dict(params or {}), "checkpoint": checkpoint,
                                                       "finished": time.time()})
        return self.trial(trial_id)

    def is_final(self, trial_id: str) -> bool:
        return self._final_file(trial_id).is_file()

    def verdict(self, trial_id: str) -> Optional[dict]:
        """The driver's verdict file alone ({status, error, interrupted, ...}), None before there is one."""
        return _read(self._final_file(trial_id))

    # --- reading -----------------------------------------------------------------------------------
    def trial_ids(self) -> List[str]:
        folder = self.root / "trials"
        if not folder.is_dir():
            return []
        ids = {p.name.split(".")[0] for p in folder.glob("t*.json")}
        return sorted(ids)

    def trial(self, trial_id: str) -> Optional[dict]:
        """The merged trial dict (module docstring), or None when the ledger has never seen it."""
        progress, final = self.progress(trial_id), _read(self._final_file(trial_id))
        if progress is None and final is None:
            return None
        progress = progress or {}
        final = final or {}
        history = list(progress.get("history") or [])
        best = self._best_row(history)
        started = progress.get("started")
        ended = final.get("finished") or progress.get("ended") or (time.time() if started else None)
        status = final.get("status", "running")
        if status == "failed":
            best = None  # a failure is never scored, whatever it validated before it died
        return {
            "trial_id": trial_id,
            "status": status,
            "params": dict(progress.get("params") or final.get("params") or {}),
            "metric": metric_value(best, self.metric) if best else None,
            "metrics": {k: v for k, v in (best or {}).items() if k not in ("iteration", "epoch", "step")},
            "best_step": int(best["step"]) if best and best.get("step") is not None else None,
            "epochs": len(history),
            "error": final.get("error") if final.get("status") else progress.get("error"),
            "checkpoint": progress.get("checkpoint") or final.get("checkpoint"),
            "run_id": progress.get("run_id"),
            "duration_s": round(float(ended - started), 3) if started and ended else 0.0,
            "index": int(progress.get("index", int(trial_id.lstrip("t") or 0))),
            "attempt": int(progress.get("attempt", 1)),
            "earlier_run_ids": list(progress.get("earlier_run_ids") or []),
            "history": history,
            "interrupted": bool(final.get("interrupted", False)),
            "node": progress.get("node"),
        }

    def _best_row(self, history: Iterable[Mapping[str, Any]]) -> Optional[dict]:
        scored = [(metric_value(row, self.metric), row) for row in history]
        scored = [(v, row) for v, row in scored if v is not None]
        if not scored:
            return None
        pick = min if self.mode == "min" else max
        return dict(pick(scored, key=lambda pair: pair[0])[1])

    def trials(self) -> List[dict]:
        return sorted((t for t in map(self.trial, self.trial_ids()) if t), key=lambda t: t["index"])

    def counted(self) -> List[dict]:
        """Trials that used up budget: every finished one except those interrupted by the driver's death."""
        return [t for t in self.trials() if t["status"] in FINAL and not t["interrupted"]]

    def unfinished(self) -> List[dict]:
        return [t for t in self.trials() if t["status"] == "running"]
