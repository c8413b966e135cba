"""`--score-on deploy` and `--then deploy`, decided before anything starts (issue 13 §1 and §3).

``--score-on deploy``: at the end of each trial its best checkpoint is exported to ONNX at the **deploy shape**,
the engine is built (TensorRT on a GPU trial with TensorRT installed, else the ONNX runs with ONNX Runtime), the
deploy evaluate scores it on the validation set and its latency is measured (automl/tune/deploy_score.py). The
trial then reports ``deploy/epe``, ``deploy/latency_ms``, ``deploy/peak_mem_mb`` and ``deploy/drift_px``; any of
them can be the sweep's ``--metric``.

The deploy shape: ``export.input_height`` x ``export.input_width`` when the spec (or an override) sets both, as
TAO's export template does; else the first validation image's size rounded up to multiples of 32 (what the
network pads it to anyway). Batch 1, static graph; GRU iterations ``export.valid_iters`` when set, else the
trial's ``model.valid_iters``.

Bad combinations are refused here (:class:`LaunchError`, exit 2) before anything runs: a ``deploy/*`` metric
without ``--score-on deploy`` or that is not one of the four, a deploy metric with an early-stopping scheduler
(ASHA/HyperBand rank trials at every validation, and the deploy metrics exist only at a trial's end), a deploy
shape the exporter refuses, no ONNX Runtime, ``--then`` on a plain run. No torch, Ray or MLflow here.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from automl.errors import LaunchError

SCORE_ON = ("train", "deploy")
THEN = ("deploy",)
DEPLOY_NS = "deploy/"
#: what a deploy-scored trial reports (all minimised by default)
DEPLOY_METRICS = {
    "deploy/epe": "end-point error of the deployed network on the validation set (per-image mean, px)",
    "deploy/latency_ms": "median of single-image calls, batch 1, fixed shape, after warm-up (ms)",
    "deploy/peak_mem_mb": "memory the runtime adds at its peak while loading and running (MiB)",
    "deploy/drift_px": "mean |deployed - PyTorch| disparity on the validation set, same iterations (px)",
}
WARMUP, REPEATS = 3, 20  # the latency protocol (stereo/deploy/latency.py)
#: seconds one deploy step costs besides the per-image work: export + its ONNX Runtime parity check, opening
#: the runtime twice, the latency subprocess (interpreter + imports). Measured with bench/deploy_score_cost.py
#: on the tiny-demo model (docs/BENCHMARKS.md, "score-on deploy"); per-image work comes from the probe.
DEPLOY_FIXED_S = 7.0


@dataclass(frozen=True)
class DeployConfig:
    """What the user asked of the deployed model: ``--score-on`` and ``--then``."""

    score_on: str = "train"
    then: Optional[str] = None

    def __post_init__(self):
        if self.score_on not in SCORE_ON:
            raise LaunchError(f"--score-on {self.score_on!r} is not one of {', '.join(SCORE_ON)}")
        if self.then is not None and self.then not in THEN:
            raise LaunchError(f"--then {self.then!r} is not one of {', '.join(THEN)}")


def is_deploy_metric(name: Optional[str]) -> bool:
    return bool(name) and str(name).startswith(DEPLOY_NS)


def train_monitor(metric: str, mode: str) -> Tuple[str, str]:
    """The validation metric a trial keeps its best checkpoint by, for sweep metric `metric`: a deploy metric
    that has a validation twin (deploy/epe -> val/epe) keeps it, the others (latency, memory, drift) val/epe."""
    if not is_deploy_metric(metric):
        return metric, mode
    bare = metric[len(DEPLOY_NS):]
    return (f"val/{bare}", mode) if bare == "epe" else ("val/epe", "min")


def split_metric(search: Any) -> Tuple[Any, Optional[str]]:
    """(the SearchConfig without a deploy --metric, that metric or None): launch.py checks a training metric as
    usual and :func:`settle_deploy` puts the deploy metric back."""
    if not is_deploy_metric(getattr(search, "metric", None)):
        return search, None
    metric = str(search.metric)
    if metric not in DEPLOY_METRICS:
        raise LaunchError(f"--metric {metric}: not a deploy metric; use one of {', '.join(DEPLOY_METRICS)}")
    return dataclasses.replace(search, metric=None), metric


def _shape(raw: Dict[str, Any]) -> Tuple[int, int, str]:
    export = raw.get("export") or {}
    if export.get("input_height") and export.get("input_width"):
        return int(export["input_height"]), int(export["input_width"]), "export.input_height/input_width"
    from automl.plan.probe import first_val_size

    try:
        hw = first_val_size(raw)
    except Exception:  # noqa: BLE001 - a data problem is reported by the pre-flight already
        hw = None
    if hw is None:
        raise LaunchError("--score-on deploy: no deploy shape: set export.input_height=H export.input_width=W "
                          "(multiples of 32) or give the spec a dataset.val_dataset to score on")
    up = lambda x: max(32, int(math.ceil(x / 32.0)) * 32)  # noqa: E731
    return up(hw[0]), up(hw[1]), f"first validation image {hw[0]}x{hw[1]} rounded up to multiples of 32"


def _runtime(gpus_per_trial: float) -> Tuple[str, str, str]:
    """(runtime, device, why) a trial's deploy step will use."""
    if gpus_per_trial > 0 and importlib.util.find_spec("tensorrt") is not None:
        return "tensorrt", "cuda", "TensorRT engine on the trial's GPU"
    if gpus_per_trial > 0:
        return "onnxruntime", "cuda", "no TensorRT here: the ONNX runs with ONNX Runtime (CUDA provider when present)"
    return "onnxruntime", "cpu", "CPU trials: the ONNX runs with ONNX Runtime on the CPU (TensorRT needs a GPU)"


def settle_deploy(plan: Any, cfg: Optional[DeployConfig], metric: Optional[str], mode: Optional[str], *,
                  auto_scheduler: bool = False) -> None:
    """Record ``--score-on``/``--then`` and the deploy step in `plan`, or raise LaunchError for a bad combo.
    A deploy ``--metric`` becomes the one objective (with ``--scheduler auto``: no scheduler); any deploy
    objective holds the trial's report to Ray until its end (Ray wants every objective in each report)."""
    cfg = cfg or DeployConfig()
    plan.score_on, plan.then = cfg.score_on, cfg.then
    if metric is not None and auto_scheduler and plan.sweep:
        plan.scheduler = "none"
        plan.objective_notes = [*getattr(plan, "objective_notes", []),
                                f"--scheduler auto: none, as {metric} exists only at a trial's end"]
    _settle(plan, cfg, metric, mode)
    if metric is not None:
        plan.objectives = [[plan.metric, plan.mode]]
    if plan.deploy and any(str(name).startswith("deploy/") for name, _ in getattr(plan, "objectives", [])):
        plan.deploy["hold"] = True


def _settle(plan: Any, cfg: DeployConfig, metric: Optional[str], mode: Optional[str]) -> None:
    if cfg.then and not plan.sweep:
        raise LaunchError(f"--then {cfg.then} hands a sweep's best trial to `depth_net flow`, and this run is one "
                          "plain training (see the decision); run depth_net flow -e flow.yaml with its checkpoint "
                          "instead, or drop --then")
    if metric is not None:
        if cfg.score_on != "deploy":
            raise LaunchError(f"--metric {metric} is measured on the deployed model: add --score-on deploy")
        if plan.scheduler != "none":
            raise LaunchError(f"--metric {metric} with --scheduler {plan.scheduler}: the scheduler ranks trials at "
                              "every validation, but deploy metrics exist only at a trial's end; use --scheduler "
                              "none (or rank by a val/* metric and keep --score-on deploy)")
        plan.metric, plan.mode = metric, mode or "min"
    plan.deploy = {}
    if cfg.score_on == "deploy" and not plan.sweep:
        raise LaunchError("--score-on deploy scores the trials of a sweep, and this run is one plain training (see "
                          "the decision); drop --score-on, or deploy the checkpoint with depth_net flow")
    if cfg.score_on == "deploy" or cfg.then:
        shape = deploy_shape(plan)  # refuses a model or shape that cannot be deployed, before anything runs
        plan.deploy = shape if cfg.score_on == "deploy" else {}


def deploy_shape(plan: Any) -> Dict[str, Any]:
    """The deploy step of `plan`: shape, iterations, runtime, device, latency protocol, the trial's monitor."""
    if importlib.util.find_spec("onnxruntime") is None:
        raise LaunchError("--score-on deploy / --then deploy need ONNX Runtime: pip install onnxruntime (or the "
                          "package's [deploy] extra)")
    raw = plan.base_spec
    height, width, source = _shape(raw)
    export = raw.get("export") or {}
    model_type = str((raw.get("model") or {}).get("model_type", ""))
    from stereo.deploy.export import check_export_request
    from stereo.errors import ExportError

    try:
        check_export_request(model_type, height, width, 1, False, "model.onnx", True)
    except ExportError as exc:
        raise LaunchError(f"--score-on/--then deploy: this model cannot be exported at the deploy shape: {exc}") \
            from None
    runtime, device, why = _runtime(plan.gpus_per_trial)
    monitor, monitor_mode = train_monitor(plan.metric, plan.mode)
    return {"height": height, "width": width, "shape_source": source, "batch_size": 1,
            "valid_iters": export.get("valid_iters"), "runtime": runtime, "device": device, "why": why,
            "threads": max(1, int(plan.cpus_per_trial)), "warmup": WARMUP, "repeats": REPEATS,
            "monitor": monitor, "monitor_mode": monitor_mode}


def deploy_cost(plan: Any) -> Tuple[float, str]:
    """(seconds the deploy step adds to one trial, how it was estimated)."""
    d, probe, shape = plan.deploy, plan.probe or {}, plan.trial_shape or {}
    images = int(shape.get("val_samples", 0))
    calls = 2 * images + d.get("warmup", WARMUP) + d.get("repeats", REPEATS)  # deployed + eager per image
    per_call = probe.get("val_seconds_per_batch")
    if per_call is None or "error" in probe:
        return DEPLOY_FIXED_S, (f"{DEPLOY_FIXED_S:g} s fixed (benchmark constant, docs/BENCHMARKS.md) + "
                                f"{calls} forward passes whose cost is unknown without the probe")
    seconds = DEPLOY_FIXED_S + calls * float(per_call)
    return round(seconds, 1), (f"{DEPLOY_FIXED_S:g} s fixed (benchmark constant, docs/BENCHMARKS.md) + {calls} "
                               f"forward passes x {float(per_call):.3f} s (the probe's validation forward)")


def review_lines(plan: Any) -> List[str]:
    """The review's lines about the deploy step and the hand-over (empty when neither is asked for)."""
    lines = []
    d = getattr(plan, "deploy", None) or {}
    if d.get("stage") == "deploy":  # a deploy-only sweep (automl/plan/deploy_sweep.py)
        from automl.plan.deploy_space import review_lines as deploy_only_lines

        return deploy_only_lines(plan)
    if d:
        iters = d["valid_iters"] or "the trial's model.valid_iters"
        lines.append(f"score-on deploy: each trial's best checkpoint (kept by {d['monitor']}) -> ONNX "
                     f"{d['height']}x{d['width']}, batch 1, static ({d['shape_source']}), iterations {iters} -> "
                     f"{d['runtime']} on {d['device']}")
        lines.append(f"{d['why']}; deploy evaluate on the validation set (deploy/epe, deploy/drift_px vs PyTorch), "
                     f"latency: {d['warmup']} warm-up then the median of {d['repeats']} single-image calls, "
                     f"{d['threads']} thread(s) (deploy/latency_ms, deploy/peak_mem_mb)")
        seconds, how = deploy_cost(plan)
        rounds = math.ceil(plan.num_samples / max(1, plan.max_concurrent))
        total = (plan.probe or {}).get("estimate_s")
        line = f"cost: about {seconds:g} s per trial ({how})"
        if total is not None:
            line += f"; sweep estimate with it: {float(total) + rounds * seconds:.0f} s or more"
        lines.append(line)
    if getattr(plan, "then", None) == "deploy":
        lines.append("then deploy: the best trial's checkpoint goes through depth_net flow (the deploy-only six "
                     "steps) in <output>/then_deploy, one MLflow run nested under this sweep's parent")
    return lines
