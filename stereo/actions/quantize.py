"""`depth_net quantize`: static int8 of an exported graph on the CPU, then int8 vs fp32 (drift, EPE, speed, size).

Reads `spec.quantize` (TAO's section: backend, mode, algorithm, device, layers, skip_names, backend_kwargs,
model_path; see stereo.config.quantize for what is refused and why), `dataset.quant_calibration_dataset`
and, when it has data, `dataset.val_dataset`. Writes to `<results_dir>/quantize/`:

    model_int8.onnx (+ .json)   the int8 QDQ graph and its sidecar (precision int8; stereo.deploy.quantize)
    model_fp32.onnx (+ .json)   only when quantize.model_path is a checkpoint: exported first, batch 1, at
                                export.input_height x export.input_width with export.valid_iters
    results.json                every number below with its context (device, shapes, threads, data)
    drift_per_sample.csv        int8 vs fp32 per image

KPIs (status.json and MLflow, same names): `fp32_latency_ms`, `int8_latency_ms`, `speedup` (fp32 / int8),
`fp32_size_mb`, `int8_size_mb`, `size_ratio` (int8 / fp32), `drift_*` (px; stereo.deploy.drift), and with a
val set that has GT `fp32_epe`, `int8_epe`, `epe_delta` (+ bp3, d1); `calibration_images`, `eval_images`,
`quantize_seconds`. The drift is measured on dataset.val_dataset when it is set, else on the calibration
pairs themselves (results.json says which). Latency: stereo.deploy.quant_eval.measure_latencies (fp32 and
int8 in interleaved rounds).
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stereo.actions.runner import ActionContext, ActionResult, require_spec, run_spec_action
from stereo.config.spec import ExperimentSpec
from stereo.errors import BadInputError

ACTION = "quantize"
FP32_FILE = "model_fp32.onnx"
DRIFT_FILE = "drift_per_sample.csv"
log = logging.getLogger(__name__)


@dataclass
class QuantizeResult:
    status: str
    onnx_file: str
    sidecar_file: str
    fp32_onnx: str
    results_dir: str
    kpi: dict[str, float] = field(default_factory=dict)
    message: str = ""


def quantize(spec: ExperimentSpec, *, tracker: Any = None, parent_run_id: str | None = None,
             experiment: str = "depth_net", run_name: str | None = None) -> QuantizeResult:
    require_spec(spec, ExperimentSpec, ACTION)

    def summarize(res: QuantizeResult) -> ActionResult:
        k = res.kpi
        message = (f"Quantized to {Path(res.onnx_file).name}: int8 {k['int8_latency_ms']:.1f} ms vs fp32 "
                   f"{k['fp32_latency_ms']:.1f} ms ({k['speedup']:.2f}x), {k['int8_size_mb']:.1f} MB vs "
                   f"{k['fp32_size_mb']:.1f} MB, drift {k['drift_mean_abs']:.3f} px mean.")
        return ActionResult("SUCCESS", res.kpi, message, [Path(res.onnx_file), Path(res.sidecar_file),
                                                          Path("results.json"), Path(DRIFT_FILE)])

    return run_spec_action(ACTION, spec, lambda ctx: _quantize(spec, ctx), summarize, tracker=tracker,
                           parent_run_id=parent_run_id, experiment=experiment, run_name=run_name,
                           tags={"precision": "int8"})


def _output(path: str, base: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else base / p


def fp32_graph(spec: ExperimentSpec, ctx: ActionContext) -> Path:
    """quantize.model_path when it is an ONNX graph; a checkpoint is exported first (batch 1, static H x W)."""
    source = Path(spec.quantize.model_path).expanduser()
    if source.suffix.lower() == ".onnx":
        return source
    import torch

    from stereo.deploy.export import check_export_request, export_onnx
    from stereo.errors import ExportError
    from stereo.progress import note
    from stereo.training.inference_loop import load_model

    e, out = spec.export, ctx.dir / FP32_FILE
    try:
        check_export_request(spec.model.model_type, e.input_height, e.input_width, 1, False, out, True)
    except ExportError as exc:
        raise BadInputError(str(exc)) from exc
    model_cfg = dataclasses.replace(spec.model, mixed_precision=False)
    model, meta = load_model(model_cfg, str(source), what="quantize.model_path", device=torch.device("cpu"))
    step = f"Exporting {source.name} to ONNX at {e.input_height}x{e.input_width} (batch 1) before quantizing."
    ctx.status.write("RUNNING", step)
    note(f"quantize: {step}")
    export_onnx(model, spec.model, out, height=e.input_height, width=e.input_width, batch_size=1,
                valid_iters=e.valid_iters, opset=e.opset_version, overwrite=True, device="cpu",
                checkpoint={"path": str(source), "sha256": meta["sha256"], "meta": meta})
    return out


def _open(path: Path, threads: int):
    from stereo.deploy.runners import open_runner

    try:
        return open_runner(path, device="cpu", threads=threads, runtime="onnxruntime")
    except (ValueError, FileNotFoundError) as exc:
        raise BadInputError(str(exc)) from exc


def _graph_hw(runner, spec: ExperimentSpec) -> tuple[int, int]:
    shape = runner.shape
    if shape.batch not in (None, 1):
        raise BadInputError(f"{runner.path.name} has a static batch of {shape.batch}; quantize calibrates and "
                            "times batch 1: re-export with export.batch_size: 1 or -1")
    return tuple(shape.hw) if shape.hw else (spec.export.input_height, spec.export.input_width)


def _samples(spec: ExperimentSpec, hw: tuple[int, int], feeds) -> tuple[str, list]:
    """(what, [(name, left, right, fit, gt, valid)]): the val split when it has data, else the calibration pairs."""
    from stereo.deploy.engine_io import fit_images, ground_truth_in_engine_frame, plan_fit

    val = spec.dataset.val_dataset
    if not val.data_sources:
        rows = [(str(left.relative_to(Path(spec.dataset.quant_calibration_dataset.images_dir).expanduser())),
                 a, b, fit, None, None) for (left, _), (a, b, fit) in zip(feeds.pairs, feeds.loaded, strict=True)]
        return "calibration pairs (no dataset.val_dataset)", rows
    from stereo.data.loader import build_dataset

    rows = []
    for item in build_dataset(val, "val", spec.dataset.max_disparity):
        h, w = item["meta"]["orig_hw"]
        fit = plan_fit((h, w), hw)
        left, right = (fit_images(item[k][:, :h, :w], fit)[None] for k in ("left", "right"))
        gt, valid = (ground_truth_in_engine_frame(item["disp"][:, :h, :w], item["valid"][:, :h, :w], fit)
                     if "disp" in item else (None, None))
        rows.append((str(item["meta"]["name"]), left, right, fit, gt, valid))
    return "dataset.val_dataset", rows


def _quantize(spec: ExperimentSpec, ctx: ActionContext) -> QuantizeResult:
    from stereo.atomic_io import atomic_write_json
    from stereo.deploy.calibration import PairFeeds, find_pairs, no_pairs_reason
    from stereo.deploy.drift import DRIFT_COLUMNS, rows_to_csv
    from stereo.deploy.engine_io import crop_prediction
    from stereo.deploy.quant_eval import Comparison, measure_latencies
    from stereo.deploy.quantize import quantize_onnx
    from stereo.progress import note

    q, images_dir = spec.quantize, spec.dataset.quant_calibration_dataset.images_dir
    if q.device == "cuda":
        log.warning("quantize.device=cuda: ONNX Runtime's static quantization calibrates on the CPU here")
    pairs = find_pairs(images_dir, limit=q.max_calibration_images)
    if not pairs:
        raise BadInputError(f"dataset.quant_calibration_dataset.images_dir={images_dir!r} "
                            f"{no_pairs_reason(images_dir)}; add stereo pairs there")
    fp32_file = fp32_graph(spec, ctx)
    fp32 = _open(fp32_file, q.threads)
    hw = _graph_hw(fp32, spec)
    out = _output(q.onnx_file, ctx.dir)
    feeds = PairFeeds(pairs, hw)
    step = (f"Calibrating {len(feeds)} pair(s) at {hw[0]}x{hw[1]} ({q.algorithm}) and writing the int8 QDQ "
            f"graph {out.name} with ONNX Runtime.")
    ctx.status.write("RUNNING", step)
    note(f"quantize: {step}")
    kwargs = {"per_channel": True, **q.backend_kwargs}
    try:
        info = quantize_onnx(fp32_file, out, feeds.reader(), method=q.algorithm, skip_names=q.skip_names, **kwargs)
    except ValueError as exc:  # a skip_names pattern that matches nothing, the output over its source
        raise BadInputError(str(exc)) from exc
    int8 = _open(out, q.threads)
    what, rows = _samples(spec, hw, feeds)
    ctx.status.write("RUNNING", f"Comparing int8 with fp32 on {len(rows)} image(s) of the {what}.")
    comparison = Comparison(spec.dataset.max_disparity)
    for name, left, right, fit, gt, valid in rows:
        comparison.update(name, crop_prediction(fp32(left, right)[0], fit), crop_prediction(int8(left, right)[0], fit),
                          gt, valid)
    _, left, right, *_ = rows[0]
    note(f"quantize: timing fp32 and int8 ({q.warmup_runs} warm-up + {q.latency_runs} runs, {q.threads} thread(s))")
    timed = measure_latencies({"fp32": fp32, "int8": int8}, left, right, runs=q.latency_runs, warmup=q.warmup_runs,
                              threads=q.threads)
    mb = 1024.0 * 1024.0
    kpi = {"fp32_latency_ms": timed["fp32"].median_ms, "int8_latency_ms": timed["int8"].median_ms,
           "speedup": timed["fp32"].median_ms / timed["int8"].median_ms,
           "fp32_size_mb": info.fp32_bytes / mb, "int8_size_mb": info.int8_bytes / mb,
           "size_ratio": info.int8_bytes / info.fp32_bytes, **comparison.kpi(),
           "calibration_images": float(len(feeds)), "eval_images": float(len(rows)),
           "quantize_seconds": info.seconds}
    rows_to_csv(ctx.dir / DRIFT_FILE, comparison.drift.rows, DRIFT_COLUMNS)
    atomic_write_json(ctx.dir / "results.json", {
        "kpi": kpi, "device": timed["fp32"].device, "latency": {k: v.as_dict() for k, v in timed.items()},
        "eval_set": what, "fp32_onnx": str(fp32_file), "int8_onnx": str(out), "input_hw": list(hw),
        "calibration": {"images_dir": str(images_dir), "pairs": len(feeds), "method": q.algorithm},
        "quantization": info.sidecar["quantization"], "backend": q.backend, "mode": q.mode})
    if ctx.tracker is not None and ctx.run is not None:
        ctx.tracker.set_tags(ctx.run, {"device": timed["fp32"].device, "eval_set": what, "int8_onnx": str(out),
                                       "onnx_sha256": info.sidecar["onnx_sha256"]})
        for path in (info.sidecar_file, ctx.dir / "results.json", ctx.dir / DRIFT_FILE):
            ctx.log_artifact(path)
    note(f"quantize: int8 {kpi['int8_latency_ms']:.1f} ms vs fp32 {kpi['fp32_latency_ms']:.1f} ms on "
         f"{timed['fp32'].device}; drift {kpi['drift_mean_abs']:.3f} px mean")
    return QuantizeResult("RUNNING", str(out), str(info.sidecar_file), str(fp32_file), str(ctx.dir), kpi)
