"""`train.*` -> a Lightning Trainer, and one fit run in TAO's results layout.

Device mapping (`trainer_settings`): with CUDA, `num_gpus` GPUs (`gpu_ids` when they name exactly
`num_gpus` devices) per node; without CUDA, `num_gpus` CPU processes (so `num_gpus: 2` on a CPU machine
runs DDP over gloo, which is how multi-process training is tested here). More than one process or node
uses `distributed_strategy` (ddp; fsdp on GPUs only).
Precision: fp32 -> 32-true, bf16 -> bf16-mixed, fp16 -> 16-mixed (GPU only; on a CPU it raises, because
CPU autocast has no fp16 and silently training in another precision would falsify a sweep).
A setting that cannot work raises BadInputError (exit code 2), naming the key.
Gradient clipping: by global L2 norm (`clip_grad_norm`; 0 = off), not by value as TAO does.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
import torch

from stereo.errors import BadInputError

PRECISION = {"fp32": "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed"}


def trainer_settings(train_cfg, cuda_available: bool | None = None) -> dict[str, Any]:
    """Trainer keyword arguments for `train.*` (pure: no Trainer is built)."""
    cuda = torch.cuda.is_available() if cuda_available is None else cuda_available
    precision = str(train_cfg.precision).lower()
    if precision not in PRECISION:
        raise BadInputError(f"train.precision={train_cfg.precision!r}; choose one of {list(PRECISION)}.")
    if precision == "fp16" and not cuda:
        raise BadInputError("train.precision='fp16' needs a CUDA GPU (CPU autocast has no fp16); use "
                         "train.precision=bf16 or fp32 on this machine.")
    num = int(train_cfg.num_gpus)
    if num < 1:
        raise BadInputError(f"train.num_gpus={num}; must be >= 1.")
    gpu_ids = list(getattr(train_cfg, "gpu_ids", []) or [])
    devices: Any = gpu_ids if cuda and len(gpu_ids) == num else num
    nodes = int(train_cfg.num_nodes)
    strategy: Any = "auto"
    if num > 1 or nodes > 1:
        strategy = _strategy(str(train_cfg.distributed_strategy), cuda,
                             bool(getattr(train_cfg, "activation_checkpoint", False)))
    clip = float(train_cfg.clip_grad_norm or 0.0)
    if clip < 0:
        raise BadInputError(f"train.clip_grad_norm={clip}; must be >= 0 (0 disables clipping).")
    settings = dict(
        accelerator="gpu" if cuda else "cpu", devices=devices, num_nodes=nodes, strategy=strategy,
        precision=PRECISION[precision],
        gradient_clip_val=clip if clip > 0 else None, gradient_clip_algorithm="norm" if clip > 0 else None,
        max_epochs=int(train_cfg.num_epochs), max_steps=int(getattr(train_cfg, "max_steps", -1) or -1),
        check_val_every_n_epoch=int(train_cfg.validation_interval),
        log_every_n_steps=int(train_cfg.log_every_n_steps), num_sanity_val_steps=0,
        benchmark=bool(train_cfg.cudnn.benchmark) if cuda else None,
        enable_checkpointing=False,  # our TaoCheckpoint writes TAO's layout atomically
        use_distributed_sampler=True,
    )
    if (num > 1 or nodes > 1) and _PROCESS_LAUNCHER:
        # the processes already exist (Ray Train's workers): its strategy and cluster environment, one device each
        settings.update(_PROCESS_LAUNCHER[0](cuda=cuda, find_unused_parameters=not bool(
            getattr(train_cfg, "activation_checkpoint", False))))
    if getattr(train_cfg, "is_dry_run", False):  # one train and one val batch, still writing outputs
        settings.update(max_steps=1, max_epochs=1, limit_val_batches=1)
    return settings


#: set by :func:`external_processes` (one entry: a function of cuda/find_unused_parameters -> Trainer kwargs)
_PROCESS_LAUNCHER: list = []


def external_processes(settings_for) -> None:
    """This process is one of `train.num_gpus` processes someone else started (automl's data-parallel trials:
    Ray Train's workers). ``settings_for(cuda=, find_unused_parameters=)`` returns the Trainer keyword arguments
    that replace ours for more than one process (strategy, plugins, devices, num_nodes); None undoes it."""
    _PROCESS_LAUNCHER.clear()
    if settings_for is not None:
        _PROCESS_LAUNCHER.append(settings_for)


def _strategy(name: str, cuda: bool, activation_checkpoint: bool):
    from pytorch_lightning.strategies import DDPStrategy

    if name == "ddp":
        # TAO: find_unused_parameters unless activation checkpointing (frozen/unused branches exist)
        return DDPStrategy(find_unused_parameters=not activation_checkpoint,
                           process_group_backend=None if cuda else "gloo")
    if name == "fsdp":
        if not cuda:
            raise BadInputError("train.distributed_strategy='fsdp' needs CUDA GPUs; use 'ddp' on CPUs.")
        return "fsdp"
    raise BadInputError(f"train.distributed_strategy={name!r}; choose 'ddp' or 'fsdp'.")


def global_rank_from_env() -> int:
    """Rank of this process before any Trainer exists (Lightning's DDP launcher sets these variables in
    the processes it starts; the launching process itself is rank 0)."""
    for key in ("RANK", "GLOBAL_RANK"):
        if key in os.environ:
            return int(os.environ[key])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    node = int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", "0")))
    return local + node * max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


@dataclass
class FitOutcome:
    best_checkpoint: str | None
    best_metrics: dict[str, float]
    history: list[dict[str, float]]
    last_checkpoint: str | None
    global_step: int
    resumed_from: str | None
    extra: dict[str, Any] = field(default_factory=dict)


def quiet_lightning() -> None:
    """Silence Lightning's advice that does not apply (few workers on tiny data, sampler wrapping)."""
    for pattern in (".*does not have many workers.*", ".*number of training batches.*",
                    ".*resuming from a checkpoint that ended before the epoch ended.*",
                    ".*LeafSpec.*", ".*TreeSpec.*"):
        warnings.filterwarnings("ignore", message=pattern)


def seed_everything(seed: int) -> None:
    if seed is not None and seed >= 0:
        pl.seed_everything(seed, workers=True, verbose=False)


def model_config_dict(model_cfg) -> dict | None:
    import dataclasses

    return dataclasses.asdict(model_cfg) if dataclasses.is_dataclass(model_cfg) else None

