"""PyTorch-vs-deploy drift: how far a deployed graph's disparity is from the eager model on the same input.

Per image, over the pixels of the (cropped) prediction — ground truth is not needed:

    mean_abs        mean |d_deploy − d_pyt|                       px
    max_abs         max  |d_deploy − d_pyt|                       px
    frac_over_2px   share of pixels with |Δ| > 2 px                0..1
    cosine          <d_deploy, d_pyt> / (‖d_deploy‖ ‖d_pyt‖)     1 = same direction
    nonfinite_frac  share of pixels where the deploy output is NaN/inf (excluded from the others)

Aggregates (kpi names): `drift_mean_abs` (mean over images), `drift_max_abs` (max over images),
`drift_frac_over_2px` (mean), `drift_cosine` (mean) and `drift_cosine_min`, `drift_nonfinite_frac`.

The drift run is nested under the training run that produced the checkpoint: the run id comes from the
checkpoint sidecar's `meta` (`mlflow_run_id` or `run_id`) or from the `checkpoint_sha256` tag the train
action sets on its run (:func:`find_training_run`).
"""
from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

DRIFT_THRESHOLD_PX = 2.0
DRIFT_COLUMNS = ["name", "pixels", "mean_abs", "max_abs", "frac_over_2px", "cosine", "nonfinite_frac"]
TRAIN_ACTION = "train"


def drift_stats(reference: torch.Tensor, deployed: torch.Tensor, threshold: float = DRIFT_THRESHOLD_PX
                ) -> dict[str, float]:
    """Drift of one image (any shape, same for both); see the module docstring."""
    if reference.shape != deployed.shape:
        raise ValueError(f"reference {tuple(reference.shape)} and deployed {tuple(deployed.shape)} predictions "
                         "must have the same shape (crop both to the image first)")
    ref = reference.detach().double().flatten()
    dep = deployed.detach().double().flatten()
    ok = torch.isfinite(dep) & torch.isfinite(ref)
    n = int(ok.sum())
    nonfinite = 1.0 - n / max(1, ref.numel())
    if n == 0:
        return {"pixels": 0, "mean_abs": float("nan"), "max_abs": float("nan"), "frac_over_2px": float("nan"),
                "cosine": float("nan"), "nonfinite_frac": nonfinite}
    ref, dep = ref[ok], dep[ok]
    diff = (dep - ref).abs()
    norm = float(ref.norm() * dep.norm())
    cosine = float(torch.dot(ref, dep)) / norm if norm > 0 else float(torch.equal(ref, dep))
    return {"pixels": n, "mean_abs": float(diff.mean()), "max_abs": float(diff.max()),
            "frac_over_2px": float((diff > threshold).double().mean()), "cosine": cosine,
            "nonfinite_frac": nonfinite}


class DriftReport:
    """Per-image drift rows plus their aggregates."""

    def __init__(self, threshold: float = DRIFT_THRESHOLD_PX):
        self.threshold = float(threshold)
        self.rows: list[dict[str, Any]] = []

    def update(self, name: str, reference: torch.Tensor, deployed: torch.Tensor) -> dict[str, Any]:
        row = {"name": str(name), **drift_stats(reference, deployed, self.threshold)}
        self.rows.append(row)
        return row

    def summary(self) -> dict[str, float]:
        scored = [r for r in self.rows if r["pixels"] > 0]
        if not scored:
            raise ValueError("no image with a finite deployed prediction: the deployed graph returns only NaN/inf "
                             "(fp16 overflow?); rebuild the engine in fp32")
        mean = lambda key: sum(r[key] for r in scored) / len(scored)
        return {"drift_mean_abs": mean("mean_abs"), "drift_max_abs": max(r["max_abs"] for r in scored),
                "drift_frac_over_2px": mean("frac_over_2px"), "drift_cosine": mean("cosine"),
                "drift_cosine_min": min(r["cosine"] for r in scored),
                "drift_nonfinite_frac": sum(r["nonfinite_frac"] for r in self.rows) / len(self.rows)}


def rows_to_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> Path:
    """Write rows (extra keys appended as columns) atomically."""
    from stereo.atomic_io import atomic_write_text

    rows = list(rows)
    cols = list(columns)
    for row in rows:
        cols += [k for k in row if k not in cols]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols)
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


def checkpoint_run_id(checkpoint: str | os.PathLike) -> str | None:
    """The MLflow run id recorded in our checkpoint sidecar's `meta`, if any (other formats: None)."""
    from stereo.checkpoints import read_sidecar
    from stereo.errors import CheckpointError

    try:
        meta = read_sidecar(checkpoint).get("meta") or {}
    except (CheckpointError, OSError):
        return None
    for key in ("mlflow_run_id", "run_id"):
        if isinstance(meta.get(key), str) and meta[key]:
            return meta[key]
    return None


def find_training_run(tracker: Any, checkpoint: str | os.PathLike, sha256: str,
                      experiment: str = "depth_net") -> str | None:
    """Run id of the training run that wrote `checkpoint`: its sidecar's run id when that run exists in
    `tracker`, else the newest train run tagged `checkpoint_sha256 = sha256`; None when neither."""
    if tracker is None:
        return None
    run_id = checkpoint_run_id(checkpoint)
    if run_id and any(r.run_id == run_id for r in tracker.find_runs(experiment)):
        return run_id
    runs = tracker.find_runs(experiment, tags={"checkpoint_sha256": sha256, "action": TRAIN_ACTION})
    return runs[0].run_id if runs else None
