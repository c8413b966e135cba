"""What MLflow's system-metrics monitor (stereo/tracking/mlflow_system.py) costs a training step.

    python -m bench.system_metrics_cost [--rounds 7] [--steps 20] [--preset ffs_tiny:64x128]

A training step (forward + sequence_loss + backward + AdamW, as bench/train_throughput.py) is timed in
rounds, the monitor off / on at our default interval (10 s) / on at 0.5 s (a stress setting, 20x more
samples), the three interleaved round by round so a shared machine's load falls on all alike; each
monitored round logs into a real SQLite store. Also the monitor's own cost: one sample
(collect_metrics), median of 50. Prints a markdown table with the date, the machine and the load.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence

import torch


def _step_fn(preset: str, height: int, width: int):
    from stereo.losses import sequence_loss
    from stereo.models import create_model, preset_config

    torch.manual_seed(0)
    model = create_model(preset).train()
    max_disp = preset_config(preset).max_disparity
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    left = torch.rand(1, 3, height, width) * 255
    right = torch.roll(left, shifts=-4, dims=-1)
    gt, valid = torch.full((1, 1, height, width), 4.0), torch.ones(1, 1, height, width)

    def step() -> None:
        init_disp, preds = model(left, right)
        loss, _ = sequence_loss(init_disp, preds, gt, valid, max_disp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.system_metrics_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20, help="training steps per round")
    parser.add_argument("--preset", default="ffs_tiny:64x128", help="preset:HxW")
    args = parser.parse_args(list(argv) if argv is not None else None)
    torch.set_num_threads(1)
    from stereo.tracking import MlflowTracker
    from stereo.tracking.mlflow_system import monitored

    preset, size = args.preset.split(":")
    height, width = map(int, size.split("x"))
    step = _step_fn(preset, height, width)
    step()  # warm-up
    store = tempfile.mkdtemp(prefix="bench-sysmetrics-")
    tracker = MlflowTracker(f"sqlite:///{store}/mlflow.db")
    settings = {"off": None, "on, 10 s (default)": 10.0, "on, 0.5 s (stress)": 0.5}
    per_step = {name: [] for name in settings}
    for _ in range(args.rounds):
        for name, interval in settings.items():
            run = tracker.start_run(name, experiment="bench")
            if interval is not None:
                os.environ["MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"] = str(interval)
            ctx = monitored(run.run_id, tracker.tracking_uri) if interval is not None else contextlib.nullcontext()
            with ctx:
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    step()
                per_step[name].append((time.perf_counter() - t0) / args.steps)
            tracker.end_run(run)
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor("none", sampling_interval=10.0, tracking_uri=tracker.tracking_uri)
    sample = []
    for _ in range(50):
        t0 = time.perf_counter()
        monitor.collect_metrics()
        sample.append(time.perf_counter() - t0)
    base = statistics.median(per_step["off"])
    print(f"System-metrics cost, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"{platform.node()} ({os.cpu_count()} CPUs), load {os.getloadavg()[0]:.1f}; {preset} {size}, batch 1, "
          f"1 torch thread, {args.rounds} interleaved rounds of {args.steps} steps")
    print("\n| monitor | s / step (median of rounds) | vs off |\n|---|---|---|")
    for name, values in per_step.items():
        med = statistics.median(values)
        print(f"| {name} | {med:.4f} | {med / base:.3f}x |")
    one = statistics.median(sample) * 1e3
    print(f"\nOne sample (collect_metrics: CPU, memory, disk, network): median {one:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
