"""Links into the MLflow UI that open a finished sweep at a glance, and the view state behind them.

MLflow 3's experiment page reads two kinds of state from its URL (read in its JS bundle,
``mlflow/server/js/build``, MLflow 3.17):

* search facets as query parameters: ``searchFilter``, ``orderByKey``, ``orderByAsc``, ``startTime``,
  ``lifecycleFilter``, ``modelVersionFilter``, ``datasetsFilter`` -- but no columns: which columns show
  (``selectedColumns``) is UI state kept in the browser's local storage;
* ``workflowType=machine_learning``: the sidebar's "Model training" workflow (default: GenAI);
* ``viewStateShareKey=<key>``: a *shared view*, the page's whole state (facets *and* UI state such as
  ``selectedColumns``) stored as JSON in the experiment tag ``mlflow.sharedViewState.<key>`` (what the UI's
  own "Share" button writes). The page ignores it when the URL also carries a facet.

So at the end of a sweep :func:`publish_sweep_view` writes a shared view for it (key = the parent run id):
only the sweep's trials (``searchFilter`` on ``mlflow.parentRunId``), sorted by the value each trial is
ranked by (``best/val/<metric>``, ascending for ``--mode min``), with the sampled params, that value, the
last ``val/<metric>`` and the trial's outcome as visible columns. The Dataset and Models columns (on by
default in every other view) are left out here: at 1920 px with MLflow's assistant panel open, they push
the sampled params off screen. :func:`compare_path` opens MLflow's compare
view (parallel coordinates, scatter, params side by side) of the top trials.

"""
from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from automl.tune.ledger import best_key

DEFAULT_UI_URL = "http://127.0.0.1:5000"  # what `automl ui` serves by default (automl/ui/server.py DEFAULT_PORT)
SHARED_VIEW_TAG = "mlflow.sharedViewState."
OUTCOME_COLUMN = "automl.outcome"  # completed / stopped / failed: an early stop is not a failure
TOP_TRIALS = 5  # how many of the best trials the compare link opens
WORKFLOW = "machine_learning"  # the UI's workflow switch ("GenAI" | "Model training"), as a URL parameter


@dataclass(frozen=True)
class SweepLinks:
    experiment_id: str
    base: str  # the UI's address, e.g. http://127.0.0.1:5000
    runs_path: str  # "#/experiments/<id>?viewStateShareKey=<key>": the sweep's shared view
    compare_path: Optional[str]  # "#/compare-runs?...": the top trials (None: no trial was scored)

    @property
    def runs(self) -> str:
        return f"{self.base.rstrip('/')}/{self.runs_path}"

    @property
    def compare(self) -> Optional[str]:
        return f"{self.base.rstrip('/')}/{self.compare_path}" if self.compare_path else None


def column(kind: str, key: str) -> str:
    """The UI's column / sort key: ``params.`train.optim.lr```, ``metrics.`best/val/epe```."""
    return f"{kind}.`{key}`"


def sweep_view_state(parent_run_id: str, sampled: Sequence[str], metric: str, mode: str) -> dict:
    """The shared-view JSON (search facets + UI state) for one sweep's trials."""
    ranked = best_key(metric)
    last = "val/" + str(metric).rsplit("/", 1)[-1]
    return {"searchFilter": f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
            "orderByKey": column("metrics", ranked), "orderByAsc": mode == "min",
            "selectedColumns": [column("metrics", ranked), *(column("params", p) for p in sampled),
                                column("metrics", last), column("tags", OUTCOME_COLUMN)]}


def experiment_path(experiment_id: str, share_key: Optional[str] = None) -> str:
    """The UI route (after the host) of an experiment's runs table in the training ("Model training")
    workflow, in a shared view when `share_key` is given. The ``/runs`` tab and ``workflowType`` are
    explicit: a fresh browser otherwise lands on the GenAI overview (the UI's default workflow, kept in
    local storage) and the redirect from there drops the shared view."""
    query = f"viewStateShareKey={share_key}&" if share_key else ""
    return f"#/experiments/{experiment_id}/runs?{query}workflowType={WORKFLOW}"


def compare_path(experiment_id: str, run_ids: Sequence[str]) -> str:
    """The UI route of the compare view (``runs`` and ``experiments`` are JSON lists, URL-quoted)."""
    def as_json(items) -> str:
        return urllib.parse.quote(json.dumps(list(items), separators=(",", ":")))

    return (f"#/compare-runs?runs={as_json(run_ids)}&experiments={as_json([experiment_id])}"
            f"&workflowType={WORKFLOW}")


def top_run_ids(history: Sequence[dict], mode: str, n: int = TOP_TRIALS) -> list:
    """Run ids of the `n` best scored trials (results.json ``history`` rows: metric, run_id)."""
    scored = [h for h in history if h.get("metric") is not None and h.get("run_id")]
    scored.sort(key=lambda h: h["metric"], reverse=mode == "max")
    return [h["run_id"] for h in scored[:n]]


def publish_sweep_view(tracker: Any, experiment: str, parent_run_id: str, sampled: Sequence[str], metric: str,
                       mode: str, history: Sequence[dict], base: str = DEFAULT_UI_URL) -> SweepLinks:
    """Store the sweep's shared view as an experiment tag; returns the links that open it."""
    state = sweep_view_state(parent_run_id, sampled, metric, mode)
    tracker.set_experiment_tags(experiment, {SHARED_VIEW_TAG + parent_run_id: json.dumps(state)})
    exp_id = tracker.experiment_id(experiment)
    top = top_run_ids(history, mode)
    return SweepLinks(exp_id, base, experiment_path(exp_id, parent_run_id),
                      compare_path(exp_id, top) if top else None)


def run_path(experiment_id: str, run_id: str) -> str:
    """The UI route of one run's page (its description, params, metrics, artifacts)."""
    return f"#/experiments/{experiment_id}/runs/{run_id}?workflowType={WORKFLOW}"


def latest_sweep_links(tracker: Any, experiment: str = "depth_net", base: str = DEFAULT_UI_URL) -> tuple:
    """(links, parent run path) of the newest sweep in the store, read back from MLflow alone: its parent
    run (``automl.kind=sweep``, with params ``metric``/``mode``) and its trial runs. Raises ValueError when
    the store holds no sweep."""
    from stereo.tracking import PARENT_RUN_TAG

    parents = tracker.find_runs(experiment, tags={"automl.kind": "sweep"})
    if not parents:
        raise ValueError(f"no sweep in experiment {experiment!r} of this store; run `automl run` (or `make demo`)")
    parent = parents[0]
    metric, mode = parent.params.get("metric", "val/epe"), parent.params.get("mode", "min")
    key = best_key(metric)
    history = [{"metric": r.metrics.get(key), "run_id": r.run_id}
               for r in tracker.find_runs(experiment, tags={PARENT_RUN_TAG: parent.run_id})]
    exp_id = parent.experiment_id
    top = top_run_ids(history, mode)
    links = SweepLinks(exp_id, base, experiment_path(exp_id, parent.run_id),
                       compare_path(exp_id, top) if top else None)
    return links, run_path(exp_id, parent.run_id)
