"""fp32 vs static int8 (ONNX Runtime QDQ, CPU): latency, drift and size, and where the time goes (3-D convs).

    .venv/bin/python -m bench.quantize_speed                                # ffs_tiny + ffs_bp2 at 128x256
    .venv/bin/python -m bench.quantize_speed --models ffs_bp2 --sizes 128x256 --threads 1 2 --repeats 7

Per (model, size): export a static graph (batch 1, the preset's valid_iters), calibrate on 4 synthetic stereo
pairs (stereo.data.synthetic) and write two int8 graphs with stereo.deploy.quantize.quantize_onnx: every
Conv/MatMul int8, and the same with the 3-D (cost-volume) convolutions kept in fp32. The three graphs are
timed together with stereo.deploy.quant_eval.measure_latencies (1 warm-up, then --repeats interleaved rounds
of single-image runs, batch 1, pinned threads; the median per graph), and each one's drift from fp32 is
measured on 2 other synthetic pairs. Then ONNX Runtime's profiler splits each graph's kernel time into 3-D
convolutions (a 5-D input), 2-D convolutions, Q/DQ and the rest (the median of 5 profiled runs).
Random weights: the latency is real, the drift is only indicative (trained weights have other ranges).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONV_OPS = ("Conv", "QLinearConv", "ConvTranspose", "QLinearConvTranspose", "ConvInteger", "FusedConv")


def _profile(onnx_file: Path, left, right, threads: int, runs: int = 5) -> dict[str, float]:
    """Kernel ms per run by bucket (conv3d, conv2d, qdq, other), the median over `runs` profiled runs after a
    warm-up (ONNX Runtime's profiler; a node event belongs to the model_run that spans it)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.enable_profiling = True
    opts.profile_file_prefix = str(onnx_file.with_suffix(""))
    session = ort.InferenceSession(str(onnx_file), opts, providers=["CPUExecutionProvider"])
    feed = {"left_image": left.numpy(), "right_image": right.numpy()}
    for _ in range(runs + 1):
        session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("name") == "model_run")[1:]  # no warm-up
    per_run = [{"conv3d": 0.0, "conv2d": 0.0, "qdq": 0.0, "other": 0.0} for _ in spans]
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        run = next((i for i, (a, b) in enumerate(spans) if a <= e["ts"] <= b), None)
        if run is None:
            continue
        op = e["args"].get("op_name", "")
        shapes = e["args"].get("input_type_shape") or [{}]
        rank = len(next(iter(shapes[0].values()), [])) if shapes and isinstance(shapes[0], dict) else 0
        if op in CONV_OPS:
            bucket = "conv3d" if rank == 5 else "conv2d"
        elif op in ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"):
            bucket = "qdq"
        else:
            bucket = "other"
        per_run[run][bucket] += e["dur"] / 1000.0
    return {k: statistics.median(r[k] for r in per_run) for k in ("conv3d", "conv2d", "qdq", "other")}


def measure(name: str, height: int, width: int, threads: list[int], repeats: int, work: Path) -> list[dict]:
    import torch

    from stereo.data.synthetic import generate
    from stereo.deploy.calibration import PairFeeds, find_pairs
    from stereo.deploy.export import export_onnx
    from stereo.deploy.quant_eval import Comparison, measure_latencies
    from stereo.deploy.quantize import conv_nodes, quantize_onnx
    from stereo.deploy.runners import open_runner
    from stereo.models import create_model, preset_config

    torch.manual_seed(0)
    cfg = preset_config(name)
    fp32 = work / f"{name}_{height}x{width}.onnx"
    export_onnx(create_model(name).eval(), cfg, fp32, height=height, width=width, batch_size=1,
                valid_iters=cfg.valid_iters, overwrite=True, verify=False)
    generate(work / f"calib_{name}", "fsd", n=4, height=height, width=width, max_disparity=48, seed=11)
    generate(work / f"eval_{name}", "fsd", n=2, height=height, width=width, max_disparity=48, seed=12)
    calib = PairFeeds(find_pairs(work / f"calib_{name}"), (height, width))
    held_out = PairFeeds(find_pairs(work / f"eval_{name}"), (height, width))
    graphs = {"fp32": (fp32, None)}
    for variant, skip in (("int8", []), ("int8, 3-D convs fp32", conv_nodes(fp32, dims=3))):
        info = quantize_onnx(fp32, work / f"{name}_{variant.split(',')[0]}{'_no3d' if skip else ''}.onnx",
                             calib.reader(), skip_names=skip)
        graphs[variant] = (info.onnx_file, info)
        print(f"quantized {name} {variant}: {info.quantized_ops} in {info.seconds:.0f} s", file=sys.stderr,
              flush=True)
    left, right, _ = held_out.loaded[0]
    rows = []
    for th in threads:
        runners = {v: open_runner(path, device="cpu", threads=th) for v, (path, _) in graphs.items()}
        timed = measure_latencies(runners, left, right, runs=repeats, warmup=1, threads=th)  # interleaved rounds
        for variant, (path, info) in graphs.items():
            lat = timed[variant]
            comparison = Comparison(max_disparity=cfg.max_disparity)
            for a, b, _fit in held_out.loaded:
                comparison.update("x", runners["fp32"](a, b)[0], runners[variant](a, b)[0])
            drift = comparison.kpi()
            rows.append({"model": name, "size": f"{height}x{width}", "iters": cfg.valid_iters, "threads": th,
                         "variant": variant, "ms": lat.median_ms, "device": lat.device,
                         "mb": path.stat().st_size / 2**20, "drift_mean": drift["drift_mean_abs"],
                         "drift_max": drift["drift_max_abs"], "profile": _profile(path, left, right, th),
                         "ops": info.quantized_ops if info else {}})
            print(f"done {name} {height}x{width} {variant} threads={th}: {lat.median_ms:.1f} ms", file=sys.stderr,
                  flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["ffs_tiny", "ffs_bp2"])
    ap.add_argument("--sizes", nargs="+", default=["128x256"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    if args.repeats < 5:
        ap.error("--repeats must be >= 5 (a median of fewer calls is noise)")
    sys.path.insert(0, str(REPO))
    import onnxruntime
    import torch

    rows = []
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="quantize_speed_") as tmp:
        for name in args.models:
            for size in args.sizes:
                h, w = (int(v) for v in size.split("x"))
                rows += measure(name, h, w, args.threads, args.repeats, Path(tmp))
    load_end = os.getloadavg()
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    print(f"# Quantize speed (fp32 vs static int8, ONNX Runtime CPU) — {stamp}")
    print(f"machine: {rows[0]['device'] if rows else platform.processor()} · {platform.node()} · torch "
          f"{torch.__version__} · onnxruntime {onnxruntime.__version__} · load average {load[0]:.2f} at the "
          f"start, {load_end[0]:.2f} at the end · random weights\n")
    print("| model | input | iters | threads | graph | median ms | vs fp32 | MB | drift mean px | drift max px "
          "| 3-D conv ms | 2-D conv ms | Q/DQ ms | other ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    base = {}
    for r in rows:
        key = (r["model"], r["size"], r["threads"])
        base.setdefault(key, r["ms"])
        p = r["profile"]
        print(f"| {r['model']} | {r['size']} | {r['iters']} | {r['threads']} | {r['variant']} | {r['ms']:.1f} | "
              f"{base[key] / r['ms']:.2f}x | {r['mb']:.1f} | {r['drift_mean']:.3f} | {r['drift_max']:.2f} | "
              f"{p['conv3d']:.1f} | {p['conv2d']:.1f} | {p['qdq']:.1f} | {p['other']:.1f} |")
    ops = {(r["model"], r["variant"]): r["ops"] for r in rows if r["ops"]}
    for (model, variant), counts in sorted(ops.items()):
        print(f"\n{model} {variant}: int8 weight layers {counts}")
    print(f"\n(median of {args.repeats} runs after 1 warm-up; 'vs fp32' = fp32 ms / this ms, > 1 is faster; the "
          "profile columns are ONNX Runtime's kernel times per run, the median of 5 profiled runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
