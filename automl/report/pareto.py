"""The Pareto front of a sweep with several objectives (or constraints), the same in every record: the
leaderboard (console and file), results.json, report.html, MLflow (tag ``automl.pareto`` on each trial
run, ``pareto.json`` and the tag ``automl.pareto_front`` on the parent) and ``plots/pareto.png``.

Which trials compete: the scored trials that count (completed, or early-stopped with a score; never a
failed or interrupted one) with a value of every objective. A trial is **feasible** when it meets every
``--constraint`` (a missing constraint metric is not met). The **front** is the feasible trials no other
feasible trial dominates (at least as good in every objective, better in one); an infeasible trial is never
on it. The **best** trial is the front's trial best by the first objective (ties: the next objectives), the
rule ``--objective`` order states. The ranking of the leaderboard is: feasible first, then by
non-dominated layer (1 = the front; NSGA-II's sorting), then the first objective. With no feasible trial
there is no front and no best; the leaderboard says which trial violates its constraints the least.
"""
from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

from automl.plan.objectives import Constraint, Objective, values_of, violations_of

PARETO_TAG = "automl.pareto"  # "true" | "false" on every scored trial run of a multi-objective sweep
FRONT_TAG = "automl.pareto_front"  # the parent run: JSON list of the front's trial ids
PARETO_FILE = "pareto.json"


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """`a` dominates `b` (both signed so that lower is better)."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def _signed(values: Mapping[str, float], objectives: Sequence[Objective]) -> List[float]:
    return [values[o.name] if o.mode == "min" else -values[o.name] for o in objectives]


def layers(points: Sequence[Sequence[float]]) -> List[int]:
    """Non-dominated sorting: each point's layer (1 = the front), lower-is-better points."""
    left, out, layer = set(range(len(points))), [0] * len(points), 0
    while left:
        layer += 1
        front = {i for i in left if not any(dominates(points[j], points[i]) for j in left if j != i)}
        for i in front:
            out[i] = layer
        left -= front
    return out


def annotate(trials: Sequence[dict], objectives: Sequence[Objective], constraints: Sequence[Constraint]) -> None:
    """Add ``values`` {objective: value}, ``violations``, ``feasible``, ``layer`` (None: not a candidate) and
    ``pareto`` to each report trial dict in place (dicts with ``score``: None for a trial that does not count)."""
    candidates = []
    for t in trials:
        t["values"] = values_of(t, objectives)
        t["violations"] = violations_of(t, constraints)
        t["feasible"] = all(v <= 0 for v in t["violations"])
        t["layer"], t["pareto"] = None, False
        if t.get("score") is not None and all(v is not None for v in t["values"].values()):
            candidates.append(t)
    for group in ([t for t in candidates if t["feasible"]], [t for t in candidates if not t["feasible"]]):
        for t, layer in zip(group, layers([_signed(t["values"], objectives) for t in group])):
            t["layer"] = layer
            t["pareto"] = layer == 1 and t["feasible"]


def rank_key(trial: Mapping[str, Any], objectives: Sequence[Objective]):
    """Feasible first, then the layer, then the objectives in order; non-candidates last (launch order kept
    by a stable sort)."""
    if trial.get("layer") is None:
        return (2, 0, [])
    excess = sum(max(0.0, v) for v in trial["violations"])
    return (0 if trial["feasible"] else 1, excess if not trial["feasible"] else trial["layer"],
            _signed(trial["values"], objectives))


def front_mark(trial: Mapping[str, Any]) -> str:
    """The leaderboard's front column: * on the front, else the non-dominated layer of a feasible trial (2 =
    on the front once the front is taken away), - for an infeasible trial or one that does not compete."""
    if trial.get("pareto"):
        return "*"
    return str(trial["layer"]) if trial.get("layer") is not None and trial.get("feasible") else "-"


def front(trials: Sequence[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    return [t for t in trials if t.get("pareto")]


def best_rule(objectives: Sequence[Objective], constraints: Sequence[Constraint]) -> str:
    what = "the Pareto front's trial" if len(objectives) > 1 else "the trial"
    feasible = f" among the trials meeting {', '.join(c.text() for c in constraints)}" if constraints else ""
    return f"{what} best by {objectives[0].name} ({objectives[0].mode}){feasible}"


def results_part(ranked: Sequence[Mapping[str, Any]], objectives: Sequence[Objective],
                 constraints: Sequence[Constraint]) -> Dict[str, Any]:
    """results.json's ``objectives``, ``constraints``, ``best_rule`` and ``pareto`` (front trials, best first)."""
    return {"objectives": [{"name": o.name, "mode": o.mode} for o in objectives],
            "constraints": [{"name": c.name, "op": c.op, "bound": c.bound} for c in constraints],
            "best_rule": best_rule(objectives, constraints),
            "pareto": [{"trial_id": t["trial_id"], "values": dict(t["values"]), "run_id": t.get("run_id")}
                       for t in front(ranked)]}


def note_line(ranked: Sequence[Mapping[str, Any]], objectives: Sequence[Objective],
              constraints: Sequence[Constraint]) -> str:
    """The leaderboard's line about the front, or why there is none."""
    on = front(ranked)
    if on:
        return f"Pareto front ({', '.join(o.text() for o in objectives)}): {', '.join(t['trial_id'] for t in on)}"
    cands = [t for t in ranked if t.get("layer") is not None]
    if cands and constraints:
        least = cands[0]
        return (f"Pareto front: none: no trial meets {', '.join(c.text() for c in constraints)} (closest: "
                f"{least['trial_id']}, {_fmt_values(least['values'])})")
    return "Pareto front: none (no trial has a value of every objective)"


def _fmt_values(values: Mapping[str, Optional[float]]) -> str:
    return ", ".join(f"{k}={'-' if v is None else f'{v:.4g}'}" for k, v in values.items())


def log_to_mlflow(tracker, parent_run, ranked: Sequence[Mapping[str, Any]]) -> None:
    """Tag each scored trial run ``automl.pareto`` true/false and the front's trial ids on the parent (its
    ``pareto.json`` is logged with the other report files)."""
    from stereo.tracking import RunHandle

    for t in ranked:
        if t.get("run_id") and t.get("layer") is not None:
            tracker.set_tags(RunHandle(t["run_id"], "", t["trial_id"]), {PARETO_TAG: str(bool(t["pareto"])).lower()})
    ids = [t["trial_id"] for t in front(ranked)]
    text = json.dumps(ids)
    tracker.set_tags(parent_run, {FRONT_TAG: text if len(text) < 4000 else json.dumps(ids[:200] + ["..."])})


def pareto_figure(ranked: Sequence[Mapping[str, Any]], objectives: Sequence[Objective],
                  constraints: Sequence[Constraint]):
    """Optuna's ``plot_pareto_front`` (front highlighted, infeasible trials grey) of the candidates, with the
    trial ids written beside the points; for 2 or 3 objectives. None for one objective."""
    from optuna.trial import TrialState, create_trial

    from automl.report.plots import _own, _optuna_pyplot, _placeholder

    if len(objectives) < 2:
        return None
    names = [o.name for o in objectives]
    title = f"Pareto front: {' vs '.join(names)}"
    cands = [t for t in ranked if t.get("layer") is not None]
    if len(objectives) > 3 or not cands:
        why = "no trial has a value of every objective" if not cands else "more than 3 objectives: see results.json"
        return _placeholder(title, why)
    import optuna
    from optuna.visualization.matplotlib import plot_pareto_front

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(directions=[o.direction for o in objectives])
    finally:
        optuna.logging.set_verbosity(verbosity)
    for t in cands:
        trial = create_trial(state=TrialState.COMPLETE, values=[t["values"][n] for n in names],
                             user_attrs={"trial_id": t["trial_id"]})
        for c, v in zip(constraints, t["violations"]):
            trial.set_constraint(c.text(), min(v, 1e12))  # Optuna greys the infeasible trials
        study.add_trial(trial)
    with _optuna_pyplot() as plt:
        ax = plot_pareto_front(study, target_names=names)
        fig = _own(plt, ax)
    fig.set_size_inches(7.0, 5.0)
    fig.set_dpi(100)
    if len(objectives) == 2:
        for t in cands:
            ax.annotate(t["trial_id"], (t["values"][names[0]], t["values"][names[1]]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        best = ranked[0] if ranked and ranked[0].get("pareto") else None
        if best is not None:  # the pick of best_rule, ringed
            ax.scatter([best["values"][names[0]]], [best["values"][names[1]]], s=180, facecolors="none",
                       edgecolors="black", linewidths=1.5, label=f"best: {best['trial_id']}", zorder=4)
    labels = {"Best Trial": "Pareto front", "Trial": "dominated", "Feasible Trial": "dominated",
              "Infeasible Trial": "infeasible"}
    handles, texts = ax.get_legend_handles_labels()
    if handles:  # Optuna's labels, in the report's words
        ax.legend(handles, [labels.get(t, t) for t in texts], fontsize=8)
    ax.set_title(title + (f" (feasible: {', '.join(c.text() for c in constraints)})" if constraints else ""),
                 fontsize=10)
    fig.tight_layout()
    return fig


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
