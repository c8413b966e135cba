"""The runtime registry: a file opens with the runtime its suffix names; unknown names list the valid ones."""
import pytest
import torch

from stereo.deploy.runners import RUNTIMES, list_runtimes, open_runner, runtime_for, runtime_named


def test_every_runtime_is_registered_under_its_runners_kind():
    assert list_runtimes() == ["onnxruntime", "tensorrt"]
    assert runtime_for("a/model.ONNX").name == "onnxruntime"
    assert {runtime_for(f"m{s}").name for s in RUNTIMES["tensorrt"].suffixes} == {"tensorrt"}


def test_an_unknown_runtime_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown deploy runtime 'onnxruntme' \(did you mean 'onnxruntime'\?\); "
                                         "use one of onnxruntime, tensorrt"):
        runtime_named("onnxruntme")


def test_an_unknown_suffix_names_the_files_that_open(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"unknown deployed-network type '.bin'; use an .onnx file or a TensorRT "
                                         r"engine \(.engine, .plan, .trt\)"):
        open_runner(path)
    with pytest.raises(FileNotFoundError, match="does not exist; run depth_net export"):
        open_runner(tmp_path / "missing.onnx")


def test_an_onnx_graph_opens_with_onnx_runtime_by_suffix_or_by_name(exported, tmp_path):
    onnx_file = exported["static"].onnx_file
    runner = open_runner(onnx_file, device="cpu", threads=1)
    assert runner.kind == "onnxruntime" and runner.describe()["hw"] == [64, 128]
    renamed = tmp_path / "graph.bin"
    renamed.write_bytes(onnx_file.read_bytes())
    by_name = open_runner(renamed, device="cpu", threads=1, runtime="onnxruntime")
    left = torch.rand(1, 3, 64, 128) * 255
    assert torch.equal(runner(left, left), by_name(left, left))
