"""Out of memory: a trial's peak memory, and the one line a memory kill is recorded with.

A trial killed for memory cannot say so itself: Ray's memory monitor SIGKILLs its worker and the driver
gets a ``ray.exceptions.OutOfMemoryError`` whose text reads like ::

    Task was killed due to the node running low on memory. Memory on the node (IP: ..., ID: ...) where the
    task (actor ID: ..., pid=123, memory used=9.70GB) was running was 21.30GB / 22.90GB (0.93), ...

(Ray 2.60: "1 worker(s) were killed due to the node running low on memory. Memory on the node (...) was
5.63GB used / 23.54GB limit (0.239) ... actual memory used=0.20GB ..."; both spellings are read).

So each trial books its own peak (resident memory, or CUDA's peak reservation on a GPU) in its ledger
progress while it trains (:data:`PEAK_KEY`), and the driver turns the kill into
"out of memory: peak 9.7 GB of 22.9 GB available — lower --max-concurrent or the crop", taking the
larger of the two peaks and the node's total from Ray's text (else this machine's). A CUDA
out-of-memory error raised inside the trial gets the same line with the GPU's numbers.
Ray-free and torch-optional, so the driver can import it cheaply.
"""
from __future__ import annotations

import re
import sys
from typing import Any, Mapping, Optional

PEAK_KEY = "peak_memory_gb"  # in the trial's ledger progress file
DEVICE_KEY = "memory_device"  # "RAM" or "GPU memory"
HINT = "lower --max-concurrent or the crop"
_GB = 1e9
_USED = re.compile(r"memory used=([\d.]+)\s*GB")
_NODE = re.compile(r"was ([\d.]+)\s*GB(?: used)?\s*/\s*([\d.]+)\s*GB")
_SIGNS = ("OutOfMemoryError", "running low on memory", "out of memory", "memory monitor")


def peak_memory() -> tuple:
    """(peak GB, "GPU memory" | "RAM") of this process: CUDA's peak reservation when a GPU is in use,
    else the peak resident set size."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        reserved = torch.cuda.max_memory_reserved()
        if reserved:
            return reserved / _GB, "GPU memory"
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / _GB, "RAM"  # ru_maxrss: KiB on Linux


def total_memory(device: str = "RAM") -> Optional[float]:
    """GB of RAM on this machine (or of the current GPU), None when unknown."""
    if device == "GPU memory":
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            return torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory / _GB
        return None
    info = meminfo()
    return info["total"] / _GB if info else None


def meminfo() -> Optional[dict]:
    """{'total', 'available'} bytes of this machine's RAM (Linux /proc/meminfo), None elsewhere."""
    try:
        fields = dict(line.split(":", 1) for line in open("/proc/meminfo").read().splitlines() if ":" in line)
        return {"total": int(fields["MemTotal"].split()[0]) * 1024,
                "available": int(fields["MemAvailable"].split()[0]) * 1024}
    except (OSError, KeyError, ValueError):
        return None


def looks_like_oom(text: str) -> bool:
    """Does this error text say the process ran out of memory (Ray's monitor, CUDA, MemoryError)?"""
    lowered = (text or "").lower()
    return any(sign.lower() in lowered for sign in _SIGNS) or "memoryerror" in lowered


def oom_reason(peak_gb: Optional[float], total_gb: Optional[float], device: str = "RAM") -> str:
    """The failure line: 'out of memory: peak X GB of Y GB available — lower --max-concurrent or the crop'."""
    peak = f"peak {peak_gb:.1f} GB" if peak_gb else "peak unknown"
    of = f" of {total_gb:.1f} GB" if total_gb else ""
    what = "" if device == "RAM" else f" {device}"
    return f"out of memory: {peak}{of}{what} available — {HINT}"


def reason_from_ray(text: str, progress: Mapping[str, Any]) -> str:
    """The failure line for a worker Ray killed for memory: its text's numbers and the trial's own peak."""
    used = [float(x) for x in _USED.findall(text or "")]
    node = _NODE.search(text or "")
    booked = progress.get(PEAK_KEY)
    peak = max([*used, *([float(booked)] if booked else [])], default=None)
    device = progress.get(DEVICE_KEY) or "RAM"
    total = float(node.group(2)) if node and device == "RAM" else total_memory(device)
    return oom_reason(peak, total, device)


def reason_from_exception(exc: BaseException) -> Optional[str]:
    """The failure line for an out-of-memory error raised inside the trial (CUDA OOM, MemoryError); None
    for any other error."""
    text = f"{type(exc).__name__}: {exc}"
    torch = sys.modules.get("torch")  # a CUDA OOM comes from torch, so it is imported if this is one
    cuda_oom = torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)
    if not (isinstance(exc, MemoryError) or cuda_oom or "out of memory" in str(exc).lower()):
        return None
    peak, device = peak_memory()
    if "cuda" in text.lower():
        device = "GPU memory"
    return oom_reason(peak, total_memory(device), device)
