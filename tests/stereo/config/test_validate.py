"""Every validation rule produces one clear line: file:line: key: message (got value); fix: ..."""
from __future__ import annotations

import pytest

from stereo.config.errors import SpecError
from stereo.config.load import load_spec, resolve_spec
from stereo.config.model import FFS_BP2


def _errors(source, overrides=()):
    with pytest.raises(SpecError) as info:
        load_spec(source, overrides)
    return [p.render() for p in info.value.errors]


def _one(lines, key):
    hits = [line for line in lines if f": {key}: " in line]
    assert len(hits) == 1, (key, lines)
    return hits[0]


def test_unknown_key_names_line_and_closest_key(write_spec):
    path = write_spec("""
        model:
          model_type: FoundationStereo
          volumedim: 28
        """)
    line = _one(_errors(path), "model.volumedim")
    assert line.startswith(f"{path}:3: model.volumedim: unknown key")
    assert "did you mean 'model.volume_dim'?" in line


def test_encoder_under_stereo_backbone_points_to_model_encoder(write_spec):
    path = write_spec("""
        model:
          stereo_backbone:
            encoder: vits
        """)
    line = _one(_errors(path), "model.stereo_backbone.encoder")
    assert line.startswith(f"{path}:3:")
    assert "did you mean 'model.encoder'?" in line


def test_wrong_type(write_spec):
    path = write_spec("train:\n  num_epochs: ten\n")
    assert _one(_errors(path), "train.num_epochs") == (
        f"{path}:2: train.num_epochs: expected an integer (got 'ten'); "
        "fix: set train.num_epochs to a whole number")


def test_list_expected():
    line = _one(_errors({"model": {"hidden_dims": 128}}), "model.hidden_dims")
    assert "expected a list of integers (got 128)" in line and "model.hidden_dims: [128]" in line


def test_out_of_range_and_enum():
    lines = _errors({"train": {"optim": {"lr": 0.5, "lr_scheduler": "MultiStep"}}})
    assert "out of range: must be in [1e-06, 0.01] (got 0.5)" in _one(lines, "train.optim.lr")
    line = _one(lines, "train.optim.lr_scheduler")
    assert "not one of MultiStepLR, StepLR" in line and "did you mean 'MultiStepLR'?" in line


def test_data_source_missing_keys(write_spec):
    path = write_spec("""
        dataset:
          train_dataset:
            data_sources:
              - dataset_name: Kitti
              - data_file: /data/train.txt
        """)
    lines = _errors(path)
    assert "data source has no data_file" in _one(lines, "dataset.train_dataset.data_sources[0].data_file")
    line = _one(lines, "dataset.train_dataset.data_sources[1].dataset_name")
    assert line.startswith(f"{path}:5:") and "data source has no dataset_name" in line


def test_unknown_dataset_name_and_case_insensitive_names():
    entry = {"dataset_name": "Midlebury", "data_file": "a"}
    source = {"dataset": {"test_dataset": {"data_sources": [entry]}}}
    line = _one(_errors(source), "dataset.test_dataset.data_sources[0].dataset_name")
    assert "unknown dataset_name (got 'Midlebury')" in line and "did you mean 'Middlebury'?" in line
    ok = {"dataset": {"test_dataset": {"data_sources": [{"dataset_name": "kitti", "data_file": "a"}]}}}
    assert load_spec(ok).dataset.test_dataset.data_sources[0].dataset_name == "kitti"


def test_ffs_bp2_checkpoint_requires_every_invariant():
    source = {"model": {"model_type": "FastFoundationStereo", "max_disparity": 416, "gru_hidden": 64},
              "export": {"checkpoint": "/models/model_best_bp2_serialize.pth"}}
    with pytest.raises(SpecError) as info:
        load_spec(source)
    bp2 = {p.key: p for p in info.value.errors if "bp2 checkpoint" in p.message}
    default_model = load_spec({}).model
    differing = {f"model.{k}" for k, v in FFS_BP2.items() if getattr(default_model, k) != v}
    differing |= {"model.max_disparity", "model.gru_hidden"}
    assert set(bp2) == differing  # one problem per differing field
    assert "does not match" in bp2["model.gru_hidden"].message and bp2["model.gru_hidden"].value == 64
    assert "not set (default None)" in bp2["model.cnet_conv04_widths"].message
    assert "set model.cnet_conv04_widths: [60, 48]" in bp2["model.cnet_conv04_widths"].render()
    assert "(export.checkpoint)" in bp2["model.max_disparity"].render()


def test_bp2_rule_ignores_other_checkpoints_and_models():
    load_spec({"model": {"model_type": "FastFoundationStereo"}, "export": {"checkpoint": "/m/finetuned.pth"}})
    load_spec({"model": {"model_type": "FoundationStereo"}, "export": {"checkpoint": "/m/bp2.pth"}})


def test_max_disparity_mismatch_is_only_a_warning():
    resolved = resolve_spec({"model": {"max_disparity": 192}})
    [warning] = resolved.warnings
    assert warning.key == "model.max_disparity" and not warning.is_error
    assert "warning: differs from dataset.max_disparity (416)" in warning.render()


def test_crop_size_and_export_size_must_be_multiples_of_32(write_spec):
    path = write_spec("""
        dataset:
          train_dataset:
            augmentation:
              crop_size: [518, 518]
        export:
          input_height: 500
          input_width: 736
        """)
    lines = _errors(path)
    crop = _one(lines, "dataset.train_dataset.augmentation.crop_size")
    assert crop.startswith(f"{path}:4:") and "not a multiple of 32 (got [518, 518])" in crop
    assert "crop_size: [512, 512]" in crop
    assert "export.input_height: 512" in _one(lines, "export.input_height")


def test_min_scale_greater_than_max_scale():
    source = {"dataset": {"val_dataset": {"augmentation": {"min_scale": 0.5, "max_scale": 0.2}}}}
    line = _one(_errors(source), "dataset.val_dataset.augmentation.min_scale")
    assert "greater than max_scale (0.2) (got 0.5)" in line


def test_trt_profile_needs_all_three_and_ordering():
    lines = _errors({"gen_trt_engine": {"min_height": 320, "opt_height": 480,
                                        "min_width": 320, "opt_width": 736, "max_width": 640}})
    assert "a dynamic height profile needs min, opt and max" in _one(lines, "gen_trt_engine.max_height")
    assert "min_width <= opt_width <= max_width" in _one(lines, "gen_trt_engine.opt_width")


def test_wandb_enable_is_a_warning():
    [warning] = resolve_spec({"wandb": {"enable": True}}).warnings
    assert warning.key == "wandb.enable" and "never sends data" in warning.message


def test_all_problems_are_reported_at_once():
    lines = _errors({"model": {"volumedim": 1, "max_disparity": 1000}, "train": {"seed": "x"}},
                    ["export.input_width=100"])
    assert len(lines) == 4
    assert all("\n" not in line for line in lines)


def test_action_inputs_are_checked_when_the_action_is_known():
    with pytest.raises(SpecError, match="export.checkpoint: export needs a checkpoint"):
        load_spec({}, action="export")
    with pytest.raises(SpecError, match="train needs training data"):
        load_spec({}, action="train")


def test_dynamic_hw_is_refused_for_foundation_stereo(write_spec):
    path = write_spec("""
        model:
          model_type: FoundationStereo
        export:
          dynamic_hw: true
        """)
    line = _one(_errors(path), "export.dynamic_hw")
    assert "only FastFoundationStereo supports dynamic H/W" in line
    assert "constant-folded" in line and "set export.dynamic_hw: false" in line
