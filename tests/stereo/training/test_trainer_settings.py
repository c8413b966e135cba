import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from stereo.training.lightning_module import metrics_from_rows
from stereo.metrics import StereoMetrics
from stereo.training.callbacks import format_eta
from stereo.training.resume import checkpoint_stem, find_latest, parse_stem, remove_stale_temps
from stereo.training.trainer import trainer_settings


def _train_cfg(**kw):
    base = dict(precision="fp32", num_gpus=1, gpu_ids=[0], num_nodes=1, distributed_strategy="ddp",
                activation_checkpoint=False, clip_grad_norm=0.1, num_epochs=3, max_steps=-1,
                validation_interval=1, log_every_n_steps=10, cudnn=SimpleNamespace(benchmark=False),
                is_dry_run=False)
    base.update(kw)
    return SimpleNamespace(**base)


def test_settings_map_tao_fields_to_lightning():
    s = trainer_settings(_train_cfg(), cuda_available=False)
    assert s["accelerator"] == "cpu" and s["devices"] == 1 and s["strategy"] == "auto"
    assert s["precision"] == "32-true" and s["gradient_clip_val"] == 0.1
    assert s["gradient_clip_algorithm"] == "norm" and s["max_epochs"] == 3
    assert trainer_settings(_train_cfg(clip_grad_norm=0), cuda_available=False)["gradient_clip_val"] is None
    assert trainer_settings(_train_cfg(precision="bf16"), cuda_available=False)["precision"] == "bf16-mixed"
    assert trainer_settings(_train_cfg(precision="fp16"), cuda_available=True)["precision"] == "16-mixed"
    gpu = trainer_settings(_train_cfg(num_gpus=2, gpu_ids=[1, 3]), cuda_available=True)
    assert gpu["devices"] == [1, 3] and type(gpu["strategy"]).__name__ == "DDPStrategy"
    cpu = trainer_settings(_train_cfg(num_gpus=2), cuda_available=False)
    assert cpu["devices"] == 2 and cpu["strategy"].process_group_backend == "gloo"
    dry = trainer_settings(_train_cfg(is_dry_run=True), cuda_available=False)
    assert dry["max_steps"] == 1 and dry["limit_val_batches"] == 1


@pytest.mark.parametrize("kw,match", [
    ({"precision": "fp16"}, "train.precision='fp16' needs a CUDA GPU"),
    ({"precision": "fp8"}, "train.precision='fp8'"),
    ({"num_gpus": 2, "distributed_strategy": "fsdp"}, "fsdp' needs CUDA"),
    ({"clip_grad_norm": -1.0}, "clip_grad_norm"),
])
def test_bad_settings_name_the_key(kw, match):
    with pytest.raises(ValueError, match=match):
        trainer_settings(_train_cfg(**kw), cuda_available=False)


def test_checkpoint_names_and_latest(tmp_path):
    assert checkpoint_stem(3, 120) == "model_epoch_003_step_00120"
    assert parse_stem("model_epoch_003_step_00120") == (3, 120) and parse_stem("dn_model_latest") is None
    assert find_latest(tmp_path) is None
    for stem in ("model_epoch_000_step_00004", "model_epoch_001_step_00008", "model_epoch_000_step_00002"):
        (tmp_path / f"{stem}.ckpt").write_bytes(b"x")
    (tmp_path / ".model_epoch_002_step_00012.ckpt.tmp").write_bytes(b"half")
    assert find_latest(tmp_path).name == "model_epoch_001_step_00008.ckpt"  # no link: the newest file
    (tmp_path / "dn_model_latest.ckpt").symlink_to("model_epoch_000_step_00004.ckpt")
    assert find_latest(tmp_path).name == "model_epoch_001_step_00008.ckpt"  # a stale link loses
    assert [p.name for p in remove_stale_temps(tmp_path)] == [".model_epoch_002_step_00012.ckpt.tmp"]


def test_metrics_from_gathered_rows_equal_the_accumulator():
    g = torch.Generator().manual_seed(0)
    m = StereoMetrics(32)
    for b in range(3):
        gt = torch.rand(2, 1, 8, 12, generator=g) * 30
        pred = gt + torch.randn(2, 1, 8, 12, generator=g) * 3
        valid = (torch.rand(2, 1, 8, 12, generator=g) > 0.3).float()
        m.update(pred, gt, valid, names=[f"{b}_{i}" for i in range(2)])
    expected = m.compute()
    got = metrics_from_rows(m.per_sample(), m.metric_names)
    assert got.keys() == expected.keys()
    for k in expected:
        assert got[k] == pytest.approx(expected[k], rel=1e-9), k


def test_eta_format():
    assert format_eta(59) == "00:59" and format_eta(3725) == "1:02:05" and format_eta(math.inf) == "?"


def test_visualize_side_by_side_and_colormap(tmp_path):
    import cv2

    from stereo.visualize import colorize_disparity, side_by_side, write_png
    disp = np.tile(np.linspace(0, 10, 16, dtype=np.float32), (8, 1))
    disp[0, 0] = np.nan
    rgb = colorize_disparity(disp)
    assert rgb.shape == (8, 16, 3) and rgb.dtype == np.uint8 and (rgb[0, 0] == 0).all()
    assert not np.array_equal(rgb[4, 1], rgb[4, 15])  # a real gradient, not a constant
    left = np.full((8, 16, 3), 128, np.uint8)
    assert side_by_side(left, disp).shape == (8, 32, 3)
    strip = side_by_side(left, disp, gt=disp + 1.0)
    assert strip.shape == (8, 48, 3)
    path = write_png(tmp_path / "v.png", strip)
    assert cv2.imread(str(path))[..., ::-1].tolist() == strip.tolist()
