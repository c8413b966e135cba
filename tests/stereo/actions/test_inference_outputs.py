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
from stereo.checkpoints import save_checkpoint


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


def nan_checkpoint(path):
    """Our checkpoint of ffs_tiny with every floating-point tensor NaN: a network that outputs only NaN."""
    state = {k: (torch.full_like(v, float("nan")) if v.is_floating_point() else v)
             for k, v in create_model("ffs_tiny").state_dict().items()}
    return save_checkpoint(path, state, config=dataclasses.asdict(preset_config("ffs_tiny")))


def test_all_nan_predictions_are_a_failure_naming_the_samples(tmp_path):
    from stereo.actions.inference import inference
    from stereo.errors import ActionError
    from stereo.actions.status import read_status

    ann = generate(tmp_path / "data", "kitti2015", n=2, height=40, width=72, max_disparity=20, seed=5)
    split = {"data_sources": [{"dataset_name": "Kitti", "data_file": str(ann)}], "batch_size": 2, "workers": 0}
    raw = {"results_dir": str(tmp_path / "results"), "dataset": {"max_disparity": 32, "infer_dataset": split},
           "model": dataclasses.asdict(preset_config("ffs_tiny")),
           "inference": {"checkpoint": str(nan_checkpoint(tmp_path / "nan")), "save_raw_npy": True}}
    with pytest.raises(ActionError, match=r"2 of 2 predictions are unusable: '000000_10': 2880 of 2880 pixels "
                                          r"are NaN/inf; '000001_10'") as err:
        inference(load_spec(raw), tracker=False)
    assert err.value.exit_code == 1
    out = tmp_path / "results" / "inference"
    assert np.isnan(np.load(out / "000000_10.npy")).all()  # still written, for inspection
    last = read_status(out)[-1]
    assert last["status"] == "FAILURE" and last["kpi"]["num_unusable"] == 2.0
