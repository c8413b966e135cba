"""`depth_net convert`: annotation files from a dataset folder, run like every other action.

Where things go (TAO users keep their paths):

* `<results_dir>/train.txt` + `val.txt`, or `test.txt`: the annotation files, where TAO writes them;
  overwritten, and a split file an earlier run left there that this run does not produce is removed;
* `<results_dir>/convert/`: `experiment.yaml` (the resolved flat spec) and `status.json` (STARTED ...
  SUCCESS/FAILURE; `kpi` = `samples/<split>`, the line count of each file written);
* MLflow (`<results_dir>/mlflow.db` unless `$MLFLOW_TRACKING_URI`): one `convert` run with the spec as
  params, the line counts as metrics and the annotation files as artifacts under `annotations/`.

SUCCESS requires every annotation file to exist and be non-empty. The pattern matching, path derivation
and seeded split are stereo.data.convert's.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stereo.actions.runner import EXIT_BAD_INPUT, ActionContext, ActionResult, require_spec, run_spec_action
from stereo.errors import ActionError
from stereo.errors import BadInputError
from stereo.config.convert import ConvertConfig

ACTION = "convert"
ARTIFACT_DIR = "annotations"
log = logging.getLogger(__name__)


@dataclass
class ConvertRunResult:
    status: str
    files: dict[str, str]  # split -> annotation file
    counts: dict[str, int]  # split -> samples (lines)
    columns: int
    removed: list[str] = field(default_factory=list)  # stale split files of an earlier run
    results_dir: str = ""  # the action folder with status.json and experiment.yaml
    kpi: dict[str, float] = field(default_factory=dict)
    message: str = ""


def convert(cfg: ConvertConfig, *, tracker: Any = None, parent_run_id: str | None = None,
            experiment: str = "depth_net", run_name: str | None = None) -> ConvertRunResult:
    """Write the annotation files of `cfg` (see the module docstring); `tracker=False` records nothing."""
    require_spec(cfg, ConvertConfig, ACTION)
    if not cfg.results_dir:
        raise ActionError(ACTION, "bad input", "results_dir is empty; set results_dir in the convert spec to "
                          "the folder where train.txt/val.txt/test.txt are written", EXIT_BAD_INPUT)

    def summarize(res: ConvertRunResult) -> ActionResult:
        return ActionResult("SUCCESS", res.kpi, res.message, [Path(p) for p in res.files.values()])

    return run_spec_action(ACTION, cfg, lambda ctx: _convert(cfg, ctx), summarize, tracker=tracker,
                           parent_run_id=parent_run_id, experiment=experiment, run_name=run_name)


def _convert(cfg: ConvertConfig, ctx: ActionContext) -> ConvertRunResult:
    from stereo.data.convert import write_annotation_files
    from stereo.errors import DataError

    ctx.status.write("RUNNING", f"Matching left images under {cfg.data_root}.")
    try:
        res = write_annotation_files(cfg)
    except DataError as exc:  # a pattern, path or ratio of the user's: bad input, exit code 2
        raise BadInputError(str(exc)) from exc
    for path in res.files.values():
        ctx.log_artifact(path, ARTIFACT_DIR)
    written = ", ".join(f"{p.name} ({res.counts[s]} lines)" for s, p in res.files.items())
    message = f"Wrote {written} with {res.columns} columns to {Path(cfg.results_dir).expanduser().resolve()}."
    if res.removed:
        message += (" Removed " + ", ".join(p.name for p in res.removed) + ", left by an earlier run with another "
                    "split_ratio (this run does not produce them).")
    log.info("convert: %s", message)
    return ConvertRunResult("RUNNING", {s: str(p) for s, p in res.files.items()}, dict(res.counts), res.columns,
                            [str(p) for p in res.removed], str(ctx.dir),
                            {f"samples/{s}": float(n) for s, n in res.counts.items()}, message)
