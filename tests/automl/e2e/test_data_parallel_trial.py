"""A data-parallel trial (issue #14): `automl run` with `train.num_gpus=2` on this CPU machine runs its trial as
2 Ray Train workers (DDP over gloo, automl/tune/data_parallel.py) inside a real sweep on the embedded Ray, and
reports what a 1-worker trial reports on the same global batch.

The comparison is made meaningful by the data: 2 training samples and a global batch of 2 (2 workers x batch 1
against 1 worker x batch 2), so every optimizer step of both runs sees the whole training set whatever order
DistributedSampler or the single sampler draw it in; same seed, same sampled values (same --seed, 1 TPE draw).

What may still differ, and so the tolerance: DDP averages the *gradients* of two batch-1 losses where one
process takes the gradient of one batch-2 loss (the loss is a mean over valid pixels, so the two samples weigh by
their valid-pixel counts, nearly equal here), and the model's BatchNorm layers normalise each rank's single
sample by its own statistics (no SyncBatchNorm), with running statistics kept from rank 0's sample (DDP
broadcasts rank 0's buffers). AdamW's first steps are nearly sign steps, so these differences grow with the
learning rate: at the sampled lr (1.25e-3, the first TPE draw of seed 0) val/epe differed by 0.07 % at step 1
and 0.03 % at step 2 (5.3800 vs 5.3761, 5.3875 vs 5.3891; bp1 by 5e-4); with lr fixed at 1e-2 by 2-7 %, too
much for a comparison. The test allows 0.5 % relative on val/epe, val/loss and val/rmse and 0.01 absolute on the
bp/d1 fractions. A broken split is caught otherwise: without DistributedSampler each worker would take 2 steps
per epoch (the checkpoint names say 1), and without rank 0 alone keeping records there would be 2 MLflow runs,
duplicated metric points or 2 STARTED lines in status.json.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from automl.tune.ledger import Ledger

EPOCHS = 3
REL_TOL, FRACTION_TOL = 0.005, 0.01


def _sweep(root: Path, name: str, overrides: list, extra: list, samples: int = 1, scheduler: list = ()) -> dict:
    from stereo.tracking import MlflowTracker, default_tracking_uri

    run = root / name
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "AUTOML_TRIAL_CALLBACKS")}
    env["CUDA_VISIBLE_DEVICES"] = ""  # the CPU/gloo path, even on a machine with GPUs
    out = subprocess.run(
        [sys.executable, "-m", "automl.cli", "run", "--skill", "tiny-demo", "--output", str(run),
         "--num-samples", str(samples), "--max-concurrent", "1", *(scheduler or ["--scheduler", "none"]),
         "--seed", "0", "--no-probe", *overrides, *extra],
        env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    tracker = MlflowTracker(default_tracking_uri(run))
    runs = tracker.find_runs("depth_net")
    parent = next(r for r in runs if r.tags.get("automl.kind") == "sweep")
    children = [r for r in runs if r.parent_run_id == parent.run_id]
    trials = sorted(Ledger(run).trials(), key=lambda t: t["trial_id"])
    return {"run": run, "out": out.stdout, "trial": trials[0], "trials": trials, "tracker": tracker,
            "children": children, "results": json.loads((run / "results.json").read_text()),
            "launch": json.loads((run / "launch.json").read_text())}


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory, sweep_overrides):
    root = tmp_path_factory.mktemp("ddp")
    overrides = sweep_overrides(root, n_train=2, n_val=1, epochs=EPOCHS)
    # the data-parallel sweep has a second trial under ASHA (halving at every validation): t0000, the first,
    # always runs its full budget (the one compared); t0001 is stopped at its first validation if it is worse
    return {"ddp": _sweep(root, "ddp", overrides, ["train.num_gpus=2", "dataset.train_dataset.batch_size=1"],
                          samples=2, scheduler=["--scheduler", "asha", "--reduction-factor", "2"]),
            "one": _sweep(root, "one", overrides, ["train.num_gpus=1", "dataset.train_dataset.batch_size=2"])}


def test_the_trial_ran_as_two_ray_train_workers(sweeps):
    ddp, one = sweeps["ddp"], sweeps["one"]
    assert ddp["launch"]["workers_per_trial"] == 2 and one["launch"]["workers_per_trial"] == 1
    assert "data-parallel trials: 2 Ray Train workers per trial" in ddp["out"] and "DDP over gloo on CPU" in ddp["out"]
    assert "Ray Train" not in one["out"]  # the 1-worker path is untouched
    assert any((ddp["run"] / "tune" / "workers").iterdir())  # Ray Train's run folder of the trial's workers
    train_dir = ddp["run"] / "trials" / "t0000" / "train"
    # 2 samples on 2 workers of batch 1: one optimizer step per epoch, as the 1-worker run on batch 2
    for epoch in range(EPOCHS):
        assert (train_dir / f"model_epoch_{epoch:03d}_step_{epoch + 1:05d}.ckpt").is_file()
    statuses = [json.loads(line) for line in (train_dir / "status.json").read_text().splitlines()]
    assert [s["status"] for s in statuses].count("STARTED") == 1 and statuses[-1]["status"] == "SUCCESS"
    assert ddp["trial"]["params"] == one["trial"]["params"]  # the same sampled values


def test_it_reports_what_a_one_worker_trial_reports_on_the_same_global_batch(sweeps):
    a, b = sweeps["ddp"]["trial"], sweeps["one"]["trial"]
    assert a["status"] == b["status"] == "completed"
    assert [h["step"] for h in a["history"]] == [h["step"] for h in b["history"]] == [1, 2, 3]
    for ra, rb in zip(a["history"], b["history"]):
        for key in ("val/epe", "val/loss", "val/rmse"):
            assert ra[key] == pytest.approx(rb[key], rel=REL_TOL), (key, ra["step"], ra[key], rb[key])
        for key in ("val/bp1", "val/bp3", "val/d1"):
            assert abs(ra[key] - rb[key]) <= FRACTION_TOL, (key, ra["step"], ra[key], rb[key])


def test_ledger_results_json_and_the_one_mlflow_run_per_trial_agree(sweeps):
    ddp = sweeps["ddp"]
    results = ddp["results"]
    runs = {r.tags["automl.trial_id"]: r for r in ddp["children"]}
    assert sorted(runs) == ["t0000", "t0001"] and len(ddp["children"]) == 2  # one MLflow run per trial: rank 0's
    history = {h["trial_id"]: h for h in results["history"]}
    for trial in ddp["trials"]:
        tid, run = trial["trial_id"], runs[trial["trial_id"]]
        assert trial["status"] in ("completed", "stopped") and history[tid]["status"] == trial["status"]
        assert run.status == "FINISHED" and run.run_id == trial["run_id"] == history[tid]["run_id"]
        assert history[tid]["metric"] == pytest.approx(trial["metric"])
        assert run.metrics["best/val/epe"] == pytest.approx(trial["metric"])
        points = ddp["tracker"].client.get_metric_history(run.run_id, "val/epe")
        # each validation logged once (rank 1 logs nothing), at the steps the ledger holds, with its values
        assert [(p.step, p.value) for p in sorted(points, key=lambda p: p.step)] == \
            [(h["step"], pytest.approx(h["val/epe"])) for h in trial["history"]]
        assert Path(trial["checkpoint"]).is_file() and run.tags["automl.checkpoint"] == trial["checkpoint"]
    best = min(ddp["trials"], key=lambda t: t["metric"])
    assert results["best"]["run_id"] == best["run_id"] and results["best"]["metric"] == pytest.approx(best["metric"])


def test_a_scheduler_stop_ends_every_worker_cleanly(sweeps):
    """On this machine t0001 (lr 1.6e-3) is worse than t0000 at step 1 (5.3837 against 5.3800) and ASHA stops it:
    rank 0's reporter stops, every rank agrees at the end of that epoch, the trial's records say so, and the
    sweep goes on (no worker left in an all-reduce)."""
    trial = sweeps["ddp"]["trials"][1]
    if trial["status"] != "stopped":
        pytest.skip(f"ASHA did not stop t0001 here (val/epe {trial['metric']:.4f}); the stop path is not exercised")
    train_dir = sweeps["ddp"]["run"] / "trials" / trial["trial_id"] / "train"
    status = json.loads((train_dir / "status.json").read_text().splitlines()[-1])
    n = trial["epochs"]
    assert status["status"] == "SUCCESS" and f"stopped early by asha after {n} validation" in status["message"]
    assert sorted(p.name for p in train_dir.glob("model_epoch_*.ckpt")) == \
        [f"model_epoch_{e:03d}_step_{e + 1:05d}.ckpt" for e in range(n)]  # no rank trained past the stop
