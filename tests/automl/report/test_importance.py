"""automl.importance: binned ε² finds the parameter that drives the metric and ignores noise."""
from __future__ import annotations

import math

import numpy as np
import pytest

from automl.report.importance import epsilon_squared, param_importance, spearman


def _points(n=30, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        lr = float(10 ** rng.uniform(-4, -2))  # log-scale parameter
        decay = float(rng.uniform(0.05, 1.0))  # irrelevant
        opt = str(rng.choice(["AdamW", "SGD"]))
        metric = 2.0 * abs(math.log10(lr) + 3.0) + (1.5 if opt == "SGD" else 0.0) + rng.normal(0, 0.05)
        out.append(({"lr": lr, "decay": decay, "opt": opt}, metric))
    return out


def test_driving_parameters_outrank_noise_and_shares_sum_to_one():
    result = param_importance(_points())
    ranked = [p.name for p in result.params]
    assert set(ranked[:2]) == {"lr", "opt"} and ranked[-1] == "decay"
    assert result.by_name["decay"].importance < 0.1
    assert sum(p.importance for p in result.params) == pytest.approx(1.0)
    assert result.n_trials == 30 and result.by_name["opt"].spearman is None  # unordered: no direction


def test_monotone_transform_does_not_change_importance():
    pts = _points()
    logged = [({**p, "lr": math.log10(p["lr"])}, m) for p, m in pts]
    a, b = param_importance(pts).by_name["lr"], param_importance(logged).by_name["lr"]
    assert a.epsilon_sq == pytest.approx(b.epsilon_sq) and a.spearman == pytest.approx(b.spearman)


def test_pure_noise_is_near_zero_thanks_to_bias_correction():
    rng = np.random.default_rng(3)
    y = rng.normal(size=24)
    groups = np.repeat(np.arange(4), 6)
    assert epsilon_squared(groups, y) < 0.15  # plain eta^2 would average (k-1)/(n-1) = 0.13 here


def test_epsilon_squared_golden_value():
    # SS_total = 20, SS_between = 16, MS_within = 4/2 = 2 -> (16 - 2) / 20 = 0.7
    groups = np.array([0, 0, 1, 1])
    y = np.array([0.0, 2.0, 4.0, 6.0])
    assert epsilon_squared(groups, y) == pytest.approx(0.7)


def test_spearman_direction_and_constant():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert spearman(x, x ** 3) == pytest.approx(1.0) and spearman(x, -x) == pytest.approx(-1.0)
    assert spearman(np.ones(4), x) is None


def test_failed_and_nan_points_are_dropped_and_few_trials_give_a_note():
    pts = [({"lr": 0.1}, 1.0), ({"lr": 0.2}, None), ({"lr": 0.3}, float("nan"))]
    result = param_importance(pts)
    assert result.params == () and result.n_trials == 1 and "at least 3" in result.note


def test_constant_and_boolean_parameters():
    pts = [({"c": 5, "flag": i % 2 == 0}, float(i % 2 == 0) * 3 + 0.01 * i) for i in range(10)]
    result = param_importance(pts)
    assert result.by_name["c"].importance == 0.0 and result.by_name["flag"].importance == pytest.approx(1.0)
    assert result.by_name["flag"].spearman > 0.8
