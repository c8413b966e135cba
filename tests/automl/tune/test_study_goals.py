"""automl/tune/study.py with several objectives and constraints: each verdict told with the trial's objective
values (a trial lacking one is FAIL, never a number) and its constraint values as Optuna 5 keeps them
(`trial.constraints`, what TPE/NSGA-II/GP and plot_pareto_front read); a rebuilt study and --warm-start
seeding agree; read back with Optuna's own API."""
from __future__ import annotations

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from automl.plan.objectives import Constraint, Objective
from automl.space.build import SearchSpace
from automl.space.param import Param
from automl.tune.backend import DefineByRun
from automl.tune.ledger import Ledger
from automl.tune.study import STUDY_FILE, Goals, open_study, seed_study, sync_study, tell_verdict

SPACE = SearchSpace({"lr": Param.real(1e-4, 1e-2, log=True)})
GOALS = Goals((Objective("val/epe", "min"), Objective("train/time_s", "min")), (Constraint("val/epe", "<=", 2.5),))


def _load(run_dir):
    return optuna.load_study(study_name="automl", storage=JournalStorage(JournalFileBackend(str(run_dir / STUDY_FILE))))


def _trial(led, index, params, rows, verdict="completed"):
    tid = f"t{index:04d}"
    led.start_trial(tid, index, params)
    for i, (epe, time_s) in enumerate(rows, 1):
        row = {"iteration": i, "epoch": i, "step": i, "val/epe": epe}
        if time_s is not None:
            row["train/time_s"] = time_s
        led.add_validation(tid, row)
    led.finalize(tid, verdict)
    return tid


def test_verdicts_carry_every_objective_and_the_constraint_values(tmp_path):
    led, study = Ledger(tmp_path), open_study(tmp_path, ["min", "min"])
    asked = [study.ask() for _ in range(3)]
    for t in asked:
        DefineByRun(SPACE)(t)
    _trial(led, 0, asked[0].params, [(3.0, 1.0), (2.0, 2.0)])  # kept: epe 2.0 at time 2.0
    _trial(led, 1, asked[1].params, [(4.0, 1.5)])  # infeasible: epe 4 > 2.5
    _trial(led, 2, asked[2].params, [(1.0, None)])  # no train/time_s: cannot be a point of the front
    for i in range(3):
        assert tell_verdict(study, i, led.trial(f"t{i:04d}"), "val/epe", GOALS)
    first, second, third = _load(tmp_path).trials
    assert first.state.name == "COMPLETE" and first.values == [2.0, 2.0] and first.constraints == {"val/epe<=2.5": -0.5}
    assert second.values == [4.0, 1.5] and second.constraints == {"val/epe<=2.5": 1.5}
    assert third.state.name == "FAIL" and third.values is None
    assert [t.user_attrs["trial_id"] for t in _load(tmp_path).best_trials] == ["t0000"]  # Optuna agrees: feasible


def test_a_lost_study_is_rebuilt_with_the_objectives_and_constraints(tmp_path):
    led = Ledger(tmp_path)
    _trial(led, 0, {"lr": 1e-3}, [(2.0, 2.0)])
    _trial(led, 1, {"lr": 2e-3}, [(4.0, 1.5)])
    sync_study(open_study(tmp_path, ["min", "min"]), led, "val/epe", DefineByRun(SPACE).distributions, GOALS)
    trials = _load(tmp_path).trials
    assert [t.values for t in trials] == [[2.0, 2.0], [4.0, 1.5]]
    assert [t.constraints for t in trials] == [{"val/epe<=2.5": -0.5}, {"val/epe<=2.5": 1.5}]


def test_warm_start_trials_take_the_first_numbers_and_the_sampler_models_them(tmp_path):
    study = open_study(tmp_path, ["min", "min"])
    warm = [{"trial_id": "t0000", "params": {"lr": 1e-3}, "values": [2.0, 3.0], "violations": [-0.5]},
            {"trial_id": "t0001", "params": {"lr": 5e-3}, "values": [2.2, 1.0], "violations": [-0.3]}]
    assert seed_study(study, warm, DefineByRun(SPACE).distributions, "/old/sweep", GOALS) == 2
    loaded = _load(tmp_path)
    assert [(t.number, t.state.name, t.values, t.params) for t in loaded.trials] == [
        (0, "COMPLETE", [2.0, 3.0], {"lr": 1e-3}), (1, "COMPLETE", [2.2, 1.0], {"lr": 5e-3})]
    assert loaded.trials[0].user_attrs == {"trial_id": "warm:t0000", "outcome": "completed", "warm_start": "/old/sweep"}
    assert loaded.ask().number == 2  # the new sweep's first own trial is t0002
