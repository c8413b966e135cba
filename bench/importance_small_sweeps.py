"""Parameter importance at the sizes of our sweeps: ours (automl/report/importance.py, binned ε²) against
Optuna's evaluators (fANOVA, PED-ANOVA, mean decrease impurity) on synthetic trial lists.

    python -m bench.importance_small_sweeps --trials 8 16 --seeds 100

Each trial list has three parameters: ``lr`` (log-uniform, drives the metric), ``opt`` (categorical,
drives it less) and ``decay`` (uniform, irrelevant), plus noise; a second list is pure noise (no
parameter matters). Per method and size it prints how often ``decay`` is ranked strictly last and a
driving parameter (lr or opt) first, the mean share each method gives ``decay``, and the largest share it
gives any parameter of pure noise (a sensible method keeps both small). Optuna's evaluators always
normalise to sum 1, so on pure noise some parameter always gets a large share.
"""
from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np


def trial_list(n: int, seed: int, noise_only: bool = False) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        lr, decay = float(10 ** rng.uniform(-4, -2)), float(rng.uniform(0.05, 1.0))
        opt = str(rng.choice(["AdamW", "SGD"]))
        signal = 0.0 if noise_only else 2.0 * abs(math.log10(lr) + 3.0) + (1.0 if opt == "SGD" else 0.0)
        out.append(({"lr": lr, "decay": decay, "opt": opt}, signal + float(rng.normal(0, 0.3))))
    return out


def study_of(points: list):
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import create_trial

    dists = {"lr": FloatDistribution(1e-4, 1e-2, log=True), "decay": FloatDistribution(0.05, 1.0),
             "opt": CategoricalDistribution(["AdamW", "SGD"])}
    study = optuna.create_study(direction="minimize")
    study.add_trials([create_trial(params=p, distributions=dists, value=m) for p, m in points])
    return study


def methods(seed: int) -> dict:
    import optuna.importance as oi

    from automl.report.importance import param_importance

    def ours(points):
        return {p.name: p.importance for p in param_importance(points).params}

    def optuna_eval(evaluator):
        return lambda points: oi.get_param_importances(study_of(points), evaluator=evaluator, normalize=True)

    return {"ours (binned eps^2)": ours,
            "optuna fANOVA": optuna_eval(oi.FanovaImportanceEvaluator(seed=seed)),
            "optuna PED-ANOVA": optuna_eval(oi.PedAnovaImportanceEvaluator()),
            "optuna MDI": optuna_eval(oi.MeanDecreaseImpurityImportanceEvaluator(seed=seed))}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--seeds", type=int, default=100)
    args = parser.parse_args(argv)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    print("| method | trials | decay last | top driver | decay share | noise max | s/call |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for n in args.trials:
        for name in methods(0):
            last = top = 0
            decay_share, noise_max, took = [], [], 0.0
            for seed in range(args.seeds):
                fn = methods(seed)[name]
                start = time.perf_counter()
                imp = fn(trial_list(n, seed))
                took += time.perf_counter() - start
                order = sorted(imp, key=lambda k: -imp[k])
                last += order[-1] == "decay" and imp["decay"] < max(imp.values())
                top += order[0] in ("lr", "opt") and imp[order[0]] > imp["decay"]
                decay_share.append(imp.get("decay", 0.0))
                noise = fn(trial_list(n, 10_000 + seed, noise_only=True))
                noise_max.append(max(noise.values(), default=0.0))
            k = args.seeds
            print(f"| {name} | {n} | {last / k:.0%} | {top / k:.0%} | {np.mean(decay_share):.2f} | "
                  f"{np.mean(noise_max):.2f} | {took / k:.3f} |", flush=True)


if __name__ == "__main__":
    main()
