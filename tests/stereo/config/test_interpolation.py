"""stereo.config.interpolation: `${...}` resolves in every field before the type checks; failures are one
line each (file:line, key, fix) and exit 2 through `depth_net validate`."""
from __future__ import annotations

import pytest
import yaml

from stereo.cli import main
from stereo.config.errors import SpecError
from stereo.config.load import load_spec, save_spec_yaml
from stereo.config.spec import ExperimentSpec


def _errors(source, overrides=()):
    with pytest.raises(SpecError) as info:
        load_spec(source, overrides)
    return str(info.value).splitlines()


def test_string_field_uses_another_key_or_its_default(write_spec):
    default = ExperimentSpec().model.model_type
    assert load_spec({"results_dir": "/runs/${model.model_type}/x"}).results_dir == f"/runs/{default}/x"
    spec = load_spec(write_spec("""
        results_dir: /runs/${model.model_type}-${model.encoder}
        model:
          model_type: FoundationStereo
          encoder: vits
        """))
    assert spec.results_dir == "/runs/FoundationStereo-vits"


def test_numeric_field_takes_the_referenced_value_with_its_type(write_spec):
    spec = load_spec(write_spec("""
        train:
          num_epochs: 3
          max_steps: ${train.num_epochs}
          optim:
            lr: ${train.optim.min_lr}
            min_lr: 2.0e-5
        """))
    assert spec.train.max_steps == 3 and type(spec.train.max_steps) is int
    assert spec.train.optim.lr == pytest.approx(2e-5) and type(spec.train.optim.lr) is float


def test_reference_to_another_section_and_a_whole_section(write_spec):
    spec = load_spec(write_spec("""
        model:
          max_disparity: 192
        dataset:
          max_disparity: ${model.max_disparity}
          train_dataset:
            data_sources:
              - dataset_name: Kitti
                data_file: /d/train.txt
          val_dataset:
            data_sources: ${dataset.train_dataset.data_sources}
        """))
    assert spec.dataset.max_disparity == 192
    [source] = spec.dataset.val_dataset.data_sources
    assert (source.dataset_name, source.data_file) == ("Kitti", "/d/train.txt")
    assert source is not spec.dataset.train_dataset.data_sources[0]


def test_resolved_value_is_type_checked_like_a_written_one():
    [line] = _errors({"train": {"max_steps": "${results_dir}"}, "results_dir": "/runs"})
    assert "train.max_steps: expected an integer (got '/runs')" in line


def test_override_may_interpolate_and_the_saved_spec_holds_the_value(tmp_path):
    spec = load_spec({"train": {"num_epochs": 4}}, ["train.max_steps=${train.num_epochs}"])
    assert spec.train.max_steps == 4
    again = yaml.safe_load(save_spec_yaml(spec, tmp_path / "experiment.yaml").read_text())
    assert again["train"]["max_steps"] == 4


def test_omegaconf_env_resolver(monkeypatch):
    monkeypatch.setenv("STEREO_TEST_DATA_ROOT", "/data/kitti")
    spec = load_spec({"results_dir": "${oc.env:STEREO_TEST_DATA_ROOT}/runs"})
    assert spec.results_dir == "/data/kitti/runs"


def test_missing_reference_is_one_line_with_the_fix_and_exit_2(write_spec, capsys):
    path = write_spec("""
        model:
          model_type: FoundationStereo
        train:
          num_epochs: ${train.max_epochs_from_somewhere}
          max_steps: ${train.num_epoch}
        """)
    assert main(["validate", "-e", str(path)]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 2, err
    assert lines[0].startswith(f"{path}:4: train.num_epochs: interpolation refers to "
                               "'train.max_epochs_from_somewhere', which the spec does not have")
    assert "(got '${train.max_epochs_from_somewhere}')" in lines[0]
    assert lines[1].startswith(f"{path}:5: train.max_steps: interpolation refers to 'train.num_epoch'")
    assert "fix: did you mean '${train.num_epochs}'?" in lines[1]


def test_cycle_is_reported_on_each_key_and_nothing_else():
    lines = _errors({"train": {"num_epochs": "${train.max_steps}", "max_steps": "${train.num_epochs}"}})
    assert len(lines) == 2
    for key, line in zip(("train.max_steps", "train.num_epochs"), lines):
        assert f"{key}: interpolation cycle" in line and "fix: write a plain value" in line


def test_bad_syntax_and_unknown_resolver_name_the_key():
    lines = _errors({"results_dir": "/runs/${model.model_type", "model_name": "${nope:x}"})
    assert len(lines) == 2
    assert any(line.startswith("<spec>: model_name: cannot resolve interpolation") for line in lines)
    assert any(line.startswith("<spec>: results_dir: cannot resolve interpolation") for line in lines)


def test_command_line_reference_failure_says_command_line():
    [line] = _errors({}, ["train.max_steps=${train.nope}"])
    assert line.startswith("command line: train.max_steps: interpolation refers to 'train.nope'")


def test_spec_without_interpolation_is_untouched():
    raw = {"train": {"num_epochs": 2}}
    assert isinstance(load_spec(raw), ExperimentSpec) and raw == {"train": {"num_epochs": 2}}


def test_a_value_omegaconf_refuses_elsewhere_is_reported_once_by_the_type_checks(write_spec):
    path = write_spec("""
        model_name: 2024-01-31
        results_dir: /runs/${model.model_type}
        """)
    [line] = _errors(path)
    assert line.startswith(f"{path}:1: model_name: expected a string (got datetime.date(2024, 1, 31))")
