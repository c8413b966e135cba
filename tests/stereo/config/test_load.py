"""stereo.config.load: TAO templates and key_defaults load; overrides; placeholders; round trips."""
from __future__ import annotations

import pytest
import yaml

from stereo.config.errors import SpecError
from stereo.config.load import (
    apply_key_defaults,
    load_spec,
    parse_override,
    resolve_spec,
    save_spec_yaml,
    spec_to_dict,
)
from stereo.config.model import FFS_BP2
from stereo.config.spec import ExperimentSpec


@pytest.mark.parametrize("action", ["train", "evaluate", "inference", "export"])
def test_ffs_spec_templates_load_and_validate(filled_template, action):
    resolved = resolve_spec(filled_template(action), action=action)
    spec = resolved.spec
    assert isinstance(spec, ExperimentSpec)
    assert resolved.warnings == []
    assert spec.model.model_type == "FastFoundationStereo"
    for name, value in FFS_BP2.items():
        assert getattr(spec.model, name) == value, name
    assert spec.dataset.max_disparity == 192


def test_train_template_values_reach_the_dataclasses(filled_template):
    spec = load_spec(filled_template("train"))
    assert spec.train.optim.lr == pytest.approx(1e-5)
    assert spec.train.optim.warmup_steps == 0
    assert spec.dataset.train_dataset.data_sources[0].dataset_name == "Middlebury"
    assert spec.dataset.train_dataset.augmentation.crop_size == [320, 736]


def test_deploy_template_loads_with_workspace_warning(filled_template):
    resolved = resolve_spec(filled_template("deploy"))
    assert resolved.spec.gen_trt_engine.tensorrt.data_type == "fp16"
    assert resolved.spec.evaluate.trt_engine.endswith(".engine")
    [warning] = resolved.warnings
    assert warning.key == "gen_trt_engine.tensorrt.workspace_size" and "MiB" in warning.message
    assert "4096" in warning.render()


def test_skill_info_key_defaults_load(tao_skill_dir):
    info = yaml.safe_load((tao_skill_dir / "references" / "skill_info.yaml").read_text())
    raw = apply_key_defaults(info["key_defaults"], {"dataset": {"max_disparity": 192}})
    spec = load_spec(raw)
    for name, value in FFS_BP2.items():
        assert getattr(spec.model, name) == value, name
    assert spec.model.valid_iters == 8


def test_apply_key_defaults_keeps_values_the_spec_sets():
    dotted = {"model.max_disparity": 192, "dataset.train_dataset.data_sources[0].data_file": "a"}
    raw = apply_key_defaults(dotted, {"model": {"max_disparity": 416}})
    assert raw["model"]["max_disparity"] == 416
    assert raw["dataset"]["train_dataset"]["data_sources"] == [{"data_file": "a"}]


def test_unfilled_placeholder_is_an_error_naming_the_key(tao_skill_dir, tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text((tao_skill_dir / "references" / "spec_template_train.yaml").read_text())
    with pytest.raises(SpecError) as info:
        load_spec(path)
    lines = str(info.value).splitlines()
    needle = ": results_dir: unfilled template placeholder <out_dir>"
    assert any(line.startswith(f"{path}:") and needle in line for line in lines)
    needle = "train.pretrained_model_path: unfilled template placeholder <bp2_ckpt_path>"
    assert any(needle in line for line in lines)


def test_dotlist_overrides_set_values_including_list_items():
    spec = load_spec({}, ["train.optim.lr=1e-5", "dataset.train_dataset.data_sources[0].dataset_name=Kitti",
                          "dataset.train_dataset.data_sources[0].data_file=/d/train.txt",
                          "dataset.train_dataset.augmentation.crop_size=[256, 512]", "train.max_steps=20"])
    assert spec.train.optim.lr == pytest.approx(1e-5)
    assert spec.dataset.train_dataset.data_sources[0].data_file == "/d/train.txt"
    assert spec.dataset.train_dataset.augmentation.crop_size == [256, 512]
    assert spec.train.max_steps == 20


def test_overrides_get_the_same_checks_and_say_they_came_from_the_command_line(write_spec):
    path = write_spec("train:\n  num_epochs: 2\n")
    with pytest.raises(SpecError) as info:
        load_spec(path, ["train.optim.lr=0.5", "train.num_epoch=3"])
    lines = str(info.value).splitlines()
    needle = "command line: train.optim.lr: out of range: must be in [1e-06, 0.01] (got 0.5)"
    assert any(needle in line for line in lines)
    assert any("command line: train.num_epoch: unknown key" in line and "'train.num_epochs'" in line
               for line in lines)


def test_override_without_equals_is_reported():
    with pytest.raises(ValueError, match="not key=value"):
        parse_override("train.optim.lr")
    with pytest.raises(SpecError, match="not key=value"):
        load_spec({}, ["train.optim.lr"])


def test_save_and_reload_round_trip(tmp_path):
    spec = load_spec({"model": {"max_disparity": 192}, "dataset": {"max_disparity": 192}}, ["train.seed=7"])
    path = save_spec_yaml(spec, tmp_path / "out" / "experiment.yaml")
    again = load_spec(path)
    assert spec_to_dict(again) == spec_to_dict(spec)
    assert again.train.seed == 7


def test_tao_null_strings_and_string_booleans_are_accepted():
    spec = load_spec({"encryption_key": None, "train": {"pretrained_model_path": None},
                      "dataset": {"train_dataset": {"augmentation": {"do_flip": "False"}}}})
    assert spec.encryption_key == "" and spec.train.pretrained_model_path == ""
    assert spec.dataset.train_dataset.augmentation.do_flip is False


def test_trt_data_type_is_case_insensitive():
    spec = load_spec({"gen_trt_engine": {"tensorrt": {"data_type": "FP16"}}})
    assert spec.gen_trt_engine.tensorrt.data_type == "fp16"
