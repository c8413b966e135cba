"""Search efficiency on the demo task: TPE+ASHA vs random search (no early stopping) vs GP (sequential).

    python -m bench.search_efficiency [--budget 32] [--seeds 0 1 2] [--root bench/out/search_efficiency]
    python -m bench.search_efficiency --analyze-only     # re-read finished sweeps, redo table + plot

Compute is counted in trial-epochs (one epoch of one trial = 8 steps of the tiny-demo net on 16 pairs),
the unit ASHA saves: an early-stopped trial costs only the epochs it ran, a failed trial what it ran
before failing. Each algorithm gets the same budget per seed; the curve is the best val EPE seen after
each trial, trials taken in launch order (with 2 trials at a time that is within one trial of the
completion order). Reported per algorithm, median over seeds:

- best val EPE at the budget;
- trial-epochs needed to reach random search's final best (median over seeds), and that as a fraction
  of the budget. The goal for TPE+ASHA is <= 0.4x of random search's compute.

Every sweep goes through the sweep engine's CLI (`automl run`) and is read back from its results.json
(automl/report.py), so the numbers are what a user would get.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

EPOCHS_PER_TRIAL = 4  # automl.demo.TRAIN_OVERRIDES: 4 epochs x 8 steps
# name -> CLI flags of `automl run`; samples: how many trials to launch for a budget of B trial-epochs
ALGORITHMS: Dict[str, Dict[str, Any]] = {
    "tpe+asha": {"flags": ["--algorithm", "tpe", "--scheduler", "asha"], "concurrency": 2, "oversample": 3},
    "random": {"flags": ["--algorithm", "random", "--scheduler", "none"], "concurrency": 2, "oversample": 1},
    "gp": {"flags": ["--algorithm", "bayesian", "--scheduler", "none"], "concurrency": 1, "oversample": 1},
}
BASELINE = "random"
TARGET_RATIO = 0.4


def compute_curve(history: Sequence[Mapping[str, Any]], mode: str = "min") -> List[tuple]:
    """[(cumulative trial-epochs, best metric so far or None)] after each finished trial in launch order."""
    curve, spent, best = [], 0, None
    for trial in history:
        if trial.get("status") == "running":
            continue
        spent += int(trial.get("epochs") or 0)
        value = trial.get("metric")
        scored = (trial.get("status") in ("completed", "stopped") and isinstance(value, (int, float))
                  and math.isfinite(value))
        if scored and (best is None or (value < best if mode == "min" else value > best)):
            best = float(value)
        curve.append((spent, best))
    return curve


def best_within(curve: Sequence[tuple], budget: float) -> Optional[float]:
    """Best metric found using at most `budget` trial-epochs."""
    found = [b for spent, b in curve if spent <= budget and b is not None]
    return found[-1] if found else None


def epochs_to_reach(curve: Sequence[tuple], target: float, mode: str = "min") -> Optional[int]:
    """Trial-epochs spent when the best first reaches `target` (None: never)."""
    for spent, best in curve:
        if best is not None and (best <= target if mode == "min" else best >= target):
            return spent
    return None


def summarize(curves: Mapping[str, Mapping[int, List[tuple]]], budget: int, mode: str = "min") -> dict:
    """{algorithm: {best: median best at budget, reach: median epochs to random's best, ratio, per_seed}}."""
    base_best = [best_within(c, budget) for c in curves[BASELINE].values()]
    base_best = [b for b in base_best if b is not None]
    if not base_best:
        raise RuntimeError(f"the {BASELINE} baseline produced no score within {budget} trial-epochs")
    target = statistics.median(base_best)
    out = {"target": target, "budget": budget, "algorithms": {}}
    for name, per_seed in curves.items():
        bests = [best_within(c, budget) for c in per_seed.values()]
        reach = [epochs_to_reach([(s, b) for s, b in c if s <= budget], target, mode)
                 for c in per_seed.values()]
        # a seed that never reaches the target within the budget counts as needing more than the budget
        reach_num = [r if r is not None else math.inf for r in reach]
        med_reach = statistics.median(reach_num) if reach_num else math.inf
        scored = [b for b in bests if b is not None]
        out["algorithms"][name] = {
            "best_median": statistics.median(scored) if scored else None,
            "best_per_seed": dict(zip(per_seed, bests)), "reach_per_seed": dict(zip(per_seed, reach)),
            "reach_median": med_reach, "ratio": med_reach / budget if math.isfinite(med_reach) else math.inf,
            "trials_median": statistics.median(len(c) for c in per_seed.values())}
    return out


def markdown(summary: Mapping[str, Any]) -> str:
    header = ("| algorithm | best val EPE at budget (median) | per seed | trial-epochs to reach random's "
              f"best ({summary['target']:.3f}) | x random's budget | trials |")
    rows = [header, "|---|---|---|---|---|---|"]
    for name, s in summary["algorithms"].items():
        per_seed = ", ".join("-" if b is None else f"{b:.3f}" for b in s["best_per_seed"].values())
        reach = "never" if not math.isfinite(s["reach_median"]) else f"{s['reach_median']:.0f}"
        ratio = "-" if not math.isfinite(s["ratio"]) else f"{s['ratio']:.2f}"
        best = "-" if s["best_median"] is None else f"{s['best_median']:.3f}"
        rows.append(f"| {name} | {best} | {per_seed} | {reach} | {ratio} | {s['trials_median']:.0f} |")
    return "\n".join(rows)


def plot(curves: Mapping[str, Mapping[int, List[tuple]]], summary: Mapping[str, Any], path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    styles = {"tpe+asha": ("tab:blue", "-"), "random": ("tab:gray", "-"), "gp": ("tab:green", "--")}
    budget = summary["budget"]
    for name, per_seed in curves.items():
        color, ls = styles.get(name, (None, "-"))
        for i, curve in enumerate(per_seed.values()):
            # the comparison is at a fixed budget: cut each curve there and hold its last best up to it
            pts = [(s, b) for s, b in curve if b is not None and s <= budget]
            if pts:
                xs, ys = [p[0] for p in pts] + [budget], [p[1] for p in pts] + [pts[-1][1]]
                ax.step(xs, ys, where="post", color=color, ls=ls, alpha=0.85, lw=1.4,
                        label=name if i == 0 else None)
    ax.axhline(summary["target"], color="black", ls="--", lw=0.8, label="random search's final best (median)")
    ax.axvline(TARGET_RATIO * summary["budget"], color="tab:red", ls=":", lw=0.8,
               label=f"{TARGET_RATIO:.1f}x random's compute")
    ax.set_xlim(0, budget * 1.02)
    ax.set_xlabel(f"compute (trial-epochs; budget {budget})")
    ax.set_ylabel("best val EPE so far (px)")
    ax.set_title("Search efficiency on the tiny-demo task (one line per seed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def sweep_argv(name: str, seed: int, budget: int, run_dir: Path, store: Path,
               overrides: Sequence[str]) -> List[str]:
    cfg = ALGORITHMS[name]
    samples = max(1, budget // EPOCHS_PER_TRIAL) * cfg["oversample"]
    return ["run", "--skill", "tiny-demo", "--policy", "on", *cfg["flags"], "--num-samples", str(samples),
            "--max-concurrent", str(cfg["concurrency"]), "--seed", str(seed), "--output", str(run_dir),
            "--tracking-uri", "sqlite:///" + str(store / "mlflow.db"), *overrides]


def run_sweeps(root: Path, seeds: Sequence[int], budget: int) -> None:
    try:
        from automl.cli import main as automl_main
    except ImportError as exc:
        raise RuntimeError(f"the sweep engine is not installed ({exc}); this benchmark drives "
                           "`automl run`") from None
    from automl.demo import prepare

    for seed in seeds:
        for name in ALGORITHMS:
            run_dir = root / f"{name}_seed{seed}"
            if (run_dir / "results.json").is_file() and json.loads((run_dir / "results.json").read_text())[
                    "progress"]["complete"]:
                continue  # finished earlier: the benchmark resumes where it stopped
            plan = prepare(root / "demo", stamp=f"{name}_seed{seed}")
            overrides = [o for o in plan.overrides if not o.startswith("results_dir=")]
            start = time.monotonic()
            code = automl_main(sweep_argv(name, seed, budget, run_dir, root, overrides))
            print(f"{name} seed {seed}: exit {code} in {time.monotonic() - start:.0f} s", flush=True)


def load_curves(root: Path, seeds: Sequence[int]) -> Dict[str, Dict[int, List[tuple]]]:
    curves: Dict[str, Dict[int, List[tuple]]] = {}
    for name in ALGORITHMS:
        for seed in seeds:
            path = root / f"{name}_seed{seed}" / "results.json"
            if not path.is_file():
                raise RuntimeError(f"{path} is missing; run the benchmark without --analyze-only first")
            data = json.loads(path.read_text())
            mode = data["progress"].get("mode", "min")
            curves.setdefault(name, {})[seed] = compute_curve(data["history"], mode)
    return curves


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search_efficiency",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="bench/out/search_efficiency")
    parser.add_argument("--budget", type=int, default=32, help="trial-epochs per algorithm and seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--analyze-only", action="store_true")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    start = time.monotonic()
    if not args.analyze_only:
        run_sweeps(root, args.seeds, args.budget)
    curves = load_curves(root, args.seeds)
    summary = summarize(curves, args.budget)
    png = plot(curves, summary, root / "search_efficiency.png")
    print(markdown(summary))
    ratio = summary["algorithms"].get("tpe+asha", {}).get("ratio", math.inf)
    print(f"\nTPE+ASHA needs {ratio:.2f}x random search's compute to reach its final best "
          f"(goal <= {TARGET_RATIO}x). Plot: {png}. Wall time {time.monotonic() - start:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
