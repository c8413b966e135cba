"""Stereo disparity metrics: pure functions over (pred, gt, valid) plus an explicit accumulator.

Definitions (every rate is a *fraction* in 0..1, not a percentage; errors are in pixels of disparity):

    M      = valid ∧ isfinite(gt) ∧ 0 < gt < max_disparity           (the scored pixels of one image)
    err    = |pred − gt|, and +inf where pred is not finite            (a NaN prediction is never "good")
    epe    = Σ_M err / |M|
    bp{t}  = |{p ∈ M : err > t}| / |M|                                 (bad-pixel rate, t = 1, 2, 3 px)
    d1     = |{p ∈ M : err > 3 ∧ err > 0.05·gt}| / |M|                 (KITTI D1)
    rmse   = sqrt(Σ_M err² / |M|)                                      (one square root)

Aggregation over a data set is explicit and named (see :class:`StereoMetrics`):

* plain names (``epe``, ``bp1``, …, ``rmse``) are the **per-image mean**: compute each metric per image,
  then average over images. This is TAO's headline convention (and what AutoML optimises).
* ``*_pooled`` names (``epe_pooled``, …) are **pixel-pooled**: every scored pixel of every image counts
  once, so large images weigh more. ``rmse_pooled = sqrt(Σ err² / Σ |M|)``.

Images without a single scored pixel are counted (``images_without_valid``) and excluded from both
aggregates, so they never turn a mean into NaN. Unlike TAO's evaluator this is correct for any batch size,
takes one square root in RMSE, and computes d1 for real (TAO's d2/d3 were never updated; we drop them).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from stereo.errors import BadInputError

D1_ABS_THRESHOLD = 3.0
D1_REL_THRESHOLD = 0.05
POOLED_SUFFIX = "_pooled"


def _as_bhw(x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}; wrap arrays with torch.as_tensor")
    if x.dim() == 4:
        if x.shape[1] != 1:
            raise ValueError(f"{name} has shape {tuple(x.shape)}; expected [B,1,H,W] or [B,H,W] (one channel)")
        return x[:, 0]
    if x.dim() == 3:
        return x
    raise ValueError(f"{name} has shape {tuple(x.shape)}; expected [B,1,H,W] or [B,H,W] "
                     "(add the batch dimension with x[None] for a single image)")


def threshold_name(t: float) -> str:
    """Metric name of the bad-pixel rate at threshold `t` px: 1 → 'bp1', 0.5 → 'bp0.5'."""
    return f"bp{float(t):g}"


def valid_mask(gt: torch.Tensor, valid: torch.Tensor | None, max_disparity: float) -> torch.Tensor:
    """Boolean [B,H,W] mask of scored pixels: valid ∧ finite(gt) ∧ 0 < gt < max_disparity."""
    if not max_disparity > 0:
        raise ValueError(f"max_disparity must be > 0, got {max_disparity}; use dataset.max_disparity")
    gt = _as_bhw(gt, "gt")
    mask = torch.isfinite(gt) & (gt > 0) & (gt < max_disparity)
    if valid is not None:
        valid = _as_bhw(valid, "valid")
        if valid.shape != gt.shape:
            raise ValueError(f"valid has shape {tuple(valid.shape)} but gt has {tuple(gt.shape)}; they must match")
        mask &= valid > 0 if valid.dtype != torch.bool else valid
    return mask


def _abs_error(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    pred, gt = _as_bhw(pred, "pred"), _as_bhw(gt, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"pred has shape {tuple(pred.shape)} but gt has {tuple(gt.shape)}; "
                         "unpad/resize the prediction to the GT resolution first")
    pred = pred.detach().to(torch.float64)
    # gt outside the mask may be inf/NaN; zero it so masked sums stay finite.
    gt = torch.nan_to_num(gt.detach().to(torch.float64), nan=0.0, posinf=0.0, neginf=0.0)
    err = (pred - gt).abs()
    return torch.where(torch.isfinite(pred), err, torch.full_like(err, math.inf))


def _per_image(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` over `mask` for each image; NaN for an image with no scored pixel."""
    mask = _as_bhw(mask, "mask").bool()
    n = mask.sum(dim=(1, 2)).to(torch.float64)
    s = torch.where(mask, values, torch.zeros_like(values)).sum(dim=(1, 2))
    return torch.where(n > 0, s / n.clamp(min=1), torch.full_like(s, math.nan))


def end_point_error(pred, gt, mask) -> torch.Tensor:
    """Per-image EPE [B] over the boolean `mask` (see :func:`valid_mask`)."""
    return _per_image(_abs_error(pred, gt), mask)


def bad_pixel_rate(pred, gt, mask, threshold: float) -> torch.Tensor:
    """Per-image fraction (0..1) [B] of scored pixels with |err| > threshold."""
    return _per_image((_abs_error(pred, gt) > threshold).to(torch.float64), mask)


def d1_rate(pred, gt, mask, abs_threshold: float = D1_ABS_THRESHOLD,
            rel_threshold: float = D1_REL_THRESHOLD) -> torch.Tensor:
    """Per-image fraction (0..1) [B] with |err| > abs_threshold and |err| > rel_threshold·gt (KITTI D1)."""
    err = _abs_error(pred, gt)
    gt64 = torch.nan_to_num(_as_bhw(gt, "gt").detach().to(torch.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return _per_image(((err > abs_threshold) & (err > rel_threshold * gt64)).to(torch.float64), mask)


def rmse(pred, gt, mask) -> torch.Tensor:
    """Per-image root-mean-square error [B]: sqrt(mean err²), one square root."""
    return _per_image(_abs_error(pred, gt) ** 2, mask).sqrt()


def _pixel_sums(pred, gt, valid, max_disparity: float, thresholds: Sequence[float],
                d1_thresholds: tuple[float, float]) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Sufficient statistics per image: names, sums [B,K] (float64, CPU), valid-pixel counts [B]."""
    mask = valid_mask(gt, valid, max_disparity)
    err = _abs_error(pred, gt)
    gt64 = torch.nan_to_num(_as_bhw(gt, "gt").detach().to(torch.float64), nan=0.0, posinf=0.0, neginf=0.0)
    terms = {"epe": err}
    for t in thresholds:
        terms[threshold_name(t)] = (err > t).to(torch.float64)
    a, r = d1_thresholds
    terms["d1"] = ((err > a) & (err > r * gt64)).to(torch.float64)
    terms["mse"] = err ** 2
    sums = torch.stack([torch.where(mask, v, torch.zeros_like(v)).sum(dim=(1, 2)) for v in terms.values()], 1)
    return list(terms), sums.cpu(), mask.sum(dim=(1, 2)).cpu()


def _finish(names: list[str], sums: torch.Tensor, n: torch.Tensor) -> dict[str, float]:
    """Turn summed statistics over n pixels into metrics (mse → rmse with one square root)."""
    out = {}
    for name, s in zip(names, sums.tolist()):
        mean = s / n if n > 0 else math.nan
        if name == "mse":
            out["rmse"] = math.nan if math.isnan(mean) else math.sqrt(mean)
        else:
            out[name] = mean
    return out


def per_image_metrics(pred, gt, valid, max_disparity: float, thresholds: Sequence[float] = (1, 2, 3),
                      d1_thresholds: tuple[float, float] = (D1_ABS_THRESHOLD, D1_REL_THRESHOLD)
                      ) -> list[dict[str, float]]:
    """One dict per image: valid_pixels, epe, bp*, d1, rmse (NaN metrics where valid_pixels == 0)."""
    names, sums, counts = _pixel_sums(pred, gt, valid, max_disparity, thresholds, d1_thresholds)
    rows = []
    for i in range(sums.shape[0]):
        n = int(counts[i])
        rows.append({"valid_pixels": n, **_finish(names, sums[i], n)})
    return rows


class StereoMetrics:
    """Accumulates per-image statistics over batches; see the module docstring for the aggregates.

    ``update`` may be called with any batch size; results do not depend on how images are batched.
    """

    def __init__(self, max_disparity: float, thresholds: Sequence[float] = (1, 2, 3),
                 d1_thresholds: tuple[float, float] = (D1_ABS_THRESHOLD, D1_REL_THRESHOLD)):
        if not max_disparity > 0:
            raise ValueError(f"max_disparity must be > 0, got {max_disparity}; use dataset.max_disparity")
        thresholds = tuple(float(t) for t in thresholds)
        if any(not t > 0 for t in thresholds) or len(set(thresholds)) != len(thresholds):
            raise ValueError(f"thresholds must be distinct and > 0, got {thresholds}; e.g. (1, 2, 3)")
        self.max_disparity = float(max_disparity)
        self.thresholds = thresholds
        self.d1_thresholds = (float(d1_thresholds[0]), float(d1_thresholds[1]))
        self.reset()

    @property
    def metric_names(self) -> list[str]:
        """Per-image-mean names in output order; each also exists with the ``_pooled`` suffix."""
        return ["epe", *[threshold_name(t) for t in self.thresholds], "d1", "rmse"]

    def reset(self) -> None:
        self._names: list[str] = []
        self._sums: list[torch.Tensor] = []  # one [K] float64 row per image
        self._counts: list[int] = []
        self._rows: list[dict[str, Any]] = []

    def update(self, pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None,
               names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Add a batch; returns its per-image rows (as :meth:`per_sample` would list them)."""
        stat_names, sums, counts = _pixel_sums(pred, gt, valid, self.max_disparity, self.thresholds,
                                               self.d1_thresholds)
        batch = sums.shape[0]
        names = [str(n) for n in names] if names is not None else [str(len(self._rows) + i) for i in range(batch)]
        if len(names) != batch:
            raise ValueError(f"got {len(names)} names for a batch of {batch} images; pass one name per image")
        self._names = stat_names
        new_rows = []
        for i in range(batch):
            n = int(counts[i])
            self._sums.append(sums[i])
            self._counts.append(n)
            new_rows.append({"name": names[i], "valid_pixels": n, **_finish(stat_names, sums[i], n)})
        self._rows.extend(new_rows)
        return new_rows

    def counts(self) -> dict[str, int]:
        """images seen, images scored, images without any valid pixel, total scored pixels."""
        scored = sum(1 for n in self._counts if n > 0)
        return {"images": len(self._counts), "images_scored": scored,
                "images_without_valid": len(self._counts) - scored, "valid_pixels": sum(self._counts)}

    def compute(self) -> dict[str, float]:
        """Per-image means under plain names and pixel-pooled values under ``<name>_pooled``.

        With no scored image every value is NaN (a caller must treat that as a failed evaluation, not 0).
        """
        keys = self.metric_names
        scored = [i for i, n in enumerate(self._counts) if n > 0]
        if not scored:
            return {**{k: math.nan for k in keys}, **{k + POOLED_SUFFIX: math.nan for k in keys}}
        per_image = [self._rows[i] for i in scored]
        out = {k: sum(r[k] for r in per_image) / len(per_image) for k in keys}
        pooled = _finish(self._names, torch.stack([self._sums[i] for i in scored]).sum(0),
                         sum(self._counts[i] for i in scored))
        out.update({k + POOLED_SUFFIX: pooled[k] for k in keys})
        return out

    def per_sample(self) -> list[dict[str, Any]]:
        """Rows for a CSV: name, valid_pixels, then each metric (NaN for an image without valid pixels)."""
        return [dict(r) for r in self._rows]


def prefixed(metrics: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """{'epe': x} → {'val/epe': x} for prefix 'val/' (the key used in Lightning, status.json and MLflow)."""
    return {f"{prefix}{k}": v for k, v in metrics.items()}


def strip_namespace(key: str) -> str:
    """'val/epe' → 'epe'; 'epe' → 'epe' (TAO's pyt evaluate prefixes 'val/', its deploy evaluate does not)."""
    return key.rsplit("/", 1)[-1]


def find_metric(metrics: Mapping[str, Any], name: str) -> Any:
    """Value of `name` in `metrics`, matching 'val/epe' and 'epe' either way round.

    An exact key wins; otherwise keys are compared without namespace. Raises KeyError naming the keys
    present when nothing matches, and ValueError when several namespaces match ('val/epe' and 'test/epe').
    """
    if name in metrics:
        return metrics[name]
    bare = strip_namespace(name)
    hits = [k for k in metrics if strip_namespace(k) == bare]
    if not hits:
        raise KeyError(f"metric {name!r} not found; available: {sorted(metrics)}")
    if len(hits) > 1:
        raise ValueError(f"metric {name!r} is ambiguous: {sorted(hits)}; ask for one of them by its full key")
    return metrics[hits[0]]


#: the checkpointer's / a sweep's objective: a validation metric, logged under "val/"
MONITOR_MODES = ("min", "max")
MONITOR_NAMESPACE = "val/"


def monitor_key(monitor: str) -> str:
    """'epe' or 'val/epe' -> 'val/epe' (the key Lightning logs validation metrics under)."""
    name = str(monitor).strip()
    bare = name[len(MONITOR_NAMESPACE):] if name.startswith(MONITOR_NAMESPACE) else name
    known = [*StereoMetrics(1).metric_names, "loss"]
    known += [k + POOLED_SUFFIX for k in known if k != "loss"]
    if bare not in known:
        raise BadInputError(f"train monitor={monitor!r} is not a validation metric; use one of "
                            f"{known} (with or without the 'val/' prefix)")
    return MONITOR_NAMESPACE + bare


def check_monitor(monitor: str, mode: str) -> str:
    """The normalised monitor key; raises BadInputError for an unknown metric or mode."""
    if mode not in MONITOR_MODES:
        raise BadInputError(f"train monitor_mode={mode!r}; use 'min' (lower is better, e.g. epe) or 'max'.")
    return monitor_key(monitor)
