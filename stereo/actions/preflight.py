"""Pre-flight: what an action needs from the disk, checked before any heavy import, model build or store.

`depth_net <action>` and `depth_net validate --action <action>` run :func:`preflight` right after the spec
loads (torch, Lightning and MLflow are not imported yet), and every library action runs it again before it
opens its tracker (stereo/actions/runner.py), so bad input is one line and exit 2 within a second or two,
and no MLflow store is created for a run that cannot start. What is checked, per action:

* **results folder**: `results_dir` (and `<action>.results_dir`) can be created and written: not under a
  regular file, not on a read-only file system, not without permission.
* **data** (train: train + val splits; evaluate: test; inference: infer): each `data_file` exists and is
  a text file; every line has a column count its `dataset_name` accepts in that split (train/val/test
  need the disparity column); the split has at least one batch; the first `FIRST_LINES` lines of each
  file (every line with `deep=True`, `--deep` on the CLI) have files that exist and decode exactly as
  training will read them (same decoders, same size checks).
* **precision** (train): `fp16` on a machine with no visible NVIDIA GPU (CPU autocast has no fp16).
* **calibration pairs** (quantize): `dataset.quant_calibration_dataset.images_dir` holds at least one pair.
* **checkpoints and other input files** the action reads: they exist; one of our checkpoints has a
  readable sidecar (a corrupt one is an error, never skipped) whose model_type is the spec's.

Each finding is a :class:`~stereo.config.errors.Problem` on the spec key, so the CLI prints it as one
line with the spec's file:line (data problems also name the annotation file:line inside the message).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, List, Optional

from stereo.config.errors import Problem, missing_value

#: lines of each annotation file whose files are opened and decoded (all of them with deep=True)
FIRST_LINES = 2
#: the data splits each action reads
ACTION_SPLITS = {"train": ("train", "val"), "evaluate": ("test",), "inference": ("infer",), "quantize": ("val",)}
#: input files each action reads (dotted spec keys); checkpoints are checked further
ACTION_FILES = {
    "train": ("train.pretrained_model_path", "train.resume_training_checkpoint_path",
              "model.stereo_backbone.depth_anything_v2_pretrained_path",
              "model.stereo_backbone.edgenext_pretrained_path"),
    "evaluate": ("evaluate.checkpoint", "evaluate.trt_engine", "evaluate.predictions_dir"),
    "inference": ("inference.checkpoint", "inference.trt_engine"),
    "export": ("export.checkpoint",),
    "gen_trt_engine": ("gen_trt_engine.onnx_file",),
    "quantize": ("quantize.model_path", "dataset.quant_calibration_dataset.images_dir"),
}
_SIDECAR_SUFFIXES = (".safetensors", ".ckpt")


def preflight(spec: Any, action: Optional[str], *, deep: bool = False) -> List[Problem]:
    """Every problem the disk shows for `action` on `spec` (an ExperimentSpec or a convert spec).
    `action` None (`depth_net validate` without --action): every data split and input file the spec sets."""
    problems = _check_results_dirs(spec, action)
    if action in ("train", None):
        problems += _check_precision(spec)
    if not hasattr(spec, "dataset"):
        return problems
    if action is None:
        keys = list(dict.fromkeys(k for files in ACTION_FILES.values() for k in files))
        splits = [s for s in ("train", "val", "test", "infer")
                  if getattr(spec.dataset, f"{s}_dataset").data_sources]
    else:
        keys, splits = list(ACTION_FILES.get(action, ())), list(ACTION_SPLITS.get(action, ()))
    for key in keys:
        problems += _check_input_file(spec, key)
    for split in splits:
        problems += _check_split(spec, split, deep)
    if action == "quantize" and not problems:
        problems += _check_calibration(spec)
    return problems


def _check_calibration(spec: Any) -> List[Problem]:
    """depth_net quantize: the calibration folder holds at least one stereo pair (stereo.deploy.calibration)."""
    from stereo.deploy.calibration import find_pairs, no_pairs_reason  # torch-free

    folder = spec.dataset.quant_calibration_dataset.images_dir
    if not folder or not Path(folder).expanduser().is_dir() or find_pairs(folder, limit=1):
        return []
    key = "dataset.quant_calibration_dataset.images_dir"
    return [Problem(key, folder, no_pairs_reason(folder), "add stereo pairs there (left/ and right/ subfolders "
                    "with the same file names, im0/im1 per scene, or *_left/*_right files)")]


# --- results folders ------------------------------------------------------------------------------
def _check_results_dirs(spec: Any, action: Optional[str]) -> List[Problem]:
    keys = [("results_dir", getattr(spec, "results_dir", ""))]
    section = getattr(spec, action, None) if action else None
    if section is not None and getattr(section, "results_dir", ""):
        keys.append((f"{action}.results_dir", section.results_dir))
    problems = []
    for key, value in keys:
        if value:
            why = unwritable_reason(Path(str(value)).expanduser())
            if why:
                problems.append(Problem(key, value, f"cannot be written: {why}",
                                        f"set {key} to a folder you can write (on a writable file system)"))
    return problems


def unwritable_reason(folder: Path) -> Optional[str]:
    """Why `folder` cannot be created/written, or None. Nothing is left behind: the probe file is anonymous
    and the folder itself is not created."""
    probe = folder
    while not probe.exists():
        if probe.is_symlink():
            return f"{probe} is a dangling symbolic link"
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        return f"{probe}: {exc.strerror or exc}"
    return None


# --- precision ------------------------------------------------------------------------------------
def gpu_visible() -> bool:
    """A GPU the driver shows to this process (stereo/gpus.py). A True here can still meet a CPU-only torch;
    the trainer checks again (stereo/training/trainer.py)."""
    from stereo.gpus import visible_gpus

    return visible_gpus() > 0


def _check_precision(spec: Any) -> List[Problem]:
    precision = str(_value(spec, "train.precision") or "").lower()
    if precision == "fp16" and not gpu_visible():
        return [Problem("train.precision", "fp16", "needs a CUDA GPU and this machine shows none (CPU autocast "
                        "has no fp16)", "set train.precision=bf16 or fp32 to train on the CPU")]
    return []


# --- input files ----------------------------------------------------------------------------------
def _value(spec: Any, dotted: str) -> Any:
    node = spec
    for part in dotted.split("."):
        node = getattr(node, part, None)
    return node


def _check_input_file(spec: Any, key: str) -> List[Problem]:
    value = _value(spec, key)
    if not value:
        return []
    path = Path(str(value)).expanduser()
    if not path.exists():
        return [Problem(key, value, "does not exist", f"point {key} at an existing file (relative paths "
                        f"resolve against the working directory {os.getcwd()})")]
    if key.endswith("_dir"):
        return [] if path.is_dir() else [Problem(key, value, "is not a folder", f"set {key} to the folder")]
    if key.endswith("_pretrained_path") or key.endswith("onnx_file") or key.endswith("trt_engine"):
        return [] if path.is_file() else [Problem(key, value, "is not a file", f"set {key} to the file itself")]
    if path.is_dir():
        return [Problem(key, value, "is a directory", f"set {key} to the checkpoint file in it "
                        "(e.g. dn_model_best.safetensors)")]
    return _check_sidecar(spec, key, path)


def _check_sidecar(spec: Any, key: str, path: Path) -> List[Problem]:
    """Our checkpoints: the sidecar beside the (link-resolved) weights must be readable, and its model_type
    the spec's (the FFS field-by-field comparison is stereo.config.checkpoint_rules')."""
    if path.suffix not in _SIDECAR_SUFFIXES:
        return []
    target = path.resolve() if path.is_symlink() else path
    sidecar = target.with_suffix(".json")
    if not sidecar.exists():
        return []
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return [Problem(key, str(path), f"its sidecar {sidecar} is corrupt ({_short(exc)}); the weights cannot "
                        "be verified", "re-save the checkpoint, or restore the .json written with it")]
    if not isinstance(data, dict) or data.get("format") != "stereo-automl-checkpoint":
        return []  # someone else's JSON next to the weights
    config = data.get("config")
    want = config.get("model_type") if isinstance(config, dict) else None
    have = getattr(getattr(spec, "model", None), "model_type", None)
    if want and have and want != have:
        return [Problem("model.model_type", have, f"does not match the checkpoint {path.name} ({key}), trained "
                        f"as {want!r} (its sidecar {sidecar.name})",
                        f"set model.model_type: {want}, or point {key} at a {have} checkpoint")]
    return []


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:120]


# --- data -----------------------------------------------------------------------------------------
def _check_split(spec: Any, split: str, deep: bool) -> List[Problem]:
    from stereo.data.annotations import check_files_exist, read_annotation_file
    from stereo.data.catalog import GT_SPLITS, decode_line, source_format, split_columns
    from stereo.errors import DataError

    cfg = getattr(spec.dataset, f"{split}_dataset")
    prefix = f"dataset.{split}_dataset"
    problems: List[Problem] = []
    count = 0
    for index, source in enumerate(cfg.data_sources):
        key = f"{prefix}.data_sources[{index}].data_file"
        fmt = source_format(source.dataset_name)
        if fmt is None or not source.data_file:
            continue  # unknown or missing names are reported by the spec checks
        needs = f"the {split} split needs ground truth" if split in GT_SPLITS else ""
        try:
            lines = read_annotation_file(Path(source.data_file).expanduser(), split_columns(fmt, split),
                                         fmt.name, needs=needs)
            for line in lines if deep else lines[:FIRST_LINES]:
                check_files_exist(line)
                decode_line(line, fmt.read_disparity)
        except DataError as exc:
            problems.append(Problem(key, missing_value(), " ".join(str(exc).split())))
            continue
        count += len(lines)
    if split == "train" and not problems and cfg.data_sources:
        gpus = max(1, int(getattr(spec.train, "num_gpus", 1) or 1))
        per_step = cfg.batch_size * gpus
        if count < per_step:
            problems.append(Problem(f"{prefix}.batch_size", cfg.batch_size,
                                    f"the training data has {count} sample(s), fewer than one batch of "
                                    f"{per_step} (batch_size x num_gpus); an epoch would have no step (the "
                                    "last partial batch is dropped)",
                                    f"set {prefix}.batch_size <= {max(1, count // gpus)} or add training "
                                    "samples"))
    return problems

