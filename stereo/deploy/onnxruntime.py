"""Run an exported stereo ONNX graph with ONNX Runtime (CUDA execution provider when present, else CPU).

The graph takes RGB 0..255 (normalisation is inside it), so callers hand over the same tensors the
PyTorch model takes. `onnxruntime` is imported here only, on first use.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from stereo.deploy.runtime import INPUT_NAMES, DeployRunner, dims_to_shape

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def providers_for(device: str, gpu_index: int = 0) -> list:
    """Execution providers for 'auto' | 'cpu' | 'cuda' given what this onnxruntime build has; the CUDA
    provider runs on device `gpu_index`."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    cuda = [(CUDA, {"device_id": int(gpu_index)}), CPU]
    if device == "cpu":
        return [CPU]
    if device == "cuda":
        if CUDA not in available:
            raise RuntimeError(f"device 'cuda' asked for, but this onnxruntime has only {available}; install "
                               "onnxruntime-gpu on a CUDA host or use device 'cpu'")
        return cuda
    if device == "auto":
        return cuda if CUDA in available and torch.cuda.is_available() else [CPU]
    raise ValueError(f"device {device!r} is not one of 'auto', 'cpu', 'cuda'")


class OrtRunner(DeployRunner):
    kind = "onnxruntime"

    def __init__(self, path: str | os.PathLike, *, device: str = "auto", threads: int | None = None,
                 gpu_index: int = 0):
        import onnxruntime as ort

        self.path = Path(path)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=providers_for(device, gpu_index))
        except Exception as exc:  # onnxruntime raises its own exception types
            raise RuntimeError(f"ONNX Runtime cannot load {self.path}: {str(exc).splitlines()[0]}; re-export "
                               "it with depth_net export") from exc
        inputs = {i.name: i for i in self.session.get_inputs()}
        missing = [n for n in INPUT_NAMES if n not in inputs]
        if missing:
            raise ValueError(f"{self.path.name} has inputs {sorted(inputs)}, expected {list(INPUT_NAMES)}; "
                             "export it with depth_net export")
        self.shape = dims_to_shape(inputs[INPUT_NAMES[0]].shape, what=self.path.name)
        self.output_name = self.session.get_outputs()[0].name
        self.providers = self.session.get_providers()

    def __call__(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        self.check_inputs(left, right)
        feed = {INPUT_NAMES[0]: _numpy(left), INPUT_NAMES[1]: _numpy(right)}
        (out,) = self.session.run([self.output_name], feed)
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))

    def describe(self) -> dict:
        return {**super().describe(), "providers": list(self.providers)}


def _numpy(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
