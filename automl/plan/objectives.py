"""What a sweep optimises: one or more objectives (``--objective val/epe:min``, repeatable; ``--metric/--mode``
is the single-objective spelling) and constraints (``--constraint 'deploy/latency_ms<=25'``, repeatable).

Pure data and pure functions (no Optuna, no Ray): parsed and checked when the plan is built, so a typo is
exit 2 before anything starts; automl/tune/ tells Optuna the values, automl/report/pareto.py draws the front.

A trial's value of each objective is read from its ledger entry: first the validation it kept (its best by
the *first* objective: the checkpoint it ships), then, for a metric that validation lacks (one reported once,
at the end of the trial), the latest row that has it. A constraint ``m <= b`` is met when the trial's value
of ``m`` is at most ``b``; its violation (Optuna's ``constraints_func`` convention) is ``value - b`` (> 0:
infeasible), and a missing value is infeasible.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from automl.errors import LaunchError

MODES = ("min", "max")
#: metrics a trial reports besides the validation metrics (val/epe, val/bp3, ...), and what reports them
TRIAL_METRICS = {
    "train/time_s": "wall-clock seconds of training up to the validation (every trial)",
}
#: metrics of the deployed model; reported only when trials are scored on it (--score-on deploy)
DEPLOY_METRICS = {
    "deploy/epe": "EPE of the deployed model on the val set",
    "deploy/latency_ms": "median single-image latency of the deployed model",
    "deploy/peak_mem_mb": "peak memory while the deployed model runs",
    "deploy/drift_px": "mean |deployed - PyTorch| disparity",
}
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][\w./-]*)\s*(<=|>=|==|=<|=>|<|>|=)\s*([^\s<>=]\S*?)\s*$")


@dataclass(frozen=True)
class Objective:
    name: str  # the metric's full key (val/epe, train/time_s, deploy/latency_ms)
    mode: str  # min | max

    @property
    def direction(self) -> str:
        return "minimize" if self.mode == "min" else "maximize"

    def text(self) -> str:
        return f"{self.name}:{self.mode}"


@dataclass(frozen=True)
class Constraint:
    name: str
    op: str  # <= | >=
    bound: float

    def violation(self, value: Optional[float]) -> float:
        """Optuna's constraint value: <= 0 is feasible; a missing value is infinitely infeasible."""
        if value is None or not math.isfinite(value):
            return math.inf
        return value - self.bound if self.op == "<=" else self.bound - value

    def text(self) -> str:
        return f"{self.name}{self.op}{self.bound:g}"


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def known_metrics(deploy: bool = False) -> List[str]:
    """Every metric a trial of this plan reports: validation metrics, TRIAL_METRICS, and the deploy ones
    when trials are scored on the deployed model."""
    from stereo.metrics import MONITOR_NAMESPACE, POOLED_SUFFIX, StereoMetrics

    names = [*StereoMetrics(1).metric_names, "loss"]
    names += [n + POOLED_SUFFIX for n in names if n != "loss"]
    return [MONITOR_NAMESPACE + n for n in names] + list(TRIAL_METRICS) + (list(DEPLOY_METRICS) if deploy else [])


def metric_key(name: str, flag: str, deploy: bool = False, given: Optional[str] = None) -> str:
    """The metric's full key ('epe' -> 'val/epe'); LaunchError naming `flag` (and the `given` text) for one no
    trial reports."""
    text = str(name).strip()
    name = name if given is None else given
    known = known_metrics(deploy)
    if text in known:
        return text
    if "/" not in text and f"val/{text}" in known:
        return f"val/{text}"
    if text in DEPLOY_METRICS:
        raise LaunchError(f"{flag} {name}: {text} is reported only when trials are scored on the deployed model; add "
                          "--score-on deploy (or use a validation metric such as val/epe)")
    raise LaunchError(f"{flag} {name}: no trial reports {text!r}{_did_you_mean(text, known)}; use one of "
                      f"{', '.join(known)}")


def parse_objective(text: str, deploy: bool = False) -> Objective:
    """'val/epe:min' -> Objective; the mode is required (a metric's direction is never guessed)."""
    name, sep, mode = str(text).strip().rpartition(":")
    if not sep:
        raise LaunchError(f"--objective {text}: give the direction after a colon, e.g. --objective {text}:min "
                          "(lower is better) or :max")
    if mode not in MODES:
        raise LaunchError(f"--objective {text}: mode {mode!r} is not min or max; e.g. --objective {name}:min")
    return Objective(metric_key(name, "--objective", deploy, given=text), mode)


def parse_constraint(text: str, deploy: bool = False) -> Constraint:
    """'deploy/latency_ms<=25' -> Constraint; only <= and >= (an equality is never met by a float)."""
    match = _CONSTRAINT.match(str(text))
    if not match:
        raise LaunchError(f"--constraint {text!r}: expected METRIC<=NUMBER or METRIC>=NUMBER, e.g. "
                          "--constraint 'deploy/latency_ms<=25' (quote it: the shell reads < and >)")
    name, op, number = match.groups()
    op = {"=<": "<=", "=>": ">="}.get(op, op)
    if op not in ("<=", ">="):
        raise LaunchError(f"--constraint {text!r}: {op!r} is not a bound; use <= or >=, e.g. "
                          f"--constraint '{name}<={number}'")
    try:
        bound = float(number)
    except ValueError:
        raise LaunchError(f"--constraint {text!r}: {number!r} is not a number; e.g. "
                          f"--constraint '{name}<=25'") from None
    if not math.isfinite(bound):
        raise LaunchError(f"--constraint {text!r}: the bound must be finite")
    return Constraint(metric_key(name, "--constraint", deploy, given=text), op, bound)


def resolve_objectives(objectives: Sequence[str], metric: Optional[str], mode: Optional[str],
                       file_metric: str, file_mode: str, deploy: bool = False) -> List[Objective]:
    """The sweep's objectives: ``--objective`` (repeatable) or ``--metric/--mode`` (one), else the search-space
    file's metric/mode. Both spellings at once, or one metric twice, is refused."""
    if objectives and (metric or mode):
        given = " ".join(f"--{k} {v}" for k, v in (("metric", metric), ("mode", mode)) if v)
        raise LaunchError(f"{given} and --objective both name the objective; drop {given} and spell it as "
                          f"--objective {metric or file_metric}:{mode or file_mode} (--metric/--mode is the "
                          "single-objective spelling)")
    if not objectives:
        return [Objective(metric_key(metric or file_metric, "--metric" if metric else "the search-space metric",
                                     deploy), mode or file_mode)]
    parsed = [parse_objective(o, deploy) for o in objectives]
    names = [o.name for o in parsed]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise LaunchError(f"--objective {twice[0]} is given twice; name each metric once")
    return parsed


def checkpoint_monitor(objectives: Sequence[Objective]) -> Tuple[str, str, Optional[str]]:
    """(metric, mode, note): what each trial keeps its checkpoint by and the ledger ranks by: the first
    objective that is a validation metric (the train action monitors validation metrics only), else val/epe."""
    for o in objectives:
        if o.name.startswith("val/"):
            return o.name, o.mode, None
    return "val/epe", "min", ("no objective is a validation metric, so each trial keeps its checkpoint by val/epe "
                              "(min); the objectives are read from the trial's reports")


def resolve_scheduler(scheduler: str, objectives: Sequence[Objective]) -> Tuple[str, Optional[str]]:
    """(the scheduler, a note for the review). ``auto`` is ASHA for one objective and none for several:
    ASHA/HyperBand stop trials by ranking one metric, which several objectives do not give."""
    many = len(objectives) > 1 or not objectives[0].name.startswith("val/")  # ranked by another metric
    names = ", ".join(o.name for o in objectives)
    if scheduler == "auto":
        if not many:
            return "asha", None
        return "none", (f"scheduler none (--scheduler auto): early stopping ranks trials by one metric and cannot "
                        f"rank the objectives ({names}); every trial trains its full budget")
    if many and scheduler in ("asha", "hyperband"):
        raise LaunchError(f"--scheduler {scheduler} stops trials by ranking one validation metric and cannot rank "
                          f"the objectives ({names}); drop --scheduler (auto picks none for them) or pass "
                          "--scheduler none")
    return scheduler, None


def check_algorithm(algorithm: str, objectives: Sequence[Objective], constraints: Sequence[Constraint]) -> List[str]:
    """Notes for the review; LaunchError for an algorithm that cannot search several objectives."""
    notes = []
    if len(objectives) > 1 and algorithm == "cmaes":
        raise LaunchError(f"--algorithm cmaes (Optuna's CmaEsSampler) optimises one objective; with {len(objectives)} "
                          "objectives use --algorithm tpe (default), nsga2, bayesian or random")
    if constraints and algorithm in ("cmaes", "grid", "random"):
        notes.append(f"--algorithm {algorithm} samples without regard to the constraints; they still decide "
                     "which trials are feasible (the Pareto front and the best pick)")
    return notes


# --- a trial's values ------------------------------------------------------------------------------
def _finite(value: Any) -> Optional[float]:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and not isinstance(value, bool) else None


def metric_of(entry: Mapping[str, Any], name: str) -> Optional[float]:
    """The trial's value of metric `name`: its kept validation's (``metrics``), else the latest row's."""
    from stereo.metrics import find_metric

    rows = [entry.get("metrics") or {}, *reversed(list(entry.get("history") or []))]
    for row in rows:
        try:
            value = _finite(find_metric(row, name))
        except (KeyError, ValueError):
            continue
        if value is not None:
            return value
    return None


def values_of(entry: Mapping[str, Any], objectives: Sequence[Objective]) -> Dict[str, Optional[float]]:
    return {o.name: metric_of(entry, o.name) for o in objectives}


def violations_of(entry: Mapping[str, Any], constraints: Sequence[Constraint]) -> List[float]:
    return [c.violation(metric_of(entry, c.name)) for c in constraints]


def from_plan(objectives: Sequence[Sequence[Any]], constraints: Sequence[Sequence[Any]] = ()
              ) -> Tuple[List[Objective], List[Constraint]]:
    """launch.json's lists ([[name, mode], ...], [[name, op, bound], ...]) as objects."""
    return ([Objective(str(n), str(m)) for n, m in objectives],
            [Constraint(str(n), str(op), float(b)) for n, op, b in constraints])
