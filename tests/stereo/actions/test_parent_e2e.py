"""`--parent <run id | results folder>` (TAO's parent_job_id), as a user chains the actions through the CLI:
the tiny preset is trained and exported once per module (export itself takes `--parent <train folder>`), then
evaluate, export and deploy inference/evaluate read their input from their parent step both ways, nest under
the parent's flow run in the MLflow store, and bad parents are one line, exit 2, before any work."""
from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import yaml

from stereo.actions.flow import FLOW_ENV, FLOW_KIND, KIND_TAG
from stereo.actions.status import read_status
from stereo.cli import main
from stereo.data.synthetic import generate
from stereo.models import preset_config

pytestmark = pytest.mark.slow  # one tiny training + export per module, then ONNX Runtime actions


def _split(ann, name="FSD"):
    return {"data_sources": [{"dataset_name": name, "data_file": str(ann)}], "batch_size": 1, "workers": 0,
            "augmentation": {"crop_size": [64, 128]}}


def _cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    return captured


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """A trained and exported tiny model in one store: {spec, results, store, train_run, export_run, flow}."""
    from stereo.tracking import MlflowTracker

    tmp = tmp_path_factory.mktemp("parent")
    results, store = tmp / "results", f"sqlite:///{tmp / 'mlflow.db'}"
    train = generate(tmp / "data" / "train", "fsd", n=2, height=64, width=128, max_disparity=24, seed=0)
    val = generate(tmp / "data" / "val", "fsd", n=1, height=64, width=128, max_disparity=24, seed=1)
    infer = generate(tmp / "data" / "infer", "generic", n=1, height=64, width=128, max_disparity=24, seed=2,
                     columns=2)
    spec = tmp / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "results_dir": str(results),
        "dataset": {"max_disparity": 32, "train_dataset": _split(train), "val_dataset": _split(val),
                    "test_dataset": _split(val), "infer_dataset": _split(infer, "GenericDataset")},
        "model": {**dataclasses.asdict(preset_config("ffs_tiny")), "train_iters": 1, "valid_iters": 1},
        "train": {"num_epochs": 1, "max_steps": 2, "validation_interval": 1, "seed": 0},
        "export": {"onnx_file": "tiny.onnx", "input_height": 64, "input_width": 128, "on_cpu": True}}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", store)
        mp.delenv(FLOW_ENV, raising=False)
        assert main(["train", "-e", str(spec)]) == 0
        assert main(["export", "-e", str(spec), "--parent", str(results / "train")]) == 0
    runs = MlflowTracker(store).find_runs("depth_net")
    by_action = {r.tags.get("action"): r for r in runs}
    (flow,) = [r for r in runs if r.tags.get(KIND_TAG) == FLOW_KIND]
    return {"spec": spec, "results": results, "store": store, "tmp": tmp, "flow": flow.run_id,
            "train_run": by_action["train"].run_id, "export_run": by_action["export"].run_id}


@pytest.fixture(autouse=True)
def _store(job, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", job["store"])
    monkeypatch.delenv(FLOW_ENV, raising=False)


def _run_of(job, folder):
    from stereo.tracking import MlflowTracker

    (run,) = MlflowTracker(job["store"]).find_runs("depth_net", tags={"stereo.out_dir": str(folder)})
    return run


def _spec_value(folder, action, key):
    return yaml.safe_load((folder / "experiment.yaml").read_text())[action][key]


def test_export_read_the_best_checkpoint_of_its_train_folder(job):
    out = job["results"] / "export"
    assert _spec_value(out, "export", "checkpoint") == str(job["results"] / "train" / "dn_model_best.safetensors")
    assert read_status(out)[-1]["status"] == "SUCCESS" and (out / "tiny.onnx").is_file()
    assert _run_of(job, out).parent_run_id == job["flow"]


@pytest.mark.parametrize("way", ["folder", "run_id"])
def test_evaluate_finds_the_checkpoint_from_its_train_parent(job, capsys, tmp_path, way):
    parent = str(job["results"] / "train") if way == "folder" else job["train_run"]
    out = tmp_path / "eval"
    err = _cli(capsys, "evaluate", "-e", str(job["spec"]), "--parent", parent, f"evaluate.results_dir={out}").err
    best = job["results"] / "train" / "dn_model_best.safetensors"
    assert f"--parent {parent} is a train step: evaluate.checkpoint={best}" in err
    assert _spec_value(out, "evaluate", "checkpoint") == str(best)
    status = read_status(out)[-1]
    assert status["status"] == "SUCCESS" and status["kpi"]["val/epe"] >= 0
    run = _run_of(job, out)
    assert run.parent_run_id == job["flow"] and run.status == "FINISHED"
    assert run.metrics["val/epe"] == pytest.approx(status["kpi"]["val/epe"])


def test_export_from_a_train_run_id(job, capsys, tmp_path):
    out = tmp_path / "export"
    _cli(capsys, "export", "-e", str(job["spec"]), "--parent", job["train_run"], f"export.results_dir={out}")
    assert (out / "tiny.onnx").is_file() and read_status(out)[-1]["status"] == "SUCCESS"
    assert _run_of(job, out).parent_run_id == job["flow"]


@pytest.mark.parametrize("way", ["folder", "run_id"])
def test_deploy_inference_runs_the_onnx_of_its_export_parent(job, capsys, tmp_path, way):
    parent = str(job["results"] / "export") if way == "folder" else job["export_run"]
    deploy = tmp_path / "deploy"  # another results folder, same store: joins the parent's flow
    _cli(capsys, "inference", "-e", str(job["spec"]), "--parent", parent, f"results_dir={deploy}")
    out = deploy / "inference"
    assert _spec_value(out, "inference", "trt_engine") == str(job["results"] / "export" / "tiny.onnx")
    assert read_status(out)[-1]["status"] == "SUCCESS" and list(out.glob("*.png"))
    run = _run_of(job, out)
    assert run.name == "deploy_inference" and run.parent_run_id == job["flow"]
    assert not (deploy / "flow.json").exists()


def test_deploy_evaluate_from_the_export_run_reports_drift_against_its_checkpoint(job, capsys, tmp_path):
    deploy = tmp_path / "deploy"
    _cli(capsys, "evaluate", "-e", str(job["spec"]), "--parent", job["export_run"], f"results_dir={deploy}")
    out = deploy / "evaluate"
    assert _spec_value(out, "evaluate", "checkpoint") == str(job["results"] / "train" / "dn_model_best.safetensors")
    kpi = read_status(out)[-1]["kpi"]
    assert kpi["drift_mean_abs"] < 0.5 and _run_of(job, out).metrics["drift_mean_abs"] == pytest.approx(
        kpi["drift_mean_abs"])


def test_the_results_root_and_the_childs_own_store_also_resolve(job, capsys, tmp_path, monkeypatch):
    """No $MLFLOW_TRACKING_URI: a run id is looked up in the child's <results_dir>/mlflow.db; the results root
    with one step that feeds the action is that step."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert main(["evaluate", "-e", str(job["spec"]), "--parent", job["train_run"],
                 f"results_dir={tmp_path}"]) == 2
    assert f"no MLflow store at {tmp_path / 'mlflow.db'}" in capsys.readouterr().err
    root = tmp_path / "job"
    shutil.copytree(job["results"] / "train", root / "train", symlinks=True)  # dn_model_best is a link
    _cli(capsys, "evaluate", "-e", str(job["spec"]), "--parent", str(root), f"results_dir={root}")
    assert _spec_value(root / "evaluate", "evaluate", "checkpoint") == str(root / "train" / "dn_model_best.safetensors")


def test_an_explicit_key_value_wins_over_the_parent(job, capsys, tmp_path):
    copy = (job["results"] / "train" / "dn_model_best.safetensors").resolve()  # the epoch file itself
    out = tmp_path / "eval"
    err = _cli(capsys, "evaluate", "-e", str(job["spec"]), "--parent", job["train_run"],
               f"evaluate.checkpoint={copy}", f"evaluate.results_dir={out}").err
    assert f"evaluate.checkpoint={copy} given on the command line wins" in err
    assert _spec_value(out, "evaluate", "checkpoint") == str(copy)


@pytest.mark.parametrize("action, parent, message", [
    ("evaluate", "0123456789abcdef0123456789abcdef", "no such run in the MLflow store"),
    ("evaluate", "/no/such/folder", "neither an existing results folder nor an MLflow run id"),
    ("export", "{export}", "is an export step, which gives export nothing; pass a train step"),
    ("gen_trt_engine", "{train}", "is a train step, which gives gen_trt_engine nothing; pass an export step"),
    ("evaluate", "{flow}", "run {flow} is a 'flow' run"),
])
def test_a_bad_parent_is_one_line_exit_2_before_any_work(job, capsys, tmp_path, action, parent, message):
    values = {"export": str(job["results"] / "export"), "train": str(job["results"] / "train"), "flow": job["flow"]}
    parent, message = parent.format(**values), message.format(**values)
    out = tmp_path / "out"
    code = main([action, "-e", str(job["spec"]), "--parent", parent, f"results_dir={out}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0] and f"--parent {parent}" in err[0], err
    assert not out.exists()


def test_a_parent_that_did_not_succeed_is_refused(job, capsys, tmp_path):
    failed = tmp_path / "train"
    failed.mkdir()
    (failed / "dn_model_best.safetensors").write_bytes(b"")
    (failed / "status.json").write_text(json.dumps({"status": "FAILURE", "message": "x"}) + "\n")
    assert main(["evaluate", "-e", str(job["spec"]), "--parent", str(failed)]) == 2
    assert "ended FAILURE; rerun depth_net train there first" in capsys.readouterr().err


@pytest.mark.parametrize("way", ["folder", "run_id"])
def test_gen_trt_engine_reads_the_onnx_of_its_export_parent(job, capsys, tmp_path, way):
    from stereo.actions.parent import resolve_parent

    parent = str(job["results"] / "export") if way == "folder" else job["export_run"]
    found = resolve_parent(parent, "gen_trt_engine", job["store"])
    onnx = job["results"] / "export" / "tiny.onnx"
    assert found.action == "export" and found.argv() == [f"gen_trt_engine.onnx_file={onnx}"]
    assert found.flow_run_id == job["flow"]


def test_a_gen_trt_engine_folder_gives_the_deploy_actions_its_engine(job, tmp_path):
    """No TensorRT here to build one: the folder is laid out as gen_trt_engine publishes it."""
    from stereo.actions.parent import resolve_parent

    folder = tmp_path / "gen_trt_engine"
    folder.mkdir()
    engine = folder / "tiny.fp16.engine"
    engine.write_bytes(b"plan")
    (folder / "status.json").write_text(json.dumps({"status": "SUCCESS"}) + "\n")
    (folder / "experiment.yaml").write_text(yaml.safe_dump({"gen_trt_engine": {"trt_engine": ""}}))
    ckpt = job["results"] / "train" / "dn_model_best.safetensors"
    (folder / "tiny.fp16.engine.json").write_text(json.dumps({"onnx": {"source_checkpoint": {"path": str(ckpt)}}}))
    found = resolve_parent(str(folder), "evaluate", job["store"])
    assert found.action == "gen_trt_engine"
    assert found.argv() == [f"evaluate.trt_engine={engine}", f"evaluate.checkpoint={ckpt}"]
    assert resolve_parent(str(folder), "inference", job["store"]).argv() == [f"inference.trt_engine={engine}"]
