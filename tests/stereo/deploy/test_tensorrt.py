"""TensorRT: request validation on the CPU (no TensorRT needed), the missing-TensorRT/GPU error, and GPU
builds compared with ONNX Runtime."""
import sys
import types

import pytest
import torch

from stereo.deploy.tensorrt import plan_build, require_tensorrt
from stereo.errors import EngineRequestError

HW = {"height": (64, 64, 128), "width": (128, 128, 256)}


def test_static_onnx_needs_no_profile(exported):
    plan = plan_build(exported["static"].onnx_file, data_type="FP16")
    assert plan.profile is None and plan.data_type == "fp16"


def test_dynamic_batch_profile_comes_from_the_batch_sizes(exported):
    plan = plan_build(exported["dynamic_batch"].onnx_file, batch=(1, 2, 4))
    assert plan.profile["left_image"] == ((1, 3, 64, 128), (2, 3, 64, 128), (4, 3, 64, 128))


def test_dynamic_hw_profile(exported):
    plan = plan_build(exported["dynamic_hw"].onnx_file, eval_hw=(96, 160), **HW)
    assert plan.profile["right_image"] == ((1, 3, 64, 128), (1, 3, 64, 128), (1, 3, 128, 256))


@pytest.mark.parametrize("mode, kwargs, match", [
    ("dynamic_hw", {}, "set all six"),
    ("dynamic_hw", {"height": (64, 64, 128), "width": (128, 100, 256)}, "min_width=.*|opt_width=100 is not a multiple"),
    ("dynamic_hw", {"height": (128, 64, 128), "width": (128, 128, 256)}, "min_height <= opt_height <= max_height"),
    ("dynamic_hw", dict(eval_hw=(320, 736), **HW), "evaluation size 320x736 is outside the profile"),
    ("static", {"height": (64, 64, 128), "width": (128, 128, 256)}, "static 64x128 input; remove"),
    ("static", {"eval_hw": (96, 128)}, "differs from the ONNX's static 64x128"),
    ("static", {"batch": (1, 2, 4)}, "static batch of 1"),
    ("dynamic_batch", {"batch": (4, 2, 8)}, "min_batch_size <= opt_batch_size"),
    ("static", {"data_type": "int8"}, "data_type='int8'"),
    ("static", {"layers_precision": ["conv1"]}, "layers_precision\\[0\\]='conv1'"),
])
def test_bad_requests_are_refused_before_any_build(exported, mode, kwargs, match):
    with pytest.raises(EngineRequestError, match=match):
        plan_build(exported[mode].onnx_file, **kwargs)


def test_layer_precision_syntax(exported):
    plan = plan_build(exported["static"].onnx_file, layers_precision=["/model/cost_agg/*:FP32", "a:b:fp16"])
    assert plan.layers_precision == (("/model/cost_agg/*", "fp32"), ("a:b", "fp16"))


def test_missing_onnx_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="run depth_net export first"):
        plan_build(tmp_path / "none.onnx")


def test_without_tensorrt_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails as on a host without the wheel
    with pytest.raises(RuntimeError, match=r"TensorRT is not available .*stereo-automl\[tensorrt\]"):
        require_tensorrt()


def test_tensorrt_without_gpu_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.9.0"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="TensorRT 10.9.0 is installed but no CUDA GPU"):
        require_tensorrt()


# ----------------------------------------------------------------------------------------------- GPU
def _ort_and_trt(onnx_file, engine_file, left, right):
    from stereo.deploy.onnxruntime import OrtRunner
    from stereo.deploy.tensorrt import TrtRunner

    return OrtRunner(onnx_file, device="cpu")(left, right), TrtRunner(engine_file)(left, right)


@pytest.mark.gpu
@pytest.mark.parametrize("mode, kwargs, shapes", [
    ("static", {}, [(1, 64, 128)]),
    ("dynamic_batch", {"batch": (1, 2, 2)}, [(1, 64, 128), (2, 64, 128)]),
    ("dynamic_hw", HW, [(1, 64, 128), (1, 96, 160)]),
])
def test_fp32_engine_matches_onnxruntime(tmp_path, exported, mode, kwargs, shapes):
    pytest.importorskip("tensorrt")
    from stereo.deploy.tensorrt import build_engine

    plan = plan_build(exported[mode].onnx_file, timing_cache=tmp_path / "cache.bin", **kwargs)
    info = build_engine(plan, tmp_path / "m.engine")
    assert info.engine_file.stat().st_size > 0 and (tmp_path / "cache.bin").stat().st_size > 0
    for b, h, w in shapes:
        g = torch.Generator().manual_seed(b * h)
        left, right = (torch.rand(b, 3, h, w, generator=g) * 255 for _ in range(2))
        ort_out, trt_out = _ort_and_trt(exported[mode].onnx_file, info.engine_file, left, right)
        assert trt_out.shape == (b, 1, h, w)
        assert float((ort_out - trt_out).abs().max()) < 1e-2  # TF32 may be used for fp32 convolutions


@pytest.mark.gpu
def test_fp16_engine_with_fp32_layer_override_runs(tmp_path, exported):
    trt = pytest.importorskip("tensorrt")
    if not hasattr(trt.BuilderFlag, "FP16"):
        pytest.skip("TensorRT 11+: no weak typing")
    from stereo.deploy.tensorrt import build_engine

    plan = plan_build(exported["static"].onnx_file, data_type="fp16", layers_precision=["*Softmax*:fp32"])
    info = build_engine(plan, tmp_path / "m16.engine")
    left, right = (torch.rand(1, 3, 64, 128) * 255 for _ in range(2))
    ort_out, trt_out = _ort_and_trt(exported["static"].onnx_file, info.engine_file, left, right)
    assert torch.isfinite(trt_out).all() and float((ort_out - trt_out).abs().mean()) < 1.0


@pytest.mark.gpu
def test_bf16_engine_runs_where_supported(tmp_path, exported):
    trt = pytest.importorskip("tensorrt")
    if not hasattr(trt.BuilderFlag, "BF16"):
        pytest.skip(f"TensorRT {trt.__version__} has no BF16 builder flag (strongly typed networks only)")
    if torch.cuda.get_device_capability()[0] < 8:
        pytest.skip(f"{torch.cuda.get_device_name()} has no bf16 (compute capability < 8.0)")
    from stereo.deploy.tensorrt import build_engine

    info = build_engine(plan_build(exported["static"].onnx_file, data_type="bf16"), tmp_path / "m.bf16.engine")
    assert info.data_type == "bf16"
    left, right = (torch.rand(1, 3, 64, 128, generator=torch.Generator().manual_seed(s)) * 255 for s in (1, 2))
    ort_out, trt_out = _ort_and_trt(exported["static"].onnx_file, info.engine_file, left, right)
    assert trt_out.dtype == torch.float32 and torch.isfinite(trt_out).all()
    assert float((ort_out - trt_out).abs().mean()) < 1.0


@pytest.mark.gpu
def test_bf16_is_refused_before_ampere(tmp_path, exported):
    pytest.importorskip("tensorrt")
    if torch.cuda.get_device_capability()[0] >= 8:
        pytest.skip("this GPU supports bf16")
    from stereo.deploy.tensorrt import build_engine

    with pytest.raises(EngineRequestError, match="bf16 needs an Ampere or newer GPU"):
        build_engine(plan_build(exported["static"].onnx_file, data_type="bf16"), tmp_path / "m.engine")


@pytest.mark.gpu
def test_a_gpu_index_the_host_lacks_is_refused(tmp_path, exported):
    pytest.importorskip("tensorrt")
    from stereo.deploy.tensorrt import TrtRunner, build_engine

    missing = torch.cuda.device_count()
    plan = plan_build(exported["static"].onnx_file)
    with pytest.raises(EngineRequestError, match=f"gen_trt_engine.gpu_id={missing}, but this host has"):
        build_engine(plan, tmp_path / "m.engine", gpu_index=missing)
    info = build_engine(plan, tmp_path / "m.engine")
    with pytest.raises(EngineRequestError, match=rf"gpu_ids\[0\]={missing}"):
        TrtRunner(info.engine_file, device_index=missing)
