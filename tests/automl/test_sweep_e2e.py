"""End to end: a real sweep (Ray Tune + Optuna TPE + ASHA + MLflow) on the tiny-demo skill and synthetic
data, one trial SIGKILLed by fault injection, the driver SIGKILLed mid-sweep, then `--resume`.

One module-scoped run (two Ray starts in all) feeds every assertion.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from automl.ledger import Ledger
from automl.sweep import ray_temp_dir

SAMPLES = 5


def _cli(*args):
    return [sys.executable, "-m", "automl.cli", "run", *args]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    from stereo.data.synthetic import generate

    root = tmp_path_factory.mktemp("sweep")
    tr = generate(root / "data" / "train", "fsd", n=4, height=32, width=64, max_disparity=24, seed=0)
    va = generate(root / "data" / "val", "fsd", n=2, height=32, width=64, max_disparity=24, seed=1)
    run = root / "run"
    overrides = [f"dataset.train_dataset.data_sources[0].data_file={tr}",
                 "dataset.train_dataset.data_sources[0].dataset_name=FSD",
                 f"dataset.val_dataset.data_sources[0].data_file={va}",
                 "dataset.val_dataset.data_sources[0].dataset_name=FSD",
                 "num_epochs=3", "max_steps=-1", "dataset.train_dataset.augmentation.crop_size=[32,64]",
                 "model.train_iters=1", "model.valid_iters=1", "train.seed=7"]
    env = {**os.environ, "AUTOML_FAULT_KILL_TRIAL": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    first_log = root / "first.log"
    with open(first_log, "w") as log:
        proc = subprocess.Popen(_cli("--skill", "tiny-demo", "--output", str(run), "--num-samples", str(SAMPLES),
                                     "--max-concurrent", "2", *overrides), env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        ledger = Ledger(run)
        deadline = time.time() + 300
        while time.time() < deadline and len([t for t in ledger.trials() if t["status"] != "running"]) < 2:
            assert proc.poll() is None, first_log.read_text()[-3000:]
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started, no chance to clean up
        proc.wait()
    before = {t["trial_id"]: t for t in Ledger(run).trials() if t["status"] != "running"}
    assert len(before) >= 2, first_log.read_text()[-3000:]
    resumed = subprocess.run(_cli("--resume", str(run)), env=env, capture_output=True, text=True, timeout=600)
    return {"run": run, "before": before, "first": first_log.read_text(), "resumed": resumed,
            "ledger": Ledger(run), "results": json.loads((run / "results.json").read_text())}


def test_first_run_printed_the_resume_command(swept):
    assert f"resume with: automl run --resume {swept['run']}" in swept["first"]


def test_resume_completes_the_budget(swept):
    res = swept["resumed"]
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "Sweep complete" in res.stdout
    assert swept["ledger"].sweep()["state"] == "completed" and swept["ledger"].sweep()["attempts"] == 2
    assert len(swept["ledger"].counted()) == SAMPLES
    assert sorted(p.name for p in (swept["run"] / "tune").iterdir()) == ["attempt-1", "attempt-2"]


def test_finished_trials_were_never_rerun(swept):
    after = {t["trial_id"]: t for t in swept["ledger"].trials()}
    for tid, t in swept["before"].items():
        assert after[tid]["status"] == t["status"] and after[tid]["run_id"] == t["run_id"]
        assert after[tid]["history"] == t["history"]
    ids = [t["trial_id"] for t in swept["ledger"].trials()]
    assert len(ids) == len(set(ids))


def test_the_killed_trial_is_failed_not_zero(swept):
    killed = swept["ledger"].trial("t0001")
    assert killed["status"] == "failed" and killed["metric"] is None and "died" in killed["error"]
    row = next(h for h in swept["results"]["history"] if h["trial_id"] == "t0001")
    assert row["status"] == "failed" and row["metric"] is None


def test_results_json_names_the_best_trial(swept):
    results, counted = swept["results"], swept["ledger"].counted()
    scored = [t for t in counted if t["metric"] is not None]
    best = min(scored, key=lambda t: t["metric"])
    assert results["best"]["trial_id"] == best["trial_id"]
    assert results["best"]["metric"] == pytest.approx(best["metric"])
    assert results["progress"]["complete"] is True
    assert (swept["run"] / "best_spec.yaml").is_file()


def test_every_trial_spec_carries_the_overrides_and_its_sample(swept):
    for t in swept["ledger"].trials():
        spec_file = swept["run"] / "trials" / t["trial_id"] / "train" / "experiment.yaml"
        if not spec_file.is_file():
            continue
        spec = yaml.safe_load(spec_file.read_text())
        assert spec["train"]["num_epochs"] == 3 and spec["train"]["max_steps"] == -1 and spec["train"]["seed"] == 7
        assert spec["dataset"]["train_dataset"]["augmentation"]["crop_size"] == [32, 64]
        assert spec["model"]["train_iters"] == 1 and spec["model"]["volume_dim"] == 8  # skill key_defaults
        assert spec["train"]["optim"]["lr"] == pytest.approx(t["params"]["train.optim.lr"])
        assert spec["train"]["optim"]["lr_decay"] == pytest.approx(t["params"]["train.optim.lr_decay"])
        assert spec["results_dir"] == str(swept["run"] / "trials" / t["trial_id"])


def test_mlflow_has_one_parent_and_one_child_per_trial(swept):
    from stereo.tracking import MlflowTracker, default_tracking_uri

    runs = MlflowTracker(default_tracking_uri(swept["run"])).find_runs("depth_net")
    parents = [r for r in runs if r.tags.get("automl.kind") == "sweep"]
    assert len(parents) == 1 and parents[0].status == "FINISHED"
    parent = parents[0]
    assert parent.tags["automl.decision"] == "sweep" and "tpe" == parent.tags["automl.algorithm"]
    assert "train.optim.lr" in parent.tags["automl.search_space"] and parent.params["num_samples"] == str(SAMPLES)
    children = [r for r in runs if r.parent_run_id == parent.run_id]
    by_trial = {}
    for r in children:
        by_trial.setdefault(r.tags["automl.trial_id"], []).append(r)
    for t in swept["ledger"].counted():
        if t["run_id"] is None:
            continue
        assert len(by_trial[t["trial_id"]]) == 1, t["trial_id"]  # no duplicates after SIGKILL + resume
        child = by_trial[t["trial_id"]][0]
        assert child.status != "RUNNING"
        assert float(child.params["train.optim.lr"]) == pytest.approx(t["params"]["train.optim.lr"])
        if t["status"] == "completed":
            assert child.metrics["val/epe"] == pytest.approx(t["history"][-1]["val/epe"])
            assert not any(k in child.metrics for k in ("pid", "time_this_iter_s", "training_iteration"))
    assert all(r.status != "RUNNING" for r in children)


def test_ray_temp_files_are_gone(swept):
    assert not ray_temp_dir(swept["run"]).exists()


def test_a_resumed_attempt_samples_new_points(swept):
    points = [tuple(sorted(t["params"].items())) for t in swept["ledger"].trials() if t["params"]]
    assert len(points) == len(set(points))
