"""Learning-rate schedules, stepped once per optimizer step (as TAO does), with a linear warm-up.

Every schedule is a pure function of the optimizer step `s` (0-based; `s` optimizer steps have been
taken when lr(s) is used), so tests can read the lr at any step without running an optimizer:

    lr(s) = lr * warmup(s) * decay(s)
    warmup(s) = min(1, (s + 1) / warmup_steps)        (1 when warmup_steps == 0)

The warm-up multiplies whatever decay is chosen (TAO accepts `warmup_steps` and ignores it; here it
applies). It starts at lr/warmup_steps rather than 0 so that the first step is not wasted.
Decays, with T = total optimizer steps of the run:

    MultiStepLR        lr_decay ** #{m in lr_steps : m <= s}
    StepLR             lr_decay ** floor(s / lr_step_size)
    LambdaLR           max(0, 1 - s / T)                       (TAO: linear decay to 0)
    PolynomialLR       (1 - min(s, T) / T) ** 1                (TAO: power 1)
    CosineAnnealingLR  (min_lr + (lr - min_lr) (1 + cos(pi min(s, T) / T)) / 2) / lr
    OneCycleLR         torch's OneCycleLR (max_lr = lr, pct_start 0.3, div 25, final div 1e4, cosine)

Milestones (`lr_steps`, `lr_step_size`) count absolute optimizer steps, warm-up included.
The schedule is wrapped in `torch.optim.lr_scheduler.LambdaLR`, whose state_dict stores the step and
this object's fields, so a resumed run continues exactly where it stopped.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import torch

SCHEDULERS = ("MultiStepLR", "StepLR", "LambdaLR", "PolynomialLR", "OneCycleLR", "CosineAnnealingLR")
_ALIASES = {"multistep": "MultiStepLR"}  # TAO's declared enum spells it "MultiStep"


@dataclass
class LrSchedule:
    """lr(s) for one run; picklable (no closures) so LambdaLR can checkpoint it."""

    name: str
    base_lr: float
    total_steps: int
    warmup_steps: int = 0
    milestones: tuple[int, ...] = field(default_factory=tuple)
    step_size: int = 1000
    gamma: float = 0.1
    min_lr: float = 0.0
    pct_start: float = 0.3

    def __post_init__(self):
        self.name = canonical_scheduler_name(self.name)
        if self.total_steps < 1:
            raise ValueError(f"LrSchedule: total_steps must be >= 1, got {self.total_steps} (set train.max_steps "
                             "or train.num_epochs and give the training split at least one batch).")
        if self.warmup_steps < 0:
            raise ValueError(f"train.optim.warmup_steps must be >= 0, got {self.warmup_steps}.")
        if self.name == "StepLR" and self.step_size < 1:
            raise ValueError(f"train.optim.lr_step_size must be >= 1 for StepLR, got {self.step_size}.")
        if self.name == "MultiStepLR" and list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"train.optim.lr_steps must be increasing, got {list(self.milestones)}.")
        self.milestones = tuple(int(m) for m in self.milestones)

    def warmup(self, step: int) -> float:
        if self.warmup_steps <= 0:
            return 1.0
        return min(1.0, (step + 1) / self.warmup_steps)

    def decay(self, step: int) -> float:
        s, total = max(0, step), self.total_steps
        if self.name == "MultiStepLR":
            return self.gamma ** bisect.bisect_right(self.milestones, s)
        if self.name == "StepLR":
            return self.gamma ** (s // self.step_size)
        if self.name in ("LambdaLR", "PolynomialLR"):
            return max(0.0, 1.0 - min(s, total) / total)
        if self.name == "CosineAnnealingLR":
            cos = (1.0 + math.cos(math.pi * min(s, total) / total)) / 2.0
            return (self.min_lr + (self.base_lr - self.min_lr) * cos) / self.base_lr
        if self.name == "OneCycleLR":
            return self._one_cycle(s) / self.base_lr
        raise AssertionError(self.name)  # unreachable: the name was validated in __post_init__

    def _one_cycle(self, s: int) -> float:
        # torch.optim.lr_scheduler.OneCycleLR, three_phase=False, anneal_strategy="cos"
        max_lr = self.base_lr
        initial = max_lr / 25.0
        final = initial / 1e4
        up_end = float(self.pct_start * self.total_steps) - 1
        down_end = float(self.total_steps) - 1
        if s <= up_end:
            start, end, pct = initial, max_lr, s / up_end if up_end > 0 else 1.0
        else:
            start, end = max_lr, final
            pct = min(1.0, (s - up_end) / (down_end - up_end)) if down_end > up_end else 1.0
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)

    def __call__(self, step: int) -> float:
        """Multiplicative factor for LambdaLR."""
        return self.warmup(step) * self.decay(step)

    def lr(self, step: int) -> float:
        return self.base_lr * self(step)


def canonical_scheduler_name(name: str) -> str:
    key = str(name).replace("_", "").lower()
    for known in SCHEDULERS:
        if known.lower() == key:
            return known
    if key in _ALIASES:
        return _ALIASES[key]
    raise ValueError(f"train.optim.lr_scheduler={name!r} is not supported; choose one of {list(SCHEDULERS)}.")


def schedule_from_config(optim_cfg, total_steps: int) -> LrSchedule:
    """Read `train.optim` (lr, lr_scheduler, lr_steps, lr_step_size, lr_decay, min_lr, warmup_steps)."""
    return LrSchedule(
        name=str(optim_cfg.lr_scheduler),
        base_lr=float(optim_cfg.lr),
        total_steps=int(total_steps),
        warmup_steps=int(getattr(optim_cfg, "warmup_steps", 0) or 0),
        milestones=tuple(getattr(optim_cfg, "lr_steps", ()) or ()),
        step_size=int(getattr(optim_cfg, "lr_step_size", 1000)),
        gamma=float(getattr(optim_cfg, "lr_decay", 0.1)),
        min_lr=float(getattr(optim_cfg, "min_lr", 0.0)),
    )


def build_scheduler(optimizer: torch.optim.Optimizer, optim_cfg,
                    total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR over `schedule_from_config`; step it after every optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule_from_config(optim_cfg, total_steps))
