"""PyTorch eager vs ONNX Runtime (CPU) latency of the exported stereo graph, plus their max |Δdisp|.

    .venv/bin/python bench/deploy_speed.py                                  # ffs_tiny + ffs_bp2, 128x256 + 320x736
    .venv/bin/python bench/deploy_speed.py --models ffs_bp2 --sizes 128x256 --threads 1 2

Per (model, size): export a static graph (batch 1, the preset's valid_iters, opset 17), then per thread
count run both on the same seeded RGB pair: one warm-up, the median of --repeats (>= 5) calls. Random
weights (timing only). Prints a markdown table with the date and machine, and the eager/ORT ratio.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _median(fn, repeats: int) -> float:
    fn()  # warm-up: allocator, oneDNN / ORT kernel caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(name: str, height: int, width: int, threads: list[int], repeats: int, workdir: Path) -> list[dict]:
    import torch

    from stereo.deploy.export import export_onnx, trace_inputs
    from stereo.deploy.onnxruntime import OrtRunner
    from stereo.models import create_model, preset_config

    torch.manual_seed(0)
    cfg = preset_config(name)
    model = create_model(name).eval()
    onnx_file = workdir / f"{name}_{height}x{width}.onnx"
    t0 = time.perf_counter()
    export_onnx(model, cfg, onnx_file, height=height, width=width, batch_size=1, valid_iters=cfg.valid_iters,
                overwrite=True, verify=False)
    export_s = time.perf_counter() - t0
    left, right = trace_inputs(1, height, width, seed=1)
    rows = []
    for th in threads:
        torch.set_num_threads(th)
        runner = OrtRunner(onnx_file, device="cpu", threads=th)
        with torch.no_grad():
            eager_s = _median(lambda: model(left, right, iters=cfg.valid_iters, test_mode=True), repeats)
            ref = model(left, right, iters=cfg.valid_iters, test_mode=True)
        ort_s = _median(lambda r=runner: r(left, right), repeats)
        diff = float((runner(left, right) - ref).abs().max())
        rows.append({"model": name, "size": f"{height}x{width}", "iters": cfg.valid_iters, "threads": th,
                     "eager_s": eager_s, "ort_s": ort_s, "ratio": eager_s / ort_s, "max_abs_diff": diff,
                     "export_s": export_s})
        print(f"done {name} {height}x{width} threads={th}", file=sys.stderr, flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["ffs_tiny", "ffs_bp2"])
    ap.add_argument("--sizes", nargs="+", default=["128x256", "320x736"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    if args.repeats < 5:
        ap.error("--repeats must be >= 5 (a median of fewer calls is noise)")
    sys.path.insert(0, str(REPO))
    import onnxruntime
    import torch

    rows = []
    with tempfile.TemporaryDirectory(prefix="deploy_speed_") as tmp:
        for name in args.models:
            for size in args.sizes:
                h, w = (int(v) for v in size.split("x"))
                rows += measure(name, h, w, args.threads, args.repeats, Path(tmp))
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    print(f"# Deploy speed (PyTorch eager vs ONNX Runtime CPU) — {stamp}")
    print(f"machine: {platform.node()} · {platform.processor() or platform.machine()} · {os.cpu_count()} cores · "
          f"torch {torch.__version__} · onnxruntime {onnxruntime.__version__} · Python {platform.python_version()}\n")
    print("| model | input | iters | threads | eager s | ORT s | eager/ORT | max abs Δdisp px | export s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['size']} | {r['iters']} | {r['threads']} | {r['eager_s']:.3f} | {r['ort_s']:.3f} "
              f"| {r['ratio']:.2f}x | {r['max_abs_diff']:.1e} | {r['export_s']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
