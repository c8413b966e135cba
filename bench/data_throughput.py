"""Training data throughput: decoded + augmented samples/s at crop 320x736 with 0, 1 and 2 loader workers.

Data: synthetic FSD pairs (RGB-encoded disparity PNGs), 400x880, written to a temporary folder. Each
configuration iterates the whole dataset `--repeats` times; the table reports the median rate.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import tempfile
import time

from stereo.config.dataset import AugmentationConfig, DataSourceConfig, SplitConfig
from stereo.data.loader import build_dataloader
from stereo.data.synthetic import generate


def _rate(cfg: SplitConfig, repeats: int) -> float:
    loader = build_dataloader(cfg, "train", max_disparity=416, seed=0, drop_last=False)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        count = sum(len(batch["meta"]) for batch in loader)  # worker start-up is part of an epoch's cost
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24, help="samples in the synthetic dataset")
    parser.add_argument("--height", type=int, default=400)
    parser.add_argument("--width", type=int, default=880)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        ann = generate(tmp, "fsd", n=args.n, height=args.height, width=args.width, max_disparity=192, seed=0)
        rows = []
        for workers in args.workers:
            cfg = SplitConfig(data_sources=[DataSourceConfig(dataset_name="FSD", data_file=str(ann))],
                              batch_size=1, workers=workers, pin_memory=False,
                              augmentation=AugmentationConfig(crop_size=[320, 736]))
            rows.append((workers, _rate(cfg, args.repeats)))
    print(f"Data throughput, {datetime.date.today().isoformat()}, {platform.platform()}, "
          f"{platform.processor() or platform.machine()}, os.cpu_count()={os.cpu_count()}; FSD "
          f"{args.height}x{args.width} -> crop 320x736, default augmentation, median of {args.repeats} "
          f"epochs of {args.n} samples\n")
    print("| workers | samples/s | ms/sample |")
    print("|---:|---:|---:|")
    for workers, rate in rows:
        print(f"| {workers} | {rate:.1f} | {1000 / rate:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
