"""Exit codes through the CLI (stereo.cli.main): 0 success, 2 bad input (a wrong value, a missing file),
1 a failure while running; each failure is one line on stderr."""
import dataclasses
import re

import pytest
import torch
import yaml

from stereo.cli import main
from stereo.data.synthetic import generate
from stereo.models import create_model, preset_config
from stereo.models.checkpoints import save_checkpoint


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    ann = generate(root / "data", "fsd", n=2, height=64, width=96, max_disparity=20, seed=0)
    torch.manual_seed(0)
    ckpt = save_checkpoint(root / "m", create_model("ffs_tiny").state_dict(),
                           config=dataclasses.asdict(preset_config("ffs_tiny")))
    split = {"data_sources": [{"dataset_name": "FSD", "data_file": str(ann)}], "batch_size": 1, "workers": 0,
             "augmentation": {"crop_size": [64, 96]}}
    spec = {"results_dir": str(root / "results"), "model": dataclasses.asdict(preset_config("ffs_tiny")),
            "dataset": {"max_disparity": 32, "train_dataset": split, "test_dataset": split, "infer_dataset": split},
            "train": {"num_epochs": 1, "max_steps": 1, "seed": 0},
            "evaluate": {"checkpoint": str(ckpt)}, "inference": {"checkpoint": str(ckpt)}}
    path = root / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return root, path


@pytest.fixture(autouse=True)
def _one_store(world, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{world[0] / 'mlflow.db'}")


def _run(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


def test_success_is_0(world, capsys):
    assert _run(capsys, "evaluate", "-e", str(world[1]))[0] == 0


@pytest.mark.parametrize("action, override, message", [
    ("train", "train.resume_training_checkpoint_path=/nonexistent/model_epoch_000_step_00001.ckpt",
     "resume_training_checkpoint_path=.* does not exist"),
    ("evaluate", "evaluate.checkpoint=/nonexistent/dn_model_best.safetensors", "does not exist"),
    ("gen_trt_engine", "gen_trt_engine.onnx_file=/nonexistent/model.onnx", "onnx_file=.* does not exist"),
    ("train", "train.monitor_is_not_a_key=1", "unknown key"),
])
def test_bad_input_and_missing_files_are_2(world, capsys, action, override, message):
    code, err = _run(capsys, action, "-e", str(world[1]), override)
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert re.search(message, err), err


def test_fp16_on_a_cpu_is_bad_input(world, capsys):
    if torch.cuda.is_available():
        pytest.skip("fp16 is valid with a GPU")
    code, err = _run(capsys, "train", "-e", str(world[1]), "train.precision=fp16")
    assert code == 2 and "train.precision='fp16' needs a CUDA GPU" in err


def test_a_failure_while_running_is_1(world, capsys):
    nan = {k: (torch.full_like(v, float("nan")) if v.is_floating_point() else v)
           for k, v in create_model("ffs_tiny").state_dict().items()}
    ckpt = save_checkpoint(world[0] / "nan", nan, config=dataclasses.asdict(preset_config("ffs_tiny")))
    code, err = _run(capsys, "inference", "-e", str(world[1]), f"inference.checkpoint={ckpt}")
    assert code == 1 and "predictions are unusable" in err and len(err.splitlines()) == 1


def test_runner_maps_a_missing_file_to_2():
    from stereo.actions.runner import categorize, exit_code

    assert categorize(FileNotFoundError("x.ckpt")) == ("missing file", 2)
    assert exit_code(FileNotFoundError("x.ckpt")) == 2 and exit_code(PermissionError("x")) == 1
