"""The overhead-free reference: our default search (TPE + successive halving) by Optuna alone.

    python -m bench.search_efficiency.optuna_ref --run-dir DIR --seed S --num-samples N [overrides...]

One process, one trial at a time, no Ray and no MLflow. The plan (search space, base spec, sampler
settings, grace period, reduction factor, max_t) comes from the same `automl.plan.launch.build_plan` as a
sweep, and the sampler from the same `automl.tune.backend` function, so the only differences from
``tpe+asha`` are Ray's asynchronous, 2-at-a-time execution and its overheads. Each trial trains through
`automl.tune.trial.run_trial` (the sweep's own trial code) into the sweep ledger layout, and the finished
run writes the sweep's results.json with `automl.report.write_report`, so the analysis reads it like
any sweep. Finished trials are never re-run: a restarted run replays them into the study.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence


def run(run_dir: Path, seed: int, num_samples: int, overrides: List[str], skill: str, space_file: str,
        grace_period: int = 1, reduction_factor: int = 3) -> Path:
    import optuna

    from automl.plan.configs import RunConfig, SearchConfig, TuneConfig

    from automl.plan.launch import build_plan
    from automl.tune.ledger import Ledger, trial_id_for
    from automl.report.results import write_report
    from automl.tune.backend import DefineByRun, _sampler, prepare_study
    from automl.tune.trial import TrialContext, TrialFailure, run_trial
    from automl.tune.trial_runs import INDEX_KEY

    plan = build_plan(SearchConfig(skill=skill, policy="on", search_space=space_file, overrides=overrides),
                      tune=TuneConfig(algorithm="tpe", scheduler="asha", num_samples=num_samples, max_concurrent=1,
                                      seed=seed, grace_period=grace_period, reduction_factor=reduction_factor),
                      where=RunConfig(output=str(run_dir)))
    space = plan.search_space()
    ledger = Ledger(plan.run_dir, metric=plan.metric, mode=plan.mode)
    for t in ledger.unfinished():  # a trial cut by a crash: counted as failed, the sampler learns nothing
        ledger.finalize(t["trial_id"], "failed", error="interrupted (benchmark restarted)", interrupted=True)
    storage, todo = prepare_study(plan, space, ledger)  # replays finished trials, as `automl run --resume`
    study = optuna.load_study(storage=storage, study_name="automl", sampler=_sampler(plan))
    study.pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=plan.grace_period,
                                                          reduction_factor=plan.reduction_factor)
    ctx = TrialContext(run_dir=str(plan.run_dir), base_spec=plan.base_spec, metric=plan.metric, mode=plan.mode,
                       tracking_uri=None, max_t=plan.max_t)
    space_fn = DefineByRun(space)

    def objective(trial: optuna.Trial) -> float:
        space_fn(trial)  # suggests every parameter (relations honoured) into trial.params
        config = {**trial.params, INDEX_KEY: trial.number}
        trial_id = trial_id_for(trial.number)

        def report(values: dict) -> None:
            step = int(values["epoch"])
            trial.report(float(values[plan.metric]), step)
            if step < plan.max_t and trial.should_prune():
                raise SystemExit  # what a scheduler stop looks like to run_trial

        try:
            entry = run_trial(config, ctx, report)
        except SystemExit:
            ledger.finalize(trial_id, "stopped", params=trial.params)
            raise optuna.TrialPruned() from None
        except TrialFailure as exc:
            ledger.finalize(trial_id, "failed", error=str(exc), params=trial.params)
            raise
        ledger.finalize(trial_id, "completed", params=trial.params)
        if entry["metric"] is None:
            raise TrialFailure(f"trial {trial_id} has no {plan.metric}")
        return float(entry["metric"])

    study.optimize(objective, n_trials=todo, catch=(TrialFailure,))
    write_report(plan.run_dir, ledger.trials(), metric=plan.metric, mode=plan.mode, space=space, best_spec=None,
                 complete=True, algorithm="optuna tpe+successive-halving (one process)", stream=None)
    return Path(plan.run_dir) / "results.json"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search_efficiency.optuna_ref",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--num-samples", type=int, required=True)
    parser.add_argument("--skill", default="tiny-demo")
    parser.add_argument("--search-space", required=True)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    print(run(Path(args.run_dir), args.seed, args.num_samples, list(args.overrides), args.skill, args.search_space))
    return 0


if __name__ == "__main__":
    sys.exit(main())
