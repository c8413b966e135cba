"""stereo.checkpoints.tao_pth: TAO-style .pth weights that torch.load(weights_only=True) reads."""
import dataclasses

import pytest
import torch

from stereo.models import create_model, preset_config
from stereo.checkpoints import read_checkpoint
from stereo.errors import CheckpointError, CheckpointFormatError
from stereo.checkpoints.remap_ffs import tao_to_upstream
from stereo.checkpoints.tao_pth import save_pth, tensors_sha256, verify_pth
from stereo.models.ffs.dead_keys import legacy_tensors


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_model("ffs_tiny"), dataclasses.asdict(preset_config("ffs_tiny"))


def test_roundtrip_tao_names_weights_only_and_verified(tmp_path, tiny):
    model, config = tiny
    path = save_pth(tmp_path / "w.pth", model.state_dict(), config=config, meta={"epoch": 2, "step": 9},
                    legacy=legacy_tensors(model))
    obj = torch.load(path, map_location="cpu", weights_only=True)
    assert obj["epoch"] == 2 and obj["global_step"] == 9 and obj["stereo_automl"]["naming"] == "tao"
    assert all(k.startswith("model.") for k in obj["state_dict"])
    ckpt = read_checkpoint(path)
    assert ckpt.format == "lightning" and ckpt.meta["verified"] == "tensors_sha256"
    assert ckpt.meta["config"] == config and ckpt.meta["meta"]["step"] == 9
    ours = tao_to_upstream(ckpt.state_dict)
    assert set(ours) - set(model.state_dict()) == set(model.ignored_keys()) - {"dx"}
    model.load_upstream_state_dict(ours)  # strict apart from the legacy keys


def test_a_changed_tensor_is_refused_unless_verify_is_off(tmp_path, tiny):
    model, config = tiny
    path = save_pth(tmp_path / "w.pth", model.state_dict(), config=config)
    obj = torch.load(path, weights_only=True)
    obj["state_dict"]["model.classifier.0.weight"].mul_(2)
    torch.save(obj, path)
    with pytest.raises(CheckpointFormatError, match="tensors hash .* differs"):
        read_checkpoint(path)
    assert read_checkpoint(path, verify=False).meta["verified"] == "no (verify=False)"


def test_hash_covers_names_dtypes_and_shapes():
    a = {"x": torch.zeros(2, 3)}
    assert tensors_sha256(a) != tensors_sha256({"y": torch.zeros(2, 3)})
    assert tensors_sha256(a) != tensors_sha256({"x": torch.zeros(3, 2)})
    assert tensors_sha256(a) != tensors_sha256({"x": torch.zeros(2, 3, dtype=torch.float64)})
    assert tensors_sha256({"b": torch.ones(1), "a": torch.ones(1)}) == tensors_sha256({"a": torch.ones(1),
                                                                                         "b": torch.ones(1)})


def test_foreign_files_are_not_ours_and_suffix_is_checked(tmp_path, tiny):
    assert verify_pth({"state_dict": {"model.w": torch.zeros(1)}, "epoch": 1}, "x.pth") is None
    with pytest.raises(CheckpointFormatError, match="not a stereo-automl-pth block"):
        verify_pth({"state_dict": {}, "stereo_automl": {"format": "other"}}, "x.pth")
    with pytest.raises(CheckpointError, match="'<name>.pth'"):
        save_pth(tmp_path / "w.ckpt", tiny[0].state_dict(), config=tiny[1])
