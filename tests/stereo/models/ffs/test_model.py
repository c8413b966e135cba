"""FastFoundationStereo: structure vs the bp2 manifest, dead keys, forward contract, widths from config."""
import csv

import pytest
import torch

from stereo.config.model import FFS_BP2, ModelConfig
from stereo.models import create_model
from stereo.checkpoints.remap_ffs import tao_to_upstream
from stereo.models.ffs import BP2_DEAD_KEYS, FastFoundationStereo
from stereo.models.ffs.dead_keys import legacy_key_shapes


def _shape(s):
    return () if s == "scalar" else tuple(int(v) for v in s.split("x"))


@pytest.fixture(scope="module")
def upstream_rows(reference_dir):
    with open(reference_dir / "manifests" / "ffs_bp2_upstream.tsv", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.fixture(scope="module")
def bp2():
    return FastFoundationStereo(ModelConfig(**FFS_BP2)).eval()


def test_state_dict_equals_manifest_minus_dead_rows(bp2, upstream_rows):
    expect = {r["key"]: _shape(r["shape"]) for r in upstream_rows if r["executed"] == "yes"}
    assert {k: tuple(v.shape) for k, v in bp2.state_dict().items()} == expect
    assert sum(p.numel() for p in bp2.parameters()) == 14_600_541  # param_totals.tsv, executed


def test_dead_keys_are_exactly_the_never_executed_rows(upstream_rows):
    dead = {r["key"]: _shape(r["shape"]) for r in upstream_rows if r["executed"] == "no"}
    assert dict(legacy_key_shapes()) == dead
    assert BP2_DEAD_KEYS == set(dead)


def test_random_tao_state_dict_loads_strictly_through_remap(bp2, reference_dir):
    with open(reference_dir / "manifests" / "ffs_bp2_tao.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    g = torch.Generator().manual_seed(0)
    sd = {r["key"]: (torch.zeros((), dtype=torch.int64) if r["dtype"] == "int64" else
                     torch.zeros(_shape(r["shape"]), dtype=torch.int8) if r["dtype"] == "int8" else
                     torch.rand(_shape(r["shape"]), generator=g) + 0.5) for r in rows}
    model = FastFoundationStereo(ModelConfig(**FFS_BP2))
    result = model.load_upstream_state_dict(tao_to_upstream(sd))
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(model.classifier.layers[0].weight, sd["classifier.0.weight"])
    assert torch.equal(model.cost_agg.conv1_up.bn.running_var, sd["cost_agg.conv1_up.norm.running_var"])


def test_unknown_key_still_fails_strict_load(bp2):
    sd = dict(bp2.state_dict())
    sd["cost_agg.not_a_module.weight"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match="not_a_module"):
        bp2.load_upstream_state_dict(sd)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_model("ffs_tiny").eval()


def _img(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 255


def test_forward_pads_odd_sizes_and_crops_back(tiny):
    left, right = _img(1, 3, 50, 70), _img(1, 3, 50, 70, seed=1)
    with torch.no_grad():
        init, preds = tiny(left, right)
        disp = tiny(left, right, test_mode=True)
    assert init.shape == (1, 1, 13, 18) and len(preds) == tiny.train_iters
    assert all(p.shape == (1, 1, 50, 70) for p in preds) and disp.shape == (1, 1, 50, 70)
    assert torch.isfinite(disp).all()


def test_test_mode_equals_last_training_iteration(tiny):
    left, right = _img(2, 3, 64, 128), _img(2, 3, 64, 128, seed=1)
    with torch.no_grad():
        _, preds = tiny(left, right, iters=3)
        disp = tiny(left, right, iters=3, test_mode=True)
    torch.testing.assert_close(disp, preds[-1])


@pytest.mark.parametrize("bad", ["normalised", "unit"])
def test_rejects_images_not_in_0_255(tiny, bad):
    x = torch.randn(1, 3, 64, 64) if bad == "normalised" else torch.rand(1, 3, 64, 64)
    with pytest.raises(ValueError, match="0..255"):
        tiny(x, x)


def test_constant_black_image_is_accepted(tiny):
    x = torch.zeros(1, 3, 64, 64)
    with torch.no_grad():
        assert tiny(x, x, test_mode=True).shape == (1, 1, 64, 64)


def test_range_check_skipped_while_tracing(tiny):
    class TestMode(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, a, b):
            return self.net(a, b, test_mode=True)

    x = torch.rand(1, 3, 64, 64)  # 0..1 would raise in eager mode
    with torch.no_grad():
        traced = torch.jit.trace(TestMode(tiny), (x, x), check_trace=False)
    assert traced(x, x).shape == (1, 1, 64, 64)


def test_backward_reaches_every_executed_parameter(tiny):
    tiny.train()
    try:
        init, preds = tiny(_img(1, 3, 64, 128), _img(1, 3, 64, 128, seed=1), iters=2)
        (init.mean() + sum(p.mean() for p in preds)).backward()
        no_grad = [n for n, p in tiny.named_parameters() if p.grad is None]
        assert not no_grad
    finally:
        tiny.zero_grad(set_to_none=True)
        tiny.eval()


def test_widths_follow_config_and_mismatches_raise():
    model = create_model("ffs_tiny", gru_hidden=12, disp_head_input_dim=None, cnet_conv04_widths=[12, 20])
    assert model.update_block.gru04.small_gru.convz.out_channels == 12
    assert model.cam.fc[0].in_channels == 20
    with pytest.raises(ValueError, match="gru_hidden"):
        create_model("ffs_tiny", gru_hidden=12, disp_head_input_dim=None)
    with pytest.raises(ValueError, match="spx_2_gru_widths"):
        create_model("ffs_tiny", mask_widths=[8, 6])
    with pytest.raises(ValueError, match="n_gru_layers"):
        create_model("ffs_tiny", n_gru_layers=2)


def test_attention_layout_auto_is_heads_as_sequence(tiny):
    assert tiny.cost_agg.post8_to_4.upsample[1].sa[0].self_attn.layout == "heads_as_sequence"
    m = create_model("ffs_tiny", attention_layout="standard")
    assert m.cost_agg.post8_to_4.upsample[1].sa[0].self_attn.layout == "standard"


def test_low_memory_lookup_gives_same_disparity(tiny):
    left, right = _img(1, 3, 64, 128), _img(1, 3, 64, 128, seed=1)
    lowmem = create_model("ffs_tiny", low_memory=1).eval()
    lowmem.load_state_dict(tiny.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(lowmem(left, right, test_mode=True), tiny(left, right, test_mode=True),
                                   atol=1e-3, rtol=0)
