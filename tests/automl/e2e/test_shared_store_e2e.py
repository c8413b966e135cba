"""Two sweeps started at the same moment on one new SQLite MLflow store (what `make demo` twice, or two
users of one results folder, do): neither crashes, nothing is lost, and MLflow's store-creation lines
never reach their consoles. The lock itself is tested in
tests/stereo/tracking/test_mlflow_tracker_store_concurrency.py."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[3]


def test_two_sweeps_share_one_new_store(tmp_path, sweep_overrides, spawn):
    store = tmp_path / "shared" / "mlflow.db"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("MLFLOW_TRACKING_URI", None)
    sweeps = []  # `spawn` kills whatever is left of them, whatever happens
    for name in ("a", "b"):
        overrides = sweep_overrides(tmp_path / f"data-{name}")
        sweeps.append(spawn(
            [sys.executable, "-m", "automl.cli", "run", "--skill", "tiny-demo", "--output", str(tmp_path / name),
             "--tracking-uri", f"sqlite:///{store}", "--num-samples", "1", "--scheduler", "none", "--no-probe",
             *overrides], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [proc.communicate(timeout=900) for proc in sweeps]
    for proc, (out, err) in zip(sweeps, outputs):
        assert proc.returncode == 0, out[-2000:] + err[-2000:]
        for bad in ("duplicate column", "already exists", "Creating initial MLflow database", "Updating database"):
            assert bad not in out + err, bad
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    runs = client.search_runs([client.get_experiment_by_name("depth_net").experiment_id])
    parents = [r for r in runs if r.data.tags.get("automl.kind") == "sweep"]
    trials = [r for r in runs if "automl.trial_id" in r.data.tags]
    assert sorted(r.data.tags["automl.run_dir"] for r in parents) == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert len(trials) == 2 and {r.data.tags["mlflow.parentRunId"] for r in trials} == {r.info.run_id for r in parents}
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all("val/epe" in r.data.metrics for r in trials)
