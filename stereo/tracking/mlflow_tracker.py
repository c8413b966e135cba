"""MLflow implementation of :class:`~stereo.tracking.base.Tracker` — the only module that imports mlflow.

Facts this relies on (MLflow 3.x): the default backend is SQLite (the ``file:`` store raises unless
``MLFLOW_ALLOW_FILE_STORE`` is set); a fresh SQLite DB creates and migrates its schema on first use, and
two processes doing that at once crash (``duplicate column name: step``, ``table alembic_version already
exists``) and can leave the DB unopenable. So every process opens a SQLite store for the first time
under an exclusive file lock (``<db>.lock``, :func:`_store_lock`): the first one creates the schema,
the others wait and then find it complete. Two sweeps, their trials and `automl ui` may share one new
store. MLflow's INFO lines about it ("Creating initial MLflow database tables...", "Updating database
tables") never reach a console: those loggers are held at WARNING. Relative URIs break when a worker
changes cwd (Ray does), so URIs are made absolute; nesting across processes uses the
``mlflow.parentRunId`` tag. We use ``MlflowClient``
(explicit run ids) rather than the fluent API, whose hidden active-run stack is per process.

``mlflow`` is imported lazily, so importing this module costs nothing until a tracker is used.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from stereo.tracking.base import PARENT_RUN_TAG, RunHandle, RunRecord, Tracker
from stereo.tracking.store_template import seed_new_store

DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "mlruns"
#: the experiment tag MLflow 3's UI reads to pick a view; ``custom_model_development`` ("Machine learning")
#: opens the training view (runs table, charts, compare); without it the UI guesses, and an experiment
#: without traces may open the GenAI view (traces, judges, prompts)
EXPERIMENT_KIND_TAG, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"
_SQLITE = "sqlite:///"


def default_tracking_uri(results_dir: str | os.PathLike) -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else ``sqlite:////<abs results_dir>/mlflow.db``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return _SQLITE + str(Path(results_dir).expanduser().resolve() / DB_NAME)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for a server); opening it would create it."""
    return Path(uri[len(_SQLITE):]) if uri.startswith(_SQLITE) else None


def check_tracking_uri(uri: str) -> str:
    """Reject URIs that silently misbehave: relative SQLite paths, the file store, bare paths."""
    if not uri or not isinstance(uri, str):
        raise ValueError(f"tracking URI must be a non-empty string, got {uri!r}; "
                         "e.g. sqlite:////abs/results/mlflow.db or http://127.0.0.1:5000")
    db = sqlite_path(uri)
    if db is not None and not db.is_absolute():
        raise ValueError(f"tracking URI {uri!r} is relative; workers that change directory would each create "
                         f"their own DB. Use an absolute one: sqlite:///{Path(db).resolve()}")
    if uri.startswith("sqlite:") and db is None:
        raise ValueError(f"tracking URI {uri!r} is not a file-backed SQLite URI; use sqlite:////abs/path/mlflow.db")
    if uri.startswith("file:") or ("://" not in uri and not uri.startswith("databricks")):
        raise ValueError(f"tracking URI {uri!r} selects MLflow's file store, which MLflow 3 refuses; "
                         "use sqlite:////abs/path/mlflow.db (default_tracking_uri(results_dir) builds one)")
    return uri


def artifact_root(uri: str) -> Path | None:
    """``<db dir>/mlruns`` for a SQLite URI (artifacts next to the DB); None for a server (it decides)."""
    db = sqlite_path(uri)
    return db.parent / ARTIFACTS_DIR if db is not None else None


def _experiment_location(root: Path | None, name: str) -> str | None:
    if root is None:
        return None
    safe = re.sub(r"[^\w.-]+", "_", name).strip("._") or "experiment"
    return (root / safe).as_uri()


#: MLflow loggers whose INFO lines describe store creation/migration: kept at WARNING so that a
#: `depth_net` or `automl` console never shows them (alembic's own logger as well)
QUIET_LOGGERS = ("mlflow.store", "mlflow.tracking", "mlflow.system_metrics", "alembic")
_READY: set[str] = set()  # SQLite URIs whose schema this process has opened under the lock
_READY_GUARD = threading.Lock()


def quiet_mlflow_logs() -> None:
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)


@contextlib.contextmanager
def _store_lock(db: Path) -> Iterator[None]:
    """Exclusive lock on ``<db>.lock``: only one process at a time may create or migrate the schema."""
    lock = db.with_name(db.name + ".lock")
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _open_store(uri: str):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    client.search_experiments(max_results=1)  # opening the store creates or migrates its schema
    return client


def _client(uri: str):
    from mlflow import MlflowClient  # lazy: ~1.5 s import, and only this module may import mlflow

    quiet_mlflow_logs()
    db = sqlite_path(uri)
    if db is None:
        return MlflowClient(tracking_uri=uri)
    db.parent.mkdir(parents=True, exist_ok=True)
    with _READY_GUARD:
        if uri in _READY:
            return MlflowClient(tracking_uri=uri)
        with _store_lock(db):
            seed_new_store(db, _open_store)  # a new store: a copy of the migrated template (store_template.py)
            client = _open_store(uri)  # creates/migrates the schema now if there was no template
        _READY.add(uri)
        return client


def _get_or_create_experiment(client, uri: str, name: str) -> str:
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name, artifact_location=_experiment_location(artifact_root(uri), name),
                                            tags={EXPERIMENT_KIND_TAG: TRAINING_KIND})
        except MlflowException:
            exp = client.get_experiment_by_name(name)  # another process created it first
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        raise ValueError(f"MLflow experiment {name!r} is deleted in {uri}; restore it "
                         f"(`mlflow experiments restore --experiment-id {exp.experiment_id}`) or use another name")
    if EXPERIMENT_KIND_TAG not in exp.tags:  # a store made before we set it; a kind chosen in the UI stays
        client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, TRAINING_KIND)
    return exp.experiment_id


def ensure_experiment(uri: str, name: str) -> str:
    """Create the DB schema and the experiment if needed; returns its id.

    Call it once in the parent process before workers log, so they never migrate a fresh DB concurrently.
    """
    check_tracking_uri(uri)
    return _get_or_create_experiment(_client(uri), uri, name)


def _quote(value: str) -> str:
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ValueError(f"cannot search for tag value {value!r}: it contains both quote characters")


class MlflowTracker(Tracker):
    """Logs to an MLflow tracking store through ``MlflowClient``; picklable (the client is rebuilt)."""

    def __init__(self, tracking_uri: str):
        self.tracking_uri = check_tracking_uri(tracking_uri)
        self._client_obj = None
        self._experiment_ids: dict[str, str] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"tracking_uri": self.tracking_uri, "_client_obj": None, "_experiment_ids": {}}

    @property
    def client(self):
        if self._client_obj is None:
            self._client_obj = _client(self.tracking_uri)
        return self._client_obj

    def experiment_id(self, name: str) -> str:
        if name not in self._experiment_ids:
            self._experiment_ids[name] = _get_or_create_experiment(self.client, self.tracking_uri, name)
        return self._experiment_ids[name]

    def start_run(self, name, *, experiment, tags=None, parent_run_id=None) -> RunHandle:
        if not experiment:
            raise ValueError("experiment name must be non-empty, e.g. 'depth_net'")
        exp_id = self.experiment_id(experiment)
        run_tags = {k: str(v) for k, v in (tags or {}).items()}
        if parent_run_id is not None:
            run_tags[PARENT_RUN_TAG] = parent_run_id
        run = self.client.create_run(exp_id, run_name=name, tags=run_tags)
        return RunHandle(run.info.run_id, exp_id, name, parent_run_id)

    def _log_param_batch(self, run, params) -> None:
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException

        try:
            self.client.log_batch(run.run_id, params=[Param(k, v) for k, v in params.items()])
        except MlflowException as exc:  # same error type as MemoryTracker: params are immutable
            raise ValueError(f"MLflow refused params of run {run.run_id}: {exc.message} "
                             "(params are immutable; log a metric or tag instead)") from exc

    def _log_metric_batch(self, run, metrics, step) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(run.run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])

    def _set_tag_batch(self, run, tags) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(run.run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def log_artifact(self, run, path, artifact_path=None) -> None:
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"artifact {str(p)!r} does not exist; write it before logging it")
        if p.is_dir():  # keep the directory's own name, like a file keeps its basename
            sub = f"{artifact_path}/{p.name}" if artifact_path else p.name
            self.client.log_artifacts(run.run_id, str(p), sub)
        else:
            self.client.log_artifact(run.run_id, str(p), artifact_path)

    def set_experiment_tags(self, experiment, tags) -> None:
        exp_id = self.experiment_id(experiment)
        for k, v in tags.items():
            self.client.set_experiment_tag(exp_id, k, str(v))

    def log_datasets(self, run, files) -> None:
        from stereo.tracking.mlflow_datasets import log_annotation_inputs

        log_annotation_inputs(self.client, run.run_id, {k: list(v) for k, v in files.items()})

    def log_model(self, run, checkpoint, *, name, step=0, params=None) -> str:
        from stereo.tracking.mlflow_models import log_checkpoint_model

        return log_checkpoint_model(self.client, run.run_id, run.experiment_id or self._run_experiment(run),
                                    checkpoint, name=name, step=step, params=dict(params or {}))

    def register_model(self, model_id: str, name: str, *, tags: Mapping[str, Any] | None = None,
                       description: str | None = None, alias: str | None = None) -> tuple[int, bool]:
        """A new version of the registered model `name` from the logged model `model_id` (and `alias` moved
        onto it); returns (version, created): a model registered there already keeps its version."""
        from stereo.tracking.mlflow_models import register_checkpoint_model

        version, created = register_checkpoint_model(self.client, model_id, name, tags=dict(tags or {}),
                                                     description=description)
        if alias:
            self.client.set_registered_model_alias(name, alias, str(version))
        return version, created

    def system_metrics(self, run):
        from stereo.tracking.mlflow_system import monitored

        return monitored(run.run_id, self.tracking_uri)

    def _run_experiment(self, run) -> str:
        return self.client.get_run(run.run_id).info.experiment_id

    def _terminate(self, run, status) -> None:
        self.client.set_terminated(run.run_id, status)

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run `run_id`, or None when the store has no such run."""
        from mlflow.exceptions import MlflowException

        try:
            return _record(self.client.get_run(run_id))
        except MlflowException:
            return None

    def find_runs(self, experiment, tags: Mapping[str, str] | None = None, status=None) -> list[RunRecord]:
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            return []
        clauses = [f"tags.`{k}` = {_quote(str(v))}" for k, v in (tags or {}).items()]
        if status is not None:
            clauses.append(f"attributes.status = {_quote(status)}")
        records, token = [], None
        while True:
            page = self.client.search_runs([exp.experiment_id], filter_string=" and ".join(clauses),
                                           order_by=["attributes.start_time DESC"], max_results=1000,
                                           page_token=token)
            records += [_record(r) for r in page]
            token = page.token
            if not token:
                return records


def _record(run) -> RunRecord:
    return RunRecord(run.info.run_id, run.info.experiment_id, run.info.run_name, run.info.status,
                     dict(run.data.params), dict(run.data.metrics), dict(run.data.tags))


def default_tracker(results_dir: str | os.PathLike, tracker: Any = None):
    """`tracker` if given (False: no tracking); else MLflow at `$MLFLOW_TRACKING_URI` or the SQLite store
    `<results_dir>/mlflow.db` (absolute), with the experiment created here, in the launching process,
    before any worker could race on the schema migration."""
    if tracker is False:
        return None
    if tracker is not None:
        return tracker
    Path(results_dir).expanduser().mkdir(parents=True, exist_ok=True)
    uri = default_tracking_uri(Path(results_dir).expanduser().resolve())
    ensure_experiment(uri, "depth_net")
    return MlflowTracker(uri)
