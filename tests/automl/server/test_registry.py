"""automl promote's refusals, each one line and exit 2 before anything is registered (the registration
itself, through a real server and its REST API: tests/automl/e2e/test_cluster.py)."""
from __future__ import annotations

import json

import pytest

from automl.server.registry import PromoteError, main, promote
from stereo.tracking import MlflowTracker


def test_a_folder_that_is_not_a_sweep_is_refused(tmp_path):
    with pytest.raises(PromoteError, match="not a finished sweep folder"):
        promote(str(tmp_path), "m")


def test_a_sweep_without_a_best_trial_is_refused(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"best": None}))
    (tmp_path / "launch.json").write_text(json.dumps({"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"}))
    with pytest.raises(PromoteError, match="no best trial"):
        promote(str(tmp_path), "m")


def test_a_run_id_needs_a_store(monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["0123abcd", "--name", "m"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--tracking-uri" in err[0]


def test_a_run_without_a_logged_model_and_an_unknown_run_are_refused(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = MlflowTracker(uri)
    run = tracker.start_run("evaluate", experiment="depth_net")
    tracker.end_run(run)
    with pytest.raises(PromoteError, match="logged no model"):
        promote(run.run_id, "m", tracking_uri=uri)
    with pytest.raises(PromoteError, match="is not in"):
        promote("f" * 32, "m", tracking_uri=uri)
    with pytest.raises(PromoteError, match="without '/'"):
        promote(run.run_id, "a/b", tracking_uri=uri)
