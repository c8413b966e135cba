"""Per-trial overhead of a sweep: N tiny trials through `automl.driver.run_sweep` (Ray Tune + Optuna + MLflow,
one trial at a time, no early stopping) vs the same N trainings in a bare loop in this process.

    python -m bench.sweep_overhead --trials 8 --out /tmp/sa-bench

Prints the bare loop time, the sweep's whole wall time (incl. ray.init and shutdown), the trial window
(first trial start to last trial end, from the ledger) and the steady state (first trial end to last trial
end over the n-1 trials that reuse the actor), and the overhead per trial of each.
"""
from __future__ import annotations

import argparse
import io
import shutil
import time
from pathlib import Path


def _overrides(root: Path) -> list:
    from stereo.data.synthetic import generate

    tr = generate(root / "data" / "train", "fsd", n=2, height=32, width=64, max_disparity=24, seed=0)
    va = generate(root / "data" / "val", "fsd", n=1, height=32, width=64, max_disparity=24, seed=1)
    return [f"dataset.train_dataset.data_sources[0].data_file={tr}",
            "dataset.train_dataset.data_sources[0].dataset_name=FSD",
            f"dataset.val_dataset.data_sources[0].data_file={va}",
            "dataset.val_dataset.data_sources[0].dataset_name=FSD",
            "num_epochs=1", "max_steps=-1", "dataset.train_dataset.augmentation.crop_size=[32,64]",
            "model.train_iters=1", "model.valid_iters=1"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--out", default="/tmp/sa-bench")
    args = parser.parse_args(argv)
    root = Path(args.out)
    shutil.rmtree(root, ignore_errors=True)
    overrides = _overrides(root)

    from automl.plan.configs import RunConfig, SearchConfig, TuneConfig

    from automl.plan.launch import build_plan
    from automl.tune.ledger import Ledger
    from automl.driver import run_sweep
    from automl.tune.trial import trial_raw_spec
    from automl.tune.trial_runs import TaggingTracker
    from stereo.actions.train import train
    from stereo.config.load import load_spec
    from stereo.tracking import ensure_experiment

    plan = build_plan(SearchConfig(skill="tiny-demo", overrides=overrides),
                      tune=TuneConfig(num_samples=args.trials, max_concurrent=1, scheduler="none", algorithm="random"),
                      where=RunConfig(output=str(root / "sweep")))
    # the bare loop: same specs, same MLflow store kind, one process, no Ray
    import torch
    torch.set_num_threads(1)
    space = plan.search_space()
    uri = f"sqlite:///{root / 'bare' / 'mlflow.db'}"
    (root / "bare").mkdir(parents=True)
    ensure_experiment(uri, "depth_net")
    tracker = TaggingTracker(uri, {}, lambda run_id: None)
    train(load_spec(trial_raw_spec(plan.base_spec, space.sample(99), str(root / "bare" / "warm")), action="train"),
          tracker=tracker)  # warm-up: imports and first-call costs, which a trial worker also pays only once
    t0 = time.perf_counter()
    for i in range(args.trials):
        raw = trial_raw_spec(plan.base_spec, space.sample(i), str(root / "bare" / f"t{i}"))
        train(load_spec(raw, action="train"), tracker=tracker)
    bare = time.perf_counter() - t0

    t0 = time.perf_counter()
    run_sweep(plan, printer=lambda *a: None, stream=io.StringIO())
    wall = time.perf_counter() - t0
    trials = Ledger(plan.run_dir).trials()
    progress = [Ledger(plan.run_dir).progress(t["trial_id"]) for t in trials]
    window = max(p["ended"] for p in progress) - min(p["started"] for p in progress)
    ends = sorted(p["ended"] for p in progress)
    n = args.trials
    steady = (ends[-1] - ends[0]) / (n - 1)  # trial end to trial end: a reused actor, no start-up
    print(f"trials {n}: bare loop {bare:.1f} s ({bare / n:.2f} s/trial)")
    print(f"sweep wall {wall:.1f} s -> overhead {(wall - bare) / n:.2f} s/trial (incl. ray.init/shutdown, MLflow "
          f"parent run, report)")
    print(f"trial window {window:.1f} s -> overhead {(window - bare) / n:.2f} s/trial (incl. the first trial's "
          f"actor start)")
    print(f"steady state (end to end of trials 2..{n}) {steady:.2f} s/trial -> overhead {steady - bare / n:.2f} "
          f"s/trial (reuse_actors)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
