"""What one trial will do, planned from its spec and its data before anything starts (pure planning,
no torch): samples per split, optimizer steps per epoch, steps in all, and the steps at which it
validates. The pre-flight (automl/plan/launch.py) refuses a sweep that could never score a trial, and the
dead-parameter check (automl/plan/dead_params.py) compares the LR schedule with these steps.

Lightning's rules, as the train action configures it (stereo/training/trainer.py): the training loader
drops the last partial batch; with P processes (``train.num_gpus`` x ``train.num_nodes``) each sees
ceil(N / P) samples; training stops at ``train.num_epochs`` or ``train.max_steps`` (-1: no limit),
whichever comes first; validation runs at the end of every ``train.validation_interval``-th *completed*
epoch, so a run whose ``max_steps`` ends mid-epoch never validates that epoch.

Choice (issue 10): a spec that cannot validate is **refused up front** with the fix, rather than every
trial being made to validate at its end: the fix is one key, it keeps the trainer's schedule what the
spec says, and a plain `depth_net train` with the same spec behaves exactly like a trial.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, List, Optional, Tuple

SPLITS_READ = ("train_dataset", "val_dataset")  # what the train action reads


@dataclass(frozen=True)
class TrialShape:
    train_samples: int
    val_samples: int
    batch_size: int
    processes: int
    steps_per_epoch: int
    epochs: int  # epochs started (the last one may be cut by max_steps)
    total_steps: int  # optimizer steps of one full trial (the LR schedule's T)
    validation_steps: List[int] = field(default_factory=list)  # global step after each validation
    val_batches: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrialShape":
        return cls(**data)

    def describe(self) -> str:
        vals = self.validation_steps
        shown = ", ".join(map(str, vals[:6])) + (f", ... ({len(vals)} in all)" if len(vals) > 6 else "")
        per = f" per process x {self.processes}" if self.processes > 1 else ""
        return (f"{self.train_samples} training sample(s) / batch {self.batch_size}{per} = {self.steps_per_epoch} "
                f"step(s) per epoch; {self.total_steps} optimizer step(s) in {self.epochs} epoch(s); "
                f"{len(vals)} validation(s) on {self.val_samples} sample(s)"
                + (f", at step(s) {shown}" if vals else ""))


def count_split(spec: Any, split: str) -> Tuple[int, List[str]]:
    """(samples, problems) of one split: every data source checked (stereo/data/preflight.py)."""
    from stereo.errors import DataError
    from stereo.data.preflight import check_data_source

    total, problems = 0, []
    for index, source in enumerate(getattr(spec.dataset, split).data_sources):
        key = f"dataset.{split}.data_sources[{index}].data_file"
        try:
            total += check_data_source(source.data_file, source.dataset_name, need_gt=True)
        except DataError as exc:
            problems.append(f"{key}: {' '.join(str(exc).split())}")
    return total, problems


def plan_trial(spec: Any) -> Tuple[Optional[TrialShape], List[str]]:
    """The shape of one training run of `spec` (a typed, validated train spec) and the data problems."""
    train_n, problems = count_split(spec, "train_dataset")
    val_n, val_problems = count_split(spec, "val_dataset")
    problems += val_problems
    if problems:
        return None, problems
    t, d = spec.train, spec.dataset
    processes = max(1, int(t.num_gpus)) * max(1, int(t.num_nodes))
    batch = int(d.train_dataset.batch_size)
    per_process = math.ceil(train_n / processes)
    steps_per_epoch = per_process // batch  # the training loader drops the last partial batch
    epochs = int(t.num_epochs)
    max_steps = int(t.max_steps) if t.max_steps and int(t.max_steps) > 0 else None
    full = steps_per_epoch * epochs
    total = min(full, max_steps) if max_steps is not None else full
    ran = math.ceil(total / steps_per_epoch) if steps_per_epoch else 0
    interval = max(1, int(t.validation_interval))
    validations = [e * steps_per_epoch for e in range(1, epochs + 1)
                   if e % interval == 0 and e * steps_per_epoch <= total] if val_n and steps_per_epoch else []
    val_batches = math.ceil(math.ceil(val_n / processes) / max(1, int(d.val_dataset.batch_size))) if val_n else 0
    return TrialShape(train_n, val_n, batch, processes, steps_per_epoch, ran, total, validations, val_batches), []


def scoring_problems(spec: Any, shape: TrialShape) -> List[str]:
    """Why a sweep trial of this shape could never be scored (each with the real fix), or nothing."""
    t, d = spec.train, spec.dataset
    batch = shape.batch_size
    if shape.steps_per_epoch == 0:
        per = f" ({shape.train_samples} per process x {shape.processes})" if shape.processes > 1 else ""
        return [f"dataset.train_dataset: {shape.train_samples} training sample(s){per} make no full batch of "
                f"dataset.train_dataset.batch_size={batch} (the last partial batch is dropped), so no step would "
                f"run; fix: set dataset.train_dataset.batch_size <= {max(1, shape.train_samples // shape.processes)} "
                "or add training data"]
    if not d.val_dataset.data_sources:
        return ["dataset.val_dataset.data_sources is empty: a sweep scores every trial by its validation; fix: "
                "add dataset.val_dataset.data_sources: [{dataset_name: ..., data_file: ...}] (data with GT that is "
                "not in the training split)"]
    if shape.validation_steps:
        return []
    interval, epochs, spe = int(t.validation_interval), int(t.num_epochs), shape.steps_per_epoch
    first = interval * spe  # the step after which the first validation would run
    if interval > epochs:
        return [f"train.validation_interval={interval} is more than train.num_epochs={epochs}, so no trial would "
                f"ever validate and none could be scored; fix: set train.validation_interval <= {epochs} (or "
                f"train.num_epochs >= {interval})"]
    return [f"train.max_steps={t.max_steps} ends every trial at step {shape.total_steps}, before its first "
            f"validation at step {first} (validation runs after every "
            f"{'complete epoch' if interval == 1 else f'{interval} complete epochs'}; one epoch is "
            f"{shape.train_samples} sample(s) / batch {batch} = {spe} step(s)), so no trial could be scored; fix: "
            f"set train.max_steps >= {first} (or -1 to let train.num_epochs decide)"
            + (", or train.validation_interval=1" if interval > 1 and spe <= int(t.max_steps) else "")]
