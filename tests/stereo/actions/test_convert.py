"""stereo.actions.convert: annotation files under results_dir, status/experiment under results_dir/convert,
an MLflow run, stale split files removed, bad patterns reported as bad input."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from stereo.actions import last_kpi, read_status
from stereo.errors import ActionError
from stereo.actions.convert import convert
from stereo.config.convert import ConvertConfig
from stereo.data.synthetic import generate
from stereo.tracking import MemoryTracker


def _kitti2015(tmp_path: Path, n: int = 5, **over) -> ConvertConfig:
    root = tmp_path / "data"
    if not root.exists():
        generate(root, "kitti2015", n=n, height=16, width=32, max_disparity=8)
    fields = dict(data_root=str(root), results_dir=str(tmp_path / "out"),
                  image_dir_pattern=["training/", "/image_2/"], right_dir_pattern=["training/", "/image_3/"],
                  depth_dir_pattern=["training/", "/disp_occ_0/"], image_extension="_10.png",
                  depth_extension="_10.png", split_ratio=0.8, seed=42)
    return ConvertConfig(**{**fields, **over})


def _statuses(folder: Path) -> list[str]:
    return [line["status"] for line in read_status(folder)]


@pytest.mark.slow
def test_convert_runs_as_an_action_and_records_to_mlflow(tmp_path):
    from stereo.tracking import MlflowTracker, default_tracking_uri

    cfg = _kitti2015(tmp_path)
    result = convert(cfg)  # the default tracker: MLflow in <results_dir>/mlflow.db
    out = tmp_path / "out"
    assert result.status == "SUCCESS" and result.counts == {"train": 4, "val": 1} and result.columns == 3
    assert result.files == {"train": str(out / "train.txt"), "val": str(out / "val.txt")}  # where TAO puts them
    assert len((out / "train.txt").read_text().splitlines()) == 4
    assert len((out / "val.txt").read_text().splitlines()) == 1
    action = out / "convert"
    assert result.results_dir == str(action)
    assert _statuses(action) == ["STARTED", "RUNNING", "SUCCESS"]
    assert last_kpi(action) == {"samples/train": 4.0, "samples/val": 1.0}
    assert "Wrote train.txt (4 lines), val.txt (1 lines) with 3 columns" in read_status(action)[-1]["message"]
    assert yaml.safe_load((action / "experiment.yaml").read_text()) == dataclasses.asdict(cfg)

    store = MlflowTracker(default_tracking_uri(out))
    (run,) = store.find_runs("depth_net", {"action": "convert"})
    assert run.status == "FINISHED"
    assert run.params["split_ratio"] == "0.8" and run.params["data_root"] == cfg.data_root
    assert {k: v for k, v in run.metrics.items() if not k.startswith("system/")} == {"samples/train": 4.0,
                                                                                     "samples/val": 1.0}
    assert "system/cpu_utilization_percentage" in run.metrics  # the machine, sampled while it ran
    logged = {a.path for a in store.client.list_artifacts(run.run_id, "annotations")}
    assert logged == {"annotations/train.txt", "annotations/val.txt"}
    assert {a.path for a in store.client.list_artifacts(run.run_id)} >= {"experiment.yaml", "status.json"}


def test_rerun_is_identical_and_overwrites(tmp_path):
    cfg = _kitti2015(tmp_path, n=6)
    convert(cfg, tracker=False)
    first = {name: (tmp_path / "out" / name).read_text() for name in ("train.txt", "val.txt")}
    again = convert(cfg, tracker=False)
    assert {name: (tmp_path / "out" / name).read_text() for name in first} == first
    assert again.removed == [] and "Removed" not in again.message
    assert _statuses(tmp_path / "out/convert")[-1] == "SUCCESS"


def test_rerun_with_another_split_ratio_removes_the_stale_split_files(tmp_path):
    tracker = MemoryTracker()
    convert(_kitti2015(tmp_path), tracker=tracker)
    out = tmp_path / "out"
    assert (out / "train.txt").is_file() and (out / "val.txt").is_file()

    result = convert(_kitti2015(tmp_path, split_ratio=0.0), tracker=tracker)
    assert result.files == {"test": str(out / "test.txt")} and result.counts == {"test": 5}
    assert not (out / "train.txt").exists() and not (out / "val.txt").exists()
    assert result.removed == [str(out / "train.txt"), str(out / "val.txt")]
    message = read_status(out / "convert")[-1]["message"]
    assert "Removed train.txt, val.txt, left by an earlier run with another split_ratio" in message
    latest = tracker.find_runs("depth_net", {"action": "convert"})[0]
    assert tracker.artifacts(latest.run_id) == ["annotations/test.txt", "experiment.yaml", "status.json"]

    back = convert(_kitti2015(tmp_path), tracker=False)
    assert back.removed == [str(out / "test.txt")] and not (out / "test.txt").exists()


def test_a_pattern_that_matches_nothing_is_bad_input_with_status_failure(tmp_path):
    cfg = _kitti2015(tmp_path, image_dir_pattern=["training/", "/image_9/"])
    with pytest.raises(ActionError) as info:
        convert(cfg, tracker=False)
    assert info.value.exit_code == 2 and info.value.category == "bad input"
    assert "convert found no file" in str(info.value) and "check image_dir_pattern" in str(info.value)
    lines = read_status(tmp_path / "out/convert")
    assert [line["status"] for line in lines] == ["STARTED", "RUNNING", "FAILURE"]
    assert "convert found no file" in lines[-1]["message"]
    assert not (tmp_path / "out/train.txt").exists()


def test_a_split_that_would_be_empty_fails_before_writing(tmp_path):
    cfg = _kitti2015(tmp_path, n=1, split_ratio=0.5)
    with pytest.raises(ActionError, match=r"split_ratio 0\.5 of 1 samples leaves train\.txt empty") as info:
        convert(cfg, tracker=False)
    assert info.value.exit_code == 2
    assert not (tmp_path / "out/train.txt").exists() and not (tmp_path / "out/val.txt").exists()


def test_empty_results_dir_is_bad_input(tmp_path):
    with pytest.raises(ActionError, match="results_dir is empty; set results_dir in the convert spec") as info:
        convert(_kitti2015(tmp_path, results_dir=""), tracker=False)
    assert info.value.exit_code == 2
