"""One sweep trial: sampled values -> a validated trial spec -> ``stereo.actions.train.train`` -> reports.

Ray-free on purpose (STYLE habit 8): automl/tune/trainable.py wraps :func:`run_trial` for Ray and hands in
``report`` (``ray.tune.report``); tests call it with a plain function. What a trial does:

1. builds its spec: the sweep's base spec (template + skill key_defaults + the user's overrides and
   shorthands, see automl/plan/launch.py) with the sampled values set and ``results_dir`` =
   ``<run_dir>/trials/<trial_id>``, validated by ``load_spec`` (a bad combination fails the trial with
   the spec error, it is never scored);
2. trains through the normal train action, so the trial gets the same status.json, experiment.yaml,
   checkpoints and one MLflow run per attempt, nested under the sweep's parent run and tagged with the
   sampled keys; the best checkpoint is kept by the sweep's metric and mode;
3. reports every validation (all ``val/*`` metrics plus ``epoch``/``step``, and the sweep metric under
   the name it was given: ``epe`` and ``val/epe`` are the same metric) to the scheduler and the ledger
   (automl/tune/reporter.py; the callbacks ``AUTOML_TRIAL_CALLBACKS`` names come after it,
   automl/tune/trial_callbacks.py). A NaN/inf metric, a missing metric, an exception or a dead process
   is a failed trial with its reason, never a 0. A Ray retry (``--max-failures``) ends the earlier
   attempt's run FAILED first.
4. with ``--score-on deploy`` (``ctx.deploy``), at its last validation (before that report reaches Ray): its kept
   checkpoint is exported, built, evaluated and timed (automl/tune/deploy_score.py); the ``deploy/*`` metrics
   join that report, the kept validation's ledger row and the trial's MLflow run. A failure there fails the trial.

A stop by the scheduler (ASHA/HyperBand, also at max_t) reaches us as ``SystemExit`` out of ``report``
(Ray's function-trainable session exits the training thread that way). We report after the epoch's
checkpoint is written and turn that stop into ``trainer.should_stop``: the training ends cleanly, so its
status.json reads SUCCESS ("stopped early by asha after N validations", or finished for a stop at
max_t), its checkpoints up to the stop are on disk and its MLflow run ends FINISHED. The driver writes
its verdict before Ray stops a trial, so a stop *without* a verdict is the whole sweep stopping
(Ctrl-C/SIGTERM): the trial then leaves at once and is recorded interrupted. automl/tune/trainable.py keeps the
worker alive until the thread has finished (Ray would otherwise end it while it writes its records).
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

from automl.tune.ledger import Ledger, trial_id_for
from automl.tune.reporter import TrialFailure, reporter_class
from automl.tune.trial_callbacks import TrialInfo, trial_callbacks
from automl.tune.trial_runs import (ATTEMPT_TAG, INDEX_KEY, SAMPLED_TAG, SWEEP_TAG, TRIAL_TAG, TaggingTracker,
                                     best_checkpoint_on_disk, end_trial_runs, trial_dir)
from stereo.tracking import MlflowTracker


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
    deploy: Dict[str, Any] = field(default_factory=dict)  # --score-on deploy: the plan's deploy step, else {}
    workers: int = 1  # > 1: a data-parallel trial of that many Ray Train workers (automl/tune/data_parallel.py)
    use_gpu: bool = False  # data-parallel workers take one GPU each


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


def run_trial(config: Mapping[str, Any], ctx: TrialContext, report: Callable[[Dict[str, Any]], None],
              node: Optional[str] = None, stop_requested: Optional[Callable[[], bool]] = None,
              callbacks: Sequence[Any] = ()) -> Dict[str, Any]:
    """Train one trial; returns its ledger entry. Raises :class:`TrialFailure` when it cannot be scored.

    `node` (the cluster node running it) is only recorded. `stop_requested()` says whether Ray asked the
    trial to stop while it trains between two reports (the sweep is being interrupted). `callbacks`: Lightning
    callbacks after all others (a data-parallel trial's stop agreement, automl/tune/data_parallel.py).
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
    # --score-on deploy: the checkpoint kept by the deploy plan's validation monitor is scored deployed with the
    # last validation's report (automl/tune/deploy_score.py)
    monitor, monitor_mode = ((ctx.deploy["monitor"], ctx.deploy["monitor_mode"]) if ctx.deploy
                             else (ctx.metric, ctx.mode))
    deployed = None
    try:
        raw = trial_raw_spec(ctx.base_spec, params, str(trial_dir(ctx.run_dir, trial_id)))
        spec = load_spec(raw, action="train")
        if ctx.tracking_uri:
            tags = {TRIAL_TAG: trial_id, SWEEP_TAG: ctx.sweep_name, ATTEMPT_TAG: str(attempt),
                    SAMPLED_TAG: json.dumps(sorted(params)), **ctx.extra_tags}
            tracker = TaggingTracker(ctx.tracking_uri, tags,
                                     lambda run_id: ledger.update_progress(trial_id, run_id=run_id),
                                     sampled=tuple(sorted(params)))
        if ctx.deploy:
            from automl.tune.deploy_score import DeployReports

            deployed = DeployReports(report, ledger=ledger, trial_id=trial_id, raw=raw, deploy=ctx.deploy,
                                     metric=ctx.metric, max_t=ctx.max_t, tracking_uri=ctx.tracking_uri,
                                     hold=ctx.metric.startswith("deploy/") or bool(ctx.deploy.get("hold")))
        reporter = reporter_class()(trial_id, index, ledger, monitor, deployed or report, scheduler=ctx.scheduler,
                                    stop_requested=stop_requested)
        # the user's own callbacks (AUTOML_TRIAL_CALLBACKS) come after ours: they see each validation booked
        extra = trial_callbacks(TrialInfo(trial_id, index, attempt, trial_dir(ctx.run_dir, trial_id), dict(params)))
        # the best checkpoint is the best by the sweep's metric and mode, not the trainer's default val/epe
        result = train(spec, tracker=tracker, parent_run_id=ctx.parent_run_id, experiment=ctx.experiment,
                       run_name=trial_id, callbacks=[reporter, *extra, *callbacks], monitor=monitor,
                       monitor_mode=monitor_mode)
        if reporter.count == 0:
            raise TrialFailure(f"trial {trial_id} finished without a validation, so {ctx.metric} is unknown; "
                               "set dataset.val_dataset and train.validation_interval <= train.num_epochs")
        if deployed is not None:
            deployed.finish(stopped_early=bool(reporter.stop_reason))
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
