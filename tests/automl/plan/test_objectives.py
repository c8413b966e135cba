"""automl/plan/objectives.py: --objective / --constraint parsing, the refusals (each one line with the fix),
the scheduler `auto` rule, and a trial's objective and constraint values read from its ledger entry."""
from __future__ import annotations

import math

import pytest

from automl.errors import LaunchError
from automl.plan.objectives import (Constraint, Objective, check_algorithm, checkpoint_monitor, metric_of,
                                    parse_constraint, parse_objective, resolve_objectives, resolve_scheduler,
                                    values_of, violations_of)

TWO = [Objective("val/epe", "min"), Objective("train/time_s", "min")]


@pytest.mark.parametrize("text, expected", [("val/epe:min", Objective("val/epe", "min")),
                                            ("epe:max", Objective("val/epe", "max")),
                                            ("val/d1_pooled:min", Objective("val/d1_pooled", "min")),
                                            ("train/time_s:min", Objective("train/time_s", "min"))])
def test_an_objective_is_a_reported_metric_and_a_mode(text, expected):
    assert parse_objective(text) == expected


@pytest.mark.parametrize("text, message", [
    ("val/epe", "give the direction after a colon, e.g. --objective val/epe:min"),
    ("val/epe:lowest", "mode 'lowest' is not min or max; e.g. --objective val/epe:min"),
    ("val/epee:min", "no trial reports 'val/epee' (did you mean 'val/epe'?)"),
    ("deploy/latency_ms:min", "add --score-on deploy"),
])
def test_a_bad_objective_is_refused_with_the_fix(text, message):
    with pytest.raises(LaunchError, match="^--objective ") as err:
        parse_objective(text)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_deploy_metrics_are_objectives_when_trials_are_scored_on_the_deployed_model():
    assert parse_objective("deploy/latency_ms:min", deploy=True) == Objective("deploy/latency_ms", "min")
    assert parse_constraint("deploy/latency_ms<=25", deploy=True) == Constraint("deploy/latency_ms", "<=", 25.0)


@pytest.mark.parametrize("text, expected", [("val/epe<=2.5", Constraint("val/epe", "<=", 2.5)),
                                            (" train/time_s >= 1e-1 ", Constraint("train/time_s", ">=", 0.1)),
                                            ("epe=<3", Constraint("val/epe", "<=", 3.0))])
def test_a_constraint_is_a_bound_on_a_reported_metric(text, expected):
    assert parse_constraint(text) == expected


@pytest.mark.parametrize("text, message", [
    ("val/epe==3", "'==' is not a bound; use <= or >="),
    ("val/epe<3", "'<' is not a bound; use <= or >="),
    ("val/epe<=fast", "'fast' is not a number"),
    ("latency", "expected METRIC<=NUMBER or METRIC>=NUMBER"),
    ("val/epf<=3", "no trial reports 'val/epf' (did you mean 'val/epe'?)"),
    ("val/epe<=inf", "the bound must be finite"),
])
def test_a_bad_constraint_is_refused_with_the_fix(text, message):
    with pytest.raises(LaunchError, match="^--constraint ") as err:
        parse_constraint(text)
    assert message in str(err.value)


def test_metric_mode_and_objective_are_two_spellings_of_the_objective():
    assert resolve_objectives((), None, None, "val/epe", "min") == [Objective("val/epe", "min")]
    assert resolve_objectives((), "bp3", "min", "val/epe", "min") == [Objective("val/bp3", "min")]
    assert resolve_objectives(("val/epe:min", "train/time_s:min"), None, None, "val/epe", "min") == TWO
    with pytest.raises(LaunchError, match="--metric val/epe and --objective both name the objective; drop"):
        resolve_objectives(("val/epe:min",), "val/epe", None, "val/epe", "min")
    with pytest.raises(LaunchError, match="--objective val/epe is given twice"):
        resolve_objectives(("val/epe:min", "epe:max"), None, None, "val/epe", "min")


def test_auto_picks_asha_for_one_objective_and_none_for_several():
    assert resolve_scheduler("auto", TWO[:1]) == ("asha", None)
    scheduler, note = resolve_scheduler("auto", TWO)
    assert scheduler == "none" and "cannot rank the objectives (val/epe, train/time_s)" in note
    assert resolve_scheduler("none", TWO) == ("none", None)
    assert resolve_scheduler("auto", [Objective("train/time_s", "min")])[0] == "none"  # not a validation metric


@pytest.mark.parametrize("scheduler", ["asha", "hyperband"])
def test_early_stopping_with_several_objectives_is_refused_with_the_reason(scheduler):
    with pytest.raises(LaunchError, match=f"--scheduler {scheduler} stops trials by ranking one validation metric "
                                          "and cannot rank the objectives .*pass --scheduler none"):
        resolve_scheduler(scheduler, TWO)


def test_cmaes_cannot_search_several_objectives():
    with pytest.raises(LaunchError, match="--algorithm cmaes .* one objective"):
        check_algorithm("cmaes", TWO, ())
    assert check_algorithm("nsga2", TWO, [Constraint("val/epe", "<=", 3)]) == []
    assert "without regard to the constraints" in check_algorithm("random", TWO, [Constraint("val/epe", "<=", 3)])[0]


def test_the_checkpoint_is_kept_by_the_first_validation_objective():
    assert checkpoint_monitor(TWO) == ("val/epe", "min", None)
    assert checkpoint_monitor(list(reversed(TWO)))[:2] == ("val/epe", "min")
    metric, mode, note = checkpoint_monitor([Objective("train/time_s", "min")])
    assert (metric, mode) == ("val/epe", "min") and "no objective is a validation metric" in note


def test_a_trials_values_come_from_the_validation_it_kept_else_its_latest_report():
    entry = {"metrics": {"val/epe": 2.0, "train/time_s": 4.0},
             "history": [{"val/epe": 3.0, "train/time_s": 2.0}, {"val/epe": 2.0, "train/time_s": 4.0,
                                                                 "deploy/latency_ms": 7.5}]}
    assert values_of(entry, TWO) == {"val/epe": 2.0, "train/time_s": 4.0}
    assert metric_of(entry, "deploy/latency_ms") == 7.5 and metric_of(entry, "val/bp3") is None
    bounds = [Constraint("val/epe", "<=", 2.5), Constraint("train/time_s", ">=", 5.0), Constraint("val/bp3", "<=", 1)]
    assert violations_of(entry, bounds) == [-0.5, 1.0, math.inf]  # <= 0 met; a missing metric is never met
