"""Done-when of the sweep's records: one real sweep (tiny model, 8 trials, 2 at a time, TPE + ASHA, MLflow)
run by the user's command, then every record read back and required to agree, trial by trial: each
trial's status.json, its MLflow run (status, automl.outcome, best/val/epe, best/step, the checkpoint
artifact), the ledger, results.json and leaderboard.txt. No finished trial says FAILURE, every completed
or early-stopped trial's checkpoints load, and no metric point is logged twice.

One module-scoped sweep (one Ray start, ~1-2 min on 2 cores) feeds every assertion.
"""
import json
import os
import subprocess
import sys

import pytest

from automl.tune.ledger import Ledger

SAMPLES, EPOCHS = 8, 3


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, sweep_overrides):
    from stereo.tracking import MlflowTracker, default_tracking_uri

    root = tmp_path_factory.mktemp("records")
    run = root / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "AUTOML_TRIAL_CALLBACKS")}
    out = subprocess.run(
        [sys.executable, "-m", "automl.cli", "run", "--skill", "tiny-demo", "--output", str(run),
         "--num-samples", str(SAMPLES), "--max-concurrent", "2", "--scheduler", "asha",
         *sweep_overrides(root, epochs=EPOCHS)], env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    tracker = MlflowTracker(default_tracking_uri(run))
    runs = tracker.find_runs("depth_net")
    parent = next(r for r in runs if r.tags.get("automl.kind") == "sweep")
    children = {r.tags["automl.trial_id"]: r for r in runs if r.parent_run_id == parent.run_id}
    return {"run": run, "out": out.stdout, "ledger": Ledger(run), "tracker": tracker, "parent": parent,
            "children": children, "results": json.loads((run / "results.json").read_text()),
            "board": (run / "leaderboard.txt").read_text()}


def _status(run, tid):
    lines = (run / "trials" / tid / "train" / "status.json").read_text().splitlines()
    return json.loads(lines[-1])


def test_every_trial_finished_and_asha_stopped_some(sweep):
    trials = sweep["ledger"].trials()
    assert len(trials) == SAMPLES and {t["status"] for t in trials} <= {"completed", "stopped"}
    assert any(t["status"] == "stopped" for t in trials) and any(t["status"] == "completed" for t in trials)
    for t in trials:
        assert t["epochs"] == (EPOCHS if t["status"] == "completed" else t["epochs"]) and t["epochs"] >= 1


def test_no_finished_trial_says_failure_in_its_status_json(sweep):
    for t in sweep["ledger"].trials():
        status = _status(sweep["run"], t["trial_id"])
        assert status["status"] == "SUCCESS", (t["trial_id"], status)
        n = t["epochs"]
        if t["status"] == "stopped":
            assert f"stopped early by asha after {n} validation{'s' if n != 1 else ''}," in status["message"]
        else:
            assert status["message"].startswith("Training finished at step")
        assert status["kpi"]["val/epe"] == pytest.approx(t["metric"])  # the best validation, as ranked


def test_leaderboard_results_json_and_mlflow_agree_on_every_trial(sweep):
    history = {h["trial_id"]: h for h in sweep["results"]["history"]}
    board = {line.split()[1]: line.split() for line in sweep["board"].splitlines()[4:] if line.strip()}
    for t in sweep["ledger"].trials():
        tid, run = t["trial_id"], sweep["children"][t["trial_id"]]
        row = history[tid]
        assert row["status"] == t["status"] and row["metric"] == pytest.approx(t["metric"])
        assert row["run_id"] == run.run_id
        assert board[tid][2] == t["status"] and float(board[tid][3]) == pytest.approx(t["metric"], rel=1e-3)
        assert run.status == "FINISHED" and run.tags["automl.outcome"] == t["status"], (tid, run.status, run.tags)
        assert run.metrics["best/val/epe"] == pytest.approx(t["metric"]) and run.metrics["best/step"] == t["best_step"]
        assert run.tags["automl.checkpoint"] == t["checkpoint"]
    best = sweep["results"]["best"]
    assert sweep["parent"].metrics["best/val/epe"] == pytest.approx(best["metric"])
    assert sweep["parent"].tags["sweep.best_trial_id"] == best["trial_id"]


def test_every_completed_or_stopped_trial_checkpoint_loads(sweep):
    from stereo.checkpoints import read_checkpoint

    for t in sweep["ledger"].trials():
        train = sweep["run"] / "trials" / t["trial_id"] / "train"
        best = read_checkpoint(t["checkpoint"])
        assert best.meta["meta"]["metrics"]["val/epe"] == pytest.approx(t["metric"])
        latest = read_checkpoint(str(train / "dn_model_latest.safetensors")).meta["meta"]
        assert latest["step"] == t["history"][-1]["step"]  # the epoch of the stop (or the last) was written


def test_each_trial_run_carries_its_best_checkpoint_as_an_artifact_that_loads(sweep, tmp_path):
    from stereo.checkpoints import read_checkpoint

    t = sweep["ledger"].trial(sweep["results"]["best"]["trial_id"])
    run_id = sweep["children"][t["trial_id"]].run_id
    files = [f.path for f in sweep["tracker"].client.list_artifacts(run_id, "checkpoints")]
    weights = next(f for f in files if f.endswith(".safetensors"))
    local = sweep["tracker"].client.download_artifacts(run_id, "checkpoints", str(tmp_path))
    ckpt = read_checkpoint(os.path.join(local, os.path.basename(weights)))
    assert ckpt.meta["meta"]["metrics"]["val/epe"] == pytest.approx(t["metric"])


def test_no_metric_point_is_logged_twice(sweep):
    client = sweep["tracker"].client
    for run in [sweep["parent"], *sweep["children"].values()]:
        for key in run.metrics:
            points = [(m.step, m.value) for m in client.get_metric_history(run.run_id, key)]
            steps = [s for s, _ in points]
            assert len(steps) == len(set(steps)), (run.tags.get("automl.trial_id", "parent"), key, points)


def test_the_console_shows_progress_and_where_the_results_are(sweep):
    out, run = sweep["out"], sweep["run"]
    lines = [line for line in out.splitlines() if line.startswith("progress: ")]
    assert len(lines) >= SAMPLES and f"progress: {SAMPLES} of {SAMPLES} trials done" in lines[-1]
    assert "best val/epe" in lines[-1] and "elapsed" in lines[-1] and "ETA" in lines[-1]
    assert f"report:          {run / 'report.html'}" in out and f"best spec:       {run / 'best_spec.yaml'}" in out
    assert f"best checkpoint: {run / 'best_checkpoint.safetensors'}" in out
    ui = next(line for line in out.splitlines() if line.startswith("MLflow UI:"))
    assert ui.endswith(f"ui --store {run}")
