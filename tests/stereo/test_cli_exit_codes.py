"""Exit codes through the CLI (stereo.cli.main): 0 success, 2 bad input (a wrong value, a missing or
unreadable file, a results folder that cannot be written), 1 a failure while running; each failure is one
line on stderr (file descriptor 2, so a C library's own warning would count too).

The bad-input table plays the user: each row is a spec mistake or a broken file from issue 11's catalogue.
The time from the call to the error is logged (`time to error`, pytest's record_property), never asserted.
"""
import dataclasses
import json
import logging
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from stereo.cli import main
from stereo.data.formats.images import write_image
from stereo.data.synthetic import generate
from stereo.models import create_model, preset_config
from stereo.checkpoints import save_checkpoint

pytestmark = pytest.mark.slow  # depth_net subprocesses

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]


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


def _run(capfd, *argv):
    code = main(list(argv))
    err = capfd.readouterr().err.strip()
    return code, err


def test_success_is_0(world, capfd):
    assert _run(capfd, "evaluate", "-e", str(world[1]))[0] == 0


# --- broken inputs, made per case in the case's own folder ------------------------------------------
def _lines(ann: Path) -> list:
    return [line.split() for line in ann.read_text().splitlines() if line.strip()]


def _copy_data(world, tmp_path) -> Path:
    shutil.copytree(world[0] / "data", tmp_path / "data")
    return tmp_path / "data" / "fsd.txt"


def _write(path: Path, rows) -> str:
    path.write_text("".join(" ".join(map(str, r)) + "\n" for r in rows))
    return str(path)


def missing_annotation(world, tmp_path):
    return [f"dataset.train_dataset.data_sources[0].data_file={tmp_path / 'nope' / 'train.txt'}"]


def four_columns(world, tmp_path):
    ann = _copy_data(world, tmp_path)
    rows = [r + [r[2]] for r in _lines(ann)]
    return [f"dataset.train_dataset.data_sources[0].data_file={_write(ann.with_name('four.txt'), rows)}"]


def empty_annotation(world, tmp_path):
    (tmp_path / "empty.txt").write_text("# no samples yet\n\n")
    return [f"dataset.test_dataset.data_sources[0].data_file={tmp_path / 'empty.txt'}"]


def truncated_png(world, tmp_path):
    ann = _copy_data(world, tmp_path)
    left = ann.parent / _lines(ann)[0][0]
    left.write_bytes(left.read_bytes()[:300])  # the header survives, the pixels do not
    return [f"dataset.test_dataset.data_sources[0].data_file={ann}"]


def bad_pfm_header(world, tmp_path):
    ann = _copy_data(world, tmp_path)
    (ann.parent / "bad.pfm").write_bytes(b"PX\n96 64\n-1.0\n" + bytes(64 * 96 * 4))
    rows = [r[:2] + ["bad.pfm"] for r in _lines(ann)]
    data_file = _write(ann.with_name("pfm.txt"), rows)
    return ["dataset.test_dataset.data_sources[0].dataset_name=GenericDataset",
            f"dataset.test_dataset.data_sources[0].data_file={data_file}"]


def _size_mismatch(world, tmp_path, split):
    ann = _copy_data(world, tmp_path)
    write_image(ann.parent / "small_right.png", np.zeros((48, 96, 3), np.uint8))
    rows = [[r[0], "small_right.png", r[2]] for r in _lines(ann)]
    return [f"dataset.{split}_dataset.data_sources[0].data_file={_write(ann.with_name('lr.txt'), rows)}"]


def size_mismatch_evaluate(world, tmp_path):
    return _size_mismatch(world, tmp_path, "test")


def size_mismatch_train(world, tmp_path):
    return _size_mismatch(world, tmp_path, "train")


def fewer_samples_than_a_batch(world, tmp_path):
    return ["dataset.train_dataset.batch_size=8"]


def generic_two_columns_in_train(world, tmp_path):
    ann = _copy_data(world, tmp_path)
    data_file = _write(ann.with_name("two.txt"), [r[:2] for r in _lines(ann)])
    return ["dataset.train_dataset.data_sources[0].dataset_name=GenericDataset",
            f"dataset.train_dataset.data_sources[0].data_file={data_file}"]


def palette_disparity(world, tmp_path):
    from PIL import Image

    ann = _copy_data(world, tmp_path)
    im = Image.fromarray(np.full((64, 96), 9, np.uint8), mode="P")
    im.putpalette([v for i in range(256) for v in (i, i, i)])
    im.save(ann.parent / "disp_palette.png")
    rows = [r[:2] + ["disp_palette.png"] for r in _lines(ann)]
    return [f"dataset.test_dataset.data_sources[0].data_file={_write(ann.with_name('pal.txt'), rows)}"]


def results_dir_under_a_file(world, tmp_path):
    (tmp_path / "a_file").write_text("x")
    return [f"results_dir={tmp_path / 'a_file' / 'results'}"]


def results_dir_read_only(world, tmp_path):
    return ["results_dir=/sys/stereo_results"]  # sysfs refuses new files, even to root


def corrupt_sidecar(world, tmp_path):
    shutil.copy(world[0] / "m.safetensors", tmp_path / "m.safetensors")
    (tmp_path / "m.json").write_text('{"format": "stereo-automl-checkpoint", "sha256": ')
    return [f"evaluate.checkpoint={tmp_path / 'm.safetensors'}"]


def checkpoint_of_another_model(world, tmp_path):
    config = {**json.loads((world[0] / "m.json").read_text())["config"], "model_type": "FoundationStereo"}
    data = {**json.loads((world[0] / "m.json").read_text()), "config": config}
    shutil.copy(world[0] / "m.safetensors", tmp_path / "m.safetensors")
    (tmp_path / "m.json").write_text(json.dumps(data))
    return [f"inference.checkpoint={tmp_path / 'm.safetensors'}"]


def plain(*overrides):
    return lambda world, tmp_path: list(overrides)


BAD_INPUT = [
    # (action, make overrides, one line matching)
    ("train", missing_annotation, r"data_file: annotation file .*train.txt does not exist; set data_file"),
    ("validate --action train", missing_annotation, r"annotation file .*train.txt does not exist"),
    ("validate", plain("train.pretrained_model_path=/nonexistent/model.pth"),  # without --action: all files
     r"train.pretrained_model_path: does not exist"),
    ("validate", plain("evaluate.checkpoint=/nonexistent/best.safetensors"), r"evaluate.checkpoint: does not exist"),
    ("train", four_columns, r"four.txt:1: 4 columns for dataset_name FSD, expected 3 \(left right disparity\)"),
    ("validate --action train", four_columns, r"four.txt:1: 4 columns"),
    ("evaluate", empty_annotation, r"empty.txt has no samples"),
    ("evaluate", truncated_png, r"fsd.txt:1: left image: .*000000.png: truncated PNG"),
    ("evaluate", bad_pfm_header, r"pfm.txt:1: disparity: .*bad.pfm: PFM magic is b'PX'"),
    ("evaluate", size_mismatch_evaluate, r"lr.txt:1: right image .*small_right.png is 48x96 but the left image"),
    ("train", size_mismatch_train, r"lr.txt:1: right image .*is 48x96 but the left image .* is 64x96"),
    ("train", fewer_samples_than_a_batch, r"batch_size: the training data has 2 sample\(s\), fewer than one "
                                          r"batch of 8.*fix: set dataset.train_dataset.batch_size <= 2"),
    ("validate --action train", fewer_samples_than_a_batch, r"fewer than one batch"),
    ("train", generic_two_columns_in_train, r"two.txt:1: 2 columns for dataset_name GenericDataset, expected "
                                            r"3 .*\(the train split needs ground truth\)"),
    ("evaluate", palette_disparity, r"pal.txt:1: disparity: .*disp_palette.png: palette .*no dataset_name"),
    ("train", results_dir_under_a_file, r"results_dir: cannot be written: .*a_file is a file, not a folder"),
    ("inference", results_dir_read_only,
     r"results_dir: cannot be written: /sys: (Permission denied|Read-only file system)"),
    ("validate --action evaluate", results_dir_under_a_file, r"is a file, not a folder"),
    ("evaluate", corrupt_sidecar, r"evaluate.checkpoint: its sidecar .*m.json is corrupt"),
    ("inference", checkpoint_of_another_model, r"model.model_type: does not match.* m.safetensors "
                                               r"\(inference.checkpoint\).*'FoundationStereo'"),
    ("train", plain("train.resume_training_checkpoint_path=/nonexistent/model_epoch_000_step_00001.ckpt"),
     r"train.resume_training_checkpoint_path: does not exist \(got '/nonexistent/model_epoch_000_step_00001.ckpt'\)"),
    ("train", plain("train.pretrained_model_path=/nonexistent/pretrained.pth"),
     r"train.pretrained_model_path: does not exist"),
    ("validate --action train", plain("train.pretrained_model_path=/nonexistent/model.pth"),
     r"train.pretrained_model_path: does not exist"),
    ("evaluate", plain("evaluate.checkpoint=/nonexistent/dn_model_best.safetensors"), r"does not exist"),
    ("export", plain("export.checkpoint=/nonexistent/dn_model_best.safetensors", "export.onnx_file=m.onnx"),
     r"export.checkpoint: does not exist"),
    ("gen_trt_engine", plain("gen_trt_engine.onnx_file=/nonexistent/model.onnx"),
     r"gen_trt_engine.onnx_file: does not exist \(got '/nonexistent/model.onnx'\)"),
    ("train", plain("train.monitor_is_not_a_key=1"), r"unknown key"),
]


@pytest.mark.parametrize("action, make, message", BAD_INPUT,
                         ids=[f"{a.split()[-1]}-{m.__name__ if m.__name__ != '<lambda>' else i}"
                              for i, (a, m, _) in enumerate(BAD_INPUT)])
def test_bad_input_is_2_with_one_line(world, tmp_path, capfd, record_property, action, make, message):
    overrides = make(world, tmp_path)
    argv = [*action.split(), "-e", str(world[1]), *overrides]
    start = time.perf_counter()
    code, err = _run(capfd, *argv)
    elapsed = time.perf_counter() - start
    record_property("time_to_error_s", round(elapsed, 3))
    log.info("time to error: %.3f s for depth_net %s", elapsed, action)
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert re.search(message, err), err


def test_deep_checks_every_line(world, tmp_path, capfd):
    """Without --deep only the first lines' files are opened; --deep finds a broken third line."""
    ann = _copy_data(world, tmp_path)
    rows = _lines(ann)
    (ann.parent / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    data_file = _write(ann.with_name("three.txt"), [*rows, [rows[0][0], "broken.png", rows[0][2]]])
    argv = ["validate", "--action", "evaluate", "-e", str(world[1]),
            f"dataset.test_dataset.data_sources[0].data_file={data_file}"]
    assert _run(capfd, *argv)[0] == 0
    code, err = _run(capfd, *argv, "--deep")
    assert code == 2 and re.search(r"three.txt:3: right image: .*broken.png", err), err


def test_bad_input_on_a_fresh_folder_creates_no_store_and_imports_nothing_heavy(world, tmp_path):
    """Issue 18: a first run on a fresh folder prints only the error line; no MLflow store is created, and
    the answer comes before torch, Lightning or MLflow is imported."""
    results = tmp_path / "fresh"
    code = ("import sys\nfrom stereo.cli import main\nrc = main(sys.argv[1:])\n"
            "heavy = [m for m in ('torch', 'mlflow', 'lightning', 'pytorch_lightning') if m in sys.modules]\n"
            "print('HEAVY', heavy)\nsys.exit(rc)\n")
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, "train", "-e", str(world[1]), f"results_dir={results}",
                           f"dataset.train_dataset.data_sources[0].data_file={tmp_path / 'missing.txt'}"],
                          capture_output=True, text=True, timeout=120, env=env)
    log.info("time to error (fresh interpreter): %.2f s", time.perf_counter() - start)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "missing.txt does not exist" in proc.stderr
    assert "HEAVY []" in proc.stdout
    assert not results.exists()  # no folder, no status.json, no mlflow.db


def test_a_data_error_found_while_running_is_2(world, tmp_path, capfd):
    """A bad file beyond the pre-flight's first lines is found by the dataset check: still exit 2 (by
    type: DataError is bad input), naming file:line."""
    ann = _copy_data(world, tmp_path)
    rows = _lines(ann)
    (ann.parent / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    data_file = _write(ann.with_name("three.txt"), [*rows, [rows[0][0], "broken.png", rows[0][2]]])
    code, err = _run(capfd, "evaluate", "-e", str(world[1]), f"results_dir={tmp_path / 'r'}",
                     f"dataset.test_dataset.data_sources[0].data_file={data_file}")
    assert code == 2, err
    assert re.search(r"three.txt:3: right image: .*broken.png", err.splitlines()[-1]), err


def test_fp16_on_a_cpu_is_bad_input_found_by_the_preflight(world, tmp_path, capfd):
    from stereo.actions.preflight import gpu_visible

    if torch.cuda.is_available() or gpu_visible():
        pytest.skip("fp16 is valid with a GPU")
    results = tmp_path / "fp16"
    code, err = _run(capfd, "train", "-e", str(world[1]), "train.precision=fp16", f"results_dir={results}")
    assert code == 2 and len(err.splitlines()) == 1, err
    assert re.search(r"train.precision: needs a CUDA GPU .*set train.precision=bf16 or fp32", err), err
    assert not results.exists()  # refused before the results folder, status.json or a store was made


def test_a_failure_while_running_is_1(world, capfd):
    nan = {k: (torch.full_like(v, float("nan")) if v.is_floating_point() else v)
           for k, v in create_model("ffs_tiny").state_dict().items()}
    ckpt = save_checkpoint(world[0] / "nan", nan, config=dataclasses.asdict(preset_config("ffs_tiny")))
    code, err = _run(capfd, "inference", "-e", str(world[1]), f"inference.checkpoint={ckpt}")
    assert code == 1 and "predictions are unusable" in err and len(err.splitlines()) == 1


def test_exit_codes_come_from_the_exception_type():
    from stereo.actions.runner import categorize, exit_code
    from stereo.errors import ActionError
    from stereo.config.errors import Problem, SpecError
    from stereo.errors import DataError
    from stereo.errors import BadInputError, exit_code_of
    from stereo.errors import CheckpointFormatError, UnsafeCheckpointError

    assert categorize(FileNotFoundError("x.ckpt")) == ("missing file", 2)
    assert exit_code(FileNotFoundError("x.ckpt")) == 2 and exit_code(PermissionError("x")) == 1
    for exc in (DataError("x"), SpecError([Problem("k", 1, "bad")]), CheckpointFormatError("x"),
                UnsafeCheckpointError("x"), BadInputError("x")):
        assert exit_code_of(exc) == 2 and categorize(exc)[1] == 2, exc
    for exc in (RuntimeError("x"), ValueError("x"), ActionError("train", "runtime error", "x")):
        assert exit_code_of(exc) == 1, exc
    assert exit_code_of(ActionError("train", "bad input", "x", exit_code=2)) == 2
