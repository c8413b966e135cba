"""automl/space/param.py: each kind validates itself, becomes Optuna's own distribution, and keeps what
TAO's dialect adds (open bounds, powers, bools apart from ints, relations, the report's description)."""
import json
import math
import subprocess
import sys

import numpy as np
import optuna
import pytest

from automl.space.build import SearchSpace
from automl.space.param import Param


@pytest.mark.parametrize("make, message", [
    (lambda: Param.real(1.0, 0.5), "`low <= high` must hold, but got (low=1.0, high=0.5)."),
    (lambda: Param.real(0.0, 1.0, log=True), "`low > 0` must hold for log=True"),
    (lambda: Param.real(0.0, math.inf), "must be finite"),
    (lambda: Param.real(0.5, 0.5, low_open=True), "an open interval needs `low < high`"),
    (lambda: Param.real("a", 1.0), "must be finite real numbers"),
    (lambda: Param.integer(5, 1), "`low <= high` must hold, but got (low=5, high=1)."),
    (lambda: Param.integer(0, 10, step=3), "divides `high - low`"),
    (lambda: Param.integer(1, 10, step=0), "an integer >= 1"),
    (lambda: Param.integer(0, 10, log=True), "`low > 0` must hold for log=True"),
    (lambda: Param.integer(1.5, 10), "must be finite integers"),
    (lambda: Param.power_of(1, 1, 8), "`base >= 2` must hold"),
    (lambda: Param.power_of(2, 5, 7), "no power of 2 lies in [low, high]"),
    (lambda: Param.categorical(()), "`choices` must contain one or more elements"),
    (lambda: Param.categorical(("a", "a")), "must be unique"),
    (lambda: Param.categorical(("a", "b"), (1.0,)), "`len(weights) == len(choices)` must hold"),
    (lambda: Param.categorical(("a", "b"), (0.0, 0.0)), "not all 0"),
    (lambda: Param.categorical(([1],)), "choices must be None, bool, int, float or str"),
])
def test_invalid_params_raise_optuna_style(make, message):
    with pytest.raises(ValueError) as err:
        make()
    assert message in str(err.value)


KINDS = [
    Param.real(1e-6, 1e-3, log=True),
    Param.real(0.0, 1.0, low_open=True),
    Param.real(0.0, 1.0, high_open=True),
    Param.integer(1, 10),
    Param.integer(32, 704, step=32),
    Param.integer(1, 1000, log=True),
    Param.power_of(2, 1, 64),
    Param.categorical(("AdamW", "SGD"), (3.0, 1.0)),
    Param.categorical((4, 8, 16), ordered=True),
    Param.boolean(),
]


@pytest.mark.parametrize("param", KINDS)
def test_optuna_draws_every_kind_inside_it(param):
    """Optuna's own distribution object, and every value Optuna's sampler draws from it is contained."""
    dist = param.optuna
    assert isinstance(dist, (optuna.distributions.FloatDistribution, optuna.distributions.IntDistribution,
                             optuna.distributions.CategoricalDistribution))
    space = SearchSpace({"p": param})
    values = [space.sample(seed)["p"] for seed in range(60)]
    assert all(param.contains(v) for v in values)
    assert type(values[0]) in (float, int, str, bool)  # plain Python scalars, not numpy
    json.dumps(param.to_dict())
    json.dumps(values)


def test_open_bounds_become_the_nearest_closed_floats_for_optuna():
    param = Param.real(0.0, 1.0, low_open=True)
    assert param.optuna.low == math.nextafter(0.0, 1.0) and param.optuna.high == 1.0 and not param.optuna.log
    assert not param.contains(0.0) and param.contains(1.0) and param.contains(param.closed_low)
    assert param.to_dict() == {"kind": "float", "low": 0.0, "high": 1.0, "log": False, "low_open": True,
                               "high_open": False}  # the report keeps the bound the schema wrote
    assert Param.real(1e-6, 1e-3, log=True).optuna.log and Param.integer(0, 8, step=2).optuna.step == 2
    assert Param.power_of(2, 1, 16).optuna.choices == (1, 2, 4, 8, 16)
    assert Param.boolean().optuna.choices == (False, True)


def test_log_uniform_reaches_optuna_and_spreads_over_decades():
    space = SearchSpace({"lr": Param.real(1e-6, 1e-2, log=True)})
    decades = np.floor(np.log10([space.sample(seed)["lr"] for seed in range(400)]))
    counts = np.bincount((decades + 6).astype(int), minlength=4)
    # TAO's linear sampling would put ~90 % above 1e-3; log-uniform gives each decade ~25 %
    assert all(60 < c < 140 for c in counts), counts


def test_int_step_and_power_contains():
    assert Param.integer(32, 704, step=32).contains(64) and not Param.integer(32, 704, step=32).contains(65)
    assert not Param.integer(1, 10).contains(True) and not Param.integer(1, 10).contains(2.0)
    assert Param.power_of(2, 3, 100).choices == (4, 8, 16, 32, 64)
    assert Param.power_of(3, 1, 30).choices == (1, 3, 9, 27)


def test_categorical_keeps_bool_apart_from_int_where_optuna_does_not():
    param = Param.categorical((1, 0))
    assert not param.contains(True) and param.contains(np.int64(1))
    assert param.optuna.to_internal_repr(True) == 0  # Optuna's own takes True for 1: why `contains` is ours


def test_restricted_intersects_intervals():
    assert Param.real(0.0, 1.0).restricted(low=0.5, low_open=True).to_dict()["low_open"] is True
    assert Param.real(0.0, 1.0).restricted(high=0.2) == Param.real(0.0, 0.2)
    assert Param.integer(0, 100, step=10).restricted(low=15, high=61) == Param.integer(20, 60, step=10)
    assert Param.integer(1, 10).restricted(low=3, low_open=True) == Param.integer(4, 10)
    assert Param.power_of(2, 1, 64).restricted(low=8, low_open=True) == Param.power_of(2, 16, 64)
    with pytest.raises(ValueError, match="`low <= high` must hold"):
        Param.real(0.0, 1.0).restricted(low=2.0)
    with pytest.raises(ValueError, match="cannot be narrowed"):
        Param.boolean().restricted(low=1)


def test_building_a_space_does_not_import_optuna():
    """`automl --help` and `automl run --dry-run` build spaces; Optuna (~0.4 s to import) waits for a sampler."""
    code = ("import sys; from automl.space.param import Param; from automl.space.build import SearchSpace; "
            "s = SearchSpace({'a': Param.real(0.0, 1.0, low_open=True), 'b': Param.power_of(2, 1, 8)}); "
            "s.to_dict(); s.contains({'a': 0.5, 'b': 4}); print('optuna' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
