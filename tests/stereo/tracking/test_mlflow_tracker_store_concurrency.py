"""A new SQLite MLflow store shared by processes started at the same moment (two sweeps, their trials,
`automl ui`): the schema is created once under a file lock, nothing is lost, nothing crashes, and
MLflow's own INFO lines about creating the store never reach the console."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # processes racing on a new MLflow store
REPO = Path(__file__).resolve().parents[3]
WRITER = """
import pathlib, sys, time
import mlflow  # imported before the start signal: the race is on creating the store, not on importing
from stereo.tracking import MlflowTracker, ensure_experiment
uri, go, name = sys.argv[1:4]
deadline = time.time() + 120
while not pathlib.Path(go).exists():
    if time.time() > deadline:
        sys.exit("no start signal")
    time.sleep(0.002)
ensure_experiment(uri, "depth_net")
tracker = MlflowTracker(uri)
run = tracker.start_run(name, experiment="depth_net", tags={"writer": name})
for step in range(20):
    tracker.log_metrics(run, {"val/epe": float(step)}, step=step)
tracker.end_run(run)
"""


def _env():
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def test_processes_creating_one_new_store_at_once_lose_nothing(tmp_path, spawn):
    db = tmp_path / "store" / "mlflow.db"
    uri = f"sqlite:///{db}"
    go = tmp_path / "go"
    # an empty cache: the first writer also makes the migrated template (stereo/tracking/store_template.py)
    env = {**_env(), "STEREO_CACHE_DIR": str(tmp_path / "cache")}
    names, processes = [f"writer{i}" for i in range(4)], []  # `spawn` kills what is left, whatever happens
    for name in names:
        processes.append(spawn([sys.executable, "-c", WRITER, uri, str(go), name], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    go.write_text("go")  # all four open the store that does not exist yet at the same moment
    outputs = [proc.communicate(timeout=300) for proc in processes]
    for proc, (out, err) in zip(processes, outputs):
        assert proc.returncode == 0, err[-2000:]
        assert err.strip() == "" and out.strip() == "", err  # no crash, no MLflow INFO lines either
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("depth_net")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.data.tags["writer"] for r in runs) == names
    for run in runs:
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run.info.run_id, "val/epe")
        assert sorted(m.step for m in history) == list(range(20))
    assert len(list((tmp_path / "cache" / "mlflow-store").glob("mlflow-*.db"))) == 1


def test_first_ever_store_creation_prints_nothing(tmp_path):
    db = tmp_path / "fresh" / "mlflow.db"
    code = ("import sys; from stereo.tracking import ensure_experiment, MlflowTracker; "
            "ensure_experiment(sys.argv[1], 'depth_net'); t = MlflowTracker(sys.argv[1]); "
            "r = t.start_run('one', experiment='depth_net'); t.end_run(r)")
    env = {**_env(), "STEREO_CACHE_DIR": str(tmp_path / "cache")}  # first ever: no template yet either
    done = subprocess.run([sys.executable, "-c", code, f"sqlite:///{db}"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert db.is_file()
    assert done.stderr == "" and done.stdout == ""
