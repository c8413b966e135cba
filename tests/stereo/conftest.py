"""Tiny checkpoints and exported graphs shared by the deploy and action tests (each export takes about a second)."""
import dataclasses
from pathlib import Path

import pytest
import torch

from stereo.models import create_model, preset_config
from stereo.checkpoints import save_checkpoint


@pytest.fixture(scope="session")
def ffs_tiny():
    """(model in eval mode, its ModelConfig) with seeded random weights."""
    torch.manual_seed(0)
    return create_model("ffs_tiny").eval(), preset_config("ffs_tiny")


@pytest.fixture(scope="session")
def ffs_checkpoint(tmp_path_factory, ffs_tiny):
    """Our safetensors + sidecar checkpoint of `ffs_tiny`."""
    model, cfg = ffs_tiny
    written = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", model.state_dict(),
                              config=dataclasses.asdict(cfg))
    assert Path(written).is_file(), written
    return written


@pytest.fixture(scope="session")
def exported(tmp_path_factory, ffs_tiny):
    """{mode: ExportInfo} for the three shape modes of ffs_tiny at 64x128."""
    from stereo.deploy.export import export_onnx

    model, cfg = ffs_tiny
    root = tmp_path_factory.mktemp("onnx")
    modes = {"static": {"batch_size": 1}, "dynamic_batch": {"batch_size": -1},
             "dynamic_hw": {"batch_size": -1, "dynamic_hw": True}}
    infos = {mode: export_onnx(model, cfg, root / f"{mode}.onnx", height=64, width=128, valid_iters=2, **kw)
             for mode, kw in modes.items()}
    # every test that shares these graphs relies on them: each written, in its own mode, matching eager
    for mode, info in infos.items():
        assert info.shape_mode == mode and info.onnx_file.is_file() and info.sidecar_file.is_file(), info
        assert info.max_abs_diff is not None and info.max_abs_diff < 1e-3, (mode, info.max_abs_diff)
    return infos
