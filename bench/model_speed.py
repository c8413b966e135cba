"""Forward latency and peak RSS of the stereo networks on CPU; prints a markdown table.

    .venv/bin/python bench/model_speed.py                       # everything (slow for FS-vitl)
    .venv/bin/python bench/model_speed.py --models ffs_bp2 --threads 1 --sizes 128x256

Each (model, size, iters, threads) runs in a fresh subprocess so that peak RSS is its own. Latency is the
median of --repeats test-mode forwards after one warm-up forward. Random weights (timing only).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _count(model) -> tuple[int, int]:
    """(registered in the checkpoint, executed) parameter counts.

    Our FFS registers only executed modules; the checkpoint's dead legacy tensors are added back from
    `ignored_keys()` so the "registered" column matches the published 17.65 M. FoundationStereo registers
    its dead modules (strict NVlabs loads); they are subtracted for the "executed" column.
    """
    from stereo.models.fs.model import DEAD_KEY_PREFIXES

    executed = sum(p.numel() for p in model.parameters())
    registered = executed
    if type(model).__name__ == "FoundationStereo":
        executed -= sum(p.numel() for name, p in model.named_parameters() if name.startswith(DEAD_KEY_PREFIXES))
    if hasattr(model, "ignored_keys") and hasattr(model, "widths"):
        from stereo.models.ffs.dead_keys import legacy_key_shapes
        import math
        ignored = model.ignored_keys()
        w = model.widths
        shapes = legacy_key_shapes(w.volume_dim, tuple(model.feature.d_out), tuple(model.cfg.hidden_dims),
                                   model.cfg.max_disparity)
        registered += sum(math.prod(s) for k, s in shapes if k in ignored
                          and not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    return registered, executed


def measure(name: str, height: int, width: int, iters: int, threads: int, repeats: int) -> dict:
    import torch
    torch.set_num_threads(threads)
    from stereo.models import create_model
    torch.manual_seed(0)
    model = create_model(name).eval()
    registered, executed = _count(model)
    g = torch.Generator().manual_seed(0)
    left = torch.rand(1, 3, height, width, generator=g) * 255
    right = torch.rand(1, 3, height, width, generator=g) * 255
    times = []
    with torch.no_grad():
        model(left, right, iters=iters, test_mode=True)  # warm-up: allocator, oneDNN primitive caches
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(left, right, iters=iters, test_mode=True)
            times.append(time.perf_counter() - t0)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {"model": name, "size": f"{height}x{width}", "iters": iters, "threads": threads,
            "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "peak_rss_mb": rss_mb, "registered": registered, "executed": executed}


def _default_iters(name: str) -> int:
    from stereo.models import preset_config
    return preset_config(name).valid_iters


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=None, help="presets (default: ffs_bp2, fs_vits, fs_vitl)")
    ap.add_argument("--sizes", nargs="+", default=["128x256", "320x736"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--iters", nargs="+", default=None,
                    help="GRU iterations; 'default' = the preset's valid_iters (default: FFS 8, FS default and 8)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(measure(**spec)))
        return 0
    from stereo.models import list_models
    models = args.models or [m for m in ("ffs_bp2", "fs_vits", "fs_vitl") if m in list_models()]
    rows = []
    for name in models:
        iter_opts = args.iters or (["8"] if name.startswith("ffs") else ["default", "8"])
        iters = sorted({_default_iters(name) if i == "default" else int(i) for i in iter_opts})
        for size in args.sizes:
            h, w = (int(v) for v in size.split("x"))
            for it in iters:
                for th in args.threads:
                    spec = dict(name=name, height=h, width=w, iters=it, threads=th, repeats=args.repeats)
                    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True,
                                          text=True, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": str(th)})
                    if proc.returncode:
                        raise RuntimeError(f"benchmark of {spec} failed:\n{proc.stderr[-2000:]}")
                    rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                    print(f"done {spec}", file=sys.stderr)
    import torch
    print(f"# Model speed — {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"machine: {platform.node()} · {platform.processor() or platform.machine()} · {os.cpu_count()} cores · "
          f"torch {torch.__version__} · Python {platform.python_version()}\n")
    print("| model | input | iters | threads | median s (min–max) | peak RSS MB | params registered | executed |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['size']} | {r['iters']} | {r['threads']} | {r['median_s']:.3f} "
              f"({r['min_s']:.3f}–{r['max_s']:.3f}) | {r['peak_rss_mb']:.0f} | {r['registered']:,} | "
              f"{r['executed']:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
