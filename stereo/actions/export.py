"""`depth_net export`: checkpoint -> ONNX graph + `<onnx_file>.json` sidecar (see stereo.deploy.export).

Reads `spec.export` (checkpoint, onnx_file, input_height/width, batch_size, dynamic_hw, valid_iters,
opset_version, overwrite, on_cpu, gpu_id) and `spec.model`. A relative `export.onnx_file` lands in the
action's results folder (`<results_dir>/export/`). After writing, the graph is run once with ONNX Runtime
on the CPU and compared with PyTorch eager on the same seeded inputs; that max |Δdisp| is the KPI
`onnx_max_abs_diff` (px) and is stored in the sidecar.

GRU iterations baked into the graph: `export.valid_iters` when the spec sets it, else `model.valid_iters`
(TAO's export default is 22 whatever the model says, which gives an FFS bp2 graph 22 iterations instead
of its 8). The value and its source are in the sidecar (`valid_iters`, `valid_iters_source`) and the
KPI `valid_iters`; a value that differs from `model.valid_iters` is logged as a warning.
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

ACTION = "export"
log = logging.getLogger(__name__)


@dataclass
class ExportResult:
    status: str
    onnx_file: str
    sidecar_file: str
    shape_mode: str
    max_abs_diff: float | None
    seconds: float
    results_dir: str
    kpi: dict[str, float] = field(default_factory=dict)
    message: str = ""


def resolve_output(path: str, base: Path) -> Path:
    """An output path from the spec: absolute as given, relative under the action's folder."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else base / p


def export(spec: ExperimentSpec, *, tracker: Any = None, parent_run_id: str | None = None,
           experiment: str = "depth_net", run_name: str | None = None) -> ExportResult:
    require_spec(spec, ExperimentSpec, ACTION)

    def summarize(res: ExportResult) -> ActionResult:
        return ActionResult("SUCCESS", res.kpi, f"Exported {res.onnx_file} ({res.shape_mode}).",
                            [Path(res.onnx_file), Path(res.sidecar_file)])

    return run_spec_action(ACTION, spec, lambda ctx: _export(spec, ctx), summarize, tracker=tracker,
                           parent_run_id=parent_run_id, experiment=experiment, run_name=run_name)


def baked_iterations(export_cfg: Any, model_cfg: Any) -> int:
    """The GRU iterations the graph will run: export.valid_iters if set, else model.valid_iters."""
    iters = export_cfg.valid_iters if export_cfg.valid_iters is not None else model_cfg.valid_iters
    if export_cfg.valid_iters is not None and export_cfg.valid_iters != model_cfg.valid_iters:
        log.warning("export.valid_iters=%d differs from model.valid_iters=%d: the graph runs %d GRU iterations "
                    "(leave export.valid_iters unset to bake in the model's own)", export_cfg.valid_iters,
                    model_cfg.valid_iters, iters)
    return int(iters)


def _export(spec: ExperimentSpec, ctx: ActionContext) -> ExportResult:
    import torch

    from stereo.deploy.export import check_export_request, export_onnx
    from stereo.errors import ExportError
    from stereo.progress import note
    from stereo.training.inference_loop import load_model

    cfg = spec.export
    onnx_file = resolve_output(cfg.onnx_file, ctx.dir) if cfg.onnx_file else Path("")
    try:  # refuse before loading any weights
        check_export_request(spec.model.model_type, cfg.input_height, cfg.input_width, cfg.batch_size,
                             cfg.dynamic_hw, onnx_file if cfg.onnx_file else "", cfg.overwrite)
    except ExportError as exc:
        raise BadInputError(str(exc)) from exc
    device = "cpu" if cfg.on_cpu or not torch.cuda.is_available() else f"cuda:{cfg.gpu_id}"
    # the graph is always fp32: autocast would bake fp16 casts into it
    model_cfg = dataclasses.replace(spec.model, mixed_precision=False)
    note(f"export: loading {cfg.checkpoint}")
    model, meta = load_model(model_cfg, cfg.checkpoint, what="export.checkpoint", device=torch.device(device))
    iters = baked_iterations(cfg, spec.model)
    step = (f"Tracing {spec.model.model_type} at {cfg.input_height}x{cfg.input_width} on {device} with {iters} GRU "
            "iterations, then checking the graph with ONNX Runtime (CPU) against PyTorch.")
    ctx.status.write("RUNNING", step)
    note(f"export: {step}")
    try:
        info = export_onnx(model, spec.model, onnx_file, height=cfg.input_height, width=cfg.input_width,
                           batch_size=cfg.batch_size, dynamic_hw=cfg.dynamic_hw, valid_iters=cfg.valid_iters,
                           opset=cfg.opset_version, overwrite=cfg.overwrite, device=device, verbose=cfg.verbose,
                           checkpoint={"path": str(cfg.checkpoint), "sha256": meta["sha256"], "meta": meta})
    except ExportError as exc:
        raise BadInputError(str(exc)) from exc
    if ctx.tracker is not None and ctx.run is not None:
        ctx.tracker.set_tags(ctx.run, {"checkpoint_sha256": meta["sha256"], "checkpoint": str(cfg.checkpoint),
                                       "onnx_sha256": info.sidecar["onnx_sha256"], "shape_mode": info.shape_mode})
        ctx.log_artifact(info.sidecar_file, "onnx")
    note(f"export: wrote {info.onnx_file} ({info.seconds:.1f} s); ONNX Runtime vs PyTorch max |diff| "
         f"{info.max_abs_diff} px")
    kpi = {"export_seconds": info.seconds, "valid_iters": float(info.sidecar["valid_iters"])}
    if info.max_abs_diff is not None:
        kpi["onnx_max_abs_diff"] = info.max_abs_diff
    return ExportResult("RUNNING", str(info.onnx_file), str(info.sidecar_file), info.shape_mode, info.max_abs_diff,
                        info.seconds, str(ctx.dir), kpi)
