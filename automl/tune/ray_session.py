"""The Ray session a sweep runs in: embedded on this machine (loopback only) or joined to a cluster whose
nodes must all see the run folder. Ray is imported lazily, in automl/tune/ only (STYLE habit 8).

Ray keeps its session files (logs, sockets) where it always does: ``/tmp/ray``, or ``$RAY_TMPDIR/ray``
when you set ``RAY_TMPDIR``; Ray reads the variable itself. They are not the sweep's records (those
are the ledger, the trials' folders and the MLflow store, all in the run folder), and a deep run
folder no longer matters to Ray's unix sockets (AF_UNIX paths stop at 107 bytes).
"""
from __future__ import annotations

import contextlib
import os
import secrets
import signal
import threading
from pathlib import Path
from typing import Iterator

from automl.errors import AutomlError
from automl.plan.launch import LaunchPlan


@contextlib.contextmanager
def ray_session(plan: LaunchPlan, *, log_to_driver: bool = False) -> Iterator[None]:
    """ray.init for this run (joining `plan.ray_address` when given) and a clean shutdown after.

    Embedded: always a new local Ray (``address="local"``: never a cluster some ``ray start`` left running
    on this machine), num_cpus from this machine, no dashboard, no metrics; every Ray server (GCS, raylet,
    workers, the driver's core worker, the runtime-env agent) listens on 127.0.0.1 only
    (:func:`_loopback_only`). Joined: every node must see the run folder (see
    :func:`check_shared_run_dir`); the cluster's own addresses stay.
    """
    saved_switch = os.environ.get(_RAY_CLUSTER_ENV)
    if not plan.ray_address:
        os.environ[_RAY_CLUSTER_ENV] = "0"  # before Ray's constants are read (see _loopback_only)
    import ray

    # a stopped trial's thread still saves its checkpoint and closes its MLflow run before its actor can be
    # reused; Ray waits only 2 s by default and then *fails the next trial* ("reuse requires reset_config")
    env = {"TUNE_FUNCTION_THREAD_TIMEOUT_S": "120", "RAY_AIR_NEW_OUTPUT": "0"}
    for key, value in env.items():
        os.environ.setdefault(key, value)
    old_term = None
    try:
        if plan.ray_address:
            ray.init(address=plan.ray_address, log_to_driver=log_to_driver, configure_logging=False,
                     runtime_env={"env_vars": {k: os.environ[k] for k in env}})
            check_shared_run_dir(plan.run_dir)
        else:
            with _loopback_only():
                ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False,
                         log_to_driver=log_to_driver, configure_logging=False,
                         _system_config={"enable_metrics_collection": False})
        if threading.current_thread() is threading.main_thread():
            # ray.init's SIGTERM handler exits from wherever Tune happens to be; after that the driver
            # aborted (SIGABRT) at exit here. As a Ctrl-C, Tune stops gracefully and the driver reports.
            old_term = signal.signal(signal.SIGTERM, _sigterm_as_sigint)
        yield
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        ray.shutdown()
        if saved_switch is None:
            os.environ.pop(_RAY_CLUSTER_ENV, None)
        else:
            os.environ[_RAY_CLUSTER_ENV] = saved_switch


#: Ray's switch for "this node may join a cluster"; off, the node's IP is 127.0.0.1 and every server
#: binds there (ray._private.services.get_node_ip_address). ``_node_ip_address="127.0.0.1"`` alone does
#: not do it: ray.init replaces a loopback address with the machine's external one.
_RAY_CLUSTER_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextlib.contextmanager
def _loopback_only() -> Iterator[None]:
    """An embedded Ray is a one-machine run: its node IP is 127.0.0.1, so nothing listens on the network.
    The environment variable reaches the processes Ray starts; the constant is also set in case Ray was
    imported before the variable was (e.g. by an earlier sweep in this process)."""
    from ray._private import ray_constants

    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def _sigterm_as_sigint(signum, frame) -> None:
    signal.raise_signal(signal.SIGINT)


def _sees_marker(path: str, token: str) -> bool:
    """Run on each node: does this node see the file the driver just wrote in the run folder?"""
    try:
        return Path(path).read_text() == token
    except OSError:
        return False


def check_shared_run_dir(run_dir: str | os.PathLike, timeout_s: float = 120.0) -> None:
    """Every node of the joined cluster must see the run folder: the trials write their ledger rows,
    specs and checkpoints there and the driver reads them (Ray >= 2.7 no longer syncs worker folders).
    Raises :class:`SharedStorageError` naming the nodes that do not, with the fix."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = secrets.token_hex(8)
    marker = Path(run_dir) / "ledger" / f".shared-{token}"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(token)
    probe = ray.remote(num_cpus=0)(_sees_marker)
    try:
        nodes = {n["NodeID"]: n.get("NodeManagerAddress", "?") for n in ray.nodes() if n.get("Alive")}
        refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(
            str(marker), token) for node in nodes]
        seen = dict(zip(nodes, ray.get(refs, timeout=timeout_s)))
    finally:
        marker.unlink(missing_ok=True)
    blind = [f"{nodes[n]} ({n[:8]})" for n, ok in seen.items() if not ok]
    if blind:
        raise SharedStorageError(
            f"--ray-address: node(s) {', '.join(blind)} cannot see the run folder {run_dir}; trials there would "
            "write their ledger, specs and checkpoints where this driver never reads them. Put --output on a "
            "filesystem every node mounts at the same path (NFS, a shared volume) and run again")


class SharedStorageError(AutomlError):
    """A joined Ray cluster whose nodes do not share the run folder."""
