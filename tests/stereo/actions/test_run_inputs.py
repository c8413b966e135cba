"""An action's run records the annotation files it reads as dataset inputs, and only those."""
import pytest

from stereo.actions.run_inputs import spec_datasets
from stereo.actions.runner import ActionResult, run_action
from stereo.tracking import MemoryTracker


def _spec(tmp_path):
    files = {}
    for split in ("train", "val", "test", "infer"):
        files[split] = tmp_path / f"{split}.txt"
        files[split].write_text("l.png r.png\n")
    return {"dataset": {f"{s}_dataset": {"data_sources": [{"dataset_name": "FSD", "data_file": str(p)}]}
                        for s, p in files.items()}}, files


@pytest.mark.parametrize("action, splits", [("train", ["train", "val"]), ("evaluate", ["test"]),
                                            ("inference", ["infer"]), ("export", [])])
def test_each_action_records_the_splits_it_reads(tmp_path, action, splits):
    spec, files = _spec(tmp_path)
    assert spec_datasets(action, spec) == {s: [str(files[s])] for s in splits}
    tracker = MemoryTracker()
    run_action(action, spec, tmp_path / "results", lambda ctx: ActionResult(), tracker=tracker)
    (rec,) = tracker.find_runs("depth_net")
    assert tracker.datasets(rec.run_id) == [(s, str(files[s])) for s in splits]


def test_a_missing_annotation_file_only_warns(tmp_path):
    spec = {"dataset": {"test_dataset": {"data_sources": [{"data_file": str(tmp_path / "gone.txt")}]}}}
    tracker = MemoryTracker()
    with pytest.warns(RuntimeWarning, match="could not record the evaluate data sets"):
        result = run_action("evaluate", spec, tmp_path / "results", lambda ctx: ActionResult(), tracker=tracker)
    assert result.status == "SUCCESS"
