"""`--score-on deploy`, the trial's side: its best checkpoint scored as it will ship (issue 13 §3).

When a trial has trained (completed, or stopped early by the scheduler), :func:`score_deployed` runs, in the
trial's own folder and through stereo's own actions and functions (nothing re-implemented here):

1. ``stereo.actions.export.export``: the best checkpoint -> ``<trial>/export/model.onnx`` at the deploy shape
   (automl/plan/deploy_step.py: batch 1, static, the plan's H x W and iterations), with export's own ONNX Runtime
   parity check;
2. on a GPU trial with TensorRT, ``stereo.actions.gen_trt_engine.gen_trt_engine`` builds the fp32 engine; otherwise
   the ONNX runs with ONNX Runtime (the plan's review says which, in one line);
3. ``stereo.actions.deploy_eval.evaluate`` on the validation set, with the checkpoint as the PyTorch reference:
   ``deploy/epe`` = its ``epe``, ``deploy/drift_px`` = its ``drift_mean_abs`` (``<trial>/evaluate/``: results.json,
   per_sample_metrics.csv, drift_per_sample.csv, status.json);
4. ``stereo.deploy.latency.measure_in_subprocess``: ``deploy/latency_ms`` (warm-up, then the median of N
   single-image calls, batch 1, fixed shape, threads pinned to the trial's CPUs) and ``deploy/peak_mem_mb``.

None of the steps opens an MLflow run of its own (``tracker=False``): the metrics go to the trial's run at the
step of its best validation, with the device, runtime and shape as params (``deploy.*``), and into that
validation's row of the ledger, from which results.json and the leaderboard read them like any metric.
Any failure fails the trial with the step's one-line reason (never a 0).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

from automl.tune.ledger import Ledger, best_key
from automl.tune.reporter import TrialFailure

ONNX_NAME = "model.onnx"


@dataclass
class DeployScore:
    metrics: Dict[str, float]
    params: Dict[str, Any]
    files: Dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    timings: Dict[str, float] = field(default_factory=dict)  # seconds per step: export, engine, evaluate, latency


def _spec(raw: Mapping[str, Any], action: str, **sections: Mapping[str, Any]):
    from stereo.config.load import load_spec

    data = copy.deepcopy(dict(raw))
    for name, values in sections.items():
        data[name] = {**(data.get(name) or {}), **values}
    return load_spec(data, action=action)


def _ok(result: Any, step: str) -> None:
    if getattr(result, "status", "SUCCESS") != "SUCCESS":
        raise TrialFailure(f"deploy step {step} ended {result.status}: {getattr(result, 'message', '')}")


def score_deployed(raw: Mapping[str, Any], checkpoint: str, deploy: Mapping[str, Any]) -> DeployScore:
    """Export, build, evaluate and time trial spec `raw`'s `checkpoint` as the plan's `deploy` dict says."""
    import time

    from stereo.actions.deploy_eval import evaluate
    from stereo.actions.export import export
    from stereo.deploy.latency import measure_in_subprocess

    start = time.perf_counter()
    timings: Dict[str, float] = {}

    def lap(name: str) -> None:
        timings[name] = round(time.perf_counter() - start - sum(timings.values()), 3)

    h, w, device = int(deploy["height"]), int(deploy["width"]), str(deploy["device"])
    iters = deploy.get("valid_iters") or (raw.get("model") or {}).get("valid_iters")
    exported = export(_spec(raw, "export", export={
        "checkpoint": str(checkpoint), "onnx_file": ONNX_NAME, "input_height": h, "input_width": w,
        "batch_size": 1, "dynamic_hw": False, "overwrite": True, "on_cpu": device == "cpu",
        "valid_iters": int(iters) if iters else None}), tracker=False)
    _ok(exported, "export")
    lap("export")
    target = exported.onnx_file
    if deploy.get("precision") == "int8":  # a deploy-only sweep's precision (stereo/deploy/quantize.py)
        from stereo.deploy.quantize import int8_graph

        int8 = str(Path(target).with_name("model_int8.onnx"))
        try:
            int8_graph(target, int8, deploy["calibration_dir"], max_images=int(deploy.get("calibration_pairs", 8)))
        except (ValueError, OSError) as exc:
            raise TrialFailure(f"int8 quantization of {target}: {exc}") from None
        target = int8
        lap("quantize")
    if deploy.get("runtime") == "tensorrt":
        from stereo.actions.gen_trt_engine import gen_trt_engine

        built = gen_trt_engine(_spec(raw, "gen_trt_engine", gen_trt_engine={
            "onnx_file": target, "tensorrt": {"data_type": "fp32"}}), tracker=False)
        _ok(built, "gen_trt_engine")
        target = built.engine_file
        lap("engine")
    val = copy.deepcopy((raw.get("dataset") or {}).get("val_dataset"))
    if not val:
        raise TrialFailure("--score-on deploy needs dataset.val_dataset to score the deployed model on")
    raw_eval = {**raw, "dataset": {**raw["dataset"], "test_dataset": val}}
    scored = evaluate(_spec(raw_eval, "evaluate", evaluate={
        "trt_engine": str(target), "checkpoint": str(checkpoint), "on_size_mismatch": "resize"}),
        tracker=False, device=device)
    _ok(scored, "deploy evaluate")
    lap("evaluate")
    kpi = scored.kpi
    if "drift_mean_abs" not in kpi:
        raise TrialFailure(f"deploy evaluate of {target} reported no drift against {checkpoint}")
    timing = measure_in_subprocess(target, h, w, device=device, threads=int(deploy.get("threads") or 1),
                                   warmup=int(deploy.get("warmup", 3)), repeats=int(deploy.get("repeats", 20)))
    lap("latency")
    metrics = {"deploy/epe": float(kpi["epe"]), "deploy/latency_ms": timing.median_ms,
               "deploy/peak_mem_mb": timing.peak_mem_mb, "deploy/drift_px": float(kpi["drift_mean_abs"])}
    bad = [k for k, v in metrics.items() if not math.isfinite(v)]
    if bad:
        raise TrialFailure(f"{', '.join(f'{k}={metrics[k]}' for k in bad)}: the deployed model is not scored")
    params = {"deploy.runtime": timing.runtime, "deploy.device": timing.device, "deploy.threads": timing.threads,
              "deploy.shape": f"1x3x{h}x{w}", "deploy.valid_iters": int(iters) if iters else "model default",
              "deploy.latency": f"{timing.warmup} warm-up, median of {timing.repeats} single-image calls",
              "deploy.file": str(target),
              "deploy.precision": str(deploy.get("precision") or "fp32")}
    files = {"onnx": exported.onnx_file, "deployed": str(target), "evaluate": scored.results_dir}
    return DeployScore(metrics, params, files, round(time.perf_counter() - start, 3), timings)


def best_row_index(history: List[Mapping[str, Any]], monitor: str, mode: str) -> Optional[int]:
    """The validation whose checkpoint the trial kept: the best `monitor` value, the first on a tie (Lightning's
    checkpointer replaces its best only on a strict improvement)."""
    from automl.tune.ledger import metric_value

    best, index = None, None
    for i, row in enumerate(history):
        value = metric_value(row, monitor)
        if value is not None and (best is None or (value < best if mode == "min" else value > best)):
            best, index = value, i
    return index


def book(ledger: Ledger, trial_id: str, score: DeployScore, monitor: str, mode: str) -> Dict[str, Any]:
    """The deploy metrics into the ledger row of the kept checkpoint's validation; returns that row."""
    progress = ledger.progress(trial_id) or {}
    history = [dict(r) for r in progress.get("history") or []]
    index = best_row_index(history, monitor, mode)
    if index is None:
        raise TrialFailure(f"no validation with {monitor} to attach the deploy metrics to")
    history[index].update(score.metrics)
    ledger.update_progress(trial_id, history=history, deploy={**score.params, **score.files,
                                                                 "seconds": score.seconds, "timings": score.timings})
    return history[index]


def log_to_run(tracking_uri: str, run_id: Optional[str], score: DeployScore, step: int, metric: str) -> None:
    """The deploy metrics (and, when one is the sweep's metric, its best/* twin) on the trial's MLflow run."""
    if not tracking_uri or not run_id:
        return
    from stereo.tracking import MlflowTracker, RunHandle

    tracker = MlflowTracker(tracking_uri)
    run = tracker.get_run(run_id)
    if run is None:
        return
    handle = RunHandle(run.run_id, run.experiment_id, run.name)
    metrics = dict(score.metrics)
    if metric in score.metrics:
        metrics[best_key(metric)] = score.metrics[metric]
    tracker.log_metrics(handle, metrics, step=step)
    tracker.log_params(handle, score.params)
    tracker.set_tags(handle, {"automl.deploy_file": score.files.get("deployed", "")})


class DeployReports:
    """The trial's reports to Ray with the deploy step in them: when the trial's last validation (its
    ``max_t``-th) is reported, which is after that epoch's checkpoint is written, the kept checkpoint is scored
    deployed first and the ``deploy/*`` metrics go into that report, the ledger row and the MLflow run. Ray
    therefore stops nothing (ASHA's stop at max_t included) before the deploy step is done.

    With a deploy metric as the sweep's metric (``hold``; the plan refuses early-stopping schedulers then) the
    earlier validations are booked in the ledger only and Ray gets the one final report. A trial stopped early
    by the scheduler is not scored deployed (it will not ship; its ledger says so). :meth:`finish` scores a
    trial that ended without a final report (an unknown max_t)."""

    def __init__(self, report: Callable[[Dict[str, Any]], None], *, ledger: Ledger, trial_id: str,
                 raw: Mapping[str, Any], deploy: Mapping[str, Any], metric: str, max_t: int,
                 tracking_uri: Optional[str], hold: bool):
        self.report, self.ledger, self.trial_id, self.raw, self.deploy = report, ledger, trial_id, raw, deploy
        self.metric, self.max_t, self.tracking_uri, self.hold = metric, int(max_t or 0), tracking_uri, hold
        self.calls, self.score, self.last = 0, None, None  # type: int, Optional[DeployScore], Optional[dict]

    def __call__(self, metrics: Dict[str, Any]) -> None:
        self.calls += 1
        if self.max_t and self.calls >= self.max_t and self.score is None:
            metrics = {**metrics, **self.run()}
        if self.hold and self.score is None:
            self.last = dict(metrics)
            return
        self.report(metrics)

    def run(self) -> Dict[str, float]:
        from automl.tune.trial_runs import best_checkpoint_on_disk

        checkpoint = best_checkpoint_on_disk(self.ledger.run_dir, self.trial_id)
        if checkpoint is None:
            raise TrialFailure(f"trial {self.trial_id} kept no best checkpoint to deploy")
        score = score_deployed(self.raw, checkpoint, self.deploy)
        row = book(self.ledger, self.trial_id, score, self.deploy["monitor"], self.deploy["monitor_mode"])
        run_id = (self.ledger.progress(self.trial_id) or {}).get("run_id")
        log_to_run(self.tracking_uri or "", run_id, score, int(row.get("step") or 0), self.metric)
        self.score = score
        return dict(score.metrics)

    def finish(self, stopped_early: bool) -> None:
        """After the training: score a trial whose last validation was not recognised as such; note a skip."""
        if self.score is not None:
            return
        if stopped_early:
            why = "stopped early by the scheduler: only trials that train their budget are deployed"
            self.ledger.update_progress(self.trial_id, deploy={"skipped": why})
            return
        extra = self.run()
        if self.hold:
            self.report({**(self.last or {}), **extra})
