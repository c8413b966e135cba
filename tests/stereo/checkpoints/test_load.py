"""load_state_dict_into: strict, one report of everything that does not fit, ignore patterns."""
from __future__ import annotations

import pytest
import torch

from stereo.checkpoints import LoadReport, load_state_dict_into
from stereo.errors import CheckpointMismatchError


class Tiny(torch.nn.Module):
    def __init__(self, width: int = 4, extra: int = 0):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, width, 3)
        self.bn = torch.nn.BatchNorm2d(width)
        self.heads = torch.nn.ModuleList([torch.nn.Linear(width, 2) for _ in range(extra)])


def test_exact_load_copies_values():
    src, dst = Tiny(), Tiny()
    with torch.no_grad():
        src.conv.weight.fill_(0.25)
    report = load_state_dict_into(dst, src.state_dict(), what="tiny.pth")
    assert report == LoadReport(what="tiny.pth", loaded=len(src.state_dict()), ignored_missing=(),
                                ignored_unexpected=())
    assert torch.equal(dst.conv.weight, src.conv.weight)


def test_all_problems_reported_together():
    state = Tiny(width=4).state_dict()
    state.pop("bn.running_var")
    state["legacy.weight"] = torch.zeros(1)
    state["conv.weight"] = torch.zeros(5, 3, 3, 3)
    with pytest.raises(CheckpointMismatchError) as err:
        load_state_dict_into(Tiny(width=4), state, what="ffs_bp2.pth")
    lines = str(err.value).splitlines()
    assert lines[0] == ("ffs_bp2.pth does not fit Tiny: 1 missing, 1 unexpected, 1 shape-mismatched keys")
    text = str(err.value)
    assert "bn.running_var" in text and "legacy.weight" in text
    assert "conv.weight: checkpoint [5, 3, 3, 3], model [4, 3, 3, 3]" in text
    assert "model_type / encoder / variant" in lines[-1]


def test_nothing_is_copied_when_the_check_fails():
    dst = Tiny()
    before = dst.conv.weight.clone()
    state = {k: torch.zeros_like(v) for k, v in Tiny().state_dict().items()}
    state["surplus"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError):
        load_state_dict_into(dst, state, what="x")
    assert torch.equal(dst.conv.weight, before)


def test_long_lists_are_cut_with_a_count():
    state = Tiny(extra=0).state_dict()
    with pytest.raises(CheckpointMismatchError) as err:
        load_state_dict_into(Tiny(extra=6), state, what="x")  # 12 missing head keys
    text = str(err.value)
    assert "missing in checkpoint (12)" in text and "... and 4 more" in text


def test_ignore_patterns_allow_known_gaps():
    state = Tiny(extra=0).state_dict()
    state["context_zqr_convs.0.weight"] = torch.zeros(1)
    report = load_state_dict_into(Tiny(extra=2), state, ignore_missing={"heads.*"},
                                  ignore_unexpected={"context_zqr_convs.*"}, what="fs.pth")
    assert report.loaded == len(Tiny().state_dict())
    assert set(report.ignored_missing) == {f"heads.{i}.{p}" for i in range(2) for p in ("weight", "bias")}
    assert report.ignored_unexpected == ("context_zqr_convs.0.weight",)


def test_prefix_mistake_is_named():
    state = {f"module.{k}": v for k, v in Tiny().state_dict().items()}
    with pytest.raises(CheckpointMismatchError, match="extra 'module.' prefix"):
        load_state_dict_into(Tiny(), state, what="ddp.pth")
