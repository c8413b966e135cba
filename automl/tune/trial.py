"""One sweep trial: sampled values -> a validated trial spec -> ``stereo.actions.train.train`` -> reports.

Ray-free on purpose (STYLE habit 8): automl/tune/backend.py wraps :func:`run_trial` for Ray and hands in
``report`` (``ray.tune.report``); tests call it with a plain function. What a trial does:

1. builds its spec: the sweep's base spec (template + skill key_defaults + the user's overrides and
   shorthands, see automl/plan/launch.py) with the sampled values set and ``results_dir`` =
   ``<run_dir>/trials/<trial_id>``, validated by ``load_spec`` (a bad combination fails the trial with
   the spec error, it is never scored);
2. trains through the normal train action, so the trial gets the same status.json, experiment.yaml,
   checkpoints and one MLflow run per attempt, nested under the sweep's parent run and tagged with the
   sampled keys; the best checkpoint is kept by the sweep's metric and mode;
3. reports every validation (all ``val/*`` metrics plus ``epoch``/``step``, and the sweep metric under
   the name it was given: ``epe`` and ``val/epe`` are the same metric) to the scheduler and the ledger.
   A NaN/inf metric, a missing metric, an exception or a dead process is a failed trial with its
   reason, never a 0. A Ray retry (``--max-failures``) ends the earlier attempt's run FAILED first.

A stop by the scheduler (ASHA/HyperBand, also at max_t) reaches us as ``SystemExit`` out of ``report``
(Ray's function-trainable session exits the training thread that way). We report after the epoch's
checkpoint is written and turn that stop into ``trainer.should_stop``: the training ends cleanly, so its
status.json reads SUCCESS ("stopped early by asha after N validations", or finished for a stop at
max_t), its checkpoints up to the stop are on disk and its MLflow run ends FINISHED. The driver writes
its verdict before Ray stops a trial, so a stop *without* a verdict is the whole sweep stopping
(Ctrl-C/SIGTERM): the trial then leaves at once and is recorded interrupted. automl/tune/backend.py keeps the
worker alive until the thread has finished (Ray would otherwise end it while it writes its records).
"""
from __future__ import annotations

import copy
import functools
import json
import math
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional

from automl.errors import AutomlError
from automl.tune.ledger import Ledger, metric_value, trial_id_for
from automl.tune.trial_runs import (ATTEMPT_TAG, INDEX_KEY, SAMPLED_TAG, SWEEP_TAG, TRIAL_TAG, TaggingTracker,
                                     best_checkpoint_on_disk, end_trial_runs, trial_dir)
from stereo.tracking import MlflowTracker

#: test-only fault injection: comma-separated ``<index>=<fault>[@<attempt>]``: trial <index> (every
#: attempt, or only attempt <attempt>) hits <fault> at its first validation: ``kill`` (the process
#: SIGKILLs itself before reporting it), ``raise`` (a RuntimeError), ``nan`` (its metrics read NaN) or
#: ``oom`` (it takes memory until the node's memory monitor kills it; the test sets the threshold).
#: The sweep tests use it to prove each is recorded as failed with its reason, and that retries work.
FAULT_ENV = "AUTOML_FAULT_TRIAL"
FAULTS = ("kill", "raise", "nan", "oom")
MEMORY_EVERY_S = 10.0  # how often a training trial books its peak memory in the ledger (automl/tune/oom.py)


class TrialFailure(AutomlError):
    """The trial cannot be scored; ``str()`` is the one-line reason stored in the ledger."""


@dataclass(frozen=True)
class TrialContext:
    """Everything a trial needs besides its sampled values; plain data, so it pickles into workers."""

    run_dir: str
    base_spec: Dict[str, Any]  # nested raw spec, overrides applied, results_dir still to be set
    metric: str = "val/epe"
    mode: str = "min"
    tracking_uri: Optional[str] = None  # None: no MLflow
    experiment: str = "depth_net"
    parent_run_id: Optional[str] = None
    cpus_per_trial: float = 1.0
    sweep_name: str = ""
    max_t: int = 0  # validations of a full budget (0: unknown); a scheduler stop at max_t is a completion
    scheduler: str = ""  # named in the status.json of a trial it stops early ("stopped early by asha ...")
    extra_tags: Dict[str, str] = field(default_factory=dict)


def split_config(config: Mapping[str, Any]) -> tuple:
    """(index, sampled params) from a suggested config; keys starting with '_' are bookkeeping."""
    if INDEX_KEY not in config:
        raise TrialFailure(f"trial config has no '{INDEX_KEY}' (got keys {sorted(config)}); configs must come "
                           "from automl.tune.backend's searcher")
    return int(config[INDEX_KEY]), {k: v for k, v in config.items() if not str(k).startswith("_")}


def trial_raw_spec(base_spec: Mapping[str, Any], params: Mapping[str, Any], results_dir: str) -> Dict[str, Any]:
    """The base spec with the sampled dotted values set and the trial's own results_dir."""
    from stereo.config.load import set_path
    from stereo.config.source_lines import parse_key

    raw = copy.deepcopy(dict(base_spec))
    for key, value in params.items():
        error = set_path(raw, parse_key(key), value)
        if error:
            raise TrialFailure(f"cannot set sampled {key}={value!r} in the spec: {error}")
    raw["results_dir"] = str(results_dir)
    return raw


def _one_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def injected_fault(index: int, attempt: int) -> Optional[str]:
    """The test-only fault (:data:`FAULT_ENV`) planned for this attempt of trial `index`, if any."""
    for item in filter(None, os.environ.get(FAULT_ENV, "").split(",")):
        where, _, what = item.partition("=")
        fault, _, only = what.partition("@")
        if fault not in FAULTS or (only and not only.isdigit()):
            raise TrialFailure(f"{FAULT_ENV}={os.environ[FAULT_ENV]!r}: {item!r} is not <index>=<fault>[@<attempt>] "
                               f"with fault one of {', '.join(FAULTS)}")
        if where.strip() == str(index) and (not only or int(only) == attempt):
            return fault
    return None


@functools.lru_cache(maxsize=1)
def _reporter_class():
    import pytorch_lightning as pl  # lazy: 4 s of import that `automl --help` must not pay

    from stereo.metrics import find_metric, strip_namespace

    class TrialReporter(pl.Callback):
        """Per validation: check the metric and append it to the ledger; at the end of that epoch (after
        the epoch's checkpoint is written) report it to the scheduler. A stop by the scheduler then asks
        Lightning to stop (``trainer.should_stop``): the training ends cleanly, its records written."""

        def __init__(self, trial_id: str, index: int, attempt: int, ledger: Ledger, metric: str,
                     report: Callable[[Dict[str, Any]], None], scheduler: str = "",
                     stop_requested: Optional[Callable[[], bool]] = None):
            self.trial_id, self.index, self.attempt = trial_id, index, attempt
            self.ledger, self.metric, self.report = ledger, metric, report
            self.scheduler, self.stop_requested = scheduler or "the scheduler", stop_requested
            self.count, self.stopped = 0, False
            self.stop_reason: Optional[str] = None  # the train action writes it into status.json
            self._pending: Optional[Dict[str, Any]] = None
            self._memory_booked = 0.0

        def on_validation_end(self, trainer, pl_module):
            if trainer.sanity_checking or self.stopped:
                return
            values = {k: float(v) for k, v in trainer.callback_metrics.items() if str(k).startswith("val/")}
            epoch, step = int(trainer.current_epoch), int(trainer.global_step)
            fault = injected_fault(self.index, self.attempt)
            if fault == "raise":
                raise RuntimeError(f"injected fault ({FAULT_ENV}): trial {self.trial_id} raises at epoch {epoch}")
            if fault == "nan":
                values = {k: math.nan for k in values}
            try:
                find_metric(values, self.metric)  # 'epe' and 'val/epe' both find val/epe
            except KeyError:
                logged = ", ".join(sorted(values)) or "nothing"
                raise TrialFailure(f"metric {self.metric!r} was not logged at epoch {epoch}; logged: {logged} "
                                   "(pass --metric with one of them)") from None
            sweep_metric = strip_namespace(self.metric)
            bad = sorted((k for k, v in values.items() if not math.isfinite(v)),
                         key=lambda k: (strip_namespace(k) != sweep_metric, k))  # the sweep's metric first
            if bad:
                more = f" (+{len(bad) - 2} more)" if len(bad) > 2 else ""
                shown = ", ".join(f"{k}={values[k]}" for k in bad[:2]) + more
                raise TrialFailure(f"{shown} at epoch {epoch}, step {step}: a diverged trial is failed, not scored")
            self.count += 1
            self._book_memory(force=True)
            self.ledger.add_validation(self.trial_id, {"iteration": self.count, "epoch": epoch, "step": step,
                                                       **values})
            if fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if fault == "oom":
                _exhaust_memory()
            # the sweep's metric under the name the scheduler and searcher were given ('epe' or 'val/epe')
            self._pending = {**values, self.metric: metric_value(values, self.metric), "epoch": epoch + 1,
                             "step": step, "trial_index": self.index}

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self._book_memory()
            if self.stop_requested is not None and not self.stopped and self.stop_requested():
                # the sweep is stopping (Ctrl-C, SIGTERM): a scheduler's stop only ever arrives out of report()
                raise SystemExit(0)

        def on_train_epoch_end(self, trainer, pl_module):
            self._flush(trainer)  # after TaoCheckpoint (an earlier callback) wrote this epoch's checkpoint

        def on_train_end(self, trainer, pl_module):
            self._flush(trainer)  # a validation that ended the run mid-epoch (max_steps)

        def _flush(self, trainer) -> None:
            if self._pending is None or self.stopped:
                return
            metrics, self._pending = self._pending, None
            try:
                self.report(metrics)
            except SystemExit:
                self._stopped(trainer)

        def _stopped(self, trainer) -> None:
            """Ray exits the trial's thread out of report() on a stop. The driver writes its verdict before it
            asks a trial to stop, so a verdict means the scheduler stopped it; no verdict means the whole
            sweep is stopping (Ctrl-C/SIGTERM), and the trial ends as interrupted at once."""
            verdict = self.ledger.verdict(self.trial_id)
            if verdict is None:
                raise SystemExit(0)
            self.stopped = True
            trainer.should_stop = True
            if verdict.get("status") == "stopped":
                self.stop_reason = (f"stopped early by {self.scheduler} after {self.count} "
                                    f"validation{'s' if self.count != 1 else ''}")

        def _book_memory(self, force: bool = False) -> None:
            from automl.tune.oom import DEVICE_KEY, PEAK_KEY, peak_memory

            now = time.monotonic()
            if force or now - self._memory_booked >= MEMORY_EVERY_S:
                self._memory_booked = now
                peak, device = peak_memory()
                self.ledger.update_progress(self.trial_id, **{PEAK_KEY: round(peak, 3), DEVICE_KEY: device})

    return TrialReporter


def _exhaust_memory(step_bytes: int = 128 * 2**20) -> None:
    """The test-only ``oom`` fault: take memory (touched, so it is resident) until the node's memory monitor
    (``RAY_memory_usage_threshold``, which the test lowers) kills this worker. It takes at most what crosses
    the threshold plus 1.5 GiB, then gives up with an error rather than take a shared machine down."""
    import numpy as np

    from automl.tune.oom import meminfo

    info = meminfo() or {"total": 0, "available": 0}
    threshold = float(os.environ.get("RAY_memory_usage_threshold", "0.95"))
    limit_bytes = max(0.0, threshold * info["total"] - (info["total"] - info["available"])) + 1.5 * 2**30
    held = []
    while len(held) * step_bytes < limit_bytes:
        held.append(np.ones(step_bytes // 8))
        time.sleep(0.05)
    raise RuntimeError(f"injected fault ({FAULT_ENV}=oom): {limit_bytes / 2**30:.1f} GiB taken and not killed; "
                       "set RAY_memory_usage_threshold lower for this test")


def run_trial(config: Mapping[str, Any], ctx: TrialContext, report: Callable[[Dict[str, Any]], None],
              node: Optional[str] = None, stop_requested: Optional[Callable[[], bool]] = None) -> Dict[str, Any]:
    """Train one trial; returns its ledger entry. Raises :class:`TrialFailure` when it cannot be scored.

    `node` (the cluster node running it) is only recorded. `stop_requested()` says whether Ray asked the
    trial to stop while it trains between two reports (the sweep is being interrupted).
    """
    from stereo.actions.train import train
    from stereo.config.load import load_spec

    index, params = split_config(config)
    trial_id = trial_id_for(index)
    ledger = Ledger(ctx.run_dir, metric=ctx.metric, mode=ctx.mode)
    previous = ledger.progress(trial_id)
    attempt = int(previous.get("attempt", 0)) + 1 if previous else 1  # Ray retry (--max-failures)
    ledger.start_trial(trial_id, index, params, attempt, node=node)
    if previous and ctx.tracking_uri:
        _end_earlier_runs(ctx, trial_id, attempt)
    if ctx.cpus_per_trial >= 1:
        import torch
        torch.set_num_threads(int(ctx.cpus_per_trial))  # one trial must not take every core of the node
    tracker: Any = False
    reporter = None
    try:
        spec = load_spec(trial_raw_spec(ctx.base_spec, params, str(trial_dir(ctx.run_dir, trial_id))),
                         action="train")
        if ctx.tracking_uri:
            tags = {TRIAL_TAG: trial_id, SWEEP_TAG: ctx.sweep_name, ATTEMPT_TAG: str(attempt),
                    SAMPLED_TAG: json.dumps(sorted(params)), **ctx.extra_tags}
            tracker = TaggingTracker(ctx.tracking_uri, tags,
                                     lambda run_id: ledger.update_progress(trial_id, run_id=run_id),
                                     sampled=tuple(sorted(params)))
        reporter = _reporter_class()(trial_id, index, attempt, ledger, ctx.metric, report,
                                     scheduler=ctx.scheduler, stop_requested=stop_requested)
        # the best checkpoint is the best by the sweep's metric and mode, not the trainer's default val/epe
        result = train(spec, tracker=tracker, parent_run_id=ctx.parent_run_id, experiment=ctx.experiment,
                       run_name=trial_id, callbacks=[reporter], monitor=ctx.metric, monitor_mode=ctx.mode)
        if reporter.count == 0:
            raise TrialFailure(f"trial {trial_id} finished without a validation, so {ctx.metric} is unknown; "
                               "set dataset.val_dataset and train.validation_interval <= train.num_epochs")
    except SystemExit:
        # the sweep is stopping (Ctrl-C/SIGTERM): leave at once; the driver marks the trial interrupted
        ledger.update_progress(trial_id, outcome="interrupted", ended=time.time(),
                               checkpoint=best_checkpoint_on_disk(ctx.run_dir, trial_id))
        raise
    except BaseException as exc:
        reason = _failure_reason(exc)
        ledger.update_progress(trial_id, outcome="failed", error=reason, ended=time.time())
        if isinstance(exc, TrialFailure):
            raise
        raise TrialFailure(reason) from exc
    ledger.update_progress(trial_id, outcome="stopped" if reporter.stop_reason else "completed",
                           checkpoint=result.best_checkpoint, ended=time.time())
    return ledger.trial(trial_id)


def _end_earlier_runs(ctx: TrialContext, trial_id: str, attempt: int) -> None:
    """A retry starts: an earlier attempt's MLflow run still RUNNING (its process was killed) ends FAILED,
    so a trial never shows two live runs. The driver does the same when Ray reports the failure."""
    try:
        end_trial_runs(MlflowTracker(ctx.tracking_uri), ctx.experiment, {"trial_id": trial_id}, "FAILED",
                       up_to_attempt=attempt - 1)
    except Exception:  # noqa: BLE001 - bookkeeping of an old attempt must not fail the retry
        pass


def _failure_reason(exc: BaseException) -> str:
    """The innermost meaningful one-liner: a TrialFailure raised in a callback, or the original error,
    arrives wrapped by the action's ActionError (whose ``__cause__`` it is)."""
    from automl.tune.oom import reason_from_exception

    seen, innermost = exc, exc
    while seen is not None:
        if isinstance(seen, TrialFailure):
            return str(seen)
        innermost = seen
        seen = seen.__cause__ or seen.__context__
    return reason_from_exception(innermost) or _one_line(innermost)
