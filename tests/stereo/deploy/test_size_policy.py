"""evaluate/inference.on_size_mismatch: images that differ from a static graph are never fitted silently."""
import dataclasses
import json
import logging

import pytest

from stereo.errors import ActionError
from stereo.actions.status import read_status
from stereo.config.errors import SpecError
from stereo.config.load import load_spec
from stereo.data.synthetic import generate
from stereo.deploy.engine_io import EngineShape, plan_fit
from stereo.deploy.size_policy import SizeMismatches, ignored_request
from stereo.errors import SizeMismatchError
from stereo.models import preset_config


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {"large": generate(root / "large", "fsd", n=3, height=128, width=256, max_disparity=24, seed=4),
            "small": generate(root / "small", "fsd", n=2, height=60, width=100, max_disparity=24, seed=3)}


def _raw(tmp_path, ann, onnx, **evaluate):
    split = {"data_sources": [{"dataset_name": "FSD", "data_file": str(ann)}], "batch_size": 1, "workers": 0}
    return {"results_dir": str(tmp_path / "results"), "model": dataclasses.asdict(preset_config("ffs_tiny")),
            "dataset": {"max_disparity": 32, "test_dataset": split, "infer_dataset": split},
            "evaluate": {"trt_engine": str(onnx), **evaluate}, "inference": {"trt_engine": str(onnx), **evaluate}}


def test_policy_counts_and_refuses():
    static = EngineShape(hw=(64, 128))
    sizes = SizeMismatches(static)
    first = sizes.check(plan_fit((128, 256), (64, 128)), "a")
    assert "image ('a') is 128x256 but the graph input is 64x128: shrunk keeping the aspect ratio" in first
    assert sizes.check(plan_fit((60, 100), (64, 128))) is None  # counted, reported once at the end
    assert sizes.check(plan_fit((64, 128), (64, 128))) is None
    assert sizes.summary().startswith("2 of 3 images differ from the graph input size: 1 x 128x256 -> 64x128 "
                                      "resized+padded; 1 x 60x100 -> 64x128 padded")
    assert sizes.kpi() == {"size_mismatch_images": 2.0, "resized_images": 1.0, "padded_images": 1.0}
    with pytest.raises(SizeMismatchError, match="graph input is 64x128 and evaluate.on_size_mismatch is 'pad'"):
        SizeMismatches(static, "pad").check(plan_fit((128, 256), (64, 128)))
    assert SizeMismatches(static, "pad").check(plan_fit((60, 100), (64, 128))) is not None
    with pytest.raises(SizeMismatchError, match="set evaluate.on_size_mismatch: pad or resize"):
        SizeMismatches(static, "error").check(plan_fit((60, 100), (64, 128)))
    assert ignored_request(static, (480, 736), "evaluate").startswith(
        "evaluate.input_height/input_width ask for 480x736 but the graph is static at 64x128")
    assert ignored_request(static, (64, 128), "evaluate") is None
    assert ignored_request(EngineShape(), (480, 736), "evaluate") is None  # a dynamic graph takes it
    dynamic = SizeMismatches(EngineShape(), "error")  # rounding up to a multiple of 32 is the network's own pad
    assert dynamic.check(plan_fit((60, 100), (64, 128))) is None and dynamic.summary() is None


@pytest.mark.slow
def test_static_graph_mismatch_is_reported_everywhere(tmp_path, data, exported, caplog):
    from stereo.actions.deploy_eval import evaluate, inference
    from stereo.tracking import MlflowTracker, ensure_experiment

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ensure_experiment(uri, "depth_net")
    tracker = MlflowTracker(uri)
    raw = _raw(tmp_path, data["large"], exported["static"].onnx_file)
    with caplog.at_level(logging.WARNING):
        res = evaluate(load_spec(raw, action="evaluate"), tracker=tracker)
    line = "3 of 3 images differ from the graph input size: 3 x 128x256 -> 64x128 resized+padded"
    console = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("image ('") and "is 128x256 but the graph input is 64x128" in m for m in console)
    assert any(m.startswith(line) for m in console)
    out = tmp_path / "results" / "evaluate"
    status = read_status(out)
    warned = [s for s in status if s.get("verbosity") == "WARNING"]
    assert len(warned) == 1 and warned[0]["message"].startswith(line)
    assert status[-1]["status"] == "SUCCESS" and line in status[-1]["message"]
    assert status[-1]["kpi"]["size_mismatch_images"] == 3.0 and status[-1]["kpi"]["resized_images"] == 3.0
    results = json.loads((out / "results.json").read_text())
    assert results["size_mismatch"].startswith(line) and results["on_size_mismatch"] == "resize"
    (run,) = tracker.find_runs("depth_net", tags={"action": "evaluate"})
    assert run.tags["size_mismatch"].startswith(line) and run.metrics["size_mismatch_images"] == 3.0
    assert res.kpi["resized_images"] == 3.0

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        inf = inference(load_spec(raw, action="inference"), tracker=False)
    assert inf.status == "SUCCESS" and any(r.getMessage().startswith(line) for r in caplog.records)
    assert read_status(tmp_path / "results" / "inference")[-1]["kpi"]["size_mismatch_images"] == 3.0


@pytest.mark.slow
@pytest.mark.parametrize("test, policy, match", [
    ("large", "pad", "is 128x256 but the graph input is 64x128 and evaluate.on_size_mismatch is 'pad'"),
    ("small", "error", "is 60x100 but the graph input is 64x128 and evaluate.on_size_mismatch is 'error'"),
])
def test_refusing_policies_are_bad_input(tmp_path, data, exported, test, policy, match):
    from stereo.actions.deploy_eval import evaluate

    raw = _raw(tmp_path, data[test], exported["static"].onnx_file, on_size_mismatch=policy)
    with pytest.raises(ActionError, match=match) as err:
        evaluate(load_spec(raw, action="evaluate"), tracker=False)
    assert err.value.exit_code == 2


def test_unknown_policy_is_a_spec_error(tmp_path, data, exported):
    with pytest.raises(SpecError, match="evaluate.on_size_mismatch.*not one of resize, pad, error"):
        load_spec(_raw(tmp_path, data["small"], exported["static"].onnx_file, on_size_mismatch="stretch"))
