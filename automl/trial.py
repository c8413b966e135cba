"""One sweep trial: sampled values -> a validated trial spec -> ``stereo.actions.train.train`` -> reports.

Ray-free on purpose (STYLE habit 8): automl/sweep.py wraps :func:`run_trial` for Ray and hands in
``report`` (``ray.tune.report``); tests call it with a plain function. What a trial does:

1. builds its spec: the sweep's base spec (template + skill key_defaults + the user's overrides and
   shorthands, see automl/launch.py) with the sampled values set and ``results_dir`` =
   ``<run_dir>/trials/<trial_id>``, validated by ``load_spec`` (a bad combination fails the trial with
   the spec error, it is never scored);
2. trains through the normal train action, so the trial gets the same status.json, experiment.yaml,
   checkpoints and one MLflow run, nested under the sweep's parent run;
3. reports every validation (all ``val/*`` metrics plus ``epoch``/``step``) to the scheduler and the
   ledger. A NaN/inf metric, a missing metric, an exception or a dead process is a failed trial with
   its reason, never a 0.

An early stop by the scheduler reaches us as ``SystemExit`` out of ``report`` (Ray's function-trainable
session exits the training thread that way). It is let through at once: Ray waits for the thread
before it reuses the actor. The train action closes the MLflow run as KILLED; the driver tags it
``automl.status=stopped``.
"""
from __future__ import annotations

import copy
import functools
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional

from automl.ledger import Ledger, trial_id_for
from stereo.tracking import MlflowTracker

#: test-only fault injection: comma-separated trial indices whose process SIGKILLs itself right after
#: its first validation (before reporting it; first attempt only), to prove a dead trial is recorded as failed
FAULT_KILL_ENV = "AUTOML_FAULT_KILL_TRIAL"
INDEX_KEY = "_index"  # the Optuna trial number, added to every suggested config by automl/sweep.py
TRIAL_TAG, SWEEP_TAG, ATTEMPT_TAG = "automl.trial_id", "automl.sweep", "automl.attempt"


class TrialFailure(RuntimeError):
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
    extra_tags: Dict[str, str] = field(default_factory=dict)


def split_config(config: Mapping[str, Any]) -> tuple:
    """(index, sampled params) from a suggested config; keys starting with '_' are bookkeeping."""
    if INDEX_KEY not in config:
        raise TrialFailure(f"trial config has no '{INDEX_KEY}' (got keys {sorted(config)}); configs must come "
                           "from automl.sweep's searcher")
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


def trial_dir(run_dir: str | os.PathLike, trial_id: str) -> Path:
    return Path(run_dir) / "trials" / trial_id


def _one_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class TaggingTracker(MlflowTracker):
    """MlflowTracker that tags the trial's run and tells the ledger its id the moment it exists,
    so the driver can close the run even if this process is killed."""

    def __init__(self, uri: str, tags: Mapping[str, str], on_start: Callable[[str], None]):
        super().__init__(uri)
        self._extra, self._on_start = dict(tags), on_start

    def start_run(self, name, *, experiment, tags=None, parent_run_id=None):
        handle = super().start_run(name, experiment=experiment, tags={**(tags or {}), **self._extra},
                                   parent_run_id=parent_run_id)
        self._on_start(handle.run_id)
        return handle


@functools.lru_cache(maxsize=1)
def _reporter_class():
    import pytorch_lightning as pl  # lazy: 4 s of import that `automl --help` must not pay

    class TrialReporter(pl.Callback):
        """Per validation: check the metric, append it to the ledger, report it to the scheduler."""

        def __init__(self, trial_id: str, index: int, attempt: int, ledger: Ledger, metric: str,
                     report: Callable[[Dict[str, Any]], None]):
            self.trial_id, self.index, self.attempt = trial_id, index, attempt
            self.ledger, self.metric, self.report = ledger, metric, report
            self.count, self.stopped = 0, False

        def on_validation_end(self, trainer, pl_module):
            if trainer.sanity_checking or self.stopped:
                return
            values = {k: float(v) for k, v in trainer.callback_metrics.items() if str(k).startswith("val/")}
            epoch, step = int(trainer.current_epoch), int(trainer.global_step)
            if self.metric not in values:
                raise TrialFailure(f"metric {self.metric!r} was not logged at epoch {epoch}; logged: "
                                   f"{', '.join(sorted(values)) or 'nothing'} (pass --metric with one of them)")
            bad = {k: v for k, v in values.items() if not math.isfinite(v)}
            if bad:
                raise TrialFailure(f"{', '.join(f'{k}={v}' for k, v in bad.items())} at epoch {epoch}, "
                                   f"step {step}: a diverged trial is failed, not scored")
            self.count += 1
            self.ledger.add_validation(self.trial_id, {"iteration": self.count, "epoch": epoch, "step": step,
                                                       **values})
            if self.attempt == 1 and str(self.index) in os.environ.get(FAULT_KILL_ENV, "").split(","):
                os.kill(os.getpid(), signal.SIGKILL)
            try:
                self.report({**values, "epoch": epoch + 1, "step": step, "trial_index": self.index})
            except SystemExit:  # the scheduler stopped us (ASHA/HyperBand)
                self.stopped = True
                raise

    return TrialReporter


def run_trial(config: Mapping[str, Any], ctx: TrialContext, report: Callable[[Dict[str, Any]], None],
              node: Optional[str] = None) -> Dict[str, Any]:
    """Train one trial; returns its ledger entry. Raises :class:`TrialFailure` when it cannot be scored.

    `node` (the cluster node running it) is only recorded.
    """
    from stereo.actions.train import train
    from stereo.config.load import load_spec

    index, params = split_config(config)
    trial_id = trial_id_for(index)
    ledger = Ledger(ctx.run_dir, metric=ctx.metric, mode=ctx.mode)
    previous = ledger.progress(trial_id)
    attempt = int(previous.get("attempt", 0)) + 1 if previous else 1  # Ray retry (--max-failures)
    ledger.start_trial(trial_id, index, params, attempt, node=node)
    if ctx.cpus_per_trial >= 1:
        import torch
        torch.set_num_threads(int(ctx.cpus_per_trial))  # one trial must not take every core of the node
    try:
        spec = load_spec(trial_raw_spec(ctx.base_spec, params, str(trial_dir(ctx.run_dir, trial_id))),
                         action="train")
        tracker: Any = False
        if ctx.tracking_uri:
            tags = {TRIAL_TAG: trial_id, SWEEP_TAG: ctx.sweep_name, ATTEMPT_TAG: str(attempt), **ctx.extra_tags}
            tracker = TaggingTracker(ctx.tracking_uri, tags,
                                        lambda run_id: ledger.update_progress(trial_id, run_id=run_id))
        reporter = _reporter_class()(trial_id, index, attempt, ledger, ctx.metric, report)
        result = train(spec, tracker=tracker, parent_run_id=ctx.parent_run_id, experiment=ctx.experiment,
                       run_name=trial_id, callbacks=[reporter])
        if reporter.count == 0:
            raise TrialFailure(f"trial {trial_id} finished without a validation, so {ctx.metric} is unknown; "
                               "set dataset.val_dataset and train.validation_interval <= train.num_epochs")
    except SystemExit:
        # an early stop: leave at once (Ray waits for this thread before reusing the actor); the
        # best checkpoint so far is on disk, the driver records the verdict
        best = trial_dir(ctx.run_dir, trial_id) / "train" / "dn_model_best.safetensors"
        ledger.update_progress(trial_id, outcome="stopped", ended=time.time(),
                               checkpoint=str(best) if best.is_file() else None)
        raise
    except BaseException as exc:
        reason = _failure_reason(exc)
        ledger.update_progress(trial_id, outcome="failed", error=reason, ended=time.time())
        if isinstance(exc, TrialFailure):
            raise
        raise TrialFailure(reason) from exc
    ledger.update_progress(trial_id, outcome="stopped" if reporter.stopped else "completed",
                           checkpoint=result.best_checkpoint, ended=time.time())
    return ledger.trial(trial_id)


def _failure_reason(exc: BaseException) -> str:
    """The innermost meaningful one-liner: TrialFailure raised in a callback arrives wrapped by the action."""
    seen = exc
    while seen is not None:
        if isinstance(seen, TrialFailure):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return _one_line(exc)
