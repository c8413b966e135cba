"""automl/plan/probe.py: one trial's peak memory and step time, measured in a real probe process and cached
per spec shape; the concurrency and duration the sweep plans from it."""
from __future__ import annotations

import re

import pytest

from automl.plan.configs import RunConfig, SearchConfig, TuneConfig
from automl.plan.launch import build_plan
from automl.plan.review import review
from automl.plan.probe import GIB, fit_plan, measure

GB = int(GIB)


def _plan(tmp_path, sweep_overrides, max_concurrent=None, num_samples=8, gpus_per_trial=None):
    return build_plan(SearchConfig(skill="tiny-demo", overrides=sweep_overrides(tmp_path, n_train=4)),
                      TuneConfig(max_concurrent=max_concurrent, num_samples=num_samples),
                      RunConfig(output=str(tmp_path / "run"), gpus_per_trial=gpus_per_trial), gpus_available=0)


@pytest.mark.slow
def test_the_probe_measures_one_trial_and_caches_it_per_shape(tmp_path, sweep_overrides, monkeypatch):
    monkeypatch.setenv("AUTOML_PROBE_CACHE", str(tmp_path / "cache"))
    plan = _plan(tmp_path, sweep_overrides, max_concurrent=2)
    first = measure(plan)
    assert "error" not in first, first
    assert first["device"] == "cpu" and first["threads"] == 1 and first["steps"] == 2
    assert first["crop"] == [32, 64] and first["batch"] == 2 and first["val_hw"] == [32, 64]
    assert first["seconds_per_step"] > 0 and first["val_seconds_per_batch"] > 0
    assert 100 * (1 << 20) < first["peak_host_bytes"] < 8 * GB  # a Python process with torch and a tiny model
    assert not first.get("cached") and first["probe_seconds"] > 0
    assert list((tmp_path / "cache").glob("*.json"))  # one entry for this shape, no leftovers
    assert not list((tmp_path / "cache").glob(".*"))
    text = review(plan)
    # the peak varies with the machine (a loaded run measured over 1 GB): check the form, not the digit
    assert re.search(r"\n  probe        peak \d+\.\d\d GB host memory; ", text), text
    assert "s per training step (crop [32, 64], batch 2, cpu" in text
    assert "estimate: " in text and " or more for the sweep (" in text and plan.probe["estimate_s"] > 0
    again = _plan(tmp_path, sweep_overrides)
    second = measure(again)
    assert second.get("cached") and second["seconds_per_step"] == first["seconds_per_step"]
    assert "cached " in review(again)


def _measurement(**kw):
    base = {"device": "cpu", "threads": 1, "crop": [320, 736], "batch": 2, "val_hw": [375, 1242], "steps": 2,
            "seconds_per_step": 2.0, "val_seconds_per_batch": 1.0, "setup_seconds": 1.0,
            "peak_host_bytes": 4 * GB, "peak_device_bytes": 0, "device_free_bytes": 0, "device_count": 0}
    return {**base, **kw}


def test_concurrency_is_lowered_to_what_fits_in_memory_and_said(tmp_path, sweep_overrides):
    plan = _plan(tmp_path, sweep_overrides, max_concurrent=4)
    info = fit_plan(plan, _measurement(), available=10 * GB)  # (10 - 1 GB for Ray) x 0.9 / 4 GB = 2 trials
    assert plan.max_concurrent == 2 and info["lowered_from"] == 4 and info["fits"] == 2
    assert "--max-concurrent lowered from 4 to 2: one trial peaks at 4.00 GB of host memory, 10.0 GB available" \
        in review(plan)


def test_concurrency_that_fits_is_kept(tmp_path, sweep_overrides):
    plan = _plan(tmp_path, sweep_overrides, max_concurrent=2)
    fit_plan(plan, _measurement(peak_host_bytes=1 * GB), available=20 * GB)
    assert plan.max_concurrent == 2 and "2 trial(s) at once fit" in review(plan)


def test_a_trial_that_does_not_fit_at_all_is_a_warning(tmp_path, sweep_overrides):
    plan = _plan(tmp_path, sweep_overrides, max_concurrent=2)
    fit_plan(plan, _measurement(peak_host_bytes=12 * GB), available=8 * GB)
    assert plan.max_concurrent == 1
    assert "WARNING: not even one trial fits" in review(plan)


def test_gpu_trials_sharing_a_gpu_fit_its_free_memory(tmp_path, sweep_overrides):
    """Two bp2 trials at 320x736 need ~2 x 9.7 GB: on one GPU with 16 GB free only one fits at a time."""
    plan = _plan(tmp_path, sweep_overrides, max_concurrent=2, gpus_per_trial=0.0)
    plan.gpus_per_trial = 0.5
    fit_plan(plan, _measurement(device="cuda", peak_host_bytes=3 * GB, peak_device_bytes=int(9.7 * GB),
                                device_free_bytes=16 * GB, device_count=1), available=100 * GB)
    assert plan.max_concurrent == 1
    assert "lowered from 2 to 1: one trial peaks at 10.20 GB of GPU memory (with the CUDA context)" in review(plan)


def test_the_estimate_is_rounds_of_full_trials(tmp_path, sweep_overrides):
    plan = _plan(tmp_path, sweep_overrides, max_concurrent=2, num_samples=8)
    info = fit_plan(plan, _measurement(peak_host_bytes=GB), available=100 * GB)
    shape = plan.trial_shape  # 2 steps, 1 validation of 1 batch
    per_trial = shape["total_steps"] * 2.0 + 1 * shape["val_batches"] * 1.0 + 1.0 + 1.0
    assert info["per_trial_s"] == pytest.approx(per_trial) and info["estimate_s"] == pytest.approx(10 + 4 * per_trial)


def test_a_failed_probe_is_said_and_changes_nothing(tmp_path, sweep_overrides):
    plan = _plan(tmp_path, sweep_overrides, max_concurrent=2)
    fit_plan(plan, {"error": "RuntimeError: boom"})
    assert plan.max_concurrent == 2 and "memory/time probe failed: RuntimeError: boom" in review(plan)
