"""What the MLflow UI shows besides params and metrics, read back from a real SQLite store: the experiment
kind (training view), the run's description, dataset inputs and a checkpoint logged as a model."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from stereo.tracking import EXPERIMENT_KIND_TAG, NOTE_TAG, TRAINING_KIND, MlflowTracker, ensure_experiment


def _client(uri):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


@pytest.mark.slow
def test_experiments_open_the_training_view(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    exp_id = ensure_experiment(uri, "depth_net")
    assert _client(uri).get_experiment(exp_id).tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND
    # an experiment made before (no kind) gets it; a kind the user chose in the UI stays
    older = _client(uri).create_experiment("older")
    MlflowTracker(uri).start_run("r", experiment="older")
    assert _client(uri).get_experiment(older).tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND
    chosen = _client(uri).create_experiment("chosen", tags={EXPERIMENT_KIND_TAG: "finetuning"})
    MlflowTracker(uri).start_run("r", experiment="chosen")
    assert _client(uri).get_experiment(chosen).tags[EXPERIMENT_KIND_TAG] == "finetuning"


@pytest.mark.slow
def test_the_note_is_the_run_description_and_experiment_tags_are_set(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = MlflowTracker(uri)
    run = tracker.start_run("sweep", experiment="depth_net")
    tracker.set_note(run, "## Leaderboard\n| rank | trial |")
    tracker.set_experiment_tags("depth_net", {"mlflow.sharedViewState.abc": "{}"})
    assert _client(uri).get_run(run.run_id).data.tags[NOTE_TAG] == "## Leaderboard\n| rank | trial |"
    assert _client(uri).get_experiment(run.experiment_id).tags["mlflow.sharedViewState.abc"] == "{}"


@pytest.mark.slow
def test_annotation_files_are_dataset_inputs_with_digest_and_lines(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    (tmp_path / "train").mkdir()
    ann = tmp_path / "train" / "fsd.txt"
    ann.write_text("a.png b.png d.pfm\nc.png e.png f.pfm\n\n")
    tracker = MlflowTracker(uri)
    run = tracker.start_run("train", experiment="depth_net")
    tracker.log_datasets(run, {"train": [str(ann)]})
    inputs = _client(uri).get_run(run.run_id).inputs.dataset_inputs
    assert len(inputs) == 1
    ds = inputs[0].dataset
    assert ds.name == "train/fsd.txt" and len(ds.digest) == 16
    assert json.loads(ds.profile)["num_rows"] == 2 and json.loads(ds.source)["uri"] == ann.resolve().as_uri()
    assert {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"] == "train"
    with pytest.raises(FileNotFoundError):
        tracker.log_datasets(run, {"val": [str(tmp_path / "missing.txt")]})


@pytest.mark.slow
def test_a_checkpoint_logged_as_a_model_loads_back_and_predicts(tmp_path):
    import mlflow.pyfunc
    import torch

    from stereo.models import create_model, preset_config
    from stereo.checkpoints import save_checkpoint

    torch.manual_seed(0)
    net = create_model("ffs_tiny").eval()
    ckpt = save_checkpoint(tmp_path / "ckpt" / "model", net.state_dict(),
                           config=dataclasses.asdict(preset_config("ffs_tiny")))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = MlflowTracker(uri)
    run = tracker.start_run("train", experiment="depth_net")
    model_id = tracker.log_model(run, str(ckpt), name="t0000", step=3, params={"train.optim.lr": 0.001})
    outputs = _client(uri).get_run(run.run_id).outputs.model_outputs
    assert [(o.model_id, o.step) for o in outputs] == [(model_id, 3)]
    logged = _client(uri).get_logged_model(model_id)
    assert logged.source_run_id == run.run_id and logged.status.to_proto() == 2  # READY
    assert logged.params == {"train.optim.lr": "0.001"}
    rng = np.random.default_rng(0)
    left, right = (rng.uniform(0, 255, (1, 3, 32, 64)).astype(np.float32) for _ in range(2))
    mlflow.set_tracking_uri(uri)
    try:
        disp = mlflow.pyfunc.load_model(f"models:/{model_id}").predict({"left": left, "right": right})
    finally:
        mlflow.set_tracking_uri(None)
    with torch.no_grad():
        want = net(torch.from_numpy(left), torch.from_numpy(right), test_mode=True).numpy()
    assert disp.shape == (1, 1, 32, 64) and np.allclose(disp, want, atol=1e-4)
