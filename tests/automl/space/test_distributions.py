"""automl/space/distributions.py: every distribution validates itself, samples inside itself, reports itself."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from automl.space.distributions import BoolDist, CategoricalDist, FloatDist, IntDist, PowerOfDist, as_rng


@pytest.mark.parametrize("make, message", [
    (lambda: FloatDist(1.0, 0.5), "`low <= high` must hold, but got (low=1.0, high=0.5)."),
    (lambda: FloatDist(0.0, 1.0, log=True), "`low > 0` must hold for log=True"),
    (lambda: FloatDist(0.0, math.inf), "must be finite"),
    (lambda: FloatDist(0.5, 0.5, low_open=True), "an open interval needs `low < high`"),
    (lambda: FloatDist("a", 1.0), "must be real numbers"),
    (lambda: IntDist(5, 1), "`low <= high` must hold, but got (low=5, high=1)."),
    (lambda: IntDist(0, 10, step=3), "must be a multiple of `step`"),
    (lambda: IntDist(1, 10, step=0), "`step >= 1` must hold"),
    (lambda: IntDist(0, 10, log=True), "`low >= 1` must hold for log=True"),
    (lambda: IntDist(1.5, 10), "must be integers"),
    (lambda: PowerOfDist(1, 1, 8), "`base >= 2` must hold"),
    (lambda: PowerOfDist(2, 5, 7), "no power of 2 lies in [low, high]"),
    (lambda: CategoricalDist(()), "`choices` must contain one or more elements"),
    (lambda: CategoricalDist(("a", "a")), "must be unique"),
    (lambda: CategoricalDist(("a", "b"), (1.0,)), "`len(weights) == len(choices)` must hold"),
    (lambda: CategoricalDist(("a", "b"), (0.0, 0.0)), "not all 0"),
    (lambda: CategoricalDist(([1],)), "choices must be None, bool, int, float or str"),
    (lambda: BoolDist(1.5), "`0 <= p_true <= 1` must hold"),
])
def test_invalid_distributions_raise_optuna_style(make, message):
    with pytest.raises(ValueError) as err:
        make()
    assert message in str(err.value)


@pytest.mark.parametrize("dist", [
    FloatDist(1e-6, 1e-3, log=True),
    FloatDist(0.0, 1.0, low_open=True),
    FloatDist(0.0, 1.0, high_open=True),
    IntDist(1, 10),
    IntDist(32, 704, step=32),
    IntDist(1, 1000, log=True),
    PowerOfDist(2, 1, 64),
    CategoricalDist(("AdamW", "SGD"), (3.0, 1.0)),
    CategoricalDist((4, 8, 16), ordered=True),
    BoolDist(),
])
def test_samples_are_contained_and_json_ready(dist):
    rng = np.random.default_rng(0)
    values = [dist.sample(rng) for _ in range(200)]
    assert all(dist.contains(v) for v in values)
    assert type(values[0]) in (float, int, str, bool)  # plain Python scalars, not numpy
    json.dumps(dist.to_dict())
    json.dumps(values)


def test_open_low_end_is_never_returned_even_when_drawn():
    class ZeroRng:  # first draw lands exactly on the open bound
        def __init__(self):
            self.calls = 0

        def random(self):
            self.calls += 1
            return 0.0 if self.calls == 1 else 0.25

    dist = FloatDist(0.0, 1.0, low_open=True)
    assert dist.sample(ZeroRng()) == 0.25
    assert not dist.contains(0.0) and dist.contains(1.0)
    assert dist.closed_low > 0.0 and dist.closed_high == 1.0


def test_log_uniform_spreads_over_decades():
    dist = FloatDist(1e-6, 1e-2, log=True)
    rng = np.random.default_rng(1)
    decades = np.floor(np.log10([dist.sample(rng) for _ in range(4000)]))
    counts = np.bincount((decades + 6).astype(int), minlength=4)
    # TAO's linear sampling would put ~90 % above 1e-3; log-uniform gives each decade ~25 %
    assert all(800 < c < 1200 for c in counts), counts


def test_int_step_and_power_contains():
    assert IntDist(32, 704, step=32).contains(64) and not IntDist(32, 704, step=32).contains(65)
    assert not IntDist(1, 10).contains(True) and not IntDist(1, 10).contains(2.0)
    assert PowerOfDist(2, 3, 100).choices == (4, 8, 16, 32, 64)
    assert PowerOfDist(3, 1, 30).choices == (1, 3, 9, 27)


def test_categorical_keeps_bool_apart_from_int_and_honours_weights():
    dist = CategoricalDist((1, 0))
    assert not dist.contains(True) and dist.contains(np.int64(1))
    weighted = CategoricalDist(("a", "b"), (9.0, 1.0))
    rng = np.random.default_rng(0)
    share = sum(weighted.sample(rng) == "a" for _ in range(2000)) / 2000
    assert 0.85 < share < 0.95


def test_restricted_intersects_intervals():
    assert FloatDist(0.0, 1.0).restricted(low=0.5, low_open=True).to_dict()["low_open"] is True
    assert FloatDist(0.0, 1.0).restricted(high=0.2) == FloatDist(0.0, 0.2)
    assert IntDist(0, 100, step=10).restricted(low=15, high=61) == IntDist(20, 60, step=10)
    assert IntDist(1, 10).restricted(low=3, low_open=True) == IntDist(4, 10)
    assert PowerOfDist(2, 1, 64).restricted(low=8, low_open=True) == PowerOfDist(2, 16, 64)
    with pytest.raises(ValueError, match="`low <= high` must hold"):
        FloatDist(0.0, 1.0).restricted(low=2.0)


def test_same_seed_same_samples():
    dist = FloatDist(1e-6, 1e-3, log=True)
    assert dist.sample(as_rng(7)) == dist.sample(as_rng(7))
