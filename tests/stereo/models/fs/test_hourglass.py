"""FS cost filtering: variant wiring and the documented disparity-attention layouts."""
from __future__ import annotations

import pytest
import torch

from stereo.models.fs.hourglass import FSHourglass

FEAT = [40, 24, 32, 48]  # tiny pyramid widths [f4, f8, f16, f32]


def _changed_tokens(layout: str) -> int:
    torch.manual_seed(0)
    hg = FSHourglass(8, FEAT, max_disp=128, attention_layout=layout).eval()
    att = hg.atts["4"]
    x = torch.randn(1, 8, 8, 2, 2)  # (B, C, D tokens, H, W)
    y = x.clone()
    y[:, :, 3] += 1.0  # perturb disparity token 3 everywhere
    with torch.no_grad():
        diff = (att(x) - att(y)).abs().amax(dim=(0, 1, 3, 4))
    return int((diff > 1e-6).sum())


def test_standard_layout_mixes_all_disparity_tokens():
    assert _changed_tokens("standard") == 8


def test_heads_as_sequence_layout_keeps_tokens_separate():
    assert _changed_tokens("heads_as_sequence") == 1


def test_tao_view_layout_is_neither():
    assert 1 < _changed_tokens("tao_view") < 8


@pytest.mark.parametrize("variant", ["nvlabs", "tao"])
def test_hourglass_keeps_volume_shape(variant):
    torch.manual_seed(0)
    hg = FSHourglass(8, FEAT, max_disp=32, variant=variant,
                     attention_layout="standard" if variant == "nvlabs" else "tao_view").eval()
    x = torch.randn(1, 8, 8, 16, 32)
    feats = [torch.randn(1, c, 16 // 2 ** i, 32 // 2 ** i) for i, c in enumerate(FEAT)]
    with torch.no_grad():
        assert hg(x, feats).shape == x.shape
    # token count per pixel: nvlabs patchifies first (max/16), TAO upsamples first (max/4)
    assert hg.atts["4"].pos_embed0.pe.shape[1] == (2 if variant == "nvlabs" else 8)


def test_unknown_variant_is_rejected():
    with pytest.raises(ValueError, match="variant"):
        FSHourglass(8, FEAT, max_disp=32, variant="upstream")
