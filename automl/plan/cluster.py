"""What a run on a Ray cluster needs of its tracking store, checked before anything starts (pure planning).

A sweep that joins a cluster (``--ray-address``) has trials on several machines, each writing runs,
metrics and artifacts. A SQLite store is one file: on a network filesystem its locking is unreliable
(SQLite's FAQ, "Can multiple applications or multiple instances of the same application access a single
database file at the same time?"), and a new one is created by whoever opens it first. So a cluster run
takes a tracking server (``automl server``, automl/server/tracking.py) and refuses a file store with the
command that starts one. The run folder must still be shared (automl/tune/ray_session.py checks every
node sees it): the ledger, specs and checkpoints live there.
"""
from __future__ import annotations

from typing import List

from stereo.tracking import sqlite_path


def cluster_problems(*, ray_address: str | None, tracking_uri: str) -> List[str]:
    """One line per reason this run cannot go to the cluster at `ray_address` as planned (empty: it can)."""
    if not ray_address or sqlite_path(tracking_uri) is None:
        return []
    return [f"--ray-address {ray_address}: the tracking store {tracking_uri} is an SQLite file, which trials on "
            "other nodes would write over a network filesystem (SQLite's locking is unreliable there); start a "
            "tracking server (`automl server`, then `automl server --help` for a shared artifact folder) and pass "
            "--tracking-uri http://<server host>:<port>"]
