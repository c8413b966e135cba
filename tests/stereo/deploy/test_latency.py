"""Latency of a deployed graph (stereo/deploy/latency.py): batch 1 at the graph's fixed shape, warm-up then the
median of N calls, threads pinned, device named; the subprocess run returns the same record."""
import pytest

from stereo.deploy.latency import Latency, measure_in_subprocess, measure_latency


def test_in_process_measurement_records_its_protocol(exported):
    info = exported["static"]
    got = measure_latency(info.onnx_file, 64, 128, device="cpu", threads=1, warmup=1, repeats=5)
    assert isinstance(got, Latency) and got.runtime == "onnxruntime" and got.device.startswith("cpu (")
    assert (got.threads, got.height, got.width, got.warmup, got.repeats) == (1, 64, 128, 1, 5)
    assert 0 < got.min_ms <= got.median_ms <= got.p90_ms
    assert got.peak_mem_mb >= 0


def test_the_subprocess_measures_in_a_fresh_process(exported):
    got = measure_in_subprocess(exported["static"].onnx_file, 64, 128, threads=1, warmup=1, repeats=5)
    assert got.runtime == "onnxruntime" and got.repeats == 5 and got.median_ms > 0
    # the runtime's own memory for a tiny graph, not the interpreter's (VmHWM reset before the runner opens)
    assert 0 <= got.peak_mem_mb < 300


def test_a_wrong_shape_or_file_fails_with_the_childs_reason(exported, tmp_path):
    with pytest.raises(RuntimeError, match="latency measurement of .* failed .*takes 64x128 images, got 32x64"):
        measure_in_subprocess(exported["static"].onnx_file, 32, 64, repeats=1, warmup=0)
    with pytest.raises(ValueError, match="repeats=0 must be >= 1"):
        measure_latency(exported["static"].onnx_file, 64, 128, repeats=0)
