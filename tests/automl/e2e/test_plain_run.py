"""The plain-run path: `automl run --policy off` trains once with the train action (no Ray), recorded
in MLflow with the decision and its reasons."""
from automl.cli import main
from stereo.actions.status import read_status


def test_policy_off_trains_once_and_records_the_decision(tmp_path, monkeypatch, capsys):
    from stereo.data.synthetic import generate
    from stereo.tracking import MlflowTracker, default_tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tr = generate(tmp_path / "train", "fsd", n=2, height=32, width=64, max_disparity=24, seed=0)
    va = generate(tmp_path / "val", "fsd", n=1, height=32, width=64, max_disparity=24, seed=1)
    run = tmp_path / "run"
    code = main(["run", "--skill", "tiny-demo", "--policy", "off", "--output", str(run),
                 f"dataset.train_dataset.data_sources[0].data_file={tr}",
                 "dataset.train_dataset.data_sources[0].dataset_name=FSD",
                 f"dataset.val_dataset.data_sources[0].data_file={va}",
                 "dataset.val_dataset.data_sources[0].dataset_name=FSD", "num_epochs=1", "max_steps=-1",
                 "dataset.train_dataset.augmentation.crop_size=[32,64]", "model.train_iters=1", "model.valid_iters=1"])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    assert "plain training SUCCESS" in out and "one plain training run" in out  # the review said so first
    assert read_status(run / "train")[-1]["status"] == "SUCCESS"
    runs = MlflowTracker(default_tracking_uri(run)).find_runs("depth_net")
    assert len(runs) == 1 and runs[0].status == "FINISHED"
    tags = runs[0].tags
    assert tags["automl.kind"] == "plain" and tags["automl.decision"] == "plain" and tags["automl.policy"] == "off"
    assert tags["automl.reasons"] and runs[0].params["train.num_epochs"] == "1"
    assert "val/epe" in runs[0].metrics
    assert not (run / "ledger").exists() and not (run / "ray").exists()  # no sweep machinery
