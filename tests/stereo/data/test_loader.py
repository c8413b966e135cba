import pytest
import torch

from stereo.config.dataset import AugmentationConfig, DataSourceConfig, SplitConfig
from stereo.errors import DataError
from stereo.data.loader import build_dataloader, build_dataset, collate_stereo


def _split(synthetic_tree, *sources, batch_size=2, workers=0, crop=(16, 32)):
    srcs = [DataSourceConfig(dataset_name=name, data_file=str(synthetic_tree(layout))) for layout, name in sources]
    return SplitConfig(data_sources=srcs, batch_size=batch_size, workers=workers,
                       augmentation=AugmentationConfig(crop_size=list(crop)))


def test_sources_are_concatenated_and_val_is_not_augmented(synthetic_tree):
    cfg = _split(synthetic_tree, ("fsd", "FSD"), ("middlebury", "Middlebury"))
    ds = build_dataset(cfg, "val", max_disparity=16)
    assert len(ds) == 6
    item = ds[4]
    assert item["meta"]["name"] == "scene001" and item["meta"]["index"] == 4
    assert item["left"].shape == (3, 32, 64)  # native size: no crop for val
    assert torch.equal(ds[0]["left"], ds[0]["left"])  # no randomness either


def test_train_is_augmented_to_crop_size(synthetic_tree):
    ds = build_dataset(_split(synthetic_tree, ("fsd", "FSD")), "train", max_disparity=16, seed=0)
    assert ds[0]["left"].shape == (3, 16, 32)


def test_empty_or_incomplete_sources_raise_with_the_spec_key(synthetic_tree):
    with pytest.raises(DataError, match=r"dataset\.val_dataset\.data_sources is empty"):
        build_dataset(SplitConfig(), "val", 16)
    cfg = SplitConfig(data_sources=[DataSourceConfig(dataset_name="FSD", data_file="")])
    with pytest.raises(DataError, match=r"data_sources\[0\] needs both"):
        build_dataset(cfg, "test", 16)


def test_collate_pads_different_sizes_as_invalid(synthetic_tree):
    ds = build_dataset(_split(synthetic_tree, ("fsd", "FSD")), "val", 16)
    a, b = ds[0], ds[1]
    b = {k: (v[..., :20, :40] if k != "meta" else dict(v, orig_hw=(20, 40))) for k, v in b.items()}
    batch = collate_stereo([a, b])
    assert batch["left"].shape == (2, 3, 32, 64) and batch["valid"].shape == (2, 1, 32, 64)
    assert batch["valid"][1, :, 20:].sum() == 0 and batch["valid"][1, :, :, 40:].sum() == 0
    assert batch["disp"][1, :, 20:].sum() == 0
    assert [m["orig_hw"] for m in batch["meta"]] == [(32, 64), (20, 40)]
    assert torch.equal(batch["left"][1, :, 25, :40], b["left"][:, 19, :40])  # images replicate the edge


def test_collate_refuses_mixed_gt(synthetic_tree):
    a = build_dataset(_split(synthetic_tree, ("fsd", "FSD")), "val", 16)[0]
    b = {k: v for k, v in a.items() if k not in ("disp", "valid")}
    with pytest.raises(DataError, match="mixes samples with and without ground truth"):
        collate_stereo([a, b])


def _epoch(loader):
    return [(b["left"].clone(), [m["index"] for m in b["meta"]]) for b in loader]


def test_loader_is_reproducible_and_worker_count_independent(synthetic_tree):
    cfg0 = _split(synthetic_tree, ("fsd", "FSD"), ("crestereo", "Crestereo"), workers=0)
    cfg2 = _split(synthetic_tree, ("fsd", "FSD"), ("crestereo", "Crestereo"), workers=2)
    l0, l2 = build_dataloader(cfg0, "train", 16, seed=5), build_dataloader(cfg2, "train", 16, seed=5)
    e0a, e0b = _epoch(l0), _epoch(l0)
    e2a = _epoch(l2)
    assert len(e0a) == 3  # 6 samples, batch 2, drop_last
    assert [i for _, i in e0a] == [i for _, i in e2a]
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(e0a, e2a))
    assert not all(torch.equal(x, y) for (x, _), (y, _) in zip(e0a, e0b))  # a new epoch, new augmentation


def test_val_loader_keeps_order_and_all_samples(synthetic_tree):
    cfg = _split(synthetic_tree, ("kitti2015", "Kitti"), batch_size=2)
    batches = list(build_dataloader(cfg, "val", 16))
    assert [m["name"] for b in batches for m in b["meta"]] == ["000000_10", "000001_10", "000002_10"]


def test_sample_names_are_unique_across_data_sources(synthetic_tree, tmp_path):
    """Two KITTI sources both hold `000000_10` (KITTI 2012 and 2015): every name of the split gets the
    documented `src<k>-` prefix, so predictions_dir lookups and inference outputs cannot collide."""
    kitti15, kitti12 = synthetic_tree("kitti2015"), synthetic_tree("kitti2012")
    alone = build_dataset(SplitConfig(data_sources=[DataSourceConfig("Kitti", str(kitti15))]), "test", 16)
    assert [alone[i]["meta"]["name"] for i in range(len(alone))] == ["000000_10", "000001_10", "000002_10"]
    both = build_dataset(SplitConfig(data_sources=[DataSourceConfig("Kitti", str(kitti15)),
                                                   DataSourceConfig("Kitti", str(kitti12))]), "test", 16)
    names = [both[i]["meta"]["name"] for i in range(len(both))]
    assert names == ["src0-000000_10", "src0-000001_10", "src0-000002_10",
                     "src1-000000_10", "src1-000001_10", "src1-000002_10"]
    assert both.names == names


def test_two_column_files_are_refused_where_ground_truth_is_needed(synthetic_tree):
    """GenericDataset accepts 2 columns only for inference (issue 11: KeyError 'disp' in train)."""
    two = DataSourceConfig("GenericDataset", str(synthetic_tree("generic", columns=2)))
    assert len(build_dataset(SplitConfig(data_sources=[two]), "infer", 16)) == 3
    for split in ("train", "val", "test"):
        with pytest.raises(DataError, match=rf":1: 2 columns for dataset_name GenericDataset, expected 3 .*"
                                            rf"\(the {split} split needs ground truth\)"):
            build_dataset(SplitConfig(data_sources=[two]), split, 16)
