"""Our format: <name>.safetensors + <name>.json sidecar, atomic, verified on read."""
from __future__ import annotations

import json

import pytest
import torch

from stereo.checkpoints import SIDECAR_FORMAT_VERSION, checkpoint_sha256, read_checkpoint, read_sidecar, save_checkpoint
from stereo.errors import CheckpointError, CheckpointFormatError, CheckpointNotFoundError

CONFIG = {"model_type": "FastFoundationStereo", "variant": "bp2", "max_disparity": 192}


def _state() -> dict[str, torch.Tensor]:
    base = torch.arange(12.0).reshape(3, 4)
    return {"a.weight": base, "a.alias": base, "b.t": base.t(), "c.half": torch.ones(2, dtype=torch.float16),
            "bn.num_batches_tracked": torch.tensor(3)}


def test_round_trip_with_sidecar_meta(tmp_path):
    written = save_checkpoint(tmp_path / "run" / "best", _state(), config=CONFIG,
                              meta={"mlflow_run_id": "abc123", "parent_sha256": "f" * 64, "epoch": 2})
    assert written == tmp_path / "run" / "best.safetensors"
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["best.json", "best.safetensors"]

    ckpt = read_checkpoint(written)
    assert ckpt.format == "stereo"
    assert ckpt.meta == read_sidecar(written)
    assert ckpt.meta["config"] == CONFIG and ckpt.meta["meta"]["mlflow_run_id"] == "abc123"
    assert ckpt.meta["sha256"] == checkpoint_sha256(written)
    assert ckpt.meta["format_version"] == SIDECAR_FORMAT_VERSION
    assert ckpt.meta["torch_version"] == torch.__version__ and ckpt.meta["created"].endswith("Z")
    for key, tensor in _state().items():
        assert torch.equal(ckpt.state_dict[key], tensor) and ckpt.state_dict[key].dtype == tensor.dtype


def test_aliased_and_non_contiguous_tensors_are_saved(tmp_path):
    # safetensors itself refuses shared storage; save_checkpoint gives aliases their own copy
    save_checkpoint(tmp_path / "m.safetensors", _state(), config=CONFIG)
    loaded = read_checkpoint(tmp_path / "m.safetensors").state_dict
    assert torch.equal(loaded["b.t"], _state()["b.t"])
    assert loaded["a.weight"].untyped_storage().data_ptr() != loaded["a.alias"].untyped_storage().data_ptr()


def test_sidecar_paths_accept_stem_weights_or_json(tmp_path):
    save_checkpoint(tmp_path / "m", _state(), config=CONFIG)
    assert read_sidecar(tmp_path / "m") == read_sidecar(tmp_path / "m.json") == read_sidecar(
        tmp_path / "m.safetensors")


def test_torch_suffix_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match=r"pass '.*m\.safetensors'"):
        save_checkpoint(tmp_path / "m.pth", _state(), config=CONFIG)


def test_modified_weights_fail_verification(tmp_path):
    path = save_checkpoint(tmp_path / "m", _state(), config=CONFIG)
    save_checkpoint(tmp_path / "other", {"x": torch.zeros(1)}, config=CONFIG)
    path.write_bytes((tmp_path / "other.safetensors").read_bytes())  # weights swapped, sidecar stale
    with pytest.raises(CheckpointFormatError, match="differs from"):
        read_checkpoint(path)
    assert read_checkpoint(path, verify=False).state_dict.keys() == {"x"}


def test_newer_format_version_is_refused(tmp_path):
    save_checkpoint(tmp_path / "m", _state(), config=CONFIG)
    sidecar = json.loads((tmp_path / "m.json").read_text())
    sidecar["format_version"] = SIDECAR_FORMAT_VERSION + 1
    (tmp_path / "m.json").write_text(json.dumps(sidecar))
    with pytest.raises(CheckpointFormatError, match="upgrade stereo-automl"):
        read_sidecar(tmp_path / "m")


def test_missing_sidecar(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="sidecar not found"):
        read_sidecar(tmp_path / "m.safetensors")


def test_non_json_config_is_refused_before_writing(tmp_path):
    with pytest.raises(CheckpointError, match="config is not JSON-serialisable"):
        save_checkpoint(tmp_path / "m", _state(), config={"path": object()})
    assert list(tmp_path.iterdir()) == []


def test_omegaconf_config_is_converted(tmp_path):
    from omegaconf import OmegaConf
    save_checkpoint(tmp_path / "m", _state(), config=OmegaConf.create(CONFIG))
    assert read_sidecar(tmp_path / "m")["config"] == CONFIG


def test_non_tensor_value_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="entry 'epoch' is int"):
        save_checkpoint(tmp_path / "m", {"epoch": 3}, config=CONFIG)


def test_a_linked_weights_file_reads_the_sidecar_beside_its_target(tmp_path):
    # the training layout's dn_model_latest / dn_model_best are relative symlinks; while they move, the
    # .json link may still point at the previous checkpoint: only the weights link decides
    save_checkpoint(tmp_path / "model_epoch_000_step_00001", {"w": torch.zeros(2)}, config=CONFIG)
    save_checkpoint(tmp_path / "model_epoch_000_step_00002", {"w": torch.ones(2)}, config=CONFIG)
    (tmp_path / "dn_model_latest.safetensors").symlink_to("model_epoch_000_step_00002.safetensors")
    (tmp_path / "dn_model_latest.json").symlink_to("model_epoch_000_step_00001.json")  # not moved yet
    ckpt = read_checkpoint(tmp_path / "dn_model_latest.safetensors")  # verified against the target's sidecar
    assert ckpt.format == "stereo" and torch.equal(ckpt.state_dict["w"], torch.ones(2))
    assert ckpt.meta["weights"] == "model_epoch_000_step_00002.safetensors"
    assert read_sidecar(tmp_path / "dn_model_latest.safetensors") == ckpt.meta
    assert read_sidecar(tmp_path / "dn_model_latest") == ckpt.meta


def test_a_crash_between_the_two_writes_never_leaves_unverifiable_weights(tmp_path, monkeypatch):
    import os

    import stereo.atomic_io as atomic_io

    real_replace = os.replace

    def killed_before_weights(src, dst):
        if str(dst).endswith(".safetensors"):
            raise KeyboardInterrupt  # the process dies after the sidecar is published
        real_replace(src, dst)

    monkeypatch.setattr(atomic_io.os, "replace", killed_before_weights)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "m", _state(), config=CONFIG)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]  # temp removed, no weights published
    with pytest.raises(CheckpointNotFoundError):
        read_checkpoint(tmp_path / "m.safetensors")
