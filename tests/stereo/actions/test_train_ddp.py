"""DDP with 2 CPU processes over gloo (`train.num_gpus: 2` on a machine without CUDA)."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from stereo.actions.status import read_status

pytestmark = pytest.mark.slow  # a two-process DDP training

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU/gloo path is tested on CPU-only machines")
def test_two_process_ddp_on_cpu_trains_and_validates(tmp_path):
    # Lightning's DDP launcher re-runs this script in the second process, hence a file, not `-c`.
    script = tmp_path / "run_ddp.py"
    script.write_text(textwrap.dedent(f"""
        import dataclasses, json, sys, torch
        torch.set_num_threads(1)
        from stereo.config.load import load_spec
        from stereo.data.synthetic import generate
        from stereo.models import preset_config
        from stereo.actions.train import train

        if __name__ == "__main__":
            root = {str(tmp_path)!r}
            ann = generate(root + "/data", "fsd", n=4, height=64, width=96, max_disparity=24, seed=0)
            split = {{"data_sources": [{{"dataset_name": "FSD", "data_file": str(ann)}}], "batch_size": 1,
                      "workers": 0, "augmentation": {{"crop_size": [64, 96]}}}}
            spec = load_spec({{"results_dir": root + "/results",
                               "dataset": {{"max_disparity": 32, "train_dataset": split, "val_dataset": split}},
                               "model": dataclasses.asdict(preset_config("ffs_tiny")),
                               "train": {{"num_gpus": 2, "num_epochs": 1, "seed": 0}}}})
            result = train(spec, tracker=False)
            print("RESULT", json.dumps({{"step": result.global_step, "epe": result.best_metrics.get("val/epe")}}))
    """))
    proc = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RESULT" in proc.stdout, proc.stdout[-2000:]
    train_dir = tmp_path / "results" / "train"
    # 4 samples over 2 ranks with batch 1: 2 optimizer steps in the epoch
    assert (train_dir / "model_epoch_000_step_00002.ckpt").is_file()
    status = read_status(train_dir)
    assert status[-1]["status"] == "SUCCESS"
    assert sum(1 for line in status if line["status"] == "STARTED") == 1  # rank 1 never wrote status
