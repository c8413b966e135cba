"""The cost of `automl run --score-on deploy` per trial: the seconds the deploy step adds to one trial of the
tiny-demo skill at the demo's data shape (64x128 images, 4 validation pairs; automl/demo.py), on this CPU.

    .venv/bin/python bench/deploy_score_cost.py [--repeats 5]

What is timed is exactly what a trial runs at its last validation (automl/tune/deploy_score.score_deployed with
the deploy dict the launch plan builds for `--score-on deploy`): export (+ its ONNX Runtime parity check), deploy
evaluate on the val set with the PyTorch drift reference, and the latency subprocess (3 warm-up + 20 timed
single-image calls). The first call is reported apart (cold imports in a fresh worker; a reused Ray actor pays it
once); the table gives the median of the following --repeats calls. Prints a markdown table with the date, the
machine and the load average.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    if args.repeats < 3:
        ap.error("--repeats must be >= 3 (a median of fewer calls is noise)")
    from automl.plan.configs import RunConfig, SearchConfig, TuneConfig
    from automl.plan.deploy_step import DeployConfig
    from automl.plan.launch import build_plan
    from automl.tune.deploy_score import score_deployed
    from stereo.actions.train import train
    from stereo.config.load import load_spec
    from stereo.data.synthetic import generate
    from stereo.deploy.latency import cpu_name

    root = Path(tempfile.mkdtemp(prefix="deploy-cost-"))
    tr = generate(root / "train", "fsd", n=2, height=64, width=128, max_disparity=24, seed=0)
    va = generate(root / "val", "fsd", n=4, height=64, width=128, max_disparity=24, seed=1)
    overrides = [f"dataset.train_dataset.data_sources[0].data_file={tr}",
                 "dataset.train_dataset.data_sources[0].dataset_name=FSD",
                 f"dataset.val_dataset.data_sources[0].data_file={va}",
                 "dataset.val_dataset.data_sources[0].dataset_name=FSD", "train.num_epochs=1", "train.max_steps=1"]
    plan = build_plan(SearchConfig(skill="tiny-demo", overrides=tuple(overrides)), TuneConfig(num_samples=1),
                      RunConfig(output=str(root / "run")), deploy=DeployConfig(score_on="deploy"))
    raw = {**plan.base_spec, "results_dir": str(root / "trial")}
    result = train(load_spec(raw, action="train"), tracker=False)
    times, parts = [], []
    for _ in range(args.repeats + 1):
        start = time.perf_counter()
        score = score_deployed(raw, result.best_checkpoint, plan.deploy)
        times.append(time.perf_counter() - start)
        parts.append(score.timings)
    steady = times[1:]
    split = ", ".join(f"{k} {statistics.median(p[k] for p in parts[1:]):.1f} s" for k in parts[-1])
    d = plan.deploy
    print(f"{time.strftime('%Y-%m-%d')}, {cpu_name()}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end; torch threads {d['threads']}\n")
    print("| model | deploy shape | val images | runtime | first call (cold) | median of %d (min-max) | "
          "deploy/latency_ms | deploy/peak_mem_mb |" % args.repeats)
    print("|---|---|---|---|---|---|---|---|")
    print(f"| tiny-demo | 1x3x{d['height']}x{d['width']}, {score.params['deploy.valid_iters']} iters | 4 | "
          f"{d['runtime']} ({d['device']}) | {times[0]:.1f} s | {statistics.median(steady):.1f} s "
          f"({min(steady):.1f}-{max(steady):.1f}) | {score.metrics['deploy/latency_ms']:.2f} | "
          f"{score.metrics['deploy/peak_mem_mb']:.0f} |")
    print(f"\nmedian split of the steady calls: {split}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
