"""Fixtures: a fake FFS research code tree (`core.foundation_stereo`) that exists only while saving."""
from __future__ import annotations

import argparse
import importlib
import sys
import types

import pytest
import torch
from omegaconf import OmegaConf


def _make_research_module() -> types.ModuleType:
    """Module `core.foundation_stereo` with a small model tree shaped like the FFS pickle's."""
    mod = types.ModuleType("core.foundation_stereo")

    class BasicConv(torch.nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.conv = torch.nn.Conv2d(cin, cout, 3, padding=1, bias=False)
            self.bn = torch.nn.BatchNorm2d(cout)
            self.act = torch.nn.functional.leaky_relu  # function reference kept as an attribute

    class FeatureAtt(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList([BasicConv(4, 4), None, torch.nn.GELU()])
            self.gamma = torch.nn.Parameter(torch.full((4,), 0.5))
            self.register_buffer("pos", torch.arange(6.0).reshape(2, 3))
            self.register_buffer("dx", torch.arange(-4, 5, dtype=torch.int8), persistent=False)
            self.register_buffer("unset", None)

    class FastFoundationStereo(torch.nn.Module):
        def __init__(self, args):
            super().__init__()
            self.args = args
            self.stem = BasicConv(3, 4)
            self.corr_feature_att = FeatureAtt()
            self.post8_to_4 = None
            self.scale = torch.nn.Parameter(torch.tensor(2.0))
            self.register_buffer("half_buf", torch.ones(3, dtype=torch.float16))

    for cls in (BasicConv, FeatureAtt, FastFoundationStereo):
        cls.__module__ = mod.__name__
        cls.__qualname__ = cls.__name__
        setattr(mod, cls.__name__, cls)
    return mod


@pytest.fixture
def research_module():
    """Install fake `core` / `core.foundation_stereo` for the test body; removed afterwards."""
    saved = {k: sys.modules.get(k) for k in ("core", "core.foundation_stereo")}
    sys.modules["core"] = types.ModuleType("core")
    sys.modules["core.foundation_stereo"] = mod = _make_research_module()
    yield mod
    for key, value in saved.items():
        if value is None:
            sys.modules.pop(key, None)
        else:
            sys.modules[key] = value
    assert all(sys.modules.get(k) is v for k, v in saved.items()), "the fake research code leaked into sys.modules"


@pytest.fixture
def forget_research(research_module):
    """Call it after saving: the classes become unimportable, as on a machine without the research code."""
    def forget() -> None:
        sys.modules.pop("core.foundation_stereo", None)
        sys.modules.pop("core", None)
        with pytest.raises(ImportError):  # what the tests then prove the loader copes with
            importlib.import_module("core.foundation_stereo")
    return forget


@pytest.fixture
def research_model(research_module):
    torch.manual_seed(0)
    args = OmegaConf.create({"vit_size": "vitl", "normalize": True, "hidden_dims": [128], "max_disp": 192})
    model = research_module.FastFoundationStereo(args)
    with torch.no_grad():  # non-default values everywhere so a wrong mapping cannot pass
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.uniform_(-1, 1)
    model.stem.bn.num_batches_tracked.fill_(7)
    assert not torch.equal(model.stem.bn.weight, torch.ones_like(model.stem.bn.weight))  # not the init values
    return model


@pytest.fixture
def namespace_args():
    return argparse.Namespace(vit_size="vits", normalize=False, valid_iters=8)
