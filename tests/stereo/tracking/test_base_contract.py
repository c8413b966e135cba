"""One behaviour suite that every Tracker implementation must pass (memory and a real MLflow store)."""
from __future__ import annotations

import math
import re

import pytest

from stereo.tracking import PARENT_RUN_TAG, MemoryTracker, MlflowTracker, ensure_experiment


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"
    ensure_experiment(uri, "warmup")  # schema created once for the whole module
    return uri


@pytest.fixture(params=["memory", "mlflow"])
def tracker(request):
    if request.param == "memory":
        return MemoryTracker()
    return MlflowTracker(request.getfixturevalue("mlflow_uri"))


@pytest.fixture
def experiment(request):
    return re.sub(r"\W+", "_", request.node.name)


def test_params_flattened_truncated_and_batched(tracker, experiment):
    run = tracker.start_run("p", experiment=experiment)
    params = {"big": {f"k{i:03d}": i for i in range(250)}, "long": "x" * 7000, "lst": [1, 2]}
    logged = tracker.log_params(run, params)
    tracker.end_run(run)
    rec = tracker.find_runs(experiment)[0]
    assert rec.params == logged
    assert len(rec.params) == 252 and rec.params["big.k249"] == "249" and rec.params["lst"] == "[1, 2]"
    assert len(rec.params["long"]) == 6000 and rec.params["long"].endswith("...")


def test_params_are_immutable(tracker, experiment):
    run = tracker.start_run("p", experiment=experiment)
    tracker.log_params(run, {"lr": 1e-4})
    tracker.log_params(run, {"lr": 1e-4})  # same value is fine
    with pytest.raises(ValueError, match="lr"):
        tracker.log_params(run, {"lr": 2e-4})


def test_metrics_by_step_latest_wins_and_nan_kept(tracker, experiment):
    run = tracker.start_run("m", experiment=experiment)
    tracker.log_metrics(run, {"val/epe": 3.0, "train_loss": 1.0}, step=0)
    tracker.log_metrics(run, {"val/epe": 2.0, "bad": math.nan}, step=1)
    tracker.end_run(run)
    rec = tracker.find_runs(experiment)[0]
    assert rec.metrics["val/epe"] == 2.0 and rec.metrics["train_loss"] == 1.0
    assert math.isnan(rec.metrics["bad"])


def test_metric_must_be_a_number(tracker, experiment):
    run = tracker.start_run("m", experiment=experiment)
    with pytest.raises(TypeError, match="val/epe"):
        tracker.log_metrics(run, {"val/epe": "low"})
    with pytest.raises(ValueError, match="key"):
        tracker.log_metrics(run, {"val//epe": 1.0})


def test_find_runs_by_tags_status_and_parent(tracker, experiment):
    parent = tracker.start_run("sweep", experiment=experiment, tags={"kind": "sweep"})
    a = tracker.start_run("t0", experiment=experiment, parent_run_id=parent.run_id, tags={"ckpt": "abc"})
    b = tracker.start_run("t1", experiment=experiment, parent_run_id=parent.run_id, tags={"ckpt": "def"})
    tracker.set_tags(b, {"ckpt_sha": "d" * 64})
    tracker.end_run(a, "FINISHED")
    tracker.end_run(b, "FAILED")
    assert [r.run_id for r in tracker.find_runs(experiment, {"ckpt": "abc"})] == [a.run_id]
    children = tracker.find_runs(experiment, {PARENT_RUN_TAG: parent.run_id})
    assert {r.name for r in children} == {"t0", "t1"}
    assert all(r.parent_run_id == parent.run_id for r in children)
    assert [r.run_id for r in tracker.find_runs(experiment, status="RUNNING")] == [parent.run_id]
    assert tracker.find_runs(experiment, {"ckpt_sha": "d" * 64})[0].status == "FAILED"
    assert tracker.find_runs("no_such_experiment") == []


def test_context_manager_sets_final_status(tracker, experiment):
    with tracker.run("ok", experiment=experiment):
        pass
    with pytest.raises(RuntimeError), tracker.run("bad", experiment=experiment):
        raise RuntimeError("boom")
    statuses = {r.name: r.status for r in tracker.find_runs(experiment)}
    assert statuses == {"ok": "FINISHED", "bad": "FAILED"}
    with pytest.raises(ValueError, match="DONE"):
        tracker.end_run(tracker.start_run("x", experiment=experiment), "DONE")


def test_missing_artifact_raises(tracker, experiment, tmp_path):
    run = tracker.start_run("a", experiment=experiment)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        tracker.log_artifact(run, str(tmp_path / "missing.txt"))


def test_datasets_and_models_refuse_missing_files_alike(tracker, experiment, tmp_path):
    run = tracker.start_run("r", experiment=experiment)
    ann = tmp_path / "train.txt"
    ann.write_text("l.png r.png d.pfm\n")
    tracker.log_datasets(run, {"train": [str(ann)]})  # accepted by both
    with pytest.raises(FileNotFoundError):
        tracker.log_datasets(run, {"val": [str(tmp_path / "missing.txt")]})
    with pytest.raises(FileNotFoundError):
        tracker.log_model(run, str(tmp_path / "missing.safetensors"), name="r")
    tracker.set_note(run, "# notes")
    assert tracker.find_runs(experiment)[0].tags["mlflow.note.content"] == "# notes"
