"""evaluate scores a checkpoint and precomputed predictions with the same metric code."""
import dataclasses

import numpy as np
import pytest
import torch

from stereo.actions.runner import ActionError
from stereo.config.load import load_spec
from stereo.data.formats.pfm import write_pfm
from stereo.data.synthetic import generate
from stereo.models import create_model, preset_config
from stereo.models.checkpoints import save_checkpoint


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
        assert by_files.metrics == pytest.approx(by_model.metrics, rel=1e-6)
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
