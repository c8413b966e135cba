"""Trial failures inside a real sweep (Ray Tune + Optuna + MLflow), with one Ray retry each
(`--max-failures 1`): t0000 raises on every attempt, t0001 reports NaN on every attempt, t0002 is
SIGKILLed on its first attempt only and its retry succeeds (faults from tests/automl/trial_faults.py,
installed through AUTOML_TRIAL_CALLBACKS). Also `--metric epe` (the deploy name of `val/epe`), a run
folder deeper than a unix socket path may be (Ray's files are not there), Ray's session under
RAY_TMPDIR, and the Optuna study file read back with Optuna's own API.

One module-scoped sweep (one Ray start) feeds every assertion.
"""
import json
import os
import subprocess
import sys

import pytest

from automl.tune.ledger import Ledger


@pytest.fixture(scope="module")
def failing(tmp_path_factory, sweep_overrides, trial_faults, ray_tmpdir):
    root = tmp_path_factory.mktemp("failures")
    overrides = sweep_overrides(root)
    run = root / ("deep-" * 12) / "run"
    env = trial_faults.env("0=raise,1=nan,2=kill@1", {**{k: v for k, v in os.environ.items()
                                                         if k != "MLFLOW_TRACKING_URI"}, "RAY_TMPDIR": str(ray_tmpdir)})
    out = subprocess.run(
        [sys.executable, "-m", "automl.cli", "run", "--skill", "tiny-demo", "--output", str(run),
         "--num-samples", "3", "--max-concurrent", "2", "--scheduler", "none", "--metric", "epe",
         "--max-failures", "1", *overrides], env=env, capture_output=True, text=True, timeout=600)
    from stereo.tracking import MlflowTracker, default_tracking_uri

    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    runs = MlflowTracker(default_tracking_uri(run)).find_runs("depth_net")
    return {"run": run, "out": out, "ledger": Ledger(run, metric="epe"), "runs": runs, "ray_tmpdir": ray_tmpdir,
            "results": json.loads((run / "results.json").read_text())}


def _runs_of(failing, tid):
    return sorted((r for r in failing["runs"] if r.tags.get("automl.trial_id") == tid),
                  key=lambda r: int(r.tags["automl.attempt"]))


def test_the_sweep_goes_on_and_completes(failing):
    assert "Sweep complete: 1 completed, 0 early-stopped, 2 failed" in failing["out"].stdout
    assert [t["status"] for t in failing["ledger"].trials()] == ["failed", "failed", "completed"]


def test_a_trial_that_raises_is_failed_with_its_reason_after_its_retry(failing):
    t = failing["ledger"].trial("t0000")
    assert t["metric"] is None and t["attempt"] == 2 and t["error"].startswith("RuntimeError: injected fault")
    assert "trial t0000 attempt 1 failed (RuntimeError: injected fault" in failing["out"].stdout  # the retry is told


def test_a_nan_metric_is_failed_and_says_nan(failing):
    t = failing["ledger"].trial("t0001")
    assert t["metric"] is None and t["error"].startswith("val/epe=nan, ") and "diverged" in t["error"]
    row = next(h for h in failing["results"]["history"] if h["trial_id"] == "t0001")
    assert row["metric"] is None and row["status"] == "failed"  # never scored, never 0


def test_a_killed_trial_is_retried_and_scored(failing):
    t = failing["ledger"].trial("t0002")
    assert t["status"] == "completed" and t["attempt"] == 2 and t["metric"] is not None
    assert len(t["earlier_run_ids"]) == 1 and failing["results"]["best"]["trial_id"] == "t0002"
    assert t["metric"] == pytest.approx(t["history"][-1]["val/epe"])  # --metric epe is val/epe


def test_every_attempt_has_one_run_and_none_is_left_running(failing):
    assert not [r for r in failing["runs"] if r.status == "RUNNING"]
    first, second = _runs_of(failing, "t0002")
    assert first.status == "FAILED" and first.tags["automl.status"] == "retried"
    assert second.status == "FINISHED" and second.tags["automl.status"] == "completed"
    assert second.run_id == failing["ledger"].trial("t0002")["run_id"]
    for tid in ("t0000", "t0001"):
        runs = _runs_of(failing, tid)
        assert [r.status for r in runs] == ["FAILED", "FAILED"] and runs[-1].tags["automl.status"] == "failed"
        assert "automl.error" in runs[-1].tags


def test_the_report_lists_one_row_per_trial_with_the_reason(failing):
    history = failing["results"]["history"]
    assert [h["trial_id"] for h in history] == ["t0000", "t0001", "t0002"]
    board = (failing["run"] / "leaderboard.txt").read_text()
    assert "injected fault" in board and "nan" in board


def test_ray_kept_its_session_under_ray_tmpdir_and_nothing_in_the_deep_run_folder(failing):
    assert len(str(failing["run"])) > 107 - 60  # deeper than Ray's socket paths allow under it
    assert any((failing["ray_tmpdir"] / "ray").glob("session_2*")), list(failing["ray_tmpdir"].rglob("*"))[:5]
    assert not (failing["run"] / "ray").exists()


def test_the_optuna_study_says_what_the_ledger_says(failing):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(failing["run"] / "study.journal")))
    trials = optuna.load_study(study_name="automl", storage=storage).trials
    assert [t.state.name for t in trials] == ["FAIL", "FAIL", "COMPLETE"]  # one trial per number, retries included
    for trial in trials:
        entry = failing["ledger"].trial(trial.user_attrs["trial_id"])
        assert trial.number == entry["index"] and trial.params == pytest.approx(entry["params"])
        assert trial.value == (None if entry["status"] == "failed" else pytest.approx(entry["metric"]))
    assert trials[0].user_attrs["error"].startswith("RuntimeError: injected fault")
    assert trials[1].user_attrs["error"].startswith("val/epe=nan, ")


def test_every_failed_trial_status_json_ends_failure_and_the_retried_one_success(failing):
    from stereo.actions.status import read_status

    for tid, want in (("t0000", "FAILURE"), ("t0001", "FAILURE"), ("t0002", "SUCCESS")):
        last = read_status(failing["run"] / "trials" / tid / "train")[-1]
        assert last["status"] == want, (tid, last)
    assert "nan" in read_status(failing["run"] / "trials" / "t0001" / "train")[-1]["message"]
