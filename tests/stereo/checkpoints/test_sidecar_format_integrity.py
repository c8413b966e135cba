"""A checkpoint is never loaded without its integrity check (issue 11: a corrupt JSON sidecar was silently
ignored and the weights loaded unverified, exit 0)."""
import dataclasses

import pytest
import torch

from stereo.models import create_model, preset_config
from stereo.checkpoints import read_checkpoint, save_checkpoint
from stereo.errors import CheckpointFormatError, CheckpointNotFoundError
from stereo.training.weights import load_weights


@pytest.fixture
def ckpt(tmp_path):
    return save_checkpoint(tmp_path / "m", {"w": torch.arange(6.0)}, config={"model_type": "x"})


@pytest.mark.parametrize("text", ['{"format": "stereo-automl-checkpoint", "sha256": ', "", "\x00\x01garbage"])
def test_a_corrupt_sidecar_is_an_error_not_skipped(ckpt, text):
    ckpt.with_suffix(".json").write_text(text)
    with pytest.raises(CheckpointFormatError, match=r"m.json: not valid JSON .*re-save"):
        read_checkpoint(ckpt)


def test_a_missing_sidecar_of_our_checkpoint_is_an_error(ckpt):
    ckpt.with_suffix(".json").unlink()
    with pytest.raises(CheckpointNotFoundError, match="m.json: sidecar not found"):
        read_checkpoint(ckpt)


def test_someone_elses_json_beside_foreign_weights_is_left_alone(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2)}, str(tmp_path / "f.safetensors"))
    (tmp_path / "f.json").write_text('{"labels": ["car"]}')
    assert read_checkpoint(tmp_path / "f.safetensors").format == "safetensors"
    (tmp_path / "f.json").write_text('{"labels": ')  # but a .json that does not parse is not waved through
    with pytest.raises(CheckpointFormatError, match="f.json: not valid JSON"):
        read_checkpoint(tmp_path / "f.safetensors")


def test_corrupt_sidecar_exits_2_when_loading_into_a_model(tmp_path):
    """Through the actions' own loader (load_weights); the CLI case is in tests/stereo/test_cli_exit_codes.py."""
    from stereo.errors import exit_code_of

    torch.manual_seed(0)
    model = create_model("ffs_tiny")
    path = save_checkpoint(tmp_path / "t", model.state_dict(), config=dataclasses.asdict(preset_config("ffs_tiny")))
    path.with_suffix(".json").write_text("{ corrupt")
    with pytest.raises(Exception) as info:
        load_weights(model, path, model_type="FastFoundationStereo")
    assert exit_code_of(info.value) == 2 and "not valid JSON" in str(info.value)
