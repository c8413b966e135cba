"""automl/tune/events.py without Ray: the progress line, the outcome tags and the reconciliation of a trial's
MLflow runs with its verdict (in-memory tracker)."""
import pytest

from automl.tune.ledger import Ledger
from automl.tune.events import OUTCOME_TAG, outcome_of, progress_line, run_tags
from automl.tune.trial_runs import end_trial_runs


def _trial(ledger, tid, index, values, status=None, error=None, **kw):
    ledger.start_trial(tid, index, {"train.optim.lr": 1e-3})
    for i, v in enumerate(values, 1):
        ledger.add_validation(tid, {"iteration": i, "epoch": i - 1, "step": 4 * i, "val/epe": v})
    if status:
        ledger.finalize(tid, status, error=error, **kw)
    return ledger.trial(tid)


def test_progress_line_counts_best_elapsed_and_eta(tmp_path):
    led = Ledger(tmp_path)
    _trial(led, "t0000", 0, [3.0, 2.0], "completed")
    _trial(led, "t0001", 1, [4.0], "stopped")
    _trial(led, "t0002", 2, [], "failed", error="boom")
    _trial(led, "t0003", 3, [1.5])  # running, best so far
    line = progress_line(led, 8, 90.0, "val/epe", "min", running=2)
    assert line == ("progress: 3 of 8 trials done (1 completed, 1 stopped, 1 failed), 2 running | best val/epe 1.5 "
                    "(t0003) | elapsed 1m30s | ETA 2m30s")


def test_progress_before_anything_finished(tmp_path):
    line = progress_line(Ledger(tmp_path), 4, 5.0, "val/epe", "min")
    assert line.endswith("0 running | best: none yet | elapsed 5s | ETA ?")


def test_outcome_tags(tmp_path):
    led = Ledger(tmp_path)
    done = _trial(led, "t0000", 0, [2.0], "completed")
    lost = _trial(led, "t0001", 1, [2.0], "stopped", interrupted=True, error="interrupted: ...")
    assert outcome_of(done) == "completed" and outcome_of(lost) == "interrupted"
    assert run_tags(lost)[OUTCOME_TAG] == "interrupted" and "automl.checkpoint" not in run_tags(lost)


def test_reconciling_a_run_fills_the_ranked_value_once(tmp_path):
    from stereo.tracking import MemoryTracker

    led, tracker = Ledger(tmp_path), MemoryTracker()
    run = tracker.start_run("t0000", experiment="e", tags={"automl.trial_id": "t0000"})
    led.start_trial("t0000", 0, {})
    led.update_progress("t0000", run_id=run.run_id)
    for i, v in enumerate([3.0, 2.0, 2.5], 1):
        led.add_validation("t0000", {"iteration": i, "epoch": i - 1, "step": 4 * i, "val/epe": v})
    entry = led.finalize("t0000", "completed")
    for _ in range(2):  # the second pass finds it there and logs nothing
        end_trial_runs(tracker, "e", entry, "FINISHED", run_tags(entry), metric="epe")
    record = tracker.find_runs("e")[0]
    assert record.status == "FINISHED" and record.tags[OUTCOME_TAG] == "completed"
    assert record.metrics["best/val/epe"] == pytest.approx(2.0) and record.metrics["best/step"] == 8
    assert len(tracker.history(run.run_id, "best/val/epe")) == 1
