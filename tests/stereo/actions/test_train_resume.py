"""Checkpoints in TAO's layout survive SIGKILL, auto-resume continues, and resuming is exact."""
import dataclasses
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from stereo.actions.status import read_status
from stereo.config.load import load_spec
from stereo.data.synthetic import generate
from stereo.models import preset_config
from stereo.checkpoints import read_checkpoint

pytestmark = pytest.mark.slow  # SIGKILLed trainings resumed in subprocesses

REPO = Path(__file__).resolve().parents[3]


def _raw(tmp_path, results, **train):
    ann = tmp_path / "data" / "fsd.txt"
    if not ann.exists():
        generate(tmp_path / "data", "fsd", n=8, height=64, width=128, max_disparity=24, seed=0)
    split = {"data_sources": [{"dataset_name": "FSD", "data_file": str(ann)}], "batch_size": 2, "workers": 0,
             "augmentation": {"crop_size": [64, 96]}}
    return {"results_dir": str(results),
            "dataset": {"max_disparity": 32, "train_dataset": split},
            "model": dataclasses.asdict(preset_config("ffs_tiny")),
            "train": {"num_epochs": 100, "seed": 3, "log_every_n_steps": 1, "checkpoint_interval": 1,
                      "checkpoint_interval_unit": "step",
                      "optim": {"lr": 1e-3, "lr_scheduler": "MultiStepLR", "lr_steps": [2, 5]}, **train}}


def _train(raw):
    from stereo.actions.train import train
    return train(load_spec(raw), tracker=False)


def _weights(path):
    return read_checkpoint(path).state_dict


def test_resume_mid_epoch_is_exact(tmp_path):
    straight = _train(_raw(tmp_path, tmp_path / "a", max_steps=6))
    first = _train(_raw(tmp_path, tmp_path / "b", max_steps=3))  # stops inside epoch 0 (4 batches/epoch)
    assert first.global_step == 3
    resumed = _train(_raw(tmp_path, tmp_path / "b", max_steps=6))  # auto-resume from dn_model_latest
    assert resumed.resumed_from.endswith("model_epoch_000_step_00003.ckpt")
    assert resumed.global_step == 6
    a = _weights(Path(straight.last_checkpoint).with_suffix(".safetensors"))
    b = _weights(Path(resumed.last_checkpoint).with_suffix(".safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert [h["epoch"] for h in resumed.history] == [0, 1]  # history survives the restart


def _published(train_dir):
    """Every name a user or a resumed run may load: model_epoch_* weights, the latest and best links."""
    return [*sorted(train_dir.glob("model_epoch_*.safetensors")), *(
        train_dir / f"{link}.safetensors" for link in ("dn_model_latest", "dn_model_best"))]


def _assert_every_published_checkpoint_loads_verified(train_dir):
    for weights in _published(train_dir):
        assert weights.exists(), weights
        ckpt = read_checkpoint(weights)  # follows a link, checks the SHA-256 in the sidecar beside its target
        assert ckpt.format == "stereo", weights
    for ckpt in train_dir.glob("model_epoch_*.ckpt"):  # a resume state is complete and has its weights
        assert "state_dict" in torch.load(ckpt, weights_only=True)
        assert read_checkpoint(ckpt.with_suffix(".safetensors")).format == "stereo"
    assert (train_dir / "dn_model_latest.ckpt").resolve().is_file()


def test_sigkill_then_rerun_resumes_and_leaves_no_corrupt_checkpoint(tmp_path):
    raw = _raw(tmp_path, tmp_path / "r", max_steps=400, validation_interval=1)
    raw["dataset"]["val_dataset"] = {**raw["dataset"]["train_dataset"], "batch_size": 4}  # best written mid-run
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(raw))
    code = ("import sys, torch; torch.set_num_threads(1); from stereo.config.load import load_spec; "
            "from stereo.actions.train import train; train(load_spec(sys.argv[1]), tracker=False)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(spec_file)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    train_dir = tmp_path / "r" / "train"
    deadline = time.time() + 120
    try:  # kill after the second validation, while checkpoints keep being written every step
        while len(list(train_dir.glob("model_epoch_*.ckpt"))) < 9:
            assert proc.poll() is None, "training exited before it could be killed"
            assert time.time() < deadline, "no checkpoint appeared within 120 s"
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (train_dir / "dn_model_best.safetensors").is_symlink()
    _assert_every_published_checkpoint_loads_verified(train_dir)
    killed_at = max(int(p.stem[-5:]) for p in train_dir.glob("model_epoch_*.ckpt"))

    raw["train"]["max_steps"] = killed_at + 2
    result = _train(raw)
    assert result.resumed_from is not None
    resumed_step = int(Path(result.resumed_from).stem[-5:])
    assert resumed_step >= killed_at - 1
    assert result.global_step == killed_at + 2
    assert not list(train_dir.glob(".*.tmp"))  # leftovers of the killed writer were removed
    assert read_status(train_dir)[-1]["status"] == "SUCCESS"
    _assert_every_published_checkpoint_loads_verified(train_dir)
    assert len(list(train_dir.glob("dn_model_best_*.safetensors"))) == 1
    assert all(p.with_suffix(".safetensors").exists() for p in train_dir.glob("model_epoch_*.json"))


def test_explicit_resume_path_must_be_a_resume_state(tmp_path):
    from stereo.errors import ActionError
    raw = _raw(tmp_path, tmp_path / "c", max_steps=1)
    raw["train"]["resume_training_checkpoint_path"] = str(tmp_path / "nope.ckpt")
    with pytest.raises(ActionError, match="resume_training_checkpoint_path"):
        _train(raw)


def test_resume_state_loads_weights_only_whatever_the_environment_says(tmp_path, monkeypatch):
    from fractions import Fraction

    from stereo.errors import ActionError
    first = _train(_raw(tmp_path, tmp_path / "w", max_steps=1))
    ckpt = Path(first.last_checkpoint)
    state = torch.load(ckpt, weights_only=True)
    state["smuggled"] = Fraction(1, 3)  # an object torch's weights-only unpickler refuses
    torch.save(state, ckpt)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # would turn an implicit weights_only off
    with pytest.raises(ActionError, match=r"does not load with torch.load\(weights_only=True\)") as err:
        _train(_raw(tmp_path, tmp_path / "w", max_steps=2))
    assert err.value.exit_code == 2
    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    del state["smuggled"]
    torch.save(state, ckpt)
    assert _train(_raw(tmp_path, tmp_path / "w", max_steps=2)).resumed_from == str(ckpt)
