"""The sweep report as one self-contained HTML file: inline SVG plots, sortable tables, no CDN.

MLflow's artifact viewer renders HTML artifacts in place, so the same file works opened from disk and
from the parent run's artifacts. The table sorter is a few lines of inline JavaScript; numeric columns
sort numerically (cells carry ``data-v``), and unscored trials always sort after scored ones.
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from automl.report.importance import ImportanceResult

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1.5em;color:#222;max-width:1200px}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
.banner{padding:.6em 1em;border-radius:6px;margin:.8em 0}
.incomplete{background:#fff3cd;border:1px solid #e0b100}.complete{background:#e8f5e9;border:1px solid #66bb6a}
table{border-collapse:collapse;font-size:.88em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3;cursor:pointer;user-select:none}th:after{content:" \\2195";color:#aaa}
tr.failed td{color:#b00020}tr.best td{font-weight:600;background:#fffde7}
code{background:#f3f3f3;padding:.1em .3em;border-radius:3px}.plot svg{max-width:100%;height:auto}
"""

_JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){
    var asc=true;
    th.addEventListener('click',function(){
      var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows);
      rows.sort(function(a,b){
        var x=a.cells[i].getAttribute('data-v'),y=b.cells[i].getAttribute('data-v');
        var nx=parseFloat(x),ny=parseFloat(y),bx=isNaN(nx),by=isNaN(ny);
        if(bx!==by){return bx?1:-1;}
        var c=(!bx)?nx-ny:String(x).localeCompare(String(y));
        return asc?c:-c;
      });
      asc=!asc;rows.forEach(function(r){body.appendChild(r);});
    });
  });
});
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cell(value: Any, text: Optional[str] = None) -> str:
    """A cell whose sort key is the raw number (or the text); None/NaN sort last (empty key)."""
    if isinstance(value, bool) or value is None:
        key = "" if value is None else str(value)
    elif isinstance(value, (int, float)):
        key = repr(float(value)) if math.isfinite(value) else ""
    else:
        key = str(value)
    shown = text if text is not None else ("" if value is None else
                                           f"{value:.4g}" if isinstance(value, float) else str(value))
    return f'<td data-v="{_e(key)}">{_e(shown)}</td>'


def _table(header: Sequence[str], rows: Sequence[str], table_id: str) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    return (f'<table class="sortable" id="{table_id}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _trial_rows(ranked: Sequence[Mapping[str, Any]], names: Sequence[str], best_id: Any,
                objectives: Sequence[Any] = (), front: bool = False) -> list:
    from automl.report.pareto import front_mark

    rows, rank = [], 0
    for t in ranked:
        scored = t["score"] is not None
        rank += scored
        cls = "best" if scored and t["trial_id"] == best_id else "failed" if t["status"] == "failed" else ""
        note = (str(t.get("error") or "") if t["status"] == "failed" else "")
        cells = [_cell(rank if scored else None, str(rank) if scored else "-"), _cell(str(t["trial_id"])),
                 _cell(t["status"]),
                 _cell(t["score"], None if scored else ("failed" if t["status"] == "failed" else "-")),
                 *([_cell(t.get("layer") if t.get("feasible") else None, front_mark(t))] if front else []),
                 *[_cell((t.get("values") or {}).get(o.name)) for o in objectives],
                 *[_cell(t["params"].get(n)) for n in names], _cell(t.get("epochs")),
                 _cell(t.get("duration_s"), "" if t.get("duration_s") is None else f"{t['duration_s']:.1f}"),
                 _cell(t.get("run_id") or ""), _cell(note)]
        rows.append(f'<tr class="{cls}">{"".join(cells)}</tr>')
    return rows


def _front_section(ranked: Sequence[Mapping[str, Any]], goals: tuple, svg: Optional[str]) -> str:
    """The Pareto front: which trials, their objective values, how the best is chosen, the plot."""
    from automl.report.pareto import best_rule, front, note_line

    objectives, constraints = goals
    rows = [f"<tr>{_cell(t['trial_id'])}{''.join(_cell(t['values'][o.name]) for o in objectives)}"
            f"{_cell(t.get('run_id') or '')}</tr>" for t in front(ranked)]
    table = _table(["trial", *(f"{o.name} ({o.mode})" for o in objectives), "run id"], rows, "pareto")
    return (f"<h2>Pareto front</h2><p>{_e(note_line(ranked, *goals))}. Best: {_e(best_rule(*goals))}.</p>"
            + (table if rows else "") + (f'<div class="plot">{svg}</div>' if svg else ""))


def html_report(*, ranked: Sequence[Mapping[str, Any]], names: Sequence[str], metric: str, mode: str,
                progress: Mapping[str, Any], svgs: Mapping[str, str], importance: ImportanceResult,
                resume_command: Optional[str], best_spec_path: Optional[Path],
                checkpoint: Optional[Path], warnings: Sequence[str] = (), goals: Optional[tuple] = None) -> str:
    complete = progress["complete"]
    banner_cls = "complete" if complete else "incomplete"
    state = "Sweep complete" if complete else "INCOMPLETE sweep: interrupted; results cover the trials so far"
    resume = "" if complete else (f"<br>Resume: <code>{_e(resume_command)}</code>" if resume_command else
                                  "<br>Resume by re-running the same <code>automl run</code> command with "
                                  "<code>--resume</code>.")
    best = (f"Best trial <b>{_e(progress['best_trial_id'])}</b>: {_e(metric)} = "
            f"<b>{progress['best_metric']:.4g}</b>" if progress["best_trial_id"] is not None
            else "No trial produced a score.")
    files = "".join(f"<li><b>WARNING:</b> {_e(w)}</li>" for w in warnings)
    if best_spec_path is not None:
        files += (f"<li>best spec: <code>{_e(best_spec_path)}</code> (retrain: "
                  f"<code>depth_net train -e {_e(best_spec_path)}</code>)</li>")
    if checkpoint is not None:
        files += f"<li>best checkpoint: <code>{_e(checkpoint)}</code></li>"
    counts = (f"{progress['completed']} completed, {progress['stopped']} early-stopped, {progress['failed']} "
              f"failed, {progress['running']} running of {progress['total']} trials; algorithm "
              f"{_e(progress['algorithm'])}; objective {_e(metric)} ({_e(mode)})")
    objectives = [o for o in (goals[0] if goals else ()) if o.name != metric]
    extra = (["front (* = Pareto; else layer; - infeasible)", *(f"{o.name} ({o.mode})" for o in objectives)]
             if goals else [])
    header = ["rank", "trial", "status", f"{metric} ({mode})", *extra, *names, "epochs", "duration s", "run id",
              "error"]
    trials = _table(header, _trial_rows(ranked, names, progress["best_trial_id"], objectives, bool(goals)),
                    "trials")
    front = _front_section(ranked, goals, svgs.get("pareto")) if goals else ""
    imp_rows = [f"<tr>{_cell(p.name)}{_cell(p.importance)}{_cell(p.epsilon_sq)}"
                f"{_cell(p.spearman, '' if p.spearman is None else f'{p.spearman:+.2f}')}"
                f"{_cell(p.groups)}</tr>" for p in importance.params]
    imp = (_table(["parameter", "importance", "epsilon^2", "spearman rho", "groups"], imp_rows, "importance")
           if imp_rows else f"<p>{_e(importance.note)}</p>")
    plots = "".join(f'<h2>{_e(title)}</h2><div class="plot">{svgs[key]}</div>'
                    for key, title in (("history", "Optimisation history"),
                                       ("parallel", "Parallel coordinates"),
                                       ("importance", "Parameter importance")) if key in svgs)
    plots = front + plots
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sweep report: {_e(metric)}</title>
<style>{_CSS}</style></head><body>
<h1>Sweep report</h1>
<div class="banner {banner_cls}"><b>{_e(state)}</b>{resume}<br>{counts}<br>{best}</div>
<ul>{files}</ul>
<h2>Trials (click a column to sort)</h2>
{trials}
{plots}
<h2>Importance table</h2>
<p>Method: {_e(importance.method)}; {importance.n_trials} scored trials.</p>
{imp}
<script>{_JS}</script>
</body></html>
"""
