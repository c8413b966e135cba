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

from dataclasses import dataclass
from typing import List, Optional

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
