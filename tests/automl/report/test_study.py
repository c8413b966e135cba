"""automl/report/study.py: a sweep's trial list as an in-memory Optuna study (what Optuna's plots read)."""
from __future__ import annotations

import optuna
from optuna.trial import TrialState

from automl.report.study import report_study, trial_score
from automl.space.build import SearchSpace
from automl.space.param import Param

SPACE = SearchSpace({"lr": Param.real(1e-4, 1e-2, log=True), "bs": Param.power_of(2, 1, 8)})
TRIALS = [
    {"trial_id": "t0000", "status": "completed", "params": {"lr": 1e-3, "bs": 4}, "metric": 2.0},
    {"trial_id": "t0001", "status": "failed", "params": {"lr": 5e-3, "bs": 2}, "metric": None},
    {"trial_id": "t0002", "status": "stopped", "params": {"lr": 2e-4, "bs": 8}, "metric": 3.5},
    {"trial_id": "t0003", "status": "completed", "params": {"lr": 1e-2, "bs": 1}, "metric": float("nan")},
    {"trial_id": "t0004", "status": "completed", "params": {"lr": 1e-4, "bs": 1}, "metric": 1.0,
     "interrupted": True},
]


def test_every_trial_in_launch_order_with_its_score_or_none():
    study = report_study(TRIALS, SPACE, "min")
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]
    assert [t.user_attrs["trial_id"] for t in trials] == [t["trial_id"] for t in TRIALS]
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE,
                                         TrialState.FAIL, TrialState.FAIL]  # NaN and interrupted: no score
    assert [t.value for t in trials] == [2.0, None, 3.5, None, None]
    assert trials[1].params == {"lr": 5e-3, "bs": 2}  # a failed trial keeps what it tried
    assert study.best_trial.user_attrs["trial_id"] == "t0000" and study.direction.name == "MINIMIZE"
    assert trials[0].distributions == {"lr": SPACE["lr"].optuna, "bs": SPACE["bs"].optuna}


def test_without_a_space_optuna_gets_the_observed_ranges_and_optuna_apis_work():
    study = report_study([{**t, "params": {**t["params"], "opt": "SGD" if i % 2 else "AdamW"}}
                          for i, t in enumerate(TRIALS)], None, "max")
    dists = study.trials[0].distributions
    assert dists["lr"] == optuna.distributions.FloatDistribution(1e-4, 1e-2)
    assert dists["opt"] == optuna.distributions.CategoricalDistribution(["AdamW", "SGD"])
    assert study.best_trial.user_attrs["trial_id"] == "t0002"  # mode max
    assert set(optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())) <= {"lr", "bs", "opt"}


def test_trial_score_rules():
    assert [trial_score(t) for t in TRIALS] == [2.0, None, 3.5, None, None]
    assert trial_score({"status": "completed", "metric": True}) is None
    assert trial_score({"status": "completed", "metric": "1.5"}) == 1.5
