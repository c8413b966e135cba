"""One trial of a deploy-only sweep (``automl run --stage deploy``, automl/plan/deploy_sweep.py): no training.

Ray-free like automl/tune/trial.py (automl/tune/trainable.py picks this function when the plan's deploy step says
``stage: deploy``). The sampled ``deploy.valid_iters``, ``deploy.scale`` and ``deploy.precision`` become the
deploy step of automl/tune/deploy_score.py (export at that shape and iteration count, int8 through
``stereo.deploy.quantize.int8_graph`` when asked, deploy evaluate on the validation set against the PyTorch
checkpoint at the same iterations, latency in a subprocess); its ``deploy/*`` metrics are the trial's one report,
its one ledger row and its MLflow run (nested under the sweep's parent, tagged like every trial). Files go to
``<run_dir>/trials/<id>/export`` and ``.../evaluate`` only: nothing is trained. A failure fails the trial with
its one-line reason (never a 0).
"""
from __future__ import annotations

import json
import time
from typing import Any, Callable, Dict, Mapping, Optional

from automl.plan.deploy_space import deploy_hw
from automl.tune.ledger import Ledger, trial_id_for
from automl.tune.reporter import TrialFailure
from automl.tune.trial import TrialContext, split_config, trial_raw_spec
from automl.tune.trial_runs import ATTEMPT_TAG, SAMPLED_TAG, SWEEP_TAG, TRIAL_TAG, trial_dir

KNOBS = ("deploy.valid_iters", "deploy.scale", "deploy.precision")


def trial_deploy(deploy: Mapping[str, Any], params: Mapping[str, Any]) -> Dict[str, Any]:
    """The plan's deploy step with this trial's knobs: shape, iterations, precision."""
    scale = float(params.get("deploy.scale", 1.0))
    if not scale > 0:
        raise TrialFailure(f"deploy.scale={scale}: must be > 0 (a factor of the validation image size)")
    h, w = deploy_hw(scale, (int(deploy["val_height"]), int(deploy["val_width"])))
    iters = int(params.get("deploy.valid_iters", deploy.get("model_iters") or 1))
    precision = str(params.get("deploy.precision", "fp32"))
    if precision not in ("fp32", "int8"):
        raise TrialFailure(f"deploy.precision={precision!r}: use fp32 or int8 (fp16 does not run faster on ONNX "
                           "Runtime's CPU provider and is not exported)")
    return {**deploy, "height": h, "width": w, "valid_iters": iters, "precision": precision}


def run_deploy_trial(config: Mapping[str, Any], ctx: TrialContext, report: Callable[[Dict[str, Any]], None],
                     node: Optional[str] = None, stop_requested: Optional[Callable[[], bool]] = None) -> Dict[str, Any]:
    """Score one deploy configuration of the plan's checkpoint; returns its ledger entry."""
    from automl.tune.deploy_score import score_deployed
    from stereo.tracking import MlflowTracker

    index, params = split_config(config)
    trial_id = trial_id_for(index)
    ledger = Ledger(ctx.run_dir, metric=ctx.metric, mode=ctx.mode)
    previous = ledger.progress(trial_id)
    attempt = int(previous.get("attempt", 0)) + 1 if previous else 1
    ledger.start_trial(trial_id, index, params, attempt, node=node)
    tracker, run = (MlflowTracker(ctx.tracking_uri) if ctx.tracking_uri else None), None
    try:
        deploy = trial_deploy(ctx.deploy, params)
        raw = trial_raw_spec(ctx.base_spec, {}, str(trial_dir(ctx.run_dir, trial_id)))
        raw["model"] = {**(raw.get("model") or {}), "valid_iters": deploy["valid_iters"]}  # the PyTorch reference
        if tracker is not None:
            tags = {TRIAL_TAG: trial_id, SWEEP_TAG: ctx.sweep_name, ATTEMPT_TAG: str(attempt),
                    SAMPLED_TAG: json.dumps(sorted(params)), "automl.stage": "deploy", **ctx.extra_tags}
            run = tracker.start_run(trial_id, experiment=ctx.experiment, tags=tags, parent_run_id=ctx.parent_run_id)
            ledger.update_progress(trial_id, run_id=run.run_id)
            tracker.log_params(run, {**params, "deploy.checkpoint": ctx.deploy["checkpoint"]})
        score = score_deployed(raw, ctx.deploy["checkpoint"], deploy)
        row = {"iteration": 1, "epoch": 0, "step": 0, **score.metrics}
        ledger.add_validation(trial_id, row)
        ledger.update_progress(trial_id, deploy={**score.params, **score.files, "seconds": score.seconds,
                                                 "timings": score.timings})
        if run is not None:
            tracker.log_metrics(run, score.metrics, step=0)
            tracker.log_params(run, score.params)
            tracker.set_tags(run, {"automl.deploy_file": score.files.get("deployed", "")})
        report({**score.metrics, "trial_index": index, "epoch": 1, "step": 0})
    except SystemExit:
        ledger.update_progress(trial_id, outcome="interrupted", ended=time.time())
        raise
    except BaseException as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        reason = str(exc) if isinstance(exc, TrialFailure) else f"{type(exc).__name__}: {first}"
        ledger.update_progress(trial_id, outcome="failed", error=reason, ended=time.time())
        if run is not None:
            tracker.end_run(run, "FAILED")
        if isinstance(exc, TrialFailure):
            raise
        raise TrialFailure(reason) from exc
    ledger.update_progress(trial_id, outcome="completed", checkpoint=ctx.deploy["checkpoint"], ended=time.time())
    if run is not None:
        tracker.end_run(run, "FINISHED")
    return ledger.trial(trial_id)
