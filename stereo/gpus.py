"""NVIDIA GPUs this process may use, seen without importing torch (driver files, CUDA_VISIBLE_DEVICES):
the depth_net pre-flight and the sweep's resource plan both ask."""
from __future__ import annotations

import glob
import os
from typing import List


def visible_gpus() -> int:
    """NVIDIA GPUs this process (and an embedded Ray) may use."""
    physical = len(glob.glob("/proc/driver/nvidia/gpus/*")) or len(glob.glob("/dev/nvidia[0-9]*"))
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is None:
        return physical
    ids: List[str] = []
    for item in env.split(","):  # CUDA stops at the first invalid entry ("-1" hides every device)
        item = item.strip()
        if not item or item == "-1":
            break
        ids.append(item)
    return min(len(ids), physical)
