"""`--parent <MLflow run id | results folder>`: an action finds its input file from the step before it
(TAO's ``parent_job_id``).

What each kind of parent step gives (the file the parent published):

    parent step       evaluate / inference            export                 gen_trt_engine            quantize
    train             <action>.checkpoint = best      export.checkpoint=best  -                        model_path=best
    export            <action>.trt_engine = the ONNX  -                       gen_trt_engine.onnx_file  model_path=ONNX
    gen_trt_engine    <action>.trt_engine = engine    -                       -                         -
    quantize          <action>.trt_engine = int8 ONNX -                       -                         -

"best" is ``<train folder>/dn_model_best.safetensors`` (else ``.pth``), the layout train publishes. For a
deploy evaluate, the checkpoint the graph was exported from (its ONNX/engine sidecar's
``source_checkpoint.path``) also becomes ``<action>.checkpoint`` when it still exists, so evaluate reports the
PyTorch-vs-deploy drift.

A parent is
* a results folder: the action's own folder (``<results_dir>/train``, ``<results_dir>/export``, ...) or the
  results root when exactly one step there can feed this action; its ``status.json`` must end SUCCESS;
* an MLflow run id (32 hex digits) in ``$MLFLOW_TRACKING_URI`` or else the child's store
  (``<results_dir>/mlflow.db``): its tags ``action`` and ``stereo.out_dir`` name the folder, read as above.

Precedence: a ``key=value`` override on the command line beats the parent (a note says so); the parent beats
the spec file (whose paths are usually a template's placeholders). Every problem is a
:class:`~stereo.errors.BadInputError` (exit 2) naming the parent and the fix, raised before torch is imported.
The child's MLflow run nests under the parent's flow run (the parent run's own parent, or the ``flow.json``
of the parent's results root when it names the same store).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from stereo.errors import BadInputError

RUN_ID_RE = re.compile(r"^[0-9a-f]{32}$")
#: parent action -> {child action: [spec keys it fills, first the main one]}
FEEDS: dict[str, dict[str, str]] = {
    "train": {"evaluate": "checkpoint", "inference": "checkpoint", "export": "checkpoint", "quantize": "model_path"},
    "export": {"evaluate": "trt_engine", "inference": "trt_engine", "gen_trt_engine": "onnx_file",
               "quantize": "model_path"},
    "gen_trt_engine": {"evaluate": "trt_engine", "inference": "trt_engine"},
    "quantize": {"evaluate": "trt_engine", "inference": "trt_engine"},
}
PARENT_ACTIONS = tuple(sorted({a for feeds in FEEDS.values() for a in feeds}))
BEST = ("dn_model_best.safetensors", "dn_model_best.pth")


@dataclass(frozen=True)
class Parent:
    """A resolved parent step: its action, folder and the overrides it gives the child."""
    ref: str
    action: str
    folder: Path
    overrides: dict[str, str] = field(default_factory=dict)
    flow_run_id: Optional[str] = None
    notes: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.overrides.items()]


def article(action: str) -> str:
    return f"an {action}" if action[0] in "aeiou" else f"a {action}"


def _fail(ref: str, child: str, why: str, fix: str) -> BadInputError:
    return BadInputError(f"--parent {ref}: {why}; {fix} (depth_net {child} --help)")


def _last_status(folder: Path) -> Optional[str]:
    try:
        lines = [ln for ln in (folder / "status.json").read_text().splitlines() if ln.strip()]
        return json.loads(lines[-1]).get("status") if lines else None
    except (OSError, ValueError, AttributeError):
        return None


def _experiment(folder: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load((folder / "experiment.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _named_output(folder: Path, action: str, key: str, suffix: str) -> Optional[Path]:
    """The file `<action>.<key>` in the folder's experiment.yaml names (relative: under the folder), else the
    only `*<suffix>` in the folder."""
    section = _experiment(folder).get(action)
    value = section.get(key) if isinstance(section, dict) else None
    if value:
        path = Path(str(value)).expanduser()
        path = path if path.is_absolute() else folder / path
        if path.is_file():
            return path
    found = sorted(folder.glob(f"*{suffix}"))
    return found[0] if len(found) == 1 else None


def _kind(folder: Path) -> Optional[str]:
    """Which action wrote `folder`: its name when it is one, else what it holds."""
    if folder.name in FEEDS:
        return folder.name
    if any((folder / b).exists() for b in BEST):
        return "train"
    if list(folder.glob("*.engine")):
        return "gen_trt_engine"
    if list(folder.glob("*.onnx")):
        return "export"
    return None


def _published(folder: Path, action: str) -> Optional[Path]:
    if action == "train":
        return next((folder / b for b in BEST if (folder / b).is_file()), None)
    if action in ("export", "quantize"):
        return _named_output(folder, action, "onnx_file", "_int8.onnx" if action == "quantize" else ".onnx")
    return _named_output(folder, "gen_trt_engine", "trt_engine", ".engine")


def _source_checkpoint(deployed: Path) -> Optional[Path]:
    """The checkpoint an ONNX/engine was built from (its sidecar's checkpoint.path), when it still exists."""
    try:
        data = json.loads(Path(f"{deployed}.json").read_text())
    except (OSError, ValueError):
        return None
    onnx = data.get("onnx") if isinstance(data.get("onnx"), dict) else data  # an engine's sidecar nests it
    ckpt = onnx.get("source_checkpoint") if isinstance(onnx, dict) else None
    path = Path(str(ckpt.get("path", ""))).expanduser() if isinstance(ckpt, dict) and ckpt.get("path") else None
    return path if path is not None and path.is_file() else None


def _step_folder(ref: str, child: str, root: Path) -> tuple[Path, str]:
    kind = _kind(root)
    if kind is not None:
        return root, kind
    candidates = [root / a for a, feeds in FEEDS.items() if child in feeds and (root / a / "status.json").exists()]
    if len(candidates) == 1:
        return candidates[0], candidates[0].name
    if candidates:
        raise _fail(ref, child, f"the results folder holds several steps that can feed {child} "
                    f"({', '.join(c.name for c in candidates)})", f"pass one of them, e.g. --parent {candidates[-1]}")
    example = "export" if child == "gen_trt_engine" else "train"  # only an export feeds gen_trt_engine
    raise _fail(ref, child, "is not the folder of a train, export or gen_trt_engine step",
                f"pass the step's folder (e.g. <results_dir>/{example}) or its MLflow run id")


def _flow_of_folder(folder: Path, store: str) -> Optional[str]:
    try:
        data = json.loads((folder.parent / "flow.json").read_text())
    except (OSError, ValueError):
        return None
    same = not data.get("tracking_uri") or data.get("tracking_uri") == store
    return data.get("run_id") if same and isinstance(data.get("run_id"), str) else None


def _from_run_id(ref: str, child: str, store: str) -> tuple[Path, str, Optional[str]]:
    from stereo.tracking.mlflow_tracker import MlflowTracker, sqlite_path  # light: MLflow is imported on use

    db = sqlite_path(store)
    if db is not None and not db.is_file():
        raise _fail(ref, child, f"no MLflow store at {db} to look the run up in",
                    "set $MLFLOW_TRACKING_URI to the parent's store or pass the parent's results folder")
    run = MlflowTracker(store).get_run(ref)
    if run is None:
        raise _fail(ref, child, f"no such run in the MLflow store {store}",
                    "check the run id, set $MLFLOW_TRACKING_URI to the parent's store, or pass its results folder")
    tags = run.tags
    action, out_dir = tags.get("action", ""), tags.get("stereo.out_dir", "")
    if action not in FEEDS or not out_dir:
        raise _fail(ref, child, f"run {ref} is a {action or tags.get('stereo.kind', 'untagged')!r} run, not a "
                    "train, export or gen_trt_engine step", "pass the run id of the step whose output you want")
    return Path(out_dir), action, tags.get("mlflow.parentRunId")


def resolve_parent(ref: str, child: str, store: str) -> Parent:
    """Resolve `ref` (a results folder or an MLflow run id in `store`) for action `child`; see the module
    docstring. Raises BadInputError with the fix."""
    if child not in PARENT_ACTIONS:
        raise BadInputError(f"--parent is for {', '.join(PARENT_ACTIONS)}; depth_net {child} reads no parent step")
    path = Path(ref).expanduser()
    if path.is_dir():
        folder, action = _step_folder(ref, child, path.resolve())
        flow = _flow_of_folder(folder, store)
    elif RUN_ID_RE.match(ref):
        folder, action, flow = _from_run_id(ref, child, store)
    else:
        raise _fail(ref, child, "is neither an existing results folder nor an MLflow run id (32 hex digits)",
                    "pass the parent step's folder (e.g. <results_dir>/train) or its run id")
    if child not in FEEDS.get(action, {}):
        feeders = [a for a, feeds in FEEDS.items() if child in feeds]
        raise _fail(ref, child, f"is {article(action)} step, which gives {child} nothing",
                    f"pass {' or '.join(article(f) for f in feeders)} step")
    status = _last_status(folder)
    if status != "SUCCESS":
        raise _fail(ref, child, f"its {action} step in {folder} ended {status or 'without a status.json'}",
                    f"rerun depth_net {action} there first")
    published = _published(folder, action)
    if published is None:
        what = {"train": "dn_model_best checkpoint", "export": "ONNX file", "gen_trt_engine": "engine",
                "quantize": "int8 ONNX file"}[action]
        raise _fail(ref, child, f"{folder} holds no {what}", f"rerun depth_net {action} or pass "
                    f"{child}.{FEEDS[action][child]}=<file> instead of --parent")
    key = FEEDS[action][child]
    overrides = {f"{child}.{key}": str(published)}
    if key == "trt_engine" and child == "evaluate":  # the eager reference: drift
        source = _source_checkpoint(published)
        if source is not None:
            overrides[f"{child}.checkpoint"] = str(source)
    return Parent(ref, action, folder, overrides, flow)


def store_for(spec_file: Any, overrides: Sequence[str]) -> str:
    """The tracking URI the child action records to: $MLFLOW_TRACKING_URI, else `<results_dir>/mlflow.db` of
    the spec (a `results_dir=` override wins), read without loading the spec."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    results = next((o.split("=", 1)[1] for o in reversed(list(overrides)) if o.startswith("results_dir=")), None)
    if results is None and isinstance(spec_file, (str, os.PathLike)):
        try:
            data = yaml.safe_load(Path(spec_file).read_text())
            results = data.get("results_dir") if isinstance(data, dict) else None
        except (OSError, yaml.YAMLError):
            results = None
    from stereo.tracking.mlflow_tracker import default_tracking_uri  # MLflow itself is imported lazily

    return default_tracking_uri(Path(str(results or ".")))


def with_parent(parent: Parent, overrides: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the overrides to apply, notes): the parent's first, so the user's own `key=value` wins."""
    given = {o.split("=", 1)[0].strip() for o in overrides if "=" in o}
    notes = [f"--parent {parent.ref}: {k}={v} given on the command line wins over the parent's {v2}"
             for k, v2 in parent.overrides.items() for o in overrides if o.startswith(f"{k}=")
             for v in [o.split("=", 1)[1]] if v != v2]
    mine = [f"{k}={v}" for k, v in parent.overrides.items() if k not in given]
    return mine + list(overrides), notes
