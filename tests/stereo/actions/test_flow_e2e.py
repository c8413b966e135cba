"""The actions of one flow nest under one MLflow run, as a user runs them: `depth_net train`, `evaluate`,
`export` on one results folder, then a deploy evaluate of the exported graph in another folder of the same
store (it joins through the checkpoint it compares against), all through stereo.cli.main."""
from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from stereo.actions.flow import FLOW_ENV, FLOW_FILE, FLOW_KIND, KIND_TAG
from stereo.cli import main
from stereo.data.synthetic import generate
from stereo.models import preset_config

pytestmark = pytest.mark.slow  # the chained actions in one flow


def _split(ann, batch_size=1):
    return {"data_sources": [{"dataset_name": "FSD", "data_file": str(ann)}], "batch_size": batch_size,
            "workers": 0, "augmentation": {"crop_size": [64, 128]}}


def _cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]


def test_train_evaluate_export_and_deploy_evaluate_nest_under_one_flow(tmp_path, capsys, monkeypatch):
    from stereo.tracking import MlflowTracker

    results, deploy = tmp_path / "results", tmp_path / "deploy"
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)  # one store for both folders (a team's server, say)
    monkeypatch.delenv(FLOW_ENV, raising=False)
    train = generate(tmp_path / "data" / "train", "fsd", n=2, height=64, width=128, max_disparity=24, seed=0)
    val = generate(tmp_path / "data" / "val", "fsd", n=1, height=64, width=128, max_disparity=24, seed=1)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "results_dir": str(results),
        "dataset": {"max_disparity": 32, "train_dataset": _split(train), "val_dataset": _split(val),
                    "test_dataset": _split(val)},
        "model": {**dataclasses.asdict(preset_config("ffs_tiny")), "train_iters": 1, "valid_iters": 1},
        "train": {"num_epochs": 1, "max_steps": 2, "validation_interval": 1, "seed": 0}}))
    best = results / "train" / "dn_model_best.safetensors"
    onnx = results / "export" / "tiny.onnx"
    _cli(capsys, "train", "-e", str(spec))
    _cli(capsys, "evaluate", "-e", str(spec), f"evaluate.checkpoint={best}")
    _cli(capsys, "export", "-e", str(spec), f"export.checkpoint={best}", f"export.onnx_file={onnx}",
         "export.input_height=64", "export.input_width=128", "export.on_cpu=true")
    _cli(capsys, "evaluate", "-e", str(spec), f"results_dir={deploy}", f"evaluate.trt_engine={onnx}",
         f"evaluate.checkpoint={best}")

    runs = MlflowTracker(store).find_runs("depth_net")
    (flow,) = [r for r in runs if r.tags.get(KIND_TAG) == FLOW_KIND]
    assert json.loads((results / FLOW_FILE).read_text())["run_id"] == flow.run_id
    assert flow.name == "flow results" and flow.status == "FINISHED" and "results" in flow.tags["mlflow.note.content"]
    actions = [r for r in runs if r.run_id != flow.run_id]
    assert sorted(r.tags["action"] for r in actions) == ["evaluate", "evaluate", "export", "train"]
    assert all(r.parent_run_id == flow.run_id and r.status == "FINISHED" for r in actions)
    assert any(r.name == "deploy_evaluate" for r in actions)  # the other folder joined through the checkpoint
    assert not (deploy / FLOW_FILE).exists()
    # the train run's inputs and model, as the UI lists them
    from mlflow import MlflowClient

    (trained,) = [r for r in actions if r.tags["action"] == "train"]
    full = MlflowClient(tracking_uri=store).get_run(trained.run_id)
    assert {(d.dataset.name, {t.key: t.value for t in d.tags}["mlflow.data.context"])
            for d in full.inputs.dataset_inputs} == {("train/fsd.txt", "train"), ("val/fsd.txt", "val")}
    assert [o.model_id for o in full.outputs.model_outputs] == [trained.tags["model_id"]]


def test_a_flow_run_id_from_the_environment_wins(tmp_path, capsys, monkeypatch):
    from stereo.actions.flow import flow_parent
    from stereo.config.load import load_spec

    monkeypatch.setenv(FLOW_ENV, "0123abcd")
    ann = generate(tmp_path / "data", "fsd", n=1, height=64, width=128, max_disparity=24, seed=0)
    spec = load_spec({"results_dir": str(tmp_path / "r"), "dataset": {"train_dataset": _split(ann),
                                                                       "val_dataset": _split(ann)},
                      "model": dataclasses.asdict(preset_config("ffs_tiny"))})
    assert flow_parent(spec, "train") == "0123abcd" and flow_parent(spec, "convert") is None
    assert not (tmp_path / "r").exists()  # nothing created for it


@pytest.fixture(autouse=True)
def _no_env_flow(monkeypatch):
    monkeypatch.delenv(FLOW_ENV, raising=False)
