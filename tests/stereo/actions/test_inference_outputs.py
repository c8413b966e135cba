"""inference writes a coloured PNG, a side-by-side and raw maps per sample, named by meta['name']."""
import dataclasses

import cv2
import numpy as np
import pytest
import torch

from stereo.config.load import load_spec
from stereo.data.formats.pfm import read_pfm
from stereo.data.synthetic import generate
from stereo.models import create_model, preset_config
from stereo.models.checkpoints import save_checkpoint


@pytest.mark.parametrize("layout,dataset_name,expect", [
    ("crestereo", "Crestereo", {"000000_left", "000001_left"}),  # TAO's inference raises for Crestereo
    ("kitti2015", "Kitti", {"000000_10", "000001_10"}),
])
def test_inference_files_exist_and_decode(tmp_path, layout, dataset_name, expect):
    from stereo.actions.inference import inference
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "m", create_model("ffs_tiny").state_dict(),
                           config=dataclasses.asdict(preset_config("ffs_tiny")))
    ann = generate(tmp_path / "data", layout, n=2, height=40, width=72, max_disparity=20, seed=5)
    split = {"data_sources": [{"dataset_name": dataset_name, "data_file": str(ann)}], "batch_size": 2,
             "workers": 0}
    raw = {"results_dir": str(tmp_path / "results"), "dataset": {"max_disparity": 32, "infer_dataset": split},
           "model": dataclasses.asdict(preset_config("ffs_tiny")),
           "inference": {"checkpoint": str(ckpt), "save_raw_pfm": True}}
    result = inference(load_spec(raw), tracker=False)
    assert set(result.outputs) == expect
    out = tmp_path / "results" / "inference"
    for name in expect:
        assert cv2.imread(str(out / f"{name}.png")).shape == (40, 72, 3)
        assert cv2.imread(str(out / f"{name}_vis.png")).shape == (40, 216, 3)  # left | pred | error
        disp = read_pfm(out / f"{name}.pfm")
        assert disp.shape == (40, 72) and np.isfinite(disp).all()
        assert not (out / f"{name}.npy").exists()
