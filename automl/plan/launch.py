"""What `automl run` is about to do, decided before anything starts: :class:`LaunchPlan`.

The plan follows Ray Tune's split (STYLE: the Tuner): *what* is searched (search space, metric/mode),
*how* (algorithm, scheduler, budget), *where* (resources, Ray address, output folder, tracking URI).
It is plain data, saved as ``<run_dir>/launch.json``, so ``automl run --resume <run_dir>`` continues
exactly the sweep that was reviewed (automl/plan/review.py prints it). No Ray, Optuna or MLflow here.

The base spec every trial starts from, in order (later wins):
1. ``--spec FILE`` or the skill's ``references/spec_template_train.yaml`` (neither: the plan is not
   ready, and the review says to pass ``--spec``);
2. the skill's ``key_defaults`` for keys the spec leaves unset (checkpoint invariants);
3. the user's ``key=value`` overrides, with ``spec_shorthand_keys`` expanded (``learning_rate=1e-4``).
   An override of a searched key *fixes* it: it leaves the search space and the review says so;
   ``results_dir=DIR`` is the output folder (``--output``);
4. per trial: the sampled values and ``results_dir = <run_dir>/trials/<trial_id>``.

When the overrides fix every searched parameter there is nothing to search: with policy ``auto`` the
run becomes one plain training run (the decision says why); with policy ``on`` it is an error.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from automl.commands import resume_command
from automl.errors import LaunchError
from automl.plan.configs import WEIGHTS_IGNORED, RunConfig, SearchConfig, TuneConfig
from automl.plan.deploy_step import DeployConfig, settle_deploy, split_metric
from automl.plan.resources import settle_resources
from automl.plan.skills import SKILLS_ROOT, Skill, expand_shorthand, find_skill, load_skill
from automl.policy.decision import NothingToSearch, PolicyDecision, resolve_policy
from automl.space.build import SearchSpace, build_search_space
from automl.space.files import default_search_space_name, load_search_space, search_space_path

PLAN_FILE = "launch.json"


@dataclass
class LaunchPlan:
    skill_name: str
    skill_dir: str
    decision: PolicyDecision  # decided once (automl/policy/decision.py), frozen
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
    metric: str = "val/epe"  # the first validation objective: each trial keeps its checkpoint by it
    mode: str = "min"
    objectives: List[List[str]] = field(default_factory=list)  # [[name, mode], ...]; [] (older plans): metric/mode
    constraints: List[List[Any]] = field(default_factory=list)  # [[name, "<=" | ">=", bound], ...]
    objective_notes: List[str] = field(default_factory=list)  # how the scheduler/sampler handle them
    warm_start: Dict[str, Any] = field(default_factory=dict)  # automl/tune/warm_start.py WarmStart.to_dict()
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
    workers_per_trial: int = 1  # > 1: data-parallel trials (Ray Train, automl/tune/data_parallel.py)
    resource_notes: List[str] = field(default_factory=list)  # how GPUs per trial were decided
    ray_address: Optional[str] = None
    fixed: Dict[str, str] = field(default_factory=dict)  # searched keys the user's overrides fixed -> value text
    # pre-flight (automl/plan/trial_shape.py, automl/plan/dead_params.py, automl/plan/probe.py)
    trial_shape: Dict[str, Any] = field(default_factory=dict)  # TrialShape.to_dict() of one trial
    dead: Dict[str, str] = field(default_factory=dict)  # searched keys that cannot change this run -> why
    caveats: Dict[str, str] = field(default_factory=dict)  # live searched keys with a caveat -> the caveat
    checked: List[str] = field(default_factory=list)  # every key the dead-parameter check judged
    keep_dead_params: bool = False
    probe: Dict[str, Any] = field(default_factory=dict)  # the memory/time probe's measurement and plan
    # --score-on / --then (automl/plan/deploy_step.py): the deploy step of each trial, the hand-over after
    score_on: str = "train"
    then: Optional[str] = None
    deploy: Dict[str, Any] = field(default_factory=dict)
    stage: str = "train"  # deploy: a deploy-only sweep of one checkpoint (automl/plan/deploy_sweep.py)
    created: float = field(default_factory=time.time)

    @property
    def sweep(self) -> bool:
        return self.decision.sweep

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "decision": self.decision.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> "LaunchPlan":
        names = {f.name for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in data.items() if k in names}
        return cls(**{**kept, "decision": PolicyDecision.from_dict(kept["decision"])})

    def save(self) -> Path:
        from stereo.atomic_io import atomic_write_json
        from stereo.config.secrets import redact, redact_override

        data = redact(self.to_dict())  # secrets never reach the disk (a resumed sweep gets the placeholder)
        data["overrides"] = [redact_override(o) for o in data.get("overrides") or []]
        return atomic_write_json(Path(self.run_dir) / PLAN_FILE, data)

    def skill(self) -> Skill:
        return load_skill(self.skill_dir)

    def search_space(self) -> SearchSpace:
        """Rebuilt from the skill's schema and the search-space file (SearchSpace holds read-only views)."""
        if self.stage == "deploy":
            from automl.plan.deploy_space import deploy_space
            return deploy_space(self)
        schema = self.skill().load_schema("train")
        known = dotted_values(self.base_spec)
        context = {"fixed": {**self.fixed, **self.dead_fixed(known)}, "known": known}
        if self.search_space_file:
            space = load_search_space(self.search_space_file, schema, **context).space
        else:
            space = build_search_space(schema, **context)
        return _relabel_dead(space, self.dead_fixed(known), self.dead)

    def dead_fixed(self, known: Optional[Dict[str, Any]] = None) -> Dict[str, str]:
        """Dead keys that leave the space (none with --keep-dead-params), at their base-spec value."""
        if self.keep_dead_params:
            return {}
        known = dotted_values(self.base_spec) if known is None else known
        return {n: str(known.get(n, "its default")) for n in self.dead}

    def resume_command(self) -> str:
        return resume_command(self.run_dir)

    def goals(self):
        """(objectives, constraints) as automl/plan/objectives.py objects; an older plan's metric/mode is one."""
        from automl.plan.objectives import from_plan

        return from_plan(self.objectives or [[self.metric, self.mode]], self.constraints)


def _relabel_dead(space: SearchSpace, dead_fixed: Dict[str, str], dead: Dict[str, str]) -> SearchSpace:
    """The space's notes call a removed dead key what it is, not a user override."""
    if not dead_fixed:
        return space
    notes = [n for n in space.notes if not any(n.startswith(f"{k} fixed at ") for k in dead_fixed)]
    notes += [f"{k} left out of the search, dead: {dead[k]} (--keep-dead-params searches it anyway)"
              for k in dead_fixed]
    return dataclasses.replace(space, notes=tuple(notes))


def load_plan(run_dir: str | os.PathLike) -> LaunchPlan:
    path = Path(run_dir).expanduser().resolve() / PLAN_FILE
    if not path.is_file():
        raise LaunchError(f"--resume {run_dir}: {path} not found; pass the output folder of an earlier "
                          "`automl run` (it holds launch.json)")
    return LaunchPlan.from_dict(json.loads(path.read_text()))


def dotted_values(raw: Any, prefix: str = "") -> Dict[str, Any]:
    """``{"train.optim.lr": 1e-4, ...}``: every value under the nested sections of a raw spec."""
    out: Dict[str, Any] = {}
    for key, value in (raw.items() if isinstance(raw, dict) else ()):
        if isinstance(value, dict):
            out.update(dotted_values(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _split_output(expanded: List[str], output: Optional[str]) -> Tuple[List[str], Optional[str]]:
    """``results_dir=DIR`` names the run folder (what --output names); it is never a spec value here."""
    kept, folders = [], []
    for text in expanded:
        key, _, value = text.partition("=")
        if key.strip() == "results_dir":
            folders.append(value.strip())
        else:
            kept.append(text)
    if folders:
        folder = folders[-1]
        if output and Path(output).expanduser().resolve() != Path(folder).expanduser().resolve():
            raise LaunchError(f"results_dir={folder} and --output {output} name two different run folders; pass "
                              "one of them (both mean the run folder; each trial writes under <folder>/trials/<id>)")
        output = output or folder
    return kept, output


def _base_spec(skill: Skill, spec_file: Optional[str],
               expanded: Sequence[str]) -> Tuple[str, dict, Dict[str, str], Optional[str]]:
    """(source, raw spec, {overridden dotted key: value text}, why there is no base spec or None)."""
    import yaml

    from stereo.config.load import apply_key_defaults, parse_override, set_path
    from stereo.config.source_lines import render_key

    missing = None
    if spec_file:
        path = Path(spec_file).expanduser().resolve()
        if not path.is_file():
            raise LaunchError(f"--spec {spec_file}: file not found; pass a train spec YAML")
        raw = yaml.safe_load(path.read_text()) or {}
        if not isinstance(raw, dict):
            raise LaunchError(f"--spec {spec_file}: expected a YAML mapping, got {type(raw).__name__}")
        source = str(path)
    elif skill.has_train_template:
        raw, source = skill.load_template("train"), str(skill.template_path("train"))
    else:
        example = SKILLS_ROOT / "fast-foundation-stereo" / "references" / "spec_template_train.yaml"
        raw, source = {}, ""
        missing = (f"no base spec: {skill.template_path('train')} does not exist and no --spec was given; pass "
                   f"--spec <your train spec YAML> (for example a filled-in copy of {example})")
    raw = apply_key_defaults(skill.key_defaults, raw)
    overridden: Dict[str, str] = {}
    for text in expanded:
        try:
            key, value = parse_override(text)
        except ValueError as exc:
            raise LaunchError(str(exc)) from None
        error = set_path(raw, key, value)
        if error:
            raise LaunchError(f"override {text!r}: {error}; check the key against the spec reference")
        overridden[render_key(key)] = text.partition("=")[2].strip()
    return source, raw, overridden, missing


def _spec_problems(raw: dict, run_dir: Path, source: str = "",
                   overridden: Sequence[str] = ()) -> Tuple[List[str], Any]:
    """(problems as one line each, named by where the key came from: `command line` for an override,
    else the base spec's file:line; the loaded spec or None)."""
    from stereo.config.errors import SpecError
    from stereo.config.load import load_spec, locate_problems
    from stereo.config.source_lines import read_yaml_with_lines

    try:
        return [], load_spec({**raw, "results_dir": str(run_dir)}, action="train")
    except SpecError as exc:
        try:
            lines = read_yaml_with_lines(source)[1] if source else {}
        except (OSError, ValueError):
            lines = {}
        located = locate_problems(list(exc.errors), source or None, lines, set(overridden))
        return [p.render() for p in located], None


def _search_space(skill: Skill, schema: dict, search_space: Optional[str], fixed: Dict[str, str],
                  known: Dict[str, Any]) -> Tuple[Optional[Any], SearchSpace]:
    """(the parsed search-space file or None, the space) with `fixed` keys taken out."""
    if search_space:
        path = Path(search_space) if Path(search_space).suffix in (".yaml", ".yml") else search_space_path(search_space)
    else:
        name = default_search_space_name(skill)
        path = search_space_path(name) if name else None
    if path is None:
        return None, build_search_space(schema, fixed=fixed, known=known)
    parsed = load_search_space(path, schema, fixed=fixed, known=known)
    return parsed, parsed.space


def build_plan(search: SearchConfig, tune: Optional[TuneConfig] = None, where: Optional[RunConfig] = None, *,
               gpus_available: Optional[int] = None, deploy: Optional[DeployConfig] = None) -> LaunchPlan:
    """Resolve the policy and everything a run needs; raises :class:`LaunchError` on bad options.

    `gpus_available` None counts this machine's GPUs. Pre-flight: the data files are checked and one
    trial is planned (automl/plan/trial_shape.py); a sweep that could never score a trial is NOT READY;
    searched keys that cannot change this run are dead and leave the space unless
    ``search.keep_dead_params`` (automl/plan/dead_params.py). Problems land in ``plan.spec_problems`` (the
    review lists them). The policy decides sweep or plain once: it examines the search space (through
    :func:`_examine_search`) only when the skill and the policy would sweep.
    """
    tune, where, (search, deploy_metric) = tune or TuneConfig(), where or RunConfig(), split_metric(search)
    the_skill = load_skill(search.skill_dir) if search.skill_dir else find_skill(search.skill)
    expanded, output = _split_output(expand_shorthand(the_skill, search.overrides), where.output)
    run_dir = Path(output or Path("automl_runs") / f"{the_skill.path.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir = run_dir.expanduser().resolve()
    source, raw, overridden, missing = _base_spec(the_skill, search.spec, expanded)
    problems, resolved = ([missing], None) if missing else _spec_problems(raw, run_dir, source, overridden)
    shape = None
    if resolved is not None:
        from automl.plan.trial_shape import plan_trial
        shape, data_problems = plan_trial(resolved)
        problems = problems + data_problems
    from stereo.tracking import check_tracking_uri, default_tracking_uri
    uri = check_tracking_uri(where.tracking_uri) if where.tracking_uri else default_tracking_uri(run_dir)
    max_concurrent = tune.max_concurrent
    if max_concurrent is None:
        max_concurrent = max(1, int((os.cpu_count() or 1) // max(where.cpus_per_trial, 1)))
    plan = LaunchPlan(skill_name=the_skill.name, skill_dir=str(the_skill.path),
                      decision=PolicyDecision("plain", "auto", ()), spec_source=source, base_spec=raw,
                      overrides=expanded, run_dir=str(run_dir), tracking_uri=uri, experiment=where.experiment,
                      spec_problems=problems, algorithm=tune.algorithm,
                      scheduler="asha" if tune.scheduler == "auto" else tune.scheduler,
                      grace_period=int(tune.grace_period), reduction_factor=int(tune.reduction_factor),
                      grid_points=int(tune.grid_points), seed=int(tune.seed), num_samples=int(tune.num_samples),
                      max_concurrent=int(max_concurrent), time_budget_s=tune.time_budget_s,
                      max_failures=int(tune.max_failures), cpus_per_trial=float(where.cpus_per_trial),
                      gpus_per_trial=float(where.gpus_per_trial or 0.0), ray_address=where.ray_address,
                      keep_dead_params=bool(search.keep_dead_params), trial_shape=shape.to_dict() if shape else {})
    found: Dict[str, Any] = {}
    plan.decision = resolve_policy(
        action="train", skill=the_skill.facts(), policy=search.policy, request=search.request,
        nothing_to_search=lambda: _examine_search(plan, the_skill, search, overridden, resolved, shape, found))
    if not plan.sweep:
        settle_deploy(plan, deploy, deploy_metric, search.mode)
        return plan
    _settle_search(plan, search, tune, found, score_on_deploy=bool(deploy and deploy.score_on == "deploy"))
    settle_resources(plan, tune, where, resolved, dotted_values(plan.base_spec), gpus_available)
    settle_deploy(plan, deploy, deploy_metric, search.mode, auto_scheduler=tune.scheduler == "auto")
    if shape is not None and shape.validation_steps:
        plan.max_t = len(shape.validation_steps)  # validations a full trial runs (max_steps may cut epochs)
    elif resolved is not None:
        epochs = int(resolved.train.num_epochs)
        plan.max_t = max(1, epochs // max(1, int(resolved.train.validation_interval)))
    return plan


def _examine_search(plan: LaunchPlan, skill: Skill, search: SearchConfig, overridden: Dict[str, str],
                    resolved: Any, shape: Any, found: Dict[str, Any]) -> Optional[NothingToSearch]:
    """Build the search space of a would-be sweep (into `found`: the parsed file and the space) with the
    keys the user fixed and the dead keys taken out; why it is empty, or None."""
    if "train.results_dir" in overridden:
        raise LaunchError(f"train.results_dir={overridden['train.results_dir']} would make every trial write into "
                          "one folder; drop it (each trial writes under <output>/trials/<id>/train; --output or "
                          "results_dir= choose the run folder)")
    schema = skill.load_schema("train")
    known = dotted_values(plan.base_spec)
    parsed, space = _search_space(skill, schema, search.search_space, {}, known)
    plan.fixed = {n: overridden[n] for n in space.names if n in overridden}
    if plan.fixed and len(plan.fixed) == len(space):
        return NothingToSearch("your overrides fix every searched parameter",
                               ", ".join(f"{n} fixed at {v}" for n, v in plan.fixed.items()), plain="with your values")
    if plan.fixed:
        parsed, space = _search_space(skill, schema, search.search_space, plan.fixed, known)
    if shape is not None:
        from automl.plan.dead_params import check_dead
        from automl.plan.trial_shape import scoring_problems
        plan.spec_problems += scoring_problems(resolved, shape)
        plan.checked = list(space.names)
        plan.dead, plan.caveats = check_dead(resolved, shape.total_steps, space.to_dict()["parameters"])
        if plan.dead and not plan.keep_dead_params:
            if len(plan.dead) == len(space):
                fixed = ", ".join(f"{n} fixed at {v}" for n, v in plan.fixed.items())
                what = ("every searched parameter is fixed by your overrides or dead in this run" if fixed else
                        "every searched parameter is dead in this run (it cannot change the result)")
                return NothingToSearch(what, "; ".join([*([fixed] if fixed else []),
                                                        *(f"{n}: {why}" for n, why in plan.dead.items())]),
                                       fix="--keep-dead-params to sweep them anyway")
            dead_fixed = plan.dead_fixed(known)
            parsed, space = _search_space(skill, schema, search.search_space, {**plan.fixed, **dead_fixed}, known)
            space = _relabel_dead(space, dead_fixed, plan.dead)
    found.update(parsed=parsed, space=space)
    return None


def _settle_search(plan: LaunchPlan, search: SearchConfig, tune: TuneConfig, found: Dict[str, Any],
                   score_on_deploy: bool = False) -> None:
    """The searched space and the objectives: --objective (several), or --metric/--mode, else the search-space
    file's metric/mode; the constraints; the scheduler `auto` resolves here (automl/plan/objectives.py)."""
    from automl.plan import objectives as goals
    parsed = found["parsed"]
    plan.space = found["space"].to_dict()
    if parsed is not None:
        plan.search_space_file = str(parsed.path)
        file_metric, file_mode = parsed.metric, parsed.mode
    else:
        plan.space["notes"].append("no search_spaces/*.yaml for this skill: the schema's automl_default_parameters "
                                   "with schema ranges")
        file_metric, file_mode = "val/epe", "min"
    deploy = score_on_deploy  # deploy/* metrics need trials scored on the deployed model (--score-on deploy)
    try:  # a typo here would otherwise fail every trial after the sweep has trained it
        chosen = goals.resolve_objectives(search.objectives, search.metric, search.mode, file_metric, file_mode, deploy)
    except LaunchError as exc:
        if search.metric or search.objectives or parsed is None:
            raise
        raise LaunchError(f"{parsed.path}: metric: {exc}") from None
    constraints = [goals.parse_constraint(c, deploy) for c in search.constraints]
    plan.metric, plan.mode, note = goals.checkpoint_monitor(chosen)
    plan.objective_notes = [note] if note else []
    plan.objectives = [[o.name, o.mode] for o in chosen]
    plan.constraints = [[c.name, c.op, c.bound] for c in constraints]
    plan.scheduler, note = goals.resolve_scheduler(tune.scheduler, chosen)
    plan.objective_notes += ([note] if note else []) + goals.check_algorithm(tune.algorithm, chosen, constraints)
    if search.warm_start and tune.algorithm == "grid":  # the trials are read by automl/tune/warm_start.py
        raise LaunchError(f"--warm-start {search.warm_start}: --algorithm grid runs every point whatever the "
                          "history; drop --warm-start or pick a sampler (tpe, nsga2, bayesian, random)")
    weighted = [n for n, d in plan.space["parameters"].items() if d.get("weights")]
    if weighted:
        plan.space["notes"].append(f"option_weights of {', '.join(weighted)} are NOT applied by --algorithm "
                                   f"{tune.algorithm}: {WEIGHTS_IGNORED[tune.algorithm]}; only TAO-style random "
                                   "draws (SearchSpace.sample) use them")
