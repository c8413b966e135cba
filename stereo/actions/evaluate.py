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
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stereo.actions.runner import ActionContext, ActionResult, BadInputError, run_spec_action

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


def evaluate(spec: Any, *, tracker: Any = None, parent_run_id: str | None = None,
             experiment: str = "depth_net", run_name: str | None = None) -> EvalResult:
    def summarize(res: EvalResult) -> ActionResult:
        return ActionResult("SUCCESS", res.kpi, f"Evaluated {res.counts['images']} images.",
                            [Path(PER_SAMPLE_FILE), Path(RESULTS_FILE)])

    return run_spec_action(ACTION, spec, lambda ctx: _evaluate(spec, ctx), summarize, tracker=tracker,
                           parent_run_id=parent_run_id, experiment=experiment, run_name=run_name)


def _evaluate(spec, ctx: ActionContext) -> EvalResult:
    from stereo.data.loader import build_dataloader
    from stereo.metrics import StereoMetrics, prefixed
    from stereo.training.inference_loop import load_model, samples

    cfg, data_cfg = spec.evaluate, spec.dataset
    if cfg.trt_engine:
        raise BadInputError("evaluate.trt_engine is set: TensorRT engines are scored by the deploy path "
                            "(stereo.deploy); clear it to evaluate evaluate.checkpoint here.")
    loader = build_dataloader(data_cfg.test_dataset, "test", data_cfg.max_disparity, shuffle=False,
                              drop_last=False)
    metrics = StereoMetrics(data_cfg.max_disparity)
    model = None
    if cfg.predictions_dir:
        pred_dir = Path(cfg.predictions_dir).expanduser()
        if not pred_dir.is_dir():
            raise BadInputError(f"evaluate.predictions_dir={cfg.predictions_dir!r} is not a folder; point it at "
                                "the output folder of `depth_net inference` (with save_raw_pfm or save_raw_npy).")
        ctx.status.write("RUNNING", f"Scoring predictions in {pred_dir}.")
    else:
        model, meta = load_model(spec.model, cfg.checkpoint, what="evaluate.checkpoint")
        if ctx.tracker is not None and ctx.run is not None:
            ctx.tracker.set_tags(ctx.run, {"checkpoint_sha256": meta["sha256"], "checkpoint": str(cfg.checkpoint)})

    for item in samples(loader, model):
        if "disp" not in item:
            raise BadInputError(f"dataset.test_dataset sample {item['meta']['name']!r} has no disparity: "
                                "evaluate needs 3- or 4-column annotation files (left right disparity [mask]); "
                                "use depth_net inference for 2-column files.")
        name = item["meta"]["name"]
        pred = item["pred"] if model is not None else read_prediction(pred_dir, name, item["disp"].shape[-2:])
        metrics.update(pred[None], item["disp"][None], item["valid"][None], names=[name])

    values = metrics.compute()
    counts = metrics.counts()
    kpi = prefixed(values, "val/")
    rows = metrics.per_sample()
    _write_csv(ctx.dir / PER_SAMPLE_FILE, rows)
    from stereo.atomic_io import atomic_write_json

    atomic_write_json(ctx.dir / RESULTS_FILE, {
        "per_image_mean": {k: values[k] for k in metrics.metric_names},
        "pixel_pooled": {k: values[k + "_pooled"] for k in metrics.metric_names},
        "counts": counts, "max_disparity": data_cfg.max_disparity,
        "source": str(cfg.predictions_dir or cfg.checkpoint)})
    for name in (PER_SAMPLE_FILE, RESULTS_FILE):
        ctx.log_artifact(ctx.dir / name)
    return EvalResult("RUNNING", values, rows, counts, str(ctx.dir), kpi)


def read_prediction(pred_dir: Path, name: str, hw) -> torch.Tensor:
    """`<pred_dir>/<name>.{pfm,npy,png}` as a [1,H,W] float tensor; raises naming what is missing."""
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

    columns = ["name", "valid_pixels", "epe", "bp1", "bp2", "bp3", "d1", "rmse"]
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
