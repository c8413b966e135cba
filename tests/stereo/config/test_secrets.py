"""Secrets never leave the process (issue 11: `encryption_key=SECRET` landed in MLflow params, launch.json,
best_spec.yaml, experiment.yaml artifacts and the console review).

The end-to-end check plays the user: the secret is given as an override, the real action runs with a real
MLflow store, and then *every byte* under the results folder (SQLite store, artifacts, status.json,
experiment.yaml) and everything printed is searched for it.
"""
import dataclasses
from pathlib import Path

import pytest
import torch
import yaml

from stereo.config.secrets import REDACTED, is_secret_key, redact, redact_override
from stereo.data.synthetic import generate
from stereo.models import create_model, preset_config
from stereo.checkpoints import save_checkpoint

SECRET = "Sup3rSecretValue"


@pytest.mark.parametrize("key, secret", [
    ("encryption_key", True), ("hf_token", True), ("mlflow.password", True), ("aws_secret_access", True),
    ("dataset.train_dataset.data_sources[0].api_key", True), ("model.stereo_backbone.use_clstoken", True),
    ("train.optim.lr", False), ("monitor", False), ("keys", False), ("sort_keys", False),
])
def test_which_keys_are_secret(key, secret):
    assert is_secret_key(key) is secret


def test_redact_keeps_booleans_and_structure():
    spec = {"encryption_key": SECRET, "model": {"stereo_backbone": {"use_clstoken": True}},
            "x": [{"api_token": SECRET}], "empty_key": ""}
    assert redact(spec) == {"encryption_key": REDACTED, "model": {"stereo_backbone": {"use_clstoken": True}},
                            "x": [{"api_token": REDACTED}], "empty_key": ""}
    assert redact_override(f"encryption_key={SECRET}") == f"encryption_key={REDACTED}"
    assert redact_override("model.stereo_backbone.use_clstoken=true") == "model.stereo_backbone.use_clstoken=true"


def _files_containing(root: Path, needle: bytes) -> list:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.slow
def test_an_action_run_never_writes_or_prints_the_secret(tmp_path, capfd, monkeypatch):
    from stereo.cli import main

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the default store under results_dir
    ann = generate(tmp_path / "data", "fsd", n=1, height=64, width=96, max_disparity=20, seed=0)
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "m", create_model("ffs_tiny").state_dict(),
                           config=dataclasses.asdict(preset_config("ffs_tiny")))
    split = {"data_sources": [{"dataset_name": "FSD", "data_file": str(ann)}], "batch_size": 1, "workers": 0}
    spec = {"results_dir": str(tmp_path / "results"), "model": dataclasses.asdict(preset_config("ffs_tiny")),
            "dataset": {"max_disparity": 32, "test_dataset": split}, "evaluate": {"checkpoint": str(ckpt)}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))

    assert main(["validate", "-e", str(tmp_path / "spec.yaml"), f"encryption_key={SECRET}"]) == 0
    assert main(["evaluate", "-e", str(tmp_path / "spec.yaml"), f"encryption_key={SECRET}"]) == 0
    out = capfd.readouterr()
    assert SECRET not in out.out and SECRET not in out.err
    assert f"encryption_key: {REDACTED}" in out.out  # validate printed the resolved spec, redacted
    results = tmp_path / "results"
    assert (results / "mlflow.db").is_file() and (results / "evaluate" / "experiment.yaml").is_file()
    assert _files_containing(results, SECRET.encode()) == []

    from stereo.tracking import MlflowTracker, default_tracking_uri

    run = MlflowTracker(default_tracking_uri(results)).find_runs("depth_net", tags={"action": "evaluate"})[0]
    assert run.params["encryption_key"] == REDACTED


def test_automl_launch_files_and_review_never_hold_the_secret(tmp_path):
    from automl.plan.configs import RunConfig, SearchConfig
    from automl.plan.launch import build_plan
    from automl.plan.review import review

    plan = build_plan(SearchConfig(skill="tiny-demo", overrides=[f"encryption_key={SECRET}"]),
                      where=RunConfig(output=str(tmp_path / "run")))
    text = review(plan)
    assert SECRET not in text and f"encryption_key={REDACTED}" in text
    path = plan.save()
    assert SECRET not in path.read_text() and plan.base_spec["encryption_key"] == SECRET  # in memory only


def test_best_spec_yaml_is_redacted(tmp_path):
    from automl.report.results import _best_spec_yaml

    text = _best_spec_yaml({"encryption_key": SECRET}, tmp_path, {"trial_id": "t0", "score": 1.0}, "val/epe", None)
    assert SECRET not in text and f"encryption_key: {REDACTED}" in text
