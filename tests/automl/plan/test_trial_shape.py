"""Pre-flight before anything starts (also under --dry-run): data files checked, one trial planned, a
sweep that could never score a trial refused with the real fix, dead searched keys reported and left
out. Plans and dry runs only: no Ray, no training here."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from automl.cli import main
from automl.plan.configs import RunConfig, SearchConfig
from automl.errors import LaunchError
from automl.plan.launch import build_plan, load_plan
from automl.plan.review import review

REPO = Path(__file__).resolve().parents[3]


def _data(root: Path, n_train: int = 4, n_val: int = 2) -> list:
    from stereo.data.synthetic import generate

    tr = generate(root / "train", "fsd", n=n_train, height=32, width=64, max_disparity=24, seed=0)
    va = generate(root / "val", "fsd", n=n_val, height=32, width=64, max_disparity=24, seed=1)
    return [f"dataset.train_dataset.data_sources[0].data_file={tr}",
            "dataset.train_dataset.data_sources[0].dataset_name=FSD",
            f"dataset.val_dataset.data_sources[0].data_file={va}",
            "dataset.val_dataset.data_sources[0].dataset_name=FSD"]


def _plan(tmp_path, *extra):
    overrides = [*_data(tmp_path), "train.optim.lr_steps=[1]", *extra]
    return build_plan(SearchConfig(skill="tiny-demo", overrides=overrides),
                      where=RunConfig(output=str(tmp_path / "run")), gpus_available=0)


def test_a_ready_plan_describes_one_trial(tmp_path):
    # 4 samples, batch 2: 2 steps an epoch; max_steps 5 cuts epoch 3, so validations after epochs 1 and 2 only
    plan = _plan(tmp_path, "train.num_epochs=4", "train.max_steps=5")
    assert plan.spec_problems == []
    shape = plan.trial_shape
    assert (shape["train_samples"], shape["val_samples"], shape["steps_per_epoch"]) == (4, 2, 2)
    assert shape["total_steps"] == 5 and shape["validation_steps"] == [2, 4]
    assert plan.max_t == 2  # what ASHA calls a full trial: the validations it really runs
    assert "2 step(s) per epoch; 5 optimizer step(s) in 3 epoch(s); 2 validation(s)" in review(plan)


def test_validation_interval_that_skips_the_last_epoch_counts_right(tmp_path):
    plan = _plan(tmp_path, "train.num_epochs=5", "train.max_steps=-1", "train.validation_interval=2")
    assert plan.trial_shape["validation_steps"] == [4, 8] and plan.max_t == 2


def test_max_steps_shorter_than_one_epoch_is_refused_with_the_real_fix(tmp_path, capsys):
    plan = _plan(tmp_path, "train.max_steps=1")  # an epoch is 2 steps: no validation would ever run
    assert len(plan.spec_problems) == 1
    problem = plan.spec_problems[0]
    assert problem.startswith("train.max_steps=1 ends every trial at step 1, before its first validation at step 2")
    assert "fix: set train.max_steps >= 2 (or -1 to let train.num_epochs decide)" in problem
    assert "NOT READY" in review(plan)
    args = ["run", "--skill", "tiny-demo", "--output", str(tmp_path / "cli"), "--no-probe", *_data(tmp_path),
            "train.max_steps=1"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not launching: train.max_steps=1" in err[0] and "train.max_steps >= 2" in err[0]
    assert main([*args, "--dry-run"]) == 2
    assert "NOT READY: train.max_steps=1" in capsys.readouterr().err
    assert not (tmp_path / "cli").exists()


def test_validation_interval_beyond_the_epochs_is_refused(tmp_path):
    plan = _plan(tmp_path, "train.num_epochs=2", "train.max_steps=-1", "train.validation_interval=3")
    assert plan.spec_problems == ["train.validation_interval=3 is more than train.num_epochs=2, so no trial would "
                                  "ever validate and none could be scored; fix: set train.validation_interval <= 2 "
                                  "(or train.num_epochs >= 3)"]


def test_a_batch_larger_than_the_training_split_is_refused(tmp_path):
    plan = _plan(tmp_path, "dataset.train_dataset.batch_size=8")
    assert len(plan.spec_problems) == 1
    assert "4 training sample(s) make no full batch of dataset.train_dataset.batch_size=8" in plan.spec_problems[0]
    assert "fix: set dataset.train_dataset.batch_size <= 4" in plan.spec_problems[0]


def test_a_sweep_needs_validation_data_a_plain_run_does_not(tmp_path):
    from stereo.data.synthetic import generate

    tr = generate(tmp_path / "only", "fsd", n=4, height=32, width=64, max_disparity=24, seed=0)
    spec = tmp_path / "spec.yaml"
    import yaml

    raw = yaml.safe_load((REPO / "skills/tiny-demo/references/spec_template_train.yaml").read_text())
    raw["dataset"]["train_dataset"]["data_sources"] = [{"dataset_name": "FSD", "data_file": str(tr)}]
    raw["dataset"]["val_dataset"]["data_sources"] = []
    spec.write_text(yaml.safe_dump(raw))
    sweep = build_plan(SearchConfig(skill="tiny-demo", spec=str(spec)), where=RunConfig(output=str(tmp_path / "s")),
                       gpus_available=0)
    assert any(p.startswith("dataset.val_dataset.data_sources is empty: a sweep scores every trial by its "
                            "validation") for p in sweep.spec_problems), sweep.spec_problems
    plain = build_plan(SearchConfig(skill="tiny-demo", spec=str(spec), policy="off"),
                       where=RunConfig(output=str(tmp_path / "p")))
    assert plain.spec_problems == [] and plain.trial_shape["val_samples"] == 0


def _env():
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


@pytest.mark.slow
def test_a_missing_data_file_is_refused_before_ray_starts(tmp_path):
    overrides = _data(tmp_path)
    overrides[2] = f"dataset.val_dataset.data_sources[0].data_file={tmp_path / 'nope' / 'val.txt'}"
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "automl.cli", "run", "--skill", "tiny-demo", "--output", str(run),
                           *overrides], env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    err = done.stderr.strip().splitlines()
    assert len(err) == 1, done.stderr
    assert err[0].startswith("automl: error: not launching: dataset.val_dataset.data_sources[0].data_file: "
                             f"annotation file {tmp_path / 'nope' / 'val.txt'} does not exist; set data_file")
    assert "NOT READY" in done.stdout and "probing" not in done.stdout  # nothing heavy ran
    assert not run.exists()  # no run folder, so no Ray session, no MLflow store, no trial


def test_a_missing_image_named_by_the_annotation_file_is_refused_with_its_line(tmp_path):
    overrides = _data(tmp_path)
    annotations = Path(overrides[0].partition("=")[2])
    gone = Path(annotations.parent / annotations.read_text().splitlines()[2].split()[1])
    gone.unlink()
    plan = build_plan(SearchConfig(skill="tiny-demo", overrides=overrides),
                      where=RunConfig(output=str(tmp_path / "run")), gpus_available=0)
    assert len(plan.spec_problems) == 1
    assert plan.spec_problems[0].startswith(f"dataset.train_dataset.data_sources[0].data_file: {annotations}:3: "
                                            f"right image {gone} does not exist")


# --- dead parameters ------------------------------------------------------------------------------
def _tao_overrides(tmp_path):
    return [*_data(tmp_path), "train.pretrained_model_path="]  # the template's <bp2_ckpt_path> placeholder


def test_lr_decay_is_dead_on_the_shipped_tao_ffs_skill(tmp_path, tao_skill_dir, capsys):
    """TAO's FFS template: num_epochs 1, MultiStepLR with its default milestone at step 1000; a fine-tune on
    a small dataset (4 steps) never reaches it, so lr_decay cannot change the run."""
    plan = build_plan(SearchConfig(skill_dir=str(tao_skill_dir), overrides=_tao_overrides(tmp_path)),
                      where=RunConfig(output=str(tmp_path / "run")), gpus_available=0)
    assert plan.spec_problems == [] and plan.sweep
    assert list(plan.dead) == ["train.optim.lr_decay"]
    why = plan.dead["train.optim.lr_decay"]
    assert "train.optim.lr_steps=[1000]" in why and "never multiplied by lr_decay" in why
    assert list(plan.space["parameters"]) == ["train.optim.lr"]  # left out of the search by default
    plan.save()
    assert load_plan(plan.run_dir).search_space().names == ("train.optim.lr",)  # and on resume
    assert main(["run", "--skill-dir", str(tao_skill_dir), "--output", str(tmp_path / "dry"), "--dry-run",
                 "--no-probe", *_tao_overrides(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "train.optim.lr: live" in out
    assert "train.optim.lr_decay: DEAD, left out of the search: MultiStepLR milestones" in out


def test_keep_dead_params_searches_them_anyway(tmp_path, tao_skill_dir, capsys):
    plan = build_plan(SearchConfig(skill_dir=str(tao_skill_dir), overrides=_tao_overrides(tmp_path),
                                   keep_dead_params=True),
                      where=RunConfig(output=str(tmp_path / "run")), gpus_available=0)
    assert list(plan.dead) == ["train.optim.lr_decay"]
    assert list(plan.space["parameters"]) == ["train.optim.lr", "train.optim.lr_decay"]
    assert "train.optim.lr_decay: DEAD, searched anyway (--keep-dead-params)" in review(plan)


def test_a_milestone_inside_the_run_makes_lr_decay_live(tmp_path, tao_skill_dir):
    plan = build_plan(SearchConfig(skill_dir=str(tao_skill_dir),
                                   overrides=[*_tao_overrides(tmp_path), "train.optim.lr_steps=[2]"]),
                      where=RunConfig(output=str(tmp_path / "run")), gpus_available=0)
    assert plan.dead == {} and list(plan.space["parameters"]) == ["train.optim.lr", "train.optim.lr_decay"]


def test_every_searched_key_dead_is_plain_with_auto_and_an_error_with_on(tmp_path):
    # learning_rate= fixes lr; lr_decay is dead (milestone 16 beyond the 2-step run): nothing left to search
    overrides = [*_data(tmp_path), "learning_rate=1e-3"]
    plan = build_plan(SearchConfig(skill="tiny-demo", overrides=overrides), where=RunConfig(output=str(tmp_path / "a")),
                      gpus_available=0)
    assert not plan.sweep
    reason = plan.decision.reasons[-1]  # the fixed key is named as fixed, not as dead
    assert reason.startswith("every searched parameter is fixed by your overrides or dead in this run "
                             "(train.optim.lr fixed at 1e-3; train.optim.lr_decay: "), reason
    with pytest.raises(LaunchError, match="--keep-dead-params to sweep them anyway"):
        build_plan(SearchConfig(skill="tiny-demo", overrides=overrides, policy="on"),
                   where=RunConfig(output=str(tmp_path / "b")), gpus_available=0)
