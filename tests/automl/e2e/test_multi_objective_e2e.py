"""End to end, as a user runs it: a two-objective sweep (`--objective val/epe:min --objective
deploy/latency_ms:min --constraint ... --score-on deploy`: accuracy against the ONNX Runtime latency of each
trial's exported model) on the tiny-demo skill through real Ray Tune + Optuna (multi-objective TPE) + MLflow, then a
`--warm-start` sweep (NSGA-II) over a changed space that reuses the first sweep's trials.

The Pareto front must be non-empty and the same in the console, leaderboard.txt, results.json, pareto.json,
report.html, the Optuna study file and the MLflow store; the warm start must seed its study with the trials
that fit the new space, report the difference and count the ones dropped. Two module-scoped sweeps (2 + 1
trials) feed every assertion.
"""
from __future__ import annotations

import json
import subprocess
import sys

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from automl.tune.ledger import Ledger

# the second objective is what ships: each trial's exported model timed with ONNX Runtime (--score-on deploy)
SECOND = "deploy/latency_ms"
GOALS = ["--objective", "val/epe:min", "--objective", f"{SECOND}:min", "--constraint", "val/epe<=1000",
         "--score-on", "deploy"]


def _run(spawn_module, args, env=None):
    import os

    env = {k: v for k, v in (env or os.environ).items() if k != "MLFLOW_TRACKING_URI"}
    proc = spawn_module([sys.executable, "-m", "automl.cli", "run", *args], env=env, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-4000:] + err[-3000:]
    return out


def _study(run):
    storage = JournalStorage(JournalFileBackend(str(run / "study.journal")))
    return optuna.load_study(study_name="automl", storage=storage)


@pytest.fixture(scope="module")
def first(tmp_path_factory, sweep_overrides, spawn_module):
    root = tmp_path_factory.mktemp("pareto")
    overrides = sweep_overrides(root)
    run = root / "first"
    out = _run(spawn_module, ["--skill", "tiny-demo", "--output", str(run), "--num-samples", "2", "--max-concurrent",
                              "2", "--no-probe", *GOALS, *overrides])
    from stereo.tracking import MlflowTracker, default_tracking_uri

    uri = default_tracking_uri(run)
    return {"root": root, "run": run, "out": out, "overrides": overrides, "uri": uri,
            "runs": MlflowTracker(uri).find_runs("depth_net"),
            "results": json.loads((run / "results.json").read_text())}


def test_the_front_is_non_empty_and_best_is_on_it(first):
    results = first["results"]
    front = [p["trial_id"] for p in results["pareto"]]
    assert front and results["best"]["trial_id"] == front[0]
    assert [o["name"] for o in results["objectives"]] == ["val/epe", SECOND]
    assert results["constraints"] == [{"name": "val/epe", "op": "<=", "bound": 1000.0}]
    trials = {t["trial_id"]: t for t in Ledger(first["run"]).trials()}
    assert len(trials) == 2 and all(t["status"] == "completed" for t in trials.values())
    for p in results["pareto"]:  # the values each record shows are the trial's own reports
        assert p["values"]["val/epe"] == trials[p["trial_id"]]["metric"]
        assert p["values"][SECOND] == trials[p["trial_id"]]["metrics"][SECOND] > 0
    assert "scheduler none (--scheduler auto)" in first["out"]  # no early stopping can rank two objectives


def test_console_leaderboard_and_report_show_the_same_front(first):
    front = [p["trial_id"] for p in first["results"]["pareto"]]
    board = (first["run"] / "leaderboard.txt").read_text()
    assert board in first["out"]
    assert f"Pareto front (val/epe:min, {SECOND}:min): {', '.join(front)}" in board
    starred = [line.split()[1] for line in board.splitlines() if line[:1].isdigit() and line.split()[4] == "*"]
    assert starred == front
    assert json.loads((first["run"] / "pareto.json").read_text())["pareto"] == first["results"]["pareto"]
    page = (first["run"] / "report.html").read_text()
    assert "<h2>Pareto front</h2>" in page and all(t in page for t in front)
    assert (first["run"] / "plots" / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_optuna_study_holds_both_objectives_and_agrees_on_the_front(first):
    study = _study(first["run"])
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    values = {t.user_attrs["trial_id"]: t.values for t in study.trials}
    for p in first["results"]["pareto"]:
        assert values[p["trial_id"]] == [p["values"]["val/epe"], p["values"][SECOND]]
    assert {t.user_attrs["trial_id"] for t in study.best_trials} == {p["trial_id"] for p in first["results"]["pareto"]}
    assert all(t.constraints == {"val/epe<=1000": pytest.approx(t.values[0] - 1000)} for t in study.trials)


def test_mlflow_tags_the_front_on_the_trial_runs_and_the_parent(first):
    from mlflow import MlflowClient

    front = {p["trial_id"] for p in first["results"]["pareto"]}
    parent = next(r for r in first["runs"] if r.tags.get("automl.kind") == "sweep")
    children = [r for r in first["runs"] if r.parent_run_id == parent.run_id]
    assert {r.tags["automl.trial_id"] for r in children if r.tags.get("automl.pareto") == "true"} == front
    assert all(r.tags.get("automl.pareto") == "false" for r in children if r.tags["automl.trial_id"] not in front)
    assert set(json.loads(parent.tags["automl.pareto_front"])) == front
    assert parent.params["objectives"] == f"val/epe:min, {SECOND}:min"
    assert parent.params["constraints"] == "val/epe<=1000"
    note = parent.tags["mlflow.note.content"]  # the parent's description names the front and the plot
    best = first["results"]["pareto"][0]["trial_id"]
    assert f"**Pareto front** over val/epe (min), {SECOND} (min): {best}" in note
    assert f"#/experiments/{parent.experiment_id}/runs/{parent.run_id}/artifacts/report/plots/pareto.png" in note
    client = MlflowClient(first["uri"])
    assert "report/pareto.json" in {a.path for a in client.list_artifacts(parent.run_id, "report")}
    assert "report/plots/pareto.png" in {a.path for a in client.list_artifacts(parent.run_id, "report/plots")}


@pytest.fixture(scope="module")
def warm(first, spawn_module):
    """A second sweep seeded with the first: its space changed (lr's range narrowed to keep the smaller of the
    two learning rates the first sweep drew), NSGA-II, one trial of its own."""
    lrs = sorted(t["params"]["train.optim.lr"] for t in Ledger(first["run"]).trials())
    space = first["root"] / "narrow.yaml"
    space.write_text("description: lr narrowed\nmodel: tiny-demo\nmetric: val/epe\nmode: min\nparameters:\n"
                     f"  train.optim.lr: {{distribution: log_uniform, low: 1.0e-4, high: {lrs[0]!r}}}\n")
    run = first["root"] / "warm"
    out = _run(spawn_module, ["--skill", "tiny-demo", "--output", str(run), "--num-samples", "1", "--no-probe",
                              "--warm-start", str(first["run"]), "--algorithm", "nsga2", "--search-space", str(space),
                              *GOALS, *first["overrides"]])
    return {"run": run, "out": out, "lrs": lrs, "results": json.loads((run / "results.json").read_text())}


def test_warm_start_reuses_the_trials_that_fit_and_says_what_changed(warm, first):
    out = warm["out"]
    assert (f"warm start: reusing 1 completed trial(s) of {first['run']} (completed), 1 dropped (1 outside the new "
            "space); they seed the Optuna study") in out
    assert "differs: train.optim.lr: " in out and "(trials outside the new range: dropped)" in out
    study = _study(warm["run"])
    seeded = [t for t in study.trials if t.user_attrs.get("warm_start") == str(first["run"])]
    assert [t.number for t in seeded] == [0] and [t.params["train.optim.lr"] for t in seeded] == warm["lrs"][:1]
    old = {t["trial_id"]: t for t in Ledger(first["run"]).trials()}
    for t in seeded:
        entry = old[t.user_attrs["trial_id"].removeprefix("warm:")]
        assert t.values == [entry["metric"], entry["metrics"][SECOND]]


def test_the_warm_sweep_runs_and_reports_only_its_own_trials(warm):
    ids = [t["trial_id"] for t in Ledger(warm["run"]).trials()]
    assert ids == ["t0001"]  # the study's number 0 is the reused trial
    assert [h["trial_id"] for h in warm["results"]["history"]] == ids
    assert warm["results"]["pareto"] and warm["results"]["best"]["trial_id"] == "t0001"
    launch = json.loads((warm["run"] / "launch.json").read_text())
    assert launch["algorithm"] == "nsga2" and len(launch["warm_start"]["trials"]) == 1
