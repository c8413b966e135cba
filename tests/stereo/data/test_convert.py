from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from stereo.config.convert import ConvertConfig
from stereo.data.convert import write_annotation_files as convert
from stereo.data.datasets import get_dataset_class
from stereo.errors import DataError
from stereo.data.synthetic import generate

EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "examples"


def _example(layout: str, data_root: Path, results_dir: Path) -> ConvertConfig:
    """docs/examples/convert_<layout>.yaml, pointed at a generated tree."""
    cfg = OmegaConf.merge(OmegaConf.structured(ConvertConfig), OmegaConf.load(EXAMPLES / f"convert_{layout}.yaml"))
    cfg.data_root, cfg.results_dir = str(data_root), str(results_dir)
    return OmegaConf.to_object(cfg)


def _expected(root: Path, rel_rows):
    return [" ".join(str(root.resolve() / r) for r in row) for row in rel_rows]


@pytest.mark.parametrize("layout,dataset_name", [("middlebury", "Middlebury"), ("eth3d", "Eth3d")])
def test_middlebury_and_eth3d_examples_give_four_column_test_files(tmp_path, layout, dataset_name):
    root = tmp_path / "data"
    generate(root, layout, n=3, height=16, width=32, max_disparity=8)
    result = convert(_example(layout, root, tmp_path / "out"))
    assert result.counts == {"test": 3} and result.columns == 4
    lines = (tmp_path / "out/test.txt").read_text().splitlines()
    if layout == "middlebury":
        rows = [[f"trainingH/scene{i:03d}/{f}" for f in ("im0.png", "im1.png", "disp0GT.pfm", "mask0nocc.png")]
                for i in range(3)]
    else:
        rows = [[f"two_view_training/scene{i:03d}/im0.png", f"two_view_training/scene{i:03d}/im1.png",
                 f"two_view_training_gt/scene{i:03d}/disp0GT.pfm", f"two_view_training_gt/scene{i:03d}/mask0nocc.png"]
                for i in range(3)]
    assert lines == _expected(root, rows)
    assert len(get_dataset_class(dataset_name)(tmp_path / "out/test.txt")) == 3


@pytest.mark.parametrize("layout,left,right,disp", [
    ("kitti2015", "image_2", "image_3", "disp_occ_0"),
    ("kitti2012", "colored_0", "colored_1", "disp_occ"),
])
def test_kitti_examples_split_train_val_deterministically(tmp_path, layout, left, right, disp):
    root = tmp_path / "data"
    generate(root, layout, n=5, height=16, width=32, max_disparity=8)
    cfg = _example(layout, root, tmp_path / "out")
    result = convert(cfg)
    assert result.counts == {"train": 4, "val": 1} and result.columns == 3
    train = (tmp_path / "out/train.txt").read_text().splitlines()
    val = (tmp_path / "out/val.txt").read_text().splitlines()
    every = [[f"training/{d}/{i:06d}_10.png" for d in (left, right, disp)] for i in range(5)]
    assert sorted(train + val) == _expected(root, every)
    # rerun: same split, files overwritten rather than appended
    convert(cfg)
    assert (tmp_path / "out/train.txt").read_text().splitlines() == train
    assert len(get_dataset_class("Kitti")(tmp_path / "out/train.txt")) == 4


def test_seed_changes_the_split(tmp_path):
    root = tmp_path / "data"
    generate(root, "kitti2015", n=8, height=16, width=32, max_disparity=8)
    cfg = _example("kitti2015", root, tmp_path / "a")
    convert(cfg)
    cfg.seed, cfg.results_dir = 7, str(tmp_path / "b")
    convert(cfg)
    assert (tmp_path / "a/val.txt").read_text() != (tmp_path / "b/val.txt").read_text()


def test_missing_derived_file_lists_it_with_its_pattern(tmp_path):
    root = tmp_path / "data"
    generate(root, "kitti2015", n=3, height=16, width=32, max_disparity=8)
    (root / "training/image_3/000001_10.png").unlink()
    with pytest.raises(DataError, match=r"convert\.right_dir_pattern .* 1 missing file\(s\) of 3: "
                                        r".*image_3/000001_10\.png \(from .*image_2/000001_10\.png\)"):
        convert(_example("kitti2015", root, tmp_path / "out"))


def test_paths_with_spaces_are_rejected(tmp_path):
    root = tmp_path / "my data"
    generate(root, "kitti2015", n=1, height=16, width=32, max_disparity=8)
    with pytest.raises(DataError, match="contain spaces"):
        convert(_example("kitti2015", root, tmp_path / "out"))


def test_pattern_list_length_mismatch_and_no_match(tmp_path):
    root = tmp_path / "data"
    generate(root, "kitti2015", n=1, height=16, width=32, max_disparity=8)
    cfg = _example("kitti2015", root, tmp_path / "out")
    cfg.right_dir_pattern = ["/image_3/"]
    with pytest.raises(DataError, match=r"right_dir_pattern has 1 entries but convert\.image_dir_pattern has 2"):
        convert(cfg)
    cfg = _example("kitti2015", root, tmp_path / "out")
    cfg.image_dir_pattern = ["training/", "/image_9/"]
    with pytest.raises(DataError, match="found no file"):
        convert(cfg)


def test_files_directly_in_data_root_are_ignored(tmp_path):
    root = tmp_path / "data"
    generate(root, "eth3d", n=1, height=16, width=32, max_disparity=8)
    (root / "im0.png").write_bytes(b"")  # TAO walks only the sub-directories
    result = convert(_example("eth3d", root, tmp_path / "out"))
    assert result.counts == {"test": 1}


@pytest.mark.parametrize("example,left,right,disp", [
    ("kitti2012_grey", "image_0", "image_1", "disp_occ"),
    ("kitti2012_noc", "colored_0", "colored_1", "disp_noc"),
])
def test_kitti2012_variant_examples_convert_and_load(tmp_path, example, left, right, disp):
    root = tmp_path / "data"
    generate(root, "kitti2012", n=5, height=16, width=32, max_disparity=8)
    result = convert(_example(example, root, tmp_path / "var"))
    assert result.counts == {"train": 4, "val": 1} and result.columns == 3
    every = [[f"training/{d}/{i:06d}_10.png" for d in (left, right, disp)] for i in range(5)]
    lines = (tmp_path / "var/train.txt").read_text().splitlines() + (tmp_path / "var/val.txt").read_text().splitlines()
    assert sorted(lines) == _expected(root, every)

    convert(_example("kitti2012", root, tmp_path / "std"))  # colored_0 / colored_1 / disp_occ
    variant = get_dataset_class("Kitti")(tmp_path / "var/train.txt")
    standard = get_dataset_class("Kitti")(tmp_path / "std/train.txt")
    assert variant.names == standard.names  # same seed, same files: the same split
    for a, b in zip(variant, standard):
        if example == "kitti2012_grey":
            assert torch.equal(a["left"][0], a["left"][1]) and torch.equal(a["left"][1], a["left"][2])
            assert not torch.equal(a["left"], b["left"])  # really the grey pair, not the colour one
            assert torch.equal(a["disp"], b["disp"])
        else:
            assert torch.equal(a["left"], b["left"])
            noc, occ = a["valid"].bool(), b["valid"].bool()
            assert not (noc & ~occ).any() and (occ & ~noc).any()  # occluded pixels dropped, nothing added
            torch.testing.assert_close(a["disp"][noc], b["disp"][noc])


def test_a_run_with_another_split_ratio_removes_the_other_split_files(tmp_path):
    root = tmp_path / "data"
    generate(root, "kitti2015", n=4, height=16, width=32, max_disparity=8)
    cfg = _example("kitti2015", root, tmp_path / "out")
    first = convert(cfg)
    assert first.removed == []
    cfg.split_ratio = 1.0
    result = convert(cfg)
    assert result.removed == [tmp_path / "out/train.txt", tmp_path / "out/val.txt"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["test.txt"]


def test_a_split_that_would_be_empty_is_an_error(tmp_path):
    root = tmp_path / "data"
    generate(root, "kitti2015", n=2, height=16, width=32, max_disparity=8)
    cfg = _example("kitti2015", root, tmp_path / "out")
    cfg.split_ratio = 0.4  # int(2 * 0.4) = 0 training samples
    with pytest.raises(DataError, match=r"0\.4 of 2 samples leaves train\.txt empty .* or 0\.0 to write "
                                        r"everything to test\.txt"):
        convert(cfg)
    assert not (tmp_path / "out").exists()
