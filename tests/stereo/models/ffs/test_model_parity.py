"""Numerical parity of FastFoundationStereo bp2 with TAO 7.0.1's rebuild (fixtures/ffs_bp2_parity).

The fixture weights are TAO-named; they go through our remap (TAO -> upstream) and a strict load that
ignores only the dead legacy keys and `dx`. Inputs are RGB 0..255 (we normalise inside forward).
Every stored output is compared within the fixture README's suggested atol (rtol 0).
"""
import json

import pytest
import torch
from safetensors.torch import load_file

from stereo.models import create_model
from stereo.checkpoints.remap_ffs import tao_to_upstream

HG_TAPS = ("feature_att_8", "feature_att_16", "feature_att_32", "post32_to_16", "post16_to_8")


@pytest.fixture(scope="module")
def fixture_dir(reference_dir):
    return reference_dir / "fixtures" / "ffs_bp2_parity"


@pytest.fixture(scope="module")
def tolerances(fixture_dir):
    readme = (fixture_dir / "README.md").read_text()
    atol = {}
    for line in readme.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[-1][:1].isdigit() and "e-" in cells[-1]:
            atol[cells[0]] = float(cells[-1])
    assert len(atol) == 17, f"could not read the 17 suggested tolerances from the README, got {sorted(atol)}"
    return atol


def _weights(fixture_dir, variant_b: bool):
    stored = load_file(fixture_dir / "weights_fp16.safetensors")
    w = {k: v.float() if v.is_floating_point() else v for k, v in stored.items()}
    if variant_b:
        over = load_file(fixture_dir / "variant_b_overrides.safetensors")
        assert set(over) <= set(w)
        w.update({k: v.float() for k, v in over.items()})
    return w


def _run(model, left, right):
    taps = {}

    def tap(name, fn=lambda o: o):
        return lambda module, args, out: taps.__setitem__(name, fn(out))

    handles = [model.feature.register_forward_hook(tap("feat")),
               model.cost_agg.register_forward_hook(tap("cost_volume_filtered")),
               model.classifier.register_forward_hook(tap("init_logits", lambda o: o.squeeze(1)))]
    handles += [getattr(model.cost_agg, n).register_forward_hook(tap("hg_" + n)) for n in HG_TAPS]
    with torch.no_grad():
        init_disp, preds = model(left, right, iters=4)
        out = dict(taps)
        disp_test = model(left, right, iters=4, test_mode=True)
    for h in handles:
        h.remove()
    for level, f in zip(("04", "08", "16", "32"), out.pop("feat")):
        out["feat_left_" + level] = f[: left.shape[0]]
    out["init_disp"] = init_disp
    out.update({f"disp_iter_{i}": p for i, p in enumerate(preds)})
    out["disp_test"] = disp_test
    return out


@pytest.mark.parametrize("variant", ["base", "variant_b"])
def test_ffs_bp2_matches_tao_reference(fixture_dir, tolerances, variant):
    torch.set_num_threads(1)
    model = create_model("ffs_bp2").eval()
    result = model.load_upstream_state_dict(tao_to_upstream(_weights(fixture_dir, variant == "variant_b")))
    assert not result.missing_keys and not result.unexpected_keys
    inputs = load_file(fixture_dir / "inputs.safetensors")
    ref = load_file(fixture_dir / ("outputs.safetensors" if variant == "base" else "outputs_variant_b.safetensors"))
    expected_keys = set(tolerances) - ({"cost_volume_filtered"} if variant == "variant_b" else set())
    assert set(ref) == expected_keys
    out = _run(model, inputs["left"], inputs["right"])
    report = {}
    for key, value in ref.items():
        assert out[key].shape == value.shape, key
        report[key] = (out[key] - value).abs().max().item()
    too_far = {k: (d, tolerances[k]) for k, d in report.items() if not d <= tolerances[k]}
    assert not too_far, f"max |delta| above the suggested atol: {too_far}\nall: {json.dumps(report, indent=1)}"


def test_internal_normalisation_matches_fixture_normalised_inputs(fixture_dir):
    from stereo.models.base import normalize_image
    inputs = load_file(fixture_dir / "inputs.safetensors")
    torch.testing.assert_close(normalize_image(inputs["left"]), inputs["left_normalized"], atol=0, rtol=0)
