import shutil

import numpy as np
import pytest
import torch

from stereo.data.datasets import get_dataset_class, list_datasets
from stereo.errors import DataError
from stereo.data.formats.images import write_image
from stereo.data.synthetic import make_scene

H, W, MAX_DISP = 32, 64, 16  # the sizes conftest.synthetic_tree writes (checked below)

CASES = [  # (layout, dataset_name as a user might spell it, expected name of sample 1)
    ("fsd", "FSD", "000001"),
    ("fsd", "isaacrealdataset", "000001"),
    ("crestereo", "Crestereo", "000001_left"),
    ("kitti2015", "KITTI", "000001_10"),
    ("kitti2012", "kitti", "000001_10"),
    ("middlebury", "Middlebury", "scene001"),
    ("eth3d", "ETH3D", "scene001"),
    ("generic", "GenericDataset", "000001"),
]


def test_registry_lists_tao_names():
    assert set(list_datasets()) == {"FSD", "IsaacRealDataset", "Crestereo", "Middlebury", "Eth3d", "Kitti",
                                    "GenericDataset"}


def test_unknown_name_lists_valid_and_suggests():
    with pytest.raises(DataError, match=r"unknown dataset_name 'Midlebury'.*Kitti.*did you mean 'Middlebury'"):
        get_dataset_class("Midlebury")


@pytest.mark.parametrize("layout,name,expected", CASES)
def test_each_class_reads_its_layout(synthetic_tree, layout, name, expected):
    assert (synthetic_tree.height, synthetic_tree.width, synthetic_tree.max_disparity) == (H, W, MAX_DISP)
    ds = get_dataset_class(name)(synthetic_tree(layout))
    assert len(ds) == 3
    item = ds[1]
    assert item["left"].shape == item["right"].shape == (3, H, W)
    assert item["left"].dtype == torch.float32 and 0 <= item["left"].min() and item["left"].max() <= 255
    assert item["disp"].shape == item["valid"].shape == (1, H, W)
    assert torch.all(item["disp"][item["valid"] == 0] == 0)
    assert 0 < item["disp"][item["valid"] > 0].min() and item["disp"].max() < MAX_DISP
    assert item["meta"]["name"] == expected and item["meta"]["orig_hw"] == (H, W)
    assert len(set(ds.names)) == 3


def test_gt_decodes_to_the_generated_scene(synthetic_tree):
    """Middlebury PFM (both byte orders) + mask: exact disparity, nocc mask applied."""
    ds = get_dataset_class("Middlebury")(synthetic_tree("middlebury"))
    for i in range(2):
        scene = make_scene(H, W, MAX_DISP, np.random.default_rng([7, i]))
        item = ds[i]
        np.testing.assert_array_equal(item["valid"][0].numpy() > 0, scene.nocc)
        np.testing.assert_array_equal(item["disp"][0].numpy(), np.where(scene.nocc, scene.disp, 0))


def test_kitti_gt_within_encoding_precision(synthetic_tree):
    item = get_dataset_class("Kitti")(synthetic_tree("kitti2015"))[0]
    scene = make_scene(H, W, MAX_DISP, np.random.default_rng([7, 0]))
    assert np.abs(item["disp"][0].numpy() - scene.disp).max() <= 0.5 / 256 + 1e-5


def test_generic_two_columns_has_no_gt(synthetic_tree):
    item = get_dataset_class("GenericDataset")(synthetic_tree("generic", columns=2))[0]
    assert set(item) == {"left", "right", "meta"}


def test_eth3d_greyscale_images_are_tiled(synthetic_tree):
    left = get_dataset_class("Eth3d")(synthetic_tree("eth3d"))[0]["left"]
    assert torch.equal(left[0], left[1]) and torch.equal(left[1], left[2])


def test_kitti_rejects_a_mask_column(synthetic_tree):
    with pytest.raises(DataError, match=r"middlebury\.txt:1: 4 columns for dataset_name Kitti"):
        get_dataset_class("Kitti")(synthetic_tree("middlebury"))


def _copy_tree(src_ann, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(src_ann.parent, dst)
    return dst / src_ann.name


def test_missing_file_fails_when_built_with_file_line(synthetic_tree, tmp_path):
    ann = _copy_tree(synthetic_tree("fsd"), tmp_path)
    (ann.parent / "fsd/right/rgb/000002.png").unlink()
    with pytest.raises(DataError, match=r"fsd\.txt:3: right image .*000002\.png does not exist"):
        get_dataset_class("FSD")(ann)


def test_size_mismatch_fails_when_built_with_file_line(synthetic_tree, tmp_path):
    ann = _copy_tree(synthetic_tree("kitti2015"), tmp_path)
    write_image(ann.parent / "training/image_3/000001_10.png", np.zeros((H, W + 2, 3), np.uint8))
    with pytest.raises(DataError, match=rf"kitti2015\.txt:2: right image .* is {H}x{W + 2} but the left"):
        get_dataset_class("Kitti")(ann)


@pytest.mark.parametrize("layout, dataset, broken, content, message", [
    ("crestereo", "Crestereo", "crestereo/tree/000000_left.png", b"garbage",
     r"crestereo\.txt:1: left image: .*000000_left\.png: not a readable image .*; check that the file is a "
     r"complete PNG/JPEG"),
    ("middlebury", "Middlebury", "trainingH/scene001/disp0GT.pfm", b"P6\n4 4\n255\n",
     r"middlebury\.txt:2: disparity: .*scene001/disp0GT\.pfm: PFM magic is b'P6'.*this is not a PFM file"),
], ids=["unreadable_image", "corrupt_pfm_header"])
def test_unreadable_file_fails_when_built_with_file_line(synthetic_tree, tmp_path, layout, dataset, broken,
                                                         content, message):
    ann = _copy_tree(synthetic_tree(layout), tmp_path)
    (ann.parent / broken).write_bytes(content)
    with pytest.raises(DataError, match=message):
        get_dataset_class(dataset)(ann)


def _truncate(path, keep=0.3):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])  # the header (size) survives, the pixels do not


@pytest.mark.parametrize("layout,name,rel,line,column,fix", [
    ("kitti2015", "Kitti", "training/image_3/000001_10.png", 2, "right image", "complete PNG/JPEG"),
    ("kitti2015", "Kitti", "training/disp_occ_0/000002_10.png", 3, "disparity", "complete 16-bit PNG"),
    ("middlebury", "Middlebury", "trainingH/scene000/disp0GT.pfm", 1, "disparity", "re-export it"),
    ("middlebury", "Middlebury", "trainingH/scene001/mask0nocc.png", 2, "non-occlusion mask", "complete PNG"),
])
def test_file_truncated_after_its_header_fails_at_read_time_with_file_line(synthetic_tree, tmp_path, layout,
                                                                          name, rel, line, column, fix):
    ann = _copy_tree(synthetic_tree(layout), tmp_path)
    _truncate(ann.parent / rel)
    ds = get_dataset_class(name)(ann)  # the header is intact, so building succeeds
    with pytest.raises(DataError) as info:
        ds[line - 1]
    message = str(info.value)
    assert message.startswith(f"{ann}:{line}: {column}: {ann.parent.resolve() / rel}: ")
    assert fix in message and "\n" not in message


def test_file_removed_after_build_is_reported_missing_with_file_line(synthetic_tree, tmp_path):
    ann = _copy_tree(synthetic_tree("fsd"), tmp_path)
    ds = get_dataset_class("FSD")(ann)
    (ann.parent / "fsd/left/rgb/000001.png").unlink()
    with pytest.raises(DataError, match=r"fsd\.txt:2: left image .*000001\.png does not exist; fix the path"):
        ds[1]


def test_mask_of_another_size_fails_at_read_time_with_file_line(synthetic_tree, tmp_path):
    from stereo.data.formats.masks import write_nocc_mask
    ann = _copy_tree(synthetic_tree("eth3d"), tmp_path)
    ds = get_dataset_class("Eth3d")(ann, check_files=False)
    write_nocc_mask(ann.parent / "two_view_training_gt/scene000/mask0nocc.png", np.ones((H, W + 1), bool))
    with pytest.raises(DataError, match=rf"eth3d\.txt:1: non-occlusion mask .* is {H}x{W + 1} but the left "
                                        rf"image .* is {H}x{W}"):
        ds[0]


def test_augmentation_is_reproducible_per_seed(synthetic_tree):
    from stereo.config.dataset import AugmentationConfig
    from stereo.data.transforms import StereoAugmentor
    aug = StereoAugmentor(AugmentationConfig(crop_size=[16, 32]), MAX_DISP)
    a = get_dataset_class("FSD")(synthetic_tree("fsd"), transform=aug, seed=3)
    b = get_dataset_class("FSD")(synthetic_tree("fsd"), transform=aug, seed=3)
    assert torch.equal(a[0]["left"], b[0]["left"]) and torch.equal(a[0]["disp"], b[0]["disp"])
    assert not torch.equal(a[(0, 1)]["left"], a[(0, 2)]["left"])  # another epoch seed, another sample
