"""End to end on synthetic data: train a tiny FFS -> val EPE drops -> evaluate -> inference -> MLflow."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from stereo.actions.status import read_status
from stereo.config.load import load_spec
from stereo.data.formats.pfm import read_pfm
from stereo.data.synthetic import generate
from stereo.models import create_model, preset_config
from stereo.checkpoints import save_checkpoint

pytestmark = pytest.mark.slow  # real trainings, then evaluate and inference


def _split(ann, batch_size=2, name="FSD"):
    return {"data_sources": [{"dataset_name": name, "data_file": str(ann)}], "batch_size": batch_size,
            "workers": 0, "augmentation": {"crop_size": [64, 128]}}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {"train": generate(root / "train", "fsd", n=8, height=64, width=128, max_disparity=24, seed=0),
            "val": generate(root / "val", "fsd", n=4, height=64, width=128, max_disparity=24, seed=1),
            "infer": generate(root / "infer", "generic", n=2, height=64, width=96, max_disparity=24, seed=2,
                              columns=2)}


def _spec(tmp_path, data, **train):
    torch.manual_seed(0)
    init = save_checkpoint(tmp_path / "init", create_model("ffs_tiny").state_dict(),
                           config=dataclasses.asdict(preset_config("ffs_tiny")))
    raw = {
        "results_dir": str(tmp_path / "results"),
        "dataset": {"max_disparity": 32, "train_dataset": _split(data["train"]),
                    "val_dataset": _split(data["val"]), "test_dataset": _split(data["val"], 1),
                    "infer_dataset": _split(data["infer"], 1, "GenericDataset")},
        "model": dataclasses.asdict(preset_config("ffs_tiny")),
        "train": {"num_epochs": 100, "max_steps": 48, "seed": 1, "log_every_n_steps": 4,
                  "validation_interval": 2, "pretrained_model_path": str(init),
                  "optim": {"lr": 2e-3, "lr_scheduler": "MultiStepLR", "lr_steps": [1000]}, **train},
        "evaluate": {"checkpoint": str(init)},
        "inference": {"checkpoint": str(init), "save_raw_pfm": True, "save_raw_npy": True},
    }
    return load_spec(raw), raw


def test_train_lowers_val_epe_then_evaluate_and_inference_succeed(tmp_path, data, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from stereo.actions.evaluate import evaluate
    from stereo.actions.inference import inference
    from stereo.actions.train import train

    spec, raw = _spec(tmp_path, data)
    before = evaluate(spec).metrics["epe"]  # the initial weights, on the validation images

    result = train(spec)
    assert result.status == "SUCCESS" and result.global_step == 48
    after = result.best_metrics["val/epe"]
    assert after < 0.7 * before, (before, after, result.history)
    assert [h["epoch"] for h in result.history] == list(range(12))
    train_dir = tmp_path / "results" / "train"
    assert (train_dir / "model_epoch_011_step_00048.ckpt").is_file()
    assert (train_dir / "model_epoch_011_step_00048.safetensors").is_file()
    assert (train_dir / "dn_model_latest.ckpt").resolve().name == "model_epoch_011_step_00048.ckpt"
    assert list((train_dir / "visuals").glob("*.png"))
    status = read_status(train_dir)
    assert status[0]["status"] == "STARTED" and status[-1]["status"] == "SUCCESS"
    assert status[-1]["kpi"]["val/epe"] == pytest.approx(after)

    raw["evaluate"]["checkpoint"] = result.best_checkpoint
    raw["inference"]["checkpoint"] = result.best_checkpoint
    spec2 = load_spec(raw)
    ev = evaluate(spec2)
    assert ev.status == "SUCCESS" and ev.metrics["epe"] == pytest.approx(after, rel=1e-5)
    assert read_status(tmp_path / "results" / "evaluate")[-1]["kpi"]["val/epe"] == pytest.approx(after, rel=1e-5)
    assert (tmp_path / "results" / "evaluate" / "per_sample_metrics.csv").read_text().count("\n") == 5

    inf = inference(spec2)
    assert inf.status == "SUCCESS" and set(inf.outputs) == {"000000", "000001"}
    out = tmp_path / "results" / "inference"
    for name in inf.outputs:
        import cv2
        vis = cv2.imread(str(out / f"{name}_vis.png"))
        assert vis.shape == (64, 192, 3)  # left | prediction (no GT: no error panel)
        assert cv2.imread(str(out / f"{name}.png")).shape == (64, 96, 3)
        np.testing.assert_array_equal(read_pfm(out / f"{name}.pfm"), np.load(out / f"{name}.npy"))

    from stereo.tracking import MlflowTracker, default_tracking_uri
    store = MlflowTracker(default_tracking_uri(tmp_path / "results"))
    runs = {}
    for run in store.find_runs("depth_net"):  # newest first
        runs.setdefault(run.tags["action"], run)
    assert set(runs) == {"train", "evaluate", "inference"}
    assert runs["train"].status == "FINISHED"
    assert runs["train"].metrics["best/val/epe"] == pytest.approx(after)  # what dn_model_best was kept by
    assert runs["train"].metrics["val/epe"] == pytest.approx(result.history[-1]["val/epe"])  # the last validation
    assert "train/loss" in runs["train"].metrics
    assert runs["train"].params["train.optim.lr"] == "0.002"
    from stereo.checkpoints import read_sidecar
    assert read_sidecar(result.best_checkpoint)["meta"]["mlflow_run_id"] == runs["train"].run_id
    assert runs["evaluate"].tags["checkpoint_sha256"] == runs["train"].tags["checkpoint_sha256"]
    assert json.loads((tmp_path / "results" / "evaluate" / "results.json").read_text())["counts"]["images"] == 4

    # the same runs read straight from the MLflow store, as the MLflow UI shows them
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=default_tracking_uri(tmp_path / "results"))
    experiment = client.get_experiment_by_name("depth_net")
    stored = {r.info.run_id: r for r in client.search_runs([experiment.experiment_id], max_results=50)}
    evaluated = stored[runs["evaluate"].run_id]
    assert evaluated.info.status == "FINISHED" and evaluated.data.tags["action"] == "evaluate"
    for key in ("epe", "bp1", "bp2", "bp3", "d1", "rmse", "epe_pooled", "d1_pooled"):
        assert evaluated.data.metrics[f"val/{key}"] == pytest.approx(ev.metrics[key], rel=1e-6), key
    assert evaluated.data.params["evaluate.checkpoint"] == result.best_checkpoint
    assert {a.path for a in client.list_artifacts(evaluated.info.run_id)} >= {
        "per_sample_metrics.csv", "results.json", "status.json", "experiment.yaml"}
    inferred = stored[runs["inference"].run_id]
    assert inferred.info.status == "FINISHED" and inferred.data.tags["action"] == "inference"
    assert inferred.data.metrics["num_images"] == 2 and inferred.data.metrics["num_unusable"] == 0
    assert inferred.data.tags["checkpoint_sha256"] == runs["train"].tags["checkpoint_sha256"]
    visuals = {a.path for a in client.list_artifacts(inferred.info.run_id, "visuals")}
    assert visuals == {"visuals/000000_vis.png", "visuals/000001_vis.png"}
