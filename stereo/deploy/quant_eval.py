"""fp32 vs quantized graph: drift (px), EPE when there is ground truth, latency and file size.

Latency is measured the one way every number in docs/BENCHMARKS.md is: the graph opened on the CPU with a
pinned intra-op thread count, `warmup` untimed runs, then the median of `runs` single-image runs (batch 1,
one fixed shape, the same input each time); the device is named (CPU model and core count) next to it.
Graphs that are compared are timed in interleaved rounds (:func:`measure_latencies`).
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

from stereo.deploy.drift import DriftReport


@dataclass
class Latency:
    median_ms: float
    min_ms: float
    max_ms: float
    runs: int
    warmup: int
    threads: int
    shape: list[int]
    device: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_device() -> str:
    """'<CPU model>, <n> cores visible' (what the latency was measured on)."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            name = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), name)
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{name}, {cores} cores visible"


def measure_latency(runner: Any, left: torch.Tensor, right: torch.Tensor, *, runs: int = 10, warmup: int = 2,
                    threads: int = 1) -> Latency:
    """Median wall time of `runner(left, right)` over `runs` calls after `warmup` untimed ones (ms).
    `threads`: what the runner was opened with (recorded, not set here)."""
    return measure_latencies({"graph": runner}, left, right, runs=runs, warmup=warmup, threads=threads)["graph"]


def measure_latencies(runners: Mapping[str, Any], left: torch.Tensor, right: torch.Tensor, *, runs: int = 10,
                      warmup: int = 2, threads: int = 1) -> dict[str, Latency]:
    """:func:`measure_latency` for several graphs, interleaved: each round times every runner once, so a load
    that changes during the measurement (a shared machine) weighs on all of them alike."""
    if runs < 1:
        raise ValueError(f"runs={runs}; time at least one run")
    for _ in range(warmup):
        for runner in runners.values():
            runner(left, right)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(runs):
        for name, runner in runners.items():
            start = time.perf_counter()
            runner(left, right)
            times[name].append((time.perf_counter() - start) * 1000.0)
    device = cpu_device()
    return {name: Latency(statistics.median(t), min(t), max(t), runs, warmup, threads, list(left.shape), device)
            for name, t in times.items()}


class Comparison:
    """Per-image drift of the quantized graph from the fp32 one and, where GT is given, both graphs' metrics."""

    def __init__(self, max_disparity: float):
        from stereo.metrics import StereoMetrics

        self.drift = DriftReport()
        self.fp32, self.quant = StereoMetrics(max_disparity), StereoMetrics(max_disparity)
        self.scored = 0

    def update(self, name: str, fp32: torch.Tensor, quant: torch.Tensor, gt: torch.Tensor | None = None,
               valid: torch.Tensor | None = None) -> None:
        """One image's predictions [1,H,W] (cropped to the image); `gt`/`valid` [1,H,W] in the same frame."""
        self.drift.update(name, fp32, quant)
        if gt is not None and valid is not None:
            self.fp32.update(fp32[None], gt[None], valid[None], names=[name])
            self.quant.update(quant[None], gt[None], valid[None], names=[name])
            self.scored += 1

    def kpi(self) -> dict[str, float]:
        """drift_* (stereo.deploy.drift) plus, with GT, fp32_epe, int8_epe and epe_delta (int8 - fp32), px."""
        kpi = dict(self.drift.summary())
        if self.scored:
            a, b = self.fp32.compute(), self.quant.compute()
            for key in ("epe", "bp3", "d1"):
                kpi[f"fp32_{key}"], kpi[f"int8_{key}"] = a[key], b[key]
            kpi["epe_delta"] = b["epe"] - a["epe"]
        return kpi

