"""`kill` (SIGTERM) or a closed terminal (SIGHUP) during `depth_net evaluate` ends it as Ctrl-C does: one
stderr line, exit 128 + the signal, status.json FAILURE "interrupted", the MLflow run KILLED. Before, the
default handler killed the process and left both RUNNING until the next run in that folder."""
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from stereo.actions.status import read_status
from stereo.data.synthetic import generate
from stereo.models import create_model, preset_config
from stereo.checkpoints import save_checkpoint

pytestmark = pytest.mark.slow  # depth_net subprocesses stopped by signals

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def long_evaluation(tmp_path_factory):
    """A spec whose evaluation takes minutes (one pair listed 4000 times): time enough to signal it."""
    root = tmp_path_factory.mktemp("signals")
    ann = generate(root / "data", "fsd", n=1, height=64, width=96, max_disparity=20, seed=0)
    line = Path(ann).read_text().splitlines()[0]
    Path(ann).write_text((line + "\n") * 4000)
    torch.manual_seed(0)
    ckpt = save_checkpoint(root / "m", create_model("ffs_tiny").state_dict(),
                           config=dataclasses.asdict(preset_config("ffs_tiny")))
    split = {"data_sources": [{"dataset_name": "FSD", "data_file": str(ann)}], "batch_size": 1, "workers": 0,
             "augmentation": {"crop_size": [64, 96]}}
    spec = {"model": dataclasses.asdict(preset_config("ffs_tiny")),
            "dataset": {"max_disparity": 32, "test_dataset": split}, "evaluate": {"checkpoint": str(ckpt)}}
    path = root / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_ends_evaluate_recorded_as_interrupted(long_evaluation, tmp_path, spawn, sig):
    results = tmp_path / "results"
    store = tmp_path / "mlflow.db"
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": f"sqlite:///{store}"}
    proc = spawn([sys.executable, "-m", "stereo.cli", "evaluate", "-e", str(long_evaluation),
                  f"results_dir={results}"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    status = results / "evaluate" / "status.json"
    from stereo.tracking import MlflowTracker

    def running():
        if proc.poll() is not None or not store.is_file():
            return proc.poll() is not None
        try:
            tracker = MlflowTracker(f"sqlite:///{store}")
            return bool(tracker.find_runs("depth_net", {"action": "evaluate"}, status="RUNNING"))
        except Exception:  # the store is still being created by the action
            return False

    assert _wait_for(running, 240) and proc.poll() is None, proc.communicate()[1][-3000:]
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("depth_net evaluate: interrupted (" + sig.name + ")"), err
    final = read_status(status)[-1]
    assert final["status"] == "FAILURE" and "interrupted" in final["message"], final

    runs = MlflowTracker(f"sqlite:///{store}").find_runs("depth_net", {"action": "evaluate"})
    assert [r.status for r in runs] == ["KILLED"], [(r.run_id, r.status) for r in runs]
