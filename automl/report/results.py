"""End-of-sweep report: leaderboard, best_spec.yaml, best checkpoint, results.json, plots, HTML.

    report = write_report(run_dir, trials, metric="val/epe", mode="min", space=space,
                          best_spec=spec_dict, complete=True, tracker=tracker, parent_run=parent)

Written into `run_dir` (every file atomically, so an interrupted sweep never leaves a torn report):

    leaderboard.txt                 the console table
    results.json                    {best, progress, history}: TAO's AutoML result shape, extended
    best_spec.yaml                  the best trial's resolved spec; `depth_net train -e` accepts it
    best_checkpoint/ + .<ext> link the best trial's checkpoint and sidecar under their own names (hard
                                    links when possible, else copies); best_checkpoint.<ext> points at them
    plots/{history,parallel,importance}.png and report.html (self-contained: inline SVG, no CDN)

Failed trials are listed with their reason and never get a score (TAO records them as 0.0). An
interrupted sweep (``complete=False``) is marked INCOMPLETE everywhere, with the command that resumes it.
Bad trial dicts raise :class:`ReportError`; a missing best checkpoint or an unloadable best spec only
becomes a WARNING line (``Report.warnings``), so the rest of a finished sweep's report is still written.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, TextIO

import yaml

from automl.commands import depth_net_command
from automl.errors import AutomlInputError
from automl.report.importance import ImportanceResult, param_importance
from automl.tune.ledger import best_key
from automl.report.plots import history_figure, importance_figure, parallel_figure, render
from automl.report.study import report_study, trial_score
from automl.report.html import html_report
from stereo.atomic_io import atomic_write_json, atomic_write_text

STATUSES = ("completed", "failed", "stopped", "running")
RESULTS_FILE, BEST_SPEC_FILE, LEADERBOARD_FILE, HTML_FILE = ("results.json", "best_spec.yaml",
                                                             "leaderboard.txt", "report.html")
ARTIFACT_DIR = "report"  # where the files land among the parent MLflow run's artifacts
BEST_CHECKPOINT_DIR = "best_checkpoint"


class ReportError(AutomlInputError):
    """Trials or arguments the report cannot describe; the message says which and how to fix it."""


@dataclass
class Report:
    run_dir: Path
    results: dict
    leaderboard: str
    results_path: Path
    html_path: Path
    plots: dict  # name -> PNG path
    best_spec_path: Optional[Path] = None
    best_checkpoint: Optional[Path] = None
    importance: Optional[ImportanceResult] = None
    complete: bool = True
    artifacts: list = field(default_factory=list)  # every file written (and logged, with a tracker)
    warnings: list = field(default_factory=list)  # best checkpoint/spec problems (the rest was written)


def _check(trials: Sequence[Mapping[str, Any]], mode: str) -> list:
    if mode not in ("min", "max"):
        raise ReportError(f"mode must be 'min' or 'max', got {mode!r}")
    out, seen = [], set()
    for i, t in enumerate(trials):
        if not isinstance(t, Mapping) or "trial_id" not in t:
            raise ReportError(f"trial #{i} has no 'trial_id'; every trial dict needs trial_id and status")
        if t.get("status") not in STATUSES:
            raise ReportError(f"trial {t['trial_id']!r} has status {t.get('status')!r}; expected one of "
                              f"{', '.join(STATUSES)}")
        if t["trial_id"] in seen:
            raise ReportError(f"trial id {t['trial_id']!r} appears twice; trial ids must be unique")
        seen.add(t["trial_id"])
        out.append({**t, "params": dict(t.get("params") or {}), "score": None})
        out[-1]["score"] = trial_score(out[-1])
    return out


def rank_trials(trials: Sequence[Mapping[str, Any]], mode: str) -> list:
    """Scored trials best first (ties keep launch order), then the unscored ones in launch order."""
    scored = [t for t in trials if t["score"] is not None]
    scored.sort(key=lambda t: t["score"] if mode == "min" else -t["score"])
    return scored + [t for t in trials if t["score"] is None]


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _short(name: str, names: Sequence[str]) -> str:
    """The shortest dotted suffix of `name` that no other parameter shares ('optim.lr' -> 'lr')."""
    parts = name.split(".")
    for k in range(1, len(parts) + 1):
        tail = ".".join(parts[-k:])
        if sum(1 for n in names if n == tail or n.endswith("." + tail)) == 1:
            return tail
    return name


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return "-"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def _deploy(trial: Optional[Mapping[str, Any]]) -> dict:
    """{"deploy": {deploy/* metrics}} of a trial scored on the deployed model (--score-on deploy), else {}."""
    found = {k: v for k, v in ((trial or {}).get("metrics") or {}).items() if str(k).startswith("deploy/")}
    return {"deploy": found} if found else {}


def _reason(trial: Mapping[str, Any]) -> str:
    if trial["status"] == "failed":
        first = (str(trial.get("error") or "no error message recorded").strip().splitlines() or [""])[0]
        return first if len(first) <= 70 else first[:67] + "..."
    if trial["status"] == "running":
        return "still running when the report was written"
    if trial.get("interrupted"):
        return "interrupted (sweep stopped); not counted"
    if trial["score"] is None:
        return "finished without a finite metric"
    if trial["status"] == "stopped":
        return "early-stopped"
    return ""


def leaderboard(ranked: Sequence[Mapping[str, Any]], names: Sequence[str], metric: str, mode: str,
                progress: Mapping[str, Any], resume_command: Optional[str],
                warnings: Sequence[str] = (), goals: Optional[tuple] = None) -> str:
    """The console table (plain text, aligned), with a header line and, if incomplete, how to resume.
    `goals` (objectives, constraints): one column per objective and the Pareto front (automl/report/pareto.py)."""
    from automl.report.pareto import front_mark

    shorts = [_short(n, names) for n in names]
    objectives = [o for o in (goals[0] if goals else ()) if o.name != metric]
    extra = (["front", *(f"{o.name} ({o.mode})" for o in objectives)] + (["feasible"] if goals[1] else [])
             if goals else [])
    header = ["rank", "trial", "status", f"{metric} ({mode})", *extra, *shorts, "epochs", "duration", "note"]
    rows, rank = [], 0
    for t in ranked:
        if t["score"] is not None:
            rank += 1
        more = ([front_mark(t),
                 *(_fmt(t["values"].get(o.name)) if t["values"].get(o.name) is not None else "-" for o in objectives)]
                + (["yes" if t["feasible"] else "no"] if goals[1] else []) if goals else [])
        rows.append([str(rank) if t["score"] is not None else "-", str(t["trial_id"]), t["status"],
                     _fmt(t["score"]) if t["score"] is not None
                     else ("failed" if t["status"] == "failed" else "-"), *more,
                     *[_fmt(t["params"].get(n, "-")) for n in names],
                     str(t.get("epochs") if t.get("epochs") is not None else "-"),
                     _duration(t.get("duration_s")), _reason(t)])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join
    body = [line(c.ljust(w) for c, w in zip(header, widths)).rstrip(),
            line("-" * w for w in widths)]
    body += [line(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    state = "complete" if progress["complete"] else "INCOMPLETE"
    title = (f"Sweep {state}: {progress['completed']} completed, {progress['stopped']} early-stopped, "
             f"{progress['failed']} failed, {progress['running']} running"
             + (f", {progress['interrupted']} interrupted" if progress.get("interrupted") else "")
             + f" of {progress['total']} trials "
             f"({progress['algorithm']})")
    best = (f"Best: {progress['best_trial_id']} with {metric} = {_fmt(progress['best_metric'])}"
            if progress["best_trial_id"] is not None else "Best: none (no trial produced a score)")
    if goals:
        from automl.report.pareto import best_rule, note_line

        best += f" ({best_rule(*goals)})"
        lines = [title, best, note_line(ranked, *goals),
                 "front: * on the Pareto front, else its non-dominated layer (- infeasible)", "", *body]
    else:
        lines = [title, best, "", *body]
    if not progress["complete"]:
        lines += ["", "INCOMPLETE: the sweep was interrupted; these results cover the trials so far.",
                  f"Resume it with: {resume_command}" if resume_command else
                  "Resume it by re-running the same `automl run` command with --resume."]
    lines += [f"WARNING: {w}" for w in warnings]
    return "\n".join(lines) + "\n"


def _place_checkpoint(src: Optional[str], run_dir: Path) -> Optional[Path]:
    """``best_checkpoint/`` gets the best trial's weights and sidecar under their own names (hard links:
    free, and they survive deleting the trial; else copies) and ``best_checkpoint.<ext>`` links to them.

    The names are kept because a sidecar names its weights file (a renamed pair does not load), and the
    trial's ``dn_model_best`` is itself a link to the epoch's file, so it is resolved first.
    """
    if not src:
        return None
    given = Path(src)
    if not given.is_file():
        raise ReportError(f"best trial checkpoint {given} does not exist; the trial folder was moved or "
                          "deleted, so the report cannot copy it")
    real = given.resolve()
    sidecar = real.with_suffix(".json")
    pair = [real] + ([sidecar] if real.suffix != ".json" and sidecar.is_file() else [])
    folder, staging = run_dir / BEST_CHECKPOINT_DIR, run_dir / f".{BEST_CHECKPOINT_DIR}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for path in pair:
        try:
            os.link(path, staging / path.name)
        except OSError:  # another filesystem, or links not allowed
            shutil.copy2(path, staging / path.name)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)
    link = run_dir / f"{BEST_CHECKPOINT_DIR}{real.suffix}"
    for old in run_dir.glob(f"{BEST_CHECKPOINT_DIR}.*"):  # an earlier best (maybe another format)
        if old.is_symlink() or old.is_file():
            old.unlink()
    tmp = run_dir / f".{link.name}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(f"{BEST_CHECKPOINT_DIR}/{real.name}", tmp)  # relative: the run folder can be moved
    os.replace(tmp, link)
    return link


def _best_spec_yaml(spec: Mapping[str, Any], run_dir: Path, best: Mapping[str, Any], metric: str,
                    checkpoint: Optional[Path]) -> str:
    """The best spec, validated, retargeted so retraining never resumes inside the trial's folder."""
    from stereo.config.load import load_spec, spec_to_dict
    from stereo.config.errors import SpecError

    raw = dict(spec)
    # the trial's results_dir holds its checkpoints: `train -e` there would auto-resume the finished trial
    raw["results_dir"] = str(run_dir / "retrain")
    for action in ("evaluate", "inference"):
        section = raw.get(action)
        if checkpoint is not None and isinstance(section, Mapping) and not section.get("checkpoint"):
            raw[action] = {**raw[action], "checkpoint": str(checkpoint)}
    try:
        loaded = load_spec(raw)
    except SpecError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ReportError(f"best trial {best['trial_id']}: its spec does not load ({first}); "
                          "the sweep passed an invalid best_spec") from None
    threads = _trial_threads(run_dir)
    env = f"OMP_NUM_THREADS={threads} " if threads else ""
    header = (f"# Best trial {best['trial_id']} of sweep {run_dir} ({metric} = {_fmt(best['score'])}).\n"
              f"# Retrain: {env}{depth_net_command(f'train -e {run_dir / BEST_SPEC_FILE}')}\n"
              "# (results_dir points at a fresh folder, not the trial's: that one would auto-resume)\n")
    if threads:
        header += (f"# The trial trained on the CPU with {threads} torch thread(s); another thread count changes "
                   "the order of float sums, so the numbers drift from the trial's.\n")
    from stereo.config.secrets import redact

    return header + yaml.safe_dump(redact(spec_to_dict(loaded)), sort_keys=False, default_flow_style=None, width=110)


def _trial_threads(run_dir: Path) -> Optional[int]:
    """The torch threads a CPU trial of this sweep used (automl/tune/trial.py: int(cpus_per_trial)), from
    launch.json; None for GPU sweeps or when unknown."""
    try:
        launch = json.loads((run_dir / "launch.json").read_text())
    except (OSError, ValueError):
        return None
    if launch.get("gpus_per_trial") or not launch.get("cpus_per_trial"):
        return None
    return max(1, int(launch["cpus_per_trial"]))


def _json_value(value: Any) -> Any:
    """JSON has no NaN/inf: non-finite floats become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value


def write_report(run_dir: str | os.PathLike, trials: Sequence[Mapping[str, Any]], *, metric: str, mode: str,
                 space: Any, best_spec: Optional[Mapping[str, Any]], complete: bool, tracker: Any = None,
                 parent_run: Any = None, algorithm: str = "unknown", resume_command: Optional[str] = None,
                 stream: Optional[TextIO] = sys.stdout, step: int = 0, objectives: Sequence[Any] = (),
                 constraints: Sequence[Any] = ()) -> Report:
    """Write every report file into `run_dir`, print the leaderboard to `stream`, log artifacts.

    `algorithm` (e.g. "tpe+asha") and `resume_command` only add text; `stream=None` prints nothing.
    `step`: where the parent run's ``best/val/<metric>`` point goes (the driver passes its attempt, so a
    resumed sweep adds a point instead of logging a second one at the same step).
    `objectives`/`constraints` (automl/plan/objectives.py): beyond the one `metric`, the Pareto front ranks the
    trials and picks the best, in every file (automl/report/pareto.py).
    """
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    checked = _check(trials, mode)
    names = list(getattr(space, "names", ()) or dict.fromkeys(k for t in checked for k in t["params"]))
    goals = None
    if constraints or len(objectives) > 1 or (objectives and objectives[0].name != metric):
        from automl.report import pareto

        goals = (list(objectives), list(constraints))
        pareto.annotate(checked, *goals)
        ranked = sorted(checked, key=lambda t: pareto.rank_key(t, goals[0]))
        best = ranked[0] if ranked and ranked[0]["pareto"] else None
    else:
        ranked = rank_trials(checked, mode)
        best = ranked[0] if ranked and ranked[0]["score"] is not None else None
    counts = {s: sum(1 for t in checked if t["status"] == s and not t.get("interrupted")) for s in STATUSES}
    counts["interrupted"] = sum(1 for t in checked if t.get("interrupted"))
    progress = {**counts, "total": len(checked), "best_metric": best["score"] if best else None,
                "best_trial_id": best["trial_id"] if best else None, "algorithm": algorithm,
                "complete": bool(complete), "metric": metric, "mode": mode}

    written: list[Path] = []
    # a bad best checkpoint/spec must not cost the user the whole report of a finished sweep: warn instead
    warnings: list[str] = []
    checkpoint = spec_path = None
    try:
        checkpoint = _place_checkpoint(best.get("checkpoint"), run_dir) if best else None
    except ReportError as exc:
        warnings.append(str(exc))
    if callable(best_spec):  # the driver hands in a reader: only the report knows which trial is best
        best_spec = best_spec(best["trial_id"]) if best is not None else None
    if best is not None and best_spec is not None:
        try:
            spec_path = atomic_write_text(run_dir / BEST_SPEC_FILE,
                                          _best_spec_yaml(best_spec, run_dir, best, metric, checkpoint))
            written.append(spec_path)
        except ReportError as exc:
            warnings.append(str(exc))
    results = _json_value({
        "best": {"trial_id": best["trial_id"], "params": best["params"], "metric": best["score"],
                 "spec_path": str(spec_path) if spec_path else None,
                 "checkpoint": str(checkpoint) if checkpoint else None, "run_id": best.get("run_id"), **_deploy(best)}
        if best else None,
        "progress": progress,
        "history": [{"trial_id": t["trial_id"], "metric": t["score"], "status": t["status"],
                     "params": t["params"], "epochs": t.get("epochs"), "duration_s": t.get("duration_s"),
                     "error": t.get("error"), "run_id": t.get("run_id"), "checkpoint": t.get("checkpoint"),
                     **_deploy(t)}
                    for t in checked],
        "space": space.to_dict() if hasattr(space, "to_dict") else None,
        "warnings": warnings,
        **(pareto.results_part(ranked, *goals) if goals else {}),
    })
    if goals:
        for row, t in zip(results["history"], checked):
            row.update(values=t["values"], pareto=t["pareto"], feasible=t["feasible"])
        if best is not None:
            results["best"]["values"] = best["values"]
    results_path = atomic_write_json(run_dir / RESULTS_FILE, results)
    written.append(results_path)

    if resume_command is None:
        from automl.commands import resume_command as resume_for

        resume_command = resume_for(run_dir)
    text = leaderboard(ranked, names, metric, mode, progress, resume_command, warnings, goals)
    written.append(atomic_write_text(run_dir / LEADERBOARD_FILE, text))
    if stream is not None:
        print(text, file=stream, end="", flush=True)

    points = [(t["params"], t["score"]) for t in checked if t["score"] is not None]
    importance = param_importance(points, names)
    plot_dir = run_dir / "plots"
    study = report_study(checked, space, mode)  # Optuna's plots read the sweep through it
    figures = {"history": history_figure(study, metric),
               "parallel": parallel_figure(study, names, metric),
               "importance": importance_figure(importance)}
    if goals and len(goals[0]) > 1:
        figures["pareto"] = pareto.pareto_figure(ranked, *goals)
    svgs, plots = {}, {}
    for name, fig in figures.items():
        plots[name] = plot_dir / f"{name}.png"
        svgs[name] = render(fig, plots[name])
        written.append(plots[name])
    html_path = atomic_write_text(run_dir / HTML_FILE, html_report(
        ranked=ranked, names=names, metric=metric, mode=mode, progress=progress, svgs=svgs,
        importance=importance, resume_command=resume_command, best_spec_path=spec_path,
        checkpoint=checkpoint, warnings=warnings, goals=goals))
    written.append(html_path)
    if goals:
        front_path = atomic_write_json(run_dir / pareto.PARETO_FILE, {k: results[k] for k in (
            "objectives", "constraints", "best_rule", "pareto")})
        written.append(front_path)

    if tracker is not None and parent_run is not None:
        for path in written:
            sub = f"{ARTIFACT_DIR}/plots" if path.parent == plot_dir else ARTIFACT_DIR
            tracker.log_artifact(parent_run, str(path), sub)
        tracker.set_tags(parent_run, {"sweep.complete": str(bool(complete)).lower(),
                                      "sweep.best_trial_id": progress["best_trial_id"] or "none"})
        if best is not None:
            tracker.log_metrics(parent_run, {best_key(metric): best["score"]}, step=step)
        if goals:
            pareto.log_to_mlflow(tracker, parent_run, ranked)
    return Report(run_dir, results, text, results_path, html_path, plots, spec_path, checkpoint, importance,
                  bool(complete), written, warnings)
