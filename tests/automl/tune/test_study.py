"""automl/tune/study.py: the sweep's Optuna study in <run_dir>/study.journal agrees with the ledger, read back
with Optuna's own API; verdicts are told once, a resume never adds a trial twice, a lost file is rebuilt."""
from __future__ import annotations

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from automl.space.build import SearchSpace
from automl.space.param import Param
from automl.tune.backend import DefineByRun
from automl.tune.ledger import Ledger
from automl.tune.study import STUDY_FILE, enqueue_missing, open_study, sync_study, tell_verdict

SPACE = SearchSpace({"lr": Param.real(1e-4, 1e-2, log=True)})


def _load(run_dir):
    """What a user does: Optuna's own API on the file."""
    return optuna.load_study(study_name="automl", storage=JournalStorage(JournalFileBackend(str(run_dir / STUDY_FILE))))


def _asked(study, n):
    """n trials asked as OptunaSearch asks them (define-by-run), still RUNNING."""
    out = []
    for _ in range(n):
        trial = study.ask()
        DefineByRun(SPACE)(trial)
        out.append(trial)
    return out


def _trial(led, index, params, values, verdict=None, **kw):
    tid = f"t{index:04d}"
    led.start_trial(tid, index, params)
    for i, v in enumerate(values, 1):
        led.add_validation(tid, {"iteration": i, "epoch": i, "step": i, "val/epe": v})
    if verdict:
        led.finalize(tid, verdict, **kw)
    return tid


def test_each_verdict_is_told_with_the_ledger_value_state_and_reason(tmp_path):
    led, study = Ledger(tmp_path), open_study(tmp_path)
    t = _asked(study, 3)
    t[0].report(3.0, 1)  # what OptunaSearch reports; the stopping result never reaches it
    _trial(led, 0, t[0].params, [3.0, 2.0, 2.5], "completed")
    _trial(led, 1, t[1].params, [4.0], "stopped")
    _trial(led, 2, t[2].params, [5.0], "failed", error="val/epe=nan, val/loss=nan at epoch 1: diverged")
    for i in range(3):
        assert tell_verdict(study, i, led.trial(f"t{i:04d}"), "val/epe")
    assert not tell_verdict(study, 0, led.trial("t0000"), "val/epe")  # finished means finished
    done, stopped, failed = _load(tmp_path).trials
    assert done.state.name == "COMPLETE" and done.value == 2.0  # the best validation, as the ledger ranks it
    assert done.intermediate_values == {1: 3.0, 2: 2.0, 3: 2.5} and done.params == t[0].params
    assert done.user_attrs == {"trial_id": "t0000", "outcome": "completed"}
    assert stopped.state.name == "PRUNED" and stopped.user_attrs["outcome"] == "stopped"
    assert failed.state.name == "FAIL" and failed.value is None and "diverged" in failed.user_attrs["error"]


def test_a_resume_after_sigkill_tells_what_was_left_running_and_adds_nothing(tmp_path):
    led, study = Ledger(tmp_path), open_study(tmp_path)
    t = _asked(study, 4)  # the driver died with four trials asked: t0003 never started
    _trial(led, 0, t[0].params, [2.0], "completed")
    tell_verdict(study, 0, led.trial("t0000"), "val/epe")
    _trial(led, 1, t[1].params, [3.0], "completed")  # verdict written, the tell lost to the SIGKILL
    _trial(led, 2, t[2].params, [4.0], "stopped", interrupted=True)  # what --resume makes of a cut trial
    for _ in range(2):  # every attempt syncs; a second sync changes nothing
        sync_study(open_study(tmp_path), led, "val/epe", DefineByRun(SPACE).distributions)
    trials = _load(tmp_path).trials
    assert [(x.number, x.state.name, x.value) for x in trials] == [
        (0, "COMPLETE", 2.0), (1, "COMPLETE", 3.0), (2, "FAIL", None), (3, "FAIL", None)]
    assert trials[2].user_attrs["outcome"] == "interrupted" and trials[3].user_attrs["outcome"] == "never started"
    assert open_study(tmp_path).ask().number == 4  # the next trial is t0004


def test_a_lost_study_file_is_rebuilt_from_the_ledger_with_the_same_numbers(tmp_path):
    led = Ledger(tmp_path)
    _trial(led, 0, {"lr": 1e-3}, [2.0], "completed")
    _trial(led, 2, {"lr": 2e-3}, [3.0], "failed", error="boom")  # t0001 never reached the ledger
    sync_study(open_study(tmp_path), led, "val/epe", DefineByRun(SPACE).distributions)
    trials = _load(tmp_path).trials
    assert [(x.number, x.state.name) for x in trials] == [(0, "COMPLETE"), (1, "FAIL"), (2, "FAIL")]
    assert trials[0].params == {"lr": 1e-3} and trials[0].value == 2.0 and trials[2].user_attrs["error"] == "boom"


def test_grid_points_already_waiting_are_not_enqueued_again(tmp_path):
    led, study = Ledger(tmp_path), open_study(tmp_path)
    points = [{"lr": 1e-4}, {"lr": 1e-3}, {"lr": 1e-2}]
    assert enqueue_missing(study, points, []) == 3
    trial = study.ask()  # the first point runs and finishes; the attempt ends with two points waiting
    DefineByRun(SPACE)(trial)
    _trial(led, 0, trial.params, [1.0], "completed")
    tell_verdict(study, 0, led.trial("t0000"), "val/epe")
    again = open_study(tmp_path)
    assert enqueue_missing(again, points, [t["params"] for t in led.counted()]) == 2
    assert len(_load(tmp_path).trials) == 3  # the two waiting points were not enqueued a second time
    trial = again.ask()
    DefineByRun(SPACE)(trial)
    assert trial.params["lr"] == pytest.approx(1e-3)
