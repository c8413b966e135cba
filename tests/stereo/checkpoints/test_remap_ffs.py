"""FFS bp2 key remap against the manifests: every upstream key <-> its `tao_key`."""
import csv

import pytest

from stereo.checkpoints.remap_ffs import is_tao_naming, tao_to_upstream, upstream_to_tao


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.fixture(scope="module")
def manifests(reference_dir):
    m = reference_dir / "manifests"
    return _rows(m / "ffs_bp2_upstream.tsv"), _rows(m / "ffs_bp2_tao.tsv")


def test_every_upstream_key_maps_to_its_tao_key(manifests):
    upstream, _ = manifests
    mapped = upstream_to_tao({r["key"]: r["key"] for r in upstream})
    assert {src: dst for dst, src in mapped.items()} == {r["key"]: r["tao_key"] for r in upstream}


def test_every_tao_key_maps_back_and_dx_is_dropped(manifests):
    upstream, tao = manifests
    back = tao_to_upstream({r["key"]: r["key"] for r in tao})
    assert {src: dst for dst, src in back.items()} == {r["tao_key"]: r["key"] for r in upstream}
    assert "dx" not in back.values() and len(tao) == len(upstream) + 1


def test_wrappers_are_stripped():
    out = tao_to_upstream({"model.module.classifier.0.weight": 1, "model.dx": 2})
    assert out == {"classifier.layers.0.weight": 1}
    assert upstream_to_tao({"module.feature.stem.0.weight": 1}) == {"feature.downsample_layers.0.0.weight": 1}


def test_disp_head_tokens_stay_and_mixed_conventions_raise():
    key = "update_block.disp_head.conv.2.pwconv1.weight"
    assert tao_to_upstream({key: 0}) == {key: 0} and upstream_to_tao({key: 0}) == {key: 0}
    with pytest.raises(ValueError, match="naming conventions"):
        tao_to_upstream({"classifier.0.weight": 0, "classifier.layers.0.weight": 1})


def test_naming_detection(manifests):
    upstream, tao = manifests
    assert is_tao_naming(r["key"] for r in tao)
    assert not is_tao_naming(r["key"] for r in upstream)
