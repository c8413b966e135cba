"""`depth_net flow -e flow.yaml`: the seven-action chain in one command on the tiny preset, through the CLI,
with the console, each step's status.json and the MLflow store (one flow run, one nested run per action,
the drift on the flow run) agreeing; a bad flow is refused before any step; a failed step says how to resume
and the rerun skips what already succeeded; the deploy-only six from a checkpoint."""
from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from stereo.actions.chain import STEPS, engine_available
from stereo.actions.flow import FLOW_ENV, FLOW_FILE, FLOW_KIND, KIND_TAG
from stereo.actions.status import read_status
from stereo.cli import main
from stereo.data.synthetic import generate
from stereo.models import preset_config

pytestmark = pytest.mark.slow  # a tiny training, export and ONNX Runtime deploy steps


def _split(ann, name="FSD"):
    return {"data_sources": [{"dataset_name": name, "data_file": str(ann)}], "batch_size": 1, "workers": 0,
            "augmentation": {"crop_size": [64, 128]}}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chain")
    train = generate(tmp / "train", "fsd", n=2, height=64, width=128, max_disparity=24, seed=0)
    val = generate(tmp / "val", "fsd", n=1, height=64, width=128, max_disparity=24, seed=1)
    infer = generate(tmp / "infer", "generic", n=1, height=64, width=128, max_disparity=24, seed=2, columns=2)
    spec = tmp / "experiment.yaml"
    spec.write_text(yaml.safe_dump({
        "results_dir": "/results",  # a template's value: the flow's results_dir replaces it
        "dataset": {"max_disparity": 32, "train_dataset": _split(train), "val_dataset": _split(val),
                    "test_dataset": _split(val), "infer_dataset": _split(infer, "GenericDataset")},
        "model": {**dataclasses.asdict(preset_config("ffs_tiny")), "train_iters": 1, "valid_iters": 1},
        "train": {"num_epochs": 1, "max_steps": 2, "validation_interval": 1, "seed": 0},
        "export": {"onnx_file": "tiny.onnx", "input_height": 64, "input_width": 128, "on_cpu": True}}))
    return tmp


@pytest.fixture(autouse=True)
def _own_store(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(FLOW_ENV, raising=False)


def _flow(tmp_path, data, **extra):
    flow = tmp_path / "flow.yaml"
    flow.write_text(yaml.safe_dump({"results_dir": str(tmp_path / "job"), "spec": str(data / "experiment.yaml"),
                                    **extra}))
    return flow


def _runs(results):
    from stereo.tracking import MlflowTracker

    return MlflowTracker(f"sqlite:///{results / 'mlflow.db'}").find_runs("depth_net")


def test_the_seven_steps_in_one_command_agree_everywhere(tmp_path, data, capsys):
    flow = _flow(tmp_path, data, steps={"train": {"overrides": ["train.seed=1"]}})
    assert main(["flow", "-e", str(flow)]) == 0
    err = capsys.readouterr().err
    results = tmp_path / "job"
    headers = [line for line in err.splitlines() if line.startswith("[")]
    assert [h.split("]")[1].split(":")[0].strip() for h in headers] == list(STEPS)
    ran = [s for s in STEPS if engine_available() or s != "gen_trt_engine"]
    if not engine_available():
        assert "[5/7] gen_trt_engine: no TensorRT or CUDA GPU here, skipped; the deploy steps run the exported " \
               "ONNX with ONNX Runtime" in err
        assert f"--parent {results / 'export'}" in next(h for h in headers if "deploy_inference" in h)
    for step in ran:
        assert read_status(results / step)[-1]["status"] == "SUCCESS", step
    runs = _runs(results)
    (parent,) = [r for r in runs if r.tags.get(KIND_TAG) == FLOW_KIND]
    assert json.loads((results / FLOW_FILE).read_text())["run_id"] == parent.run_id
    children = [r for r in runs if r.run_id != parent.run_id]
    assert sorted(r.tags["stereo.out_dir"] for r in children) == sorted(
        str(results / s) for s in ran)
    assert all(r.parent_run_id == parent.run_id and r.status == "FINISHED" for r in children)
    assert {r.name for r in children} >= {"deploy_inference", "deploy_evaluate", "train", "export"}
    deploy_kpi = read_status(results / "deploy_evaluate")[-1]["kpi"]
    assert parent.metrics["drift_mean_abs"] == pytest.approx(deploy_kpi["drift_mean_abs"])
    assert parent.metrics["deploy_epe"] == pytest.approx(deploy_kpi["epe"])
    assert f"flow run {parent.run_id}; drift_mean_abs=" in err.splitlines()[-1]
    # the deploy evaluate read the ONNX export wrote and compared it with train's best checkpoint
    deployed = yaml.safe_load((results / "deploy_evaluate" / "experiment.yaml").read_text())["evaluate"]
    assert deployed["trt_engine"] == str(results / "export" / "tiny.onnx")
    assert deployed["checkpoint"] == str(results / "train" / "dn_model_best.safetensors")

    # a rerun skips every finished step and adds no run
    assert main(["flow", "-e", str(flow)]) == 0
    err = capsys.readouterr().err
    assert err.count("already SUCCESS") == len(ran) and len(_runs(results)) == len(runs)


def test_a_bad_flow_is_refused_before_any_step_with_every_problem(tmp_path, data, capsys):
    flow = _flow(tmp_path, data, steps={"train": {"overrides": ["train.num_epochs=-1"]},
                                        "export": {"overrides": ["export.input_height=65"]}})
    assert main(["flow", "-e", str(flow)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith("flow step train: ") and "train.num_epochs" in line for line in err), err
    assert any(line.startswith("flow step export: ") and "input_height" in line for line in err), err
    assert not (tmp_path / "job").exists()
    flow.write_text(yaml.safe_dump({"results_dir": str(tmp_path / "job"), "spec": "missing.yaml"}))
    assert main(["flow", "-e", str(flow)]) == 2
    assert "spec: " in capsys.readouterr().err and not (tmp_path / "job").exists()


def test_the_deploy_only_six_stop_at_a_failed_step_and_the_rerun_resumes(tmp_path, data, capsys):
    ckpt = tmp_path / "random"
    assert main(["init-checkpoint", f"output={ckpt}", "preset=ffs_tiny"]) == 0
    infer = generate(tmp_path / "infer", "generic", n=3, height=64, width=128, max_disparity=24, seed=3, columns=2)
    second = infer.parent / infer.read_text().splitlines()[2].split()[0]  # the third
    hidden = second.rename(second.with_name("hidden.png"))  # pre-flight reads first lines only: fails mid-step
    flow = _flow(tmp_path, data, checkpoint=f"{ckpt}.safetensors",
                 overrides=["model.valid_iters=1", f"dataset.infer_dataset.data_sources[0].data_file={infer}"])
    capsys.readouterr()
    code = main(["flow", "-e", str(flow)])
    err = capsys.readouterr().err
    results = tmp_path / "job"
    assert code != 0 and f"depth_net flow: step inference failed (exit {code}" in err
    assert err.splitlines()[-1].endswith(f"resume with: depth_net flow -e {flow}")
    assert "[1/6] evaluate: depth_net evaluate" in err and "[3/6]" not in err
    assert read_status(results / "inference")[-1]["status"] == "FAILURE" and not (results / "train").exists()

    hidden.rename(second)
    assert main(["flow", "-e", str(flow)]) == 0
    err = capsys.readouterr().err
    assert f"[1/6] evaluate: already SUCCESS in {results / 'evaluate'}, skipped" in err
    for step in ("inference", "export", "deploy_inference", "deploy_evaluate"):
        assert read_status(results / step)[-1]["status"] == "SUCCESS", step
    exported = yaml.safe_load((results / "export" / "experiment.yaml").read_text())["export"]
    assert exported["checkpoint"] == f"{ckpt}.safetensors"
    (flow_run,) = [r for r in _runs(results) if r.tags.get(KIND_TAG) == FLOW_KIND]
    assert "drift_mean_abs" in flow_run.metrics
