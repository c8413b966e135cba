"""Every check on a typed spec, in one place: per-field metadata (range, enum, `math_cond: / k`) and the
cross-field rules (data sources, model vs checkpoint incl. the FFS bp2 invariants (checkpoint_rules.py),
max_disparity agreement, crops, TensorRT profiles).

Checks append :class:`Problem` objects and never raise, so a user sees all problems at once; the
loader turns error-severity problems into one :class:`SpecError`.
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Iterable, List, Optional

from stereo.config.dataset import DATASET_NAMES, SplitConfig
from stereo.config.errors import WARNING, Problem, missing_value
from stereo.config.checkpoint_rules import check_checkpoints
from stereo.config.source_lines import render_key

SPLITS = ("train_dataset", "val_dataset", "test_dataset", "infer_dataset")
#: TAO's deploy template writes workspace_size in GiB; a MiB value this small is almost surely that mistake
_SMALL_WORKSPACE_MIB = 256


def check_fields(obj: Any, path: tuple = ()) -> List[Problem]:
    """Range, enum and divisibility checks from each field's spec_field metadata, recursively."""
    problems: List[Problem] = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        sub = path + (f.name,)
        if dataclasses.is_dataclass(value):
            problems += check_fields(value, sub)
        elif isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
            for index, item in enumerate(value):
                problems += check_fields(item, sub + (index,))
        elif value is not None:
            problems += _check_value(render_key(sub), value, f.metadata)
    return problems


def _check_value(key: str, value: Any, meta: dict) -> List[Problem]:
    enum = meta.get("enum")
    if enum is not None and value not in enum:
        close = difflib.get_close_matches(str(value), [str(e) for e in enum], n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return [Problem(key, value, f"not one of {', '.join(map(str, enum))}",
                        f"{hint}set {key} to one of {list(enum)}")]
    numbers = value if isinstance(value, list) else [value]
    numbers = [v for v in numbers if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not numbers:
        return []
    low, high = meta.get("minimum"), meta.get("maximum")
    bad = [v for v in numbers if (low is not None and v < low) or (high is not None and v > high)]
    if bad:
        bounds = _bounds(low, high)
        what = "every element must be" if isinstance(value, list) else "must be"
        return [Problem(key, value, f"out of range: {what} {bounds}", f"set {key} {bounds}")]
    step = _divisor(meta.get("math_cond"))
    if step and any(int(v) % step for v in numbers):
        nearest = [max(step, round(v / step) * step) for v in numbers]
        shown = nearest if isinstance(value, list) else nearest[0]
        return [Problem(key, value, f"not a multiple of {step}",
                        f"use the nearest multiples of {step}: {key}: {shown}")]
    return []


def _bounds(low: Any, high: Any) -> str:
    if low is not None and high is not None:
        return f"in [{low}, {high}]"
    return f">= {low}" if low is not None else f"<= {high}"


def _divisor(math_cond: Optional[str]) -> Optional[int]:
    if math_cond and math_cond.strip().startswith("/"):
        return int(math_cond.strip()[1:])
    return None


def check_cross_fields(spec: Any, *, explicit: Iterable[str] = (),
                       action: Optional[str] = None) -> List[Problem]:
    """Rules that relate several fields of an ExperimentSpec. `explicit`: the keys the user wrote (so a
    missing bp2 field is called missing rather than wrong); `action`: also check what that action needs
    (and compare the model only with the checkpoints that action loads)."""
    explicit = set(explicit)
    problems: List[Problem] = []
    for split in SPLITS:
        problems += _check_split(f"dataset.{split}", getattr(spec.dataset, split))
    problems += check_checkpoints(spec, explicit, action)
    if spec.model.max_disparity != spec.dataset.max_disparity:
        problems.append(Problem(
            "model.max_disparity", spec.model.max_disparity,
            f"differs from dataset.max_disparity ({spec.dataset.max_disparity}): the cost volume covers "
            f"{spec.model.max_disparity} px but loss/metrics keep GT up to {spec.dataset.max_disparity} px",
            "set both to the same value unless this is intended", severity=WARNING))
    problems += _check_export(spec.model, spec.export)
    problems += _check_trt(spec.gen_trt_engine)
    if spec.wandb.enable:
        problems.append(Problem("wandb.enable", True, "ignored: stereo-automl never sends data to Weights & "
                                "Biases (runs are tracked with MLflow)", "remove the wandb section or set "
                                "wandb.enable: false", severity=WARNING))
    if action is not None:
        problems += check_action_inputs(spec, action)
    return problems


def _check_split(prefix: str, split: SplitConfig) -> List[Problem]:
    problems: List[Problem] = []
    for index, source in enumerate(split.data_sources):
        key = f"{prefix}.data_sources[{index}]"
        for name in ("dataset_name", "data_file"):
            if not getattr(source, name):
                problems.append(Problem(f"{key}.{name}", missing_value(), f"data source has no {name}",
                                        f"every data_sources entry needs both dataset_name and data_file; "
                                        f"add {name}: ..." + (f" (one of {', '.join(DATASET_NAMES)})"
                                                              if name == "dataset_name" else "")))
        name = source.dataset_name
        if name and name.lower() not in {n.lower() for n in DATASET_NAMES}:
            lowered = [n.lower() for n in DATASET_NAMES]
            close = difflib.get_close_matches(name.lower(), lowered, n=1, cutoff=0.5)
            hint = ""
            if close:
                hint = "did you mean '" + next(n for n in DATASET_NAMES if n.lower() == close[0]) + "'? "
            problems.append(Problem(f"{key}.dataset_name", name, "unknown dataset_name",
                                    f"{hint}use one of {', '.join(DATASET_NAMES)} (case-insensitive)"))
    aug = split.augmentation
    if aug.min_scale > aug.max_scale:
        problems.append(Problem(f"{prefix}.augmentation.min_scale", aug.min_scale,
                                f"greater than max_scale ({aug.max_scale})",
                                "set min_scale <= max_scale (both are log2 scale exponents)"))
    if len(aug.crop_size) != 2:
        problems.append(Problem(f"{prefix}.augmentation.crop_size", aug.crop_size, "expected [height, width]",
                                f"set {prefix}.augmentation.crop_size: [320, 736]"))
    return problems


def _check_export(model: Any, export: Any) -> List[Problem]:
    problems = []
    if export.batch_size == 0:
        problems.append(Problem("export.batch_size", 0, "0 is not a batch size",
                                "use -1 (dynamic batch) or a positive static batch"))
    if export.dynamic_hw and model.model_type != "FastFoundationStereo":
        problems.append(Problem("export.dynamic_hw", True, f"only FastFoundationStereo supports dynamic H/W: "
                                f"{model.model_type}'s DINOv2 position-embedding interpolation is "
                                "constant-folded for the traced size, so the graph would silently "
                                "mis-handle other sizes",
                                f"set export.dynamic_hw: false and export one graph per size (now "
                                f"{export.input_height}x{export.input_width})"))
    return problems


def _check_trt(trt: Any) -> List[Problem]:
    problems = []
    if trt.batch_size == 0:
        problems.append(Problem("gen_trt_engine.batch_size", 0, "0 is not a batch size",
                                "use -1 (dynamic batch) or a positive static batch"))
    t = trt.tensorrt
    problems += _ordered("gen_trt_engine.tensorrt", "batch_size", t.min_batch_size, t.opt_batch_size,
                         t.max_batch_size)
    for dim in ("height", "width"):
        values = [getattr(trt, f"{level}_{dim}") for level in ("min", "opt", "max")]
        if any(v is not None for v in values) and any(v is None for v in values):
            levels = zip(("min", "opt", "max"), values, strict=True)
            unset = [f"gen_trt_engine.{lvl}_{dim}" for lvl, v in levels if v is None]
            problems.append(Problem(f"gen_trt_engine.{unset[0].split('.')[-1]}", missing_value(),
                                    f"a dynamic {dim} profile needs min, opt and max",
                                    f"set {', '.join(unset)} (or remove all three for a static engine)"))
        elif all(v is not None for v in values):
            problems += _ordered("gen_trt_engine", dim, *values)
    if t.workspace_size < _SMALL_WORKSPACE_MIB:
        problems.append(Problem("gen_trt_engine.tensorrt.workspace_size", t.workspace_size,
                                "is in MiB here (TAO treats it as GiB); this is a very small workspace",
                                f"for {t.workspace_size} GiB write {t.workspace_size * 1024}",
                                severity=WARNING))
    return problems


def _ordered(prefix: str, what: str, low: int, opt: int, high: int) -> List[Problem]:
    if low <= opt <= high:
        return []
    return [Problem(f"{prefix}.opt_{what}", opt, f"the profile needs min_{what} <= opt_{what} <= max_{what} "
                    f"(got {low} / {opt} / {high})", f"reorder {prefix}.min/opt/max_{what}")]


def check_action_inputs(spec: Any, action: str) -> List[Problem]:
    """What an action cannot run without (checked only when the action is known)."""
    need: List[Problem] = []

    def require(key: str, value: Any, what: str, fix: str) -> None:
        if not value:
            need.append(Problem(key, missing_value(), f"{action} needs {what}", fix))

    d = spec.dataset
    if action == "train":
        require("dataset.train_dataset.data_sources", d.train_dataset.data_sources, "training data",
                "add dataset.train_dataset.data_sources: [{dataset_name: ..., data_file: ...}]")
    elif action == "evaluate":
        require("dataset.test_dataset.data_sources", d.test_dataset.data_sources, "test data with GT",
                "add dataset.test_dataset.data_sources (3- or 4-column annotation file)")
        e = spec.evaluate
        require("evaluate.checkpoint", e.checkpoint or e.trt_engine or e.predictions_dir,
                "something to score",
                "set evaluate.checkpoint, evaluate.trt_engine or evaluate.predictions_dir")
    elif action == "inference":
        require("dataset.infer_dataset.data_sources", d.infer_dataset.data_sources, "input data",
                "add dataset.infer_dataset.data_sources")
        require("inference.checkpoint", spec.inference.checkpoint or spec.inference.trt_engine,
                "a network", "set inference.checkpoint or inference.trt_engine")
    elif action == "export":
        require("export.checkpoint", spec.export.checkpoint, "a checkpoint", "set export.checkpoint")
        require("export.onnx_file", spec.export.onnx_file, "an output path",
                "set export.onnx_file: model.onnx")
    elif action == "gen_trt_engine":
        require("gen_trt_engine.onnx_file", spec.gen_trt_engine.onnx_file, "an ONNX file",
                "set gen_trt_engine.onnx_file")
    elif action == "quantize":
        from stereo.config.quantize import check_quantize

        need += check_quantize(spec)
    return need
