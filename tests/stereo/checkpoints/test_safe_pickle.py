"""Restricted unpickler: research pickles load as state dicts; hostile pickles are refused unexecuted."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import zipfile

import pytest
import torch

from stereo.checkpoints import read_checkpoint
from stereo.errors import CheckpointFormatError, UnsafeCheckpointError
from stereo.checkpoints.module_tree import state_dict_of_pickled_module
from stereo.checkpoints.pickle_policy import PickledObject, global_verdict
from stereo.checkpoints.safe_pickle import load_pickled_checkpoint, referenced_globals


def assert_same_state(actual: dict, expected: dict) -> None:
    assert list(actual) == list(expected)  # same names, same order as nn.Module.state_dict
    for key, tensor in expected.items():
        assert actual[key].dtype == tensor.dtype, key
        assert actual[key].shape == tensor.shape, key
        assert torch.equal(actual[key], tensor), key


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_research_pickle_gives_exact_state_dict(tmp_path, research_model, forget_research, zip_format):
    path = tmp_path / "model_best_bp2_serialize.pth"
    torch.save(research_model, path, _use_new_zipfile_serialization=zip_format)
    expected = research_model.state_dict()
    forget_research()

    ckpt = read_checkpoint(path)

    assert ckpt.format == "research_pickle"
    assert ckpt.meta["loader"] == "restricted_unpickler"
    assert ckpt.meta["class"] == "core.foundation_stereo.FastFoundationStereo"
    assert ckpt.meta["args"] == {"vit_size": "vitl", "normalize": True, "hidden_dims": [128], "max_disp": 192}
    assert_same_state(ckpt.state_dict, expected)
    assert "corr_feature_att.dx" not in ckpt.state_dict  # non-persistent buffer
    assert ckpt.state_dict["stem.bn.num_batches_tracked"].item() == 7
    assert "core.foundation_stereo" not in sys.modules  # placeholders never import the real module


def test_pickled_model_is_inert_and_keeps_plain_attributes(tmp_path, research_model, forget_research,
                                                           namespace_args):
    research_model.args = namespace_args
    path = tmp_path / "m.pth"
    torch.save({"model": research_model, "epoch": 4}, path)
    forget_research()

    obj = load_pickled_checkpoint(path)
    model = obj["model"]
    assert isinstance(model, PickledObject)
    assert model.pickled_name == "core.foundation_stereo.FastFoundationStereo"
    assert model.args.pickled_name == "argparse.Namespace"
    assert read_checkpoint(path).meta["args"] == vars(namespace_args)
    assert read_checkpoint(path).meta["epoch"] == 4
    with pytest.raises(AttributeError):
        model.stem = None  # placeholders are read-only


def test_real_class_code_never_runs(tmp_path, research_module, forget_research):
    marker = tmp_path / "setstate_ran"

    class Booby(torch.nn.Module):  # a class whose unpickling hooks would leave a trace
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)

        def __setstate__(self, state):
            marker.touch()
            super().__setstate__(state)

    Booby.__module__, Booby.__qualname__ = research_module.__name__, "Booby"
    research_module.Booby = Booby
    model = Booby()
    torch.save(model, tmp_path / "b.pth")
    # leave the module importable: the loader must still not use it
    assert_same_state(read_checkpoint(tmp_path / "b.pth").state_dict, model.state_dict())
    assert not marker.exists()


def test_function_reference_via_getattr_loads_inert(tmp_path, research_model, forget_research):
    research_model.stem.act = torch.tanh  # pickled as getattr(torch._C._VariableFunctionsClass, 'tanh')
    torch.save(research_model, tmp_path / "m.pth")
    forget_research()
    obj = load_pickled_checkpoint(tmp_path / "m.pth")
    act = obj.stem.act
    assert "tanh" in repr(act)
    with pytest.raises(UnsafeCheckpointError, match="calls"):
        act(torch.zeros(1))


# ------------------------------------------------------------------------------------------- hostile files

class _Evil:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _torch_zip(path, data_pkl: bytes) -> None:
    """A zip laid out like torch.save's, holding a hand-written data.pkl."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/version", "3\n")


def _pwned(tmp_path):
    return tmp_path / "pwned"


@pytest.mark.parametrize("container", ["torch_zip", "raw_pickle", "protocol4_zip"])
def test_os_system_is_refused_before_running(tmp_path, container):
    payload = _Evil(os.system, f"touch {_pwned(tmp_path)}")
    path = tmp_path / "evil.pth"
    if container == "torch_zip":
        torch.save({"state_dict": {"w": torch.ones(2)}, "x": payload}, path)
    elif container == "protocol4_zip":  # STACK_GLOBAL instead of GLOBAL
        torch.save([payload], path, pickle_protocol=4)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))

    with pytest.raises(UnsafeCheckpointError, match=r"posix\.system|os\.system") as err:
        read_checkpoint(path)
    assert str(path) in str(err.value)
    assert not _pwned(tmp_path).exists()


def test_hostile_attribute_inside_a_real_model_pickle(tmp_path, research_model, forget_research):
    object.__setattr__(research_model, "hook", _Evil(os.system, f"touch {_pwned(tmp_path)}"))
    torch.save(research_model, tmp_path / "m.pth")
    forget_research()
    with pytest.raises(UnsafeCheckpointError, match="system"):
        read_checkpoint(tmp_path / "m.pth")
    assert not _pwned(tmp_path).exists()


@pytest.mark.parametrize("func, args, name", [
    (eval, ("__import__('os').system('touch PWNED')",), "builtins.eval"),
    (exec, ("open('PWNED', 'w')",), "builtins.exec"),
    (subprocess.Popen, (["touch", "PWNED"],), "subprocess.Popen"),
    (open, ("PWNED", "w"), "io.open"),
], ids=["eval", "exec", "Popen", "open"])
def test_dangerous_globals_are_named(tmp_path, func, args, name, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save(_Evil(func, *args), path)
    with pytest.raises(UnsafeCheckpointError) as err:
        read_checkpoint(path)
    assert name.split(".")[-1] in str(err.value)
    assert not (tmp_path / "PWNED").exists()


def test_all_refused_globals_are_listed_at_once(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save([_Evil(os.system, "true"), _Evil(subprocess.Popen, ["true"]), _Evil(eval, "1")], path)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_pickled_checkpoint(path)
    message = str(err.value)
    assert "system" in message and "subprocess.Popen" in message and "builtins.eval" in message
    assert "\n" not in message


def test_calling_an_allow_listed_function_reference_is_refused(tmp_path):
    # GLOBAL torch.load is a legitimate-looking reference; REDUCE on it is how an exploit would call it
    path = tmp_path / "call.pth"
    _torch_zip(path, b"\x80\x02ctorch\nload\nq\x00X\x04\x00\x00\x00/etcq\x01\x85q\x02Rq\x03.")
    with pytest.raises(UnsafeCheckpointError, match=r"calls torch\.load\(\)"):
        read_checkpoint(path)


def test_getattr_on_a_real_object_is_refused(tmp_path):
    # getattr(collections.OrderedDict, 'fromkeys'): only inert references may be looked up
    path = tmp_path / "getattr.pth"
    _torch_zip(path, b"\x80\x02c__builtin__\ngetattr\nccollections\nOrderedDict\n"
                     b"X\x08\x00\x00\x00fromkeys\x86R.")
    with pytest.raises(UnsafeCheckpointError, match="getattr"):
        read_checkpoint(path)


@pytest.mark.parametrize("module, name, verdict", [
    ("posix", "system", "refused"), ("os", "system", "refused"), ("builtins", "eval", "refused"),
    ("__builtin__", "__import__", "refused"), ("importlib", "import_module", "refused"),
    ("torch.serialization", "load", "refused"), ("pickle", "loads", "refused"), ("sys", "modules", "refused"),
    ("runpy", "run_path", "refused"), ("shutil", "rmtree", "refused"), ("socket", "socket", "refused"),
    ("torch", "load", "reference"), ("torch._C._nn", "gelu", "reference"),
    ("torch.nn.modules.conv", "Conv2d", "class"), ("core.foundation_stereo", "FastFoundationStereo", "class"),
    ("dinov2.layers.block", "Block", "class"), ("omegaconf.dictconfig", "DictConfig", "class"),
    ("torch._utils", "_rebuild_tensor_v2", "safe"), ("collections", "OrderedDict", "safe"),
    ("torch", "float16", "safe"), ("__builtin__", "set", "safe"),
])
def test_global_policy(module, name, verdict):
    assert global_verdict(module, name) == verdict


def test_scan_sees_stack_global_names():
    data = pickle.dumps(_Evil(os.system, "true"), protocol=4)
    assert (os.system.__module__, "system") in referenced_globals(data)


# ------------------------------------------------------------------------------------------ damaged files

def test_truncated_zip_is_a_format_error(tmp_path, research_model):
    path = tmp_path / "m.pth"
    torch.save(research_model, path)
    path.write_bytes(path.read_bytes()[:-300])
    with pytest.raises(CheckpointFormatError, match="corrupt or truncated"):
        load_pickled_checkpoint(path)


def test_storage_record_of_wrong_size_is_a_format_error(tmp_path):
    path = tmp_path / "m.pth"
    torch.save({"w": torch.ones(4)}, path)
    with zipfile.ZipFile(path) as src:
        records = {n: src.read(n) for n in src.namelist()}
    records["m/data/0"] = records["m/data/0"][:8]
    with zipfile.ZipFile(path, "w") as dst:
        for name, data in records.items():
            dst.writestr(name, data)
    with pytest.raises(CheckpointFormatError, match="has 8 bytes"):
        load_pickled_checkpoint(path)


def test_state_dict_of_non_module_is_refused():
    with pytest.raises(CheckpointFormatError, match="not an nn.Module"):
        state_dict_of_pickled_module({"a": 1}, source="x.pth")


def test_allocation_of_the_files_choosing_is_refused(tmp_path):
    path = tmp_path / "big.pth"
    _torch_zip(path, b"\x80\x02c__builtin__\nbytearray\nJ\x00\x00\x10\x00\x85R.")  # bytearray(2**20)
    with pytest.raises(UnsafeCheckpointError, match=r"bytearray\(1048576\) .* would allocate"):
        load_pickled_checkpoint(path)


def test_compressed_records_are_refused(tmp_path):
    path = tmp_path / "packed.pth"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"w": 1}, protocol=2))
    with pytest.raises(CheckpointFormatError, match="compressed records"):
        load_pickled_checkpoint(path)


def test_protocol2_bytes_and_bytearray_round_trip(tmp_path):
    path = tmp_path / "b.pth"
    torch.save({"model": {"w": torch.ones(1)}, "blob": bytearray(b"\x00\xffab"), "raw": b"\x01\x02"}, path)
    obj = load_pickled_checkpoint(path)
    assert obj["blob"] == bytearray(b"\x00\xffab") and obj["raw"] == b"\x01\x02"
