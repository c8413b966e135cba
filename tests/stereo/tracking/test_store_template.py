"""A new SQLite store is a copy of the migrated template (stereo/tracking/store_template.py): it opens in
MLflow like one MLflow made, the Default experiment points into the store's own folder, an existing store
is never touched, and a template that is broken, switched off or unwritable falls back to MLflow's own
creation."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from stereo.tracking import MlflowTracker, ensure_experiment
from stereo.tracking import mlflow_tracker
from stereo.tracking.store_template import cache_dir, seed_new_store


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("STEREO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("STEREO_MLFLOW_TEMPLATE", raising=False)
    return tmp_path / "cache" / "mlflow-store"


def _store(folder: Path) -> tuple[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "mlflow.db"
    return db, f"sqlite:///{db}"


def _log_one(uri: str) -> None:
    ensure_experiment(uri, "depth_net")
    tracker = MlflowTracker(uri)
    run = tracker.start_run("one", experiment="depth_net", tags={"k": "v"})
    tracker.log_metrics(run, {"val/epe": 1.5}, step=3)
    tracker.end_run(run)
    (record,) = tracker.find_runs("depth_net")
    assert record.tags["k"] == "v" and record.metrics["val/epe"] == 1.5


def _default_location(db: Path) -> str:
    with sqlite3.connect(db) as con:
        return con.execute("select artifact_location from experiments where experiment_id = 0").fetchone()[0]


def test_the_first_store_makes_the_template_and_the_next_is_a_copy_that_works(tmp_path, cache):
    first, uri1 = _store(tmp_path / "a")
    _log_one(uri1)
    (template,) = cache.glob("mlflow-*.db")
    with sqlite3.connect(template) as con:  # the template is empty: no run, only MLflow's Default experiment
        assert con.execute("select count(*) from runs").fetchone() == (0,)
        assert con.execute("select name from experiments").fetchall() == [("Default",)]
    second, uri2 = _store(tmp_path / "b")
    _log_one(uri2)
    assert _default_location(second) == str(second.parent / "mlruns" / "0")
    assert _default_location(first) == str(first.parent / "mlruns" / "0")
    assert not list(second.parent.glob(".mlflow.db.*.tmp"))  # the copy was renamed into place


def test_an_existing_store_is_never_replaced(tmp_path, cache):
    db, uri = _store(tmp_path / "s")
    _log_one(uri)
    assert seed_new_store(db, mlflow_tracker._open_store) is False
    assert len(MlflowTracker(uri).find_runs("depth_net")) == 1


def test_a_broken_template_is_made_again(tmp_path, cache):
    _log_one(_store(tmp_path / "a")[1])
    (template,) = cache.glob("mlflow-*.db")
    template.write_bytes(b"not a database")
    db, uri = _store(tmp_path / "b")
    assert seed_new_store(db, mlflow_tracker._open_store) is True
    _log_one(uri)
    with sqlite3.connect(template) as con:
        assert con.execute("select count(*) from runs").fetchone() == (0,)


def test_switched_off_or_unwritable_cache_falls_back_to_mlflow(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("STEREO_MLFLOW_TEMPLATE", "0")
    _log_one(_store(tmp_path / "off")[1])
    assert not cache.exists()
    monkeypatch.delenv("STEREO_MLFLOW_TEMPLATE")
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("STEREO_CACHE_DIR", str(blocker))
    db, uri = _store(tmp_path / "unwritable")
    assert seed_new_store(db, mlflow_tracker._open_store) is False and not db.exists()
    _log_one(uri)


def test_the_cache_defaults_under_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.delenv("STEREO_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "stereo-automl" / "mlflow-store"
