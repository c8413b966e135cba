"""Resume after SIGINT and SIGTERM of the driver process alone (not its process group): each
interruption prints the resume command and reports the sweep incomplete; `automl run --resume` then
finishes without re-running finished trials, without duplicate MLflow runs and without a trial twice
in the Optuna study. The run folder is deeper than a unix socket path may be (Ray keeps its own files
elsewhere).

One module-scoped sweep: started, SIGINT, resumed, SIGTERM, resumed to the end (three Ray starts).
"""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from automl.tune.ledger import Ledger

SAMPLES = 8  # enough that each interruption leaves trials to run (2 run at a time, trials are short)


def _cli(*args):
    return [sys.executable, "-m", "automl.cli", "run", *args]


def _interrupt(cmd, env, log, run, sig, ready):
    """Run `cmd` until `ready(ledger)`, send `sig` to the driver only, wait for it to exit."""
    ledger = Ledger(run)
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.time() + 400
            while time.time() < deadline and not ready(ledger):
                assert proc.poll() is None, log.read_text()[-3000:]
                time.sleep(0.2)
            assert ready(ledger), log.read_text()[-3000:]
            proc.send_signal(sig)  # the driver alone: Ray's and the trials' processes are not signalled
            code = proc.wait(timeout=180)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return {"code": code, "log": log.read_text(), "state": ledger.sweep()["state"],
            "leaderboard": (run / "leaderboard.txt").read_text(),
            "finished": {t["trial_id"]: t for t in ledger.counted()}}


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, sweep_overrides):
    root = tmp_path_factory.mktemp("signals")
    overrides = sweep_overrides(root, epochs=2)
    run = root / ("deep-" * 12) / "run"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    first = _interrupt(_cli("--skill", "tiny-demo", "--output", str(run), "--num-samples", str(SAMPLES),
                            "--max-concurrent", "2", "--scheduler", "none",
                            *overrides), env, root / "first.log", run, signal.SIGINT,
                        lambda ledger: len(ledger.counted()) >= 1)
    known = {t["trial_id"] for t in Ledger(run).trials()}
    second = _interrupt(_cli("--resume", str(run)), env, root / "second.log", run, signal.SIGTERM,
                        lambda ledger: any(t["status"] != "running" for t in ledger.trials()
                                           if t["trial_id"] not in known))  # a trial of this attempt ended
    last = subprocess.run(_cli("--resume", str(run)), env=env, capture_output=True, text=True, timeout=600)
    return {"run": run, "first": first, "second": second, "last": last, "ledger": Ledger(run)}


@pytest.mark.parametrize("stage", ["first", "second"])
def test_an_interrupted_driver_prints_the_resume_command_and_reports_incomplete(resumed, stage):
    out = resumed[stage]
    assert out["code"] == 130, out["log"][-3000:]  # the CLI's "interrupted" exit code
    assert re.search(rf"Resume with: (\S*automl|\S+ -m automl\.cli) run --resume {re.escape(str(resumed['run']))}",
                     out["log"]), out["log"]
    assert "sweep INCOMPLETE" in out["log"] and out["state"] == "interrupted"
    assert out["leaderboard"].startswith("Sweep INCOMPLETE") and "Sweep complete" not in out["log"]


def test_the_last_resume_completes_the_budget(resumed):
    last = resumed["last"]
    assert last.returncode == 0, last.stdout[-3000:] + last.stderr[-3000:]
    assert "Sweep complete" in last.stdout and resumed["ledger"].sweep()["state"] == "completed"
    assert len(resumed["ledger"].counted()) == SAMPLES and resumed["ledger"].sweep()["attempts"] == 3


def test_finished_trials_were_never_rerun(resumed):
    after = {t["trial_id"]: t for t in resumed["ledger"].trials()}
    for stage in ("first", "second"):
        for tid, t in resumed[stage]["finished"].items():
            assert after[tid]["run_id"] == t["run_id"] and after[tid]["history"] == t["history"], tid
    assert set(resumed["first"]["finished"]) < set(resumed["second"]["finished"]) < set(after)


def test_no_duplicate_or_live_mlflow_runs(resumed):
    from stereo.tracking import MlflowTracker, default_tracking_uri

    runs = MlflowTracker(default_tracking_uri(resumed["run"])).find_runs("depth_net")
    children = [r for r in runs if r.tags.get("automl.kind") != "sweep"]
    per_trial = {}
    for r in children:
        per_trial.setdefault(r.tags["automl.trial_id"], []).append(r)
    assert all(len(v) == 1 for v in per_trial.values()), {k: len(v) for k, v in per_trial.items()}
    assert not [r for r in runs if r.status == "RUNNING"]
    for t in resumed["ledger"].trials():
        if t["run_id"]:
            run = per_trial[t["trial_id"]][0]
            assert run.run_id == t["run_id"]
            assert run.status == ("KILLED" if t["interrupted"] else "FINISHED"), t["trial_id"]
    parents = [r for r in runs if r.tags.get("automl.kind") == "sweep"]
    assert len(parents) == 1 and parents[0].status == "FINISHED"


def test_the_optuna_study_has_every_trial_once_with_its_verdict(resumed):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(resumed["run"] / "study.journal")))
    trials = optuna.load_study(study_name="automl", storage=storage).trials
    ledger = {t["index"]: t for t in resumed["ledger"].trials()}
    assert [t.number for t in trials] == list(range(len(trials))) and set(ledger) <= {t.number for t in trials}
    assert not [t.number for t in trials if t.state.name in ("RUNNING", "WAITING")]
    for trial in trials:
        entry = ledger.get(trial.number)
        if entry is None:  # asked by the searcher, never started before the signal
            assert trial.state.name == "FAIL" and trial.user_attrs["outcome"] == "never started"
        elif entry["interrupted"]:
            assert trial.state.name == "FAIL" and trial.user_attrs["outcome"] == "interrupted"
        else:
            assert trial.state.name == "COMPLETE" and trial.value == pytest.approx(entry["metric"])
            assert trial.params == pytest.approx(entry["params"])
