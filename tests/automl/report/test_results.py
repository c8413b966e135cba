"""automl.report.write_report on synthetic trial lists: leaderboard, files, results.json, MLflow artifacts."""
from __future__ import annotations

import io
import json
import math
import os

import pytest

from automl.commands import resume_command
from automl.space.param import Param
from automl.report.results import ReportError, write_report
from automl.plan.skills import find_skill
from automl.space.build import SearchSpace
from stereo.config.load import load_spec, spec_to_dict
from stereo.tracking import MemoryTracker

METRIC = "val/epe"


@pytest.fixture(scope="module")
def space():
    return SearchSpace({"train.optim.lr": Param.real(1e-4, 1e-2, log=True),
                        "train.optim.lr_decay": Param.real(0.05, 1.0),
                        "train.optim.optimizer": Param.categorical(("AdamW", "SGD")),
                        "train.shuffle": Param.boolean(),
                        "dataset.train_dataset.batch_size": Param.power_of(2, 1, 8)})


@pytest.fixture(scope="module")
def best_spec(tmp_path_factory):
    raw = find_skill("tiny-demo").load_template("train")
    raw["results_dir"] = str(tmp_path_factory.mktemp("trial") / "t0003")
    for split in ("train_dataset", "val_dataset"):
        raw["dataset"][split]["data_sources"] = [{"dataset_name": "FSD", "data_file": "/data/fsd.txt"}]
    return spec_to_dict(load_spec(raw))


def _trial(i, status="completed", metric=None, **kw):
    params = {"train.optim.lr": 10 ** (-4 + 2 * ((i * 0.37) % 1)), "train.optim.lr_decay": 0.05 + 0.1 * i,
              "train.optim.optimizer": "SGD" if i % 3 == 0 else "AdamW", "train.shuffle": bool(i % 2),
              "dataset.train_dataset.batch_size": 2 ** (i % 4)}
    return {"trial_id": f"t{i:04d}", "status": status, "params": params, "metric": metric,
            "metrics": {METRIC: metric} if metric is not None else {}, "history": [], "epochs": 4,
            "error": None, "checkpoint": None, "run_id": f"run{i}", "duration_s": 30.0 + i, **kw}


@pytest.fixture
def trials(tmp_path):
    ckpt = tmp_path / "trials" / "t0003" / "train" / "dn_model_best.safetensors"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"weights")
    ckpt.with_suffix(".json").write_text('{"model_type": "FastFoundationStereo"}')
    return [_trial(0, metric=3.2), _trial(1, metric=2.5),
            _trial(2, "failed", metric=0.0, error="RuntimeError: loss is NaN at step 7\ntraceback..."),
            _trial(3, metric=1.25, checkpoint=str(ckpt)), _trial(4, "stopped", metric=4.0, epochs=1),
            _trial(5, metric=float("nan")), _trial(6, "running")]


def _write(tmp_path, trials, space, best_spec, **kw):
    out = io.StringIO()
    kw.setdefault("complete", True)
    report = write_report(tmp_path / "sweep", trials, metric=METRIC, mode="min", space=space,
                          best_spec=best_spec, stream=out, algorithm="tpe+asha", **kw)
    return report, out.getvalue()


def test_leaderboard_ranks_scored_trials_and_lists_failures_with_reason_never_a_score(tmp_path, trials, space,
                                                                                      best_spec):
    report, printed = _write(tmp_path, trials, space, best_spec)
    assert printed == report.leaderboard == (tmp_path / "sweep" / "leaderboard.txt").read_text()
    lines = printed.splitlines()
    assert lines[0].startswith("Sweep complete: 4 completed, 1 early-stopped, 1 failed, 1 running of 7")
    assert "Best: t0003 with val/epe = 1.25" in lines[1]
    rows = {line.split()[1]: line.split() for line in lines[4:] if line.strip()}
    assert [rows[t][0] for t in ("t0003", "t0001", "t0000", "t0004")] == ["1", "2", "3", "4"]
    assert rows["t0002"][:4] == ["-", "t0002", "failed", "failed"]
    assert "RuntimeError: loss is NaN at step 7" in printed
    assert rows["t0005"][0] == "-" and "finished without a finite metric" in printed  # NaN is not a score
    assert rows["t0006"][0] == "-" and rows["t0006"][2] == "running"
    assert lines[3].split()[:6] == ["rank", "trial", "status", "val/epe", "(min)", "lr"]
    assert "lr_decay" in lines[3] and "batch_size" in lines[3] and "duration" in lines[3]
    assert "INCOMPLETE" not in printed


def test_results_json_has_tao_shape_and_failed_trials_have_null_metric(tmp_path, trials, space, best_spec):
    report, _ = _write(tmp_path, trials, space, best_spec)
    data = json.loads(report.results_path.read_text())
    assert data == report.results
    assert data["best"]["trial_id"] == "t0003" and data["best"]["metric"] == 1.25
    assert data["best"]["params"]["train.optim.optimizer"] == "SGD"
    assert data["progress"] == {"completed": 4, "failed": 1, "stopped": 1, "running": 1, "interrupted": 0, "total": 7,
                                "best_metric": 1.25, "best_trial_id": "t0003", "algorithm": "tpe+asha",
                                "complete": True, "metric": METRIC, "mode": "min"}
    hist = {h["trial_id"]: h for h in data["history"]}
    assert [h["trial_id"] for h in data["history"]] == [f"t{i:04d}" for i in range(7)]
    assert hist["t0002"]["metric"] is None and hist["t0002"]["status"] == "failed"
    assert hist["t0005"]["metric"] is None  # NaN -> null (valid JSON), never 0
    assert hist["t0004"]["metric"] == 4.0
    assert set(data["space"]["parameters"]) == set(space.names)


def test_best_spec_loads_and_retrains_into_a_fresh_folder(tmp_path, trials, space, best_spec):
    report, _ = _write(tmp_path, trials, space, best_spec)
    spec = load_spec(report.best_spec_path)
    assert spec.results_dir == str(tmp_path / "sweep" / "retrain")
    assert spec.train.optim.lr == best_spec["train"]["optim"]["lr"]
    assert spec.evaluate.checkpoint == str(report.best_checkpoint)
    assert report.best_spec_path.read_text().startswith("# Best trial t0003")


def test_best_checkpoint_and_sidecar_are_placed_in_the_run_dir(tmp_path, trials, space, best_spec):
    report, _ = _write(tmp_path, trials, space, best_spec)
    assert report.best_checkpoint == tmp_path / "sweep" / "best_checkpoint.safetensors"
    assert report.best_checkpoint.read_bytes() == b"weights"
    # the pair keeps its names (a sidecar names its weights file); the link points at it
    folder = tmp_path / "sweep" / "best_checkpoint"
    assert sorted(p.name for p in folder.iterdir()) == ["dn_model_best.json", "dn_model_best.safetensors"]
    assert (folder / "dn_model_best.json").read_text().startswith('{"model_type"')
    assert os.readlink(report.best_checkpoint) == "best_checkpoint/dn_model_best.safetensors"
    assert report.results["best"]["checkpoint"] == str(report.best_checkpoint)


def test_plots_png_and_self_contained_html(tmp_path, trials, space, best_spec):
    report, _ = _write(tmp_path, trials, space, best_spec)
    for name in ("history", "parallel", "importance"):
        assert report.plots[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = report.html_path.read_text()
    assert page.count("<svg") == 3 and "<?xml" not in page
    # no CDN: nothing is fetched (xmlns URIs inside the SVG are names, never loaded)
    assert "<link" not in page and "<script src" not in page
    assert 'src="http' not in page and 'href="http' not in page
    assert 'class="sortable"' in page and "addEventListener('click'" in page
    assert "loss is NaN at step 7" in page and '<tr class="best">' in page


def test_incomplete_sweep_says_so_and_how_to_resume(tmp_path, trials, space, best_spec):
    report, printed = _write(tmp_path, trials, space, best_spec, complete=False,
                             resume_command="automl run --resume /r/sweep")
    assert printed.startswith("Sweep INCOMPLETE")
    assert "Resume it with: automl run --resume /r/sweep" in printed
    assert report.results["progress"]["complete"] is False
    assert "INCOMPLETE" in report.html_path.read_text()


def test_all_failed_writes_no_best_and_no_spec(tmp_path, space, best_spec):
    trials = [_trial(i, "failed", error=f"CUDA out of memory #{i}") for i in range(3)]
    report, printed = _write(tmp_path, trials, space, best_spec)
    assert "Best: none (no trial produced a score)" in printed
    assert report.results["best"] is None and report.best_spec_path is None and report.best_checkpoint is None
    assert not (tmp_path / "sweep" / "best_spec.yaml").exists()
    assert all(h["metric"] is None for h in report.results["history"])
    assert report.plots["parallel"].is_file() and "no scored trial" in report.html_path.read_text()


def test_single_trial(tmp_path, space, best_spec):
    report, _ = _write(tmp_path, [_trial(0, metric=2.0)], space, best_spec)
    assert report.results["best"]["trial_id"] == "t0000"
    assert report.importance.params == () and "at least 3" in report.importance.note
    assert report.plots["importance"].is_file() and report.best_spec_path.is_file()


def test_max_mode_ranks_highest_first(tmp_path, space):
    trials = [_trial(0, metric=0.2), _trial(1, metric=0.9), _trial(2, metric=0.5)]
    report = write_report(tmp_path / "s", trials, metric="val/acc", mode="max", space=space, best_spec=None,
                          complete=True, stream=None)
    assert report.results["best"]["trial_id"] == "t0001" and report.best_spec_path is None


def test_artifacts_logged_to_parent_run(tmp_path, trials, space, best_spec):
    tracker = MemoryTracker()
    parent = tracker.start_run("sweep", experiment="automl")
    _write(tmp_path, trials, space, best_spec, tracker=tracker, parent_run=parent)
    logged = set(tracker.artifacts(parent.run_id))
    assert {"report/results.json", "report/best_spec.yaml", "report/report.html", "report/leaderboard.txt",
            "report/plots/history.png", "report/plots/parallel.png", "report/plots/importance.png"} <= logged
    record = tracker.record(parent.run_id)
    assert record.metrics["best/val/epe"] == 1.25 and record.tags["sweep.best_trial_id"] == "t0003"


@pytest.mark.parametrize("bad, message", [
    ([{"status": "completed"}], "no 'trial_id'"),
    ([{"trial_id": "a", "status": "done"}], "status 'done'"),
    ([{"trial_id": "a", "status": "failed"}, {"trial_id": "a", "status": "failed"}], "appears twice"),
])
def test_bad_trials_raise_one_line(tmp_path, space, bad, message):
    with pytest.raises(ReportError, match=message):
        write_report(tmp_path, bad, metric=METRIC, mode="min", space=space, best_spec=None, complete=True,
                     stream=None)


def test_missing_checkpoint_and_bad_spec_are_warnings_and_the_rest_is_written(tmp_path, space, best_spec):
    trials = [_trial(0, metric=1.0, checkpoint=str(tmp_path / "gone.safetensors"))]
    bad_spec = {**best_spec, "train": {**best_spec["train"], "num_epochs": "many"}}
    report = write_report(tmp_path / "s", trials, metric=METRIC, mode="min", space=space, best_spec=bad_spec,
                          complete=True, stream=None)
    assert len(report.warnings) == 2 and "gone.safetensors does not exist" in report.warnings[0]
    assert "its spec does not load" in report.warnings[1] and "num_epochs" in report.warnings[1]
    assert report.best_checkpoint is None and report.best_spec_path is None
    assert report.results["warnings"] == report.warnings and report.results["best"]["trial_id"] == "t0000"
    assert "WARNING: best trial checkpoint" in report.leaderboard
    assert "WARNING:" in report.html_path.read_text()


def test_rewrite_replaces_previous_report(tmp_path, trials, space, best_spec):
    _write(tmp_path, trials[:2], space, best_spec, complete=False)
    report, _ = _write(tmp_path, trials, space, best_spec)
    assert report.results["progress"]["total"] == 7 and math.isclose(report.results["best"]["metric"], 1.25)


def test_interrupted_trials_are_labelled_never_best_and_resume_names_the_run_dir(tmp_path, space):
    # t0001 validated better than t0000 before the sweep was interrupted: it neither finished nor
    # counts toward the budget, so it must not be named best (its checkpoint would be missing)
    trials = [_trial(0, metric=2.0), _trial(1, "stopped", metric=0.5, interrupted=True),
              _trial(2, "stopped", interrupted=True), _trial(3, "stopped", metric=1.5)]
    report = write_report(tmp_path / "s", trials, metric=METRIC, mode="min", space=space, best_spec=None,
                          complete=False, stream=None)
    assert report.results["best"]["trial_id"] == "t0003"  # an early-stopped trial with a score may win
    assert report.leaderboard.count("interrupted (sweep stopped); not counted") == 2
    progress = report.results["progress"]
    assert progress["interrupted"] == 2 and progress["stopped"] == 1 and "2 interrupted of 4" in report.leaderboard
    assert [h["metric"] for h in report.results["history"]] == [2.0, None, None, 1.5]
    assert f"Resume it with: {resume_command(tmp_path / 's')}" in report.leaderboard


def test_a_linked_trial_checkpoint_is_resolved_and_a_new_best_replaces_the_old(tmp_path, space):
    # the trainer's dn_model_best.safetensors links to the epoch's pair, whose sidecar names that file
    train = tmp_path / "trials" / "t0000" / "train"
    train.mkdir(parents=True)
    for name, data in (("dn_model_best_epoch_001_step_00002.safetensors", b"w1"),
                       ("dn_model_best_epoch_001_step_00002.json", b"{}"), ("other.safetensors", b"w2")):
        (train / name).write_bytes(data)
    os.symlink("dn_model_best_epoch_001_step_00002.safetensors", train / "dn_model_best.safetensors")
    first = [_trial(0, metric=2.0, checkpoint=str(train / "dn_model_best.safetensors"))]
    out = tmp_path / "sweep"
    report = write_report(out, first, metric=METRIC, mode="min", space=space, best_spec=None, complete=True,
                          stream=None)
    assert sorted(p.name for p in (out / "best_checkpoint").iterdir()) == [
        "dn_model_best_epoch_001_step_00002.json", "dn_model_best_epoch_001_step_00002.safetensors"]
    assert report.best_checkpoint.read_bytes() == b"w1" and not report.warnings
    second = first + [_trial(1, metric=1.0, checkpoint=str(train / "other.safetensors"))]
    report = write_report(out, second, metric=METRIC, mode="min", space=space, best_spec=None, complete=True,
                          stream=None)
    assert [p.name for p in (out / "best_checkpoint").iterdir()] == ["other.safetensors"]
    assert report.best_checkpoint.read_bytes() == b"w2" and not (out / ".best_checkpoint.tmp").exists()
