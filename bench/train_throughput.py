"""Training throughput (samples/s) on this machine's CPU: forward + sequence_loss + backward + AdamW step.

    python -m bench.train_throughput [--steps 5] [--batch 1] [--presets ffs_tiny:64x128 ffs_bp2:320x736]

Median seconds per step over `--steps` steps after one warm-up step, same code path as a training step
(stereo.losses.sequence_loss, gradient clipping by norm). Prints a markdown table with date and machine.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from collections.abc import Sequence

import torch

DEFAULT = ("ffs_tiny:64x128", "ffs_bp2:320x736")


def measure(preset: str, height: int, width: int, batch: int, steps: int) -> dict:
    from stereo.losses import sequence_loss
    from stereo.models import create_model, preset_config

    torch.manual_seed(0)
    model = create_model(preset).train()
    max_disp = preset_config(preset).max_disparity
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    left = torch.rand(batch, 3, height, width) * 255
    right = torch.roll(left, shifts=-4, dims=-1)
    gt = torch.full((batch, 1, height, width), 4.0)
    valid = torch.ones_like(gt)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        init_disp, preds = model(left, right)
        loss, _ = sequence_loss(init_disp, preds, gt, valid, max_disp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        opt.step()
        if i:  # step 0 is warm-up (allocator, lazy init)
            times.append(time.perf_counter() - t0)
    sec = statistics.median(times)
    return {"preset": preset, "size": f"{height}x{width}", "batch": batch, "s_per_step": sec,
            "samples_per_s": batch / sec, "params_m": sum(p.numel() for p in model.parameters()) / 1e6}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.train_throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--presets", nargs="*", default=list(DEFAULT), help="preset:HxW entries")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for entry in args.presets:
        preset, _, size = entry.partition(":")
        h, w = (int(v) for v in (size or "64x128").split("x"))
        rows.append(measure(preset, h, w, args.batch, args.steps))
    print(f"Training throughput, {datetime.date.today().isoformat()}, {platform.machine()} "
          f"{platform.processor() or ''} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads), "
          f"torch {torch.__version__}; median of {args.steps} steps after 1 warm-up\n")
    print("| preset | crop HxW | batch | params (M) | s / step | samples / s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['preset']} | {r['size']} | {r['batch']} | {r['params_m']:.2f} | {r['s_per_step']:.3f} | "
              f"{r['samples_per_s']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
