"""`depth_net gen_trt_engine`: ONNX -> TensorRT engine (GPU hosts with `stereo-automl[tensorrt]`).

The request is validated against the ONNX before TensorRT is imported (stereo.deploy.tensorrt.plan_build):
profile order and multiples of 32, static vs dynamic axes, the evaluation size
(`evaluate.input_height/width` when set) inside the profile, precision and layer-override syntax. Without
TensorRT or a GPU the action fails with one line saying so.

Outputs: the engine (`gen_trt_engine.trt_engine`; empty: `<results_dir>/gen_trt_engine/<onnx stem>.<dtype>.engine`)
and `<engine>.json`: the ONNX sidecar (input contract, valid_iters, model config, checkpoint hash) plus the
build settings, so deploy evaluate can find the baked iteration count and the source checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stereo.actions.export import resolve_output
from stereo.actions.runner import ActionContext, ActionResult, require_spec, run_spec_action
from stereo.config.spec import ExperimentSpec
from stereo.errors import BadInputError

ACTION = "gen_trt_engine"
ENGINE_SIDECAR_FORMAT = "stereo-automl-trt-engine"


@dataclass
class EngineResult:
    status: str
    engine_file: str
    sidecar_file: str
    data_type: str
    seconds: float
    results_dir: str
    kpi: dict[str, float] = field(default_factory=dict)
    message: str = ""


def engine_sidecar_path(engine_file: str | Path) -> Path:
    return Path(f"{engine_file}.json")


def gen_trt_engine(spec: ExperimentSpec, *, tracker: Any = None, parent_run_id: str | None = None,
                   experiment: str = "depth_net", run_name: str | None = None) -> EngineResult:
    require_spec(spec, ExperimentSpec, ACTION)

    def summarize(res: EngineResult) -> ActionResult:
        return ActionResult("SUCCESS", res.kpi, f"Built {res.engine_file} ({res.data_type}).",
                            [Path(res.engine_file), Path(res.sidecar_file)])

    return run_spec_action(ACTION, spec, lambda ctx: _build(spec, ctx), summarize, tracker=tracker,
                           parent_run_id=parent_run_id, experiment=experiment, run_name=run_name)


def _eval_hw(spec: ExperimentSpec) -> tuple[int, int] | None:
    e = spec.evaluate
    return (e.input_height, e.input_width) if e.input_height and e.input_width else None


def _build(spec: ExperimentSpec, ctx: ActionContext) -> EngineResult:
    from stereo.atomic_io import atomic_write_json
    from stereo.deploy.export import read_onnx_sidecar
    from stereo.deploy.tensorrt import build_engine, describe_plan, plan_from_config
    from stereo.errors import EngineRequestError

    cfg = spec.gen_trt_engine
    if not cfg.onnx_file:
        raise BadInputError("gen_trt_engine.onnx_file is empty; set it to the file depth_net export wrote")
    onnx_file = Path(cfg.onnx_file).expanduser()
    if not onnx_file.is_file():
        raise BadInputError(f"gen_trt_engine.onnx_file={cfg.onnx_file!r} does not exist; run depth_net export "
                            "first or fix the path")
    try:
        plan = plan_from_config(onnx_file, cfg, _eval_hw(spec))
        onnx_sidecar = read_onnx_sidecar(onnx_file)
    except EngineRequestError as exc:
        raise BadInputError(str(exc)) from exc
    engine_file = (resolve_output(cfg.trt_engine, ctx.dir) if cfg.trt_engine
                   else ctx.dir / f"{onnx_file.stem}.{plan.data_type}.engine")
    step = f"Building a {plan.data_type} TensorRT engine from {onnx_file.name} on GPU {cfg.gpu_id} (minutes)."
    ctx.status.write("RUNNING", step)
    from stereo.progress import note

    note(f"gen_trt_engine: {step}")
    try:
        info = build_engine(plan, engine_file, verbose=cfg.verbose, gpu_index=cfg.gpu_id)
    except EngineRequestError as exc:
        raise BadInputError(str(exc)) from exc
    import torch

    sidecar = {"format": ENGINE_SIDECAR_FORMAT, "format_version": 1, "engine_file": engine_file.name,
               "tensorrt_version": info.tensorrt_version, "gpu": torch.cuda.get_device_name(cfg.gpu_id),
               "gpu_id": int(cfg.gpu_id),
               "build": {**describe_plan(plan), "seconds": info.seconds, "layers_overridden": info.layers_overridden},
               "onnx": onnx_sidecar}
    side = atomic_write_json(engine_sidecar_path(engine_file), sidecar)
    if ctx.tracker is not None and ctx.run is not None:
        tags = {"tensorrt_version": info.tensorrt_version, "data_type": plan.data_type}
        if onnx_sidecar and onnx_sidecar.get("source_checkpoint", {}).get("sha256"):
            tags["checkpoint_sha256"] = onnx_sidecar["source_checkpoint"]["sha256"]
        ctx.tracker.set_tags(ctx.run, tags)
        ctx.log_artifact(side, "engine")
    return EngineResult("RUNNING", str(engine_file), str(side), plan.data_type, info.seconds, str(ctx.dir),
                        {"build_seconds": info.seconds})
