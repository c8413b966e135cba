"""ONNX export of a stereo network plus the JSON sidecar that says what the graph expects.

Graph contract (TAO depth_net names): inputs `left_image`, `right_image` float32 [B,3,H,W] holding
**RGB 0..255** (ImageNet normalisation happens inside the graph, unlike TAO's graphs), output
`disparity` float32 [B,1,H,W] in pixels at the input resolution. The GRU iteration count is baked in
(`valid_iters`, test mode; when not given, the model config's own `valid_iters`, so an FFS bp2 graph runs
its 8 iterations, not TAO's export default of 22; the sidecar records the value and where it came from).
Three shape modes:

    static          B, H, W fixed (export.batch_size >= 1)
    dynamic_batch   axis 0 'batch_size' (export.batch_size: -1; traced with batch 1)
    dynamic_hw      axes 2/3 'height'/'width' too (export.dynamic_hw: true; FastFoundationStereo only)

We use the TorchScript-based exporter (`dynamo=False`): a tiny model exports in about a second and it
needs no onnxscript; the graph is fp32 whatever `model.mixed_precision` says. H and W must be multiples
of 32 so the network's own pad-to-32 step is a no-op in the graph (its amount would otherwise be traced
as a constant of the export size).

The sidecar is `<onnx_file>.json` (not `<stem>.json`, which would collide with a checkpoint sidecar).
"""
from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from stereo.deploy.engine_io import MULTIPLE, nearest_multiples
from stereo.deploy.runtime import INPUT_NAMES, OUTPUT_NAME
from stereo.errors import ExportError
from stereo.models.base import IMAGENET_MEAN, IMAGENET_STD

SIDECAR_FORMAT = "stereo-automl-onnx"
SIDECAR_FORMAT_VERSION = 1
SHAPE_MODES = ("static", "dynamic_batch", "dynamic_hw")
_FFS = "FastFoundationStereo"


@dataclass
class ExportInfo:
    onnx_file: Path
    sidecar_file: Path
    shape_mode: str
    seconds: float
    max_abs_diff: float | None = None  # ONNX Runtime CPU vs PyTorch eager on the trace inputs, px
    sidecar: dict[str, Any] = field(default_factory=dict)


class _TestModeGraph(torch.nn.Module):
    """forward(left, right) -> disparity with `iters` and test mode baked in (what the graph records)."""

    def __init__(self, model: torch.nn.Module, iters: int):
        super().__init__()
        self.model, self.iters = model, int(iters)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return self.model(left, right, iters=self.iters, test_mode=True)


def sidecar_path(onnx_file: str | os.PathLike) -> Path:
    return Path(f"{onnx_file}.json")


def shape_mode(batch_size: int, dynamic_hw: bool) -> str:
    return "dynamic_hw" if dynamic_hw else ("dynamic_batch" if batch_size == -1 else "static")


def check_export_request(model_type: str, height: int, width: int, batch_size: int, dynamic_hw: bool,
                         onnx_file: str | os.PathLike, overwrite: bool) -> None:
    """Every refusal before any tracing: sizes, modes, an existing output file."""
    for key, value in (("export.input_height", height), ("export.input_width", width)):
        if value < MULTIPLE or value % MULTIPLE:
            raise ExportError(f"{key}={value} is not a multiple of {MULTIPLE} (>= {MULTIPLE}); use "
                              f"{nearest_multiples(value)}, and pad or resize images to it at deploy time")
    if batch_size == 0 or batch_size < -1:
        raise ExportError(f"export.batch_size={batch_size}; use -1 (dynamic batch) or a static batch >= 1")
    if dynamic_hw and model_type != _FFS:
        raise ExportError(f"export.dynamic_hw=true is supported for FastFoundationStereo only, not {model_type}: "
                          "FoundationStereo's DINOv2 interpolates its position embedding to the traced size and "
                          "the exporter folds that into a constant, so the graph would be wrong at any other "
                          f"size. Set export.dynamic_hw: false and export at the deploy size ({height}x{width}).")
    if not str(onnx_file):
        raise ExportError("export.onnx_file is empty; set it, e.g. export.onnx_file: model.onnx")
    path = Path(onnx_file)
    if path.suffix.lower() != ".onnx":
        raise ExportError(f"export.onnx_file={str(path)!r} must end in .onnx")
    if path.exists() and not overwrite:
        raise ExportError(f"export.onnx_file={str(path)!r} already exists; set export.overwrite: true to "
                          "replace it or choose another path")


def _dynamic_axes(mode: str) -> dict[str, dict[int, str]] | None:
    if mode == "static":
        return None
    axes = {0: "batch_size"} if mode == "dynamic_batch" else {0: "batch_size", 2: "height", 3: "width"}
    return {name: dict(axes) for name in (*INPUT_NAMES, OUTPUT_NAME)}


def trace_inputs(batch: int, height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded RGB 0..255 image pair used to trace the graph and to check it afterwards."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 3, height, width, generator=g) * 255,
            torch.rand(batch, 3, height, width, generator=g) * 255)


def export_onnx(model: torch.nn.Module, model_config: Any, onnx_file: str | os.PathLike, *, height: int,
                width: int, batch_size: int = -1, dynamic_hw: bool = False, valid_iters: int | None = None,
                opset: int = 17, overwrite: bool = False, checkpoint: Mapping[str, Any] | None = None,
                device: str = "cpu", verify: bool = True, verbose: bool = False) -> ExportInfo:
    """Export `model` (built from `model_config`) to `onnx_file` and write its sidecar.

    `checkpoint`: provenance for the sidecar (`path`, `sha256`, `meta`). `verify`: run the graph once
    with ONNX Runtime (CPU) on the trace inputs and record max |Δdisp| against PyTorch eager.
    """
    import onnx

    model_type = getattr(model_config, "model_type", type(model).__name__)
    check_export_request(model_type, height, width, batch_size, dynamic_hw, onnx_file, overwrite)
    mode = shape_mode(batch_size, dynamic_hw)
    iters = int(valid_iters if valid_iters is not None else model_config.valid_iters)
    if iters < 1:
        raise ExportError(f"export.valid_iters={iters}; the graph needs >= 1 GRU iteration (FFS bp2: 8)")
    onnx_file = Path(onnx_file)
    onnx_file.parent.mkdir(parents=True, exist_ok=True)
    graph = _TestModeGraph(model, iters).eval().to(device)
    left, right = trace_inputs(1 if batch_size == -1 else batch_size, height, width)
    start = time.perf_counter()
    from stereo.atomic_io import atomic_path

    with atomic_path(onnx_file) as tmp, torch.no_grad(), warnings.catch_warnings():
        # the tracer warns about every shape-derived Python value; the pad-to-32 one is why H, W % 32 == 0
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (left.to(device), right.to(device)), str(tmp), input_names=list(INPUT_NAMES),
                          output_names=[OUTPUT_NAME], opset_version=int(opset), dynamic_axes=_dynamic_axes(mode),
                          do_constant_folding=True, dynamo=False, verbose=verbose)
        onnx.checker.check_model(str(tmp))
    seconds = time.perf_counter() - start
    graph.eval()  # torch.onnx.export restores the wrapper's previous mode; make sure it stays in eval
    diff = None
    if verify:
        from stereo.deploy.onnxruntime import OrtRunner

        with torch.no_grad():
            ref = graph(left.to(device), right.to(device)).float().cpu()
        diff = float((OrtRunner(onnx_file, device="cpu")(left, right) - ref).abs().max())
    sidecar = build_sidecar(onnx_file, model_config, mode=mode, height=height, width=width,
                            batch_size=batch_size, iters=iters, opset=opset, checkpoint=checkpoint,
                            max_abs_diff=diff)
    sidecar["valid_iters_source"] = "export.valid_iters" if valid_iters is not None else "model.valid_iters"
    from stereo.atomic_io import atomic_write_json

    atomic_write_json(sidecar_path(onnx_file), sidecar)
    return ExportInfo(onnx_file, sidecar_path(onnx_file), mode, seconds, diff, sidecar)


def build_sidecar(onnx_file: Path, model_config: Any, *, mode: str, height: int, width: int, batch_size: int,
                  iters: int, opset: int, checkpoint: Mapping[str, Any] | None, max_abs_diff: float | None
                  ) -> dict[str, Any]:
    import onnx

    from stereo.checkpoints import checkpoint_sha256

    b = "batch_size" if batch_size == -1 else batch_size
    h, w = ("height", "width") if mode == "dynamic_hw" else (height, width)
    config = dataclasses.asdict(model_config) if dataclasses.is_dataclass(model_config) else dict(model_config)
    ckpt = dict(checkpoint or {})
    return {
        "format": SIDECAR_FORMAT, "format_version": SIDECAR_FORMAT_VERSION,
        "onnx_file": onnx_file.name, "onnx_sha256": checkpoint_sha256(onnx_file),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "opset_version": int(opset), "shape_mode": mode, "traced_shape": [1 if batch_size == -1 else batch_size,
                                                                            3, height, width],
        "inputs": [{"name": n, "shape": [b, 3, h, w], "dtype": "float32"} for n in INPUT_NAMES],
        "outputs": [{"name": OUTPUT_NAME, "shape": [b, 1, h, w], "dtype": "float32", "unit": "px"}],
        "input_normalisation": {
            "expects": "RGB 0..255 float32, NCHW", "normalised_inside_graph": True,
            "inside_graph": "(x / 255 - mean) / std", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
            "note": "do not normalise before feeding the graph (TAO's graphs expect normalised input; ours do not)"},
        "size_multiple": MULTIPLE, "valid_iters": int(iters),
        "max_disparity": config.get("max_disparity"), "model_type": config.get("model_type"),
        "model_config": config,
        "source_checkpoint": {"path": str(ckpt.get("path", "")), "sha256": ckpt.get("sha256", ""),
                              "mlflow_run_id": _run_id(ckpt.get("meta") or {})},
        "parity": ({"max_abs_diff_px": max_abs_diff, "against": "PyTorch eager, fp32",
                    "runtime": "onnxruntime CPUExecutionProvider", "input": "seeded random RGB, traced shape"}
                   if max_abs_diff is not None else None),
        "exporter": "torch.onnx.export (TorchScript-based, dynamo=False)",
        "torch_version": torch.__version__, "onnx_version": onnx.__version__,
    }


def _run_id(meta: Mapping[str, Any]) -> str:
    for key in ("mlflow_run_id", "run_id"):
        if isinstance(meta.get(key), str) and meta[key]:
            return meta[key]
    return ""


def read_onnx_sidecar(onnx_file: str | os.PathLike) -> dict[str, Any] | None:
    """The sidecar of `onnx_file`, or None when there is none (a foreign ONNX)."""
    import json

    path = sidecar_path(onnx_file)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ExportError(f"{path}: not valid JSON ({exc}); re-export with depth_net export") from None
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ExportError(f"{path}: not a stereo-automl ONNX sidecar (format {found!r}); re-export it")
    return data
