"""`depth_net train`: fit a stereo network, writing TAO's layout under `<results_dir>/train/`.

    result = train(spec)              # -> TrainResult; raises ActionError when training fails
    result = train(spec, monitor="d1", monitor_mode="min")   # dn_model_best by another val metric

Inside `run_action` (status.json, experiment.yaml, one tracker run). Lightning does the loop; what we
add is in stereo/training: the schedules, TAO-named atomic checkpoints + auto-resume, the NaN guard, the
metric forwarding and the progress bar. With `num_gpus > 1` Lightning's DDP launcher re-runs the calling
script in each extra process; those processes (rank > 0) train without touching status.json or the
tracker, so the calling script must be importable and call `train(spec)` under `if __name__ == "__main__"`.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stereo.actions.layout import action_dir
from stereo.actions.runner import ActionContext, ActionResult, require_spec, run_action
from stereo.config.spec import ExperimentSpec
from stereo.errors import ActionError

ACTION = "train"


@dataclass
class TrainResult:
    status: str
    best_checkpoint: str | None  # <train dir>/dn_model_best.safetensors (a link; + its .json sidecar)
    best_metrics: dict[str, float]  # val/* at the best monitored value (empty without val data)
    history: list[dict[str, float]]  # one row per epoch: epoch, step, train_loss, val/*
    last_checkpoint: str | None  # <train dir>/model_epoch_EEE_step_SSSSS.ckpt (resume state)
    results_dir: str
    global_step: int = 0
    resumed_from: str | None = None
    run_id: str | None = None
    message: str = ""


def train(spec: ExperimentSpec, *, tracker: Any = None, parent_run_id: str | None = None,
          experiment: str = "depth_net", run_name: str | None = None,
          callbacks: Sequence[Any] = (), monitor: str = "val/epe", monitor_mode: str = "min") -> TrainResult:
    """Train `spec.model` on `spec.dataset.train_dataset`, validating on `val_dataset`.

    `tracker`: a stereo.tracking Tracker, None (MLflow, see stereo.tracking.mlflow_tracker.default_tracker) or
    False (no tracking). `callbacks`: extra Lightning callbacks (e.g. a sweep's reporter).
    `monitor` / `monitor_mode`: the validation metric `dn_model_best` follows ('epe' and 'val/epe' both
    mean `val/epe`; any StereoMetrics name, `*_pooled` or 'loss') and whether lower ('min') or higher
    ('max') is better. A wrong name or mode is bad input (exit code 2) before anything is built.
    """
    require_spec(spec, ExperimentSpec, ACTION)
    from stereo.training.trainer import global_rank_from_env

    out_dir = action_dir(spec.results_dir, ACTION, spec.train.results_dir or None)
    best_by = {"monitor": monitor, "mode": monitor_mode}
    if global_rank_from_env() != 0:  # a DDP worker: rank 0 owns status.json and the tracker
        outcome = _fit(spec, out_dir, None, None, callbacks, best_by=best_by)
        return _result("SUCCESS", outcome, out_dir)

    from stereo.actions.runner import check_or_raise
    from stereo.tracking.mlflow_tracker import default_tracker

    check_or_raise(spec, ACTION)  # bad input: one SpecError before any folder, status.json or MLflow store
    tracker = default_tracker(spec.results_dir or out_dir.parent, tracker)
    holder: dict[str, Any] = {}

    def body(ctx: ActionContext) -> ActionResult:
        from stereo.metrics import check_monitor

        check_monitor(monitor, monitor_mode)  # before the model and data are built

        def metric_sink(metrics, step):
            ctx.last_step = int(step)
            if ctx.tracker is not None and ctx.run is not None:
                ctx.tracker.log_metrics(ctx.run, metrics, step=step)

        def kpi_sink(kpi, message):
            ctx.status.write("RUNNING", message, kpi=kpi)

        outcome = _fit(spec, ctx.dir, metric_sink, kpi_sink, callbacks,
                       run_id=ctx.run.run_id if ctx.run is not None else None, best_by=best_by)
        holder["outcome"] = outcome
        _track_outputs(ctx, outcome)
        kpi = dict(outcome.best_metrics)
        if outcome.history:
            kpi.setdefault("train_loss", outcome.history[-1].get("train_loss", math.nan))
        outputs = [p for p in (outcome.best_checkpoint, outcome.last_checkpoint) if p]
        if not outputs:
            return ActionResult("FAILURE", kpi, "training wrote no checkpoint", [])
        # a callback that ended the run early (a sweep's scheduler) says why: "stopped early by asha after 2 ..."
        why = next((r for r in (getattr(cb, "stop_reason", None) for cb in callbacks) if r), None)
        message = (f"Training {why}, at step {outcome.global_step}." if why
                   else f"Training finished at step {outcome.global_step}.")
        # every val/* and train_loss point was logged as it happened: the final KPIs go to status.json only
        return ActionResult("SUCCESS", kpi, message, [Path(p) for p in outputs], kpi_logged=True)

    spec_dict = dataclasses.asdict(spec)
    result = run_action(ACTION, spec_dict, spec.results_dir or None, body, tracker=tracker,
                        experiment=experiment, parent_run_id=parent_run_id, run_name=run_name)
    outcome = holder.get("outcome")
    if result.status == "FAILURE":
        raise ActionError(ACTION, "failed checks", result.message, result=result)
    train_result = _result(result.status, outcome, out_dir, result.message)
    return train_result


def _result(status: str, outcome, out_dir: Path, message: str = "") -> TrainResult:
    return TrainResult(status=status, best_checkpoint=outcome.best_checkpoint,
                       best_metrics=dict(outcome.best_metrics), history=list(outcome.history),
                       last_checkpoint=outcome.last_checkpoint, results_dir=str(out_dir),
                       global_step=outcome.global_step, resumed_from=outcome.resumed_from,
                       run_id=outcome.extra.get("run_id"), message=message)


def _track_outputs(ctx: ActionContext, outcome) -> None:
    if ctx.tracker is None or ctx.run is None:
        return
    from stereo.checkpoints import checkpoint_sha256

    outcome.extra["run_id"] = ctx.run.run_id
    tags = {}
    best = outcome.extra.get("best")
    if best:  # the value the run is ranked by, at the step it was reached (logged once, here)
        ctx.tracker.log_metrics(ctx.run, {f"best/{best['monitor']}": best["value"], "best/step": best["step"]},
                                step=best["step"])
    if outcome.best_checkpoint:
        tags["checkpoint_sha256"] = checkpoint_sha256(outcome.best_checkpoint)
        # the pair under its own names (dn_model_best is a link, and a sidecar names its weights file)
        real = Path(outcome.best_checkpoint).resolve()
        for p in (real, real.with_suffix(".json")):
            if p.exists():
                ctx.log_artifact(p, "checkpoints")
        _log_best_model(ctx, outcome.best_checkpoint, best)
    if outcome.resumed_from:
        tags["resumed_from"] = outcome.resumed_from
    if outcome.extra.get("pretrained_sha256"):
        tags["pretrained_sha256"] = outcome.extra["pretrained_sha256"]
    visuals = Path(ctx.dir) / "visuals"
    if visuals.is_dir() and any(visuals.iterdir()):
        ctx.log_artifact(visuals)
    if tags:
        ctx.tracker.set_tags(ctx.run, tags)


def _log_best_model(ctx: ActionContext, checkpoint: str, best: dict | None) -> None:
    """The best checkpoint as the run's logged model (the UI's "Models" column), named after the run;
    a tracking problem only warns."""
    import warnings

    try:
        step = int(best["step"]) if best else 0
        model_id = ctx.tracker.log_model(ctx.run, checkpoint, name=ctx.run.name or ACTION, step=step)
        ctx.tracker.set_tags(ctx.run, {"model_id": model_id})
    except Exception as exc:  # noqa: BLE001 - the checkpoint is on disk and logged as an artifact already
        warnings.warn(f"could not log the best checkpoint as a model: {type(exc).__name__}: {exc}",
                      RuntimeWarning, stacklevel=2)


def _fit(spec: ExperimentSpec, out_dir: Path, metric_sink, kpi_sink, extra_callbacks: Sequence[Any],
         run_id: str | None = None, best_by: dict[str, str] | None = None):
    """Build everything from the spec sections and run Lightning's fit; returns a FitOutcome."""
    import pytorch_lightning as pl
    from pytorch_lightning.loggers import CSVLogger

    from stereo.data.loader import build_dataloader
    from stereo.training.lightning_module import StereoLitModule
    from stereo.models import build_model
    from stereo.training.callbacks import (
        MetricsForwarder,
        SamplerStateCallback,
        StereoProgressBar,
        TaoCheckpoint,
        ValidationVisuals,
    )
    from stereo.training.resume import (
        check_resume_state,
        resolve_resume_path,
        with_own_generator,
        with_resumable_sampler,
    )
    from stereo.training.trainer import (
        FitOutcome,
        model_config_dict,
        quiet_lightning,
        seed_everything,
        trainer_settings,
    )
    from stereo.training.weights import load_weights

    train_cfg, data_cfg = spec.train, spec.dataset
    quiet_lightning()
    settings = trainer_settings(train_cfg)
    seed = int(train_cfg.seed) if train_cfg.seed is not None and train_cfg.seed >= 0 else None
    seed_everything(seed if seed is not None else -1)
    out_dir.mkdir(parents=True, exist_ok=True)

    model = build_model(spec.model)
    resume = resolve_resume_path(train_cfg.resume_training_checkpoint_path, out_dir)
    if resume is not None:
        check_resume_state(resume)  # weights_only=True, whatever TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD says
    extra: dict[str, Any] = {}
    if resume is None and train_cfg.pretrained_model_path:
        meta = load_weights(model, train_cfg.pretrained_model_path, model_type=spec.model.model_type,
                            what="train.pretrained_model_path")
        extra["pretrained_sha256"] = meta["sha256"]
    module = StereoLitModule(model, train_cfg.optim, data_cfg.max_disparity)

    train_loader = with_resumable_sampler(build_dataloader(data_cfg.train_dataset, "train",
                                                           data_cfg.max_disparity, seed=seed))
    val_loader = (with_own_generator(build_dataloader(data_cfg.val_dataset, "val", data_cfg.max_disparity,
                                                      seed=seed))
                  if data_cfg.val_dataset.data_sources else None)
    checkpoint = TaoCheckpoint(out_dir, interval=int(train_cfg.checkpoint_interval),
                               unit=str(train_cfg.checkpoint_interval_unit),
                               model_config=model_config_dict(spec.model), run_id=run_id, **(best_by or {}))
    forwarder = MetricsForwarder(metric_sink, kpi_sink, every_n_steps=int(train_cfg.log_every_n_steps))
    # the checkpoint last of ours (as Lightning orders its ModelCheckpoint): an epoch-end save holds the
    # epoch's history row and sampler state
    callbacks = [forwarder, SamplerStateCallback(train_loader.sampler), StereoProgressBar(),
                 ValidationVisuals(out_dir / "visuals"), checkpoint, *extra_callbacks]
    if not settings["max_steps"] or settings["max_steps"] < 0:
        settings["max_steps"] = -1
    trainer = pl.Trainer(**settings, callbacks=callbacks, default_root_dir=str(out_dir),
                         logger=CSVLogger(str(out_dir), name="lightning_logs"))
    trainer.fit(module, train_loader, val_loader, ckpt_path=str(resume) if resume else None, weights_only=True)

    last = out_dir / f"{checkpoint.last_stem}.ckpt" if checkpoint.last_stem else None
    best_metrics = dict(checkpoint.best_metrics)
    if best_metrics and math.isfinite(checkpoint.best_value):
        step = next((int(r["step"]) for r in forwarder.history if r.get(checkpoint.monitor) == checkpoint.best_value),
                    int(trainer.global_step))
        extra["best"] = {"monitor": checkpoint.monitor, "value": float(checkpoint.best_value), "step": step}
    return FitOutcome(best_checkpoint=checkpoint.best_checkpoint, best_metrics=best_metrics,
                      history=list(forwarder.history), last_checkpoint=str(last) if last else None,
                      global_step=int(trainer.global_step), resumed_from=str(resume) if resume else None,
                      extra=extra)
