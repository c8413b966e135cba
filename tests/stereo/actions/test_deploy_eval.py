"""The deploy actions end to end on synthetic data: export, ORT evaluate/inference vs the PyTorch actions,
drift logged as a nested MLflow run, gen_trt_engine's checks and its CPU error."""
import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from stereo.errors import ActionError
from stereo.actions.status import read_status
from stereo.config.load import load_spec
from stereo.data.synthetic import generate
from stereo.metrics import find_metric
from stereo.models import preset_config

pytestmark = pytest.mark.slow  # ONNX export + ONNX Runtime deploy actions


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
    from stereo.checkpoints import checkpoint_sha256
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


def test_a_nan_graph_makes_ort_inference_fail_naming_the_samples(tmp_path, data, ffs_tiny):
    import torch

    from stereo.actions.deploy_eval import inference
    from stereo.deploy.export import export_onnx
    from stereo.models import create_model

    model, cfg = ffs_tiny  # the same network with every floating-point tensor NaN: a broken engine's output
    nan_model = create_model("ffs_tiny")
    nan_model.load_state_dict({k: (torch.full_like(v, float("nan")) if v.is_floating_point() else v)
                               for k, v in model.state_dict().items()})
    graph = export_onnx(nan_model.eval(), cfg, tmp_path / "nan.onnx", height=64, width=128, batch_size=-1,
                        dynamic_hw=True, valid_iters=2, verify=False).onnx_file
    raw = _raw(tmp_path, data, inference={"trt_engine": str(graph), "save_raw_npy": True})
    with pytest.raises(ActionError, match=r"2 of 2 predictions are unusable: '000000': 6000 of 6000 pixels are "
                                          r"NaN/inf; '000001'") as err:
        inference(load_spec(raw), tracker=False)
    assert err.value.exit_code == 1
    out = tmp_path / "results" / "inference"
    assert np.isnan(np.load(out / "000000.npy")).all()
    assert read_status(out)[-1]["status"] == "FAILURE"


def test_export_action_records_the_baked_iterations(tmp_path, data, ffs_checkpoint, caplog):
    from stereo.actions.export import export
    from stereo.config.actions import ExportConfig

    section = {"checkpoint": str(ffs_checkpoint), "onnx_file": "it.onnx", "input_height": 64, "input_width": 128,
               "batch_size": 1}
    raw = _raw(tmp_path, data, export={**section, "valid_iters": 3})  # model.valid_iters is 2
    res = export(load_spec(raw), tracker=False)
    side = json.loads(Path(res.sidecar_file).read_text())
    assert side["valid_iters"] == 3 and side["valid_iters_source"] == "export.valid_iters"
    assert res.kpi["valid_iters"] == 3 and "differs from model.valid_iters=2" in caplog.text
    spec = load_spec(_raw(tmp_path / "unset", data, export={**section, "onnx_file": "unset.onnx"}))
    if ExportConfig().valid_iters is not None:  # TAO's default 22 until the spec field becomes Optional
        spec.export.valid_iters = None  # what an unset export.valid_iters means
    res = export(spec, tracker=False)
    side = json.loads(Path(res.sidecar_file).read_text())
    assert side["valid_iters"] == 2 and side["valid_iters_source"] == "model.valid_iters"


# ----------------------------------------------------------------------------------------------- GPU
HW_PROFILE = {"min_height": 64, "opt_height": 64, "max_height": 128, "min_width": 128, "opt_width": 128,
              "max_width": 256}


def _engine(tmp_path, data, exported, mode="dynamic_hw", data_type="fp32", **section):
    """An engine built by the gen_trt_engine action from a session ONNX; returns (result, its sidecar)."""
    from stereo.actions.gen_trt_engine import gen_trt_engine

    gen = {"onnx_file": str(exported[mode].onnx_file), "tensorrt": {"data_type": data_type}, **section}
    if mode == "dynamic_hw":
        gen.update(HW_PROFILE)
    res = gen_trt_engine(load_spec(_raw(tmp_path, data, gen_trt_engine=gen)), tracker=False)
    return res, json.loads(Path(res.sidecar_file).read_text())


@pytest.mark.gpu
def test_gen_trt_engine_action_writes_the_engine_and_its_sidecar(tmp_path, data, exported):
    import torch

    pytest.importorskip("tensorrt")
    res, side = _engine(tmp_path, data, exported)
    engine = Path(res.engine_file)
    assert res.status == "SUCCESS" and engine == tmp_path / "results" / "gen_trt_engine" / "dynamic_hw.fp32.engine"
    assert engine.stat().st_size > 0 and Path(res.sidecar_file) == Path(f"{engine}.json")
    assert side["format"] == "stereo-automl-trt-engine" and side["engine_file"] == engine.name
    assert side["gpu_id"] == 0 and side["gpu"] == torch.cuda.get_device_name(0) and side["tensorrt_version"]
    assert side["build"]["data_type"] == "fp32" and side["build"]["seconds"] > 0
    assert side["build"]["profile"]["left_image"] == [[1, 3, 64, 128], [1, 3, 64, 128], [1, 3, 128, 256]]
    assert side["onnx"]["valid_iters"] == 2 and side["onnx"]["shape_mode"] == "dynamic_hw"  # the ONNX sidecar
    assert read_status(tmp_path / "results" / "gen_trt_engine")[-1]["kpi"]["build_seconds"] > 0


@pytest.mark.gpu
def test_tensorrt_evaluate_with_drift_and_inference_match_onnxruntime(tmp_path, data, ffs_checkpoint, exported):
    pytest.importorskip("tensorrt")
    from stereo.actions.deploy_eval import evaluate, inference

    res, _ = _engine(tmp_path / "build", data, exported)
    onnx_file = str(exported["dynamic_hw"].onnx_file)
    trt = evaluate(load_spec(_raw(tmp_path / "trt", data, evaluate={"checkpoint": str(ffs_checkpoint),
                                                                    "trt_engine": res.engine_file})), tracker=False)
    ort = evaluate(load_spec(_raw(tmp_path / "ort", data, evaluate={"trt_engine": onnx_file})), tracker=False)
    out = tmp_path / "trt" / "results" / "evaluate"
    results = json.loads((out / "results.json").read_text())
    assert results["runtime"]["runtime"] == "tensorrt" and results["runtime"]["device"] == "cuda:0"
    assert results["pytorch_reference"]["valid_iters"] == 2  # read from the engine's sidecar
    assert results["fit_modes"] == {"pad": 2}
    assert trt.kpi["epe"] == pytest.approx(ort.kpi["epe"], abs=1e-2)
    assert trt.kpi["pyt_epe"] == pytest.approx(trt.kpi["epe"], abs=1e-2)
    assert trt.kpi["drift_max_abs"] < 5e-2 and trt.kpi["drift_cosine"] > 0.9999
    assert trt.kpi["drift_nonfinite_frac"] == 0.0 and len(_rows(out / "drift_per_sample.csv")) == 2

    section = {"save_raw_npy": True}
    dep = inference(load_spec(_raw(tmp_path / "trt", data, inference={"trt_engine": res.engine_file, **section})),
                    tracker=False)
    ref = inference(load_spec(_raw(tmp_path / "ort", data, inference={"trt_engine": onnx_file, **section})),
                    tracker=False)
    assert dep.status == "SUCCESS" and sorted(dep.outputs) == sorted(ref.outputs)
    for name in dep.outputs:
        a = np.load(tmp_path / "trt" / "results" / "inference" / f"{name}.npy")
        b = np.load(tmp_path / "ort" / "results" / "inference" / f"{name}.npy")
        assert a.shape == (60, 100) and np.abs(a - b).max() < 1e-2  # TF32 may be used for fp32 convolutions


@pytest.mark.gpu
def test_engines_run_on_the_gpu_the_spec_names(tmp_path, data, exported):
    import torch

    pytest.importorskip("tensorrt")
    from stereo.actions.deploy_eval import evaluate
    from stereo.deploy.runners import open_runner

    last = torch.cuda.device_count() - 1
    res, side = _engine(tmp_path, data, exported, mode="static", gpu_id=last)
    assert side["gpu_id"] == last and side["gpu"] == torch.cuda.get_device_name(last)
    runner = open_runner(res.engine_file, gpu_index=last)
    assert runner.device == torch.device("cuda", last) and runner.describe()["device"] == f"cuda:{last}"
    out = runner(torch.rand(1, 3, 64, 128) * 255, torch.rand(1, 3, 64, 128) * 255)
    assert out.shape == (1, 1, 64, 128) and out.device.type == "cpu" and torch.isfinite(out).all()

    ev = evaluate(load_spec(_raw(tmp_path, data, evaluate={"trt_engine": res.engine_file, "gpu_ids": [last]})),
                  tracker=False)
    results = json.loads((tmp_path / "results" / "evaluate" / "results.json").read_text())
    assert results["runtime"]["device"] == f"cuda:{last}" and np.isfinite(ev.kpi["epe"])
    missing = torch.cuda.device_count()
    with pytest.raises(ActionError, match=rf"gpu_ids\[0\]={missing}, but this host has") as err:
        evaluate(load_spec(_raw(tmp_path, data, evaluate={"trt_engine": res.engine_file, "gpu_ids": [missing]})),
                 tracker=False)
    assert err.value.exit_code == 2


@pytest.mark.gpu
def test_bf16_engine_with_drift_report_where_supported(tmp_path, data, ffs_checkpoint, exported):
    import torch

    trt = pytest.importorskip("tensorrt")
    if not hasattr(trt.BuilderFlag, "BF16"):
        pytest.skip(f"TensorRT {trt.__version__} has no BF16 builder flag (strongly typed networks only)")
    if torch.cuda.get_device_capability()[0] < 8:
        pytest.skip(f"{torch.cuda.get_device_name()} has no bf16 (compute capability < 8.0)")
    from stereo.actions.deploy_eval import evaluate

    res, side = _engine(tmp_path / "build", data, exported, mode="static", data_type="bf16")
    assert Path(res.engine_file).name == "static.bf16.engine" and side["build"]["data_type"] == "bf16"
    ev = evaluate(load_spec(_raw(tmp_path, data, evaluate={"checkpoint": str(ffs_checkpoint),
                                                           "trt_engine": res.engine_file})), tracker=False)
    assert ev.kpi["drift_nonfinite_frac"] == 0.0 and ev.kpi["drift_cosine"] > 0.99
    assert ev.kpi["drift_mean_abs"] < 1.0 and abs(ev.kpi["epe"] - ev.kpi["pyt_epe"]) < 1.0  # bf16: ~3 digits
