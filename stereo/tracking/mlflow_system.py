"""System metrics on every action's MLflow run: MLflow's own monitor (``system/cpu_utilization_percentage``,
``system/system_memory_usage_megabytes``, disk, network; ``system/gpu_*`` when NVML is there), started
for the run by :meth:`MlflowTracker.system_metrics` around the action's work.

One sample every ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` seconds (our default 10, MLflow's own), in a
daemon thread; docs/BENCHMARKS.md ("System metrics") measures what it costs a training step.
``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=false`` turns it off. MLflow's monitor publishes only after a full
interval, so a run shorter than that (a sweep trial of seconds) would get none: on finish, a run that
got no sample yet gets the one collected at the start.
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

DEFAULT_INTERVAL_S = 10.0
SWITCH_ENV = "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"
_log = logging.getLogger(__name__)


def enabled() -> bool:
    return os.environ.get(SWITCH_ENV, "true").strip().lower() not in ("false", "0", "no", "off")


@contextlib.contextmanager
def monitored(run_id: str, tracking_uri: str, interval_s: float = DEFAULT_INTERVAL_S) -> Iterator[None]:
    if not enabled():
        yield
        return
    monitor = None
    try:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(run_id, sampling_interval=interval_s, tracking_uri=tracking_uri)
        monitor.start()
    except Exception as exc:  # noqa: BLE001 - no psutil, no thread: the action still runs, unmonitored
        _log.warning("system metrics are off for this run: %s: %s", type(exc).__name__, exc)
        monitor = None
    interrupted = False
    try:
        yield
    except BaseException:  # Ctrl-C, SIGTERM/SIGHUP turned into an exception, a failure: stop, never wait
        interrupted = True
        raise
    finally:
        if monitor is not None:
            _finish(monitor, interrupted)


JOIN_TIMEOUT_S = 5.0


def _finish(monitor, interrupted: bool) -> None:
    """Stop the sampling thread without ever holding up the action: MLflow's own ``finish()`` joins it with
    no timeout (a thread blocked on the store would keep an interrupted action from exiting), so the
    thread gets JOIN_TIMEOUT_S (it is a daemon: the process may end without it). The last sample is
    published only when the action ended normally."""
    try:
        thread, stop = getattr(monitor, "_process", None), getattr(monitor, "_shutdown_event", None)
        if stop is None:  # another MLflow layout
            monitor.finish()
            return
        stop.set()
        if thread is not None:
            thread.join(JOIN_TIMEOUT_S)
        if interrupted or (thread is not None and thread.is_alive()):
            return
        if getattr(monitor, "_logging_step", 1) == 0:  # nothing published: a run shorter than one interval
            monitor.publish_metrics(monitor.aggregate_metrics())
        monitor.mlflow_logger.flush()
    except Exception as exc:  # noqa: BLE001 - metrics about the machine must never fail the action
        _log.warning("could not log the last system metrics: %s: %s", type(exc).__name__, exc)
