"""`depth_net inference`: predict disparity for `dataset.infer_dataset` and write pictures (and raw maps).

Per sample, named after `meta["name"]` (every dataset class defines one, so Crestereo works too; a name
with folders becomes `a_b_c`):

    <name>.png        colourised disparity (turbo, 0..max of the map)
    <name>_vis.png    left | prediction | error (the error panel only when the sample has ground truth)
    <name>.pfm        raw float32 disparity when inference.save_raw_pfm
    <name>.npy        raw float32 disparity when inference.save_raw_npy

2-column annotation files (no ground truth) work with GenericDataset. Disparity is at the input's native
resolution (the network pads and unpads).

SUCCESS needs every prediction to be non-empty and finite: a network or engine that returns NaN/inf
(an fp16 engine overflowing, damaged weights) fails the action naming the samples, although the files
are still written for inspection.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stereo.actions.runner import ActionContext, ActionResult, require_spec, run_spec_action
from stereo.config.spec import ExperimentSpec
from stereo.errors import BadInputError

ACTION = "inference"


@dataclass
class InferResult:
    status: str
    outputs: dict[str, list[str]]  # sample name -> files written for it
    results_dir: str
    count: int = 0
    message: str = ""
    kpi: dict[str, float] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)  # sample name -> why its prediction is unusable


def inference(spec: ExperimentSpec, *, tracker: Any = None, parent_run_id: str | None = None,
              experiment: str = "depth_net", run_name: str | None = None) -> InferResult:
    require_spec(spec, ExperimentSpec, ACTION)
    return run_spec_action(ACTION, spec, lambda ctx: _infer(spec, ctx), summarize_inference, tracker=tracker,
                           parent_run_id=parent_run_id, experiment=experiment, run_name=run_name)


def summarize_inference(res: InferResult) -> ActionResult:
    """SUCCESS needs at least one written prediction and every prediction finite and non-empty (shared
    with the deploy path)."""
    files = [Path(f) for fs in res.outputs.values() for f in fs]
    kpi = {**res.kpi, "num_images": float(res.count), "num_unusable": float(len(res.problems))}
    if not files:
        return ActionResult("FAILURE", kpi, "no input images", files)
    if res.problems:
        shown = "; ".join(f"{name!r}: {why}" for name, why in list(res.problems.items())[:5])
        more = f" (and {len(res.problems) - 5} more)" if len(res.problems) > 5 else ""
        return ActionResult("FAILURE", kpi, f"{len(res.problems)} of {res.count} predictions are unusable: "
                            f"{shown}{more}. The network returned NaN/inf: for an fp16 engine rebuild it in "
                            "fp32 (or keep the overflowing layers in fp32 with tensorrt.layers_precision); for a "
                            "checkpoint, check that its weights are finite", files)
    warn = f" Warning: {res.message}" if res.message else ""  # e.g. images fitted to a static graph
    return ActionResult("SUCCESS", kpi, f"Wrote predictions for {res.count} images.{warn}", files)


def prediction_problem(disp: np.ndarray) -> str | None:
    """Why a predicted disparity map is unusable (empty, NaN/inf pixels), or None when it is fine."""
    if disp.size == 0:
        return "empty prediction (0 pixels)"
    bad = int(np.count_nonzero(~np.isfinite(disp)))
    return f"{bad} of {disp.size} pixels are NaN/inf" if bad else None


def write_prediction(out_dir: Path, cfg: Any, item: dict, disp: np.ndarray, outputs: dict[str, list[str]]) -> None:
    """One sample's files, named after meta["name"]: colourised PNG, left | prediction | error visual, and
    raw PFM/NPY when `cfg.save_raw_pfm` / `cfg.save_raw_npy` ask for them. Shared with the deploy path so
    both name and write outputs identically; `outputs` (name -> files) refuses a name seen twice."""
    from stereo.atomic_io import atomic_path
    from stereo.data.formats.pfm import write_pfm
    from stereo.training.inference_loop import safe_name
    from stereo.visualize import colorize_disparity, side_by_side, write_png

    name = safe_name(item["meta"]["name"])
    if name in outputs:
        raise BadInputError(f"two inference samples are both named {name!r}; their outputs would overwrite "
                            "each other. Use a dataset_name whose naming keeps them apart (FSD/Generic "
                            "use the relative left path) or split the annotation file.")
    gt = item["disp"][0].numpy() if "disp" in item else None
    valid = item["valid"][0].numpy() if "valid" in item else None
    files = [write_png(out_dir / f"{name}.png", colorize_disparity(disp)),
             write_png(out_dir / f"{name}_vis.png", side_by_side(item["left"].numpy(), disp, gt, valid))]
    if cfg.save_raw_pfm:
        files.append(write_pfm(out_dir / f"{name}.pfm", disp))
    if cfg.save_raw_npy:
        with atomic_path(out_dir / f"{name}.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, disp)
        files.append(out_dir / f"{name}.npy")
    outputs[name] = [str(f) for f in files]


def _infer(spec: ExperimentSpec, ctx: ActionContext) -> InferResult:
    from stereo.data.loader import build_dataloader
    from stereo.training.inference_loop import inference_device, load_model, samples

    cfg, data_cfg = spec.inference, spec.dataset
    if cfg.trt_engine:
        raise BadInputError("inference.trt_engine is set: TensorRT engines run on the deploy path "
                            "(stereo.deploy); clear it to run inference.checkpoint here.")
    device = inference_device(cfg.gpu_ids)
    model, meta = load_model(spec.model, cfg.checkpoint, what="inference.checkpoint", device=device)
    if ctx.tracker is not None and ctx.run is not None:
        ctx.tracker.set_tags(ctx.run, {"checkpoint_sha256": meta["sha256"], "checkpoint": str(cfg.checkpoint)})
    loader = build_dataloader(data_cfg.infer_dataset, "infer", data_cfg.max_disparity, shuffle=False,
                              drop_last=False)
    outputs: dict[str, list[str]] = {}
    problems: dict[str, str] = {}
    from stereo.progress import progress

    for item in progress(samples(loader, model, device), total=len(loader.dataset), desc="inference"):
        pred = item["pred"][0].numpy().astype(np.float32)
        write_prediction(ctx.dir, cfg, item, pred, outputs)
        if (why := prediction_problem(pred)) is not None:
            problems[str(item["meta"]["name"])] = why
    visuals = sorted(ctx.dir.glob("*_vis.png"))[:8]
    for path in visuals:  # a few side-by-sides are enough to browse in the tracker
        ctx.log_artifact(path, "visuals")
    return InferResult("RUNNING", outputs, str(ctx.dir), len(outputs), problems=problems)
