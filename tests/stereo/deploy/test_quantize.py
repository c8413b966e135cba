"""int8 as a deploy precision (stereo/deploy/quantize.py, calibration.py, quant_eval.py): calibration pairs found
in every dataset layout we read, the int8 graph written with its sidecar and opened like any graph, nodes kept in
fp32 on request, the comparison numbers."""
from __future__ import annotations

import json

import pytest
import torch

from stereo.data.synthetic import generate
from stereo.deploy.calibration import PairFeeds, find_pairs, no_pairs_reason
from stereo.deploy.quant_eval import Comparison, measure_latencies, measure_latency
from stereo.deploy.quantize import conv_nodes, graph_precision, int8_graph, matching_nodes, quantize_onnx
from stereo.deploy.runners import open_runner


@pytest.mark.parametrize("layout, n", [("fsd", 3), ("middlebury", 2), ("crestereo", 2), ("kitti2015", 2),
                                       ("kitti2012", 2), ("eth3d", 2), ("generic", 2)])
def test_pairs_are_found_in_every_layout(tmp_path, layout, n):
    generate(tmp_path, layout, n=n, height=32, width=64, max_disparity=8)
    pairs = find_pairs(tmp_path)
    assert len(pairs) == n, pairs  # disparity maps and masks beside the images are not pairs
    for left, right in pairs:
        assert left.is_file() and right.is_file() and left != right
    assert len(find_pairs(tmp_path, limit=1)) == 1


def test_a_folder_without_pairs_says_why(tmp_path):
    assert "no png/jpg/jpeg image" in no_pairs_reason(tmp_path)
    generate(tmp_path / "x", "fsd", n=1, height=32, width=64, max_disparity=8)
    for right in tmp_path.rglob("right"):
        for f in right.rglob("*.png"):
            f.unlink()
    assert find_pairs(tmp_path) == [] and "no stereo pair" in no_pairs_reason(tmp_path)


@pytest.fixture(scope="module")
def calibration_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("calib")
    generate(root, "fsd", n=1, height=48, width=100, max_disparity=16, seed=3)  # smaller than the graph: padded
    return root


@pytest.fixture(scope="module")
def calibration(calibration_dir):
    return PairFeeds(find_pairs(calibration_dir), hw=(64, 128))


def test_feeds_are_fitted_to_the_graph(calibration):
    (feed,) = calibration.feeds
    assert feed["left_image"].shape == feed["right_image"].shape == (1, 3, 64, 128)
    reader = calibration.reader()
    assert reader.get_next() is not None and reader.get_next() is None


@pytest.mark.slow  # one ONNX Runtime static quantization of the tiny graph
def test_int8_graph_keeps_3d_convs_in_fp32_on_request(tmp_path, exported, calibration, calibration_dir):
    fp32 = exported["static"].onnx_file
    keep = conv_nodes(fp32, dims=3)
    assert keep and all("cost_agg" in n or "classifier" in n or "corr" in n for n in keep[:3]), keep[:3]
    info = int8_graph(fp32, tmp_path / "int8.onnx", calibration_dir, skip_names=keep)  # fitted to the graph's 64x128
    assert info.quantized_ops.get("Conv3d", 0) == 0 and info.quantized_ops["Conv2d"] > 0, info.quantized_ops
    assert info.excluded_nodes == keep and info.int8_bytes < info.fp32_bytes
    sidecar = json.loads(info.sidecar_file.read_text())
    assert sidecar["precision"] == "int8" and sidecar["valid_iters"] == exported["static"].sidecar["valid_iters"]
    assert graph_precision(info.onnx_file) == "int8" and graph_precision(fp32) == "fp32"
    a, b = open_runner(fp32, device="cpu"), open_runner(info.onnx_file, device="cpu", threads=1)
    left = torch.from_numpy(calibration.feeds[0]["left_image"])
    right = torch.from_numpy(calibration.feeds[0]["right_image"])
    comparison = Comparison(max_disparity=32)
    comparison.update("x", a(left, right)[0], b(left, right)[0])
    assert comparison.kpi()["drift_mean_abs"] < 1.0 and "fp32_epe" not in comparison.kpi()


def test_a_skip_pattern_that_matches_nothing_names_real_nodes(exported):
    with pytest.raises(ValueError, match="matches no node .*node names look like /model"):
        matching_nodes(exported["static"].onnx_file, ["/nowhere/*"])
    assert matching_nodes(exported["static"].onnx_file, ["/model/cost_agg/*"])


def test_int8_graph_needs_a_size_and_pairs(tmp_path, exported, calibration_dir):
    with pytest.raises(ValueError, match="dynamic height/width; pass hw"):
        int8_graph(exported["dynamic_hw"].onnx_file, tmp_path / "x.onnx", calibration_dir)
    with pytest.raises(ValueError, match="holds no png"):
        int8_graph(exported["static"].onnx_file, tmp_path / "x.onnx", tmp_path)


def test_quantize_refuses_to_overwrite_its_source(exported, calibration):
    fp32 = exported["static"].onnx_file
    with pytest.raises(ValueError, match="overwrite its fp32 source"):
        quantize_onnx(fp32, fp32, calibration.reader())
    with pytest.raises(ValueError, match="calibration method 'max'"):
        quantize_onnx(fp32, fp32.with_name("x.onnx"), calibration.reader(), method="max")


def test_latency_is_the_median_of_timed_runs_after_warmup():
    calls = []
    lat = measure_latency(lambda a, b: calls.append(1), torch.zeros(1, 3, 32, 64), torch.zeros(1, 3, 32, 64),
                          runs=5, warmup=2, threads=3)
    assert len(calls) == 7 and lat.runs == 5 and lat.threads == 3 and lat.shape == [1, 3, 32, 64]
    assert lat.min_ms <= lat.median_ms <= lat.max_ms and "cores visible" in lat.device


def test_compared_graphs_are_timed_in_interleaved_rounds():
    order = []
    x = torch.zeros(1, 3, 32, 64)
    timed = measure_latencies({"fp32": lambda a, b: order.append("fp32"), "int8": lambda a, b: order.append("int8")},
                              x, x, runs=3, warmup=1)
    assert order == ["fp32", "int8"] * 4 and set(timed) == {"fp32", "int8"} and timed["int8"].runs == 3


def test_comparison_scores_both_graphs_with_ground_truth():
    gt, valid = torch.full((1, 4, 4), 10.0), torch.ones(1, 4, 4)
    comparison = Comparison(max_disparity=32)
    comparison.update("a", torch.full((1, 4, 4), 11.0), torch.full((1, 4, 4), 12.0), gt, valid)
    kpi = comparison.kpi()
    assert kpi["fp32_epe"] == pytest.approx(1.0) and kpi["int8_epe"] == pytest.approx(2.0)
    assert kpi["epe_delta"] == pytest.approx(1.0) and kpi["drift_mean_abs"] == pytest.approx(1.0)
