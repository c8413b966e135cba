"""Lightning callbacks: TAO-layout checkpoints, metric forwarding, the progress bar.

Side effects (files, status.json, the tracker) happen on global rank 0 only; every rank still calls
`trainer.save_checkpoint`, which is a collective in distributed runs.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, TQDMProgressBar

from stereo.training.resume import (
    BEST,
    LATEST,
    RESUME_SUFFIX,
    WEIGHTS_SUFFIX,
    checkpoint_stem,
    remove_stale_temps,
)

MetricSink = Callable[[Mapping[str, float], int], None]  # (metrics, global step)
KpiSink = Callable[[Mapping[str, float], str], None]  # (kpi, message)


def _fsync_replace(tmp: Path, target: Path) -> None:
    with open(tmp, "rb+") as fh:  # durable before the rename publishes it
        os.fsync(fh.fileno())
    os.replace(tmp, target)


def atomic_symlink(link: Path, target_name: str) -> None:
    """Point `link` at `target_name` (relative, same folder) by renaming a fresh symlink over it."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target_name, tmp)
    os.replace(tmp, link)


def write_weights(path: Path, state_dict: Mapping[str, torch.Tensor], *, config: dict | None,
                  meta: dict) -> list[Path]:
    """Model weights as `<stem>.safetensors` + `<stem>.json` sidecar (each written atomically, weights
    first, by the checkpoint module; the sidecar names its weights file, so no rename afterwards)."""
    from stereo.models.checkpoints.sidecar_format import checkpoint_paths, save_checkpoint

    save_checkpoint(path, dict(state_dict), config=config or {}, meta=meta)
    return list(checkpoint_paths(path))


class TaoCheckpoint(Callback):
    """Writes `model_epoch_{EEE}_step_{SSSSS}` (weights + `.ckpt` resume state), moves `dn_model_latest`,
    and keeps `dn_model_best` = the weights with the lowest `monitor` seen at a validation.

    When no validation ever runs, the best checkpoint is the latest one.
    """

    def __init__(self, train_dir: str | os.PathLike, *, interval: int = 1, unit: str = "epoch",
                 monitor: str = "val/epe", model_config: dict | None = None, run_id: str | None = None):
        if unit not in ("epoch", "step"):
            raise ValueError(f"train.checkpoint_interval_unit={unit!r}; use 'epoch' or 'step'.")
        if interval < 1:
            raise ValueError(f"train.checkpoint_interval={interval}; must be >= 1.")
        self.train_dir = Path(train_dir)
        self.interval, self.unit, self.monitor = interval, unit, monitor
        self.model_config = model_config
        self.run_id = run_id  # the MLflow training run: deploy drift reports nest under it
        self.best_value = math.inf
        self.best_metrics: dict[str, float] = {}
        self.best_path: str | None = None
        self.last_stem: str | None = None
        self._last_saved_step = -1

    # --- triggers -------------------------------------------------------------------------------
    def setup(self, trainer, pl_module, stage):
        if trainer.is_global_zero:
            self.train_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(self.train_dir)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if self.unit == "step" and step > 0 and step % self.interval == 0:
            self.save(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        if self.unit == "epoch" and (trainer.current_epoch + 1) % self.interval == 0:
            self.save(trainer, pl_module)

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        value = float(value) if value is not None else math.nan
        if math.isfinite(value) and value < self.best_value:
            self.best_value = value
            self.best_metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
                                 if k.startswith("val/")}
            if trainer.is_global_zero:
                path = self.train_dir / (BEST + WEIGHTS_SUFFIX)
                write_weights(path, _model_state(pl_module), config=self.model_config,
                              meta=self._meta(trainer, self.best_metrics))
                self.best_path = str(path)

    def on_train_end(self, trainer, pl_module):
        self.save(trainer, pl_module)  # the final state, so a rerun has nothing left to redo
        if self.best_path is None and self.last_stem is not None:
            self.best_path = str(self.train_dir / (self.last_stem + WEIGHTS_SUFFIX))

    # --- writing --------------------------------------------------------------------------------
    def save(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Path | None:
        step = trainer.global_step
        if step == self._last_saved_step:
            return None
        self._last_saved_step = step  # before dumping, so the resume state knows it was saved
        stem = checkpoint_stem(trainer.current_epoch, step)
        self.last_stem = stem
        resume = self.train_dir / (stem + RESUME_SUFFIX)
        tmp = self.train_dir / f".{resume.name}.tmp"  # the same name on every rank; only rank 0 writes
        trainer.save_checkpoint(tmp, weights_only=False)  # collective (ends with a barrier)
        if not trainer.is_global_zero:
            return resume
        _fsync_replace(tmp, resume)
        weights = write_weights(self.train_dir / (stem + WEIGHTS_SUFFIX), _model_state(pl_module),
                                config=self.model_config,
                                meta=self._meta(trainer, {k: float(v) for k, v in trainer.callback_metrics.items()
                                                          if k.startswith("val/")}))
        for produced in [resume, *weights]:
            suffix = produced.name[len(stem):]
            atomic_symlink(self.train_dir / (LATEST + suffix), produced.name)
        return resume

    def _meta(self, trainer, metrics: Mapping[str, float]) -> dict:
        # the sidecar is strict JSON: a non-finite metric is stored as null
        meta = {"epoch": int(trainer.current_epoch), "step": int(trainer.global_step),
                "metrics": {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}}
        if self.run_id:
            meta["mlflow_run_id"] = self.run_id
        return meta

    # --- resume ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"best_value": self.best_value, "best_metrics": dict(self.best_metrics),
                "best_path": self.best_path, "last_stem": self.last_stem,
                "last_saved_step": self._last_saved_step}

    def load_state_dict(self, state: dict) -> None:
        self.best_value = float(state.get("best_value", math.inf))
        self.best_metrics = dict(state.get("best_metrics", {}))
        self.best_path = state.get("best_path")
        self.last_stem = state.get("last_stem")
        self._last_saved_step = int(state.get("last_saved_step", -1))


def _model_state(pl_module) -> dict[str, torch.Tensor]:
    """The network's own state dict (no `model.` prefix), detached and on the CPU."""
    return {k: v.detach().cpu().contiguous() for k, v in pl_module.model.state_dict().items()}


class MetricsForwarder(Callback):
    """Sends training metrics to the tracker and status.json; keeps the per-epoch history.

    Per step (every `every_n_steps`): `train/loss`, `lr`. Per validation: every `val/*` key exactly as
    Lightning logged it. Per epoch: a history row {epoch, step, train_loss (epoch mean), val/*}.
    """

    def __init__(self, metric_sink: MetricSink | None = None, kpi_sink: KpiSink | None = None,
                 every_n_steps: int = 50):
        self.metric_sink, self.kpi_sink = metric_sink, kpi_sink
        self.every_n_steps = max(1, int(every_n_steps))
        self.history: list[dict[str, float]] = []
        self._loss_sum, self._loss_n = 0.0, 0
        self._last_val: dict[str, float] = {}

    def on_train_epoch_start(self, trainer, pl_module):
        self._loss_sum, self._loss_n = 0.0, 0
        self._last_val = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, Mapping) else outputs
        loss = float(loss.detach()) if torch.is_tensor(loss) else float(loss)
        self._loss_sum += loss
        self._loss_n += 1
        step = trainer.global_step
        if trainer.is_global_zero and self.metric_sink and step % self.every_n_steps == 0:
            self.metric_sink({"train/loss": loss, "lr": current_lr(trainer)}, step)

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        self._last_val = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        if trainer.is_global_zero and self._last_val:
            if self.metric_sink:
                self.metric_sink(self._last_val, trainer.global_step)
            if self.kpi_sink:
                self.kpi_sink(dict(self._last_val), f"Validation at epoch {trainer.current_epoch}, "
                              f"step {trainer.global_step}.")

    def on_train_epoch_end(self, trainer, pl_module):
        train_loss = self._loss_sum / self._loss_n if self._loss_n else math.nan
        row = {"epoch": int(trainer.current_epoch), "step": int(trainer.global_step),
               "train_loss": train_loss, **self._last_val}
        self.history.append(row)
        if trainer.is_global_zero:
            if self.metric_sink:
                self.metric_sink({"train_loss": train_loss, "epoch": float(trainer.current_epoch)},
                                 trainer.global_step)
            if self.kpi_sink:
                self.kpi_sink({"train_loss": train_loss, **self._last_val},
                              f"Epoch {trainer.current_epoch} finished at step {trainer.global_step}.")

    def state_dict(self) -> dict:
        return {"history": [dict(r) for r in self.history]}

    def load_state_dict(self, state: dict) -> None:
        self.history = [dict(r) for r in state.get("history", [])]


def current_lr(trainer) -> float:
    if not trainer.optimizers:
        return math.nan
    return float(trainer.optimizers[0].param_groups[0]["lr"])


def format_eta(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class StereoProgressBar(TQDMProgressBar):
    """TQDM bar showing loss, lr, it/s and the ETA of the whole run (tqdm's own ETA is per epoch)."""

    def __init__(self, refresh_rate: int = 1):
        super().__init__(refresh_rate=refresh_rate)
        self._t0: float | None = None
        self._step0 = 0

    def on_train_start(self, trainer, pl_module):
        super().on_train_start(trainer, pl_module)
        self._t0, self._step0 = time.perf_counter(), trainer.global_step

    def get_metrics(self, trainer, pl_module) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        if "train/loss" in items:
            items["loss"] = items.pop("train/loss")
        items["lr"] = f"{current_lr(trainer):.2e}"
        rate = self.steps_per_second(trainer)
        items["it/s"] = f"{rate:.2f}"
        total = trainer.estimated_stepping_batches if trainer.state.fn == "fit" else math.inf
        remaining = (total - trainer.global_step) / rate if rate > 0 else math.inf
        items["eta"] = format_eta(remaining)
        return items

    def steps_per_second(self, trainer) -> float:
        if self._t0 is None:
            return 0.0
        elapsed = time.perf_counter() - self._t0
        done = trainer.global_step - self._step0
        return done / elapsed if elapsed > 0 and done > 0 else 0.0


class SamplerStateCallback(Callback):
    """Stores the train sampler's position in the resume checkpoint (see resume.ResumableSampler)."""

    def __init__(self, sampler):
        self.sampler = sampler
        self._trainer = None

    def setup(self, trainer, pl_module, stage):
        self._trainer = trainer

    def state_dict(self) -> dict:
        trainer = self._trainer
        epochs, items = self.sampler.epochs_drawn, 0
        # `processed` counts the batch whose on_train_batch_end is running (`completed` does not yet)
        done = int(trainer.fit_loop.epoch_loop.batch_progress.current.processed) if trainer else 0
        if trainer is not None and 0 < done < trainer.num_training_batches:
            # the resumed run re-creates this epoch's iterator: replay one draw less, skip what was done
            epochs -= 1
            if trainer.world_size == 1:  # with DDP the wrapper re-splits the order; epoch-exact only
                items = done * int(trainer.train_dataloader.batch_size or 1)
        return {"epochs_drawn": max(0, epochs), "items_done": items}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.resume_from(state.get("epochs_drawn", 0), state.get("items_done", 0))


class ValidationVisuals(Callback):
    """After each validation, writes `left | prediction | error` of the first validation sample to
    `<dir>/val_epoch_{EEE}_{name}.png` (rank 0); visuals stay out of the LightningModule."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if batch_idx != 0 or trainer.sanity_checking or not trainer.is_global_zero:
            return
        if not isinstance(outputs, Mapping) or "disp" not in outputs:
            return
        from stereo.lightning_module import batch_names
        from stereo.visualize import side_by_side, write_png

        name = batch_names(batch)[0].replace("/", "_")
        image = side_by_side(batch["left"][0].float().cpu().numpy(), outputs["disp"][0].float().cpu().numpy(),
                             batch["disp"][0].cpu().numpy() if "disp" in batch else None,
                             batch["valid"][0].cpu().numpy() if "valid" in batch else None)
        write_png(self.directory / f"val_epoch_{trainer.current_epoch:03d}_{name}.png", image)
