"""Drift statistics and finding the training run a checkpoint came from."""
import math

import pytest
import torch

from stereo.deploy.drift import DriftReport, drift_stats, find_training_run
from stereo.checkpoints import save_checkpoint
from stereo.tracking.memory import MemoryTracker


def test_drift_stats_golden():
    ref = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    dep = torch.tensor([[1.0, 2.5], [6.0, 4.0]])
    s = drift_stats(ref, dep)
    assert s["pixels"] == 4 and s["mean_abs"] == pytest.approx(0.875) and s["max_abs"] == pytest.approx(3.0)
    assert s["frac_over_2px"] == pytest.approx(0.25) and s["nonfinite_frac"] == 0.0
    expected = (1 + 5 + 18 + 16) / (math.sqrt(30) * math.sqrt(1 + 6.25 + 36 + 16))
    assert s["cosine"] == pytest.approx(expected)


def test_identical_maps_have_zero_drift_and_cosine_one():
    x = torch.rand(1, 8, 8) * 30
    s = drift_stats(x, x.clone())
    assert s["max_abs"] == 0 and s["cosine"] == pytest.approx(1.0)


def test_nonfinite_deploy_pixels_are_counted_not_averaged():
    ref = torch.ones(4)
    dep = torch.tensor([1.0, float("nan"), float("inf"), 1.0])
    s = drift_stats(ref, dep)
    assert s["nonfinite_frac"] == 0.5 and s["max_abs"] == 0.0
    report = DriftReport()
    report.update("a", ref, dep)
    report.update("b", ref, ref + 3)
    summary = report.summary()
    assert summary["drift_max_abs"] == 3.0 and summary["drift_frac_over_2px"] == 0.5
    assert summary["drift_nonfinite_frac"] == 0.25


def test_all_nan_deploy_output_is_an_error():
    report = DriftReport()
    report.update("a", torch.ones(4), torch.full((4,), float("nan")))
    with pytest.raises(ValueError, match="only NaN/inf"):
        report.summary()


def test_shapes_must_match():
    with pytest.raises(ValueError, match="same shape"):
        drift_stats(torch.ones(2, 2), torch.ones(2, 3))


def test_find_training_run_by_sidecar_meta_then_by_hash(tmp_path):
    tracker = MemoryTracker()
    train = tracker.start_run("train", experiment="depth_net", tags={"action": "train", "checkpoint_sha256": "abc"})
    other = tracker.start_run("evaluate", experiment="depth_net", tags={"action": "evaluate",
                                                                        "checkpoint_sha256": "abc"})
    state = {"w": torch.zeros(1)}
    with_meta = save_checkpoint(tmp_path / "a", state, config={}, meta={"mlflow_run_id": other.run_id})
    assert find_training_run(tracker, with_meta, "zzz") == other.run_id  # the sidecar names it explicitly
    stale = save_checkpoint(tmp_path / "b", state, config={}, meta={"mlflow_run_id": "gone"})
    assert find_training_run(tracker, stale, "abc") == train.run_id  # unknown id -> hash tag of a train run
    assert find_training_run(tracker, stale, "nope") is None
    assert find_training_run(None, stale, "abc") is None
