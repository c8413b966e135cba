"""run_action, the results layout and exit codes, tracked with MemoryTracker."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from stereo.config.errors import Problem, SpecError
from stereo.errors import DataError
from stereo.errors import CheckpointFormatError
from stereo.actions import ActionResult, action_dir, exit_code, last_kpi, read_status, run_action, save_experiment_yaml
from stereo.errors import ActionError
from stereo.actions.runner import GIT_COMMIT_TAG, git_revision
from stereo.errors import BadInputError
from stereo.tracking import MemoryTracker

SPEC = {"results_dir": "unused", "model": {"model_type": "FoundationStereo", "max_disparity": 416},
        "evaluate": {"batch_size": 1}}


def statuses(d: Path) -> list[str]:
    return [line["status"] for line in read_status(d)]


# --- layout -------------------------------------------------------------------------------------
def test_action_dir_default_and_override(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert action_dir("res", "train") == tmp_path / "res" / "train"
    assert action_dir("res", "train", override="elsewhere") == tmp_path / "elsewhere"
    with pytest.raises(ValueError, match="results_dir"):
        action_dir(None, "train")
    with pytest.raises(ValueError, match="plain name"):
        action_dir("res", "../train")


def test_experiment_yaml_keeps_order_and_plain_types(tmp_path):
    path = save_experiment_yaml(tmp_path, {"z": (1, 2), "a": {"p": tmp_path}})
    assert path.read_text().splitlines()[0] == "z:"
    assert yaml.safe_load(path.read_text()) == {"z": [1, 2], "a": {"p": str(tmp_path)}}
    with pytest.raises(TypeError, match="a.bad"):
        save_experiment_yaml(tmp_path, {"a": {"bad": object()}})


# --- success ------------------------------------------------------------------------------------
def test_success_writes_layout_status_and_tracks(tmp_path):
    tracker = MemoryTracker()

    def evaluate(ctx):
        ctx.report({"val/epe": 2.0}, step=1, message="half way")
        (ctx.dir / "per_sample.csv").write_text("name,epe\na,1.5\n")
        return ActionResult(kpi={"val/epe": 1.5, "val/d1": 0.25}, outputs=["per_sample.csv"])

    result = run_action("evaluate", SPEC, tmp_path, evaluate, tracker=tracker, tags={"trial": "3"})
    d = tmp_path / "evaluate"
    assert result.status == "SUCCESS" and exit_code(result) == 0
    assert result.outputs == [d / "per_sample.csv"]
    assert yaml.safe_load((d / "experiment.yaml").read_text()) == SPEC
    assert statuses(d) == ["STARTED", "RUNNING", "SUCCESS"]
    assert last_kpi(d) == {"val/epe": 1.5, "val/d1": 0.25}

    (rec,) = tracker.find_runs("depth_net", {"action": "evaluate"})
    assert rec.status == "FINISHED" and rec.name == "evaluate"
    assert rec.params["model.max_disparity"] == "416" and rec.params["evaluate.batch_size"] == "1"
    assert rec.tags["model_type"] == "FoundationStereo" and rec.tags["trial"] == "3"
    assert rec.tags[GIT_COMMIT_TAG] == git_revision() and git_revision() != ""
    assert tracker.history(rec.run_id, "val/epe") == [(1, 2.0), (1, 1.5)]
    assert rec.metrics == {"val/epe": 1.5, "val/d1": 0.25}
    assert tracker.artifacts(rec.run_id) == ["experiment.yaml", "status.json"]


def test_action_results_dir_override_from_spec(tmp_path):
    spec = {**SPEC, "evaluate": {"results_dir": str(tmp_path / "custom")}}
    result = run_action("evaluate", spec, tmp_path / "res", lambda ctx: ActionResult())
    assert result.status == "SUCCESS"
    assert (tmp_path / "custom" / "status.json").exists() and not (tmp_path / "res").exists()


def test_skipped_is_not_a_failure(tmp_path):
    result = run_action("export", SPEC, tmp_path, lambda ctx: ActionResult("SKIPPED", message="exists"))
    assert result.status == "SKIPPED" and exit_code(result) == 0
    assert statuses(tmp_path / "export")[-1] == "SKIPPED"


# --- judged failures ----------------------------------------------------------------------------
@pytest.mark.parametrize("make, reason", [
    (lambda d: ActionResult(outputs=["missing.onnx"]), "was not written"),
    (lambda d: (d / "empty.pfm").touch() or ActionResult(outputs=["empty.pfm"]), "is empty"),
    (lambda d: (d / "preds").mkdir() or ActionResult(outputs=[d / "preds"]), "directory"),
    (lambda d: ActionResult(kpi={"train_loss": math.nan}), "not finite"),
    (lambda d: ActionResult(kpi={"val/epe": "n/a"}), "not a number"),
    (lambda d: ActionResult("FAILURE", message="no GT in any sample"), "no GT"),
    (lambda d: None, "expected an ActionResult"),
])
def test_success_must_be_earned(tmp_path, make, reason):
    tracker = MemoryTracker()
    result = run_action("evaluate", SPEC, tmp_path, lambda ctx: make(ctx.dir), tracker=tracker)
    assert result.status == "FAILURE" and exit_code(result) == 1
    assert reason in result.message
    last = read_status(tmp_path / "evaluate")[-1]
    assert last["status"] == "FAILURE" and reason in last["message"]
    assert tracker.find_runs("depth_net")[0].status == "FAILED"


def test_nan_kpi_is_still_recorded_on_failure(tmp_path):
    run_action("train", SPEC, tmp_path, lambda ctx: ActionResult(kpi={"train_loss": math.nan}))
    assert math.isnan(last_kpi(tmp_path / "train", "train_loss"))


# --- exceptions ---------------------------------------------------------------------------------
@pytest.mark.parametrize("exc, category, code", [
    (BadInputError("dataset.test.data_sources is empty; add one"), "bad input", 2),
    (SpecError([Problem("model.foo", 1, "unknown key")]), "bad input", 2),  # mapped by type, not by name
    (DataError("a.txt:3: 2 columns"), "bad input", 2),
    (CheckpointFormatError("m.json: not valid JSON"), "bad input", 2),
    (type("SpecError", (ValueError,), {})("a look-alike is no SpecError"), "runtime error", 1),
    (FileNotFoundError("ckpt.pth"), "missing file", 2),  # the CLI promises 2 for a missing file
    (PermissionError("results/"), "file system error", 1),
    (NotImplementedError("fp8"), "not implemented", 1),
    (RuntimeError("CUDA out of memory.\nTried to allocate"), "out of memory", 1),
    (ZeroDivisionError("division by zero"), "runtime error", 1),
])
def test_exceptions_become_one_line_failures_and_typed_errors(tmp_path, exc, category, code):
    tracker = MemoryTracker()

    def boom(ctx):
        raise exc

    with pytest.raises(ActionError) as info:
        run_action("train", SPEC, tmp_path, boom, tracker=tracker)
    err = info.value
    assert err.__cause__ is exc and err.category == category and err.exit_code == code == exit_code(err)
    assert "\n" not in str(err) and str(err).startswith(f"train failed ({category}): {type(exc).__name__}")
    assert err.result.status == "FAILURE"
    last = read_status(tmp_path / "train")[-1]
    assert last["status"] == "FAILURE" and last["message"].startswith(category)
    (rec,) = tracker.find_runs("depth_net")
    assert rec.status == "FAILED" and tracker.artifacts(rec.run_id) == ["experiment.yaml", "status.json"]


def test_interrupt_marks_run_killed_and_propagates(tmp_path):
    tracker = MemoryTracker()

    def interrupted(ctx):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_action("train", SPEC, tmp_path, interrupted, tracker=tracker)
    assert tracker.find_runs("depth_net")[0].status == "KILLED"
    assert statuses(tmp_path / "train")[-1] == "FAILURE"


def test_exit_code_for_raw_exceptions():
    assert exit_code(BadInputError("x")) == 2
    assert exit_code(RuntimeError("x")) == 1
    assert exit_code(ActionResult("FAILURE")) == 1


def test_nested_under_parent_run(tmp_path):
    tracker = MemoryTracker()
    parent = tracker.start_run("sweep", experiment="hpo")
    run_action("train", SPEC, tmp_path, lambda ctx: ActionResult(), tracker=tracker, experiment="hpo",
               parent_run_id=parent.run_id, run_name="trial_0")
    child = tracker.find_runs("hpo", {"action": "train"})[0]
    assert child.parent_run_id == parent.run_id and child.name == "trial_0"


def test_unusable_results_dir_is_bad_input(tmp_path):
    with pytest.raises(ActionError) as info:
        run_action("train", {"model": {}}, None, lambda ctx: ActionResult())
    assert info.value.exit_code == 2 and "results_dir" in str(info.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ActionError, match="file system error"):
        run_action("train", SPEC, tmp_path / "file", lambda ctx: ActionResult())


# --- typed specs --------------------------------------------------------------------------------
@pytest.mark.parametrize("entry", ["train:train", "evaluate:evaluate", "inference:inference", "export:export",
                                   "gen_trt_engine:gen_trt_engine", "deploy_eval:evaluate",
                                   "deploy_eval:inference"])
def test_an_action_given_a_dict_says_to_load_the_spec(entry, tmp_path, monkeypatch):
    import importlib

    module, name = entry.split(":")
    action = getattr(importlib.import_module(f"stereo.actions.{module}"), name)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError) as info:
        action({**SPEC, "results_dir": str(tmp_path / "out")}, tracker=False)
    assert str(info.value) == (f"{name}() takes an ExperimentSpec, got dict; make one with stereo.config.load."
                               f"load_spec(path_or_dict, action='{name}') (it checks every key)")
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("entry, spec_type", [("convert:convert", "ConvertConfig"),
                                              ("init_checkpoint:init_checkpoint", "InitCheckpointConfig")])
def test_a_flat_spec_action_given_a_path_names_its_spec_type(entry, spec_type, tmp_path):
    import importlib

    module, name = entry.split(":")
    action = getattr(importlib.import_module(f"stereo.actions.{module}"), name)
    with pytest.raises(TypeError, match=rf"^{name}\(\) takes an? {spec_type}, got str; make one with "
                                        rf"stereo\.config\.load\.load_spec\(path_or_dict, spec_type={spec_type}\)"):
        action(str(tmp_path / "spec.yaml"), tracker=False)
