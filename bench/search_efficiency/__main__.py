"""`python -m bench.search_efficiency`: run (or resume) the sweeps, then write the tables and the plot."""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from bench.search_efficiency import __doc__ as DOC
from bench.search_efficiency.algorithms import ALGORITHMS, BASELINE, LABELS
from bench.search_efficiency.analysis import FRACTIONS, Curve, compute_curve, goal_check, quartiles, summarize
from bench.search_efficiency.plot import anytime_plot
from bench.search_efficiency.runner import ORDER, SPREAD, is_complete, run_sweeps, sweep_dir


def load_curves(root: Path, seeds: Sequence[int], algorithms: Sequence[str]) -> Dict[str, Dict[int, Curve]]:
    """Curves of every finished sweep; an unfinished one is left out (and said so), never half-counted."""
    curves: Dict[str, Dict[int, Curve]] = {}
    for name in algorithms:
        for seed in seeds:
            run_dir = sweep_dir(root, name, seed)
            if not is_complete(run_dir):
                print(f"note: {run_dir.name} has not finished; left out", file=sys.stderr)
                continue
            data = json.loads((run_dir / "results.json").read_text())
            curves.setdefault(name, {})[seed] = compute_curve(data["history"], data["progress"].get("mode", "min"))
    return curves


def _fmt(q) -> str:
    return "-" if q is None else f"{q[1]:.3f} ({q[0]:.3f}-{q[2]:.3f})"


def results_table(summary: dict, walls: Dict[str, List[float]]) -> str:
    b = summary["budget"]
    head = ["algorithm", "seeds"] + [f"best at {int(f * 100)} % ({f * b:g})" for f in FRACTIONS] + \
           [f"P(beats random) at {int(f * 100)} %" for f in FRACTIONS] + \
           [f"trial-epochs to random's median best ({summary['target']:.3f})", "x budget", "trials",
            "wall s / sweep (median)"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in summary["algorithms"].items():
        reach = s["reach_median"]
        wall = walls.get(name)
        cells = [LABELS.get(name, name), str(len(s["seeds"]))]
        cells += [_fmt(s["at"][f]["quartiles"]) for f in FRACTIONS]
        cells += ["-" if name == BASELINE else f"{s['at'][f]['p_beats_baseline']:.2f}" for f in FRACTIONS]
        cells += ["never (median)" if not math.isfinite(reach) else f"{reach:.0f}",
                  "-" if not math.isfinite(reach) else f"{s['reach_ratio']:.2f}", f"{s['trials_median']:.0f}",
                  "-" if not wall else f"{statistics.median(wall):.0f}"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def spread_report(root: Path) -> Optional[str]:
    run_dir = sweep_dir(root, SPREAD)
    if not is_complete(run_dir):
        return None
    from automl.report.importance import param_importance

    data = json.loads((run_dir / "results.json").read_text())
    scored = [t for t in data["history"] if t["status"] == "completed" and t["metric"] is not None]
    values = sorted(t["metric"] for t in scored)
    q = quartiles(values)
    lines = [f"Spread of {len(data['history'])} random settings ({len(scored)} scored, full 4 epochs): "
             f"best {values[0]:.3f}, q25 {q[0]:.3f}, median {q[1]:.3f}, q75 {q[2]:.3f}, worst {values[-1]:.3f} px; "
             f"worst/best {values[-1] / values[0]:.2f}x, median/best {q[1] / values[0]:.2f}x."]
    imp = param_importance([(t["params"], t["metric"]) for t in scored])
    if imp.params:
        lines.append("Parameter importance (" + imp.method + "): " + ", ".join(
            f"{p.name.split('.')[-1]} {p.importance:.2f}"
            + (f" (rho {p.spearman:+.2f})" if p.spearman is not None else "") for p in imp.params))
    return "\n".join(lines)


def wall_times(root: Path) -> Dict[str, List[float]]:
    path = root / "walls.json"
    out: Dict[str, List[float]] = {}
    for key, entry in (json.loads(path.read_text()) if path.is_file() else {}).items():
        name = key.rsplit("_seed", 1)[0]
        if "_seed" in key and not entry.get("resumed") and entry.get("exit") == 0:
            out.setdefault(name, []).append(float(entry["wall_s"]))
    return out


def analyze(root: Path, seeds: Sequence[int], budget: int, algorithms: Sequence[str]) -> int:
    curves = load_curves(root, seeds, algorithms)
    # compare like with like: only the seeds every algorithm finished
    done = [s for s in seeds if all(s in curves.get(a, {}) for a in algorithms)]
    if len(done) < len(seeds):
        print(f"note: seeds finished by every algorithm: {done or 'none'} (of {list(seeds)}); the comparison "
              "uses only those", file=sys.stderr)
    curves = {a: {s: c[s] for s in done} for a, c in curves.items() if done}
    spread = spread_report(root)
    if spread:
        print(spread + "\n")
    if BASELINE not in curves:
        print(f"no finished {BASELINE} sweep yet: nothing to compare", file=sys.stderr)
        return 1
    summary = summarize(curves, budget, BASELINE)
    table = results_table(summary, wall_times(root))
    goal = goal_check(summary) if "tpe+asha" in curves else None
    png = anytime_plot(curves, summary, root / "anytime.png",
                       title=f"Search efficiency, {len(done)} seeds, budget {budget} trial-epochs")
    print(table)
    if goal:
        print(f"\nGoal (TPE + ASHA vs random without early stopping): P(beats) at 50 % = {goal['p_half']:.2f} "
              f"(>= 0.70: {'met' if goal['p_met'] else 'NOT met'}); compute to reach random's median final best "
              f"= {goal['ratio']:.2f}x (<= 0.5x: {'met' if goal['ratio_met'] else 'NOT met'}).")
    from stereo.atomic_io import atomic_write_json, atomic_write_text

    atomic_write_text(root / "table.md", (spread + "\n\n" if spread else "") + table + "\n")
    atomic_write_json(root / "summary.json", {"summary": summary, "goal": goal, "spread": spread,
                                              "seeds": done, "walls": wall_times(root)})
    print(f"Plot: {png}\nTable: {root / 'table.md'}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search_efficiency", description=DOC.splitlines()[0])
    parser.add_argument("--root", default="bench/out/search_efficiency")
    parser.add_argument("--budget", type=int, default=24, help="trial-epochs per algorithm and seed (default 24 "
                        "= 6 full trials)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--jobs", type=int, default=2, help="sweeps at once (default 2)")
    parser.add_argument("--spread", type=int, default=30, help="random settings of the spread sweep (0: skip)")
    parser.add_argument("--algorithms", nargs="+", default=list(ORDER), choices=list(ALGORITHMS))
    parser.add_argument("--analyze-only", action="store_true", help="tables and plot from the finished sweeps")
    parser.add_argument("--own-ray", action="store_true", help="every sweep starts its own embedded Ray "
                        "(default: all join one local Ray head started here)")
    args = parser.parse_args(argv)
    if args.budget < 4 or args.jobs < 1:
        parser.error("--budget must be >= 4 trial-epochs (one full trial) and --jobs >= 1")
    root = Path(args.root).resolve()
    start = time.monotonic()
    if not args.analyze_only:
        from bench.search_efficiency.task import prepare

        overrides = prepare(root)
        run_sweeps(root, args.seeds, args.budget, overrides, jobs=args.jobs, spread=args.spread,
                   algorithms=args.algorithms, shared_ray=not args.own_ray)
    code = analyze(root, args.seeds, args.budget, args.algorithms)
    print(f"Wall time {time.monotonic() - start:.0f} s.")
    return code


if __name__ == "__main__":
    sys.exit(main())
