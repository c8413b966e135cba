"""The sweep parent run's description (MLflow's run note, markdown): what a reader of the UI needs first.

A short leaderboard (the ten best trials, their outcome, the value each is ranked by and the sampled
values), then the decision and why, the search space, the budget, and links to the plots and the report
among the run's artifacts. Built from the report's own results (results.json), so it agrees with the
leaderboard on the console and in leaderboard.txt.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Optional

from automl.tune.ledger import best_key

ROWS = 10
PLOTS = ("history", "parallel", "importance")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "–" if value is None else str(value)


def _outcome(row: Mapping[str, Any]) -> str:
    return "interrupted" if row.get("interrupted") else str(row.get("status"))


def _space_lines(space: Optional[Mapping[str, Any]]) -> list:
    params = (space or {}).get("parameters") or {}
    lines = []
    for name, dist in params.items():
        shown = {k: v for k, v in dist.items() if k not in ("depends_on",)}
        lines.append(f"- `{name}`: {json.dumps(shown, default=str)}"
                     + (f" (depends on {', '.join(dist['depends_on'])})" if dist.get("depends_on") else ""))
    return lines


def sweep_note(*, name: str, results: Mapping[str, Any], metric: str, mode: str, decision: Mapping[str, Any],
               budget: str, algorithm: str, experiment_id: str, parent_run_id: str,
               links: Optional[Any] = None, report_path: Optional[str] = None) -> str:
    """Markdown for the parent run's ``mlflow.note.content``."""
    progress, best = results.get("progress", {}), results.get("best")
    history = list(results.get("history", []))
    names = list(((results.get("space") or {}).get("parameters") or {}).keys()) or \
        list(dict.fromkeys(k for h in history for k in h.get("params", {})))
    scored = sorted((h for h in history if h.get("metric") is not None),
                    key=lambda h: h["metric"], reverse=mode == "max")
    rows = scored + [h for h in history if h.get("metric") is None]
    state = "complete" if progress.get("complete") else "INCOMPLETE (resume it: see the console)"
    key = best_key(metric)
    out = [f"### Sweep `{name}`: {state}",
           f"Ranked by **{key}** ({mode}): each trial's best validation value, the checkpoint it kept. "
           + (f"Best: **{best['trial_id']}** = {_fmt(best['metric'])}." if best else "No trial was scored."),
           "",
           "| rank | trial | outcome | " + " | ".join([key, *(f"`{n}`" for n in names)]) + " |",
           "|" + "---|" * (4 + len(names))]
    for i, h in enumerate(rows[:ROWS]):
        rank = str(i + 1) if h.get("metric") is not None else "–"
        cells = [rank, h["trial_id"], _outcome(h), _fmt(h.get("metric")),
                 *(_fmt(h.get("params", {}).get(n)) for n in names)]
        out.append("| " + " | ".join(cells) + " |")
    if len(rows) > ROWS:
        out.append(f"\n…and {len(rows) - ROWS} more trials (every one is in the runs table and report.html).")
    if "pareto" in results:  # several objectives or constraints (automl/report/pareto.py)
        goals = ", ".join(f"{o['name']} ({o['mode']})" for o in results.get("objectives", []))
        front = ", ".join(f"{p['trial_id']} ({', '.join(f'{k}={_fmt(v)}' for k, v in p['values'].items())})"
                          for p in results["pareto"][:ROWS]) or "none"
        out += ["", f"**Pareto front** over {goals}: {front}. Best: {results.get('best_rule')}; the table above is "
                f"ranked by {key}; [pareto.png]({{base}}/plots/pareto.png)."]
    counts = ", ".join(f"{progress.get(k, 0)} {k}" for k in ("completed", "stopped", "failed", "interrupted"))
    reasons = "; ".join(decision.get("reasons", ())) or "–"
    out += ["", f"**Decision:** {decision.get('mode', '?')} (policy {decision.get('policy_used', '?')}): {reasons}",
            "", f"**Budget:** {budget}; algorithm {algorithm}. Trials: {counts}.",
            "", "**Search space:**", *_space_lines(results.get("space"))]
    base = f"#/experiments/{experiment_id}/runs/{parent_run_id}/artifacts/report"
    out = [line.replace("{base}", base) for line in out]
    plots = " · ".join(f"[{p}]({base}/plots/{p}.png)" for p in PLOTS)
    out += ["", f"**Plots:** {plots} · [report.html]({base}/report.html)"
            + (f" (on disk: `{report_path}`)" if report_path else "")]
    if links is not None:
        # relative links: they work on whatever host and port the UI is served from
        out += ["", f"**Trials at a glance:** [sorted runs table]({links.runs_path})"
                + (f" · [compare the top trials]({links.compare_path})" if links.compare_path else "")]
    return "\n".join(out) + "\n"
