"""Lightning callbacks: metric forwarding, the progress bar, sampler state, visuals (the TAO-layout
checkpoint callback lives in stereo/training/tao_checkpoint.py and is re-exported here).

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

import torch
from pytorch_lightning.callbacks import Callback, TQDMProgressBar

from stereo.training.tao_checkpoint import TaoCheckpoint

__all__ = ["MetricsForwarder", "SamplerStateCallback", "StereoProgressBar", "TaoCheckpoint", "ValidationVisuals",
           "current_lr", "format_eta"]

MetricSink = Callable[[Mapping[str, float], int], None]  # (metrics, global step)
KpiSink = Callable[[Mapping[str, float], str], None]  # (kpi, message)


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
        from stereo.training.lightning_module import batch_names
        from stereo.visualize import side_by_side, write_png

        name = batch_names(batch)[0].replace("/", "_")
        image = side_by_side(batch["left"][0].float().cpu().numpy(), outputs["disp"][0].float().cpu().numpy(),
                             batch["disp"][0].cpu().numpy() if "disp" in batch else None,
                             batch["valid"][0].cpu().numpy() if "valid" in batch else None)
        write_png(self.directory / f"val_epoch_{trainer.current_epoch:03d}_{name}.png", image)
