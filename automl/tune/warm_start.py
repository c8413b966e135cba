"""``--warm-start <finished sweep folder>``: the finished sweep's completed trials seed the new sweep's Optuna
study (``study.add_trial``: real history the sampler models, nothing re-run), so TPE/NSGA-II/GP start
from what is already known instead of from random draws.

Read when the plan is made (so ``--dry-run`` shows it) from the folder's ``launch.json`` and ledger:

- every difference between the two sweeps that can change what a trial's numbers mean is one line of
  the review: a parameter added, dropped or with another range, another objective, another base-spec value;
- a trial is reused when it completed (never a failed, interrupted or early-stopped one: its score is of a
  shorter budget), its sampled values are a point of the new space (same parameters, inside the ranges,
  relations held) and it has a value for every new objective; the others are dropped and counted by reason;
- the reused trials are stored in the new plan (``launch.json``): a resume or a rebuilt study seeds the same
  trials even if the old folder is gone. They take the study's first numbers, so the new sweep's own
  trials start at ``t{k:04d}`` for k reused trials; reports list the new sweep's own trials only.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping

from automl.errors import LaunchError
from automl.plan.launch import LaunchPlan, dotted_values
from automl.plan.objectives import values_of, violations_of
from automl.tune.ledger import Ledger

MAX_SPEC_LINES = 8  # base-spec differences listed one per line; the rest counted


@dataclass
class WarmStart:
    source: str
    state: str  # the old sweep's state (completed, interrupted, ...)
    trials: List[Dict[str, Any]] = field(default_factory=list)  # [{trial_id, params, values, violations}]
    differences: List[str] = field(default_factory=list)
    dropped: Dict[str, int] = field(default_factory=dict)  # reason -> trials

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        dropped = sum(self.dropped.values())
        why = "; ".join(f"{n} {reason}" for reason, n in self.dropped.items())
        return (f"reusing {len(self.trials)} completed trial(s) of {self.source} ({self.state})"
                + (f", {dropped} dropped ({why})" if dropped else ""))


def _fmt(dist: Mapping[str, Any]) -> str:
    shown = {k: v for k, v in dist.items() if k in ("distribution", "low", "high", "choices", "base", "step")}
    return json.dumps(shown, default=str)


def space_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> List[str]:
    """One line per parameter whose search differs between two spaces' ``parameters`` dicts."""
    lines = []
    for name in dict.fromkeys([*old, *new]):
        if name not in old:
            lines.append(f"{name}: searched now, not in the warm-start sweep (its trials lack it: dropped)")
        elif name not in new:
            lines.append(f"{name}: searched in the warm-start sweep, not now (its trials set it: dropped)")
        elif _fmt(old[name]) != _fmt(new[name]):
            lines.append(f"{name}: {_fmt(old[name])} -> {_fmt(new[name])} (trials outside the new range: dropped)")
    return lines


def _spec_differences(old: Mapping[str, Any], new: Mapping[str, Any], skip: set) -> List[str]:
    a, b = dotted_values(old), dotted_values(new)
    keys = [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k) and k not in skip and k != "results_dir"]
    lines = [f"base spec {k}: {a.get(k, 'unset')!r} -> {b.get(k, 'unset')!r} (kept: the trials' numbers may not "
             "carry over)" for k in keys[:MAX_SPEC_LINES]]
    if len(keys) > MAX_SPEC_LINES:
        lines.append(f"base spec: {len(keys) - MAX_SPEC_LINES} more differing key(s)")
    return lines


def read_warm_start(folder: str, plan: LaunchPlan) -> WarmStart:
    """The reusable trials of the sweep in `folder` for `plan` (module docstring); LaunchError when `folder`
    is not a sweep folder."""
    path = Path(folder).expanduser().resolve()
    launch = path / "launch.json"
    if not launch.is_file():
        raise LaunchError(f"--warm-start {folder}: {launch} not found; pass the output folder of a finished "
                          "`automl run` sweep (it holds launch.json and ledger/)")
    if path == Path(plan.run_dir).resolve():
        raise LaunchError(f"--warm-start {folder} is this run's own folder; to continue it use --resume {folder}")
    old = json.loads(launch.read_text())
    ledger = Ledger(path, metric=old.get("metric", "val/epe"), mode=old.get("mode", "min"))
    objectives, constraints = plan.goals()
    old_objectives = [tuple(o) for o in old.get("objectives") or [[old.get("metric"), old.get("mode")]]]
    out = WarmStart(source=str(path), state=str(ledger.sweep().get("state", "unknown")))
    out.differences = space_differences((old.get("space") or {}).get("parameters") or {},
                                        plan.space.get("parameters") or {})
    if [(o.name, o.mode) for o in objectives] != [tuple(o) for o in old_objectives]:
        out.differences.append(f"objectives: {', '.join(f'{n}:{m}' for n, m in old_objectives)} -> "
                               f"{', '.join(o.text() for o in objectives)} (trials without a value: dropped)")
    out.differences += _spec_differences(old.get("base_spec") or {}, plan.base_spec, set(plan.space.get("parameters")
                                                                                         or {}))
    space = plan.search_space()

    def drop(reason: str) -> None:
        out.dropped[reason] = out.dropped.get(reason, 0) + 1

    for t in ledger.trials():
        if t["interrupted"] or t["status"] != "completed":
            drop("not completed" if t["status"] != "stopped" or t["interrupted"] else "early-stopped")
            continue
        if space.problems(t["params"]):
            drop("outside the new space")
            continue
        values = values_of(t, objectives)
        if any(v is None for v in values.values()):
            drop("without a value of every objective")
            continue
        out.trials.append({"trial_id": t["trial_id"], "params": dict(t["params"]),
                           "values": [values[o.name] for o in objectives],
                           "violations": violations_of(t, constraints)})
    return out


def attach(plan: LaunchPlan, folder: str) -> None:
    """Read `folder`'s reusable trials into `plan.warm_start` (the review prints them; launch.json keeps them)."""
    plan.warm_start = read_warm_start(folder, plan).to_dict()
