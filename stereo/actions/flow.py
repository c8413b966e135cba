"""One parent run per flow: the `depth_net` actions of one job (train -> evaluate -> inference -> export ->
gen_trt_engine -> deploy evaluate/inference) nest under one MLflow run, so the UI shows them together.

Which flow an action joins (stereo/cli.py asks :func:`flow_parent` before it runs the action):

1. ``$STEREO_FLOW_RUN_ID``: a run id the user (or a pipeline) chose, e.g. to group jobs whose results
   folders differ but share one store (``$MLFLOW_TRACKING_URI``);
2. the flow of the checkpoint the action reads (``<action>.checkpoint``): the training run that wrote it
   (its sidecar's run id, else the train run tagged with its SHA-256; stereo.deploy.drift.find_training_run)
   and that run's flow parent, when it is in the same store;
3. the results folder's flow: ``<results_dir>/flow.json`` names it;
4. else a new flow run, ``flow <results folder name>`` (tag ``stereo.kind=flow``), recorded in
   ``<results_dir>/flow.json`` for the next action.

A library call (``train(spec)``, a sweep's trials) nests only where its caller says (``parent_run_id``).
Tracking problems never stop an action: the flow is then skipped with a warning.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Optional

FLOW_ENV = "STEREO_FLOW_RUN_ID"
FLOW_FILE = "flow.json"
KIND_TAG, FLOW_KIND = "stereo.kind", "flow"
#: the actions that join a flow (convert and init-checkpoint take other specs and feed many flows)
FLOW_ACTIONS = ("train", "evaluate", "inference", "export", "gen_trt_engine", "quantize")
EXPERIMENT = "depth_net"


def _results_dir(spec: Any, action: str) -> Path:
    from stereo.actions.layout import action_dir

    if spec.results_dir:
        return Path(spec.results_dir).expanduser().resolve()
    section = getattr(spec, action, None)
    return action_dir(None, action, getattr(section, "results_dir", None) or None).parent


def _checkpoint_flow(tracker: Any, spec: Any, action: str) -> Optional[str]:
    from stereo.deploy.drift import find_training_run
    from stereo.checkpoints import checkpoint_sha256

    path = getattr(getattr(spec, action, None), "checkpoint", "") or ""
    if not path or not Path(path).expanduser().is_file():
        return None
    train_id = find_training_run(tracker, path, checkpoint_sha256(Path(path).expanduser()), EXPERIMENT)
    if train_id is None:
        return None
    runs = {r.run_id: r for r in tracker.find_runs(EXPERIMENT)}
    parent = runs.get(train_id).parent_run_id if train_id in runs else None
    return parent if parent in runs and runs[parent].tags.get(KIND_TAG) == FLOW_KIND else None


def _recorded_flow(tracker: Any, folder: Path) -> Optional[str]:
    try:
        run_id = json.loads((folder / FLOW_FILE).read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None
    known = tracker.find_runs(EXPERIMENT, tags={KIND_TAG: FLOW_KIND, "stereo.results_dir": str(folder)})
    return run_id if any(r.run_id == run_id for r in known) else None


def _new_flow(tracker: Any, folder: Path) -> str:
    from stereo.atomic_io import atomic_write_json

    run = tracker.start_run(f"flow {folder.name}", experiment=EXPERIMENT,
                            tags={KIND_TAG: FLOW_KIND, "stereo.results_dir": str(folder)})
    tracker.set_note(run, f"The `depth_net` actions run on results folder `{folder}` (train, evaluate, "
                          "inference, export, deploy), nested below. stereo/actions/flow.py says how they join.")
    tracker.end_run(run, "FINISHED")  # a container: its children carry the statuses
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / FLOW_FILE, {"run_id": run.run_id, "tracking_uri": getattr(tracker, "tracking_uri", "")})
    return run.run_id


def flow_parent(spec: Any, action: str, tracker: Any = None) -> Optional[str]:
    """The flow run `action` on `spec` nests under (see the module docstring); None outside a flow."""
    if action not in FLOW_ACTIONS:
        return None
    if os.environ.get(FLOW_ENV):
        return os.environ[FLOW_ENV]
    try:
        from stereo.actions.runner import action_tracker, check_or_raise

        check_or_raise(spec, action)  # bad input: no store, no flow run (the action reports the error)
        tracker = action_tracker(spec, action, tracker)
        if tracker is None:
            return None
        folder = _results_dir(spec, action)
        return _checkpoint_flow(tracker, spec, action) or _recorded_flow(tracker, folder) or _new_flow(tracker, folder)
    except Exception as exc:  # noqa: BLE001 - grouping runs must never stop the action
        from stereo.errors import BadInputError

        if isinstance(exc, BadInputError):
            return None  # the action itself raises it, with its exit code
        warnings.warn(f"{action}: runs not grouped into a flow ({type(exc).__name__}: {exc})", RuntimeWarning,
                      stacklevel=2)
        return None


def folder_flow(folder: Path, tracker: Any = None) -> Optional[str]:
    """The flow run of results folder `folder` (its flow.json, else a new one): what `depth_net flow` nests
    every step under. None when tracking is unavailable (a warning says why)."""
    from stereo.tracking.mlflow_tracker import default_tracker

    try:
        tracker = default_tracker(folder, tracker)
        if tracker is None:
            return None
        folder = Path(folder).expanduser().resolve()
        return _recorded_flow(tracker, folder) or _new_flow(tracker, folder)
    except Exception as exc:  # noqa: BLE001 - grouping runs must never stop the flow
        warnings.warn(f"depth_net flow: steps not grouped into a flow run ({type(exc).__name__}: {exc})",
                      RuntimeWarning, stacklevel=2)
        return None
