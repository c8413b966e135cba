"""`automl promote`: the best trial of a sweep (or any training run) becomes a version of a registered model.

    automl promote automl_runs/ffs-20261208 --name ffs-warehouse            # the sweep's best trial
    automl promote 6bbb5af6c0de4f39... --name ffs-warehouse --tracking-uri http://10.0.0.1:5000 --alias champion

Every `depth_net train` run (so every trial) logs its best checkpoint as an MLflow logged model
(stereo/tracking/mlflow_models.py) and tags the run with its ``model_id``; promoting registers that
model as a new version of ``--name`` in the store's model registry, tagged with where it came from (the
sweep folder, the trial, the sweep's parent run) and its metrics, so versions compare side by side in the
UI's Models page. ``--alias`` moves an alias (e.g. ``champion``) onto the new version.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence

from automl.errors import AutomlError, AutomlInputError
from automl.tune.ledger import Ledger
from stereo.tracking import MlflowTracker, check_tracking_uri


class PromoteError(AutomlInputError):
    """Nothing to promote at the target, or no store to find it in; the message says which and the fix."""


@dataclass(frozen=True)
class Promoted:
    name: str
    version: int
    created: bool
    run_id: str
    model_id: str
    tags: Dict[str, str]
    tracking_uri: str

    def line(self) -> str:
        where = f"trial {self.tags['automl.trial_id']} of sweep {self.tags['automl.sweep']}" \
            if "automl.trial_id" in self.tags else f"run {self.run_id}"
        key = self.tags.get("automl.metric", "val/epe")
        value = self.tags.get(f"metric.{key}")
        score = f"{key} {float(value):.4g}" if value is not None else "no score"
        verb = "registered" if self.created else "already registered as"
        text = f"{verb} model {self.name!r} version {self.version} from {where} ({score})"
        if self.tracking_uri.startswith(("http://", "https://")):
            text += f"; UI: {self.tracking_uri.rstrip('/')}/#/models/{self.name}/versions/{self.version}"
        return text


def _sweep_target(folder: Path) -> tuple:
    """(run id, tracking URI, tags) of a sweep folder's best trial."""
    results_file, launch_file = folder / "results.json", folder / "launch.json"
    if not results_file.is_file() or not launch_file.is_file():
        raise PromoteError(f"{folder} is not a finished sweep folder (no results.json / launch.json); give the "
                           "folder `automl run` printed, or a run id with --tracking-uri")
    best = json.loads(results_file.read_text()).get("best") or {}
    if not best.get("run_id"):
        raise PromoteError(f"{folder}: the sweep has no best trial with an MLflow run (see "
                           f"{folder / 'leaderboard.txt'}); nothing to promote")
    launch = json.loads(launch_file.read_text())
    tags = {"automl.sweep": str(folder), "automl.trial_id": str(best["trial_id"]),
            "automl.metric": str(launch.get("metric") or "val/epe")}
    parent = (Ledger(folder).sweep() or {}).get("parent_run_id")
    if parent:
        tags["automl.parent_run_id"] = parent
    if best.get("spec_path"):
        tags["automl.spec"] = str(best["spec_path"])
    return best["run_id"], launch["tracking_uri"], tags


def promote(target: str, name: str, *, tracking_uri: Optional[str] = None, alias: Optional[str] = None) -> Promoted:
    """Register the logged model of `target` (a sweep folder: its best trial; else an MLflow run id)."""
    if not name or "/" in name:
        raise PromoteError(f"--name {name!r}: give a registered model name without '/', e.g. ffs-warehouse")
    folder = Path(target).expanduser()
    if folder.is_dir():
        run_id, uri, tags = _sweep_target(folder.resolve())
        uri = tracking_uri or uri
    else:
        run_id, tags = target, {}
        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            raise PromoteError(f"{target!r} is not a folder, so it is taken as a run id, and no store was given; "
                               "pass --tracking-uri (or set MLFLOW_TRACKING_URI)")
    tracker = MlflowTracker(check_tracking_uri(uri))
    run = tracker.get_run(run_id)
    if run is None:
        raise PromoteError(f"run {run_id} is not in {uri}; check the run id and --tracking-uri")
    model_id = run.tags.get("model_id")
    if not model_id:
        raise PromoteError(f"run {run_id} ({run.name}) logged no model (no model_id tag: only a training run that "
                           "wrote a best checkpoint has one); promote a trial or a depth_net train run")
    tags.update({"source_run_id": run_id, "source_run_name": run.name or ""})
    tags.update({f"metric.{k}": f"{v:.6g}" for k, v in sorted(run.metrics.items()) if k.startswith(("val/", "best/"))})
    description = f"From {tags.get('automl.sweep', 'run ' + run_id)}" + (
        f", trial {tags['automl.trial_id']}" if "automl.trial_id" in tags else "")
    version, created = tracker.register_model(model_id, name, tags=tags, description=description, alias=alias)
    return Promoted(name, version, created, run_id, model_id, tags, uri)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="automl promote", description="Register a sweep's best trial (or a training "
                                "run) as a new version of an MLflow registered model.")
    p.add_argument("target", help="a sweep folder (its best trial) or an MLflow run id")
    p.add_argument("--name", required=True, help="registered model name (created on first use)")
    p.add_argument("--tracking-uri", help="the store (default: the sweep's own; for a run id $MLFLOW_TRACKING_URI)")
    p.add_argument("--alias", help="move this alias (e.g. champion) onto the new version")
    args = p.parse_args(argv)
    try:
        print(promote(args.target, args.name, tracking_uri=args.tracking_uri, alias=args.alias).line())
        return 0
    except (AutomlError, AutomlInputError, ValueError) as exc:
        print(f"automl promote: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, AutomlError) and not isinstance(exc, AutomlInputError) else 2


if __name__ == "__main__":
    sys.exit(main())
