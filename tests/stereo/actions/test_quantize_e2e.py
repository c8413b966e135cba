"""`depth_net quantize` as a user runs it: export the tiny model, quantize it with `--parent <export folder>`
on synthetic calibration pairs, then evaluate the int8 graph with `--parent <quantize folder>`. Every record
must agree (console result, status.json, results.json, MLflow store, files); TAO's backends and modes we do
not run, and bad inputs, are one line and exit 2 before anything is written."""
from __future__ import annotations

import csv
import json

import pytest
import yaml

from stereo.actions.flow import FLOW_ENV
from stereo.actions.status import read_status
from stereo.cli import main
from stereo.data.synthetic import generate
from stereo.deploy.runners import open_runner

pytestmark = pytest.mark.slow  # one export, one ONNX Runtime static quantization, one deploy evaluate


def _split(ann):
    return {"data_sources": [{"dataset_name": "FSD", "data_file": str(ann)}], "batch_size": 1, "workers": 0}


@pytest.fixture(scope="module")
def job(tmp_path_factory, ffs_checkpoint):
    """The user's files: synthetic calibration pairs and a val split, a spec, a store; export then quantize."""
    tmp = tmp_path_factory.mktemp("quantize")
    results, store = tmp / "results", f"sqlite:///{tmp / 'mlflow.db'}"
    generate(tmp / "calib", "fsd", n=2, height=64, width=128, max_disparity=24, seed=7)
    val = generate(tmp / "val", "fsd", n=1, height=64, width=128, max_disparity=24, seed=8)
    spec = tmp / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "results_dir": str(results),
        "dataset": {"max_disparity": 32, "val_dataset": _split(val), "test_dataset": _split(val),
                    "quant_calibration_dataset": {"images_dir": str(tmp / "calib")}},
        "model": {"valid_iters": 2},
        "export": {"checkpoint": str(ffs_checkpoint), "onnx_file": "tiny.onnx", "input_height": 64,
                   "input_width": 128, "batch_size": 1, "on_cpu": True},
        # TAO's section, with what runs here; the cheap knobs keep the test short
        "quantize": {"backend": "modelopt.onnx", "mode": "static_ptq", "algorithm": "minmax", "device": "cpu",
                     "max_calibration_images": 1, "latency_runs": 3, "warmup_runs": 1}}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", store)
        mp.delenv(FLOW_ENV, raising=False)
        assert main(["export", "-e", str(spec)]) == 0
        import io
        from contextlib import redirect_stderr, redirect_stdout

        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(["quantize", "-e", str(spec), "--parent", str(results / "export")])
        assert code == 0, err.getvalue()[-2000:]
    return {"spec": spec, "results": results, "store": store, "tmp": tmp, "stdout": out.getvalue(),
            "stderr": err.getvalue(), "folder": results / "quantize"}


def _run(job, action="quantize"):
    from stereo.tracking import MlflowTracker

    tracker = MlflowTracker(job["store"])
    (run,) = tracker.find_runs("depth_net", tags={"action": action})
    return tracker, run


def test_quantize_writes_an_int8_graph_that_deploy_opens(job):
    folder = job["folder"]
    int8 = folder / "model_int8.onnx"
    sidecar = json.loads((folder / "model_int8.onnx.json").read_text())
    assert sidecar["precision"] == "int8" and sidecar["valid_iters"] == 2
    assert sidecar["quantization"]["calibration_method"] == "minmax"
    assert sidecar["quantization"]["fp32_onnx"] == str(job["results"] / "export" / "tiny.onnx")
    ops = sidecar["quantization"]["quantized_ops"]
    assert ops["Conv3d"] > 0 and ops["Conv2d"] > 0, ops  # the cost volume's 3-D convolutions are int8 too
    assert int8.stat().st_size < (job["results"] / "export" / "tiny.onnx").stat().st_size
    assert open_runner(int8, device="cpu").shape.hw == (64, 128)
    # --parent filled quantize.model_path with the export step's ONNX, as experiment.yaml records
    assert yaml.safe_load((folder / "experiment.yaml").read_text())["quantize"]["model_path"] == str(
        job["results"] / "export" / "tiny.onnx")


def test_every_record_agrees(job):
    final = read_status(job["folder"])[-1]
    assert final["status"] == "SUCCESS", final
    kpi = final["kpi"]
    results = json.loads((job["folder"] / "results.json").read_text())
    printed = json.loads(job["stdout"][job["stdout"].index("\n{") + 1:])  # after the action's first line
    tracker, run = _run(job)
    assert run.status == "FINISHED" and run.tags["precision"] == "int8" and run.tags["device"] == results["device"]
    for key in ("fp32_latency_ms", "int8_latency_ms", "speedup", "fp32_size_mb", "int8_size_mb", "size_ratio",
                "drift_mean_abs", "drift_max_abs", "fp32_epe", "int8_epe", "epe_delta", "calibration_images"):
        assert kpi[key] == pytest.approx(results["kpi"][key]) == pytest.approx(run.metrics[key]) \
            == pytest.approx(printed["kpi"][key]), key
    assert kpi["speedup"] == pytest.approx(kpi["fp32_latency_ms"] / kpi["int8_latency_ms"])
    assert kpi["int8_size_mb"] * 1024 * 1024 == pytest.approx((job["folder"] / "model_int8.onnx").stat().st_size)
    assert kpi["calibration_images"] == 1 and kpi["eval_images"] == 1 and results["eval_set"] == "dataset.val_dataset"
    # drift reported, small for a well-calibrated tiny graph, and per image on disk
    assert 0 <= kpi["drift_mean_abs"] < 1.0 and kpi["drift_cosine"] > 0.99
    assert kpi["epe_delta"] == pytest.approx(kpi["int8_epe"] - kpi["fp32_epe"])
    with open(job["folder"] / "drift_per_sample.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and float(rows[0]["mean_abs"]) == pytest.approx(kpi["drift_mean_abs"])
    lat = results["latency"]
    assert lat["int8"]["runs"] == 3 and lat["int8"]["threads"] == 1 and lat["int8"]["shape"] == [1, 3, 64, 128]
    assert lat["fp32"]["min_ms"] <= kpi["fp32_latency_ms"] <= lat["fp32"]["max_ms"]
    (export,) = tracker.find_runs("depth_net", tags={"action": "export"})
    assert run.parent_run_id and run.parent_run_id == export.parent_run_id  # one flow run for the job
    logged = {a.path for a in tracker.client.list_artifacts(run.run_id)}
    assert {"results.json", "drift_per_sample.csv", "model_int8.onnx.json", "status.json"} <= logged
    assert "int8" in final["message"] and "drift" in final["message"]


def test_the_int8_graph_is_a_parent_for_deploy_evaluate(job, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", job["store"])
    monkeypatch.delenv(FLOW_ENV, raising=False)
    code = main(["evaluate", "-e", str(job["spec"]), "--parent", str(job["folder"])])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    folder = job["results"] / "evaluate"
    assert yaml.safe_load((folder / "experiment.yaml").read_text())["evaluate"]["trt_engine"] == str(
        job["folder"] / "model_int8.onnx")
    kpi = read_status(folder)[-1]["kpi"]
    quantized = read_status(job["folder"])[-1]["kpi"]
    assert kpi["epe"] == pytest.approx(quantized["int8_epe"], rel=1e-4)  # the same graph on the same image


@pytest.mark.parametrize("overrides, key, words", [
    (["quantize.backend=torchao"], "quantize.backend", "nn.Linear"),
    (["quantize.backend=onnxrt"], "quantize.backend", "did you mean 'onnxruntime'"),
    (["quantize.mode=weight_only_ptq"], "quantize.mode", "static_ptq"),
    (["quantize.algorithm=awq_lite"], "quantize.algorithm", "minmax"),
    (["quantize.device=trt"], "quantize.device", "cpu"),
    (["quantize.model_path={tmp}/model.engine"], "quantize.model_path", "TensorRT engine"),
    (["dataset.quant_calibration_dataset.images_dir="], "images_dir", "calibration images"),
    (["quantize.backend_kwargs={per_chanel: true}"], "quantize.backend_kwargs", "per_channel"),
])
def test_refused_at_load(tmp_path, job, capsys, overrides, key, words):
    results = tmp_path / "r"
    (tmp_path / "model.engine").write_bytes(b"an engine")
    code = main(["quantize", "-e", str(job["spec"]), f"results_dir={results}",
                 f"quantize.model_path={job['results'] / 'export' / 'tiny.onnx'}",
                 *(o.replace("{tmp}", str(tmp_path)) for o in overrides)])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if key in ln]
    assert code == 2 and len(lines) == 1 and words in lines[0], err
    assert not results.exists()  # nothing written, no store


def test_bad_inputs_on_disk_are_exit_2_before_any_work(tmp_path, job, capsys):
    results = tmp_path / "r"
    empty = tmp_path / "calib"
    empty.mkdir()
    (empty / "left.png").write_bytes(b"")  # an image with no right view is not a pair
    cases = [([f"quantize.model_path={tmp_path / 'missing.onnx'}"], "quantize.model_path", "does not exist"),
             ([f"quantize.model_path={job['results'] / 'export' / 'tiny.onnx'}",
               f"dataset.quant_calibration_dataset.images_dir={empty}"], "images_dir", "no stereo pair"),
             ([f"quantize.model_path={job['results'] / 'export' / 'tiny.onnx'}",
               f"dataset.quant_calibration_dataset.images_dir={tmp_path / 'nowhere'}"], "images_dir",
              "does not exist")]
    for overrides, key, words in cases:
        code = main(["quantize", "-e", str(job["spec"]), f"results_dir={results}", *overrides])
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if key in ln]
        assert code == 2 and len(lines) == 1 and words in lines[0], err
        assert not results.exists()


def test_a_checkpoint_is_exported_first_and_the_calibration_pairs_score_the_drift(tmp_path, job, ffs_checkpoint,
                                                                                  monkeypatch, capsys):
    """quantize.model_path = a checkpoint (what `--parent <train folder>` gives): exported in the quantize folder
    at export.input_height x input_width, batch 1; without dataset.val_dataset the drift is measured on the
    calibration pairs, and results.json says so."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv(FLOW_ENV, raising=False)
    results = tmp_path / "r"
    code = main(["quantize", "-e", str(job["spec"]), f"results_dir={results}", f"quantize.model_path={ffs_checkpoint}",
                 "dataset.val_dataset.data_sources=[]", "quantize.latency_runs=1", "quantize.warmup_runs=0",
                 "quantize.onnx_file=tiny_int8.onnx"])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    folder = results / "quantize"
    fp32 = json.loads((folder / "model_fp32.onnx.json").read_text())
    assert fp32["traced_shape"] == [1, 3, 64, 128] and fp32["source_checkpoint"]["path"] == str(ffs_checkpoint)
    int8 = json.loads((folder / "tiny_int8.onnx.json").read_text())
    assert int8["precision"] == "int8" and int8["source_checkpoint"]["path"] == str(ffs_checkpoint)
    results_json = json.loads((folder / "results.json").read_text())
    assert results_json["eval_set"].startswith("calibration pairs") and results_json["kpi"]["eval_images"] == 1
    kpi = read_status(folder)[-1]["kpi"]
    assert "fp32_epe" not in kpi and kpi["drift_mean_abs"] == pytest.approx(results_json["kpi"]["drift_mean_abs"])
