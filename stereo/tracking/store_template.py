"""A new SQLite tracking store starts as a copy of an empty, already-migrated one.

MLflow creates a new SQLite store by running its whole Alembic migration chain (~50 revisions): 2-3 s on
an idle core and 7 s or more on a loaded one (docs/BENCHMARKS.md, "New tracking store"), paid by the
first action in every new results folder and by every sweep. The result is the same empty schema each
time for one MLflow version, so the first store this machine makes is kept as a template in
``$STEREO_CACHE_DIR/mlflow-store/`` (default ``~/.cache/stereo-automl/mlflow-store/``), keyed by the
MLflow and SQLAlchemy versions, and later new stores are a file copy.

Only an empty, complete store becomes a template (its ``alembic_version`` is checked against the head
MLflow's migrations name), the copy is written beside the target and renamed into place, and everything
here runs under the caller's store lock (``mlflow_tracker._store_lock``). A cache that cannot be written
or read is no error: the store is then created by MLflow as before. ``STEREO_MLFLOW_TEMPLATE=0`` turns
the template off.

The one row a template carries is MLflow's ``Default`` experiment (id 0), whose artifact location MLflow
sets from the creating process's working directory; the copy points it at ``<store dir>/mlruns/0``
instead, where MLflow would put it for a store created from that folder.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

CACHE_ENV = "STEREO_CACHE_DIR"
SWITCH_ENV = "STEREO_MLFLOW_TEMPLATE"


def cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    base = Path(env).expanduser() if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / \
        "stereo-automl"
    return base / "mlflow-store"


def _versions() -> str:
    import mlflow
    import sqlalchemy

    return f"mlflow-{mlflow.__version__}-sqlalchemy-{sqlalchemy.__version__}"


def _head_revision() -> str | None:
    """The newest revision of MLflow's tracking-store migrations (what a complete store records; MLflow
    checks the same on every open and refuses an out-of-date store)."""
    try:
        from mlflow.store.db.utils import _get_latest_schema_revision

        return _get_latest_schema_revision()
    except Exception:  # another MLflow layout: no template rather than a wrong one
        return None


def _is_empty_and_complete(db: Path, head: str) -> bool:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            (rev,) = con.execute("select version_num from alembic_version").fetchone()
            runs = con.execute("select count(*) from runs").fetchone()[0]
            experiments = con.execute("select count(*) from experiments").fetchone()[0]
        return rev == head and runs == 0 and experiments == 1
    except (sqlite3.Error, TypeError):
        return False


def _template(create_empty) -> Path | None:
    """The cached template for this MLflow, made once with ``create_empty(uri)`` when missing."""
    head = _head_revision()
    if head is None:
        return None
    folder = cache_dir()
    path = folder / f"{_versions()}.db"
    if path.is_file() and _is_empty_and_complete(path, head):
        return path
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".making-") as tmp:
            made = Path(tmp) / "mlflow.db"
            create_empty("sqlite:///" + str(made))
            if not _is_empty_and_complete(made, head):
                return None
            os.replace(made, path)  # atomic: a reader sees no template or a whole one
        return path
    except OSError:
        return None


def seed_new_store(db: Path, create_empty) -> bool:
    """Create the missing SQLite store ``db`` as a copy of the template; False (nothing written) when no
    template can be had, and MLflow then creates the store itself. Call under the store's lock."""
    if os.environ.get(SWITCH_ENV, "1") == "0" or db.exists():
        return False
    template = _template(create_empty)
    if template is None:
        return False
    tmp = db.with_name(f".{db.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(template, tmp)
        now = int(time.time() * 1000)
        with contextlib.closing(sqlite3.connect(tmp)) as con, con:
            con.execute("update experiments set artifact_location = ?, creation_time = ?, last_update_time = ? "
                        "where experiment_id = 0", (str(db.parent / "mlruns" / "0"), now, now))
        os.replace(tmp, db)
        return True
    except (OSError, sqlite3.Error):
        tmp.unlink(missing_ok=True)
        return False
