"""automl/tune/ledger.py: the per-trial durable state that makes resume safe."""
import pytest

from automl.tune.ledger import Ledger, LedgerError, trial_id_for


def _ledger(tmp_path, mode="min"):
    return Ledger(tmp_path, metric="val/epe", mode=mode)


def test_trial_ids_follow_the_optuna_number():
    assert trial_id_for(3) == "t0003" and trial_id_for(12345) == "t12345"


def test_a_running_trial_reports_its_best_validation(tmp_path):
    led = _ledger(tmp_path)
    led.start_trial("t0000", 0, {"train.optim.lr": 1e-3})
    led.update_progress("t0000", run_id="abc")
    for i, epe in enumerate([3.0, 2.0, 2.5], 1):
        led.add_validation("t0000", {"iteration": i, "epoch": i - 1, "step": 4 * i, "val/epe": epe, "val/d1": epe / 10})
    t = led.trial("t0000")
    assert t["status"] == "running" and t["run_id"] == "abc" and t["epochs"] == 3
    assert t["metric"] == 2.0 and t["metrics"] == {"val/epe": 2.0, "val/d1": 0.2}
    assert [u["trial_id"] for u in led.unfinished()] == ["t0000"] and led.counted() == []


def test_mode_max_picks_the_largest(tmp_path):
    led = _ledger(tmp_path, mode="max")
    led.start_trial("t0000", 0, {})
    for i, v in enumerate([0.1, 0.7, 0.3], 1):
        led.add_validation("t0000", {"iteration": i, "val/epe": v})
    assert led.trial("t0000")["metric"] == 0.7


def test_a_failed_trial_is_never_scored(tmp_path):
    led = _ledger(tmp_path)
    led.start_trial("t0001", 1, {"a": 1})
    led.add_validation("t0001", {"iteration": 1, "val/epe": 1.5})
    t = led.finalize("t0001", "failed", error="killed")
    assert t["status"] == "failed" and t["metric"] is None and t["error"] == "killed"
    assert led.counted() == [t]


def test_nan_validations_do_not_score(tmp_path):
    led = _ledger(tmp_path)
    led.start_trial("t0000", 0, {})
    led.add_validation("t0000", {"iteration": 1, "val/epe": float("nan")})
    assert led.trial("t0000")["metric"] is None


def test_the_first_verdict_stands(tmp_path):
    led = _ledger(tmp_path)
    led.start_trial("t0000", 0, {})
    led.finalize("t0000", "completed")
    assert led.finalize("t0000", "failed", error="late")["status"] == "completed"
    assert led.finalize("t0000", "failed", error="x", overwrite=True)["status"] == "failed"


def test_interrupted_trials_do_not_count(tmp_path):
    led = _ledger(tmp_path)
    for i in range(3):
        led.start_trial(trial_id_for(i), i, {"i": i})
    led.finalize("t0000", "completed")
    led.finalize("t0001", "stopped", interrupted=True, error="interrupted")
    assert [t["trial_id"] for t in led.counted()] == ["t0000"]
    assert [t["trial_id"] for t in led.unfinished()] == ["t0002"]
    assert [t["index"] for t in led.trials()] == [0, 1, 2]


def test_a_trial_that_never_started_keeps_its_params(tmp_path):
    led = _ledger(tmp_path)
    t = led.finalize("t0004", "failed", error="actor died", params={"lr": 0.1})
    assert t["params"] == {"lr": 0.1} and t["index"] == 4 and t["epochs"] == 0


def test_a_retry_starts_a_fresh_history(tmp_path):
    led = _ledger(tmp_path)
    led.start_trial("t0000", 0, {})
    led.add_validation("t0000", {"iteration": 1, "val/epe": 1.0})
    led.start_trial("t0000", 0, {}, attempt=2)
    assert led.trial("t0000")["epochs"] == 0 and led.trial("t0000")["attempt"] == 2


def test_sweep_state_is_checked(tmp_path):
    led = _ledger(tmp_path)
    assert led.update_sweep(state="running", attempts=1)["attempts"] == 1
    with pytest.raises(LedgerError, match="sweep state 'done'"):
        led.update_sweep(state="done")
    with pytest.raises(LedgerError, match="final status"):
        led.finalize("t0000", "running")


def test_a_corrupt_file_names_itself(tmp_path):
    led = _ledger(tmp_path)
    led.start_trial("t0000", 0, {})
    (tmp_path / "ledger" / "trials" / "t0000.progress.json").write_text("{")
    with pytest.raises(LedgerError, match="t0000.progress.json: not valid JSON"):
        led.trial("t0000")


def test_the_metric_is_found_in_either_namespace(tmp_path):
    from automl.tune.ledger import metric_value

    assert metric_value({"val/epe": 2.0}, "epe") == 2.0 and metric_value({"epe": 3.0}, "val/epe") == 3.0
    assert metric_value({"val/epe": float("nan")}, "epe") is None and metric_value({"val/d1": 1.0}, "epe") is None
    led = Ledger(tmp_path, metric="epe", mode="max")
    led.start_trial("t0000", 0, {"lr": 1e-3})
    for i, v in enumerate([2.0, 3.0, 1.0], 1):
        led.add_validation("t0000", {"iteration": i, "val/epe": v})
    assert led.trial("t0000")["metric"] == 3.0 and led.trial("t0000")["metrics"] == {"val/epe": 3.0}


def test_a_retry_keeps_the_earlier_run_ids_and_a_verdict_may_name_the_checkpoint(tmp_path):
    led = Ledger(tmp_path)
    led.start_trial("t0000", 0, {"lr": 1e-3})
    led.update_progress("t0000", run_id="run-a")
    led.start_trial("t0000", 0, {"lr": 1e-3}, attempt=2)
    led.update_progress("t0000", run_id="run-b")
    led.start_trial("t0000", 0, {"lr": 1e-3}, attempt=3)
    assert led.trial("t0000")["earlier_run_ids"] == ["run-a", "run-b"] and led.trial("t0000")["attempt"] == 3
    led.finalize("t0000", "completed", checkpoint="/found/on/disk.safetensors")
    assert led.trial("t0000")["checkpoint"] == "/found/on/disk.safetensors"
    led.update_progress("t0000", checkpoint="/own/record.safetensors")
    assert led.trial("t0000")["checkpoint"] == "/own/record.safetensors"  # the trial's own record wins


def test_elapsed_time_is_booked_in_the_sweep_file(tmp_path):
    led = Ledger(tmp_path)
    assert led.elapsed() == 0.0
    led.update_sweep(state="running", elapsed_s=12.5)
    assert Ledger(tmp_path).elapsed() == 12.5
