"""Shared layers: vectorised volumes vs a per-disparity loop, samplers, attention layouts, EdgeNeXt names."""
import math

import pytest
import torch
import torch.nn.functional as F

from stereo.models.layers.cost_volume import build_concat_volume, build_gwc_volume, disparity_regression
from stereo.models.layers.edgenext import EdgeNeXt
from stereo.models.layers.geometry import CombinedGeoEncodingVolume, sample_1d_gather, sample_1d_grid
from stereo.models.layers.transformer import CostVolumeDisparityAttention, DisparityMultiheadAttention, sinusoidal_table
from stereo.models.layers.conv import BasicConv
from stereo.models.layers.upsample import context_upsample


def _loop_gwc(left, right, d_max, groups, normalize):
    b, c, h, w = left.shape
    lf = left.reshape(b, groups, c // groups, h, w)
    rf = right.reshape(b, groups, c // groups, h, w)
    if normalize:
        lf, rf = F.normalize(lf, dim=2), F.normalize(rf, dim=2)
    vol = torch.zeros(b, groups, d_max, h, w)
    for d in range(min(d_max, w)):
        vol[:, :, d, :, d:] = (lf[..., d:] * rf[..., : w - d]).sum(2)
    return vol


@pytest.mark.parametrize("normalize", [True, False])
def test_gwc_volume_matches_loop_including_d_beyond_width(normalize):
    g = torch.Generator().manual_seed(0)
    left, right = torch.randn(2, 16, 3, 6, generator=g), torch.randn(2, 16, 3, 6, generator=g)
    vol = build_gwc_volume(left, right, 9, 4, normalize=normalize)  # D=9 > W=6: zero where x < d
    torch.testing.assert_close(vol, _loop_gwc(left, right, 9, 4, normalize), atol=1e-6, rtol=0)
    assert vol[:, :, 6:].abs().max() == 0


def test_concat_volume_left_everywhere_right_shifted():
    left, right = torch.randn(1, 3, 2, 5), torch.randn(1, 3, 2, 5)
    vol = build_concat_volume(left, right, 7)
    assert vol.shape == (1, 6, 7, 2, 5)
    for d in range(7):
        torch.testing.assert_close(vol[:, :3, d], left)
        expect = torch.zeros_like(right)
        if d < 5:
            expect[..., d:] = right[..., : 5 - d]
        torch.testing.assert_close(vol[:, 3:, d], expect)


def test_disparity_regression_is_expectation():
    prob = torch.zeros(1, 4, 1, 1)
    prob[0, 1], prob[0, 3] = 0.5, 0.5
    assert disparity_regression(prob, 4).item() == pytest.approx(2.0)


def test_gather_sampler_equals_grid_sample_with_zero_padding():
    img = torch.randn(5, 3, 1, 11)
    x = torch.tensor([-1.5, -0.3, 0.0, 2.25, 9.9, 10.0, 10.4, 12.0]).view(1, 1, -1, 1).expand(5, 1, 8, 1)
    torch.testing.assert_close(sample_1d_gather(img, x), sample_1d_grid(img, x), atol=1e-6, rtol=0)


def test_geo_encoding_low_memory_same_values_and_channels():
    f1, f2 = torch.randn(1, 8, 4, 6), torch.randn(1, 8, 4, 6)
    vol = torch.randn(1, 5, 8, 4, 6)
    disp = torch.rand(1, 1, 4, 6) * 6
    coords = torch.arange(6.).reshape(1, 1, 6, 1).repeat(1, 4, 1, 1)
    a = CombinedGeoEncodingVolume(f1, f2, vol, 2, 4)(disp, coords)
    b = CombinedGeoEncodingVolume(f1, f2, vol, 2, 4, low_memory=True)(disp, coords)
    assert a.shape == (1, 2 * 9 * (5 + 1), 4, 6)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_geo_encoding_integer_disparity_reads_the_volume_cell():
    vol = torch.randn(1, 2, 8, 1, 3)
    f = torch.randn(1, 4, 1, 3)
    disp = torch.full((1, 1, 1, 3), 3.0)
    coords = torch.arange(3.).reshape(1, 1, 3, 1)
    out = CombinedGeoEncodingVolume(f, f, vol, 1, 1)(disp, coords)  # taps d = 2, 3, 4
    torch.testing.assert_close(out[0, :3, 0, 1], vol[0, 0, 2:5, 0, 1])


def _token_spread(layout):
    torch.manual_seed(0)
    att = DisparityMultiheadAttention(8, 4, layout).eval()
    x = torch.randn(1, 6, 8)
    y = x.clone()
    y[0, 2] += 1.0
    changed = (att(x) - att(y)).abs().amax(-1)[0] > 1e-6
    return int(changed.sum())


def test_attention_layouts_mix_tokens_differently():
    assert _token_spread("heads_as_sequence") == 1  # disparity tokens never mix
    assert _token_spread("standard") == 6  # every token attends to every token
    assert 1 < _token_spread("tao_view") < 6  # the view mixes chunks of tokens


def test_attention_rejects_unknown_layout():
    with pytest.raises(ValueError, match="heads_as_sequence"):
        DisparityMultiheadAttention(8, 4, "flash")


def test_sinusoidal_table_formula_and_not_in_state_dict():
    pe = sinusoidal_table(12, 28)[0]
    freq = math.exp(-4 * math.log(10000.0) / 28)  # channel pair i = 2
    assert pe[5, 4].item() == pytest.approx(math.sin(5 * freq), abs=1e-6)
    assert pe[5, 5].item() == pytest.approx(math.cos(5 * freq), abs=1e-6)
    dt = CostVolumeDisparityAttention(8, 4, 32, 1, max_len=3)
    assert not any("pe" in k.split(".")[-1] for k in dt.state_dict())
    assert dt(torch.randn(1, 8, 3, 2, 2)).shape == (1, 8, 3, 2, 2)
    with pytest.raises(ValueError, match="max_disparity"):
        dt(torch.randn(1, 8, 4, 2, 2))


def test_basic_conv_uses_upstream_norm_names():
    assert set(BasicConv(3, 4, norm="bn", kernel_size=1).state_dict()) >= {"conv.weight", "bn.weight", "bn.running_var"}
    assert set(BasicConv(3, 4, norm="IN", kernel_size=1).state_dict()) == {"conv.weight"}
    with pytest.raises(ValueError, match="norm"):
        BasicConv(3, 4, norm="gn", kernel_size=1)


def test_context_upsample_constant_disparity_stays_constant():
    disp = torch.full((1, 1, 3, 4), 2.0)
    w = torch.softmax(torch.randn(1, 9, 12, 16), 1)
    up = context_upsample(disp, w)
    # interior pixels only: the 3x3 unfold zero-pads the border
    torch.testing.assert_close(up[0, 4:8, 4:12], torch.full((4, 8), 2.0))


def test_edgenext_small_timm_names_and_pyramid(reference_dir):
    net = EdgeNeXt("edgenext_small")
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    manifest = (reference_dir / "manifests" / "ffs_bp2_upstream.tsv").read_text()
    rows = [ln.split("\t") for ln in manifest.splitlines()[1:]]
    expect = {r[0][len("feature."):]: tuple(int(s) for s in r[1].split("x")) for r in rows
              if r[0].startswith(("feature.stem.", "feature.stages."))}
    assert ours == expect
    outs = EdgeNeXt("edgenext_tiny")(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape[1:]) for o in outs] == [(16, 16, 16), (24, 8, 8), (32, 4, 4), (48, 2, 2)]
