"""Every searcher and scheduler through real Ray Tune + Optuna + MLflow, one tiny sweep each (2-3
trials, 1-2 validations of a few steps): the trials ran, were scored, and each trial kept one attempt,
one MLflow run and one unbroken validation history. HyperBand runs its brackets asynchronously (Ray's
synchronous HyperBand pauses trials, which restarted them from scratch with a second MLflow run)."""
import json
import os
import subprocess
import sys

import pytest

from automl.tune.ledger import Ledger

SWEEPS = {  # id: (algorithm, scheduler, samples, extra options)
    "random+none": ("random", "none", 2, []),
    "grid+asha": ("grid", "asha", None, ["--grid-points", "2"]),
    "bayesian+hyperband": ("bayesian", "hyperband", 3, ["--reduction-factor", "2"]),
    "cmaes+hyperband": ("cmaes", "hyperband", 3, ["--reduction-factor", "2"]),
}
LR_ONLY = """description: lr only, for a two-point grid
model: tiny-demo
metric: val/epe
mode: min
parameters:
  train.optim.lr: {distribution: log_uniform, low: 1.0e-3, high: 1.0e-2}
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from stereo.data.synthetic import generate

    root = tmp_path_factory.mktemp("algorithms")
    # 4 pairs, batch 2: 2 steps an epoch, so the milestone at step 1 makes lr_decay live (automl/plan/dead_params.py)
    tr = generate(root / "train", "fsd", n=4, height=32, width=64, max_disparity=24, seed=0)
    va = generate(root / "val", "fsd", n=1, height=32, width=64, max_disparity=24, seed=1)
    (root / "lr_only.yaml").write_text(LR_ONLY)
    return root, [f"dataset.train_dataset.data_sources[0].data_file={tr}",
                  "dataset.train_dataset.data_sources[0].dataset_name=FSD",
                  f"dataset.val_dataset.data_sources[0].data_file={va}",
                  "dataset.val_dataset.data_sources[0].dataset_name=FSD", "max_steps=-1",
                  "dataset.train_dataset.augmentation.crop_size=[32,64]", "model.train_iters=1", "model.valid_iters=1",
                  "train.optim.lr_steps=[1]"]


@pytest.fixture(scope="module", params=list(SWEEPS))
def swept(request, data):
    root, overrides = data
    algorithm, scheduler, samples, extra = SWEEPS[request.param]
    run = root / request.param
    args = ["--skill", "tiny-demo", "--output", str(run), "--algorithm", algorithm, "--scheduler", scheduler,
            "--max-concurrent", "2", *extra, *overrides, f"num_epochs={2 if scheduler != 'none' else 1}"]
    args += ["--num-samples", str(samples)] if samples else ["--search-space", str(root / "lr_only.yaml")]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    out = subprocess.run([sys.executable, "-m", "automl.cli", "run", *args], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    from stereo.tracking import MlflowTracker, default_tracking_uri

    return {"id": request.param, "run": run, "out": out, "ledger": Ledger(run), "samples": samples or 2,
            "runs": MlflowTracker(default_tracking_uri(run)).find_runs("depth_net"),
            "results": json.loads((run / "results.json").read_text())}


def test_every_trial_ran_and_was_scored(swept):
    trials = swept["ledger"].trials()
    assert "Sweep complete" in swept["out"].stdout and len(swept["ledger"].counted()) == swept["samples"]
    assert all(t["status"] in ("completed", "stopped") and t["metric"] is not None for t in trials), trials
    max_t = json.loads((swept["run"] / "launch.json").read_text())["max_t"]
    assert all((t["status"] == "completed") == (t["epochs"] >= max_t) for t in trials), trials  # stopped = early
    assert swept["results"]["best"]["trial_id"] in {t["trial_id"] for t in trials}


def test_no_trial_was_paused_or_restarted(swept):
    children = [r for r in swept["runs"] if r.tags.get("automl.kind") != "sweep"]
    for t in swept["ledger"].trials():
        mine = [r for r in children if r.tags["automl.trial_id"] == t["trial_id"]]
        assert len(mine) == 1 and mine[0].run_id == t["run_id"] and mine[0].status != "RUNNING", t["trial_id"]
        assert mine[0].status == "FINISHED" or t["status"] == "stopped", (t["trial_id"], mine[0].status)
        assert t["attempt"] == 1 and [h["iteration"] for h in t["history"]] == list(range(1, t["epochs"] + 1))


def test_the_parent_run_names_the_searcher_and_scheduler(swept):
    algorithm, scheduler, _, _ = SWEEPS[swept["id"]]
    parent = next(r for r in swept["runs"] if r.tags.get("automl.kind") == "sweep")
    assert parent.tags["automl.algorithm"] == algorithm and parent.tags["automl.scheduler"] == scheduler
    assert parent.status == "FINISHED"


def test_the_sampled_points_follow_the_algorithm(swept):
    points = [t["params"] for t in swept["ledger"].trials()]
    if swept["id"] == "grid+asha":
        assert sorted(p["train.optim.lr"] for p in points) == pytest.approx([1e-3, 1e-2])
    else:
        assert len({tuple(sorted(p.items())) for p in points}) == len(points)  # distinct draws
        assert all(1e-4 <= p["train.optim.lr"] <= 1e-2 and 0.05 <= p["train.optim.lr_decay"] <= 1.0 for p in points)


def test_the_optuna_study_file_has_each_trial_once_with_its_outcome(swept):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(swept["run"] / "study.journal")))
    trials = optuna.load_study(study_name="automl", storage=storage).trials  # grid: no point left waiting
    ledger = {t["index"]: t for t in swept["ledger"].trials()}
    assert sorted(t.number for t in trials) == sorted(ledger), [(t.number, t.state.name) for t in trials]
    for trial in trials:
        entry = ledger[trial.number]
        assert trial.state.name == {"completed": "COMPLETE", "stopped": "PRUNED"}[entry["status"]], entry["trial_id"]
        assert trial.params == pytest.approx(entry["params"]) and trial.user_attrs["trial_id"] == entry["trial_id"]
