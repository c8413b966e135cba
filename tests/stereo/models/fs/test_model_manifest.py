"""Our FoundationStereo state dicts equal the NVlabs / TAO manifests (keys, shapes, parameter totals).

Built on the meta device: shapes without memory, so even FS-vitl (374.5 M parameters) is cheap here.
"""
from __future__ import annotations

import csv

import pytest
import torch

from stereo.checkpoints.remap_fs import remap_tao_fs_to_nvlabs
from stereo.models.fs import FoundationStereo, preset_config

pytestmark = pytest.mark.shared


def _manifest(reference_dir, name):
    with open(reference_dir / "manifests" / f"{name}.tsv") as f:
        return {r["key"]: r["shape"] for r in csv.DictReader(f, delimiter="\t")}


def _totals(reference_dir):
    with open(reference_dir / "manifests" / "param_totals.tsv") as f:
        return {r["manifest"]: int(r["registered_params"]) for r in csv.DictReader(f, delimiter="\t")
                if r["group"] == "TOTAL"}


def _shapes(model):
    return {k: "x".join(map(str, v.shape)) if v.dim() else "scalar" for k, v in model.state_dict().items()}


def _meta_model(preset):
    with torch.device("meta"):
        return FoundationStereo(preset_config(preset))


@pytest.mark.parametrize("preset,manifest", [("fs_vits", "fs_vits_nvlabs"), ("fs_vitl", "fs_vitl_nvlabs")])
def test_nvlabs_state_dict_equals_manifest(reference_dir, preset, manifest):
    model = _meta_model(preset)
    ours, ref = _shapes(model), _manifest(reference_dir, manifest)
    assert sorted(set(ref) - set(ours)) == []
    assert sorted(set(ours) - set(ref)) == []
    assert {k: v for k, v in ours.items() if ref[k] != v} == {}
    assert sum(p.numel() for p in model.parameters()) == _totals(reference_dir)[manifest]


def test_tao_variant_loads_tao_manifest_after_remap(reference_dir):
    model = _meta_model("fs_vits_tao")
    ref = _manifest(reference_dir, "fs_vits_tao")
    gen = torch.Generator().manual_seed(0)
    tao_state = {k: (torch.zeros((), dtype=torch.long) if s == "scalar" else
                     torch.randn(*map(int, s.split("x")), generator=gen)) for k, s in ref.items()}
    result = model.load_state_dict(remap_tao_fs_to_nvlabs(tao_state), strict=False, assign=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert sum(p.numel() for p in model.parameters()) == _totals(reference_dir)["fs_vits_tao"]
    # values landed: agg_1.0 is the TAO ConvTranspose3d (in=112, out=56)
    assert torch.equal(model.cost_agg.agg_1[0].conv.weight, tao_state["cost_agg.agg_1.0.conv.weight"])
    assert isinstance(model.cost_agg.agg_1[0].conv, torch.nn.ConvTranspose3d)


def test_dead_modules_are_the_documented_never_executed_rows(reference_dir):
    """DEAD_KEY_PREFIXES covers exactly the manifest's never-executed rows (whitelist for partial loads)."""
    from stereo.models.fs import DEAD_KEY_PREFIXES
    with open(reference_dir / "manifests" / "fs_vits_nvlabs.tsv") as f:
        dead = {r["key"] for r in csv.DictReader(f, delimiter="\t") if r["executed"] == "no"}
    ours = {k for k in _shapes(_meta_model("fs_vits")) if k.startswith(DEAD_KEY_PREFIXES)}
    assert ours == dead
