"""The registry of deployed-network runtimes, keyed by name, and `open_runner` to pick one by file type.

    runner = open_runner("model.onnx")          # ONNX Runtime: CUDA provider when present, else CPU
    runner = open_runner("model.engine")        # TensorRT (GPU hosts with `stereo-automl[tensorrt]`)
    runner = open_runner("model.engine", gpu_index=1)   # on cuda:1 (the spec's gpu_ids[0])
    runner = open_runner("model.bin", runtime="onnxruntime")   # by name, whatever the suffix
    disp = runner(left, right)                  # [B,3,H,W] RGB 0..255 -> [B,1,H,W] float32 (CPU)

Each backend module (onnxruntime.py, tensorrt.py) implements stereo.deploy.runtime.DeployRunner and knows
nothing of this table; the table imports a backend only when a file of its kind is opened (onnxruntime and
tensorrt are heavy, tensorrt exists on GPU hosts only). Adding a runtime is one row in RUNTIMES.
"""
from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stereo.deploy.runtime import DeployRunner


def _open_onnxruntime(path: Path, *, device: str, threads: int | None, gpu_index: int) -> DeployRunner:
    from stereo.deploy.onnxruntime import OrtRunner

    return OrtRunner(path, device=device, threads=threads, gpu_index=gpu_index)


def _open_tensorrt(path: Path, *, device: str, threads: int | None, gpu_index: int) -> DeployRunner:
    from stereo.deploy.tensorrt import TrtRunner

    return TrtRunner(path, device_index=gpu_index)  # engines run on the GPU: `device`/`threads` do not apply


@dataclass(frozen=True)
class Runtime:
    """One deploy runtime: its name (DeployRunner.kind), the file suffixes it opens and how to open one."""
    name: str
    suffixes: tuple[str, ...]
    open: Callable[..., DeployRunner]


#: Adding a runtime is one row here.
RUNTIMES: dict[str, Runtime] = {r.name: r for r in (
    Runtime("onnxruntime", (".onnx",), _open_onnxruntime),
    Runtime("tensorrt", (".engine", ".plan", ".trt"), _open_tensorrt),
)}


def list_runtimes() -> list[str]:
    return sorted(RUNTIMES)


def runtime_named(name: str) -> Runtime:
    """The runtime registered as `name`; an unknown name raises ValueError listing the valid ones."""
    if name in RUNTIMES:
        return RUNTIMES[name]
    close = difflib.get_close_matches(str(name), list(RUNTIMES), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"unknown deploy runtime {name!r}{hint}; use one of {', '.join(list_runtimes())}")


def runtime_for(path: str | os.PathLike) -> Runtime:
    """The runtime that opens `path`, by its suffix; an unknown suffix raises ValueError naming the valid ones."""
    suffix = Path(path).suffix.lower()
    for runtime in RUNTIMES.values():
        if suffix in runtime.suffixes:
            return runtime
    engines = RUNTIMES["tensorrt"].suffixes
    raise ValueError(f"{str(path)!r}: unknown deployed-network type {suffix!r}; use an .onnx file or a TensorRT "
                     f"engine ({', '.join(engines)})")


def open_runner(path: str | os.PathLike, *, device: str = "auto", threads: int | None = None,
                gpu_index: int = 0, runtime: str | None = None) -> DeployRunner:
    """A runner for `path`: `.onnx` -> ONNX Runtime, `.engine/.plan/.trt` -> TensorRT (or the `runtime` named).

    `device`: 'auto' (CUDA when available), 'cpu' or 'cuda' (ONNX Runtime only; engines run on the GPU).
    `threads`: ONNX Runtime intra-op threads (None: its default). `gpu_index`: the CUDA device that
    ONNX Runtime's CUDA provider or the TensorRT engine runs on.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"deployed network {str(path)!r} does not exist; run depth_net export / "
                                "gen_trt_engine first or fix the path")
    chosen = runtime_named(runtime) if runtime is not None else runtime_for(path)
    return chosen.open(path, device=device, threads=threads, gpu_index=gpu_index)
