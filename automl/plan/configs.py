"""What a user asks of `automl run`, as three typed, self-validating configs (Ray Tune's split: the search
space and objective, how it is searched, where it runs; STYLE: litgpt's dataclass configs):

* :class:`SearchConfig`: what to train and search: the skill, the base spec, overrides, the policy and
  the request, the search-space file, the objective (metric/mode), dead-parameter handling;
* :class:`TuneConfig`: how: algorithm, scheduler and its rungs, budget (samples, concurrency, time,
  retries), seed;
* :class:`RunConfig`: where: output folder, CPUs/GPUs per trial, Ray cluster, MLflow tracking URI and
  experiment.

Each checks its own values when built and raises :class:`LaunchError` naming the option and the fix, so
a bad option fails before a spec is read. automl/plan/launch.py turns the three into a LaunchPlan.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from automl.errors import LaunchError

ALGORITHMS = {
    "tpe": "Optuna TPESampler (tree-structured Parzen estimator)",
    "random": "Optuna RandomSampler (independent uniform draws, relations honoured)",
    "grid": "every combination of --grid-points values per parameter (floats: evenly spaced, log-spaced "
            "for log ranges), run in order",
    "bayesian": "Optuna GPSampler (Gaussian-process Bayesian optimisation; TAO AutoML's default algorithm)",
    "cmaes": "Optuna CmaEsSampler (needs the `cmaes` package; one objective)",
    "nsga2": "Optuna NSGAIISampler (genetic, for several --objective; population a third of the budget, 2..50)",
}
SCHEDULERS = {
    "auto": "asha for one objective, none for several (early stopping ranks trials by one metric)",
    "asha": "ASHA (asynchronous successive halving): stops the worse trials at each rung",
    "hyperband": "HyperBand (asynchronous brackets of successive halving; never pauses a trial)",
    "none": "no early stopping: every trial trains its full budget (FIFO)",
}
#: why a schema's option_weights do not shape a sweep's draws, per --algorithm (every sweep samples
#: through Optuna, whose categorical distributions carry no prior)
WEIGHTS_IGNORED = {
    "tpe": "TPESampler models the objective from finished trials and draws its random start-up choices "
           "uniformly",
    "random": "Optuna's RandomSampler draws every categorical choice with equal probability",
    "grid": "the grid runs every choice once",
    "bayesian": "GPSampler models the objective, not a prior over choices",
    "cmaes": "CmaEsSampler draws categorical choices uniformly",
    "nsga2": "NSGAIISampler draws its first generation uniformly and mutates choices uniformly",
}


@dataclass(frozen=True)
class SearchConfig:
    """What is trained and searched."""

    skill: Optional[str] = None  # a name under skills/ ...
    skill_dir: Optional[str] = None  # ... or a skill directory in TAO's layout (exactly one of the two)
    spec: Optional[str] = None  # base spec YAML (default: the skill's spec_template_train.yaml)
    overrides: Tuple[str, ...] = ()  # key=value for every trial (shorthands expanded later)
    policy: Optional[str] = None  # --policy auto|on|off (None: read the request)
    request: Optional[str] = None  # the user's words
    search_space: Optional[str] = None  # search_spaces/<name>.yaml name or a YAML path
    metric: Optional[str] = None  # None: the search-space file's (val/epe)
    mode: Optional[str] = None  # min | max; None: the file's
    keep_dead_params: bool = False
    objectives: Tuple[str, ...] = ()  # --objective NAME:MODE, repeatable (--metric/--mode: the one-objective spelling)
    constraints: Tuple[str, ...] = ()  # --constraint 'NAME<=BOUND', repeatable (automl/plan/objectives.py)
    warm_start: Optional[str] = None  # --warm-start: a finished sweep folder whose trials seed the study

    def __post_init__(self):
        object.__setattr__(self, "objectives", tuple(self.objectives or ()))
        object.__setattr__(self, "constraints", tuple(self.constraints or ()))
        if bool(self.skill) == bool(self.skill_dir):
            raise LaunchError("pass exactly one of --skill NAME or --skill-dir DIR (e.g. --skill tiny-demo)")
        if self.mode is not None and self.mode not in ("min", "max"):
            raise LaunchError(f"--mode {self.mode!r} is not min or max")
        object.__setattr__(self, "overrides", tuple(self.overrides))


@dataclass(frozen=True)
class TuneConfig:
    """How it is searched: the sampler, the early-stopping scheduler and the budget."""

    algorithm: str = "tpe"
    scheduler: str = "auto"  # asha for one objective, none for several (automl/plan/objectives.py)
    num_samples: int = 8
    max_concurrent: Optional[int] = None  # None: CPUs / cpus_per_trial (and what fits on the GPUs)
    time_budget_s: Optional[float] = None
    max_failures: int = 0
    seed: int = 0
    grace_period: int = 1
    reduction_factor: int = 3
    grid_points: int = 3

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise LaunchError(f"--algorithm {self.algorithm!r} is not one of {', '.join(ALGORITHMS)}")
        if self.scheduler not in SCHEDULERS:
            raise LaunchError(f"--scheduler {self.scheduler!r} is not one of {', '.join(SCHEDULERS)}")
        for name, value, low in (("--num-samples", self.num_samples, 1), ("--grace-period", self.grace_period, 1),
                                 ("--reduction-factor", self.reduction_factor, 2),
                                 ("--grid-points", self.grid_points, 2), ("--max-failures", self.max_failures, 0)):
            if int(value) < low:
                raise LaunchError(f"{name} {value} must be >= {low}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise LaunchError(f"--time-budget {self.time_budget_s} must be > 0 seconds (omit it for no limit)")
        if self.max_concurrent is not None and int(self.max_concurrent) < 1:
            raise LaunchError(f"--max-concurrent {self.max_concurrent} must be >= 1")


@dataclass(frozen=True)
class RunConfig:
    """Where it runs and where its records go."""

    output: Optional[str] = None  # run folder (default automl_runs/<skill>-<timestamp>)
    cpus_per_trial: float = 1.0
    gpus_per_trial: Optional[float] = None  # None: from train.num_gpus (automl/plan/resources.py)
    ray_address: Optional[str] = None  # None: an embedded Ray for this run
    tracking_uri: Optional[str] = None  # None: $MLFLOW_TRACKING_URI or sqlite:///<output>/mlflow.db
    experiment: str = "depth_net"

    def __post_init__(self):
        if self.cpus_per_trial <= 0:
            raise LaunchError(f"--cpus-per-trial {self.cpus_per_trial:g} must be > 0 (e.g. 1)")
        if self.gpus_per_trial is not None and self.gpus_per_trial < 0:
            raise LaunchError(f"--gpus-per-trial {self.gpus_per_trial:g} must be >= 0 (0: CPU trials)")
