"""The deploy actions end to end on synthetic data: export, ORT evaluate/inference vs the PyTorch actions,
drift logged as a nested MLflow run, gen_trt_engine's checks and its CPU error."""
import csv
import dataclasses
import json

import numpy as np
import pytest

from stereo.actions.runner import ActionError
from stereo.actions.status import read_status
from stereo.config.load import load_spec
from stereo.data.synthetic import generate
from stereo.metrics import find_metric
from stereo.models import preset_config


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {"small": generate(root / "small", "fsd", n=2, height=60, width=100, max_disparity=24, seed=3),
            "large": generate(root / "large", "fsd", n=2, height=128, width=256, max_disparity=24, seed=4),
            "infer": generate(root / "infer", "generic", n=2, height=60, width=100, max_disparity=24, seed=5,
                              columns=2)}


def _split(ann, name="FSD", batch_size=2):
    return {"data_sources": [{"dataset_name": name, "data_file": str(ann)}], "batch_size": batch_size,
            "workers": 0}


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _raw(tmp_path, data, test="small", **sections):
    raw = {"results_dir": str(tmp_path / "results"),
           "dataset": {"max_disparity": 32, "test_dataset": _split(data[test]),
                       "infer_dataset": _split(data["infer"], "GenericDataset")},
           "model": dataclasses.asdict(preset_config("ffs_tiny"))}
    raw.update(sections)
    return raw


def test_export_action_writes_graph_sidecar_and_parity_kpi(tmp_path, data, ffs_checkpoint):
    from stereo.actions.export import export

    raw = _raw(tmp_path, data, export={"checkpoint": str(ffs_checkpoint), "onnx_file": "tiny.onnx",
                                       "input_height": 64, "input_width": 128, "valid_iters": 2})
    res = export(load_spec(raw), tracker=False)
    out = tmp_path / "results" / "export"
    assert res.status == "SUCCESS" and res.onnx_file == str(out / "tiny.onnx") and res.shape_mode == "dynamic_batch"
    side = json.loads((out / "tiny.onnx.json").read_text())
    assert side["source_checkpoint"]["sha256"] and side["valid_iters"] == 2
    assert read_status(out)[-1]["kpi"]["onnx_max_abs_diff"] < 1e-4
    with pytest.raises(ActionError, match="already exists.*overwrite") as err:
        export(load_spec(raw), tracker=False)
    assert err.value.exit_code == 2


def test_ort_evaluate_matches_pytorch_evaluate_when_padding(tmp_path, data, ffs_checkpoint, exported):
    from stereo.actions.deploy_eval import evaluate

    pyt = evaluate(load_spec(_raw(tmp_path / "pyt", data, evaluate={"checkpoint": str(ffs_checkpoint)})),
                   tracker=False)
    assert "val/epe" in pyt.kpi  # no engine named: the PyTorch action ran
    raw = _raw(tmp_path / "ort", data, evaluate={"trt_engine": str(exported["dynamic_hw"].onnx_file)})
    dep = evaluate(load_spec(raw), tracker=False)
    out = tmp_path / "ort" / "results" / "evaluate"
    # 60x100 images are padded to 64x128 exactly as the network pads itself: same numbers
    assert dep.kpi["epe"] == pytest.approx(pyt.kpi["val/epe"], abs=1e-4)
    assert find_metric(dep.kpi, "val/epe") == dep.kpi["epe"] and "epe_pooled" in dep.kpi
    results = json.loads((out / "results.json").read_text())
    assert results["fit_modes"] == {"pad": 2} and results["runtime"]["runtime"] == "onnxruntime"
    rows = _rows(out / "per_sample_metrics.csv")
    assert [r["name"] for r in rows] == [r["name"] for r in pyt.per_sample]
    assert read_status(out)[-1]["kpi"]["epe"] == pytest.approx(dep.kpi["epe"])


def test_static_engine_resizes_larger_images(tmp_path, data, exported):
    from stereo.actions.deploy_eval import evaluate

    raw = _raw(tmp_path, data, test="large", evaluate={"trt_engine": str(exported["static"].onnx_file)})
    res = evaluate(load_spec(raw), tracker=False)
    results = json.loads((tmp_path / "results" / "evaluate" / "results.json").read_text())
    assert results["fit_modes"] == {"resize+pad": 2} and np.isfinite(res.kpi["epe"])
    assert res.counts["images"] == 2


def test_drift_report_is_a_nested_mlflow_run_under_the_training_run(tmp_path, data, ffs_checkpoint, exported):
    from stereo.actions.deploy_eval import evaluate
    from stereo.models.checkpoints import checkpoint_sha256
    from stereo.tracking import MlflowTracker, ensure_experiment

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ensure_experiment(uri, "depth_net")
    tracker = MlflowTracker(uri)
    train = tracker.start_run("train", experiment="depth_net",
                              tags={"action": "train", "checkpoint_sha256": checkpoint_sha256(ffs_checkpoint)})
    tracker.log_metrics(train, {"val/epe": 3.0}, step=1)
    tracker.end_run(train)
    raw = _raw(tmp_path, data, evaluate={"checkpoint": str(ffs_checkpoint),
                                         "trt_engine": str(exported["dynamic_batch"].onnx_file)})
    raw["dataset"]["test_dataset"] = _split(data["large"])  # resized into the 64x128 graph
    res = evaluate(load_spec(raw), tracker=tracker)
    assert res.kpi["drift_max_abs"] < 1e-3 and res.kpi["drift_cosine"] == pytest.approx(1.0, abs=1e-6)
    assert res.kpi["drift_frac_over_2px"] == 0.0
    assert res.kpi["pyt_epe"] == pytest.approx(res.kpi["epe"], abs=1e-3)
    rows = _rows(tmp_path / "results" / "evaluate" / "drift_per_sample.csv")
    assert len(rows) == 2 and {"mean_abs", "max_abs", "frac_over_2px", "cosine"} <= set(rows[0])
    (child,) = tracker.find_runs("depth_net", tags={"action": "evaluate"})
    assert child.parent_run_id == train.run_id and child.status == "FINISHED"
    assert {"epe", "pyt_epe", "drift_max_abs", "drift_mean_abs"} <= set(child.metrics)
    assert child.tags["deploy_runtime"] == "onnxruntime"


def test_ort_inference_writes_the_pytorch_names_at_native_size(tmp_path, data, ffs_checkpoint, exported):
    from stereo.actions.deploy_eval import inference

    common = {"save_raw_npy": True}
    pyt = inference(load_spec(_raw(tmp_path / "pyt", data, inference={"checkpoint": str(ffs_checkpoint), **common})),
                    tracker=False)
    dep = inference(load_spec(_raw(tmp_path / "ort", data, inference={
        "trt_engine": str(exported["dynamic_hw"].onnx_file), **common})), tracker=False)
    assert dep.status == "SUCCESS" and sorted(dep.outputs) == sorted(pyt.outputs)
    for name in dep.outputs:
        names = sorted(p.rsplit("/", 1)[-1] for p in dep.outputs[name])
        assert names == sorted(p.rsplit("/", 1)[-1] for p in pyt.outputs[name])
        a = np.load(tmp_path / "ort" / "results" / "inference" / f"{name}.npy")
        b = np.load(tmp_path / "pyt" / "results" / "inference" / f"{name}.npy")
        assert a.shape == (60, 100) and np.abs(a - b).max() < 1e-3


def test_gen_trt_engine_checks_the_profile_before_needing_tensorrt(tmp_path, data, exported):
    from stereo.actions.gen_trt_engine import gen_trt_engine

    raw = _raw(tmp_path, data, gen_trt_engine={"onnx_file": str(exported["dynamic_hw"].onnx_file)})
    with pytest.raises(ActionError, match="set all six") as err:
        gen_trt_engine(load_spec(raw), tracker=False)
    assert err.value.exit_code == 2


def test_gen_trt_engine_without_tensorrt_fails_with_one_line(tmp_path, data, exported, monkeypatch):
    import sys

    from stereo.actions.gen_trt_engine import gen_trt_engine

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    raw = _raw(tmp_path, data, gen_trt_engine={"onnx_file": str(exported["static"].onnx_file)})
    with pytest.raises(ActionError, match=r"TensorRT is not available.*stereo-automl\[tensorrt\]") as err:
        gen_trt_engine(load_spec(raw), tracker=False)
    assert err.value.exit_code == 1 and "\n" not in str(err.value)
    assert read_status(tmp_path / "results" / "gen_trt_engine")[-1]["status"] == "FAILURE"
