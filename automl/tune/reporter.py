"""The sweep's Lightning callback in each trial: every validation checked, booked in the ledger and
reported to the scheduler; a scheduler's stop turned into a clean end of the training.

Per validation (``on_validation_end``): the sweep's metric must be logged and every ``val/*`` value
finite (a NaN/inf is a failed trial, "val/epe=nan, ... a diverged trial is failed, not scored", never
a 0), then the row goes to the ledger. At the end of that epoch, *after* the epoch's checkpoint is
written, the row is reported (``report``, Ray's ``tune.report`` in a worker). Ray answers a stop by
raising ``SystemExit`` out of ``report``: with the driver's verdict in the ledger it was the
scheduler, and the callback sets ``trainer.should_stop`` (status.json then reads SUCCESS, "stopped
early by asha after N validations"); without one the whole sweep is stopping and the trial leaves at
once. It also books the trial's peak memory (automl/tune/oom.py) every ``MEMORY_EVERY_S`` and at each
validation, so a memory kill can say how much the trial held.
"""
from __future__ import annotations

import functools
import time
from typing import Any, Callable, Dict, Optional

from automl.errors import AutomlError
from automl.tune.ledger import Ledger, metric_value

TIME_KEY = "train/time_s"  # wall-clock seconds of training up to each validation (an objective, a trial cost)
MEMORY_EVERY_S = 10.0  # how often a training trial books its peak memory in the ledger (automl/tune/oom.py)


class TrialFailure(AutomlError):
    """The trial cannot be scored; ``str()`` is the one-line reason stored in the ledger."""


@functools.lru_cache(maxsize=1)
def reporter_class():
    """The callback class (built on first use: importing Lightning costs 4 s that `automl --help` must not pay)."""
    import math

    import pytorch_lightning as pl

    from stereo.metrics import find_metric, strip_namespace

    class TrialReporter(pl.Callback):
        """Per validation: check the metric and append it to the ledger; at the end of that epoch (after
        the epoch's checkpoint is written) report it to the scheduler. A stop by the scheduler then asks
        Lightning to stop (``trainer.should_stop``): the training ends cleanly, its records written."""

        def __init__(self, trial_id: str, index: int, ledger: Ledger, metric: str,
                     report: Callable[[Dict[str, Any]], None], scheduler: str = "",
                     stop_requested: Optional[Callable[[], bool]] = None):
            self.trial_id, self.index = trial_id, index
            self.ledger, self.metric, self.report = ledger, metric, report
            self.scheduler, self.stop_requested = scheduler or "the scheduler", stop_requested
            self.count, self.stopped = 0, False
            self.stop_reason: Optional[str] = None  # the train action writes it into status.json
            self._pending: Optional[Dict[str, Any]] = None
            self._memory_booked = 0.0
            self._started: Optional[float] = None

        def on_train_start(self, trainer, pl_module):
            self._started = time.monotonic()

        def on_validation_end(self, trainer, pl_module):
            if trainer.sanity_checking or self.stopped:
                return
            values = {k: float(v) for k, v in trainer.callback_metrics.items() if str(k).startswith("val/")}
            epoch, step = int(trainer.current_epoch), int(trainer.global_step)
            try:
                find_metric(values, self.metric)  # 'epe' and 'val/epe' both find val/epe
            except KeyError:
                logged = ", ".join(sorted(values)) or "nothing"
                raise TrialFailure(f"metric {self.metric!r} was not logged at epoch {epoch}; logged: {logged} "
                                   "(pass --metric with one of them)") from None
            sweep_metric = strip_namespace(self.metric)
            bad = sorted((k for k, v in values.items() if not math.isfinite(v)),
                         key=lambda k: (strip_namespace(k) != sweep_metric, k))  # the sweep's metric first
            if bad:
                more = f" (+{len(bad) - 2} more)" if len(bad) > 2 else ""
                shown = ", ".join(f"{k}={values[k]}" for k in bad[:2]) + more
                raise TrialFailure(f"{shown} at epoch {epoch}, step {step}: a diverged trial is failed, not scored")
            if self._started is not None:  # a cost objective every trial reports (automl/plan/objectives.py)
                values[TIME_KEY] = round(time.monotonic() - self._started, 3)
            self.count += 1
            self._book_memory(force=True)
            self.ledger.add_validation(self.trial_id, {"iteration": self.count, "epoch": epoch, "step": step,
                                                       **values})
            # the sweep's metric under the name the scheduler and searcher were given ('epe' or 'val/epe')
            self._pending = {**values, self.metric: metric_value(values, self.metric), "epoch": epoch + 1,
                             "step": step, "trial_index": self.index}

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self._book_memory()
            if self.stop_requested is not None and not self.stopped and self.stop_requested():
                # the sweep is stopping (Ctrl-C, SIGTERM): a scheduler's stop only ever arrives out of report()
                raise SystemExit(0)

        def on_train_epoch_end(self, trainer, pl_module):
            self._flush(trainer)  # after TaoCheckpoint (an earlier callback) wrote this epoch's checkpoint

        def on_train_end(self, trainer, pl_module):
            self._flush(trainer)  # a validation that ended the run mid-epoch (max_steps)

        def _flush(self, trainer) -> None:
            if self._pending is None or self.stopped:
                return
            metrics, self._pending = self._pending, None
            try:
                self.report(metrics)
            except SystemExit:
                self._stopped(trainer)

        def _stopped(self, trainer) -> None:
            """Ray exits the trial's thread out of report() on a stop. The driver writes its verdict before it
            asks a trial to stop, so a verdict means the scheduler stopped it; no verdict means the whole
            sweep is stopping (Ctrl-C/SIGTERM), and the trial ends as interrupted at once."""
            verdict = self.ledger.verdict(self.trial_id)
            if verdict is None:
                raise SystemExit(0)
            self.stopped = True
            trainer.should_stop = True
            if verdict.get("status") == "stopped":
                self.stop_reason = (f"stopped early by {self.scheduler} after {self.count} "
                                    f"validation{'s' if self.count != 1 else ''}")

        def _book_memory(self, force: bool = False) -> None:
            from automl.tune.oom import DEVICE_KEY, PEAK_KEY, peak_memory

            now = time.monotonic()
            if force or now - self._memory_booked >= MEMORY_EVERY_S:
                self._memory_booked = now
                peak, device = peak_memory()
                self.ledger.update_progress(self.trial_id, **{PEAK_KEY: round(peak, 3), DEVICE_KEY: device})

    return TrialReporter
