"""automl/plan/launch.py + automl/plan/resources.py: what the user fixed, where the output goes, GPUs per trial,
option weights, and that planning never writes into a skill (pure planning: no Ray, no GPU needed)."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from automl.cli import main
from automl.plan.configs import RunConfig, SearchConfig, TuneConfig
from automl.errors import LaunchError
from automl.plan.launch import build_plan, load_plan
from automl.plan.review import review
from automl.plan.resources import visible_gpus
from automl.plan.skills import SKILLS_ROOT

TAO_FFS = Path(__file__).resolve().parents[2] / "fixtures" / "tao_skill_ffs" / "tao-train-fast-foundation-stereo"


# --- overrides of searched keys ----------------------------------------------------------------------
def test_every_searched_key_fixed_with_policy_auto_is_one_plain_run(tmp_path):
    plan = build_plan(SearchConfig(skill="tiny-demo", overrides=["learning_rate=5e-4", "train.optim.lr_decay=0.5"]),
                      where=RunConfig(output=str(tmp_path)))
    assert not plan.sweep and plan.decision.policy_used == "auto"
    assert plan.fixed == {"train.optim.lr": "5e-4", "train.optim.lr_decay": "0.5"}
    reason = plan.decision.reasons[-1]
    assert reason == ("your overrides fix every searched parameter (train.optim.lr fixed at 5e-4, "
                      "train.optim.lr_decay fixed at 0.5), so there is nothing to search: one plain training run "
                      "with your values")
    text = review(plan)
    assert reason in text and "one plain training run (train action), no Ray" in text
    assert plan.base_spec["train"]["optim"]["lr_decay"] == 0.5  # the plain run trains with the user's values


@pytest.mark.parametrize("policy, request_text", [("on", None), (None, "enable AutoML")])
def test_every_searched_key_fixed_with_policy_on_is_an_error_with_the_fix(tmp_path, policy, request_text):
    with pytest.raises(LaunchError, match=r"AutoML is on, but your overrides fix every searched parameter "
                                          r"\(train.optim.lr fixed at 5e-4, train.optim.lr_decay fixed at 0.5\), so "
                                          r"there is nothing to search; drop one of those overrides, pass "
                                          r"--search-space with other parameters, or use --policy off"):
        build_plan(SearchConfig(skill="tiny-demo", policy=policy, request=request_text,
                                overrides=["learning_rate=5e-4", "train.optim.lr_decay=0.5"]),
                   where=RunConfig(output=str(tmp_path)))


def test_a_fixed_key_outside_the_space_changes_nothing(tmp_path):
    plan = build_plan(SearchConfig(skill="tiny-demo", overrides=["train.optim.weight_decay=1e-3"]),
                      where=RunConfig(output=str(tmp_path)))
    assert plan.sweep and plan.fixed == {} and list(plan.space["parameters"]) == ["train.optim.lr",
                                                                                   "train.optim.lr_decay"]


def test_shorthand_fix_on_the_real_tao_skill(tmp_path):
    plan = build_plan(SearchConfig(skill_dir=str(TAO_FFS), overrides=["learning_rate=2e-5"]),
                      where=RunConfig(output=str(tmp_path)))
    assert plan.sweep and list(plan.space["parameters"]) == ["train.optim.lr_decay"]
    assert "train.optim.lr fixed at 2e-5 by your override; not searched" in review(plan)


# --- results_dir= ----------------------------------------------------------------------------------
def test_results_dir_override_is_the_output_folder(tmp_path):
    plan = build_plan(SearchConfig(skill="tiny-demo", overrides=[f"results_dir={tmp_path / 'out'}"]))
    assert plan.run_dir == str((tmp_path / "out").resolve())
    assert not any(o.startswith("results_dir=") for o in plan.overrides)
    same = build_plan(SearchConfig(skill="tiny-demo", overrides=[f"results_dir={tmp_path / 'out'}"]),
                      where=RunConfig(output=str(tmp_path / "out")))
    assert same.run_dir == plan.run_dir


def test_results_dir_and_output_that_disagree_are_refused(tmp_path):
    with pytest.raises(LaunchError, match=r"results_dir=.*a and --output .*b name two different run folders; "
                                          "pass one of them"):
        build_plan(SearchConfig(skill="tiny-demo", overrides=[f"results_dir={tmp_path / 'a'}"]),
                   where=RunConfig(output=str(tmp_path / "b")))


def test_train_results_dir_in_a_sweep_is_refused(tmp_path):
    with pytest.raises(LaunchError, match="would make every trial write into one folder; drop it"):
        build_plan(SearchConfig(skill="tiny-demo", overrides=["train.results_dir=/tmp/x"]),
                   where=RunConfig(output=str(tmp_path)))
    plain = build_plan(SearchConfig(skill="tiny-demo", policy="off", overrides=["train.results_dir=/tmp/x"]),
                       where=RunConfig(output=str(tmp_path)))
    assert not plain.sweep  # one plain run may write where the user says


# --- GPUs per trial ----------------------------------------------------------------------------------
@pytest.mark.parametrize("requested, num_gpus, available, address, gpus, note", [
    (None, 1, 0, None, 0.0, "no GPU on this machine: trials train on CPU"),
    (None, 2, 0, None, 0.0, "train.num_gpus=2 runs 2 CPU processes per trial"),
    (None, 1, 4, None, 1.0, "1 GPU(s) per trial from train.num_gpus=1 (this machine has 4"),
    (None, 2, 4, None, 2.0, "2 GPU(s) per trial from train.num_gpus=2"),
    (None, 1, None, "10.0.0.1:6379", 0.0, "joining a cluster, GPUs are not derived; pass --gpus-per-trial 1"),
    (0.0, 1, 2, None, 0.0, "--gpus-per-trial 0: trials train on CPU although this machine has 2 GPU(s)"),
    (0.5, 1, 1, None, 0.5, "0.5 GPU per trial (--gpus-per-trial) (trials share a GPU), train.num_gpus=1"),
    (2.0, 2, None, "10.0.0.1:6379", 2.0, "2 GPU per trial (--gpus-per-trial), train.num_gpus=2"),
])
def test_gpus_per_trial_are_reconciled_with_num_gpus(tmp_path, requested, num_gpus, available, address, gpus, note):
    plan = build_plan(SearchConfig(skill="tiny-demo", overrides=[f"train.num_gpus={num_gpus}"]),
                      where=RunConfig(output=str(tmp_path), gpus_per_trial=requested, ray_address=address),
                      gpus_available=available)
    assert plan.gpus_per_trial == gpus
    assert any(note in n for n in plan.resource_notes), plan.resource_notes
    text = review(plan)
    assert f"{gpus:g} GPU per trial" in text and note in text


@pytest.mark.parametrize("requested, num_gpus, available, words", [
    (None, 2, 1, r"train.num_gpus=2 but this machine has 1 GPU\(s\), so no trial could start; set "
                 r"train.num_gpus=1"),
    (1.0, 2, 2, r"--gpus-per-trial 1 but train.num_gpus=2: .* pass --gpus-per-trial 2 or train.num_gpus=1"),
    (2.0, 1, 2, r"--gpus-per-trial 2 but train.num_gpus=1: .* pass --gpus-per-trial 1 or train.num_gpus=2"),
    (0.5, 2, 2, r"--gpus-per-trial 0.5 shares one GPU between trials, but train.num_gpus=2"),
    (1.5, 1, 2, r"--gpus-per-trial 1.5: give a whole number of GPUs"),
    (1.0, 1, 0, r"--gpus-per-trial 1 but this machine has 0 GPU\(s\) visible, so no trial could start; pass "
                r"--gpus-per-trial 0"),
    (-1.0, 1, 0, r"--gpus-per-trial -1 must be >= 0"),
])
def test_contradicting_gpu_settings_are_refused_with_the_fix(tmp_path, requested, num_gpus, available, words):
    with pytest.raises(LaunchError, match=words):
        build_plan(SearchConfig(skill="tiny-demo", overrides=[f"train.num_gpus={num_gpus}"]),
                   where=RunConfig(output=str(tmp_path), gpus_per_trial=requested), gpus_available=available)


def test_default_concurrency_fits_the_gpus(tmp_path):
    plan = build_plan(SearchConfig(skill="tiny-demo", overrides=["train.num_gpus=2"]),
                      where=RunConfig(output=str(tmp_path), cpus_per_trial=0.1), gpus_available=3)
    assert (plan.gpus_per_trial, plan.max_concurrent) == (2.0, 1)
    given = build_plan(SearchConfig(skill="tiny-demo"), tune=TuneConfig(max_concurrent=4),
                       where=RunConfig(output=str(tmp_path)), gpus_available=1)
    assert given.max_concurrent == 4 and any("only 1 trial(s) fit on the GPUs at once" in n
                                             for n in given.resource_notes)


def test_gpus_per_trial_round_trip_through_launch_json(tmp_path):
    plan = build_plan(SearchConfig(skill="tiny-demo"), where=RunConfig(output=str(tmp_path / "run")), gpus_available=2)
    plan.save()
    again = load_plan(tmp_path / "run")
    assert (again.gpus_per_trial, again.resource_notes) == (1.0, plan.resource_notes)


def test_visible_gpus_follows_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert visible_gpus() == 0
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    physical = visible_gpus()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5,6,7,8,9")
    assert visible_gpus() == physical  # never more than the driver lists


# --- option_weights --------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm, why", [
    ("tpe", "TPESampler models the objective"),
    ("random", "Optuna's RandomSampler draws every categorical choice with equal probability"),
    ("grid", "the grid runs every choice once"), ("bayesian", "GPSampler models the objective"),
])
def test_review_says_option_weights_are_not_applied(tmp_path, algorithm, why):
    space = tmp_path / "weighted.yaml"
    space.write_text(yaml.safe_dump({"metric": "val/epe", "mode": "min", "parameters": {
        "train.optim.lr": {}, "train.optim.optimizer": {"choices": ["AdamW", "SGD"], "weights": [3, 1]}}}))
    plan = build_plan(SearchConfig(skill="tiny-demo", search_space=str(space)), tune=TuneConfig(algorithm=algorithm),
                      where=RunConfig(output=str(tmp_path)))
    assert plan.space["parameters"]["train.optim.optimizer"]["weights"] == [3.0, 1.0]
    text = review(plan)
    assert "one of ['AdamW', 'SGD'] (option_weights [3.0, 1.0] not applied, see the note)" in text
    assert (f"note: option_weights of train.optim.optimizer are NOT applied by --algorithm {algorithm}: {why}"
            in text)


# --- the policy and the plan never write into a skill ---------------------------------------------
def _digest(root: Path) -> dict:
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("skill_dir", [TAO_FFS, SKILLS_ROOT / "tiny-demo"], ids=["tao-ffs", "tiny-demo"])
def test_dry_run_and_plan_leave_the_skill_untouched(tmp_path, capsys, skill_dir):
    before = _digest(skill_dir)
    build_plan(SearchConfig(skill_dir=str(skill_dir), overrides=["learning_rate=1e-4"]),
               where=RunConfig(output=str(tmp_path / "plan")))
    build_plan(SearchConfig(skill_dir=str(skill_dir), policy="off"), where=RunConfig(output=str(tmp_path / "plan")))
    # the template's placeholders are not filled in: NOT READY, exit 2, and still nothing written
    assert main(["run", "--skill-dir", str(skill_dir), "--dry-run", "--output", str(tmp_path / "dry")]) == 2
    assert "launch review" in capsys.readouterr().out
    assert _digest(skill_dir) == before
    assert not (tmp_path / "dry").exists()


def test_plan_of_a_skill_without_template_leaves_it_untouched(tmp_path, capsys):
    skill = tmp_path / "skill"
    shutil.copytree(TAO_FFS, skill)
    (skill / "references" / "spec_template_train.yaml").unlink()
    before = _digest(skill)
    assert main(["run", "--skill-dir", str(skill), "--dry-run"]) == 2  # NOT READY: no base spec
    assert "not runnable until schemas are generated" in capsys.readouterr().out
    assert _digest(skill) == before and sorted(_digest(skill)) == sorted(before)
