"""automl/plan/resources.py plan_workers: data-parallel trials (train.num_gpus > 1) planned, and what cannot run
refused before launch with the reason and the fix (LaunchError: exit 2, one line)."""
import os
import subprocess
import sys

import pytest

from automl.errors import LaunchError, exit_code_of
from automl.plan.configs import RunConfig, SearchConfig
from automl.plan.launch import build_plan, load_plan
from automl.plan.resources import ResourceError, cpus_per_worker, plan_workers
from automl.plan.review import review


def test_one_process_per_trial_is_the_plain_path():
    plan = plan_workers(num_gpus=1, gpus_per_trial=0.0, cpus_per_trial=2.0, cpus_available=2)
    assert (plan.workers, plan.use_gpu, plan.cpus_per_worker, plan.notes) == (1, False, 2.0, [])


@pytest.mark.parametrize("gpus, use_gpu, backend", [(0.0, False, "gloo"), (2.0, True, "nccl")])
def test_num_gpus_2_is_two_workers(gpus, use_gpu, backend):
    plan = plan_workers(num_gpus=2, gpus_per_trial=gpus, cpus_per_trial=1.0, cpus_available=8)
    assert (plan.workers, plan.use_gpu, plan.cpus_per_worker, plan.max_concurrent) == (2, use_gpu, 1.0, 4)
    assert "2 Ray Train workers per trial" in plan.notes[0] and f"DDP over {backend}" in plan.notes[0]


def test_cpus_per_trial_is_split_between_workers_at_least_one_each():
    assert cpus_per_worker(4.0, 2) == 2.0 and cpus_per_worker(1.0, 2) == 1.0 and cpus_per_worker(3.0, 1) == 3.0


@pytest.mark.parametrize("kwargs, words", [
    (dict(num_gpus=2, gpus_per_trial=0.0, strategy="fsdp"),
     r"train.distributed_strategy=fsdp with train.num_gpus=2 on CPU workers: FSDP needs CUDA GPUs; set "
     r"train.distributed_strategy=ddp"),
    (dict(num_gpus=2, gpus_per_trial=0.0, num_nodes=2),
     r"train.num_nodes=2 in a sweep: Ray Train places a trial's workers .* set train.num_nodes=1 and "
     r"train.num_gpus to the total number of workers \(4\)"),
    (dict(num_gpus=3, gpus_per_trial=0.0, cpus_available=2),
     r"train.num_gpus=3 runs 3 worker processes of 1 CPU each \(3 CPUs\) per trial, but this machine has 2 "
     r"CPU\(s\), so no trial could start; set train.num_gpus=2"),
    (dict(num_gpus=2, gpus_per_trial=0.0, cpus_per_trial=4.0, cpus_available=2),
     r"runs 2 worker processes of 2 CPU each \(4 CPUs\) per trial, but this machine has 2 CPU"),
])
def test_what_cannot_run_is_refused_with_the_fix(kwargs, words):
    with pytest.raises(ResourceError, match=words):
        plan_workers(**kwargs)


def test_fsdp_on_gpus_is_planned():
    assert plan_workers(num_gpus=2, gpus_per_trial=2.0, strategy="fsdp", cpus_available=4).use_gpu


def test_the_plan_carries_the_workers_and_caps_concurrency(tmp_path):
    plan = build_plan(SearchConfig(skill="tiny-demo", overrides=["train.num_gpus=2"]),
                      where=RunConfig(output=str(tmp_path / "run")), gpus_available=0)
    assert plan.workers_per_trial == 2 and plan.gpus_per_trial == 0.0
    assert plan.max_concurrent == max(1, (os.cpu_count() or 1) // 2)
    assert "data-parallel trials: 2 Ray Train workers per trial" in review(plan)
    plan.save()
    assert load_plan(tmp_path / "run").workers_per_trial == 2  # resume keeps the shape
    single = build_plan(SearchConfig(skill="tiny-demo"), where=RunConfig(output=str(tmp_path / "one")),
                        gpus_available=0)
    assert single.workers_per_trial == 1  # the 1-worker path is unchanged (no Ray Train)


@pytest.mark.parametrize("overrides, gpus, words", [
    (["train.num_gpus=2", "train.distributed_strategy=fsdp"], None, "FSDP needs CUDA GPUs"),
    (["train.num_gpus=2", "train.num_nodes=2"], None, "train.num_nodes=2 in a sweep"),
    (["train.num_gpus=2"], 1.0, "--gpus-per-trial 1 but train.num_gpus=2"),
])
def test_build_plan_refuses_before_launch(tmp_path, overrides, gpus, words):
    with pytest.raises(LaunchError, match=words) as info:
        build_plan(SearchConfig(skill="tiny-demo", overrides=overrides),
                   where=RunConfig(output=str(tmp_path), gpus_per_trial=gpus), gpus_available=2 if gpus else 0)
    assert exit_code_of(info.value) == 2


def test_cli_refuses_more_workers_than_cpus_in_one_line_exit_2(tmp_path):
    too_many = (os.cpu_count() or 1) + 1
    out = subprocess.run([sys.executable, "-m", "automl.cli", "run", "--skill", "tiny-demo", "--dry-run",
                          "--output", str(tmp_path / "run"), f"train.num_gpus={too_many}", "--gpus-per-trial", "0"],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    errors = [line for line in out.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and f"train.num_gpus={too_many} runs {too_many} worker processes" in errors[0], out.stderr
    assert not (tmp_path / "run").exists()


def test_an_explicit_max_concurrent_is_capped_with_a_note(tmp_path):
    from automl.plan.configs import TuneConfig

    cpus = os.cpu_count() or 1
    plan = build_plan(SearchConfig(skill="tiny-demo", overrides=["train.num_gpus=2"]),
                      tune=TuneConfig(max_concurrent=cpus + 4), where=RunConfig(output=str(tmp_path / "run")),
                      gpus_available=0)
    assert plan.max_concurrent == max(1, cpus // 2)
    assert any(f"--max-concurrent {cpus + 4}, but only {max(1, cpus // 2)} data-parallel trial(s) fit" in n
               for n in plan.resource_notes), plan.resource_notes
