"""TensorRT engines: build one from our ONNX (Python API) and run it with torch CUDA buffers.

Everything that can be wrong in a request is checked before TensorRT is even imported
(:func:`plan_build`): the optimisation profile (min <= opt <= max, multiples of 32, covering the
evaluation size, matching the ONNX's static/dynamic axes), the precision and the per-layer overrides'
syntax. A build then either succeeds or fails for a reason only TensorRT knows.

Facts this relies on (TensorRT docs, tao-deploy): TensorRT 10 networks are explicit-batch; reduced
precision is opt-in through builder flags (FP16, BF16) and per-layer precision needs
OBEY_PRECISION_CONSTRAINTS; TensorRT 11 removed those flags (strongly typed networks only), so there
an fp16/bf16 engine needs an ONNX already converted to mixed precision. `workspace_size` is MiB here
(TAO passes it as GiB). The GPU is needed from `trt.Builder` on.
"""
from __future__ import annotations

import difflib
import fnmatch
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from stereo.deploy.engine_io import MULTIPLE, EngineShape, nearest_multiples
from stereo.deploy.runtime import INPUT_NAMES, OUTPUT_NAME, DeployRunner, dims_to_shape
from stereo.errors import EngineRequestError

PRECISIONS = ("fp32", "fp16", "bf16")
INSTALL_HINT = ("install stereo-automl[tensorrt] on a CUDA host (TensorRT wheels come from NVIDIA's package "
                "index) or run the ONNX with ONNX Runtime instead (evaluate.trt_engine: model.onnx)")


@dataclass(frozen=True)
class BuildPlan:
    """A validated request: shapes per input name as (min, opt, max) or None for a static ONNX."""
    onnx_file: Path
    input_dims: dict[str, list]
    profile: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] | None
    data_type: str = "fp32"
    workspace_mib: int = 1024
    layers_precision: tuple[tuple[str, str], ...] = ()
    timing_cache: Path | None = None


@dataclass
class BuildInfo:
    engine_file: Path
    seconds: float
    data_type: str
    tensorrt_version: str
    profile: dict[str, Any] | None = None
    layers_overridden: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------- planning
def onnx_input_dims(onnx_file: str | os.PathLike) -> dict[str, list]:
    """{input name: dims}, a dim being an int or the symbolic name of a dynamic axis."""
    import onnx

    model = onnx.load(str(onnx_file), load_external_data=False)
    out = {}
    for inp in model.graph.input:
        dims = inp.type.tensor_type.shape.dim
        out[inp.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
    return out


def parse_layers_precision(entries: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """['layer_name:fp32', '/feature/*:fp16'] -> ((pattern, precision), ...)."""
    out = []
    for i, entry in enumerate(entries):
        pattern, sep, precision = str(entry).rpartition(":")
        precision = precision.strip().lower()
        if not sep or not pattern or precision not in PRECISIONS:
            raise EngineRequestError(f"gen_trt_engine.tensorrt.layers_precision[{i}]={entry!r}: write "
                                     f"'<layer name or glob>:<{'|'.join(PRECISIONS)}>', e.g. '/model/cost_agg/*:fp32'")
        out.append((pattern, precision))
    return tuple(out)


def _ordered(key: str, values: Sequence[int]) -> None:
    lo, opt, hi = values
    if not lo <= opt <= hi:
        raise EngineRequestError(f"gen_trt_engine.min/opt/max_{key} = {lo}/{opt}/{hi}: the profile needs "
                                 f"min_{key} <= opt_{key} <= max_{key}; reorder them")


def plan_build(onnx_file: str | os.PathLike, *, data_type: str = "fp32", workspace_mib: int = 1024,
               batch: Sequence[int] = (1, 1, 1), height: Sequence[int | None] | None = None,
               width: Sequence[int | None] | None = None, eval_hw: Sequence[int] | None = None,
               layers_precision: Sequence[str] = (), timing_cache: str | os.PathLike | None = None) -> BuildPlan:
    """Validate an engine request against the ONNX (no TensorRT needed); returns the build plan.

    `batch`, `height`, `width`: (min, opt, max). `eval_hw`: a size the engine must accept (the
    evaluation/inference input size), checked against the profile or the static shape.
    """
    onnx_file = Path(onnx_file)
    if not onnx_file.is_file():
        raise FileNotFoundError(f"gen_trt_engine.onnx_file={str(onnx_file)!r} does not exist; run depth_net export "
                                "first or fix the path")
    dt = str(data_type).lower()
    if dt not in PRECISIONS:
        raise EngineRequestError(f"gen_trt_engine.tensorrt.data_type={data_type!r}; choose one of {PRECISIONS} "
                                 "(int8 needs calibration, which is not implemented)")
    if workspace_mib < 1:
        raise EngineRequestError(f"gen_trt_engine.tensorrt.workspace_size={workspace_mib} MiB; use >= 1 (e.g. 4096)")
    dims = onnx_input_dims(onnx_file)
    missing = [n for n in INPUT_NAMES if n not in dims]
    if missing:
        raise EngineRequestError(f"{onnx_file.name} has inputs {sorted(dims)}, expected {list(INPUT_NAMES)}; "
                                 "export it with depth_net export")
    shape = dims_to_shape(dims[INPUT_NAMES[0]], what=onnx_file.name)
    hw_given = [v for v in (*(height or ()), *(width or ())) if v is not None]
    batch = tuple(int(b) for b in batch)
    _ordered("batch_size", batch)
    if batch[0] < 1:
        raise EngineRequestError(f"gen_trt_engine.tensorrt.min_batch_size={batch[0]}; use >= 1")
    if shape.batch is not None and batch != (1, 1, 1) and batch != (shape.batch,) * 3:
        raise EngineRequestError(f"{onnx_file.name} has a static batch of {shape.batch}, but the batch profile is "
                                 f"{batch[0]}/{batch[1]}/{batch[2]}; re-export with export.batch_size: -1 for a "
                                 "dynamic batch or remove tensorrt.min/opt/max_batch_size")
    if shape.hw is not None:
        if hw_given:
            raise EngineRequestError(f"{onnx_file.name} has a static {shape.hw[0]}x{shape.hw[1]} input; remove "
                                     "gen_trt_engine.min/opt/max_height/width or re-export with "
                                     "export.dynamic_hw: true (FastFoundationStereo)")
        if eval_hw is not None and tuple(eval_hw) != tuple(shape.hw):
            raise EngineRequestError(f"the evaluation size {eval_hw[0]}x{eval_hw[1]} differs from the ONNX's static "
                                     f"{shape.hw[0]}x{shape.hw[1]}; re-export at that size or set "
                                     f"evaluate.input_height/width to {shape.hw[0]}/{shape.hw[1]}")
        hw_profile = None
    else:
        if not height or not width or any(v is None for v in (*height, *width)):
            raise EngineRequestError(f"{onnx_file.name} has dynamic height/width: set all six of "
                                     "gen_trt_engine.min/opt/max_height and min/opt/max_width (e.g. 320/480/1024 "
                                     "and 320/736/1536)")
        for key, values in (("height", height), ("width", width)):
            for level, v in zip(("min", "opt", "max"), values):
                if v < MULTIPLE or v % MULTIPLE:
                    raise EngineRequestError(f"gen_trt_engine.{level}_{key}={v} is not a multiple of {MULTIPLE}; "
                                             f"use {nearest_multiples(v)}")
            _ordered(key, [int(v) for v in values])
        if eval_hw is not None and not (height[0] <= eval_hw[0] <= height[2] and width[0] <= eval_hw[1] <= width[2]):
            raise EngineRequestError(f"the evaluation size {eval_hw[0]}x{eval_hw[1]} is outside the profile "
                                     f"{height[0]}x{width[0]}..{height[2]}x{width[2]}; widen "
                                     "gen_trt_engine.min/max_height/width to cover it")
        hw_profile = [(int(h), int(w)) for h, w in zip(height, width)]
    profile = None
    if shape.batch is None or hw_profile is not None:
        b = batch if shape.batch is None else (shape.batch,) * 3
        hws = hw_profile or [shape.hw] * 3
        levels = tuple((b[i], 3, hws[i][0], hws[i][1]) for i in range(3))
        profile = {name: levels for name in INPUT_NAMES}
    return BuildPlan(onnx_file, dims, profile, dt, int(workspace_mib), parse_layers_precision(layers_precision),
                     Path(timing_cache) if timing_cache else None)


# --------------------------------------------------------------------------------------------- TensorRT
def require_tensorrt():
    """The `tensorrt` module, or one clear error when it or a CUDA GPU is missing."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise RuntimeError(f"TensorRT is not available (import tensorrt: {exc}); {INSTALL_HINT}") from exc
    if not torch.cuda.is_available():
        raise RuntimeError(f"TensorRT {getattr(trt, '__version__', '?')} is installed but no CUDA GPU is visible "
                           "to torch; run on a GPU host (check CUDA_VISIBLE_DEVICES), or "
                           f"{INSTALL_HINT.split(' or ')[1]}")
    return trt


def cuda_device(index: int, key: str) -> torch.device:
    """torch.device('cuda', index), refusing an index this host does not have (naming the spec key)."""
    count = torch.cuda.device_count()
    if not 0 <= int(index) < count:
        raise EngineRequestError(f"{key}={index}, but this host has {count} visible GPU(s) (check "
                                 f"CUDA_VISIBLE_DEVICES); use {key}: 0")
    return torch.device("cuda", int(index))


def check_precision_support(trt, plan: BuildPlan) -> None:
    """Refuse precisions this TensorRT/GPU cannot build, before the (long) build starts."""
    weak = hasattr(trt.BuilderFlag, "FP16")
    if plan.data_type != "fp32" and not weak:
        raise EngineRequestError(f"TensorRT {trt.__version__} builds strongly typed networks only: an "
                                 f"{plan.data_type} engine needs an ONNX converted to mixed precision first "
                                 "(NVIDIA ModelOpt AutoCast); use data_type fp32 here or TensorRT 10.x")
    if plan.layers_precision and not weak:
        raise EngineRequestError(f"TensorRT {trt.__version__} has no per-layer precision overrides (strong "
                                 "typing); remove gen_trt_engine.tensorrt.layers_precision or use TensorRT 10.x")
    if plan.data_type == "bf16" and torch.cuda.get_device_capability()[0] < 8:  # of the current device
        raise EngineRequestError(f"bf16 needs an Ampere or newer GPU (compute capability >= 8.0); "
                                 f"{torch.cuda.get_device_name()} has {torch.cuda.get_device_capability()}. Use fp16")


def _apply_layer_precision(trt, network, rules: Sequence[tuple[str, str]]) -> list[str]:
    dtypes = {"fp32": trt.float32, "fp16": trt.float16, "bf16": getattr(trt, "bfloat16", trt.float16)}
    floats = set(dtypes.values())
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    names = [layer.name for layer in layers]
    touched = []
    for pattern, precision in rules:
        hits = [layer for layer in layers if fnmatch.fnmatchcase(layer.name, pattern)]
        if not hits:
            close = difflib.get_close_matches(pattern, names, n=3)
            raise EngineRequestError(f"gen_trt_engine.tensorrt.layers_precision: no layer matches {pattern!r}"
                                     f"{f' (close: {close})' if close else ''}; layer names come from the "
                                     "parsed ONNX (see the verbose build log)")
        for layer in hits:
            outs = [layer.get_output(j) for j in range(layer.num_outputs)]
            if not outs or any(o.dtype not in floats for o in outs):
                continue  # shape/index layers keep their integer types
            layer.precision = dtypes[precision]
            for j in range(layer.num_outputs):
                layer.set_output_type(j, dtypes[precision])
            touched.append(f"{layer.name}:{precision}")
    return touched


def build_engine(plan: BuildPlan, engine_file: str | os.PathLike, *, verbose: bool = False,
                 gpu_index: int = 0) -> BuildInfo:
    """Build and write `engine_file` from a validated plan on cuda:`gpu_index` (GPU + TensorRT needed)."""
    trt = require_tensorrt()
    device = cuda_device(gpu_index, "gen_trt_engine.gpu_id")
    with torch.cuda.device(device):  # TensorRT builds for (and times kernels on) the current device
        return _build(trt, plan, engine_file, verbose)


def _build(trt, plan: BuildPlan, engine_file: str | os.PathLike, verbose: bool) -> BuildInfo:
    from stereo.atomic_io import atomic_write_bytes

    check_precision_support(trt, plan)
    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode from TensorRT 10 on
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(plan.onnx_file)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError(f"TensorRT {trt.__version__} cannot parse {plan.onnx_file.name}: "
                           f"{errors[0] if errors else 'unknown error'}; re-export with another "
                           "export.opset_version (16 or 17) or a newer TensorRT")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_mib << 20)
    if plan.data_type == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif plan.data_type == "bf16":
        config.set_flag(trt.BuilderFlag.BF16)
    touched = []
    if plan.layers_precision:
        touched = _apply_layer_precision(trt, network, plan.layers_precision)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    if plan.profile:
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in plan.profile.items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
    if plan.timing_cache:
        data = plan.timing_cache.read_bytes() if plan.timing_cache.is_file() else b""
        config.set_timing_cache(config.create_timing_cache(data), ignore_mismatch=False)
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT could not build an engine from {plan.onnx_file.name} ({plan.data_type}); "
                           "rerun with gen_trt_engine.verbose: true for the builder log, try fp32, a larger "
                           "workspace_size or a narrower profile")
    seconds = time.perf_counter() - start
    atomic_write_bytes(engine_file, bytes(serialized))
    if plan.timing_cache:
        atomic_write_bytes(plan.timing_cache, bytes(config.get_timing_cache().serialize()))
    prof = {k: [list(s) for s in v] for k, v in plan.profile.items()} if plan.profile else None
    return BuildInfo(Path(engine_file), seconds, plan.data_type, str(trt.__version__), prof, touched)


class TrtRunner(DeployRunner):
    """Runs a serialized engine on cuda:`device_index` (the spec's `gpu_ids[0]`); inputs and output live in
    torch CUDA tensors on that device."""
    kind = "tensorrt"

    def __init__(self, path: str | os.PathLike, device_index: int = 0):
        trt = require_tensorrt()
        self.path = Path(path)
        self.device = cuda_device(device_index, "gpu_ids[0]")
        self._logger = trt.Logger(trt.Logger.WARNING)
        with torch.cuda.device(self.device):
            self._runtime = trt.Runtime(self._logger)
            self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
            if self.engine is None:
                raise RuntimeError(f"TensorRT {trt.__version__} cannot load {self.path.name}: engines only run with "
                                   "the TensorRT version and GPU type that built them; rebuild with "
                                   "depth_net gen_trt_engine on this host")
            self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if sorted(inputs) != sorted(INPUT_NAMES) or not outputs:
            raise ValueError(f"{self.path.name} has inputs {inputs} and outputs {outputs}; expected "
                             f"{list(INPUT_NAMES)} -> {OUTPUT_NAME} (build it from depth_net export's ONNX)")
        self.output_name = OUTPUT_NAME if OUTPUT_NAME in outputs else outputs[0]
        self.shape = self._shape(list(self.engine.get_tensor_shape(INPUT_NAMES[0])))
        self._torch_dtype = {trt.float32: torch.float32, trt.float16: torch.float16}
        if hasattr(trt, "bfloat16"):
            self._torch_dtype[trt.bfloat16] = torch.bfloat16

    def describe(self) -> dict:
        return {**super().describe(), "device": str(self.device)}

    def _shape(self, dims: list) -> EngineShape:
        shape = dims_to_shape([d if d > 0 else None for d in dims], what=self.path.name)
        if shape.hw is not None and shape.batch is not None:
            return shape
        lo, _, hi = (list(s) for s in self.engine.get_tensor_profile_shape(INPUT_NAMES[0], 0))
        return EngineShape(hw=shape.hw, batch=shape.batch, min_hw=(lo[2], lo[3]), max_hw=(hi[2], hi[3]),
                           min_batch=lo[0], max_batch=hi[0])

    def __call__(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        self.check_inputs(left, right)
        with torch.cuda.device(self.device):
            feeds = {INPUT_NAMES[0]: left.to(self.device, torch.float32).contiguous(),
                     INPUT_NAMES[1]: right.to(self.device, torch.float32).contiguous()}
            for name, t in feeds.items():
                self.context.set_input_shape(name, tuple(t.shape))
                self.context.set_tensor_address(name, t.data_ptr())
            out_shape = tuple(self.context.get_tensor_shape(self.output_name))
            dtype = self._torch_dtype.get(self.engine.get_tensor_dtype(self.output_name), torch.float32)
            out = torch.empty(out_shape, dtype=dtype, device=self.device)
            self.context.set_tensor_address(self.output_name, out.data_ptr())
            stream = torch.cuda.current_stream(self.device)
            if not self.context.execute_async_v3(stream.cuda_stream):
                raise RuntimeError(f"TensorRT execution of {self.path.name} failed for input "
                                   f"{tuple(feeds[INPUT_NAMES[0]].shape)}")
            stream.synchronize()
        return out.float().cpu()


def plan_from_config(onnx_file: str | os.PathLike, gen_cfg: Any, eval_hw: Sequence[int] | None = None
                     ) -> BuildPlan:
    """plan_build from a `gen_trt_engine` spec section (GenTrtEngineConfig)."""
    t = gen_cfg.tensorrt
    return plan_build(onnx_file, data_type=t.data_type, workspace_mib=t.workspace_size,
                      batch=(t.min_batch_size, t.opt_batch_size, t.max_batch_size),
                      height=(gen_cfg.min_height, gen_cfg.opt_height, gen_cfg.max_height),
                      width=(gen_cfg.min_width, gen_cfg.opt_width, gen_cfg.max_width),
                      eval_hw=eval_hw, layers_precision=list(t.layers_precision),
                      timing_cache=gen_cfg.timing_cache or None)


def describe_plan(plan: BuildPlan) -> Mapping[str, Any]:
    return {"onnx_file": str(plan.onnx_file), "data_type": plan.data_type, "workspace_mib": plan.workspace_mib,
            "profile": {k: [list(s) for s in v] for k, v in plan.profile.items()} if plan.profile else None,
            "layers_precision": [f"{p}:{q}" for p, q in plan.layers_precision],
            "timing_cache": str(plan.timing_cache) if plan.timing_cache else None}
