"""A non-finite training loss is a FAILURE naming the step and the batch; bad device settings raise."""
import dataclasses

import pytest
import torch

from stereo.errors import ActionError
from stereo.actions.status import read_status
from stereo.config.load import load_spec
from stereo.data.synthetic import generate
from stereo.models import preset_config


def _raw(tmp_path, **train):
    ann = generate(tmp_path / "data", "fsd", n=4, height=64, width=96, max_disparity=24, seed=0)
    split = {"data_sources": [{"dataset_name": "FSD", "data_file": str(ann)}], "batch_size": 1, "workers": 0,
             "augmentation": {"crop_size": [64, 96]}}
    return {"results_dir": str(tmp_path / "results"), "dataset": {"max_disparity": 32, "train_dataset": split},
            "model": dataclasses.asdict(preset_config("ffs_tiny")),
            "train": {"num_epochs": 5, "max_steps": 6, "seed": 0, **train}}


def test_nan_loss_is_a_failure_naming_step_and_batch(tmp_path, monkeypatch):
    import stereo.training.lightning_module as lm
    from stereo.actions.train import train

    real = lm.sequence_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        loss, parts = real(*args, **kwargs)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] == 3 else loss), parts

    monkeypatch.setattr(lm, "sequence_loss", poisoned)
    with pytest.raises(ActionError, match=r"step 2 \(epoch 0, batch 2"):
        train(load_spec(_raw(tmp_path)), tracker=False)
    last = read_status(tmp_path / "results" / "train")[-1]
    assert last["status"] == "FAILURE" and "step 2" in last["message"] and "nan" in last["message"]


def test_fp16_on_cpu_is_a_clear_error(tmp_path):
    from stereo.actions.train import train
    if torch.cuda.is_available():
        pytest.skip("fp16 is valid with a GPU")
    # the library action's pre-flight finds it before any trainer is built (stereo/actions/preflight.py)
    with pytest.raises(ActionError, match=r"train.precision: needs a CUDA GPU .*fix: set train.precision=bf16"):
        train(load_spec(_raw(tmp_path, precision="fp16")), tracker=False)
