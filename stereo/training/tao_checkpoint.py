"""`TaoCheckpoint`: TAO's checkpoint layout in `<results_dir>/train/`, crash-consistent at every instant.

    model_epoch_{EEE}_step_{SSSSS}.safetensors + .json   weights pair (our format, SHA-256 in the sidecar)
    model_epoch_{EEE}_step_{SSSSS}.pth                   the same weights, TAO-style (TAO names, `model.`
                                                         prefix, torch.load(weights_only=True); tensors
                                                         hash inside, see stereo.checkpoints.tao_pth)
    model_epoch_{EEE}_step_{SSSSS}.ckpt                  Lightning resume state (optimizer, loops, RNG, ...)
    dn_model_latest.{safetensors,json,pth,ckpt}  -> the newest of the above (relative symlinks)
    dn_model_best_epoch_{EEE}_step_{SSSSS}.{safetensors,json,pth}   the best weights by `monitor` / `mode`
    dn_model_best.{safetensors,json,pth}     -> those (or the last model_epoch files when no
                                                validation ever ran)

Invariant: every published name resolves to a complete, verifiable pair, whenever the process dies.

* A pair is written sidecar first, weights last, each atomically (stereo.checkpoints): a weights
  file never exists without the sidecar that hashes it; an orphan sidecar is removed at the next setup.
* `save()` writes the weights pair, then the `.pth`, then the resume `.ckpt` (so a `.ckpt` always has its
  weights), then moves the `dn_model_latest` links, each by one atomic rename.
* The best pair gets a name of its own; only when it is complete do the `dn_model_best` links flip to it.
  Readers follow the `.safetensors` link and take the sidecar beside its target, so the two links
  moving one after the other can never mix two checkpoints. The pair it replaced is deleted after the
  next resume `.ckpt` is written (until then the newest `.ckpt` still names it).
* At train start (after a resume restored this callback's state) the best links are pointed at the best
  the restored state knows, and best pairs of a killed run's future are removed.
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from stereo.errors import BadInputError
from stereo.metrics import MONITOR_NAMESPACE, check_monitor
from stereo.training.resume import (
    BEST,
    LATEST,
    RESUME_SUFFIX,
    WEIGHTS_SUFFIX,
    checkpoint_stem,
    remove_stale_temps,
)

SIDECAR_SUFFIX = ".json"
PTH_SUFFIX = ".pth"  # TAO's checkpoint suffix: what the TAO skill chains into the next action
def atomic_symlink(link: Path, target_name: str) -> None:
    """Point `link` at `target_name` (relative, same folder) by renaming a fresh symlink over it."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target_name, tmp)
    os.replace(tmp, link)


def write_weights(path: Path, state_dict: Mapping[str, torch.Tensor], *, config: dict | None,
                  meta: dict, legacy: Mapping[str, torch.Tensor] | None = None) -> list[Path]:
    """`<stem>.safetensors` + `<stem>.json` (sidecar first, weights last, each atomic), then `<stem>.pth`
    (with the `legacy` tensors TAO's loader expects, see stereo.checkpoints.tao_pth)."""
    from stereo.checkpoints.sidecar_format import checkpoint_paths, save_checkpoint
    from stereo.checkpoints.tao_pth import save_pth

    save_checkpoint(path, dict(state_dict), config=config or {}, meta=meta)
    pth = save_pth(path.with_suffix(PTH_SUFFIX), state_dict, config=config or {}, meta=meta, legacy=legacy)
    return [*checkpoint_paths(path), pth]


def ensure_pth(weights: Path) -> Path:
    """`<stem>.pth` beside the safetensors `weights`, written from them when missing (a pair written by an
    older version, or a crash between the pair and its .pth)."""
    from stereo.checkpoints import read_checkpoint
    from stereo.checkpoints.tao_pth import save_pth

    pth = weights.with_suffix(PTH_SUFFIX)
    if not pth.is_file():
        ckpt = read_checkpoint(weights)
        save_pth(pth, ckpt.state_dict, config=ckpt.meta.get("config") or {}, meta=ckpt.meta.get("meta") or {})
    return pth


def is_complete_pair(weights: Path) -> bool:
    """True when `weights` and the sidecar beside it both exist and the sidecar names it (no hashing)."""
    from stereo.checkpoints import read_sidecar
    from stereo.errors import CheckpointError

    sidecar = weights.with_suffix(SIDECAR_SUFFIX)
    if not weights.is_file() or weights.is_symlink() or not sidecar.is_file():
        return False
    try:
        return read_sidecar(sidecar)["weights"] == weights.name
    except (CheckpointError, OSError):
        return False


def remove_incomplete_pairs(train_dir: Path) -> list[Path]:
    """Delete halves of pairs a killed writer left: a sidecar without weights, weights without a sidecar
    (written by older versions, weights first). Links are left alone."""
    removed = []
    for prefix in ("model_epoch_", BEST + "_"):
        for path in sorted(train_dir.glob(f"{prefix}*")):
            if path.is_symlink() or path.suffix not in (WEIGHTS_SUFFIX, SIDECAR_SUFFIX, PTH_SUFFIX):
                continue
            weights = path.with_suffix(WEIGHTS_SUFFIX)
            if not is_complete_pair(weights):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def _remove_pair(weights: Path) -> None:
    for path in (weights, weights.with_suffix(SIDECAR_SUFFIX), weights.with_suffix(PTH_SUFFIX)):
        path.unlink(missing_ok=True)


class TaoCheckpoint(Callback):
    """Writes `model_epoch_{EEE}_step_{SSSSS}` (weights pair + resume `.ckpt`), moves `dn_model_latest`,
    and keeps `dn_model_best` = the weights with the lowest (`mode='min'`) or highest (`'max'`) `monitor`
    seen at a validation (`'epe'` and `'val/epe'` both name `val/epe`).

    When no validation ever runs, the best checkpoint is the latest one. See the module docstring for
    the crash-consistency rules.
    """

    def __init__(self, train_dir: str | os.PathLike, *, interval: int = 1, unit: str = "epoch",
                 monitor: str = "val/epe", mode: str = "min", model_config: dict | None = None,
                 run_id: str | None = None):
        if unit not in ("epoch", "step"):
            raise BadInputError(f"train.checkpoint_interval_unit={unit!r}; use 'epoch' or 'step'.")
        if interval < 1:
            raise BadInputError(f"train.checkpoint_interval={interval}; must be >= 1.")
        self.train_dir = Path(train_dir)
        self.interval, self.unit = interval, unit
        self.monitor, self.mode = check_monitor(monitor, mode), mode
        self.model_config = model_config
        self.run_id = run_id  # the MLflow training run: deploy drift reports nest under it
        self.best_value = self._worst()
        self.best_metrics: dict[str, float] = {}
        self.best_name: str | None = None  # file name (in train_dir) of the best weights
        self.last_stem: str | None = None
        self._last_saved_step = -1
        self._superseded: list[str] = []  # best pairs replaced since the last resume .ckpt
        self._save_at_epoch_end = False  # a step save deferred past the epoch-end validation

    @property
    def best_path(self) -> str | None:
        """The best weights file itself (not the `dn_model_best` link)."""
        return str(self.train_dir / self.best_name) if self.best_name else None

    @property
    def best_checkpoint(self) -> str | None:
        """`<train_dir>/dn_model_best.safetensors` when it points at the best weights, else the file."""
        link = self.train_dir / (BEST + WEIGHTS_SUFFIX)
        if self.best_name and link.is_symlink() and os.readlink(link) == self.best_name:
            return str(link)
        return self.best_path

    def _worst(self) -> float:
        return math.inf if self.mode == "min" else -math.inf

    def _improves(self, value: float) -> bool:
        return value < self.best_value if self.mode == "min" else value > self.best_value

    # --- triggers -------------------------------------------------------------------------------
    def setup(self, trainer, pl_module, stage):
        if trainer.is_global_zero:
            self.train_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(self.train_dir)
            remove_incomplete_pairs(self.train_dir)

    def on_train_start(self, trainer, pl_module):
        if trainer.is_global_zero:  # after Lightning restored this callback's state on a resume
            self._reconcile_best()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if self.unit == "step" and step > 0 and step % self.interval == 0:
            if trainer.is_last_batch:  # the epoch-end validation runs next: a state saved now would resume
                self._save_at_epoch_end = True  # past it and never validate this epoch; save after it
                return
            self.save(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        due = self.unit == "epoch" and (trainer.current_epoch + 1) % self.interval == 0
        if due or self._save_at_epoch_end:
            self._save_at_epoch_end = False
            self.save(trainer, pl_module)

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        if self.monitor not in metrics:
            raise BadInputError(f"the monitored metric {self.monitor!r} was not logged by the validation; "
                                f"logged: {sorted(k for k in metrics if k.startswith(MONITOR_NAMESPACE))}")
        value = float(metrics[self.monitor])
        if math.isfinite(value) and self._improves(value):
            self.best_value = value
            self.best_metrics = {k: float(v) for k, v in metrics.items() if k.startswith(MONITOR_NAMESPACE)}
            if trainer.is_global_zero:
                self._publish_best(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        self.save(trainer, pl_module)  # the final state, so a rerun has nothing left to redo
        if self.best_name is None and self.last_stem is not None:
            self.best_name = self.last_stem + WEIGHTS_SUFFIX
            if trainer.is_global_zero:
                self._link_best(self.last_stem)

    # --- writing --------------------------------------------------------------------------------
    def save(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Path | None:
        """weights pair -> resume .ckpt -> `dn_model_latest` links (each step atomic)."""
        step = trainer.global_step
        if step == self._last_saved_step:
            return None
        self._last_saved_step = step  # before dumping, so the resume state knows it was saved
        stem = checkpoint_stem(trainer.current_epoch, step)
        self.last_stem = stem
        resume = self.train_dir / (stem + RESUME_SUFFIX)
        if trainer.is_global_zero:
            write_weights(self.train_dir / (stem + WEIGHTS_SUFFIX), _model_state(pl_module),
                          config=self.model_config, meta=self._meta(trainer, _val_metrics(trainer)),
                          legacy=_legacy(pl_module))
        tmp = self.train_dir / f".{resume.name}.tmp"  # the same name on every rank; only rank 0 writes
        try:  # a failed write (ENOSPC) must not leave a partial temp file on the full disk
            trainer.save_checkpoint(tmp, weights_only=False)  # collective (ends with a barrier)
            if not trainer.is_global_zero:
                return resume
            _fsync_replace(tmp, resume)
        except BaseException:
            if trainer.is_global_zero:
                tmp.unlink(missing_ok=True)
            raise
        for suffix in (WEIGHTS_SUFFIX, SIDECAR_SUFFIX, RESUME_SUFFIX):
            atomic_symlink(self.train_dir / (LATEST + suffix), stem + suffix)
        for name in self._superseded:  # the newest .ckpt no longer names them
            _remove_pair(self.train_dir / name)
        self._superseded = []
        atomic_symlink(self.train_dir / (LATEST + PTH_SUFFIX), stem + PTH_SUFFIX)  # TAO's chaining name
        return resume

    def _publish_best(self, trainer, pl_module) -> None:
        stem = self._unique_best_stem(checkpoint_stem(trainer.current_epoch, trainer.global_step))
        write_weights(self.train_dir / (stem + WEIGHTS_SUFFIX), _model_state(pl_module), config=self.model_config,
                      meta={**self._meta(trainer, self.best_metrics), "monitor": self.monitor, "mode": self.mode},
                      legacy=_legacy(pl_module))
        self._link_best(stem)
        if self.best_name and self.best_name.startswith(BEST + "_"):
            self._superseded.append(self.best_name)
        self.best_name = stem + WEIGHTS_SUFFIX

    def _unique_best_stem(self, stem: str) -> str:
        """`dn_model_best_<stem>`, with a counter when that name exists (a resumed run re-validating the
        step a killed run already published: the linked pair is never overwritten in place)."""
        base = f"{BEST}_{stem.removeprefix('model_')}"
        name, n = base, 0
        while any((self.train_dir / (name + s)).exists() or (self.train_dir / (name + s)).is_symlink()
                  for s in (WEIGHTS_SUFFIX, SIDECAR_SUFFIX)):
            n += 1
            name = f"{base}_{n}"
        return name

    def _link_best(self, stem: str) -> None:
        # the .safetensors link decides what loads (readers take the sidecar beside its target); flip it last
        ensure_pth(self.train_dir / (stem + WEIGHTS_SUFFIX))
        atomic_symlink(self.train_dir / (BEST + PTH_SUFFIX), stem + PTH_SUFFIX)
        atomic_symlink(self.train_dir / (BEST + SIDECAR_SUFFIX), stem + SIDECAR_SUFFIX)
        atomic_symlink(self.train_dir / (BEST + WEIGHTS_SUFFIX), stem + WEIGHTS_SUFFIX)

    def _reconcile_best(self) -> None:
        """Make the best links and pairs agree with the (restored) state; see the module docstring."""
        best = self.train_dir / self.best_name if self.best_name else None
        if best is not None and not is_complete_pair(best):
            warnings.warn(f"{best} named by the resume state is gone (an older resume checkpoint?); the best "
                          "checkpoint starts afresh from the next validation", RuntimeWarning, stacklevel=2)
            self.best_value, self.best_metrics, self.best_name, best = self._worst(), {}, None, None
        for weights in self.train_dir.glob(f"{BEST}_*{WEIGHTS_SUFFIX}"):
            if best is None or weights.name != best.name:
                _remove_pair(weights)
        if best is not None:
            self._link_best(best.name[: -len(WEIGHTS_SUFFIX)])
        else:
            for suffix in (WEIGHTS_SUFFIX, SIDECAR_SUFFIX, PTH_SUFFIX):
                (self.train_dir / (BEST + suffix)).unlink(missing_ok=True)
        self._superseded = []

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
                "best_name": self.best_name, "last_stem": self.last_stem,
                "last_saved_step": self._last_saved_step, "monitor": self.monitor, "mode": self.mode}

    def load_state_dict(self, state: dict) -> None:
        self.best_metrics = dict(state.get("best_metrics", {}))
        name = state.get("best_name") or (Path(state["best_path"]).name if state.get("best_path") else None)
        self.best_name = name
        self.best_value = float(state.get("best_value", self._worst()))
        if state.get("monitor", "val/epe") != self.monitor or state.get("mode", "min") != self.mode:
            # the stored best was chosen by another metric: it cannot be compared with the new one
            self.best_value, self.best_metrics, self.best_name = self._worst(), {}, None
        self.last_stem = state.get("last_stem")
        self._last_saved_step = int(state.get("last_saved_step", -1))


def _fsync_replace(tmp: Path, target: Path) -> None:
    with open(tmp, "rb+") as fh:  # durable before the rename publishes it
        os.fsync(fh.fileno())
    os.replace(tmp, target)


def _val_metrics(trainer) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(MONITOR_NAMESPACE)}


def _model_state(pl_module) -> dict[str, torch.Tensor]:
    """The network's own state dict (no `model.` prefix), detached and on the CPU."""
    return {k: v.detach().cpu().contiguous() for k, v in pl_module.model.state_dict().items()}


def _legacy(pl_module) -> dict[str, torch.Tensor]:
    from stereo.models.ffs.dead_keys import legacy_tensors

    return legacy_tensors(pl_module.model)
