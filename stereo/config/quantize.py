"""`quantize.*`: post-training quantization of an exported graph (TAO's `quantize` section, FoundationStereo skill).

What runs here is static int8 through ONNX Runtime's QDQ tooling on the CPU, calibrated on the stereo pairs
in `dataset.quant_calibration_dataset.images_dir` (stereo.deploy.quantize). TAO's field names are kept so a
TAO spec loads; what we cannot honour is refused at load time (one line, exit 2) by :func:`check_quantize`,
never ignored: the torchao and ModelOpt-PyTorch backends, `weight_only_ptq`, ModelOpt's AWQ/RTN
algorithms, per-module `layers`, and the TensorRT calibration device.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

from stereo.config.errors import Problem, missing_value
from stereo.config.fields import spec_field

#: backends that run here: ours, and TAO's name for the ONNX path (run with ONNX Runtime's tooling, not ModelOpt)
ONNX_BACKENDS = ("onnxruntime", "modelopt.onnx")
BACKENDS = ONNX_BACKENDS + ("torchao", "modelopt.pytorch")
MODES = ("static_ptq", "weight_only_ptq")
#: calibration methods ONNX Runtime has (onnxruntime.quantization.CalibrationMethod)
ALGORITHMS = ("minmax", "entropy", "percentile")
TAO_ONLY_ALGORITHMS = ("max", "awq_clip", "awq_lite", "awq_full", "rtn_dq")
DEVICES = ("cpu", "cuda", "trt")
#: backend_kwargs keys passed on (the rest are refused, naming these)
BACKEND_KWARGS = ("per_channel", "reduce_range", "activation_symmetric", "weight_symmetric")
QUANT_DTYPES = ("int8",)

_TORCHAO_WHY = ("torchao's weight-only int8 (Int8WeightOnlyConfig) replaces nn.Linear weights only (34 % of "
                "ffs_bp2's parameters, none of its 2-D/3-D convolutions), and it yields no graph "
                "to deploy (docs/deploy.md, 'Quantize')")


@dataclass
class QuantizeConfig:
    """Post-training int8 quantization of an exported ONNX graph, then fp32-vs-int8 drift, latency and size."""
    results_dir: str = spec_field("", description="Output folder; empty: <results_dir>/quantize.")
    model_path: str = spec_field("", description="The fp32 network to quantize: an ONNX graph written by "
                                 "depth_net export, or a checkpoint (exported first, in the quantize folder, "
                                 "at export.input_height x export.input_width with export.valid_iters).")
    backend: str = spec_field("onnxruntime", enum=BACKENDS, description="onnxruntime (or TAO's name "
                              "modelopt.onnx for the same ONNX path): static int8 QDQ with ONNX Runtime's "
                              "quantization tooling. torchao and modelopt.pytorch are refused with the reason.",
                              tao_note="TAO's default is torchao (weight-only int8 of nn.Linear on a GPU); "
                              "ours quantizes the exported graph with ONNX Runtime, which covers the "
                              "convolutions and gives a deployable file.")
    mode: str = spec_field("static_ptq", enum=MODES, description="static_ptq: weights and activations int8, "
                           "activation ranges calibrated on dataset.quant_calibration_dataset. weight_only_ptq is "
                           "refused (ONNX Runtime's CPU kernels have no weight-only int8 convolution).",
                           tao_note="TAO's default weight_only_ptq belongs to its torchao backend.")
    algorithm: str = spec_field("minmax", enum=ALGORITHMS + TAO_ONLY_ALGORITHMS, description="Activation "
                                "range calibration: minmax, entropy or percentile (ONNX Runtime's "
                                "CalibrationMethod). TAO's ModelOpt-only max/awq_*/rtn_dq are refused.")
    device: str = spec_field("cpu", enum=DEVICES, description="Calibration device. Quantization runs on the "
                             "CPU: cuda is accepted and runs on the CPU (a warning says so), trt is refused.",
                             tao_note="TAO's default is cuda with a silent fallback to cpu.")
    layers: List[Dict[str, Any]] = spec_field([], description="TAO's per-module dtype list; only [] is accepted "
                                              "(every Conv/MatMul is int8; exclude nodes with skip_names).")
    skip_names: List[str] = spec_field([], description="ONNX node names (fnmatch patterns, e.g. '/cost_agg/*') "
                                       "left in fp32.")
    backend_kwargs: Dict[str, Any] = spec_field({}, description="ONNX Runtime options: "
                                                + ", ".join(BACKEND_KWARGS) + " (booleans). per_channel "
                                                "defaults to true.")
    onnx_file: str = spec_field("model_int8.onnx", description="(ours) Output int8 graph; relative: in the "
                                "quantize folder. Overwritten; its sidecar <onnx_file>.json records "
                                "precision int8 and the calibration.")
    max_calibration_images: int = spec_field(32, minimum=1, description="(ours) Calibrate on at most this "
                                             "many pairs (the first ones, sorted by path).")
    latency_runs: int = spec_field(10, minimum=1, description="(ours) Timed single-image runs per graph "
                                   "(batch 1, fixed shape); the median is reported.")
    warmup_runs: int = spec_field(2, minimum=0, description="(ours) Untimed runs before the timed ones.")
    threads: int = spec_field(1, minimum=1, description="(ours) ONNX Runtime intra-op threads for every "
                              "timed run (pinned, so fp32 and int8 are compared on equal terms).")


def check_quantize(spec: Any) -> List[Problem]:
    """Everything `depth_net quantize` refuses, before any file is read (the disk: stereo.actions.preflight)."""
    q, problems = spec.quantize, []
    if q.backend in ("torchao", "modelopt.pytorch"):  # other unknown names: the enum check says so
        why = _TORCHAO_WHY if q.backend == "torchao" else "ModelOpt is not installed here (NVIDIA GPU stack)"
        problems.append(Problem("quantize.backend", q.backend, f"not run here: {why}",
                                "set quantize.backend: onnxruntime (static int8 of the exported graph)"))
    if q.mode == "weight_only_ptq":
        problems.append(Problem("quantize.mode", q.mode, "ONNX Runtime's CPU kernels have no weight-only int8 "
                                "convolution, so it would only shrink the file", "set quantize.mode: static_ptq"))
    if q.algorithm in TAO_ONLY_ALGORITHMS:
        problems.append(Problem("quantize.algorithm", q.algorithm, "a ModelOpt algorithm; ONNX Runtime "
                                f"calibrates with {', '.join(ALGORITHMS)}", "set quantize.algorithm: minmax"))
    if q.device == "trt":
        problems.append(Problem("quantize.device", q.device, "TensorRT calibration is not available here",
                                "set quantize.device: cpu"))
    if q.layers:
        problems.append(Problem("quantize.layers", q.layers, "per-module dtypes are not supported (every "
                                "Conv/MatMul becomes int8)", "remove quantize.layers; keep nodes in fp32 with "
                                "quantize.skip_names"))
    unknown = sorted(set(q.backend_kwargs) - set(BACKEND_KWARGS))
    if unknown:
        problems.append(Problem("quantize.backend_kwargs", q.backend_kwargs, f"unknown option(s) {unknown}",
                                f"use only {', '.join(BACKEND_KWARGS)}"))
    bad = [k for k in BACKEND_KWARGS if k in q.backend_kwargs and not isinstance(q.backend_kwargs[k], bool)]
    if bad:
        problems.append(Problem(f"quantize.backend_kwargs.{bad[0]}", q.backend_kwargs[bad[0]], "not a boolean",
                                f"set quantize.backend_kwargs.{bad[0]}: true or false"))
    if not q.model_path:
        problems.append(Problem("quantize.model_path", missing_value(), "quantize needs the fp32 network",
                                "set quantize.model_path to the exported .onnx (or a checkpoint), or pass "
                                "--parent <export or train step>"))
    elif Path(q.model_path).suffix.lower() in (".engine", ".plan", ".trt"):
        problems.append(Problem("quantize.model_path", q.model_path, "is a TensorRT engine; its precision was "
                                "fixed when it was built", "set quantize.model_path to the ONNX it was built from "
                                "(or build an int8 graph here and run it with ONNX Runtime)"))
    if not spec.dataset.quant_calibration_dataset.images_dir:
        problems.append(Problem("dataset.quant_calibration_dataset.images_dir", missing_value(),
                                "static int8 needs calibration images",
                                "set it to a folder of stereo pairs (left/ and right/ subfolders, im0/im1, or "
                                "*_left/*_right files)"))
    if Path(q.onnx_file).suffix.lower() != ".onnx":
        problems.append(Problem("quantize.onnx_file", q.onnx_file, "must end in .onnx",
                                "set quantize.onnx_file: model_int8.onnx"))
    return problems
