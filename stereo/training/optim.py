"""`train.optim.optimizer` -> a torch optimizer over the trainable parameters.

Receives only the `train.optim` section (duck-typed: `optimizer`, `lr`, `weight_decay`, `momentum`).
"""
from __future__ import annotations

from collections.abc import Iterable

import torch

OPTIMIZERS = ("AdamW", "SGD")


def build_optimizer(params: Iterable[torch.nn.Parameter], optim_cfg) -> torch.optim.Optimizer:
    """AdamW(lr, weight_decay) or SGD(lr, momentum, weight_decay) over parameters that require grad.

    Frozen parameters (e.g. the FoundationStereo ViT branch) are skipped so that weight decay never
    touches them and the optimizer state stays small.
    """
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("build_optimizer: the model has no trainable parameters (all requires_grad=False); "
                         "unfreeze at least one module before training.")
    name = str(optim_cfg.optimizer)
    lr = float(optim_cfg.lr)
    weight_decay = float(optim_cfg.weight_decay)
    if not lr > 0:
        raise ValueError(f"train.optim.lr must be > 0, got {lr}.")
    if weight_decay < 0:
        raise ValueError(f"train.optim.weight_decay must be >= 0, got {weight_decay}.")
    key = name.lower()
    if key == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if key == "sgd":
        # TAO hard-codes momentum 0.9 and ignores the field; we read it (its default is 0.9).
        momentum = float(getattr(optim_cfg, "momentum", 0.9))
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"train.optim.optimizer={name!r} is not supported; choose one of {list(OPTIMIZERS)}.")
