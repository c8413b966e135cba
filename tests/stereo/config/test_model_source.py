"""stereo.config.model_source: non-train actions take the unset `model.*` keys from the file they run."""
from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch

from stereo.config.errors import SpecError
from stereo.config.load import load_spec
from stereo.config.model import FFS_BP2, ModelConfig
from stereo.checkpoints.sidecar_format import save_checkpoint

BP2 = dataclasses.asdict(ModelConfig(**{**FFS_BP2, "valid_iters": 8}))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Real annotation files, so the action checks (data present, readable) pass and only the model matters."""
    from stereo.data.synthetic import generate

    root = tmp_path_factory.mktemp("data")
    gt = str(generate(root / "gt", "fsd", n=1, height=32, width=64, max_disparity=8, seed=0))
    two = str(generate(root / "two", "generic", n=1, height=32, width=64, max_disparity=8, seed=0, columns=2))
    split = lambda ann, name: {"data_sources": [{"dataset_name": name, "data_file": ann}]}  # noqa: E731
    return {"train_dataset": split(gt, "FSD"), "test_dataset": split(gt, "FSD"),
            "infer_dataset": split(two, "GenericDataset")}


def _load(raw, data, action=None):
    return load_spec({**raw, "dataset": data, "export": {**raw.get("export", {}), "onnx_file": "out.onnx"}},
                     action=action)


def _onnx(tmp_path, name="ffs_bp2_static.onnx", config=BP2):
    """An ONNX graph as `depth_net export` leaves it: the file and `<file>.json` with the model config."""
    path = tmp_path / name
    path.write_bytes(b"onnx")  # loading a spec never opens the graph
    (tmp_path / f"{name}.json").write_text(json.dumps({"format": "stereo-automl-onnx", "model_config": config}))
    return str(path)


def _ckpt(tmp_path, name="dn_model_best", config=BP2):
    return str(save_checkpoint(tmp_path / name, {"w": torch.zeros(2)}, config=config))


def _deploy_spec(target, **model):
    """The TAO deploy template's shape: model_type only, the network named by trt_engine."""
    return {"model": {"model_type": "FastFoundationStereo", **model}, "evaluate": {"trt_engine": target},
            "inference": {"trt_engine": target}, "gen_trt_engine": {"onnx_file": target}}


@pytest.mark.parametrize("action", ["evaluate", "inference", "gen_trt_engine"])
def test_deploy_spec_takes_the_model_block_from_the_onnx_sidecar(tmp_path, data, action):
    spec = _load(_deploy_spec(_onnx(tmp_path)), data, action)
    assert dataclasses.asdict(spec.model) == BP2


def test_engine_sidecar_carries_the_onnx_one(tmp_path, data):
    engine = tmp_path / "ffs.engine"
    engine.write_bytes(b"plan")
    (tmp_path / "ffs.engine.json").write_text(json.dumps({"format": "stereo-automl-trt-engine",
                                                           "onnx": {"format": "stereo-automl-onnx",
                                                                    "model_config": BP2}}))
    assert _load(_deploy_spec(str(engine)), data, "evaluate").model.volume_dim == 28


def test_explicit_contradiction_of_the_onnx_sidecar_is_one_line(tmp_path, data):
    with pytest.raises(SpecError) as info:
        _load(_deploy_spec(_onnx(tmp_path), volume_dim=32, valid_iters=4), data, "evaluate")
    errors = info.value.errors
    assert [p.key for p in errors] == ["model.volume_dim"]  # valid_iters is a run-time knob: no error
    line = errors[0].render()
    assert "contradicts ffs_bp2_static.onnx.json" in line and "(evaluate.trt_engine)" in line
    assert "records 28" in line and "(got 32)" in line and "delete model.volume_dim" in line


@pytest.mark.parametrize("action", ["evaluate", "inference", "export"])
def test_checkpoint_sidecar_fills_and_an_explicit_mismatch_is_one_line(tmp_path, data, action):
    ckpt = _ckpt(tmp_path)
    raw = {"model": {"model_type": "FastFoundationStereo"}, action: {"checkpoint": ckpt}}
    assert dataclasses.asdict(_load(raw, data, action).model) == BP2
    raw["model"]["gru_hidden"] = 64
    with pytest.raises(SpecError) as info:
        _load(raw, data, action)
    assert [p.key for p in info.value.errors] == ["model.gru_hidden"]


def test_tao_pth_link_is_matched_through_the_sidecar_beside_its_target(tmp_path, data):
    ckpt = _ckpt(tmp_path, "model_epoch_000_step_00004")
    (tmp_path / "model_epoch_000_step_00004.pth").write_bytes(b"weights")
    os.symlink("model_epoch_000_step_00004.pth", tmp_path / "dn_model_latest.pth")
    raw = {"evaluate": {"checkpoint": str(tmp_path / "dn_model_latest.pth")}}
    assert _load(raw, data, "evaluate").model.gru_hidden == 60
    raw["model"] = {"cam_mid_channels": 16}
    with pytest.raises(SpecError, match="contradicts model_epoch_000_step_00004.json"):
        _load(raw, data, "evaluate")
    assert ckpt.endswith(".safetensors")


def test_train_and_action_less_loads_are_not_filled(tmp_path, data):
    raw = {"model": {"model_type": "FastFoundationStereo"},
           "evaluate": {"trt_engine": _onnx(tmp_path, "graph.onnx")}}
    assert _load(raw, data, "train").model.volume_dim == ModelConfig().volume_dim
    assert _load(raw, data).model.volume_dim == ModelConfig().volume_dim


def test_drift_reference_checkpoint_wins_over_the_graph(tmp_path, data):
    small = {**BP2, "gru_hidden": 48}
    raw = {"evaluate": {"trt_engine": _onnx(tmp_path), "checkpoint": _ckpt(tmp_path, config=small)}}
    assert _load(raw, data, "evaluate").model.gru_hidden == 48  # the eager model must match its weights


def test_cli_contradiction_is_one_line_and_exit_2(tmp_path, data, capsys):
    import yaml

    from stereo.cli import main

    raw = {**_deploy_spec(_onnx(tmp_path), volume_dim=32), "dataset": {**data, "max_disparity": 192},
           "results_dir": str(tmp_path / "r")}
    spec = tmp_path / "deploy.yaml"
    spec.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["evaluate", "-e", str(spec)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{spec}:") and "model.volume_dim: contradicts" in err[0]
    assert not (tmp_path / "r").exists()  # refused before anything ran
