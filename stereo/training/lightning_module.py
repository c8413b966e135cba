"""The thin LightningModule: one `_predict(batch)` serves every step; the rest is bookkeeping.

The network pads/unpads itself (see stereo.models.base), so `_predict` is the forward call in the mode
Lightning has put the module in: training -> (init_disp, [disp_k]), eval -> disp at input size, with the
samples of each own size run together (stereo.training.inference_loop.predict_by_size) so validation
metrics do not depend on the batch size when image sizes are mixed.
Metric keys (`val/epe`, ..., `val/loss`) are logged here once and forwarded unchanged to status.json
and the tracker by stereo.training.callbacks.MetricsForwarder.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch

from stereo.losses import sequence_loss, validation_loss
from stereo.metrics import POOLED_SUFFIX, StereoMetrics, prefixed
from stereo.training.inference_loop import predict_by_size
from stereo.training.optim import build_optimizer
from stereo.training.resume import collect_rng_states, restore_rng_states
from stereo.training.schedulers import build_scheduler
from stereo.errors import NonFiniteLossError


class StereoLitModule(pl.LightningModule):
    def __init__(self, model: torch.nn.Module, optim_cfg: Any, max_disparity: float, loss_gamma: float = 0.9):
        super().__init__()
        self.model = model
        self.optim_cfg = optim_cfg
        self.max_disparity = float(max_disparity)
        self.loss_gamma = float(loss_gamma)
        self.val_metrics = StereoMetrics(self.max_disparity)

    def _predict(self, batch: Mapping[str, Any]):
        if self.training:  # training crops share one size
            return self.model(batch["left"], batch["right"], test_mode=False)
        # validation: images of each size run together, never padded to the batch's largest image
        return predict_by_size(self.model, batch["left"], batch["right"], batch.get("meta"), test_mode=True)

    def training_step(self, batch, batch_idx):
        init_disp, preds = self._predict(batch)
        loss, _ = sequence_loss(init_disp, preds, batch["disp"], batch["valid"], self.max_disparity,
                                self.loss_gamma)
        self._check_finite(loss, batch, batch_idx)
        self.log("train/loss", loss.detach(), on_step=True, on_epoch=False, prog_bar=True,
                 batch_size=batch["left"].shape[0])
        return loss

    def _check_finite(self, loss: torch.Tensor, batch, batch_idx: int) -> None:
        bad = not bool(torch.isfinite(loss.detach()))
        if self.trainer.world_size > 1:  # every rank must stop together, or the others hang in all-reduce
            bad = self.trainer.strategy.reduce_boolean_decision(bad, all=False)
        if bad:
            names = batch_names(batch)
            raise NonFiniteLossError(
                f"training loss is {float(loss.detach())} at step {self.global_step} (epoch {self.current_epoch}, "
                f"batch {batch_idx}, samples {names}); lower train.optim.lr, keep train.clip_grad_norm > 0, "
                "or check these samples' disparity files for inf/NaN values.")

    def validation_step(self, batch, batch_idx):
        disp = self._predict(batch)
        self.val_metrics.update(disp, batch["disp"], batch["valid"], names=batch_names(batch))
        loss = validation_loss(disp, batch["disp"], batch["valid"], self.max_disparity)
        self.log("val/loss", loss, on_step=False, on_epoch=True, sync_dist=True,
                 batch_size=batch["left"].shape[0])
        return {"disp": disp.detach()}  # for the visual callback

    def on_validation_epoch_start(self):
        self.val_metrics.reset()

    def on_validation_epoch_end(self):
        rows = self.val_metrics.per_sample()
        if self.trainer.world_size > 1:
            rows = _gather_rows(rows)
            metrics = metrics_from_rows(rows, self.val_metrics.metric_names)
        else:
            metrics = self.val_metrics.compute()
        self.log_dict(prefixed(metrics, "val/"), sync_dist=False)  # already global on every rank
        self.val_metrics.reset()

    def configure_optimizers(self):
        optimizer = build_optimizer(self.model.parameters(), self.optim_cfg)
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = build_scheduler(optimizer, self.optim_cfg, total)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}

    # Lightning does not checkpoint RNG; augmentation and shuffling need it for an exact resume.
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["rng_states"] = _plain_rng(collect_rng_states())

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        states = checkpoint.get("rng_states")
        if states:
            restore_rng_states(_numpy_rng(states))


def batch_names(batch) -> list[str]:
    meta = batch.get("meta") if isinstance(batch, Mapping) else None
    if isinstance(meta, Mapping) and "name" in meta:
        names = meta["name"]
        return [str(n) for n in (names if isinstance(names, (list, tuple)) else [names])]
    if isinstance(meta, (list, tuple)) and meta and isinstance(meta[0], Mapping):
        return [str(m.get("name", "?")) for m in meta]
    return [f"#{i}" for i in range(batch["left"].shape[0])]


def _gather_rows(rows: list[dict]) -> list[dict]:
    """Per-image rows of every rank; duplicates (DistributedSampler pads with repeats) dropped by name."""
    gathered: list = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, rows)
    unique: dict[str, dict] = {}
    for part in gathered:
        for row in part:
            unique.setdefault(row["name"], row)
    return list(unique.values())


def metrics_from_rows(rows: Sequence[Mapping[str, float]], names: Sequence[str]) -> dict[str, float]:
    """StereoMetrics.compute() rebuilt from per-image rows (used after gathering rows across ranks).

    Per-image mean: average of the rows. Pixel-pooled: rates and epe weighted by valid_pixels, and
    rmse_pooled = sqrt(Σ n·rmse² / Σ n), which is exactly the pooled definition in stereo.metrics.
    """
    scored = [r for r in rows if r["valid_pixels"] > 0]
    if not scored:
        return {**{k: math.nan for k in names}, **{k + POOLED_SUFFIX: math.nan for k in names}}
    total = sum(r["valid_pixels"] for r in scored)
    out = {k: sum(r[k] for r in scored) / len(scored) for k in names}
    for k in names:
        if k == "rmse":
            out[k + POOLED_SUFFIX] = math.sqrt(sum(r["valid_pixels"] * r[k] ** 2 for r in scored) / total)
        else:
            out[k + POOLED_SUFFIX] = sum(r["valid_pixels"] * r[k] for r in scored) / total
    return out


def _plain_rng(states: dict) -> dict:
    """RNG states as tensors/primitives so the resume file loads with torch.load(weights_only=True)."""
    kind, keys, pos, has_gauss, cached = states["numpy"]
    out = dict(states)
    out["numpy"] = {"kind": kind, "keys": torch.as_tensor(keys.astype("int64")), "pos": int(pos),
                    "has_gauss": int(has_gauss), "cached": float(cached)}
    return out


def _numpy_rng(states: dict) -> dict:
    import numpy as np

    n = states["numpy"]
    out = dict(states)
    out["numpy"] = (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    return out
