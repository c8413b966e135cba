"""Predictions and metrics do not depend on the batch size when a data set mixes image sizes (KITTI does):
the evaluate and inference actions and training validation share the per-size prediction path."""
import dataclasses

import numpy as np
import pytest
import torch

from stereo.config.load import load_spec
from stereo.data.loader import build_dataloader
from stereo.data.synthetic import generate
from stereo.models import create_model, preset_config
from stereo.checkpoints import save_checkpoint
from stereo.training.inference_loop import predict_by_size, samples


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Two sources of different sizes (FSD 48x80, then KITTI 64x96) and a checkpoint."""
    root = tmp_path_factory.mktemp("mixed")
    small = ("FSD", generate(root / "small", "fsd", n=2, height=48, width=80, max_disparity=20, seed=1))
    large = ("Kitti", generate(root / "large", "kitti2015", n=2, height=64, width=96, max_disparity=20, seed=2))
    torch.manual_seed(0)
    ckpt = save_checkpoint(root / "m", create_model("ffs_tiny").state_dict(),
                           config=dataclasses.asdict(preset_config("ffs_tiny")))
    return root, [small, large], ckpt


def _raw(root, anns, ckpt, batch_size, name):
    split = {"data_sources": [{"dataset_name": name, "data_file": str(a)} for name, a in anns],
             "batch_size": batch_size, "workers": 0}
    return {"results_dir": str(root / name), "model": dataclasses.asdict(preset_config("ffs_tiny")),
            "dataset": {"max_disparity": 32, "test_dataset": split, "val_dataset": split, "infer_dataset": split},
            "evaluate": {"checkpoint": str(ckpt)}, "inference": {"checkpoint": str(ckpt), "save_raw_npy": True}}


def _model(ckpt):
    from stereo.training.inference_loop import load_model

    return load_model(preset_config("ffs_tiny"), ckpt, what="test", device=torch.device("cpu"))[0]


def test_predictions_do_not_depend_on_batch_composition(mixed):
    root, anns, ckpt = mixed
    model = _model(ckpt)
    preds = {}
    for bs in (1, 3):  # batch 3 = [small, small, large] collated to 64x96, then [large]
        spec = load_spec(_raw(root, anns, ckpt, bs, f"p{bs}"))
        loader = build_dataloader(spec.dataset.test_dataset, "test", 32, shuffle=False, drop_last=False)
        preds[bs] = [(item["meta"]["name"], item["pred"]) for item in samples(loader, model)]
    assert [n for n, _ in preds[1]] == [n for n, _ in preds[3]] and len(preds[1]) == 4
    assert [tuple(p.shape) for _, p in preds[3]] == [(1, 48, 80)] * 2 + [(1, 64, 96)] * 2
    for (_, a), (_, b) in zip(preds[1], preds[3]):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4)

    # what the old path did (the collated, edge-padded batch straight into the network) differs
    batch = next(iter(loader))
    with torch.no_grad():
        naive = model(batch["left"], batch["right"], test_mode=True)[0, :, :48, :80]
        grouped = predict_by_size(model, batch["left"], batch["right"], batch["meta"], test_mode=True)
    assert float((naive - preds[1][0][1]).abs().max()) > 1e-2
    torch.testing.assert_close(grouped[0, :, :48, :80], preds[1][0][1], rtol=0, atol=1e-4)
    assert float(grouped[0, :, 48:, :].abs().max()) == 0.0  # collate padding is never predicted


def test_evaluate_and_inference_are_batch_size_independent(mixed):
    from stereo.actions.evaluate import evaluate
    from stereo.actions.inference import inference

    root, anns, ckpt = mixed
    ev = {bs: evaluate(load_spec(_raw(root, anns, ckpt, bs, f"e{bs}")), tracker=False) for bs in (1, 3)}
    assert ev[3].metrics == pytest.approx(ev[1].metrics, rel=1e-5)
    for a, b in zip(ev[1].per_sample, ev[3].per_sample):
        assert a["name"] == b["name"] and {k: v for k, v in a.items() if k != "name"} == pytest.approx(
            {k: v for k, v in b.items() if k != "name"}, rel=1e-5)
    inf = {bs: inference(load_spec(_raw(root, anns, ckpt, bs, f"i{bs}")), tracker=False) for bs in (1, 3)}
    assert sorted(inf[1].outputs) == sorted(inf[3].outputs)
    for name in inf[1].outputs:
        a = np.load(root / "i1" / "inference" / f"{name}.npy")
        b = np.load(root / "i3" / "inference" / f"{name}.npy")
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-4


def test_training_validation_is_batch_size_independent(mixed):
    import pytorch_lightning as pl

    from stereo.config.train import OptimConfig
    from stereo.training.lightning_module import StereoLitModule

    root, anns, ckpt = mixed
    scores = {}
    for bs in (1, 3):
        spec = load_spec(_raw(root, anns, ckpt, bs, f"v{bs}"))
        loader = build_dataloader(spec.dataset.val_dataset, "val", 32, shuffle=False, drop_last=False)
        module = StereoLitModule(_model(ckpt), OptimConfig(), 32)
        trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False)
        (scores[bs],) = trainer.validate(module, loader, verbose=False)
    metrics = [k for k in scores[1] if k != "val/loss"]  # the loss is a per-batch mean, the metrics are not
    assert {k: scores[3][k] for k in metrics} == pytest.approx({k: scores[1][k] for k in metrics}, rel=1e-5)
