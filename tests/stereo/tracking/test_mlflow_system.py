"""System metrics on an action's run (stereo/tracking/mlflow_system.py): MLflow's own monitor, a sample
even for a run shorter than one interval, several for a longer one, none when switched off."""
from __future__ import annotations

import time

from stereo.actions.runner import ActionResult, run_action
from stereo.tracking import MlflowTracker


def _history(tracker, run_id, key):
    return tracker.client.get_metric_history(run_id, key)


def test_an_action_run_gets_the_machines_cpu_and_memory(tmp_path):
    tracker = MlflowTracker(f"sqlite:///{tmp_path}/mlflow.db")
    result = run_action("evaluate", {"results_dir": str(tmp_path)}, tmp_path,
                        lambda ctx: ActionResult("SUCCESS", {"epe": 1.0}, "ok"), tracker=tracker)
    assert result.status == "SUCCESS"
    (run,) = tracker.find_runs("depth_net")
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(run.metrics)
    assert run.metrics["system/system_memory_usage_megabytes"] > 10


def test_a_longer_run_is_sampled_every_interval(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    tracker = MlflowTracker(f"sqlite:///{tmp_path}/mlflow.db")

    def work(ctx):
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:  # polls until several intervals have passed
            time.sleep(0.05)
        return ActionResult("SUCCESS", {}, "ok")

    run_action("evaluate", {"results_dir": str(tmp_path)}, tmp_path, work, tracker=tracker)
    (run,) = tracker.find_runs("depth_net")
    steps = [m.step for m in _history(tracker, run.run_id, "system/cpu_utilization_percentage")]
    assert len(steps) >= 2 and steps == sorted(set(steps))


def test_switched_off_logs_none(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    tracker = MlflowTracker(f"sqlite:///{tmp_path}/mlflow.db")
    run_action("evaluate", {"results_dir": str(tmp_path)}, tmp_path,
               lambda ctx: ActionResult("SUCCESS", {"epe": 1.0}, "ok"), tracker=tracker)
    (run,) = tracker.find_runs("depth_net")
    assert not [k for k in run.metrics if k.startswith("system/")] and run.metrics["epe"] == 1.0
