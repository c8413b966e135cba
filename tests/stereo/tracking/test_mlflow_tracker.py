"""MlflowTracker end to end against a real SQLite store, read back with MLflow's own client."""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from stereo.tracking import (
    MlflowTracker,
    artifact_root,
    check_tracking_uri,
    default_tracking_uri,
    ensure_experiment,
)


def test_default_uri_is_absolute_sqlite_in_results_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    uri = default_tracking_uri("results")
    assert uri == f"sqlite:///{tmp_path.resolve()}/results/mlflow.db"
    assert uri.startswith("sqlite:////")
    assert artifact_root(uri) == tmp_path.resolve() / "results" / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert default_tracking_uri("results") == "http://127.0.0.1:5000"
    assert artifact_root("http://127.0.0.1:5000") is None


@pytest.mark.parametrize("uri, match", [("sqlite:///rel/mlflow.db", "relative"), ("file:./mlruns", "file store"),
                                        ("./mlruns", "file store"), ("sqlite://", "SQLite URI")])
def test_bad_uris_raise_with_the_fix(uri, match):
    with pytest.raises(ValueError, match=match):
        check_tracking_uri(uri)


@pytest.mark.slow
def test_parent_and_nested_runs_read_back_with_mlflow_client(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    exp_id = ensure_experiment(uri, "depth_net")  # parent process creates schema + experiment first
    assert ensure_experiment(uri, "depth_net") == exp_id  # idempotent

    tracker = MlflowTracker(uri)
    tracker = pickle.loads(pickle.dumps(tracker))  # what a worker process receives
    parent = tracker.start_run("sweep", experiment="depth_net", tags={"kind": "sweep"})
    spec = {"model": {"model_type": "FoundationStereo"}, "train": {"optim": {"lr": 1e-4}}}
    artifact = tmp_path / "experiment.yaml"
    artifact.write_text("model:\n  model_type: FoundationStereo\n")
    children = []
    for i, status in enumerate(["FINISHED", "FAILED"]):
        run = tracker.start_run(f"trial_{i}", experiment="depth_net", parent_run_id=parent.run_id,
                                tags={"trial": str(i)})
        tracker.log_params(run, spec)
        for step, epe in enumerate([3.0 - i, 2.0 - i]):
            tracker.log_metrics(run, {"val/epe": epe}, step=step)
        tracker.set_tags(run, {"ckpt_sha256": f"{i}" * 8})
        tracker.log_artifact(run, str(artifact), artifact_path="config")
        tracker.end_run(run, status)
        children.append(run)
    tracker.end_run(parent)

    client = MlflowClient(uri)
    found = client.search_runs([exp_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.run_id}'",
                               order_by=["tags.trial ASC"])
    assert [r.info.run_id for r in found] == [c.run_id for c in children]
    assert [r.info.status for r in found] == ["FINISHED", "FAILED"]
    for i, r in enumerate(found):
        assert r.info.run_name == f"trial_{i}"
        assert r.data.params == {"model.model_type": "FoundationStereo", "train.optim.lr": "0.0001"}
        assert r.data.metrics["val/epe"] == 2.0 - i
        history = client.get_metric_history(r.info.run_id, "val/epe")
        assert sorted((m.step, m.value) for m in history) == [(0, 3.0 - i), (1, 2.0 - i)]
        assert r.data.tags["ckpt_sha256"] == f"{i}" * 8
        assert [a.path for a in client.list_artifacts(r.info.run_id, "config")] == ["config/experiment.yaml"]
        # artifacts live next to the DB, not in the process's cwd
        assert Path(r.info.artifact_uri.removeprefix("file://")).is_relative_to(tmp_path / "mlruns")
    assert client.get_run(parent.run_id).info.status == "FINISHED"
    assert [r.run_id for r in tracker.find_runs("depth_net", {"ckpt_sha256": "11111111"})] == [children[1].run_id]


@pytest.mark.slow
def test_deleted_experiment_raises_with_restore_hint(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    MlflowClient(uri).delete_experiment(ensure_experiment(uri, "gone"))
    with pytest.raises(ValueError, match="restore"):
        ensure_experiment(uri, "gone")
