"""`evaluate.*`, `inference.*`, `export.*`, `gen_trt_engine.*`: one section per non-train action.

TAO field names and meanings; `(ours)` marks extensions. TAO fields that no code path reads are kept
so that TAO specs load, and their descriptions say they are unused.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from stereo.config.fields import spec_field

TRT_DATA_TYPES = ("fp32", "fp16", "bf16")
SIZE_POLICIES = ("resize", "pad", "error")  # stereo.deploy.size_policy


def _on_size_mismatch():
    return spec_field("resize", enum=SIZE_POLICIES, description="(ours) Deploy path (ONNX / TensorRT): an "
                      "image whose size differs from the graph's input. resize: pad a smaller image, shrink a "
                      "larger one keeping the aspect ratio then pad; pad: pad only, a larger image is an error; "
                      "error: any other size is an error (exit 2). Whatever is done is counted and reported "
                      "(console, status.json, MLflow).",
                      tao_note="TAO's deploy resizes (stretches) every image to the engine size silently.")


def _size(description: str):
    """An optional image size in pixels (None: not set); multiples of 32 like every network input."""
    return spec_field(None, minimum=32, math_cond="/ 32", unit="px", description=description)


@dataclass
class EvaluateConfig:
    """Score a checkpoint, an engine or precomputed predictions on dataset.test_dataset."""
    num_gpus: int = spec_field(1, minimum=1, popular=True, description="GPUs to use.")
    gpu_ids: List[int] = spec_field([0], minimum=0, popular=True, description="GPU indices.")
    num_nodes: int = spec_field(1, minimum=1, popular=True, description="Nodes.")
    checkpoint: str = spec_field("", description="PyTorch checkpoint (.pth/.ckpt/.safetensors) to evaluate.")
    trt_engine: str = spec_field("", description="TensorRT engine to evaluate instead of a checkpoint.")
    results_dir: str = spec_field("", description="Output folder; empty: <results_dir>/evaluate.")
    batch_size: int = spec_field(-1, minimum=-1, description="Accepted for TAO compatibility; the batch "
                                 "size is dataset.test_dataset.batch_size.")
    input_width: Optional[int] = _size("Engine "
                                            "input width for dynamic engines; None: native resolution.")
    input_height: Optional[int] = _size("Engine "
                                             "input height for dynamic engines; None: native resolution.")
    native_padded: bool = spec_field(False, description="Accepted for TAO compatibility; unused (inputs are "
                                     "always padded to a multiple of 32 and unpadded).")
    on_size_mismatch: str = _on_size_mismatch()
    predictions_dir: str = spec_field("", description="(ours) Score precomputed disparity maps (.pfm/.npy/"
                                      "16-bit .png in KITTI's /256 encoding, named like the inference "
                                      "outputs) instead of running a network. Holes (0 in PNG, NaN/inf) are "
                                      "scored as disparity 0; pred_density reports their share.",
                                      tao_note="Not in TAO.")


@dataclass
class InferenceConfig:
    """Predict disparity for dataset.infer_dataset."""
    num_gpus: int = spec_field(1, minimum=1, popular=True, description="GPUs to use.")
    gpu_ids: List[int] = spec_field([0], minimum=0, popular=True, description="GPU indices.")
    num_nodes: int = spec_field(1, minimum=1, popular=True, description="Nodes.")
    checkpoint: str = spec_field("", description="PyTorch checkpoint to run.")
    trt_engine: str = spec_field("", description="TensorRT engine to run instead of a checkpoint.")
    results_dir: str = spec_field("", description="Output folder; empty: <results_dir>/inference.")
    batch_size: int = spec_field(-1, minimum=-1, description="Accepted for TAO compatibility; the batch "
                                 "size is dataset.infer_dataset.batch_size.")
    conf_threshold: float = spec_field(0.5, minimum=0.0, maximum=1.0, description="Accepted for TAO "
                                       "compatibility; unused.")
    input_width: Optional[int] = _size("Engine "
                                            "input width for dynamic engines; None: native resolution.")
    input_height: Optional[int] = _size("Engine "
                                             "input height for dynamic engines; None: native resolution.")
    save_raw_pfm: bool = spec_field(False, description="Also write the raw float disparity as .pfm.",
                                    tao_note="TAO honours it on the PyTorch path only; ours on every path.")
    save_raw_npy: bool = spec_field(False, description="Also write the raw float disparity as .npy.",
                                    tao_note="TAO honours it on the deploy path only; ours on every path.")
    on_size_mismatch: str = _on_size_mismatch()


@dataclass
class ExportConfig:
    """Write an ONNX graph (inputs left_image/right_image [B,3,H,W] RGB 0..255 -> disparity [B,1,H,W])."""
    results_dir: str = spec_field("", description="Output folder; empty: <results_dir>/export.")
    gpu_id: int = spec_field(0, minimum=0, description="GPU used for tracing (unless on_cpu).")
    checkpoint: str = spec_field("", description="PyTorch checkpoint to export.")
    onnx_file: str = spec_field("", description="Output .onnx path.")
    overwrite: bool = spec_field(False, description="(ours) Replace an existing onnx_file; false: refuse.",
                                 tao_note="TAO's stereo exporter overwrites silently; ours refuses unless "
                                 "overwrite is true.")
    on_cpu: bool = spec_field(False, description="Trace on the CPU (slower, no GPU memory needed).")
    input_channel: int = spec_field(3, enum=(3,), description="Image channels (RGB).",
                                    tao_note="TAO also lists 1; the stereo networks take RGB only.")
    input_width: int = spec_field(960, minimum=32, math_cond="/ 32", unit="px",
                                  description="Traced input width; multiple of 32.")
    input_height: int = spec_field(544, minimum=32, math_cond="/ 32", unit="px",
                                   description="Traced input height; multiple of 32.")
    opset_version: int = spec_field(17, minimum=13, maximum=21, description="ONNX opset.")
    batch_size: int = spec_field(-1, minimum=-1, description="-1: dynamic batch axis (traced with 1); "
                                 ">= 1: static batch.")
    verbose: bool = spec_field(False, description="Print the traced graph.")
    format: str = spec_field("onnx", enum=("onnx",), description="Export format.",
                             tao_note="TAO also lists 'xdl'; only ONNX is implemented.")
    valid_iters: Optional[int] = spec_field(None, minimum=1, description="GRU iterations baked into the "
                                            "graph; unset (null): the model's own model.valid_iters "
                                            "(FFS bp2: 8).",
                                            tao_note="TAO defaults to 22 whatever the model; an unset value "
                                            "here follows model.valid_iters, and the ONNX sidecar records "
                                            "which was used.")
    dynamic_hw: bool = spec_field(False, description="Dynamic height/width axes (FastFoundationStereo only; "
                                  "FoundationStereo's ViT position embedding is traced as a constant).")


@dataclass
class TensorRTConfig:
    data_type: str = spec_field("fp32", enum=TRT_DATA_TYPES, ignore_case=True, description="Engine "
                                "precision (case-insensitive).",
                                tao_note="TAO spells the default 'FP32' and also accepts int8 (calibration); "
                                "ours stores lower case and has no int8.")
    workspace_size: int = spec_field(1024, minimum=1, unit="MiB", description="Builder workspace limit in "
                                     "MiB.", tao_note="TAO documents MB but passes the value as GiB; ours is "
                                     "MiB (TAO's '4' means 4096 here).")
    min_batch_size: int = spec_field(1, minimum=1, description="Dynamic-batch profile minimum.")
    opt_batch_size: int = spec_field(1, minimum=1, description="Dynamic-batch profile optimum.")
    max_batch_size: int = spec_field(1, minimum=1, description="Dynamic-batch profile maximum.")
    layers_precision: List[str] = spec_field([], description="Per-layer precision overrides "
                                             "'layer_name:fp32'.")


@dataclass
class GenTrtEngineConfig:
    """Build a TensorRT engine from the exported ONNX (GPU hosts with TensorRT only)."""
    results_dir: str = spec_field("", description="Output folder; empty: <results_dir>/gen_trt_engine.")
    gpu_id: int = spec_field(0, minimum=0, popular=True, description="GPU to build on.")
    onnx_file: str = spec_field("", description="Input .onnx path.")
    trt_engine: str = spec_field("", description="Output engine path.")
    timing_cache: str = spec_field("", description="TensorRT timing-cache file (read and updated); empty: "
                                   "none.")
    batch_size: int = spec_field(-1, minimum=-1, popular=True, description="Accepted for TAO compatibility; "
                                 "the batch comes from the ONNX graph and the tensorrt batch profile.")
    verbose: bool = spec_field(False, description="Verbose builder log.")
    tensorrt: TensorRTConfig = field(default_factory=TensorRTConfig)
    min_height: Optional[int] = _size("Dynamic "
                                           "H/W profile: minimum height (all six or none).")
    opt_height: Optional[int] = spec_field(None, minimum=32, math_cond="/ 32", unit="px",
                                           description="Dynamic H/W profile: optimum height.")
    max_height: Optional[int] = spec_field(None, minimum=32, math_cond="/ 32", unit="px",
                                           description="Dynamic H/W profile: maximum height.")
    min_width: Optional[int] = spec_field(None, minimum=32, math_cond="/ 32", unit="px",
                                          description="Dynamic H/W profile: minimum width.")
    opt_width: Optional[int] = spec_field(None, minimum=32, math_cond="/ 32", unit="px",
                                          description="Dynamic H/W profile: optimum width.")
    max_width: Optional[int] = spec_field(None, minimum=32, math_cond="/ 32", unit="px",
                                          description="Dynamic H/W profile: maximum width.")
