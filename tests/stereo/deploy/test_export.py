"""ONNX export: three shape modes, parity with PyTorch eager under ONNX Runtime CPU, sidecar, refusals."""
import json

import onnx
import pytest
import torch

from stereo.deploy.export import check_export_request, export_onnx, read_onnx_sidecar
from stereo.errors import ExportError
from stereo.deploy.onnxruntime import OrtRunner

# measured at 64x128 / 96x160, ffs_tiny, 2 iterations: max |Δdisp| 4.8e-6 .. 5.7e-6 px
PARITY_PX = 1e-4


def _pair(b, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g) * 255, torch.rand(b, 3, h, w, generator=g) * 255


def _max_diff(model, path, b, h, w, seed=1):
    left, right = _pair(b, h, w, seed)
    with torch.no_grad():
        ref = model(left, right, iters=2, test_mode=True)
    out = OrtRunner(path, device="cpu", threads=1)(left, right)
    assert out.shape == ref.shape == (b, 1, h, w)
    return float((out - ref).abs().max())


@pytest.mark.slow
@pytest.mark.parametrize("mode, shapes", [
    ("static", [(1, 64, 128)]),
    ("dynamic_batch", [(1, 64, 128), (2, 64, 128)]),
    ("dynamic_hw", [(1, 64, 128), (2, 96, 160)]),
])
def test_exported_graph_matches_eager(exported, ffs_tiny, mode, shapes):
    model, _ = ffs_tiny
    info = exported[mode]
    assert info.shape_mode == mode and info.max_abs_diff < PARITY_PX
    onnx.checker.check_model(str(info.onnx_file))
    for b, h, w in shapes:
        assert _max_diff(model, info.onnx_file, b, h, w) < PARITY_PX


@pytest.mark.slow
def test_static_graph_refuses_other_shapes(exported):
    runner = OrtRunner(exported["static"].onnx_file, device="cpu")
    assert runner.shape.hw == (64, 128) and runner.shape.batch == 1
    with pytest.raises(ValueError, match="takes 64x128"):
        runner(*_pair(1, 96, 128, 0))


def test_graph_io_names_and_symbolic_dims(exported):
    graph = onnx.load(str(exported["dynamic_hw"].onnx_file)).graph
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
    assert [i.name for i in graph.input] == ["left_image", "right_image"]
    assert [o.name for o in graph.output] == ["disparity"]
    assert dims(graph.input[0]) == ["batch_size", 3, "height", "width"]
    assert dims(graph.output[0]) == ["batch_size", 1, "height", "width"]
    assert dims(onnx.load(str(exported["static"].onnx_file)).graph.input[0]) == [1, 3, 64, 128]


def test_sidecar_describes_the_graph(exported):
    info = exported["dynamic_batch"]
    side = read_onnx_sidecar(info.onnx_file)
    assert side == json.loads(info.sidecar_file.read_text())
    assert info.sidecar_file.name == "dynamic_batch.onnx.json"
    assert side["opset_version"] == 17 and side["valid_iters"] == 2 and side["max_disparity"] == 32
    assert side["inputs"][0] == {"name": "left_image", "shape": ["batch_size", 3, 64, 128], "dtype": "float32"}
    assert side["outputs"][0]["shape"] == ["batch_size", 1, 64, 128]
    assert side["input_normalisation"]["normalised_inside_graph"] is True
    assert side["input_normalisation"]["expects"].startswith("RGB 0..255")
    assert side["model_config"]["model_type"] == "FastFoundationStereo"
    assert side["torch_version"] == torch.__version__ and side["parity"]["max_abs_diff_px"] < PARITY_PX


@pytest.mark.parametrize("h, w, fix", [(100, 128, "96 or 128"), (64, 140, "128 or 160"), (16, 64, "32")])
def test_sizes_not_multiple_of_32_are_refused_with_the_fix(tmp_path, h, w, fix):
    with pytest.raises(ExportError, match=f"not a multiple of 32.*use {fix}"):
        check_export_request("FastFoundationStereo", h, w, -1, False, tmp_path / "m.onnx", False)


def test_foundation_stereo_refuses_dynamic_hw(tmp_path):
    with pytest.raises(ExportError, match="FastFoundationStereo only.*position embedding"):
        check_export_request("FoundationStereo", 64, 128, -1, True, tmp_path / "m.onnx", False)


@pytest.mark.slow
def test_existing_file_needs_overwrite(tmp_path, ffs_tiny):
    model, cfg = ffs_tiny
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    with pytest.raises(ExportError, match="already exists.*export.overwrite: true"):
        export_onnx(model, cfg, path, height=64, width=128)
    assert path.read_bytes() == b"old"
    info = export_onnx(model, cfg, path, height=64, width=128, batch_size=1, overwrite=True, verify=False)
    assert info.max_abs_diff is None and onnx.load(str(path)).graph.output[0].name == "disparity"


@pytest.mark.slow
def test_foundation_stereo_static_export_matches_eager(tmp_path):
    from stereo.models import create_model, preset_config

    torch.manual_seed(0)
    model = create_model("fs_tiny").eval()
    info = export_onnx(model, preset_config("fs_tiny"), tmp_path / "fs.onnx", height=64, width=128, batch_size=1,
                       valid_iters=2)
    assert info.max_abs_diff < PARITY_PX


@pytest.mark.slow
def test_without_valid_iters_the_graph_bakes_the_models_own(tmp_path, ffs_tiny):
    import dataclasses

    model, cfg = ffs_tiny
    cfg3 = dataclasses.replace(cfg, valid_iters=3)
    info = export_onnx(model, cfg3, tmp_path / "m.onnx", height=64, width=128, batch_size=1, valid_iters=None)
    side = read_onnx_sidecar(info.onnx_file)
    assert side["valid_iters"] == 3 and side["valid_iters_source"] == "model.valid_iters"
    left, right = _pair(1, 64, 128, seed=4)
    out = OrtRunner(info.onnx_file, device="cpu", threads=1)(left, right)
    with torch.no_grad():
        three, two = (model(left, right, iters=n, test_mode=True) for n in (3, 2))
    assert float((out - three).abs().max()) < PARITY_PX < float((out - two).abs().max())
    explicit = export_onnx(model, cfg3, tmp_path / "e.onnx", height=64, width=128, batch_size=1, valid_iters=2,
                           verify=False)
    assert explicit.sidecar["valid_iters"] == 2 and explicit.sidecar["valid_iters_source"] == "export.valid_iters"
