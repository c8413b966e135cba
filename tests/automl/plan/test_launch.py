"""automl/plan/launch.py: the plan and its review, decided before anything runs (no Ray here)."""
import json
from pathlib import Path

import pytest

from automl.plan.configs import RunConfig, SearchConfig, TuneConfig
from automl.errors import LaunchError
from automl.plan.launch import LaunchPlan, build_plan, load_plan
from automl.plan.review import review

TAO_FFS = Path(__file__).resolve().parents[2] / "fixtures" / "tao_skill_ffs" / "tao-train-fast-foundation-stereo"


def _data_overrides(root):
    from stereo.data.synthetic import generate

    tr = generate(root / "train", "fsd", n=4, height=32, width=64, max_disparity=24, seed=0)
    va = generate(root / "val", "fsd", n=1, height=32, width=64, max_disparity=24, seed=1)
    return [f"dataset.train_dataset.data_sources[0].data_file={tr}",
            "dataset.train_dataset.data_sources[0].dataset_name=FSD",
            f"dataset.val_dataset.data_sources[0].data_file={va}",
            "dataset.val_dataset.data_sources[0].dataset_name=FSD",
            "train.optim.lr_steps=[1]"]  # a milestone inside these short runs keeps lr_decay live


def test_tiny_demo_sweep_plan_and_review(tmp_path):
    plan = build_plan(SearchConfig(skill="tiny-demo",
                                   overrides=_data_overrides(tmp_path) + ["learning_rate=5e-4", "num_epochs=4"]),
                      tune=TuneConfig(num_samples=5, max_concurrent=2), where=RunConfig(output=str(tmp_path / "run")),
                      gpus_available=0)
    assert plan.sweep and plan.spec_problems == []
    assert plan.overrides[-2:] == ["train.optim.lr=5e-4", "train.num_epochs=4"]  # shorthands expanded
    assert plan.trial_shape["steps_per_epoch"] == 2 and plan.trial_shape["validation_steps"] == [2, 4, 6, 8]
    assert plan.base_spec["train"]["num_epochs"] == 4 and plan.base_spec["model"]["volume_dim"] == 8
    assert plan.metric == "val/epe" and plan.mode == "min" and plan.max_t == 4
    # the user fixed the learning rate (learning_rate= is train.optim.lr): it is not searched, its value wins
    assert list(plan.space["parameters"]) == ["train.optim.lr_decay"] and plan.fixed == {"train.optim.lr": "5e-4"}
    text = review(plan)
    for needle in ("decision     sweep (policy auto)", "search_spaces/tiny_demo.yaml", "uniform [0.05, 1]",
                   "note: train.optim.lr fixed at 5e-4 by your override; not searched",
                   "tpe: Optuna TPESampler", "Bayesian GP", "asha: ASHA", "max_t 4", "5 trial(s), at most 2 at a time",
                   "1 CPU / 0 GPU per trial", "no GPU on this machine: trials train on CPU",
                   f"output       {tmp_path / 'run'}", "mlflow.db", f"automl run --resume {tmp_path / 'run'}"):
        assert needle in text, needle


def test_policy_off_is_a_plain_run_with_its_reason(tmp_path):
    plan = build_plan(SearchConfig(skill="tiny-demo", request="please, no HPO"), where=RunConfig(output=str(tmp_path)))
    assert not plan.sweep and plan.decision.policy_used == "off"
    text = review(plan)
    assert 'the request says "no hpo"' in text and "one plain training run" in text and "algorithm" not in text


def test_template_placeholders_make_the_plan_not_ready(tmp_path):
    plan = build_plan(SearchConfig(skill="tiny-demo"), where=RunConfig(output=str(tmp_path)))
    assert any("<train_annotations>" in p for p in plan.spec_problems)
    assert "NOT READY" in review(plan)


def test_each_problem_names_where_its_key_came_from(tmp_path):
    plan = build_plan(SearchConfig(skill="tiny-demo", overrides=["learning_rat=1e-3"]),
                      where=RunConfig(output=str(tmp_path)))
    template = "skills/tiny-demo/references/spec_template_train.yaml:"
    assert any(p.startswith("command line: learning_rat: unknown key") for p in plan.spec_problems), plan.spec_problems
    placeholder = next(p for p in plan.spec_problems if "<train_annotations>" in p)
    assert template in placeholder and not placeholder.startswith("<spec>"), placeholder


def test_tao_skill_directory_works_unchanged(tmp_path):
    plan = build_plan(SearchConfig(skill_dir=str(TAO_FFS)),
                      tune=TuneConfig(algorithm="bayesian", scheduler="hyperband"),
                      where=RunConfig(output=str(tmp_path)))
    assert plan.sweep and plan.search_space_file.endswith("fast_foundation_stereo.yaml")
    assert "train.optim.lr" in plan.space["parameters"]
    text = review(plan)
    assert "tao-train-fast-foundation-stereo" in text and "GPSampler" in text and "hyperband" in text


def test_bad_options_name_themselves(tmp_path):
    with pytest.raises(LaunchError, match="exactly one of --skill"):
        build_plan(SearchConfig(), where=RunConfig(output=str(tmp_path)))
    with pytest.raises(LaunchError, match="--num-samples 0 must be >= 1"):
        build_plan(SearchConfig(skill="tiny-demo"), tune=TuneConfig(num_samples=0),
                   where=RunConfig(output=str(tmp_path)))
    with pytest.raises(LaunchError, match="--algorithm 'smac'"):
        build_plan(SearchConfig(skill="tiny-demo"), tune=TuneConfig(algorithm="smac"),
                   where=RunConfig(output=str(tmp_path)))
    with pytest.raises(LaunchError, match="--resume .*launch.json"):
        load_plan(tmp_path / "nothing")


def test_plan_round_trips_through_launch_json(tmp_path):
    plan = build_plan(SearchConfig(skill="tiny-demo", overrides=_data_overrides(tmp_path)),
                      where=RunConfig(output=str(tmp_path / "run")))
    plan.save()
    again = load_plan(tmp_path / "run")
    assert again.to_dict() == json.loads(json.dumps(plan.to_dict()))
    assert isinstance(again, LaunchPlan) and again.search_space().names == ("train.optim.lr", "train.optim.lr_decay")
    fixed = build_plan(SearchConfig(skill="tiny-demo", overrides=["train.optim.lr_decay=0.3"]),
                       where=RunConfig(output=str(tmp_path / "fixed")))
    fixed.save()
    assert load_plan(tmp_path / "fixed").search_space().names == ("train.optim.lr",)  # a resume searches the same
