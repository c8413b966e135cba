"""automl/plan/dead_params.py: which searched keys can change a run of a given length (pure rules)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from automl.plan.dead_params import check_dead, describe, mlflow_tags

TEMPLATE = Path(__file__).resolve().parents[3] / "skills" / "tiny-demo" / "references" / "spec_template_train.yaml"
FLOAT = {"kind": "float", "low": 0.05, "high": 1.0}


def _spec(**optim):
    from stereo.config.load import load_spec

    raw = yaml.safe_load(TEMPLATE.read_text())
    raw["results_dir"] = "/tmp/unused"
    for split in ("train_dataset", "val_dataset"):
        raw["dataset"][split]["data_sources"] = [{"dataset_name": "FSD", "data_file": "/nowhere/a.txt"}]
    raw["train"]["optim"].update(optim)
    return load_spec(raw, action="train")


@pytest.mark.parametrize("total, dead", [(16, True), (17, False), (100, False)])
def test_multistep_lr_decay_is_dead_until_a_milestone_is_reached(total, dead):
    found, _ = check_dead(_spec(lr_steps=[16]), total, {"train.optim.lr_decay": FLOAT})
    assert ("train.optim.lr_decay" in found) == dead  # milestone 16 applies from step 16, the 17th step


def test_step_lr_period_against_the_run():
    spec = _spec(lr_scheduler="StepLR", lr_step_size=50)
    dead, _ = check_dead(spec, 40, {"train.optim.lr_decay": FLOAT})
    assert "StepLR period train.optim.lr_step_size=50 is longer than this run (40" in dead["train.optim.lr_decay"]
    dead, _ = check_dead(spec, 40, {"train.optim.lr_step_size": {"kind": "int", "low": 60, "high": 200, "step": 1}})
    assert "every StepLR period searched (60+ steps)" in dead["train.optim.lr_step_size"]
    assert check_dead(spec, 400, {"train.optim.lr_decay": FLOAT}) == ({}, {})


@pytest.mark.parametrize("key, scheduler", [("train.optim.lr_step_size", "MultiStepLR"),
                                            ("train.optim.min_lr", "MultiStepLR"),
                                            ("train.optim.lr_decay", "CosineAnnealingLR"),
                                            ("train.optim.lr_steps", "OneCycleLR")])
def test_keys_the_scheduler_never_reads_are_dead(key, scheduler):
    dead, _ = check_dead(_spec(lr_scheduler=scheduler), 1000, {key: FLOAT})
    assert dead[key].startswith(f"train.optim.lr_scheduler is {scheduler}, which never reads it")


def test_a_searched_scheduler_or_run_length_is_not_judged():
    spec = _spec(lr_steps=[1000])
    dead, caveats = check_dead(spec, 10, {"train.optim.lr_decay": FLOAT,
                                          "train.optim.lr_scheduler": {"kind": "categorical", "choices": ["StepLR"]}})
    assert dead == {} and "lr_scheduler is searched" in caveats["train.optim.lr_decay"]
    dead, caveats = check_dead(spec, 10, {"train.optim.lr_decay": FLOAT,
                                          "train.num_epochs": {"kind": "int", "low": 1, "high": 9, "step": 1}})
    assert dead == {} and "train.num_epochs is searched" in caveats["train.optim.lr_decay"]


@pytest.mark.parametrize("key, words", [
    ("dataset.val_dataset.augmentation.color_aug_prob", "only the training split is augmented; val data never is"),
    ("dataset.test_dataset.batch_size", "the train action never reads dataset.test_dataset"),
    ("evaluate.batch_size", "the train action never reads evaluate"),
    ("dataset.train_dataset.augmentation.v_flip_prob", "vertical flips are never applied"),
    ("dataset.train_dataset.augmentation.h_flip_prob", "do_flip is false"),
    ("train.optim.momentum", "AdamW"),
    ("dataset.min_depth", "monocular depth only"),
])
def test_keys_the_train_action_never_reads_are_dead(key, words):
    dead, _ = check_dead(_spec(), 1000, {key: FLOAT})
    assert words in dead[key]


def test_live_keys_stay_and_a_long_warm_up_is_reported():
    searched = {"train.optim.lr": {"kind": "float", "low": 1e-4, "high": 1e-2, "log": True},
                "dataset.train_dataset.augmentation.color_aug_prob": FLOAT,
                "train.optim.warmup_steps": {"kind": "int", "low": 200, "high": 400, "step": 1}}
    dead, caveats = check_dead(_spec(), 100, searched)
    assert dead == {}
    assert "every warm-up (200+ steps) outlasts the run (100 steps)" in caveats["train.optim.warmup_steps"]
    lines = describe(dead, caveats, list(searched), kept=False)
    assert lines[0] == "train.optim.lr: live" and lines[2].startswith("train.optim.warmup_steps: live (every")


def test_parent_run_tags_name_each_dead_key_and_why():
    tags = mlflow_tags({"train.optim.lr_decay": "never applied"}, kept=False)
    assert tags["automl.dead.train.optim.lr_decay"] == "never applied"
    assert tags["automl.dead_params"] == '{"keys": ["train.optim.lr_decay"], "searched_anyway": false}'
    assert mlflow_tags({}, kept=False) == {}
