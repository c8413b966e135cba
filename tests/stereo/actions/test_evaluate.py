"""evaluate scores a checkpoint and precomputed predictions with the same metric code."""
import dataclasses

import numpy as np
import pytest
import torch

from stereo.errors import ActionError
from stereo.config.load import load_spec
from stereo.data.formats.pfm import write_pfm
from stereo.data.synthetic import generate
from stereo.models import create_model, preset_config
from stereo.checkpoints import save_checkpoint


@pytest.fixture
def raw(tmp_path):
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "m", create_model("ffs_tiny").state_dict(),
                           config=dataclasses.asdict(preset_config("ffs_tiny")))
    ann = generate(tmp_path / "data", "middlebury", n=2, height=48, width=80, max_disparity=20, seed=4)
    split = {"data_sources": [{"dataset_name": "Middlebury", "data_file": str(ann)}], "batch_size": 1,
             "workers": 0}
    return {"results_dir": str(tmp_path / "results"),
            "dataset": {"max_disparity": 32, "test_dataset": split, "infer_dataset": split},
            "model": dataclasses.asdict(preset_config("ffs_tiny")),
            "evaluate": {"checkpoint": str(ckpt)},
            "inference": {"checkpoint": str(ckpt), "save_raw_npy": True, "save_raw_pfm": True}}


def test_precomputed_predictions_score_like_the_model(raw, tmp_path):
    from stereo.actions.evaluate import evaluate
    from stereo.actions.inference import inference

    by_model = evaluate(load_spec(raw), tracker=False)
    infer = inference(load_spec(raw), tracker=False)
    assert set(infer.outputs) == {"scene000", "scene001"}  # Middlebury: named by scene folder
    for suffix in (".npy", ".pfm"):
        pred_dir = tmp_path / f"preds{suffix}"
        pred_dir.mkdir()
        for name in infer.outputs:
            produced = tmp_path / "results/inference" / f"{name}{suffix}"
            (pred_dir / f"{name}{suffix}").write_bytes(produced.read_bytes())
        raw["evaluate"] = {"predictions_dir": str(pred_dir), "results_dir": str(tmp_path / f"ev{suffix}")}
        by_files = evaluate(load_spec(raw), tracker=False)
        assert {k: by_files.metrics[k] for k in by_model.metrics} == pytest.approx(by_model.metrics, rel=1e-6)
        assert by_files.metrics["pred_density"] == by_files.metrics["pred_density_pooled"] == 1.0
        assert [r["name"] for r in by_files.per_sample] == ["scene000", "scene001"]
    assert by_model.kpi["val/epe"] == by_model.metrics["epe"]
    assert by_model.kpi["val/epe_pooled"] == by_model.metrics["epe_pooled"]


def test_missing_prediction_file_names_the_sample(raw, tmp_path):
    from stereo.actions.evaluate import evaluate
    pred_dir = tmp_path / "preds"
    pred_dir.mkdir()
    write_pfm(pred_dir / "scene000.pfm", np.zeros((48, 80), np.float32))
    raw["evaluate"] = {"predictions_dir": str(pred_dir)}
    with pytest.raises(ActionError, match="no prediction for sample 'scene001'"):
        evaluate(load_spec(raw), tracker=False)


def test_evaluate_without_checkpoint_is_bad_input(raw):
    from stereo.actions.evaluate import evaluate
    raw["evaluate"] = {"checkpoint": ""}
    with pytest.raises(ActionError) as info:
        evaluate(load_spec(raw), tracker=False)
    assert info.value.exit_code == 2 and "evaluate.checkpoint is empty" in str(info.value)


def _gt(raw):
    """(name, disparity [H,W], valid-GT mask [H,W]) per test sample, as evaluate reads them."""
    from stereo.data.loader import build_dataloader
    from stereo.metrics import valid_mask
    from stereo.training.inference_loop import samples

    spec = load_spec(raw)
    loader = build_dataloader(spec.dataset.test_dataset, "test", spec.dataset.max_disparity, shuffle=False,
                              drop_last=False)
    return [(item["meta"]["name"], item["disp"][0], valid_mask(item["disp"], item["valid"],
                                                              spec.dataset.max_disparity)[0])
            for item in samples(loader)]


def test_png16_predictions_with_holes_score_holes_as_zero_and_report_density(raw, tmp_path):
    import csv

    from stereo.actions.evaluate import evaluate
    from stereo.actions.status import read_status
    from stereo.data.formats.png16 import KITTI_SCALE, read_png16_disparity, write_png16_disparity
    from stereo.metrics import StereoMetrics

    pred_dir = tmp_path / "png"
    expected, have_total, scored_total, densities = StereoMetrics(32), 0, 0, []
    rng = np.random.default_rng(0)
    for i, (name, gt, mask) in enumerate(_gt(raw)):
        pred = gt.numpy() + rng.normal(0, 0.7, gt.shape).astype(np.float32)
        pred = np.clip(np.nan_to_num(pred, nan=5.0, posinf=5.0), 0.5, 200)
        hole = np.zeros(gt.shape, bool)
        hole[: 10 + 10 * i, :] = True  # a band without prediction (0 in the PNG), larger in the second image
        pred[hole] = 0.0
        write_png16_disparity(pred_dir / f"{name}.png", pred, KITTI_SCALE)
        decoded = read_png16_disparity(pred_dir / f"{name}.png", KITTI_SCALE)
        assert np.isinf(decoded[hole]).all()  # the reader's hole code
        scored_pred = torch.from_numpy(np.where(np.isfinite(decoded), decoded, 0.0).astype(np.float32))
        expected.update(scored_pred[None], gt[None], mask[None].float(), names=[name])
        have = int((mask & ~torch.from_numpy(hole)).sum())
        densities.append(have / int(mask.sum()))
        have_total, scored_total = have_total + have, scored_total + int(mask.sum())
    assert 0 < min(densities) < max(densities) < 1

    raw["evaluate"] = {"predictions_dir": str(pred_dir)}
    res = evaluate(load_spec(raw), tracker=False)
    want = expected.compute()
    assert np.isfinite(res.metrics["epe"])
    assert {k: res.metrics[k] for k in want} == pytest.approx(want, rel=1e-6)
    assert res.metrics["pred_density"] == pytest.approx(sum(densities) / 2)
    assert res.metrics["pred_density_pooled"] == pytest.approx(have_total / scored_total)
    kpi = read_status(tmp_path / "results" / "evaluate")[-1]["kpi"]
    assert kpi["val/pred_density"] == pytest.approx(sum(densities) / 2)
    with open(tmp_path / "results" / "evaluate" / "per_sample_metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["pred_density"]) for r in rows] == pytest.approx(densities)


def test_nonfinite_npy_pixels_are_holes_too(raw, tmp_path):
    from stereo.actions.evaluate import evaluate

    pred_dir = tmp_path / "npy"
    pred_dir.mkdir()
    for name, gt, mask in _gt(raw):
        pred = np.where(mask.numpy(), gt.numpy(), 1.0).astype(np.float32)  # exact where GT is valid
        pred[:, :8] = np.nan
        np.save(pred_dir / f"{name}.npy", pred)
    raw["evaluate"] = {"predictions_dir": str(pred_dir)}
    res = evaluate(load_spec(raw), tracker=False)
    assert np.isfinite(res.metrics["epe"]) and res.metrics["epe"] > 0  # the holes count as errors
    assert 0 < res.metrics["pred_density"] < 1
