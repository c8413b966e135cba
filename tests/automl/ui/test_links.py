"""The sweep's UI view state, links and parent-run description, as pure data (the browser test checks
that MLflow's UI honours them: tests/automl/e2e/test_sweep_e2e.py)."""
import json
import re
import urllib.parse

from automl.report.note import sweep_note
from automl.ui.links import (
    SHARED_VIEW_TAG,
    SweepLinks,
    compare_path,
    experiment_path,
    publish_sweep_view,
    sweep_view_state,
    top_run_ids,
)
from stereo.tracking import MemoryTracker

HISTORY = [{"trial_id": "t0000", "metric": 4.5, "status": "stopped", "params": {"lr": 1e-3}, "run_id": "a"},
           {"trial_id": "t0001", "metric": None, "status": "failed", "params": {"lr": 2e-3}, "run_id": "b"},
           {"trial_id": "t0002", "metric": 3.25, "status": "completed", "params": {"lr": 5e-4}, "run_id": "c"}]


def test_the_view_is_the_sweeps_trials_ranked_with_the_sampled_params_as_columns():
    state = sweep_view_state("p1", ["train.optim.lr"], "epe", "min")
    assert state["searchFilter"] == "tags.`mlflow.parentRunId` = 'p1'"
    assert state["orderByKey"] == "metrics.`best/val/epe`" and state["orderByAsc"] is True
    assert state["selectedColumns"][:2] == ["metrics.`best/val/epe`", "params.`train.optim.lr`"]
    assert sweep_view_state("p1", [], "val/d1", "max")["orderByAsc"] is False


def test_links_open_the_training_view_and_the_compare_view():
    assert experiment_path("3", "p1") == "#/experiments/3/runs?viewStateShareKey=p1&workflowType=machine_learning"
    path = compare_path("3", ["c", "a"])
    query = urllib.parse.parse_qs(path.split("?", 1)[1])
    assert json.loads(query["runs"][0]) == ["c", "a"] and json.loads(query["experiments"][0]) == ["3"]
    assert top_run_ids(HISTORY, "min") == ["c", "a"] and top_run_ids(HISTORY, "max", n=1) == ["a"]
    links = SweepLinks("3", "http://127.0.0.1:5000/", experiment_path("3", "p1"), None)
    assert links.runs.startswith("http://127.0.0.1:5000/#/experiments/3/runs?") and links.compare is None


def test_publishing_stores_the_view_as_an_experiment_tag():
    tracker = MemoryTracker()
    tracker.experiment_id = lambda name: tracker.experiments.setdefault(name, "0")  # MlflowTracker has it
    links = publish_sweep_view(tracker, "depth_net", "p1", ["lr"], "val/epe", "min", HISTORY, base="http://h:1")
    stored = json.loads(tracker.experiment_tags["depth_net"][SHARED_VIEW_TAG + "p1"])
    assert stored == sweep_view_state("p1", ["lr"], "val/epe", "min")
    assert links.runs == "http://h:1/#/experiments/0/runs?viewStateShareKey=p1&workflowType=machine_learning"
    assert "runs=%5B%22c%22%2C%22a%22%5D" in links.compare


def test_the_parent_description_is_a_ranked_markdown_leaderboard():
    results = {"progress": {"complete": True, "completed": 1, "stopped": 1, "failed": 1},
               "best": {"trial_id": "t0002", "metric": 3.25}, "history": HISTORY,
               "space": {"parameters": {"lr": {"kind": "float", "low": 1e-4, "high": 1e-2, "log": True}}}}
    links = SweepLinks("3", "http://127.0.0.1:5000", experiment_path("3", "p1"), compare_path("3", ["c", "a"]))
    note = sweep_note(name="s1", results=results, metric="val/epe", mode="min",
                      decision={"mode": "sweep", "policy_used": "auto", "reasons": ["AutoML is enabled"]},
                      budget="3 trials", algorithm="tpe+asha", experiment_id="3", parent_run_id="p1", links=links)
    lines = note.splitlines()
    header = lines.index("| rank | trial | outcome | best/val/epe | `lr` |")
    assert lines[header + 2:header + 5] == ["| 1 | t0002 | completed | 3.25 | 0.0005 |",
                                            "| 2 | t0000 | stopped | 4.5 | 0.001 |",
                                            "| – | t0001 | failed | – | 0.002 |"]
    assert "**Decision:** sweep (policy auto): AutoML is enabled" in note and "3 trials" in note
    assert "(#/experiments/3/runs/p1/artifacts/report/plots/history.png)" in note
    assert f"[sorted runs table]({links.runs_path})" in note and "http://" not in note  # relative links
    assert "- `lr`: " in note and not re.search(r"<\w+>", note)  # no unfilled placeholder
