"""Loading DepthAnything-V2 and EdgeNeXt weights in upstream/timm and TAO layouts."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from stereo.models.backbones.depth_anything import DepthAnythingV2
from stereo.models.backbones.pretrained import load_depth_anything_v2, load_edgenext
from stereo.errors import PretrainedLoadError
from stereo.checkpoints.remap_fs import nvlabs_fs_key_to_tao
from stereo.models.fs import FoundationStereo, preset_config


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return FoundationStereo(preset_config("fs_tiny"))


def _distinct(state):
    """Every tensor gets values no other tensor has, so misplaced weights are caught."""
    return {k: torch.full_like(v, float(i + 1)) if v.is_floating_point() else v.clone()
            for i, (k, v) in enumerate(state.items())}


def _dav2_file_state():
    return _distinct(DepthAnythingV2("vitt").state_dict())


def test_upstream_depth_anything_file_lands_on_the_vit_branch(tiny, tmp_path):
    state = _dav2_file_state()  # `pretrained.*` + `depth_head.*`, as depth_anything_v2_vit?.pth
    torch.save(state, tmp_path / "depth_anything_v2_vitt.pth")
    load_depth_anything_v2(tiny, tmp_path / "depth_anything_v2_vitt.pth")
    own = tiny.feature.dino.depth_anything.state_dict()
    assert all(torch.equal(own[k], v) for k, v in state.items())
    assert not any(p.requires_grad for p in tiny.feature.dino.parameters())  # still frozen


def test_tao_lightning_depth_anything_file(tiny, tmp_path):
    state = {f"model.depth_anything.{k}": v + 0.5 for k, v in _dav2_file_state().items()}
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "mono.ckpt")
    load_depth_anything_v2(tiny, tmp_path / "mono.ckpt")
    w = tiny.feature.dino.depth_anything.pretrained.cls_token
    assert torch.equal(w, state["model.depth_anything.pretrained.cls_token"])


def _edgenext_timm_state(model):
    return _distinct({k: v for k, v in model.feature.state_dict().items() if k.startswith(("stem.", "stages."))})


def test_timm_edgenext_file(tiny, tmp_path):
    state = _edgenext_timm_state(tiny)
    state["head.fc.weight"] = torch.zeros(10, 48)  # ImageNet classifier is ignored
    save_file(state, str(tmp_path / "edgenext.safetensors"))
    load_edgenext(tiny, tmp_path / "edgenext.safetensors")
    own = tiny.feature.state_dict()
    assert all(torch.equal(own[k], v) for k, v in state.items() if not k.startswith("head."))


def test_tao_edgenext_file(tiny, tmp_path):
    timm_state = _edgenext_timm_state(tiny)
    tao_state = {nvlabs_fs_key_to_tao("feature." + k)[len("feature."):]: v * 2 for k, v in timm_state.items()}
    assert any(k.startswith("downsample_layers.") for k in tao_state)
    assert any(".pwconv1." in k for k in tao_state)
    torch.save({"state_dict": {**tao_state, "norm.weight": torch.ones(3), "head.weight": torch.ones(3)}},
               tmp_path / "edgenext_tao.pth")
    load_edgenext(tiny, tmp_path / "edgenext_tao.pth")
    own = tiny.feature.state_dict()
    assert torch.equal(own["stages.1.downsample.1.weight"], timm_state["stages.1.downsample.1.weight"] * 2)
    assert torch.equal(own["stages.0.blocks.0.mlp.fc1.weight"], timm_state["stages.0.blocks.0.mlp.fc1.weight"] * 2)


def test_wrong_shapes_list_the_keys(tiny, tmp_path):
    state = _dav2_file_state()
    state["pretrained.cls_token"] = torch.zeros(1, 1, 7)
    state["depth_head.projects.0.weight"] = torch.zeros(3, 3, 1, 1)
    del state["pretrained.norm.bias"]
    torch.save(state, tmp_path / "bad.pth")
    before = tiny.feature.dino.depth_anything.pretrained.norm.weight.clone()
    with pytest.raises(PretrainedLoadError) as err:
        load_depth_anything_v2(tiny, tmp_path / "bad.pth")
    msg = str(err.value)
    assert "2 mismatched" in msg and "pretrained.cls_token" in msg and "depth_head.projects.0.weight" in msg
    assert "1 missing" in msg and "pretrained.norm.bias" in msg
    assert torch.equal(before, tiny.feature.dino.depth_anything.pretrained.norm.weight)  # nothing loaded


def test_config_paths_are_applied_at_construction(tmp_path):
    state = _dav2_file_state()
    torch.save(state, tmp_path / "dav2.pth")
    cfg = preset_config("fs_tiny")
    cfg.stereo_backbone.depth_anything_v2_pretrained_path = str(tmp_path / "dav2.pth")
    model = FoundationStereo(cfg)
    assert torch.equal(model.feature.dino.depth_anything.pretrained.pos_embed, state["pretrained.pos_embed"])


def test_not_a_depth_anything_file(tiny, tmp_path):
    torch.save({"foo.weight": torch.zeros(1)}, tmp_path / "x.pth")
    with pytest.raises(PretrainedLoadError, match="not a DepthAnything-V2"):
        load_depth_anything_v2(tiny, tmp_path / "x.pth")
    with pytest.raises(FileNotFoundError, match="pretrained_path"):
        load_edgenext(tiny, tmp_path / "missing.pth")
