"""automl.driver without Ray: what a resume trusts, who may be best, the sweep-wide time budget, the
parent run's search-space tag."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from automl.policy.decision import PolicyDecision
from automl.space.param import Param
from automl.driver import RunInUseError, SweepClock, _close_interrupted, _space_tag, run_sweep
from automl.plan.configs import RunConfig, SearchConfig, TuneConfig
from automl.plan.launch import LaunchPlan, build_plan
from automl.tune.ledger import Ledger
from automl.space.build import SearchSpace
from automl.tune.backend import prepare_study
from automl.tune.trial_runs import ATTEMPT_TAG, TRIAL_TAG
from stereo.tracking import MemoryTracker


def _plan(tmp_path, **kw):
    return LaunchPlan(skill_name="x", skill_dir="x", decision=PolicyDecision("sweep", "auto", ()), spec_source="x",
                      base_spec={},
                      overrides=[], run_dir=str(tmp_path), tracking_uri="sqlite:////x.db", **kw)


def _trial(led, tracker, index, values, outcome=None, attempt=1):
    tid = f"t{index:04d}"
    led.start_trial(tid, index, {"lr": 1e-3 * (index + 1)}, attempt)
    run = tracker.start_run(tid, experiment="depth_net", tags={TRIAL_TAG: tid, ATTEMPT_TAG: str(attempt)})
    led.update_progress(tid, run_id=run.run_id)
    for i, v in enumerate(values, 1):
        led.add_validation(tid, {"iteration": i, "epoch": i - 1, "step": i, "val/epe": v})
    if outcome:
        led.update_progress(tid, outcome=outcome)
    return tid, run


def test_resume_keeps_a_trial_that_finished_before_the_driver_died(tmp_path):
    # the driver died after t0000 wrote "completed" but before it wrote the verdict; t0001 was mid-way
    led, tracker = Ledger(tmp_path), MemoryTracker()
    done, done_run = _trial(led, tracker, 0, [3.0, 2.0], outcome="completed")
    tracker.end_run(done_run, "FINISHED")  # the train action closed its own run
    cut, cut_run = _trial(led, tracker, 1, [4.0])
    lines = []
    _close_interrupted(led, tracker, _plan(tmp_path, max_t=2), lines.append)
    kept, lost = led.trial(done), led.trial(cut)
    assert kept["status"] == "completed" and not kept["interrupted"] and kept["metric"] == 2.0
    assert lost["status"] == "stopped" and lost["interrupted"]
    assert tracker.runs[done_run.run_id].status == "FINISHED"  # never re-marked KILLED
    assert tracker.runs[done_run.run_id].tags["automl.status"] == "completed"
    assert tracker.runs[cut_run.run_id].status == "KILLED"
    assert [t["trial_id"] for t in led.counted()] == [done]
    _, todo = prepare_study(_plan(tmp_path, num_samples=4), SearchSpace({"lr": Param.real(1e-4, 1e-1)}), led)
    assert todo == 3  # the finished trial is not re-sampled
    assert any("kept as completed" in line for line in lines)


def test_a_trial_that_validated_its_whole_budget_is_kept_and_an_earlier_stop_is_not(tmp_path):
    led, tracker = Ledger(tmp_path), MemoryTracker()
    full, full_run = _trial(led, tracker, 0, [3.0, 2.0], outcome="stopped")  # ASHA stops every trial at max_t
    tracker.end_run(full_run, "KILLED")  # what the train action does when the scheduler stops it
    cut, _ = _trial(led, tracker, 1, [3.0, 2.5])  # killed after its last validation, before it returned
    best = tmp_path / "trials" / cut / "train" / "dn_model_best.safetensors"
    best.parent.mkdir(parents=True)
    best.write_bytes(b"w")
    short, _ = _trial(led, tracker, 2, [3.0], outcome="stopped")  # what a graceful SIGINT leaves too
    failed, _ = _trial(led, tracker, 3, [3.0, 2.0], outcome="failed")
    _close_interrupted(led, tracker, _plan(tmp_path, max_t=2), lambda line: None)
    assert led.trial(full)["status"] == "completed" and led.trial(cut)["status"] == "completed"
    assert tracker.runs[full_run.run_id].status == "FINISHED"  # not KILLED: it trained its whole budget
    assert led.trial(cut)["checkpoint"] == str(best)  # found on disk: the trial could not record it
    assert led.trial(short)["interrupted"] and led.trial(failed)["interrupted"]


def test_resume_closes_every_live_run_of_a_retried_trial(tmp_path):
    led, tracker = Ledger(tmp_path), MemoryTracker()
    tid, first = _trial(led, tracker, 0, [3.0])  # attempt 1 was killed: its run stayed RUNNING
    _, second = _trial(led, tracker, 0, [], attempt=2)  # the retry was running when the driver died
    assert led.trial(tid)["earlier_run_ids"] == [first.run_id]
    _close_interrupted(led, tracker, _plan(tmp_path, max_t=2), lambda line: None)
    earlier = tracker.runs[first.run_id]
    assert earlier.status == "FAILED" and earlier.tags["automl.status"] == "retried"
    assert tracker.runs[second.run_id].status == "KILLED"
    assert not any(r.status == "RUNNING" for r in tracker.find_runs("depth_net", tags={TRIAL_TAG: tid}))


def test_an_interrupted_trial_is_never_the_best(tmp_path):
    from automl.report.results import write_report

    def best(trials, mode, folder):  # the report picks the sweep's best (the driver hands it every trial)
        report = write_report(tmp_path / folder, trials, metric="val/epe", mode=mode, space=None, best_spec=None,
                              complete=True, stream=None)
        return report.results["best"]

    trials = [{"trial_id": "t0000", "status": "completed", "metric": 2.0, "interrupted": False},
              {"trial_id": "t0001", "status": "stopped", "metric": 0.5, "interrupted": True},
              {"trial_id": "t0002", "status": "stopped", "metric": 1.5, "interrupted": False},
              {"trial_id": "t0003", "status": "failed", "metric": None, "interrupted": False}]
    assert best(trials, "min", "a")["trial_id"] == "t0002"  # early-stopped with a score may win
    assert best(trials, "max", "b")["trial_id"] == "t0000"
    assert best(trials[1:2], "min", "c") is None


def test_the_time_budget_is_for_the_whole_sweep(tmp_path):
    led = Ledger(tmp_path)
    first = SweepClock(led, 100.0)
    first.started -= 60.0  # as if this attempt had run for a minute
    first.tick()
    assert led.elapsed() == pytest.approx(60.0, abs=1.0)
    resumed = SweepClock(led, 100.0)
    assert resumed.remaining() == pytest.approx(40.0, abs=1.0) and not resumed.out_of_time()
    led.update_sweep(elapsed_s=97.0)
    assert SweepClock(led, 100.0).out_of_time() and SweepClock(led, None).remaining() is None


@pytest.mark.slow
def test_a_resumed_sweep_whose_time_budget_is_spent_starts_nothing(tmp_path):
    plan = build_plan(SearchConfig(skill="tiny-demo", policy="on"), tune=TuneConfig(time_budget_s=30, num_samples=4),
                      where=RunConfig(output=str(tmp_path / "run")))
    plan.save()
    Ledger(plan.run_dir).update_sweep(state="interrupted", attempts=1, elapsed_s=31.0)
    started = time.time()
    outcome = run_sweep(plan, printer=lambda line: None, stream=None)
    assert outcome["state"] == "completed" and outcome["trials"] == []
    assert not (tmp_path / "run" / "tune").exists() and time.time() - started < 60  # Ray was never started
    assert Ledger(plan.run_dir).sweep()["attempts"] == 2
    assert not (tmp_path / "run" / "ledger" / "driver.json").exists()  # the run folder is released
    space = json.loads((tmp_path / "run" / "search_space.json").read_text())
    assert set(space["parameters"]) == {"train.optim.lr", "train.optim.lr_decay"}


def test_the_search_space_tag_stays_short_valid_json():
    space = SearchSpace({f"model.stereo_backbone.a_rather_long_parameter_name_{i:03d}": Param.real(0.0, 1.0)
                         for i in range(400)})
    tag = _space_tag(space)
    data = json.loads(tag)
    assert len(tag) <= 8000 and data["more"] > 0 and data["full"] == "search_space.json"
    assert len(data["parameters"]) + data["more"] == 400
    small = json.loads(_space_tag(SearchSpace({"train.optim.lr": Param.real(1e-4, 1e-2, log=True)})))
    assert small == {"parameters": ["train.optim.lr"], "more": 0, "full": "search_space.json"}


def test_a_folder_another_live_driver_runs_is_refused_untouched(tmp_path):
    plan = build_plan(SearchConfig(skill="tiny-demo", policy="on"), tune=TuneConfig(num_samples=2),
                      where=RunConfig(output=str(tmp_path / "run")))
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "run" / "ledger").mkdir(parents=True)
        (tmp_path / "run" / "ledger" / "driver.json").write_text(json.dumps({"pid": other.pid}))
        with pytest.raises(RunInUseError, match=f"another sweep driver \\(pid {other.pid}\\).*kill {other.pid}"):
            run_sweep(plan, printer=lambda line: None, stream=None)
    finally:
        other.kill()
        other.wait()
    assert not (tmp_path / "run" / "ledger" / "sweep.json").exists() and not (tmp_path / "run" / "launch.json").exists()


def test_runs_that_disagree_with_their_verdict_are_closed(tmp_path):
    # t0000/t0001: the verdict was written, then the driver was killed before it ended the trial's run;
    # t0002: a completed trial whose run the scheduler's stop left KILLED
    led, tracker = Ledger(tmp_path), MemoryTracker()
    parent = tracker.start_run("sweep", experiment="depth_net")
    led.update_sweep(parent_run_id=parent.run_id)
    runs = {}
    for index, verdict in enumerate(("completed", "failed", "completed")):
        tid = f"t{index:04d}"
        led.start_trial(tid, index, {"lr": 1e-3})
        runs[tid] = tracker.start_run(tid, experiment="depth_net", parent_run_id=parent.run_id,
                                      tags={TRIAL_TAG: tid, ATTEMPT_TAG: "1"})
        led.update_progress(tid, run_id=runs[tid].run_id)
        led.add_validation(tid, {"iteration": 1, "val/epe": 2.0})
        led.finalize(tid, verdict, error="boom" if verdict == "failed" else None)
    tracker.end_run(runs["t0002"], "KILLED")  # stopped at max_t: the train action closed it KILLED
    _close_interrupted(led, tracker, _plan(tmp_path, max_t=1), lambda line: None)
    assert tracker.runs[runs["t0000"].run_id].status == "FINISHED"
    assert tracker.runs[runs["t0002"].run_id].status == "FINISHED"
    assert tracker.runs[runs["t0001"].run_id].status == "FAILED"
    assert tracker.runs[runs["t0001"].run_id].tags["automl.error"] == "boom"
    assert tracker.runs[parent.run_id].status == "RUNNING"  # the sweep's own run is the driver's to end
