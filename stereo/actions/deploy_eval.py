"""Deploy `evaluate` / `inference`: score or run an ONNX graph (ONNX Runtime) or a TensorRT engine.

Used when `evaluate.trt_engine` / `inference.trt_engine` is set (an `.onnx` there runs with ONNX Runtime,
an `.engine/.plan/.trt` with TensorRT), or when `*.checkpoint` itself is an `.onnx`/engine file;
otherwise `evaluate` / `inference` here hand over to the PyTorch actions unchanged.

Same readers, metric code and output names as the PyTorch path (stereo.actions.evaluate/inference):
per-dataset GT decoders (no /1000 on KITTI/CREStereo as TAO's deploy does), StereoMetrics,
`per_sample_metrics.csv`, `results.json`, `<meta name>.png` / `_vis.png` / `.pfm` / `.npy`. KPIs use TAO
deploy's plain names (`epe`, `bp1`, …, `*_pooled`); stereo.metrics.find_metric accepts `val/epe` too.

Shapes: each image is fitted to the graph's input (stereo.deploy.engine_io: pad when it fits, else shrink
keeping the aspect ratio, then pad); metrics are in that frame, GT scaled by the width ratio; inference
outputs are mapped back to the native size. `<action>.on_size_mismatch` (resize | pad | error) decides
what is allowed, and every fitted image is counted and reported (stereo.deploy.size_policy).

Drift: with `evaluate.trt_engine` *and* a PyTorch `evaluate.checkpoint`, the eager model runs on the very
same fitted inputs (with the graph's baked `valid_iters`); per-image drift goes to `drift_per_sample.csv`,
aggregates to the KPIs (`drift_*`, and `pyt_epe`, … for the eager model), and the MLflow run is nested
under the training run of that checkpoint.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from stereo.actions.runner import (
    ActionContext,
    ActionResult,
    action_tracker,
    require_spec,
    run_spec_action,
)
from stereo.config.spec import ExperimentSpec
from stereo.errors import BadInputError

if TYPE_CHECKING:  # the PyTorch actions are imported when the spec names no deploy file
    from stereo.actions.evaluate import EvalResult
    from stereo.actions.inference import InferResult

log = logging.getLogger(__name__)
DEPLOY_SUFFIXES = (".onnx", ".engine", ".plan", ".trt")
DRIFT_FILE = "drift_per_sample.csv"


def deploy_target(section: Any) -> Path | None:
    """The deployed network a spec section names (trt_engine, or a checkpoint that is an ONNX/engine)."""
    if section.trt_engine:
        return Path(section.trt_engine).expanduser()
    if section.checkpoint and Path(section.checkpoint).suffix.lower() in DEPLOY_SUFFIXES:
        return Path(section.checkpoint).expanduser()
    return None


def _reference_checkpoint(section: Any) -> str | None:
    ckpt = section.checkpoint
    if section.trt_engine and ckpt and Path(ckpt).suffix.lower() not in DEPLOY_SUFFIXES:
        return ckpt
    return None


def baked_iters(target: Path) -> int | None:
    """valid_iters recorded by export (ONNX sidecar) or gen_trt_engine (engine sidecar), if any."""
    import json

    side = Path(f"{target}.json")
    if not side.is_file():
        return None
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except ValueError:
        return None
    data = data.get("onnx") or data if isinstance(data, dict) else {}
    return int(data["valid_iters"]) if isinstance(data, dict) and data.get("valid_iters") else None


def evaluate(spec: ExperimentSpec, *, tracker: Any = None, parent_run_id: str | None = None,
             experiment: str = "depth_net", run_name: str | None = None, device: str = "auto") -> EvalResult:
    """`depth_net evaluate`: deploy path when a graph/engine is named, else the PyTorch evaluate."""
    require_spec(spec, ExperimentSpec, "evaluate")
    target = deploy_target(spec.evaluate)
    if target is None:
        from stereo.actions.evaluate import evaluate as pytorch_evaluate

        return pytorch_evaluate(spec, tracker=tracker, parent_run_id=parent_run_id, experiment=experiment,
                                run_name=run_name)
    from stereo.actions.evaluate import ACTION

    tracker = action_tracker(spec, ACTION, tracker)
    reference = _reference_checkpoint(spec.evaluate)
    tags = {"deploy_file": str(target)}
    if reference and tracker is not None and parent_run_id is None:
        from stereo.deploy.drift import find_training_run
        from stereo.checkpoints import checkpoint_sha256

        if Path(reference).expanduser().is_file():
            parent_run_id = find_training_run(tracker, reference, checkpoint_sha256(Path(reference).expanduser()),
                                              experiment)
    def summarize(res: EvalResult) -> ActionResult:
        files = [Path("per_sample_metrics.csv"), Path("results.json")] + ([Path(DRIFT_FILE)] if reference else [])
        warn = f" Warning: {res.message}" if res.message else ""
        return ActionResult("SUCCESS", res.kpi, f"Evaluated {res.counts['images']} images with {target.name}.{warn}",
                            files)

    # tracker=False (no tracking) stays False: action_tracker turned it into None, which would open the default store
    return run_spec_action(ACTION, spec, lambda ctx: _evaluate(spec, ctx, target, reference, device), summarize,
                           tracker=False if tracker is None else tracker, parent_run_id=parent_run_id,
                           experiment=experiment,
                           run_name=run_name or "deploy_evaluate", tags=tags)


def gpu_index(section: Any) -> int:
    """The GPU a deploy action runs on: the first of the section's `gpu_ids` (0 when empty)."""
    ids = list(getattr(section, "gpu_ids", None) or [0])
    return int(ids[0])


def _open(target: Path, device: str, section: Any):
    from stereo.deploy.runners import open_runner

    try:
        return open_runner(target, device=device, gpu_index=gpu_index(section))
    except (ValueError, FileNotFoundError) as exc:
        raise BadInputError(str(exc)) from exc


def _fitted_batches(loader, runner, requested, sizes) -> Iterator[list[tuple[dict, Any]]]:
    """Samples cropped to their own size, fitted to the graph, grouped by target size into call batches.
    `sizes` (stereo.deploy.size_policy.SizeMismatches) applies `on_size_mismatch` to each and counts them."""
    from stereo.deploy.engine_io import plan_fit, target_shape
    from stereo.errors import SizeMismatchError

    size = runner.shape.batch_for(getattr(loader, "batch_size", 1) or 1)
    pending: list[tuple[dict, Any]] = []
    for batch in loader:
        for i, meta in enumerate(batch["meta"]):
            h, w = meta["orig_hw"]
            item = {"meta": meta, "left": batch["left"][i, :, :h, :w], "right": batch["right"][i, :, :h, :w]}
            if "disp" in batch:
                item["disp"], item["valid"] = batch["disp"][i, :, :h, :w], batch["valid"][i, :, :h, :w]
            try:
                fit = plan_fit((h, w), target_shape((h, w), runner.shape, requested))
                first = sizes.check(fit, str(meta.get("name", "")))
            except (ValueError, SizeMismatchError) as exc:
                raise BadInputError(str(exc)) from exc
            if first:
                log.warning("%s", first)
            if pending and (pending[0][1].target_hw != fit.target_hw or len(pending) == size):
                yield pending
                pending = []
            pending.append((item, fit))
    if pending:
        yield pending


def _size_policy(runner, section, key: str, ctx: ActionContext | None = None):
    from stereo.deploy.size_policy import SizeMismatches, ignored_request
    from stereo.errors import SizeMismatchError

    requested = _requested(section)
    ignored = ignored_request(runner.shape, requested, key.split(".")[0])
    if ignored:  # e.g. TAO's deploy template asks for 480x736 while the graph was exported at another size
        log.warning("%s", ignored)
        if ctx is not None:
            ctx.status.write("RUNNING", ignored, verbosity="WARNING")
    try:
        return SizeMismatches(runner.shape, section.on_size_mismatch, key, pinned=requested is not None)
    except SizeMismatchError as exc:
        raise BadInputError(str(exc)) from exc


def _report_sizes(ctx: ActionContext, sizes) -> str:
    """The end-of-run mismatch line on the console, in status.json and as an MLflow tag ('' when none)."""
    line = sizes.summary()
    if not line:
        return ""
    log.warning("%s", line)
    ctx.status.write("RUNNING", line, kpi=sizes.kpi(), verbosity="WARNING")
    if ctx.tracker is not None and ctx.run is not None:
        ctx.tracker.set_tags(ctx.run, {"size_mismatch": line})
    return line


def _bar(loader, desc: str):
    from stereo.progress import ProgressBar

    return ProgressBar(total=len(loader.dataset) if hasattr(loader, "dataset") else None, desc=desc)


def _run(runner, group, model=None, iters=None):
    """(deployed, eager or None) predictions [n,1,TH,TW] for a group; a static batch is filled by repetition."""
    from stereo.deploy.engine_io import fit_images

    left = torch.stack([fit_images(item["left"], fit) for item, fit in group])
    right = torch.stack([fit_images(item["right"], fit) for item, fit in group])
    n = len(group)
    full = runner.shape.batch or n
    if full > n:
        left = torch.cat([left, left[-1:].expand(full - n, -1, -1, -1)])
        right = torch.cat([right, right[-1:].expand(full - n, -1, -1, -1)])
    pred = runner(left, right)[:n]
    ref = None
    if model is not None:
        dev = next(model.parameters()).device
        with torch.no_grad():
            ref = model(left[:n].to(dev), right[:n].to(dev), iters=iters, test_mode=True).float().cpu()
    return pred, ref


def _requested(section) -> tuple[int, int] | None:
    return (section.input_height, section.input_width) if section.input_height and section.input_width else None


def _evaluate(spec: ExperimentSpec, ctx: ActionContext, target: Path, reference: str | None, device: str):
    from stereo.actions.evaluate import EvalResult
    from stereo.atomic_io import atomic_write_json
    from stereo.data.loader import build_dataloader
    from stereo.deploy.drift import DRIFT_COLUMNS, DriftReport, rows_to_csv
    from stereo.deploy.engine_io import crop_prediction, ground_truth_in_engine_frame
    from stereo.metrics import StereoMetrics

    cfg, data_cfg = spec.evaluate, spec.dataset
    runner = _open(target, device, cfg)
    model, iters, meta = None, None, {}
    if reference:
        from stereo.training.inference_loop import inference_device, load_model

        model, meta = load_model(spec.model, reference, what="evaluate.checkpoint",
                                 device=inference_device(cfg.gpu_ids))
        iters = baked_iters(target)
        if iters is None:
            iters = spec.model.valid_iters
            log.warning("%s has no sidecar with valid_iters; the PyTorch reference uses model.valid_iters=%d",
                        target.name, iters)
    if ctx.tracker is not None and ctx.run is not None:
        tags = {"deploy_runtime": runner.kind}
        if meta:
            tags.update({"checkpoint_sha256": meta["sha256"], "checkpoint": str(reference)})
        ctx.tracker.set_tags(ctx.run, tags)
    ctx.status.write("RUNNING", f"Evaluating {target.name} with {runner.kind}.")
    loader = build_dataloader(data_cfg.test_dataset, "test", data_cfg.max_disparity, shuffle=False, drop_last=False)
    metrics, pyt = StereoMetrics(data_cfg.max_disparity), StereoMetrics(data_cfg.max_disparity)
    drift = DriftReport()
    modes: dict[str, int] = {}
    sizes = _size_policy(runner, cfg, "evaluate.on_size_mismatch", ctx)
    with _bar(loader, f"evaluate ({runner.kind})") as bar:
        for group in _fitted_batches(loader, runner, _requested(cfg), sizes):
            if any("disp" not in item for item, _ in group):
                raise BadInputError(f"dataset.test_dataset sample {group[0][0]['meta']['name']!r} has no disparity: "
                                    "evaluate needs 3- or 4-column annotation files; use depth_net inference for "
                                    "2-column files.")
            pred, ref = _run(runner, group, model, iters)
            for i, (item, fit) in enumerate(group):
                name = item["meta"]["name"]
                modes[fit.mode] = modes.get(fit.mode, 0) + 1
                p = crop_prediction(pred[i], fit)
                gt, valid = ground_truth_in_engine_frame(item["disp"], item["valid"], fit)
                metrics.update(p[None], gt[None], valid[None], names=[name])
                if ref is not None:
                    r = crop_prediction(ref[i], fit)
                    pyt.update(r[None], gt[None], valid[None], names=[name])
                    drift.update(name, r, p)
            bar.update(len(group))
    values, counts = metrics.compute(), metrics.counts()
    kpi = {**values, **sizes.kpi()}
    mismatch = _report_sizes(ctx, sizes)
    summary = {"per_image_mean": {k: values[k] for k in metrics.metric_names},
               "pixel_pooled": {k: values[k + "_pooled"] for k in metrics.metric_names},
               "counts": counts, "max_disparity": data_cfg.max_disparity, "source": str(target),
               "runtime": runner.describe(), "fit_modes": modes, "on_size_mismatch": cfg.on_size_mismatch,
               "size_mismatch": mismatch or None,
               "frame": "engine (GT resized with the image and scaled by new_w/orig_w; padding never scored)"}
    if model is not None:
        pv = pyt.compute()
        kpi.update({f"pyt_{k}": pv[k] for k in pyt.metric_names})
        kpi.update(drift.summary())
        rows_to_csv(ctx.dir / DRIFT_FILE, drift.rows, DRIFT_COLUMNS)
        summary.update({"pytorch_reference": {"checkpoint": str(reference), "valid_iters": iters,
                                              "per_image_mean": {k: pv[k] for k in pyt.metric_names}},
                        "drift": drift.summary()})
    rows = metrics.per_sample()
    rows_to_csv(ctx.dir / "per_sample_metrics.csv", rows,
                ["name", "valid_pixels", "epe", "bp1", "bp2", "bp3", "d1", "rmse"])
    atomic_write_json(ctx.dir / "results.json", summary)
    for name in ("per_sample_metrics.csv", "results.json") + ((DRIFT_FILE,) if model is not None else ()):
        ctx.log_artifact(ctx.dir / name)
    return EvalResult("RUNNING", values, rows, counts, str(ctx.dir), kpi, message=mismatch)


def inference(spec: ExperimentSpec, *, tracker: Any = None, parent_run_id: str | None = None,
              experiment: str = "depth_net", run_name: str | None = None, device: str = "auto") -> InferResult:
    """`depth_net inference`: deploy path when a graph/engine is named, else the PyTorch inference."""
    require_spec(spec, ExperimentSpec, "inference")
    target = deploy_target(spec.inference)
    if target is None:
        from stereo.actions.inference import inference as pytorch_inference

        return pytorch_inference(spec, tracker=tracker, parent_run_id=parent_run_id, experiment=experiment,
                                 run_name=run_name)
    from stereo.actions.inference import ACTION, summarize_inference

    return run_spec_action(ACTION, spec, lambda ctx: _infer(spec, ctx, target, device), summarize_inference,
                           tracker=tracker, parent_run_id=parent_run_id, experiment=experiment,
                           run_name=run_name or "deploy_inference", tags={"deploy_file": str(target)})


def _infer(spec: ExperimentSpec, ctx: ActionContext, target: Path, device: str):
    import numpy as np

    from stereo.actions.inference import InferResult, prediction_problem, write_prediction
    from stereo.data.loader import build_dataloader
    from stereo.deploy.engine_io import to_native

    cfg, data_cfg = spec.inference, spec.dataset
    runner = _open(target, device, cfg)
    if ctx.tracker is not None and ctx.run is not None:
        ctx.tracker.set_tags(ctx.run, {"deploy_runtime": runner.kind})
    loader = build_dataloader(data_cfg.infer_dataset, "infer", data_cfg.max_disparity, shuffle=False, drop_last=False)
    outputs: dict[str, list[str]] = {}
    problems: dict[str, str] = {}
    sizes = _size_policy(runner, cfg, "inference.on_size_mismatch", ctx)
    with _bar(loader, f"inference ({runner.kind})") as bar:
        for group in _fitted_batches(loader, runner, _requested(cfg), sizes):
            pred, _ = _run(runner, group)
            for i, (item, fit) in enumerate(group):
                disp = to_native(pred[i], fit)[0].numpy().astype(np.float32)
                write_prediction(ctx.dir, cfg, item, disp, outputs)
                if (why := prediction_problem(disp)) is not None:
                    problems[str(item["meta"]["name"])] = why
            bar.update(len(group))
    for path in sorted(ctx.dir.glob("*_vis.png"))[:8]:
        ctx.log_artifact(path, "visuals")
    mismatch = _report_sizes(ctx, sizes)
    return InferResult("RUNNING", outputs, str(ctx.dir), len(outputs), message=mismatch, kpi=sizes.kpi(),
                       problems=problems)
