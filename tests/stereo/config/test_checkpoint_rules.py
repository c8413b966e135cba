"""stereo.config.checkpoint_rules: model vs checkpoint (sidecar content, bp2 name) and FFS backbone paths."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from stereo.config.checkpoint_rules import ACTION_CHECKPOINT_KEYS, CHECKPOINT_KEYS, FFS_FREE_FIELDS
from stereo.config.errors import SpecError
from stereo.config.load import load_spec
from stereo.config.model import FFS_BP2, ModelConfig
from stereo.checkpoints.sidecar_format import save_checkpoint

#: an FFS network of our own, deliberately not bp2-shaped (so only the sidecar can say what it is)
TRAINED = {**FFS_BP2, "hidden_dims": [96], "gru_hidden": 48, "max_disparity": 256, "valid_iters": 8}


def _ours(tmp_path, name="dn_model_best", **config) -> str:
    """One of our checkpoints (weights + sidecar) trained with ModelConfig(**config)."""
    cfg = dataclasses.asdict(ModelConfig(**(config or TRAINED)))
    return str(save_checkpoint(tmp_path / name, {"w": torch.zeros(2)}, config=cfg))


def _spec(key: str, path: str, **model) -> dict:
    section, name = key.split(".")
    return {"model": {"model_type": "FastFoundationStereo", **model}, section: {name: path}}


def _errors(source, action=None) -> dict:
    with pytest.raises(SpecError) as info:
        load_spec(source, action=action)
    return {p.key: p for p in info.value.errors}


@pytest.mark.parametrize("key", CHECKPOINT_KEYS)
def test_sidecar_config_is_compared_field_by_field_for_every_checkpoint_key(tmp_path, key):
    ckpt = _ours(tmp_path)
    if key == "train.resume_training_checkpoint_path":  # a Lightning resume file; its sidecar sits beside it
        ckpt = ckpt.replace(".safetensors", ".ckpt")
    errors = _errors(_spec(key, ckpt, gru_hidden=64))
    model = dataclasses.asdict(ModelConfig(gru_hidden=64))
    want = {f"model.{k}" for k, v in dataclasses.asdict(ModelConfig(**TRAINED)).items()
            if k not in FFS_FREE_FIELDS and model[k] != v}
    assert set(errors) == want  # every differing weight-shaping field, nothing else (valid_iters is free)
    assert "model.valid_iters" not in errors
    line = errors["model.gru_hidden"].render()
    assert "does not match: the checkpoint dn_model_best" in line and f"({key}) was trained with 48" in line
    assert "its sidecar dn_model_best.json" in line and "(got 64)" in line
    assert f"fix: set model.gru_hidden: 48, or point {key} at a checkpoint trained with this model" in line
    hidden = errors["model.hidden_dims"].render()
    assert "not set (default [128, 128, 128])" in hidden and "set model.hidden_dims: [96]" in hidden


def test_matching_model_section_loads_and_run_time_knobs_may_differ(tmp_path):
    ckpt = _ours(tmp_path)
    model = {k: v for k, v in TRAINED.items() if k != "valid_iters"}
    spec = load_spec(_spec("evaluate.checkpoint", ckpt, **model, valid_iters=32, low_memory=2))
    assert spec.model.gru_hidden == 48 and spec.model.valid_iters == 32


def test_sidecar_beats_the_file_name(tmp_path):
    ckpt = _ours(tmp_path, name="finetuned_from_bp2")  # bp2 in the name, but not bp2-shaped
    model = {k: v for k, v in TRAINED.items() if k != "valid_iters"}
    load_spec(_spec("export.checkpoint", ckpt, **model))  # no bp2 invariant is demanded
    errors = _errors(_spec("export.checkpoint", ckpt, **FFS_BP2))
    assert set(errors) == {"model.hidden_dims", "model.gru_hidden", "model.max_disparity"}
    assert "bp2" not in errors["model.gru_hidden"].message.replace("finetuned_from_bp2", "")


def test_model_type_mismatch_is_one_error(tmp_path):
    fs = dataclasses.asdict(ModelConfig(model_type="FoundationStereo"))
    ckpt = _ours(tmp_path, **fs)
    errors = _errors(_spec("inference.checkpoint", ckpt))
    assert list(errors) == ["model.model_type"]
    line = errors["model.model_type"].render()
    assert "was trained with 'FoundationStereo'" in line and "set model.model_type: FoundationStereo" in line


def test_damaged_sidecar_is_reported_on_the_checkpoint_key(tmp_path):
    ckpt = _ours(tmp_path)
    sidecar = tmp_path / "dn_model_best.json"
    data = json.loads(sidecar.read_text())
    del data["config"]
    sidecar.write_text(json.dumps(data))
    errors = _errors(_spec("evaluate.checkpoint", ckpt))
    assert "its sidecar cannot be read" in errors["evaluate.checkpoint"].message
    assert "missing key 'config'" in errors["evaluate.checkpoint"].message


def test_foreign_json_and_missing_files_are_not_compared(tmp_path):
    (tmp_path / "weights.safetensors").write_bytes(b"x")
    (tmp_path / "weights.json").write_text('{"architectures": ["Other"]}')
    load_spec(_spec("evaluate.checkpoint", str(tmp_path / "weights.safetensors")))
    load_spec(_spec("evaluate.checkpoint", str(tmp_path / "not_written_yet.safetensors")))


def test_a_known_action_compares_only_the_checkpoints_it_loads(tmp_path):
    ckpt = _ours(tmp_path)
    spec = _spec("evaluate.checkpoint", ckpt)
    spec["dataset"] = {"train_dataset": {"data_sources": [{"dataset_name": "FSD", "data_file": "a.txt"}]}}
    assert "evaluate.checkpoint" not in ACTION_CHECKPOINT_KEYS["train"]
    load_spec(spec, action="train")
    assert "model.gru_hidden" in _errors(spec)


@pytest.mark.parametrize("key", ["train.pretrained_model_path", "evaluate.checkpoint", "inference.checkpoint",
                                 "export.checkpoint"])
def test_bp2_research_pickle_is_still_recognised_by_name(tmp_path, key):
    errors = _errors(_spec(key, str(tmp_path / "model_best_bp2_serialize.pth")))
    assert {"model.hidden_dims", "model.n_gru_layers", "model.max_disparity", "model.gru_hidden"} <= set(errors)
    assert "the FastFoundationStereo bp2 checkpoint model_best_bp2_serialize.pth" in errors["model.gru_hidden"].message
    assert f"({key})" in errors["model.gru_hidden"].message


@pytest.mark.parametrize("name", ["edgenext_pretrained_path", "depth_anything_v2_pretrained_path"])
def test_backbone_weights_with_ffs_are_an_error(name):
    source = {"model": {"model_type": "FastFoundationStereo", "stereo_backbone": {name: "/w/backbone.pth"}}}
    line = _errors(source)[f"model.stereo_backbone.{name}"].render()
    assert "is not used by FastFoundationStereo: its feature network is the distilled, pruned student" in line
    assert "weights come from train.pretrained_model_path (the bp2 checkpoint)" in line
    assert f"(got '/w/backbone.pth'); fix: clear model.stereo_backbone.{name}" in line
    source["model"]["model_type"] = "FoundationStereo"
    assert getattr(load_spec(source).model.stereo_backbone, name) == "/w/backbone.pth"
