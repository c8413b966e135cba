"""`depth_net evaluate`: score a checkpoint, or precomputed predictions, on `dataset.test_dataset`.

Runs at native resolution (the network pads to a multiple of 32 and unpads). Metrics come from
stereo.metrics.StereoMetrics, the same code training validation uses:

* status.json `kpi` and tracker metrics use TAO's PyTorch-evaluate names `val/epe`, `val/bp1`, `val/bp2`,
  `val/bp3`, `val/d1`, `val/rmse` (per-image means, TAO's headline convention) and the pixel-pooled
  `val/*_pooled`; readers that want TAO deploy's plain `epe` use stereo.metrics.find_metric, which
  accepts either spelling.
* `per_sample_metrics.csv`: one row per image (name, valid_pixels, epe, bp1, bp2, bp3, d1, rmse).
* `results.json`: both aggregates, labelled, plus image/pixel counts.

`evaluate.predictions_dir` scores files instead of a network: `<name>.pfm`, `<name>.npy` (float
disparity) or `<name>.png` (16-bit, value / 256 as KITTI; 0 = no prediction), where `<name>` is the
sample's `meta["name"]` as written by `depth_net inference`.

Holes in precomputed predictions (0 in a PNG, NaN/inf in a PFM/NPY) are scored as disparity 0 on the
valid-GT pixels: they count as errors, never silently skipped (that would reward sparse maps). How much of
the valid GT had a prediction is reported as `pred_density` (0..1) per image in the CSV and as KPIs
`val/pred_density` (per-image mean) and `val/pred_density_pooled` (share of all valid-GT pixels). A
network's own NaN/inf output is not a hole: it scores as an infinite error, so the evaluate fails.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stereo.actions.runner import ActionContext, ActionResult, require_spec, run_spec_action
from stereo.config.spec import ExperimentSpec
from stereo.errors import BadInputError

ACTION = "evaluate"
PER_SAMPLE_FILE = "per_sample_metrics.csv"
RESULTS_FILE = "results.json"
PREDICTION_SUFFIXES = (".pfm", ".npy", ".png")


@dataclass
class EvalResult:
    status: str
    metrics: dict[str, float]  # per-image means (plain names) and pixel-pooled (`*_pooled`)
    per_sample: list[dict[str, Any]]
    counts: dict[str, int]
    results_dir: str
    kpi: dict[str, float] = field(default_factory=dict)  # the `val/*` keys written to status.json
    message: str = ""


def evaluate(spec: ExperimentSpec, *, tracker: Any = None, parent_run_id: str | None = None,
             experiment: str = "depth_net", run_name: str | None = None) -> EvalResult:
    require_spec(spec, ExperimentSpec, ACTION)

    def summarize(res: EvalResult) -> ActionResult:
        return ActionResult("SUCCESS", res.kpi, f"Evaluated {res.counts['images']} images.",
                            [Path(PER_SAMPLE_FILE), Path(RESULTS_FILE)])

    return run_spec_action(ACTION, spec, lambda ctx: _evaluate(spec, ctx), summarize, tracker=tracker,
                           parent_run_id=parent_run_id, experiment=experiment, run_name=run_name)


def _evaluate(spec: ExperimentSpec, ctx: ActionContext) -> EvalResult:
    from stereo.data.loader import build_dataloader
    from stereo.metrics import StereoMetrics, prefixed
    from stereo.training.inference_loop import inference_device, load_model, samples

    cfg, data_cfg = spec.evaluate, spec.dataset
    if cfg.trt_engine:
        raise BadInputError("evaluate.trt_engine is set: TensorRT engines are scored by the deploy path "
                            "(stereo.deploy); clear it to evaluate evaluate.checkpoint here.")
    loader = build_dataloader(data_cfg.test_dataset, "test", data_cfg.max_disparity, shuffle=False,
                              drop_last=False)
    metrics = StereoMetrics(data_cfg.max_disparity)
    model = None
    density: dict[str, tuple[int, int]] = {}  # name -> (valid-GT pixels with a prediction, valid-GT pixels)
    if cfg.predictions_dir:
        pred_dir = Path(cfg.predictions_dir).expanduser()
        if not pred_dir.is_dir():
            raise BadInputError(f"evaluate.predictions_dir={cfg.predictions_dir!r} is not a folder; point it at "
                                "the output folder of `depth_net inference` (with save_raw_pfm or save_raw_npy).")
        ctx.status.write("RUNNING", f"Scoring predictions in {pred_dir}.")
    else:
        device = inference_device(cfg.gpu_ids)
        model, meta = load_model(spec.model, cfg.checkpoint, what="evaluate.checkpoint", device=device)
        if ctx.tracker is not None and ctx.run is not None:
            ctx.tracker.set_tags(ctx.run, {"checkpoint_sha256": meta["sha256"], "checkpoint": str(cfg.checkpoint)})

    from stereo.progress import progress

    items = samples(loader, model, device if model is not None else None)
    for item in progress(items, total=len(loader.dataset), desc="evaluate"):
        if "disp" not in item:
            raise BadInputError(f"dataset.test_dataset sample {item['meta']['name']!r} has no disparity: "
                                "evaluate needs 3- or 4-column annotation files (left right disparity [mask]); "
                                "use depth_net inference for 2-column files.")
        name = item["meta"]["name"]
        if model is not None:
            pred = item["pred"]
        else:
            pred, density[name] = fill_holes(read_prediction(pred_dir, name, item["disp"].shape[-2:]),
                                             item["disp"], item["valid"], data_cfg.max_disparity)
        metrics.update(pred[None], item["disp"][None], item["valid"][None], names=[name])

    values = metrics.compute()
    counts = metrics.counts()
    rows = metrics.per_sample()
    if density:
        values.update(_density_summary(density))
        for row in rows:
            have, scored = density[row["name"]]
            row["pred_density"] = have / scored if scored else math.nan
    kpi = prefixed(values, "val/")
    _write_csv(ctx.dir / PER_SAMPLE_FILE, rows)
    from stereo.atomic_io import atomic_write_json

    summary = {
        "per_image_mean": {k: values[k] for k in metrics.metric_names},
        "pixel_pooled": {k: values[k + "_pooled"] for k in metrics.metric_names},
        "counts": counts, "max_disparity": data_cfg.max_disparity,
        "source": str(cfg.predictions_dir or cfg.checkpoint)}
    if density:
        summary["pred_density"] = {"per_image_mean": values["pred_density"],
                                   "pixel_pooled": values["pred_density_pooled"],
                                   "holes": "scored as disparity 0 on valid-GT pixels (counted as errors)"}
    atomic_write_json(ctx.dir / RESULTS_FILE, summary)
    for name in (PER_SAMPLE_FILE, RESULTS_FILE):
        ctx.log_artifact(ctx.dir / name)
    return EvalResult("RUNNING", values, rows, counts, str(ctx.dir), kpi)


def fill_holes(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor,
               max_disparity: float) -> tuple[torch.Tensor, tuple[int, int]]:
    """(`pred` with its holes (non-finite) set to 0, (valid-GT pixels with a prediction, valid-GT pixels))."""
    from stereo.metrics import valid_mask

    hole = ~torch.isfinite(pred)
    scored = valid_mask(gt[None], valid[None], max_disparity)[0]
    have = int((scored & ~hole[0]).sum())
    return torch.where(hole, torch.zeros_like(pred), pred), (have, int(scored.sum()))


def _density_summary(density: dict[str, tuple[int, int]]) -> dict[str, float]:
    scored = [(have, n) for have, n in density.values() if n > 0]
    if not scored:
        return {"pred_density": math.nan, "pred_density_pooled": math.nan}
    return {"pred_density": sum(have / n for have, n in scored) / len(scored),
            "pred_density_pooled": sum(have for have, _ in scored) / sum(n for _, n in scored)}


def read_prediction(pred_dir: Path, name: str, hw) -> torch.Tensor:
    """`<pred_dir>/<name>.{pfm,npy,png}` as a [1,H,W] float tensor, holes as inf/NaN (a PNG's 0 is
    read as inf, see stereo.data.formats.png16); raises naming what is missing."""
    from stereo.data.formats.pfm import read_pfm
    from stereo.training.inference_loop import safe_name

    stem = safe_name(name)
    for suffix in PREDICTION_SUFFIXES:
        path = pred_dir / f"{stem}{suffix}"
        if path.is_file():
            break
    else:
        raise BadInputError(f"no prediction for sample {name!r} in evaluate.predictions_dir={str(pred_dir)!r}: "
                            f"expected {stem}.pfm, {stem}.npy or {stem}.png (named after meta['name'], as "
                            "depth_net inference writes them).")
    if suffix == ".pfm":
        disp = read_pfm(path)
    elif suffix == ".npy":
        disp = np.load(path, allow_pickle=False)
    else:
        from stereo.data.formats.png16 import KITTI_SCALE, read_png16_disparity

        disp = read_png16_disparity(path, KITTI_SCALE)
    disp = np.asarray(disp, dtype=np.float32).squeeze()
    if tuple(disp.shape) != tuple(hw):
        raise BadInputError(f"prediction {path} is {disp.shape[0]}x{disp.shape[1]} but the ground truth of "
                            f"{name!r} is {hw[0]}x{hw[1]}; predictions must be at the native resolution.")
    return torch.from_numpy(np.ascontiguousarray(disp))[None]


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    from stereo.atomic_io import atomic_write_text

    columns = ["name", "valid_pixels", "epe", "bp1", "bp2", "bp3", "d1", "rmse"]  # then pred_density, ...
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
