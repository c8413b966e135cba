"""The launch review: what `automl run` is about to do, printed before anything starts (all that
``--dry-run`` prints). A pure function of the :class:`automl.plan.launch.LaunchPlan`."""
from __future__ import annotations

import os
from typing import Any, Sequence

from automl.plan.configs import ALGORITHMS, SCHEDULERS

_INDENT = " " * 17


def _fmt_dist(d: dict) -> str:
    kind = d.get("kind")
    derived = [r for r in d.get("depends_on", ()) if str(r).startswith("=")]
    if derived:
        return f"derived {derived[0]} (never sampled)"
    if kind == "float":
        lo, hi = ("(" if d.get("low_open") else "["), (")" if d.get("high_open") else "]")
        text = f"{'log-uniform' if d.get('log') else 'uniform'} {lo}{d['low']:g}, {d['high']:g}{hi}"
    elif kind == "int":
        text = (f"int {d['low']}" if d["low"] == d["high"] else
                f"int [{d['low']}, {d['high']}] step {d['step']}" + (" log" if d.get("log") else ""))
    elif kind == "power_of":
        text = f"powers of {d['base']} {d['choices']}"
    elif kind == "categorical":
        text = f"one of {d['choices']}" + (f" (option_weights {d['weights']} not applied, see the note)"
                                           if d.get("weights") else "")
    else:
        text = "true/false"
    return text + (f"  depends_on {', '.join(d['depends_on'])}" if d.get("depends_on") else "")


def review(plan: Any, problems: Sequence[str] = ()) -> str:
    """The launch review of `plan` (a LaunchPlan); `problems` are preflight problems (missing packages)."""
    d = plan.decision
    lines = ["automl run: launch review",
             f"  skill        {plan.skill_name} ({plan.skill_dir})",
             f"  decision     {d.mode} (policy {d.policy_used})"]
    lines += [f"{_INDENT}- {r}" for r in d.reasons]
    if d.regenerate_command:
        lines.append(f"{_INDENT}fix: {d.regenerate_command}")
    extra = f" + {len(plan.overrides)} override(s)" if plan.overrides else ""
    lines.append(f"  base spec    {plan.spec_source} + skill key_defaults{extra}" if plan.spec_source
                 else f"  base spec    none (no --spec, no spec template){extra}")
    lines += [f"{_INDENT}{o}" for o in plan.overrides]
    if plan.spec_problems:
        lines.append("  spec         NOT READY, fix before launching:")
        lines += [f"{_INDENT}{p}" for p in plan.spec_problems]
    shape = getattr(plan, "trial_shape", None)
    if shape:
        from automl.plan.trial_shape import TrialShape

        lines.append(f"  {'per trial' if plan.sweep else 'training':<12} {TrialShape.from_dict(shape).describe()}")
    if plan.sweep:
        lines += _sweep_lines(plan)
    else:
        lines.append("  run          one plain training run (train action), no Ray")
    lines += [f"  output       {plan.run_dir}", f"  tracking     {plan.tracking_uri} (experiment {plan.experiment})"]
    lines += [f"  problem      {p}" for p in problems]
    if plan.sweep:
        lines.append(f"  resume       {plan.resume_command()}")
    from stereo.config.secrets import redact_override, scrub, secret_values

    secrets = secret_values(plan.base_spec) | {o.partition("=")[2] for o in plan.overrides
                                               if redact_override(o) != o}
    return scrub("\n".join(lines), secrets)


def _sweep_lines(plan: Any) -> list:
    lines = [f"  search space {plan.search_space_file or 'schema automl_default_parameters'}"]
    width = max((len(n) for n in plan.space.get("parameters", {})), default=0)
    lines += [f"{_INDENT}{n:<{width}}  {_fmt_dist(dist)}" for n, dist in plan.space["parameters"].items()]
    lines += [f"{_INDENT}note: {n}" for n in plan.space.get("notes", ())
              if not any(n.startswith(f"{k} left out of the search, dead") for k in getattr(plan, "dead", {}))]
    checked = getattr(plan, "checked", ())
    if checked:
        from automl.plan.dead_params import describe

        lines.append("  dead params  can each searched key change this run? (automl/plan/dead_params.py)")
        lines += [f"{_INDENT}{line}" for line in describe(plan.dead, plan.caveats, checked, plan.keep_dead_params)]
    objectives = getattr(plan, "objectives", None) or [[plan.metric, plan.mode]]
    if len(objectives) == 1 and objectives[0][0] == plan.metric:
        when = ("measured once per trial, on its deployed model (--score-on deploy)"
                if plan.metric.startswith("deploy/") else "the best validation of each trial")
        lines.append(f"  objective    {plan.metric} ({plan.mode}), {when}; a failed trial is 'failed', never a number")
    else:
        lines.append(f"  objectives   {', '.join(f'{n} ({m})' for n, m in objectives)}: the Pareto front; each trial "
                     f"keeps its checkpoint by {plan.metric} ({plan.mode}) and is scored at it")
        lines.append(f"{_INDENT}best = the front's trial best by {objectives[0][0]} (the first objective)")
    for name, op, bound in getattr(plan, "constraints", ()):
        lines.append(f"  constraint   {name} {op} {bound:g}: only trials that meet it are on the front or best")
    lines += [f"{_INDENT}note: {n}" for n in getattr(plan, "objective_notes", ())]
    warm = getattr(plan, "warm_start", None)
    if warm:
        dropped = sum(warm["dropped"].values())
        why = "; ".join(f"{n} {reason}" for reason, n in warm["dropped"].items())
        lines.append(f"  warm start   {len(warm['trials'])} completed trial(s) of {warm['source']} ({warm['state']}) "
                     "seed the study" + (f"; {dropped} dropped ({why})" if dropped else ""))
        lines += [f"{_INDENT}differs: {d}" for d in warm["differences"]]
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
    lines += [f"{_INDENT}{n}" for n in getattr(plan, "resource_notes", ())]
    probe = getattr(plan, "probe", None)
    if probe:
        from automl.plan.probe import review_lines

        found = review_lines(probe)
        lines += [f"  probe        {found[0]}"] + [f"{_INDENT}{n}" for n in found[1:]]
    elif getattr(plan, "trial_shape", None):
        lines.append("  probe        not run (--no-probe, or the spec is not ready): memory and duration unknown")
    from automl.plan.deploy_step import review_lines as deploy_lines

    found = deploy_lines(plan)
    lines += [f"  {'deploy':<12} {found[0]}"] + [f"{_INDENT}{n}" for n in found[1:]] if found else []
    return lines
