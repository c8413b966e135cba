"""automl/space/relations.py: TAO's depends_on forms hold in real Optuna studies (the sweep's define-by-run space)
and in the grid, not only in SearchSpace.sample."""
from __future__ import annotations

import pytest

from automl.space.relations import Relation, as_number
from automl.space.build import build_search_space


def _schema() -> dict:
    leaf = {"automl_enabled": True}
    return {"type": "object", "properties": {"train": {"type": "object", "properties": {
        "crop": {"type": "int", "default": 320, "minimum": 100, "maximum": 700, "math_cond": "/ 32", **leaf},
        "groups": {"type": "int", "default": 10, "minimum": 1, "maximum": 32, "depends_on": "train.crop",
                   "math_cond": "/ 32", **leaf},
        "lr": {"type": "float", "default": 1e-4, "minimum": 1e-6, "maximum": 1e-2, **leaf},
        "max_lr": {"type": "float", "default": 1e-3, "minimum": 1e-6, "maximum": 1e-2, "depends_on": "train.lr",
                   "math_cond": "> depends_on", **leaf},
    }}}}


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["TPESampler", "GPSampler", "RandomSampler"])
def test_relations_hold_in_every_optuna_trial(sampler):
    optuna = pytest.importorskip("optuna")
    from automl.tune.backend import DefineByRun

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = build_search_space(_schema(), parameters=["train.groups", "train.crop", "train.max_lr", "train.lr"])
    define = DefineByRun(space)
    kwargs = {"n_startup_trials": 3} if sampler != "RandomSampler" else {}
    study = optuna.create_study(sampler=getattr(optuna.samplers, sampler)(seed=0, **kwargs))

    def objective(trial):
        define(trial)
        p = trial.params
        assert p["train.groups"] == p["train.crop"] // 32 and p["train.max_lr"] > p["train.lr"], p
        assert space.contains(p), space.problems(p)
        return p["train.lr"] * p["train.crop"]

    study.optimize(objective, n_trials=10)
    assert len(study.trials) == 10 and all(t.state.name == "COMPLETE" for t in study.trials)


def test_grid_keeps_only_points_where_the_derived_value_is_right():
    from automl.space.grid import grid_points

    points, _ = grid_points(build_search_space(_schema(), parameters=["train.groups", "train.crop"]), 3)
    assert len(points) == 18 and all(p["train.groups"] == p["train.crop"] // 32 for p in points)
    assert sorted(p["train.crop"] for p in points) == list(range(128, 673, 32))


def test_relation_arithmetic():
    assert Relation("//", "p", 4).bounds(17) == {"low": 4, "high": 4}
    assert Relation("//", "p", 4).parent_bounds(4) == {"low": 16, "high": 19}
    assert Relation(">", "p").parent_bounds(0.5) == {"high": 0.5, "high_open": True}
    assert Relation("<=", "p").parent_bounds(3) == {"low": 3}
    assert str(Relation("//", "p", 4)) == "= p // 4" and str(Relation(">=", "p")) == ">= p"
    assert Relation("//", "p", 4).holds(4, 19) and not Relation("//", "p", 4).holds(4, 20)
    assert [as_number(v) for v in ("5e-4", "8", 3, True, "x")] == [5e-4, 8, 3, None, None]
