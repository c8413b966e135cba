"""int8 as a deploy precision: an fp32 ONNX graph + calibration feeds -> a static int8 QDQ graph.

    from stereo.deploy.calibration import PairFeeds, find_pairs
    feeds = PairFeeds(find_pairs("calib/"), hw=(320, 736))
    info = quantize_onnx("model.onnx", "model_int8.onnx", feeds.reader())
    runner = open_runner(info.onnx_file)          # runs like any exported graph (same inputs/outputs)

    info = int8_graph("model.onnx", "model_int8.onnx", "calib/")   # the same in one call (deploy sweeps)

ONNX Runtime's tooling does the work (`onnxruntime.quantization`): `quant_pre_process` first (symbolic shape
inference and graph optimisation; it folds the computed conv biases into initializers, which roughly
quarters the drift on ffs_tiny), then `quantize_static` in QDQ format with int8 weights (per channel unless
told otherwise) and int8 activations whose ranges come from the calibration feeds. The graph keeps our
input/output contract (RGB 0..255 in, disparity in px out), so every deploy path opens it unchanged.

The sidecar `<int8>.json` is the fp32 graph's sidecar (model config, valid_iters, source checkpoint) with
`precision: int8`, the new file's sha256 and a `quantization` block (method, options, the fp32 graph and its
sha256, how many nodes became int8).
"""
from __future__ import annotations

import fnmatch
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: precisions a deployed ONNX graph can have here (TensorRT engines: stereo.deploy.tensorrt)
PRECISIONS = ("fp32", "int8")
METHODS = ("minmax", "entropy", "percentile")


@dataclass
class QuantizeInfo:
    onnx_file: Path
    sidecar_file: Path
    seconds: float
    fp32_bytes: int
    int8_bytes: int
    quantized_ops: dict[str, int] = field(default_factory=dict)  # weight layers with int8 weights, by kind
    excluded_nodes: list[str] = field(default_factory=list)
    preprocessed: str = "full"  # quant_pre_process level: full, optimised or '' (none)
    sidecar: dict[str, Any] = field(default_factory=dict)


def _calibration_method(method: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    table = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
             "percentile": CalibrationMethod.Percentile}
    if method not in table:
        raise ValueError(f"calibration method {method!r} is not one of {', '.join(METHODS)}")
    return table[method]


def matching_nodes(onnx_file: str | os.PathLike, patterns: Sequence[str]) -> list[str]:
    """Node names of the graph matching any fnmatch pattern; a pattern that matches nothing raises."""
    import onnx

    nodes = [n for n in onnx.load(str(onnx_file), load_external_data=False).graph.node if n.name]
    names = [n.name for n in nodes]
    chosen: list[str] = []
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            example = ", ".join([n.name for n in nodes if n.op_type in WEIGHT_OPS][:3] or names[:3])
            raise ValueError(f"quantize.skip_names pattern {pattern!r} matches no node of {Path(onnx_file).name} "
                             f"(node names look like {example}); fix the pattern or remove it")
        chosen += [n for n in hits if n not in chosen]
    return chosen


def _static_inputs(onnx_file: Path) -> bool:
    import onnx

    graph = onnx.load(str(onnx_file), load_external_data=False).graph
    return all(d.HasField("dim_value") for i in graph.input for d in i.type.tensor_type.shape.dim)


def _preprocess(src: Path, dst: Path) -> str:
    """ONNX Runtime's quant_pre_process: 'full' (symbolic shape inference + optimisation) on a static graph,
    else 'optimised' (the symbolic inference cannot finish on a dynamic-batch graph; the optimisation alone
    still folds the biases), else '' when both fail."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    errors = []
    levels = (("full", False), ("optimised", True)) if _static_inputs(src) else (("optimised", True),)
    for level, skip_symbolic in levels:
        here = os.getcwd()
        try:  # a failed symbolic inference saves sym_shape_infer_temp.onnx + *.data into the working directory
            os.chdir(dst.parent)
            quant_pre_process(str(src.resolve()), str(dst), skip_symbolic_shape=skip_symbolic)
            return level
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types; the next level may work
            errors.append(" ".join(str(exc).split())[:160])
        finally:
            os.chdir(here)
    log.warning("ONNX Runtime's quant_pre_process failed on %s (%s); quantizing the graph as exported (more "
                "drift)", src.name, "; ".join(errors))
    return ""


class _QuietOnnxRuntime(logging.Filter):
    """ONNX Runtime's quantizer logs hundreds of notes on the root logger ('Created a copy of bias input',
    per-channel axis notes on norm weights); they are counted, not printed (the sidecar has the summary)."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "root" and "onnxruntime" in record.pathname.replace(os.sep, "/"):
            self.dropped += 1
            return False
        return True


WEIGHT_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


def quantized_ops(onnx_file: str | os.PathLike) -> dict[str, int]:
    """How many weight layers read int8 weights, by kind: 'Conv2d', 'Conv3d', 'ConvTranspose3d', 'MatMul', ...
    (a layer whose weight input is a DequantizeLinear of an initializer; the rank of that initializer gives
    the convolution's dimensionality)."""
    import onnx

    graph = onnx.load(str(onnx_file)).graph
    ranks = {i.name: len(i.dims) for i in graph.initializer}
    int8_weights = {n.output[0]: ranks[n.input[0]] for n in graph.node
                    if n.op_type == "DequantizeLinear" and n.input[0] in ranks}
    counts: Counter = Counter()
    for node in graph.node:
        if node.op_type in WEIGHT_OPS and len(node.input) > 1 and node.input[1] in int8_weights:
            rank = int8_weights[node.input[1]]
            counts[f"{node.op_type}{rank - 2}d" if node.op_type.startswith("Conv") else node.op_type] += 1
    return dict(sorted(counts.items()))


def conv_nodes(onnx_file: str | os.PathLike, dims: int = 3) -> list[str]:
    """Names of the Conv/ConvTranspose nodes with `dims`-D kernels (3: the cost volume's convolutions), e.g. to
    keep them in fp32 with skip_names."""
    import onnx

    graph = onnx.load(str(onnx_file)).graph
    ranks = {i.name: len(i.dims) for i in graph.initializer}
    return [n.name for n in graph.node if n.op_type in ("Conv", "ConvTranspose") and len(n.input) > 1
            and ranks.get(n.input[1]) == dims + 2]


def quantize_onnx(fp32_onnx: str | os.PathLike, int8_onnx: str | os.PathLike, reader: Any, *,
                  method: str = "minmax", per_channel: bool = True, reduce_range: bool = False,
                  activation_symmetric: bool = False, weight_symmetric: bool = True,
                  skip_names: Sequence[str] = (), preprocess: bool = True) -> QuantizeInfo:
    """Write the static int8 QDQ version of `fp32_onnx` to `int8_onnx` (replaced atomically) and its sidecar.

    `reader`: an `onnxruntime.quantization.CalibrationDataReader` yielding `{'left_image', 'right_image'}`
    feeds at the graph's input shape (stereo.deploy.calibration.PairFeeds.reader()). `skip_names`: fnmatch
    patterns of node names kept in fp32.
    """
    from stereo.atomic_io import atomic_write_json
    from stereo.deploy.export import sidecar_path

    src, out = Path(fp32_onnx), Path(int8_onnx)
    if not src.is_file():
        raise FileNotFoundError(f"fp32 graph {str(src)!r} does not exist; run depth_net export first")
    if src.resolve() == out.resolve():
        raise ValueError(f"the int8 graph would overwrite its fp32 source {src}; choose another output name")
    calibrate = _calibration_method(method)
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    quiet = _QuietOnnxRuntime()
    logging.getLogger().addFilter(quiet)
    try:
        done, excluded = _quantize(src, out, reader, calibrate, per_channel, reduce_range, activation_symmetric,
                                   weight_symmetric, skip_names, preprocess)
    finally:
        logging.getLogger().removeFilter(quiet)
    log.debug("ONNX Runtime's quantizer logged %d notes on the root logger (not shown)", quiet.dropped)
    seconds = time.perf_counter() - start
    ops = quantized_ops(out)
    if not ops:
        raise RuntimeError(f"ONNX Runtime quantized no node of {src.name}; it has no Conv/MatMul, or "
                           "quantize.skip_names excludes them all")
    sidecar = int8_sidecar(src, out, method=method, seconds=seconds, ops=ops, excluded=excluded,
                           options={"per_channel": per_channel, "reduce_range": reduce_range,
                                    "activation_symmetric": activation_symmetric,
                                    "weight_symmetric": weight_symmetric, "preprocessed": done})
    atomic_write_json(sidecar_path(out), sidecar)
    return QuantizeInfo(out, sidecar_path(out), seconds, src.stat().st_size, out.stat().st_size, ops, excluded,
                        done, sidecar)


def _quantize(src: Path, out: Path, reader: Any, calibrate: Any, per_channel: bool, reduce_range: bool,
              activation_symmetric: bool, weight_symmetric: bool, skip_names: Sequence[str],
              preprocess: bool) -> tuple[str, list[str]]:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from stereo.atomic_io import atomic_path

    with tempfile.TemporaryDirectory(prefix="quantize-", dir=out.parent) as work:
        graph = Path(work).resolve() / "preprocessed.onnx"
        done = _preprocess(src, graph) if preprocess else ""
        graph = graph if done else src
        excluded = matching_nodes(graph, skip_names) if skip_names else []
        with atomic_path(out) as tmp:
            quantize_static(str(graph), str(tmp), reader, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            reduce_range=reduce_range, activation_type=QuantType.QInt8,
                            weight_type=QuantType.QInt8, calibrate_method=calibrate, nodes_to_exclude=excluded,
                            extra_options={"ActivationSymmetric": activation_symmetric,
                                           "WeightSymmetric": weight_symmetric},
                            calibration_providers=["CPUExecutionProvider"])
    return done, excluded


def input_hw(onnx_file: str | os.PathLike) -> tuple[int, int] | None:
    """The graph's static input (H, W), or None when they are dynamic."""
    import onnx

    dims = onnx.load(str(onnx_file), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    h, w = dims[2], dims[3]
    return (h.dim_value, w.dim_value) if h.HasField("dim_value") and w.HasField("dim_value") else None


def int8_graph(fp32_onnx: str | os.PathLike, int8_onnx: str | os.PathLike, images_dir: str | os.PathLike, *,
               max_images: int = 32, hw: tuple[int, int] | None = None, **options: Any) -> QuantizeInfo:
    """The int8 precision of a deployed graph in one call (what a deploy sweep needs): calibration pairs from
    `images_dir` (stereo.deploy.calibration), fitted to the graph's input size (`hw` for a dynamic-H/W graph),
    then :func:`quantize_onnx` with `options` (method, per_channel, skip_names, ...)."""
    from stereo.deploy.calibration import PairFeeds, find_pairs, no_pairs_reason

    size = input_hw(fp32_onnx) or hw
    if size is None:
        raise ValueError(f"{Path(fp32_onnx).name} has dynamic height/width; pass hw=(H, W) to calibrate at")
    pairs = find_pairs(images_dir, limit=max_images)
    if not pairs:
        raise ValueError(f"calibration folder {str(images_dir)!r} {no_pairs_reason(images_dir)}")
    return quantize_onnx(fp32_onnx, int8_onnx, PairFeeds(pairs, size).reader(), **options)


def int8_sidecar(src: Path, out: Path, *, method: str, seconds: float, ops: dict[str, int],
                 excluded: list[str], options: dict[str, Any]) -> dict[str, Any]:
    """The fp32 graph's sidecar (or a minimal one for a foreign graph) describing the int8 file."""
    import onnxruntime

    from stereo.checkpoints import checkpoint_sha256
    from stereo.deploy.export import SIDECAR_FORMAT, SIDECAR_FORMAT_VERSION, read_onnx_sidecar

    base = read_onnx_sidecar(src) or {"format": SIDECAR_FORMAT, "format_version": SIDECAR_FORMAT_VERSION}
    return {**base, "onnx_file": out.name, "onnx_sha256": checkpoint_sha256(out),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "precision": "int8",
            "parity": None,
            "quantization": {"tool": f"onnxruntime.quantization {onnxruntime.__version__} (quantize_static)",
                             "format": "QDQ", "weights": "int8", "activations": "int8",
                             "calibration_method": method, **options, "seconds": round(seconds, 3),
                             "quantized_ops": ops, "excluded_nodes": excluded,
                             "fp32_onnx": str(src.resolve()), "fp32_sha256": checkpoint_sha256(src)}}


def graph_precision(onnx_file: str | os.PathLike) -> str:
    """'int8' for a graph quantize_onnx wrote (its sidecar says so), else 'fp32'."""
    from stereo.deploy.export import read_onnx_sidecar

    sidecar = read_onnx_sidecar(onnx_file) or {}
    return str(sidecar.get("precision") or "fp32")
