"""TAO FS <-> NVlabs FS key remap."""
from __future__ import annotations

import csv

import pytest

from stereo.checkpoints.remap_fs import (
    looks_like_tao_fs,
    nvlabs_fs_key_to_tao,
    remap_nvlabs_fs_to_tao,
    remap_tao_fs_to_nvlabs,
)


@pytest.mark.parametrize("tao,nvlabs", [
    ("feature.downsample_layers.0.1.weight", "feature.stem.1.weight"),
    ("feature.downsample_layers.2.1.bias", "feature.stages.2.downsample.1.bias"),
    ("feature.stages.1.0.dwconv.weight", "feature.stages.1.blocks.0.conv_dw.weight"),
    ("feature.stages.2.8.pwconv1.bias", "feature.stages.2.blocks.8.mlp.fc1.bias"),
    ("feature.stages.1.2.xca.qkv.weight", "feature.stages.1.blocks.2.xca.qkv.weight"),
    ("cost_agg.atts.cost_vol_disp.sa.0.linear1.weight", "cost_agg.atts.4.sa.0.linear1.weight"),
    ("cost_agg.conv1.0.norm.running_mean", "cost_agg.conv1.0.bn.running_mean"),
    # scoped rules: DINOv2 mlp, EdgeNeXt LayerNorm, cnet BatchNorm and the disp head keep their names
    ("feature.dino.depth_anything.pretrained.blocks.0.mlp.fc1.weight",
     "feature.dino.depth_anything.pretrained.blocks.0.mlp.fc1.weight"),
    ("feature.stages.0.0.norm.weight", "feature.stages.0.blocks.0.norm.weight"),
    ("cnet.norm.weight", "cnet.norm.weight"),
    ("update_block.disp_head.conv.2.pwconv1.weight", "update_block.disp_head.conv.2.pwconv1.weight"),
])
def test_single_keys_map_both_ways(tao, nvlabs):
    state = {tao: 0, "cost_agg.conv1.0.conv.weight": 1}
    assert nvlabs in remap_tao_fs_to_nvlabs(state)
    assert nvlabs_fs_key_to_tao(nvlabs) == tao


def test_wrappers_are_stripped():
    out = remap_tao_fs_to_nvlabs({"model.module.proj_cmb.weight": 1, "model.module.cnet.norm.bias": 2})
    assert out == {"proj_cmb.weight": 1, "cnet.norm.bias": 2}


def test_collisions_raise():
    with pytest.raises(KeyError, match="collision"):
        remap_tao_fs_to_nvlabs({"feature.stem.0.weight": 1, "feature.downsample_layers.0.0.weight": 2})


@pytest.mark.shared
def test_tao_manifest_round_trips_and_matches_nvlabs_names(reference_dir):
    def load(name):
        with open(reference_dir / "manifests" / f"{name}.tsv") as f:
            return {r["key"]: r["shape"] for r in csv.DictReader(f, delimiter="\t")}
    tao, nv = load("fs_vits_tao"), load("fs_vits_nvlabs")
    mapped = remap_tao_fs_to_nvlabs(tao)
    assert set(mapped) <= set(nv) and len(mapped) == 1147
    # the 45 NVlabs-only keys are the BatchNorms that TAO replaced by stateless InstanceNorm
    only_nv = {k.rsplit(".", 1)[0] for k in set(nv) - set(mapped)}
    assert len(set(nv) - set(mapped)) == 45 and all(k.endswith(".bn") for k in only_nv)
    assert remap_nvlabs_fs_to_tao(mapped) == tao
    assert looks_like_tao_fs(tao) and not looks_like_tao_fs(nv)
