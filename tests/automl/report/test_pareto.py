"""automl/report/pareto.py and write_report with several objectives and constraints: the front (the same as
Optuna's own `study.best_trials`), infeasible trials never on it nor best, and every record agreeing: the
leaderboard, results.json, pareto.json, report.html, the Pareto plot and the MLflow tags (MemoryTracker)."""
from __future__ import annotations

import io
import json
import random

import pytest

from automl.plan.objectives import Constraint, Objective
from automl.report.pareto import FRONT_TAG, PARETO_TAG, annotate, dominates, layers, rank_key
from automl.report.results import write_report
from stereo.tracking import MemoryTracker

EPE, TIME = Objective("val/epe", "min"), Objective("train/time_s", "min")


def _trial(i, epe, time_s, status="completed", **kw):
    metrics = {k: v for k, v in (("val/epe", epe), ("train/time_s", time_s)) if v is not None}
    return {"trial_id": f"t{i:04d}", "status": status, "params": {"train.optim.lr": 1e-3 * (i + 1)},
            "metric": epe if status != "failed" else None, "metrics": metrics, "history": [metrics], "epochs": 1,
            "error": "boom" if status == "failed" else None, "checkpoint": None, "run_id": None,
            "duration_s": 3.0, **kw}


def test_dominance_and_layers():
    assert dominates([1, 1], [1, 2]) and not dominates([1, 2], [2, 1]) and not dominates([1, 1], [1, 1])
    assert layers([[1, 3], [2, 2], [3, 1], [2, 3], [3, 3]]) == [1, 1, 1, 2, 3]


def test_the_front_is_optunas_best_trials_on_random_points():
    import optuna
    from optuna.trial import TrialState, create_trial

    rng = random.Random(0)
    objectives = [EPE, Objective("val/bp3", "max"), TIME]
    for _ in range(20):
        trials = [{"trial_id": f"t{i}", "score": 1.0, "metrics": {"val/epe": rng.randint(0, 5), "val/bp3":
                   rng.randint(0, 5), "train/time_s": rng.randint(0, 5)}} for i in range(12)]
        annotate(trials, objectives, [])
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(directions=[o.direction for o in objectives])
        for t in trials:
            study.add_trial(create_trial(state=TrialState.COMPLETE, values=[t["metrics"][o.name] for o in objectives],
                                         user_attrs={"id": t["trial_id"]}))
        assert {t["trial_id"] for t in trials if t["pareto"]} == {t.user_attrs["id"] for t in study.best_trials}


def test_infeasible_trials_are_never_on_the_front_and_rank_after_the_feasible():
    trials = [_trial(0, 1.0, 9.0), _trial(1, 2.0, 2.0), _trial(2, 3.0, 1.0), _trial(3, 0.5, 0.5),
              _trial(4, 2.5, None)]
    for t in trials:
        t["score"] = t["metric"]
    annotate(trials, [EPE, TIME], [Constraint("val/epe", ">=", 0.9)])  # t0003 dominates all but is infeasible
    assert [t["trial_id"] for t in trials if t["pareto"]] == ["t0000", "t0001", "t0002"]
    assert trials[3]["feasible"] is False and trials[3]["layer"] == 1 and trials[4]["layer"] is None
    ranked = sorted(trials, key=lambda t: rank_key(t, [EPE, TIME]))
    assert [t["trial_id"] for t in ranked] == ["t0000", "t0001", "t0002", "t0003", "t0004"]


@pytest.fixture
def reported(tmp_path):
    trials = [_trial(0, 2.0, 5.0), _trial(1, 1.5, 8.0), _trial(2, 3.0, 1.0), _trial(3, 2.5, 6.0),
              _trial(4, 0.9, 0.4), _trial(5, None, None, "failed")]
    tracker = MemoryTracker()
    parent = tracker.start_run("sweep", experiment="depth_net")
    for t in trials:
        t["run_id"] = tracker.start_run(t["trial_id"], experiment="depth_net", parent_run_id=parent.run_id).run_id
    out = io.StringIO()
    report = write_report(tmp_path / "sweep", trials, metric="val/epe", mode="min", space=None, best_spec=None,
                          complete=True, tracker=tracker, parent_run=parent, stream=out, algorithm="tpe+none",
                          objectives=[EPE, TIME], constraints=[Constraint("val/epe", ">=", 1.0)])
    return report, out.getvalue(), tracker, parent


def test_every_record_shows_the_same_front_and_best(reported):
    report, printed, tracker, parent = reported
    front = ["t0001", "t0000", "t0002"]  # feasible, non-dominated, best first by val/epe; t0004 violates epe>=1
    data = report.results
    assert [p["trial_id"] for p in data["pareto"]] == front and data["best"]["trial_id"] == "t0001"
    assert data["best"]["values"] == {"val/epe": 1.5, "train/time_s": 8.0}
    assert data["best_rule"] == "the Pareto front's trial best by val/epe (min) among the trials meeting val/epe>=1"
    assert json.loads((report.run_dir / "pareto.json").read_text())["pareto"] == data["pareto"]
    hist = {h["trial_id"]: h for h in data["history"]}
    assert hist["t0004"]["feasible"] is False and hist["t0004"]["pareto"] is False and hist["t0005"]["values"] == {
        "val/epe": None, "train/time_s": None}
    # the leaderboard: the front marked, feasible first, the failed trial last and never on it
    assert f"Pareto front (val/epe:min, train/time_s:min): {', '.join(front)}" in printed
    rows = [line.split() for line in printed.splitlines() if line.startswith(("1 ", "2 ", "3 ", "4 ", "5 ", "- "))]
    assert [r[1] for r in rows] == [*front, "t0003", "t0004", "t0005"]
    assert [r[4] for r in rows] == ["*", "*", "*", "2", "-", "-"] and rows[4][6] == "no"  # t0004 infeasible
    assert printed.splitlines()[1].startswith("Best: t0001 with val/epe = 1.5 (the Pareto front's trial best")
    page = report.html_path.read_text()
    assert "<h2>Pareto front</h2>" in page and all(t in page for t in front) and page.count("<svg") == 4
    assert report.plots["pareto"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # MLflow: each scored trial run tagged, the front on the parent, pareto.json and the plot among its artifacts
    tags = {r.handle.name: r.tags.get(PARETO_TAG) for r in tracker.runs.values() if r.handle.name.startswith("t")}
    assert tags == {"t0000": "true", "t0001": "true", "t0002": "true", "t0003": "false", "t0004": "false",
                    "t0005": None}
    run = tracker.runs[parent.run_id]
    assert json.loads(run.tags[FRONT_TAG]) == front
    assert {"report/pareto.json", "report/plots/pareto.png"} <= set(tracker.artifacts(parent.run_id))


def test_no_feasible_trial_means_no_front_and_no_best(tmp_path):
    trials = [_trial(0, 2.0, 5.0), _trial(1, 1.5, 8.0)]
    out = io.StringIO()
    report = write_report(tmp_path, trials, metric="val/epe", mode="min", space=None, best_spec=None, complete=True,
                          stream=out, objectives=[EPE, TIME], constraints=[Constraint("train/time_s", "<=", 1.0)])
    assert report.results["best"] is None and report.results["pareto"] == []
    assert "Pareto front: none: no trial meets train/time_s<=1 (closest: t0000, val/epe=2, train/time_s=5)" in \
        out.getvalue()


def test_one_objective_with_a_constraint_picks_the_best_feasible_trial(tmp_path):
    trials = [_trial(0, 2.0, 5.0), _trial(1, 1.5, 8.0), _trial(2, 1.8, 2.0)]
    report = write_report(tmp_path, trials, metric="val/epe", mode="min", space=None, best_spec=None, complete=True,
                          stream=None, objectives=[EPE], constraints=[Constraint("train/time_s", "<=", 6.0)])
    assert report.results["best"]["trial_id"] == "t0002" and "pareto" not in report.plots
    assert [p["trial_id"] for p in report.results["pareto"]] == ["t0002"]
