"""The compared algorithms, how each is launched, and how its sampler is seeded.

Every algorithm except ``optuna`` is one `automl run` sweep (Ray Tune + Optuna + MLflow, the user's
command). ``optuna`` is the overhead-free reference: our default search (the same TPE sampler settings,
successive halving with the same grace period and reduction factor as ASHA) run by Optuna alone in one
process, one trial at a time, no Ray, no MLflow (bench/search_efficiency/optuna_ref.py).

Sampler seeds: seed ``s`` of algorithm ``a`` runs with ``--seed sampler_seed(a, s)``, a hash of both, so
no two algorithms share their random start-up draws by construction; each algorithm's seeds are still
reproducible. Training itself is seeded identically in every trial (``train.seed=0``).
"""
from __future__ import annotations

import hashlib
import math
from typing import Dict, List

#: name -> CLI flags, trials at once, trials launched per full-trial budget (ASHA stops most trials
#: after 1-3 of 4 epochs, so it needs more launches to spend the same trial-epochs; curves are cut at
#: the budget, so over-launching only costs wall time)
ALGORITHMS: Dict[str, dict] = {
    "tpe+asha": {"flags": ["--algorithm", "tpe", "--scheduler", "asha"], "concurrency": 2, "oversample": 2.5},
    "tpe": {"flags": ["--algorithm", "tpe", "--scheduler", "none"], "concurrency": 2, "oversample": 1},
    "random+asha": {"flags": ["--algorithm", "random", "--scheduler", "asha"], "concurrency": 2, "oversample": 2.5},
    "random": {"flags": ["--algorithm", "random", "--scheduler", "none"], "concurrency": 2, "oversample": 1},
    "gp": {"flags": ["--algorithm", "bayesian", "--scheduler", "none"], "concurrency": 1, "oversample": 1},
    "optuna": {"flags": [], "concurrency": 1, "oversample": 2.5},  # TPE + successive halving, no Ray
    # variants of the default, run on request (--algorithms tpe+asha-g2 ...): candidate default changes
    "tpe+asha-g2": {"flags": ["--algorithm", "tpe", "--scheduler", "asha", "--grace-period", "2"],
                    "concurrency": 2, "oversample": 2},
    "tpe+asha-rf2": {"flags": ["--algorithm", "tpe", "--scheduler", "asha", "--reduction-factor", "2"],
                     "concurrency": 2, "oversample": 2},
}
BASELINE = "random"
LABELS = {"tpe+asha": "TPE + ASHA (default)", "tpe": "TPE, no early stopping", "random+asha": "random + ASHA",
          "random": "random, no early stopping", "gp": "GP, sequential (TAO default)",
          "optuna": "Optuna alone, TPE + SHA (no Ray)", "tpe+asha-g2": "TPE + ASHA, grace period 2",
          "tpe+asha-rf2": "TPE + ASHA, reduction factor 2"}


def sampler_seed(name: str, seed: int) -> int:
    """A stable 31-bit seed for (algorithm, benchmark seed): sha256 of "<name>/<seed>"."""
    return int.from_bytes(hashlib.sha256(f"{name}/{seed}".encode()).digest()[:4], "big") % (2 ** 31)


def num_samples(name: str, budget: int, epochs_per_trial: int) -> int:
    return max(1, math.ceil(budget / epochs_per_trial * ALGORITHMS[name]["oversample"]))


def sweep_argv(name: str, seed: int, budget: int, epochs_per_trial: int, run_dir: str, space_file: str,
               skill: str, overrides: List[str]) -> List[str]:
    """`automl run` arguments of one sweep (not for ``optuna``, which has no sweep CLI)."""
    cfg = ALGORITHMS[name]
    return ["run", "--skill", skill, "--policy", "on", "--search-space", space_file, *cfg["flags"],
            "--num-samples", str(num_samples(name, budget, epochs_per_trial)),
            "--max-concurrent", str(cfg["concurrency"]), "--seed", str(sampler_seed(name, seed)),
            "--output", run_dir, *overrides]
