"""The interface every deployed-network runner implements (the backends subclass it; stereo.deploy.runners
picks one by file type):

    disp = runner(left, right)                  # [B,3,H,W] RGB 0..255 -> [B,1,H,W] float32 (CPU)
"""
from __future__ import annotations

import abc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from stereo.deploy.engine_io import EngineShape

INPUT_NAMES = ("left_image", "right_image")
OUTPUT_NAME = "disparity"


class DeployRunner(abc.ABC):
    """A deployed stereo network: `runner(left, right)` with float32 RGB 0..255 [B,3,H,W] tensors."""
    kind: str = ""
    path: Path
    shape: EngineShape

    @abc.abstractmethod
    def __call__(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """Disparity [B,1,H,W] float32 on the CPU, for inputs the shape accepts."""

    def describe(self) -> dict[str, Any]:
        """What to record with a run: runtime, file, accepted shape."""
        s = self.shape
        return {"runtime": self.kind, "file": str(self.path),
                "hw": list(s.hw) if s.hw else None, "min_hw": list(s.min_hw),
                "max_hw": list(s.max_hw) if s.max_hw else None, "batch": s.batch}

    def check_inputs(self, left: torch.Tensor, right: torch.Tensor) -> None:
        """Raise naming the accepted shape when `left`/`right` do not fit (before the runtime does, cryptically)."""
        if left.shape != right.shape or left.dim() != 4 or left.shape[1] != 3:
            raise ValueError(f"left {tuple(left.shape)} and right {tuple(right.shape)} must both be [B,3,H,W]")
        b, _, h, w = left.shape
        s = self.shape
        if s.batch is not None and b != s.batch:
            raise ValueError(f"{self.path.name} takes batch {s.batch}, got {b}; fill the batch or re-export with "
                             "export.batch_size: -1")
        if s.hw is not None and (h, w) != tuple(s.hw):
            raise ValueError(f"{self.path.name} takes {s.hw[0]}x{s.hw[1]} images, got {h}x{w}; fit them with "
                             "stereo.deploy.engine_io.plan_fit/fit_images")
        if h % 32 or w % 32:
            raise ValueError(f"input {h}x{w} is not a multiple of 32; pad with stereo.deploy.engine_io")
        too_small = h < s.min_hw[0] or w < s.min_hw[1] or b < s.min_batch
        too_big = (s.max_hw is not None and (h > s.max_hw[0] or w > s.max_hw[1])) or \
            (s.max_batch is not None and b > s.max_batch)
        if too_small or too_big:
            raise ValueError(f"input {b}x3x{h}x{w} is outside {self.path.name}'s profile (batch {s.min_batch}.."
                             f"{s.max_batch}, H/W {s.min_hw}..{s.max_hw}); fit the images with "
                             "stereo.deploy.engine_io.target_shape or rebuild the engine with a wider profile")


def dims_to_shape(dims: Sequence[Any], *, what: str) -> EngineShape:
    """EngineShape from an NCHW input's dims, where a dynamic dim is a name/None/-1 (ONNX and TensorRT)."""
    if len(dims) != 4:
        raise ValueError(f"{what}: expected an NCHW input, got dims {list(dims)}")

    def static(d: Any) -> int | None:
        return int(d) if isinstance(d, int) and d > 0 else None

    b, h, w = static(dims[0]), static(dims[2]), static(dims[3])
    if (h is None) != (w is None):
        raise ValueError(f"{what}: only one of height/width is dynamic ({list(dims)}); re-export with "
                         "export.dynamic_hw true or false")
    return EngineShape(hw=(h, w) if h is not None else None, batch=b)

