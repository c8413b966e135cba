"""GPUs per trial, reconciled with the spec's ``train.num_gpus`` before anything runs (pure planning).

A trial trains with the train action, which asks Lightning for ``train.num_gpus`` devices; Ray decides
which devices a trial may see (``num_gpus`` resource -> ``CUDA_VISIBLE_DEVICES``). The two must agree:

- Ray gives 0 GPUs but the machine has some -> the trial silently trains on the CPU;
- Ray gives 1 GPU but ``train.num_gpus: 2`` -> Lightning fails to find the second device;
- Ray is asked for more GPUs than the machine has -> the trial never starts.

So when ``--gpus-per-trial`` is not given it is derived (``train.num_gpus`` on a machine with GPUs, 0
without), a contradiction is refused with the fix, and the review says which rule applied. GPUs are
counted without importing torch: ``CUDA_VISIBLE_DEVICES`` (as Ray reads it) capped by the devices the
NVIDIA driver lists.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from automl.errors import AutomlInputError
from stereo.gpus import visible_gpus  # noqa: F401  (re-exported: automl callers import it from here)


class ResourceError(AutomlInputError):
    """GPU settings that contradict each other; the message names both and the fix."""




@dataclass(frozen=True)
class GpuPlan:
    gpus_per_trial: float
    notes: List[str]
    max_concurrent: Optional[int] = None  # at most this many trials fit on the GPUs (None: no GPU limit)


def plan_gpus(*, requested: Optional[float], num_gpus: int, available: Optional[int],
              cluster: bool) -> GpuPlan:
    """GPUs per trial from ``--gpus-per-trial`` (`requested`, None when not given) and ``train.num_gpus``.

    `available`: GPUs of this machine (None: unknown); `cluster`: trials run on a cluster joined with
    ``--ray-address``, whose GPUs this machine cannot count.
    """
    n = int(num_gpus)
    if requested is not None and requested < 0:
        raise ResourceError(f"--gpus-per-trial {requested:g} must be >= 0 (0 trains every trial on CPU)")
    local = None if cluster else available
    if requested is None:
        if cluster:
            return GpuPlan(0.0, [f"0 GPU per trial: joining a cluster, GPUs are not derived; pass --gpus-per-trial "
                                 f"{n} to give each trial the train.num_gpus={n} GPU(s) it asks for"])
        if not local:
            cpu = f"; train.num_gpus={n} runs {n} CPU processes per trial" if n > 1 else ""
            return GpuPlan(0.0, [f"no GPU on this machine: trials train on CPU{cpu}"])
        if n > local:
            raise ResourceError(f"train.num_gpus={n} but this machine has {local} GPU(s), so no trial could "
                                f"start; set train.num_gpus={local} (or less), or --ray-address a bigger cluster")
        return GpuPlan(float(n), [f"{n} GPU(s) per trial from train.num_gpus={n} (this machine has {local}; pass "
                                  "--gpus-per-trial 0 to train on CPU)"], local // n)
    gpus = float(requested)
    if gpus == 0:
        note = (f"--gpus-per-trial 0: trials train on CPU although this machine has {local} GPU(s)" if local
                else "--gpus-per-trial 0: trials train on CPU")
        return GpuPlan(0.0, [note])
    if gpus < 1 and n > 1:
        raise ResourceError(f"--gpus-per-trial {gpus:g} shares one GPU between trials, but train.num_gpus={n} asks "
                            f"each trial for {n}; pass --gpus-per-trial {n} or train.num_gpus=1")
    if gpus > 1 and not gpus.is_integer():
        raise ResourceError(f"--gpus-per-trial {gpus:g}: give a whole number of GPUs (or a fraction below 1 to "
                            "share one GPU between trials)")
    if gpus >= 1 and int(gpus) != n:
        raise ResourceError(f"--gpus-per-trial {gpus:g} but train.num_gpus={n}: each trial trains on "
                            f"train.num_gpus devices, so Ray must give it exactly that many; pass --gpus-per-trial "
                            f"{n} or train.num_gpus={int(gpus)}")
    if local is not None and gpus > local:
        raise ResourceError(f"--gpus-per-trial {gpus:g} but this machine has {local} GPU(s) visible, so no trial "
                            "could start; pass --gpus-per-trial 0 to train on CPU, or --ray-address a cluster with "
                            "GPUs")
    fits = None if local is None else int(local // gpus)
    share = " (trials share a GPU)" if gpus < 1 else ""
    return GpuPlan(gpus, [f"{gpus:g} GPU per trial (--gpus-per-trial){share}, train.num_gpus={n}"], fits)


@dataclass(frozen=True)
class WorkerPlan:
    """How many processes train one trial. ``workers == 1``: the trial trains in its Ray worker, as always;
    ``workers > 1``: data-parallel through Ray Train's TorchTrainer (automl/tune/data_parallel.py), each worker
    one process of DDP (nccl on GPUs, gloo on CPUs), the workers' resources one placement group."""

    workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    notes: List[str] = field(default_factory=list)
    max_concurrent: Optional[int] = None  # data-parallel trials that fit on this machine's CPUs at once


def plan_workers(*, num_gpus: int, gpus_per_trial: float, strategy: str = "ddp", num_nodes: int = 1,
                 cpus_per_trial: float = 1.0, cpus_available: Optional[int] = None) -> WorkerPlan:
    """Processes per trial from ``train.num_gpus`` and the GPUs :func:`plan_gpus` settled.

    ``train.num_gpus: N > 1`` is N workers: N GPUs (one each) when the trial has GPUs, N CPU processes when it
    trains on CPU. `cpus_available`: CPUs of this machine (None: a cluster's, not counted here). Raises
    :class:`ResourceError` for what cannot run: fsdp on CPU workers, ``train.num_nodes > 1`` (Ray places the
    workers), more worker CPUs than the machine has."""
    n = int(num_gpus)
    if n <= 1:
        return WorkerPlan(1, gpus_per_trial > 0, float(cpus_per_trial))
    if int(num_nodes) > 1:
        raise ResourceError(f"train.num_nodes={num_nodes} in a sweep: Ray Train places a trial's workers on the "
                            f"cluster's nodes itself; set train.num_nodes=1 and train.num_gpus to the total number "
                            f"of workers ({n * int(num_nodes)})")
    use_gpu = gpus_per_trial >= 1
    if str(strategy) == "fsdp" and not use_gpu:
        raise ResourceError(f"train.distributed_strategy=fsdp with train.num_gpus={n} on CPU workers: FSDP needs "
                            "CUDA GPUs; set train.distributed_strategy=ddp (gloo on CPU), or give each trial GPUs "
                            f"(--gpus-per-trial {n} on a machine with {n} GPUs)")
    per_worker = cpus_per_worker(cpus_per_trial, n)
    total = per_worker * n
    fits = None
    if cpus_available is not None:
        if total > cpus_available:
            raise ResourceError(f"train.num_gpus={n} runs {n} worker processes of {per_worker:g} CPU each "
                                f"({total:g} CPUs) per trial, but this machine has {cpus_available} CPU(s), so "
                                f"no trial could start; set train.num_gpus={max(1, int(cpus_available // per_worker))} "
                                "or less, or --ray-address a bigger cluster")
        fits = max(1, int(cpus_available // total))
    device = "GPU" if use_gpu else "CPU"
    backend = "nccl" if use_gpu else "gloo"
    return WorkerPlan(n, use_gpu, per_worker,
                      [f"data-parallel trials: {n} Ray Train workers per trial ({per_worker:g} CPU"
                       f"{' + 1 GPU' if use_gpu else ''} each, one placement group), DDP over {backend} on "
                       f"{device}; the global batch is {n} x dataset.train_dataset.batch_size"], fits)


def cpus_per_worker(cpus_per_trial: float, workers: int) -> float:
    """A data-parallel trial's ``--cpus-per-trial`` split between its workers, at least one CPU each."""
    return max(1.0, float(cpus_per_trial) / max(1, int(workers)))


def settle_resources(plan: Any, tune: Any, where: Any, resolved: Any, known: dict,
                     gpus_available: Optional[int]) -> None:
    """The launch plan's GPUs and workers per trial from train.num_gpus (or --gpus-per-trial), and the
    concurrency they allow (automl/plan/launch.py; `known` is the base spec's dotted keys)."""
    import os

    from automl.errors import LaunchError
    from automl.space.relations import as_number

    num_gpus = resolved.train.num_gpus if resolved is not None else as_number(known.get("train.num_gpus")) or 1
    try:
        gpus = plan_gpus(requested=where.gpus_per_trial, num_gpus=int(num_gpus), cluster=bool(where.ray_address),
                         available=None if where.ray_address else (visible_gpus() if gpus_available is None
                                                                   else gpus_available))
        train = resolved.train if resolved is not None else None
        workers = plan_workers(num_gpus=int(num_gpus), gpus_per_trial=gpus.gpus_per_trial,
                               strategy=str(getattr(train, "distributed_strategy", None)
                                            or known.get("train.distributed_strategy") or "ddp"),
                               num_nodes=int(getattr(train, "num_nodes", None) or known.get("train.num_nodes") or 1),
                               cpus_per_trial=float(where.cpus_per_trial),
                               cpus_available=None if where.ray_address else (os.cpu_count() or 1))
    except ResourceError as exc:
        raise LaunchError(str(exc)) from None
    plan.gpus_per_trial, plan.resource_notes = gpus.gpus_per_trial, list(gpus.notes) + list(workers.notes)
    plan.workers_per_trial = workers.workers
    if workers.max_concurrent is not None and plan.max_concurrent > workers.max_concurrent:
        if tune.max_concurrent is not None:  # a trial's workers must all fit at once, or it waits for them
            plan.resource_notes.append(f"--max-concurrent {plan.max_concurrent}, but only {workers.max_concurrent} "
                                       "data-parallel trial(s) fit on this machine's CPUs at once")
        plan.max_concurrent = workers.max_concurrent
    if gpus.max_concurrent is not None and plan.max_concurrent > gpus.max_concurrent:
        if tune.max_concurrent is not None:
            plan.resource_notes.append(f"--max-concurrent {plan.max_concurrent}, but only {gpus.max_concurrent} "
                                       "trial(s) fit on the GPUs at once; the others wait")
        else:
            plan.max_concurrent = max(1, gpus.max_concurrent)
