"""load_weights (the loader of train/evaluate/inference/export): every bp2 checkpoint family, full size.

The state dicts are built from the manifests, so they carry exactly the keys of the published files,
including the never-executed legacy modules that our FastFoundationStereo does not register.
"""
from __future__ import annotations

import csv
import sys
import types

import pytest
import torch

from stereo.errors import BadInputError
from stereo.config.model import FFS_BP2, ModelConfig
from stereo.checkpoints.remap_ffs import tao_to_upstream
from stereo.models.ffs import FastFoundationStereo
from stereo.training.weights import load_weights

pytestmark = pytest.mark.shared


def _rows(reference_dir, name):
    with open(reference_dir / "manifests" / name, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _tensor(row, g):
    shape = () if row["shape"] == "scalar" else tuple(int(v) for v in row["shape"].split("x"))
    if row["dtype"] == "int64":
        return torch.tensor(3, dtype=torch.int64)
    if row["dtype"] == "int8":
        return torch.zeros(shape, dtype=torch.int8)
    return torch.rand(shape, generator=g) + 0.5


def _state(reference_dir, name):
    g = torch.Generator().manual_seed(0)
    return {r["key"]: _tensor(r, g) for r in _rows(reference_dir, name)}


@pytest.fixture(scope="module")
def bp2():
    return FastFoundationStereo(ModelConfig(**FFS_BP2))


def _assert_loaded(model, state):
    """Every tensor of the model holds the checkpoint's value (upstream names; TAO names are remapped)."""
    if "dx" in state:
        state = tao_to_upstream(state)
    ours = model.state_dict()
    assert len(ours) > 500
    for key, tensor in ours.items():
        assert torch.equal(tensor, state[key]), key


def test_upstream_pth_with_dead_legacy_keys_loads(tmp_path, bp2, reference_dir):
    state = _state(reference_dir, "ffs_bp2_upstream.tsv")
    assert any(k not in bp2.state_dict() for k in state)  # the dead rows are really in the file
    torch.save({"model": state}, tmp_path / "ffs.pth")  # a renamed file: nothing keys off "bp2" in the name
    meta = load_weights(bp2, tmp_path / "ffs.pth", model_type="FastFoundationStereo")
    assert len(meta["sha256"]) == 64
    _assert_loaded(bp2, state)


def test_lightning_ckpt_of_upstream_names_loads(tmp_path, bp2, reference_dir):
    state = _state(reference_dir, "ffs_bp2_upstream.tsv")
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": 2}, tmp_path / "x.ckpt")
    load_weights(bp2, tmp_path / "x.ckpt", model_type="FastFoundationStereo")
    _assert_loaded(bp2, state)


def test_tao_named_checkpoint_loads(tmp_path, bp2, reference_dir):
    state = _state(reference_dir, "ffs_bp2_tao.tsv")
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}}, tmp_path / "tao.pth")
    load_weights(bp2, tmp_path / "tao.pth", model_type="FastFoundationStereo")
    _assert_loaded(bp2, state)


def _pickled_module_tree(state: dict, kinds: dict) -> torch.nn.Module:
    """A whole-module pickle like model_best_bp2_serialize.pth: classes of a research package we lack."""
    mod = types.ModuleType("core.foundation_stereo")

    class Node(torch.nn.Module):
        pass

    class FastFoundationStereo(torch.nn.Module):
        pass

    for cls in (Node, FastFoundationStereo):
        cls.__module__, cls.__qualname__ = mod.__name__, cls.__name__
        setattr(mod, cls.__name__, cls)
    sys.modules["core"], sys.modules[mod.__name__] = types.ModuleType("core"), mod
    root = FastFoundationStereo()
    for key, tensor in state.items():
        *path, leaf = key.split(".")
        node = root
        for part in path:
            if not hasattr(node, part):
                node.add_module(part, Node())
            node = getattr(node, part)
        if kinds[key] == "param":
            node.register_parameter(leaf, torch.nn.Parameter(tensor, requires_grad=tensor.is_floating_point()))
        else:
            node.register_buffer(leaf, tensor)
    return root


def test_research_module_pickle_loads_without_its_code(tmp_path, bp2, reference_dir):
    rows = _rows(reference_dir, "ffs_bp2_upstream.tsv")
    state = _state(reference_dir, "ffs_bp2_upstream.tsv")
    try:
        torch.save(_pickled_module_tree(state, {r["key"]: r["kind"] for r in rows}),
                   tmp_path / "model_best_bp2_serialize.pth")
    finally:
        sys.modules.pop("core.foundation_stereo", None)
        sys.modules.pop("core", None)
    load_weights(bp2, tmp_path / "model_best_bp2_serialize.pth", model_type="FastFoundationStereo")
    _assert_loaded(bp2, state)


def test_foreign_key_still_fails_with_the_key_named(tmp_path, bp2, reference_dir):
    state = _state(reference_dir, "ffs_bp2_upstream.tsv")
    state["cost_agg.not_a_module.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(BadInputError, match="not_a_module"):
        load_weights(bp2, tmp_path / "bad.pth", model_type="FastFoundationStereo")
