"""Per-trial overhead of a sweep: N tiny trials through `automl.driver.run_sweep` (Ray Tune + Optuna + MLflow,
one trial at a time, no early stopping) vs the same N trainings in a bare loop in this process.

    python -m bench.sweep_overhead --trials 8 --out /tmp/sa-bench
    python -m bench.sweep_overhead --trials 6 --stores sqlite server   # the tracking server vs SQLite, side by side

`--stores server` starts `automl server` on a throwaway PostgreSQL (automl/server/) and points both the bare
loop and the sweep at it; each store kind gets its own bare loop and sweep, one after the other.
Prints the bare loop time, the sweep's whole wall time (incl. ray.init and shutdown), the trial window
(first trial start to last trial end, from the ledger) and the steady state (first trial end to last trial
end over the n-1 trials that reuse the actor), and the overhead per trial of each.
"""
from __future__ import annotations

import argparse
import contextlib
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
    parser.add_argument("--stores", nargs="+", default=["sqlite"], choices=["sqlite", "server"])
    args = parser.parse_args(argv)
    root = Path(args.out)
    shutil.rmtree(root, ignore_errors=True)
    overrides = _overrides(root)
    rows = []
    for kind in args.stores:
        if kind == "server":
            with _tracking_server(root / "server") as uri:
                rows.append((kind, *_measure(args.trials, root / kind, overrides, uri)))
        else:
            rows.append((kind, *_measure(args.trials, root / kind, overrides, None)))
    print("\n| store | bare loop s/trial | sweep wall overhead s/trial | steady-state overhead s/trial |")
    print("|---|---|---|---|")
    for kind, bare, wall, steady in rows:
        print(f"| {kind} | {bare:.2f} | {wall:.2f} | {steady:.2f} |")
    return 0


@contextlib.contextmanager
def _tracking_server(home: Path):
    """`automl server` on a throwaway PostgreSQL in `home` (reachable by the postgres user when run as root)."""
    import os
    import re
    import signal
    import subprocess
    import sys

    home.mkdir(parents=True)
    for folder in (home, home.parent):  # --out and its server folder: PostgreSQL's user must pass (run as root)
        os.chmod(folder, os.stat(folder).st_mode | 0o001)
    log = home / "server.out"
    proc = subprocess.Popen([sys.executable, "-m", "automl.cli", "server", "--pg-data", str(home / "pg"), "--port",
                             "0", "--artifacts", str(home / "artifacts")], stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            found = re.search(r"tracking server at (http://\S+)", log.read_text())
            if found:
                break
            if proc.poll() is not None:
                raise SystemExit(log.read_text())
            time.sleep(0.5)
        else:
            raise SystemExit("automl server did not start: " + log.read_text())
        yield found.group(1)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)


def _measure(n: int, root: Path, overrides: list, uri) -> tuple:
    """(bare s/trial, sweep wall overhead s/trial, steady-state overhead s/trial) with the store `uri`
    (None: SQLite files in the run folders, the default)."""
    from automl.driver import run_sweep
    from automl.plan.configs import RunConfig, SearchConfig, TuneConfig
    from automl.plan.launch import build_plan
    from automl.tune.ledger import Ledger
    from automl.tune.trial import trial_raw_spec
    from automl.tune.trial_runs import TaggingTracker
    from stereo.actions.train import train
    from stereo.config.load import load_spec
    from stereo.tracking import ensure_experiment

    plan = build_plan(SearchConfig(skill="tiny-demo", overrides=overrides),
                      tune=TuneConfig(num_samples=n, max_concurrent=1, scheduler="none", algorithm="random"),
                      where=RunConfig(output=str(root / "sweep"), tracking_uri=uri))
    # the bare loop: same specs, same MLflow store kind, one process, no Ray
    import torch
    torch.set_num_threads(1)
    space = plan.search_space()
    (root / "bare").mkdir(parents=True)
    bare_uri = uri or f"sqlite:///{root / 'bare' / 'mlflow.db'}"
    ensure_experiment(bare_uri, "depth_net")
    tracker = TaggingTracker(bare_uri, {}, lambda run_id: None)
    train(load_spec(trial_raw_spec(plan.base_spec, space.sample(99), str(root / "bare" / "warm")), action="train"),
          tracker=tracker)  # warm-up: imports and first-call costs, which a trial worker also pays only once
    t0 = time.perf_counter()
    for i in range(n):
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
    steady = (ends[-1] - ends[0]) / (n - 1)  # trial end to trial end: a reused actor, no start-up
    print(f"[{uri or 'sqlite'}] trials {n}: bare loop {bare:.1f} s ({bare / n:.2f} s/trial)")
    print(f"sweep wall {wall:.1f} s -> overhead {(wall - bare) / n:.2f} s/trial (incl. ray.init/shutdown, MLflow "
          f"parent run, report)")
    print(f"trial window {window:.1f} s -> overhead {(window - bare) / n:.2f} s/trial (incl. the first trial's "
          f"actor start)")
    print(f"steady state (end to end of trials 2..{n}) {steady:.2f} s/trial -> overhead {steady - bare / n:.2f} "
          f"s/trial (reuse_actors)")
    return bare / n, (wall - bare) / n, steady - bare / n


if __name__ == "__main__":
    raise SystemExit(main())
