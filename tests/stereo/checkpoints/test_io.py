"""read_checkpoint: format detection, prefix normalisation, meta, and clear errors on bad files."""
from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from stereo.checkpoints import checkpoint_sha256, read_checkpoint
from stereo.errors import CheckpointFormatError, CheckpointNotFoundError


def _weights() -> OrderedDict[str, torch.Tensor]:
    torch.manual_seed(1)
    return OrderedDict([("feature.stem.0.weight", torch.randn(4, 3, 3, 3)),
                        ("feature.stem.1.num_batches_tracked", torch.tensor(5)),
                        ("classifier.layers.0.bias", torch.randn(1).half())])


def _assert_weights(state_dict: dict) -> None:
    expected = _weights()
    assert list(state_dict) == list(expected)
    for key, tensor in expected.items():
        assert state_dict[key].dtype == tensor.dtype and torch.equal(state_dict[key], tensor), key


def test_plain_state_dict(tmp_path):
    torch.save(_weights(), tmp_path / "w.pt")
    ckpt = read_checkpoint(tmp_path / "w.pt")
    assert ckpt.format == "state_dict" and ckpt.meta["loader"] == "torch.load(weights_only=True)"
    _assert_weights(ckpt.state_dict)


def test_nvlabs_dict_with_ddp_prefix(tmp_path):
    wrapped = {f"module.{k}": v for k, v in _weights().items()}
    torch.save({"model": wrapped, "global_step": 1200, "epoch": 3}, tmp_path / "model_best_bp2.pth")
    ckpt = read_checkpoint(tmp_path / "model_best_bp2.pth")
    assert ckpt.format == "nvlabs"
    assert ckpt.meta["global_step"] == 1200 and ckpt.meta["epoch"] == 3
    assert ckpt.meta["stripped_prefixes"] == ["module."]
    _assert_weights(ckpt.state_dict)


def test_lightning_checkpoint_strips_model_prefix(tmp_path):
    state = {f"model.{k}": v for k, v in _weights().items()}
    torch.save({"state_dict": state, "epoch": 7, "global_step": 70, "pytorch-lightning_version": "2.6.0",
                "optimizer_states": [{"state": {}}]}, tmp_path / "last.ckpt")
    ckpt = read_checkpoint(tmp_path / "last.ckpt")
    assert ckpt.format == "lightning" and ckpt.meta["stripped_prefixes"] == ["model."]
    assert ckpt.meta["epoch"] == 7 and "optimizer_states" not in ckpt.meta
    _assert_weights(ckpt.state_dict)


def test_lightning_prefix_kept_when_not_on_every_key(tmp_path):
    state = {f"model.{k}": v for k, v in _weights().items()} | {"criterion.weight": torch.ones(1)}
    torch.save({"state_dict": state}, tmp_path / "x.tlt")
    ckpt = read_checkpoint(tmp_path / "x.tlt")
    assert ckpt.meta["stripped_prefixes"] == [] and "criterion.weight" in ckpt.state_dict


def test_lightning_with_omegaconf_hparams_and_numpy_scalars(tmp_path):
    # weights_only refuses DictConfig / numpy objects; the restricted unpickler reads them inertly
    hparams = OmegaConf.create({"model": {"model_type": "FoundationStereo", "encoder": "vits"}})
    torch.save({"state_dict": {f"model.{k}": v for k, v in _weights().items()},
                "hyper_parameters": hparams, "best_epe": np.float64(0.75)}, tmp_path / "tao.pth")
    ckpt = read_checkpoint(tmp_path / "tao.pth")
    assert ckpt.format == "lightning"
    assert ckpt.meta["hyper_parameters"] == {"model": {"model_type": "FoundationStereo", "encoder": "vits"}}
    assert ckpt.meta["best_epe"] == 0.75
    _assert_weights(ckpt.state_dict)


def test_foreign_safetensors(tmp_path):
    save_file(dict(_weights()), tmp_path / "model.safetensors", metadata={"source": "hf"})
    ckpt = read_checkpoint(tmp_path / "model.safetensors")
    assert ckpt.format == "safetensors" and ckpt.meta == {"source": "hf"}
    assert set(ckpt.state_dict) == set(_weights())


def test_sniffing_ignores_misleading_suffix(tmp_path):
    save_file(dict(_weights()), tmp_path / "weights.pth")  # safetensors under a torch suffix
    assert read_checkpoint(tmp_path / "weights.pth").format == "safetensors"


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="not found"):
        read_checkpoint(tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError):  # also catchable as the builtin
        read_checkpoint(tmp_path / "nope.pth")


def test_directory_is_refused(tmp_path):
    with pytest.raises(CheckpointFormatError, match="is a directory"):
        read_checkpoint(tmp_path)


def test_not_a_checkpoint_hints_at_encrypted_tlt(tmp_path):
    (tmp_path / "old.tlt").write_bytes(b"\x13\x37" * 100)
    with pytest.raises(CheckpointFormatError, match="encrypted TAO .tlt"):
        read_checkpoint(tmp_path / "old.tlt")


def test_truncated_torch_zip(tmp_path):
    torch.save(_weights(), tmp_path / "w.pth")
    data = (tmp_path / "w.pth").read_bytes()
    (tmp_path / "w.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointFormatError, match="corrupt or truncated"):
        read_checkpoint(tmp_path / "w.pth")


def test_truncated_safetensors(tmp_path):
    save_file(dict(_weights()), tmp_path / "m.safetensors")
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "m.safetensors").write_bytes(data[:-20])
    with pytest.raises(CheckpointFormatError, match="corrupt or truncated"):
        read_checkpoint(tmp_path / "m.safetensors")


def test_dict_without_weights(tmp_path):
    torch.save({"epoch": 1, "note": "hi"}, tmp_path / "x.pth")
    with pytest.raises(CheckpointFormatError, match=r"no state dict inside \(top-level keys: 'epoch', 'note'"):
        read_checkpoint(tmp_path / "x.pth")


def test_non_tensor_in_state_dict(tmp_path):
    torch.save({"model": {"a.weight": torch.ones(1), "a.bias": 3}}, tmp_path / "x.pth")
    with pytest.raises(CheckpointFormatError, match=r"\['model'\]\['a.bias'\] is a int"):
        read_checkpoint(tmp_path / "x.pth")


def test_sha256_is_streamed_and_correct(tmp_path):
    data = bytes(range(256)) * 9000  # > one 1 MiB chunk
    (tmp_path / "blob").write_bytes(data)
    assert checkpoint_sha256(tmp_path / "blob") == hashlib.sha256(data).hexdigest()
    with pytest.raises(CheckpointNotFoundError):
        checkpoint_sha256(tmp_path / "missing")
