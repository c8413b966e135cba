"""Test-only failures for sweep trials, installed through the sweep's own extension point
(``AUTOML_TRIAL_CALLBACKS=trial_faults:inject``, automl/tune/trial_callbacks.py) with this folder on
``PYTHONPATH``; the ``trial_faults`` fixture (tests/automl/conftest.py) sets both.

``AUTOML_TEST_FAULTS`` plans them: comma-separated ``<index>=<fault>[@<attempt>]``: trial <index> (every
attempt, or only attempt <attempt>) hits <fault> at its first validation:

- ``kill``: the process SIGKILLs itself after the validation is booked in the ledger, before it is
  reported to the scheduler;
- ``raise``: a ``RuntimeError("injected fault: ...")``;
- ``nan``: that validation's metrics read NaN, so the trial fails "val/epe=nan, ... a diverged trial
  is failed, not scored";
- ``oom``: it takes memory until the node's memory monitor kills it (the test lowers
  ``RAY_memory_usage_threshold``).
"""
from __future__ import annotations

import math
import os
import signal
import time

import pytorch_lightning as pl

PLAN_ENV = "AUTOML_TEST_FAULTS"
FAULTS = ("kill", "raise", "nan", "oom")


def planned(index: int, attempt: int, text: str | None = None) -> str | None:
    """The fault planned for this attempt of trial `index`, if any."""
    text = os.environ.get(PLAN_ENV, "") if text is None else text
    for item in filter(None, text.split(",")):
        where, _, what = item.partition("=")
        fault, _, only = what.partition("@")
        if fault not in FAULTS or (only and not only.isdigit()):
            raise ValueError(f"{PLAN_ENV}={text!r}: {item!r} is not <index>=<fault>[@<attempt>] with fault one of "
                             f"{', '.join(FAULTS)}")
        if where.strip() == str(index) and (not only or int(only) == attempt):
            return fault
    return None


def inject(trial):
    """The AUTOML_TRIAL_CALLBACKS factory: the planned fault of this attempt, or nothing."""
    fault = planned(trial.index, trial.attempt)
    return FirstValidationFault(fault, trial.trial_id) if fault else None


class FirstValidationFault(pl.Callback):
    """Hits `fault` at the trial's first validation (after the sanity check)."""

    def __init__(self, fault: str, trial_id: str):
        self.fault, self.trial_id, self.done, self._hook = fault, trial_id, False, None

    def on_validation_start(self, trainer, pl_module):
        if trainer.sanity_checking or self.done or self.fault != "nan":
            return
        # the module's epoch metrics read NaN (as a diverged network's would; NaN predictions themselves
        # score inf, so the metrics are replaced where the module computes them)
        metrics = pl_module.val_metrics
        compute = metrics.compute
        metrics.compute = lambda: {k: math.nan for k in compute()}
        self._hook = lambda: vars(metrics).pop("compute", None)

    def on_validation_end(self, trainer, pl_module):
        # runs after the sweep's reporter (it comes first in the trainer's callbacks): the row is booked
        if trainer.sanity_checking or self.done:
            return
        self.done = True
        if self._hook is not None:
            self._hook()
        if self.fault == "raise":
            raise RuntimeError(f"injected fault: trial {self.trial_id} raises at epoch {trainer.current_epoch}")
        if self.fault == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.fault == "oom":
            exhaust_memory()


def exhaust_memory(step_bytes: int = 128 * 2**20) -> None:
    """Take memory (touched, so it is resident) until the node's memory monitor (``RAY_memory_usage_threshold``,
    which the test lowers) kills this worker. It takes at most what crosses the threshold plus 1.5 GiB, then
    gives up with an error rather than take a shared machine down."""
    import numpy as np

    from automl.tune.oom import meminfo

    info = meminfo() or {"total": 0, "available": 0}
    threshold = float(os.environ.get("RAY_memory_usage_threshold", "0.95"))
    limit_bytes = max(0.0, threshold * info["total"] - (info["total"] - info["available"])) + 1.5 * 2**30
    held = []
    while len(held) * step_bytes < limit_bytes:
        held.append(np.ones(step_bytes // 8))
        time.sleep(0.05)
    raise RuntimeError(f"injected fault (oom): {limit_bytes / 2**30:.1f} GiB taken and not killed; set "
                       "RAY_memory_usage_threshold lower for this test")
