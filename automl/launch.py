"""What `automl run` is about to do, decided before anything starts: :class:`LaunchPlan` and its review.

The plan follows Ray Tune's split (STYLE: the Tuner): *what* is searched (search space, metric/mode),
*how* (algorithm, scheduler, budget), *where* (resources, Ray address, output folder, tracking URI).
It is plain data, saved as ``<run_dir>/launch.json``, so ``automl run --resume <run_dir>`` continues
exactly the sweep that was reviewed. No Ray, Optuna or MLflow import here.

The base spec every trial starts from, in order (later wins):
1. ``--spec FILE`` or the skill's ``references/spec_template_train.yaml``;
2. the skill's ``key_defaults`` for keys the spec leaves unset (checkpoint invariants);
3. the user's ``key=value`` overrides, with ``spec_shorthand_keys`` expanded (``learning_rate=1e-4``);
4. per trial: the sampled values and ``results_dir = <run_dir>/trials/<trial_id>``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from automl.policy import PolicyDecision, resolve_policy
from automl.skills import Skill, expand_shorthand, find_skill, load_skill
from automl.space import SearchSpace, build_search_space
from automl.search_space_file import default_search_space_name, load_search_space, search_space_path

ALGORITHMS = {
    "tpe": "Optuna TPESampler (tree-structured Parzen estimator)",
    "random": "Optuna RandomSampler (independent uniform draws, relations honoured)",
    "grid": "every combination of --grid-points values per parameter (floats: evenly spaced, log-spaced "
            "for log ranges), run in order",
    "bayesian": "Optuna GPSampler (Gaussian-process Bayesian optimisation; TAO AutoML's default algorithm)",
    "cmaes": "Optuna CmaEsSampler (needs the `cmaes` package)",
}
SCHEDULERS = {
    "asha": "ASHA (asynchronous successive halving): stops the worse trials at each rung",
    "hyperband": "HyperBand (synchronous brackets of successive halving)",
    "none": "no early stopping: every trial trains its full budget (FIFO)",
}
PLAN_FILE = "launch.json"
RESUME_COMMAND = "automl run --resume {run_dir}"


class LaunchError(ValueError):
    """A run that cannot be launched; the message names the option or key and the fix."""


@dataclass
class LaunchPlan:
    skill_name: str
    skill_dir: str
    decision: Dict[str, Any]  # PolicyDecision.to_dict()
    spec_source: str
    base_spec: Dict[str, Any]
    overrides: List[str]  # expanded key=value, as applied
    run_dir: str
    tracking_uri: str
    experiment: str = "depth_net"
    spec_problems: List[str] = field(default_factory=list)
    # what is searched
    search_space_file: Optional[str] = None
    space: Dict[str, Any] = field(default_factory=dict)  # SearchSpace.to_dict(), for the review and MLflow
    metric: str = "val/epe"
    mode: str = "min"
    # how
    algorithm: str = "tpe"
    scheduler: str = "asha"
    grace_period: int = 1
    reduction_factor: int = 3
    max_t: int = 1  # validations per trial at most (ASHA/HyperBand time unit)
    grid_points: int = 3
    seed: int = 0
    num_samples: int = 8
    max_concurrent: int = 1
    time_budget_s: Optional[float] = None
    max_failures: int = 0
    # where
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    ray_address: Optional[str] = None
    created: float = field(default_factory=time.time)

    @property
    def sweep(self) -> bool:
        return self.decision.get("mode") == "sweep"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "LaunchPlan":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def save(self) -> Path:
        from stereo.atomic_io import atomic_write_json

        return atomic_write_json(Path(self.run_dir) / PLAN_FILE, self.to_dict())

    def skill(self) -> Skill:
        return load_skill(self.skill_dir)

    def search_space(self) -> SearchSpace:
        """Rebuilt from the skill's schema and the search-space file (SearchSpace holds read-only views)."""
        schema = self.skill().load_schema("train")
        if self.search_space_file:
            return load_search_space(self.search_space_file, schema).space
        return build_search_space(schema)

    def resume_command(self) -> str:
        return RESUME_COMMAND.format(run_dir=self.run_dir)


def load_plan(run_dir: str | os.PathLike) -> LaunchPlan:
    path = Path(run_dir).expanduser().resolve() / PLAN_FILE
    if not path.is_file():
        raise LaunchError(f"--resume {run_dir}: {path} not found; pass the output folder of an earlier "
                          "`automl run` (it holds launch.json)")
    return LaunchPlan.from_dict(json.loads(path.read_text()))


def _base_spec(skill: Skill, spec_file: Optional[str], overrides: Sequence[str]) -> Tuple[str, dict, List[str]]:
    import yaml

    from stereo.config.load import apply_key_defaults, parse_override, set_path

    if spec_file:
        path = Path(spec_file).expanduser().resolve()
        if not path.is_file():
            raise LaunchError(f"--spec {spec_file}: file not found; pass a train spec YAML")
        raw = yaml.safe_load(path.read_text()) or {}
        if not isinstance(raw, dict):
            raise LaunchError(f"--spec {spec_file}: expected a YAML mapping, got {type(raw).__name__}")
        source = str(path)
    else:
        raw, source = skill.load_template("train"), str(skill.template_path("train"))
    raw = apply_key_defaults(skill.key_defaults, raw)
    expanded = expand_shorthand(skill, overrides)
    for text in expanded:
        try:
            key, value = parse_override(text)
        except ValueError as exc:
            raise LaunchError(str(exc)) from None
        error = set_path(raw, key, value)
        if error:
            raise LaunchError(f"override {text!r}: {error}; check the key against the spec reference")
    return source, raw, expanded


def _spec_problems(raw: dict, run_dir: Path) -> Tuple[List[str], Any]:
    from stereo.config.errors import SpecError
    from stereo.config.load import load_spec

    try:
        return [], load_spec({**raw, "results_dir": str(run_dir)}, action="train")
    except SpecError as exc:
        return [p.render() for p in exc.errors], None


def build_plan(*, skill: Optional[str] = None, skill_dir: Optional[str] = None, policy: Optional[str] = None,
               request: Optional[str] = None, spec: Optional[str] = None, overrides: Sequence[str] = (),
               search_space: Optional[str] = None, algorithm: str = "tpe", scheduler: str = "asha",
               num_samples: int = 8, max_concurrent: Optional[int] = None, time_budget_s: Optional[float] = None,
               cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0, max_failures: int = 0,
               metric: Optional[str] = None, mode: Optional[str] = None, output: Optional[str] = None,
               ray_address: Optional[str] = None, tracking_uri: Optional[str] = None,
               experiment: str = "depth_net", seed: int = 0, grace_period: int = 1, reduction_factor: int = 3,
               grid_points: int = 3) -> LaunchPlan:
    """Resolve the policy and everything a run needs; raises :class:`LaunchError` on bad options."""
    if bool(skill) == bool(skill_dir):
        raise LaunchError("pass exactly one of --skill NAME or --skill-dir DIR (e.g. --skill tiny-demo)")
    the_skill = load_skill(skill_dir) if skill_dir else find_skill(skill)
    decision: PolicyDecision = resolve_policy(action="train", skill=the_skill.facts(), policy=policy,
                                              request=request)
    if algorithm not in ALGORITHMS:
        raise LaunchError(f"--algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}")
    if scheduler not in SCHEDULERS:
        raise LaunchError(f"--scheduler {scheduler!r} is not one of {', '.join(SCHEDULERS)}")
    for name, value, low in (("--num-samples", num_samples, 1), ("--grace-period", grace_period, 1),
                             ("--reduction-factor", reduction_factor, 2), ("--grid-points", grid_points, 2),
                             ("--max-failures", max_failures, 0)):
        if int(value) < low:
            raise LaunchError(f"{name} {value} must be >= {low}")
    if cpus_per_trial <= 0 or gpus_per_trial < 0:
        raise LaunchError(f"--cpus-per-trial {cpus_per_trial} must be > 0 and --gpus-per-trial {gpus_per_trial} "
                          ">= 0")
    if time_budget_s is not None and time_budget_s <= 0:
        raise LaunchError(f"--time-budget {time_budget_s} must be > 0 seconds (omit it for no limit)")
    if mode is not None and mode not in ("min", "max"):
        raise LaunchError(f"--mode {mode!r} is not min or max")
    run_dir = Path(output or Path("automl_runs") / f"{the_skill.path.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir = run_dir.expanduser().resolve()
    source, raw, expanded = _base_spec(the_skill, spec, overrides)
    problems, resolved = _spec_problems(raw, run_dir)
    from stereo.tracking import check_tracking_uri, default_tracking_uri

    uri = check_tracking_uri(tracking_uri) if tracking_uri else default_tracking_uri(run_dir)
    if max_concurrent is None:
        max_concurrent = max(1, int((os.cpu_count() or 1) // max(cpus_per_trial, 1)))
    if int(max_concurrent) < 1:
        raise LaunchError(f"--max-concurrent {max_concurrent} must be >= 1")
    plan = LaunchPlan(skill_name=the_skill.name, skill_dir=str(the_skill.path), decision=decision.to_dict(),
                      spec_source=source, base_spec=raw, overrides=expanded, run_dir=str(run_dir),
                      tracking_uri=uri, experiment=experiment, spec_problems=problems, algorithm=algorithm,
                      scheduler=scheduler, grace_period=int(grace_period), reduction_factor=int(reduction_factor),
                      grid_points=int(grid_points), seed=int(seed), num_samples=int(num_samples),
                      max_concurrent=int(max_concurrent), time_budget_s=time_budget_s,
                      max_failures=int(max_failures), cpus_per_trial=float(cpus_per_trial),
                      gpus_per_trial=float(gpus_per_trial), ray_address=ray_address)
    if not plan.sweep:
        return plan
    schema = the_skill.load_schema("train")
    if search_space:
        path = Path(search_space) if Path(search_space).suffix in (".yaml", ".yml") else search_space_path(search_space)
        parsed = load_search_space(path, schema)
    else:
        name = default_search_space_name(the_skill)
        parsed = load_search_space(search_space_path(name), schema) if name else None
    if parsed is not None:
        plan.search_space_file, plan.space = str(parsed.path), parsed.space.to_dict()
        plan.metric, plan.mode = metric or parsed.metric, mode or parsed.mode
    else:
        plan.space = build_search_space(schema).to_dict()
        plan.space["notes"] = list(plan.space["notes"]) + ["no search_spaces/*.yaml for this skill: the schema's "
                                                           "automl_default_parameters with schema ranges"]
        plan.metric, plan.mode = metric or "val/epe", mode or "min"
    if resolved is not None:
        epochs = int(resolved.train.num_epochs)
        plan.max_t = max(1, math.ceil(epochs / max(1, int(resolved.train.validation_interval))))
    return plan


def _fmt_dist(d: dict) -> str:
    kind = d.get("kind")
    if kind == "float":
        lo, hi = ("(" if d.get("low_open") else "["), (")" if d.get("high_open") else "]")
        text = f"{'log-uniform' if d.get('log') else 'uniform'} {lo}{d['low']:g}, {d['high']:g}{hi}"
    elif kind == "int":
        text = f"int [{d['low']}, {d['high']}] step {d['step']}" + (" log" if d.get("log") else "")
    elif kind == "power_of":
        text = f"powers of {d['base']} {d['choices']}"
    elif kind == "categorical":
        text = f"one of {d['choices']}" + (f" weights {d['weights']}" if d.get("weights") else "")
    else:
        text = "true/false"
    return text + (f"  depends_on {', '.join(d['depends_on'])}" if d.get("depends_on") else "")


def review(plan: LaunchPlan, problems: Sequence[str] = ()) -> str:
    """The launch review printed before anything runs (and all that `--dry-run` prints)."""
    d = plan.decision
    lines = ["automl run: launch review",
             f"  skill        {plan.skill_name} ({plan.skill_dir})",
             f"  decision     {d['mode']} (policy {d['policy_used']})"]
    lines += [f"                 - {r}" for r in d.get("reasons", ())]
    if d.get("regenerate_command"):
        lines.append(f"                 fix: {d['regenerate_command']}")
    lines.append(f"  base spec    {plan.spec_source} + skill key_defaults"
                 + (f" + {len(plan.overrides)} override(s)" if plan.overrides else ""))
    lines += [f"                 {o}" for o in plan.overrides]
    if plan.spec_problems:
        lines.append("  spec         NOT READY, fix before launching:")
        lines += [f"                 {p}" for p in plan.spec_problems]
    if plan.sweep:
        lines.append(f"  search space {plan.search_space_file or 'schema automl_default_parameters'}")
        width = max((len(n) for n in plan.space.get("parameters", {})), default=0)
        lines += [f"                 {n:<{width}}  {_fmt_dist(dist)}" for n, dist in plan.space["parameters"].items()]
        lines += [f"                 note: {n}" for n in plan.space.get("notes", ())]
        lines.append(f"  objective    {plan.metric} ({plan.mode}), the best validation of each trial; a failed "
                     "trial is 'failed', never a number")
        algo = f"{plan.algorithm}: {ALGORITHMS[plan.algorithm]}, seed {plan.seed}"
        if plan.algorithm == "grid":
            algo += f", {plan.grid_points} points per float"
        elif plan.algorithm != "bayesian":
            algo += " (TAO AutoML defaults to Bayesian GP: --algorithm bayesian)"
        lines.append(f"  algorithm    {algo}")
        sched = f"{plan.scheduler}: {SCHEDULERS[plan.scheduler]}"
        if plan.scheduler != "none":
            sched += (f"; time unit = validations (training_iteration), max_t {plan.max_t}, grace period "
                      f"{plan.grace_period}, reduction factor {plan.reduction_factor}")
        lines.append(f"  scheduler    {sched}")
        budget = (f"{plan.num_samples} trial(s), at most {plan.max_concurrent} at a time, time budget "
                  f"{f'{plan.time_budget_s:g} s' if plan.time_budget_s else 'none'}, {plan.max_failures} "
                  "retr(y/ies) per failed trial")
        lines.append(f"  budget       {budget}")
        where = plan.ray_address or f"embedded Ray on this machine ({os.cpu_count()} CPUs)"
        lines.append(f"  resources    {plan.cpus_per_trial:g} CPU / {plan.gpus_per_trial:g} GPU per trial; {where}")
    else:
        lines.append("  run          one plain training run (train action), no Ray")
    lines += [f"  output       {plan.run_dir}", f"  tracking     {plan.tracking_uri} (experiment {plan.experiment})"]
    lines += [f"  problem      {p}" for p in problems]
    if plan.sweep:
        lines.append(f"  resume       {plan.resume_command()}")
    return "\n".join(lines)


def run_plain(plan: LaunchPlan):
    """One plain training run of the base spec into ``<run_dir>/train``, recorded in MLflow with the decision."""
    from automl.trial import TaggingTracker
    from stereo.actions.train import train
    from stereo.config.load import load_spec
    from stereo.tracking import ensure_experiment

    Path(plan.run_dir).mkdir(parents=True, exist_ok=True)
    plan.save()
    spec = load_spec({**plan.base_spec, "results_dir": plan.run_dir}, action="train")
    ensure_experiment(plan.tracking_uri, plan.experiment)
    d = plan.decision
    tracker = TaggingTracker(plan.tracking_uri, {"automl.kind": "plain", "automl.decision": d["mode"],
                                                 "automl.policy": d["policy_used"],
                                                 "automl.reasons": " | ".join(d.get("reasons", ())),
                                                 "automl.skill": plan.skill_name}, lambda run_id: None)
    return train(spec, tracker=tracker, experiment=plan.experiment, run_name=f"plain {Path(plan.run_dir).name}")
