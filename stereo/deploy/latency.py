"""Latency and peak memory of a deployed network (an ONNX graph or a TensorRT engine) as a user would see it:
batch 1, the graph's fixed shape, threads pinned, a named device.

Protocol: open the runner (stereo.deploy.runners.open_runner), run ``warmup`` calls that are not timed (allocator,
ONNX Runtime's lazy kernels, TensorRT's first enqueue), then time ``repeats`` single-image calls on one seeded RGB
pair (stereo.deploy.export.trace_inputs) and report the **median** (and p90, min) in milliseconds.

Peak memory: the memory the runtime adds at its peak while it loads and runs the network, in MiB. On the CPU that
is the process's peak resident set (``VmHWM``) minus its resident set just before the runner was opened
(interpreter, torch and onnxruntime imports excluded); on a GPU the drop of the device's free memory
(``cudaMemGetInfo``) from before opening to after the last call. :func:`measure_in_subprocess` runs the
measurement in a fresh process (``python -m stereo.deploy.latency``), so that neither a training job's memory
nor its threads in the caller pollute the numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

WARMUP, REPEATS = 3, 20


@dataclass(frozen=True)
class Latency:
    median_ms: float
    p90_ms: float
    min_ms: float
    peak_mem_mb: float
    runtime: str  # onnxruntime | tensorrt
    device: str  # e.g. "cpu (Intel Xeon ...)" or "cuda:0 (NVIDIA H100 80GB HBM3)"
    threads: int
    height: int
    width: int
    warmup: int
    repeats: int

    def to_dict(self) -> dict:
        return asdict(self)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _rss_mb() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _peak_rss_mb() -> float:
    """This process image's peak resident set (VmHWM). Not ``ru_maxrss``: Linux carries that across execve, so a
    child exec'ed from a big process (a Ray worker) would report its parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _reset_peak() -> None:
    try:  # "5" resets VmHWM to the current RSS (Linux >= 4.0), so imports' transient peaks do not count
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def measure_latency(path: str | os.PathLike, height: int, width: int, *, device: str = "cpu", threads: int = 1,
                    warmup: int = WARMUP, repeats: int = REPEATS, gpu_index: int = 0) -> Latency:
    """Time `path` in this process (see the module docstring); `device` 'cpu' or 'cuda'."""
    import torch

    from stereo.deploy.export import trace_inputs
    from stereo.deploy.runners import open_runner

    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats={repeats} must be >= 1 and warmup={warmup} >= 0")
    torch.set_num_threads(max(1, int(threads)))
    cuda = device == "cuda"
    left, right = trace_inputs(1, int(height), int(width), seed=0)
    if cuda:
        torch.cuda.set_device(gpu_index)
        free_before = torch.cuda.mem_get_info(gpu_index)[0]
    _reset_peak()
    rss_before = _rss_mb()
    runner = open_runner(path, device=device, threads=int(threads), gpu_index=gpu_index)
    for _ in range(warmup):
        runner(left, right)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runner(left, right)
        times.append((time.perf_counter() - start) * 1000.0)
    if cuda:
        peak = (free_before - torch.cuda.mem_get_info(gpu_index)[0]) / 2 ** 20
        name = f"cuda:{gpu_index} ({torch.cuda.get_device_name(gpu_index)})"
    else:
        peak = _peak_rss_mb() - rss_before
        name = f"cpu ({cpu_name()})"
    times.sort()
    p90 = times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]
    return Latency(round(statistics.median(times), 4), round(p90, 4), round(times[0], 4), round(max(peak, 0.0), 2),
                   runner.kind, name, int(threads), int(height), int(width), int(warmup), int(repeats))


def measure_in_subprocess(path: str | os.PathLike, height: int, width: int, *, device: str = "cpu",
                          threads: int = 1, warmup: int = WARMUP, repeats: int = REPEATS, gpu_index: int = 0,
                          timeout_s: float = 600.0) -> Latency:
    """:func:`measure_latency` in a fresh Python process (the same interpreter), its math libraries pinned to
    `threads`; raises RuntimeError with the child's last line when it fails."""
    env = {**os.environ, **{k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}}
    cmd = [sys.executable, "-m", "stereo.deploy.latency", str(path), str(height), str(width), "--device", device,
           "--threads", str(threads), "--warmup", str(warmup), "--repeats", str(repeats), "--gpu", str(gpu_index)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"latency measurement of {path} failed (exit {out.returncode}): {last}")
    return Latency(**json.loads(lines[-1]))


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stereo.deploy.latency", description=__doc__.splitlines()[0])
    p.add_argument("path")
    p.add_argument("height", type=int)
    p.add_argument("width", type=int)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=WARMUP)
    p.add_argument("--repeats", type=int, default=REPEATS)
    p.add_argument("--gpu", type=int, default=0)
    a = p.parse_args(argv)
    result = measure_latency(a.path, a.height, a.width, device=a.device, threads=a.threads, warmup=a.warmup,
                             repeats=a.repeats, gpu_index=a.gpu)
    print(json.dumps(result.to_dict()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
