"""stereo/data/preflight.py: one data source checked before any heavy work."""
from __future__ import annotations

import pytest

from stereo.errors import DataError
from stereo.data.preflight import check_data_source
from stereo.data.synthetic import generate


def test_counts_the_samples_of_a_good_source(tmp_path):
    ann = generate(tmp_path / "d", "fsd", n=3, height=32, width=64, max_disparity=24, seed=0)
    assert check_data_source(ann, "FSD", need_gt=True) == 3


def test_a_missing_file_named_by_a_line_is_reported_with_its_line(tmp_path):
    ann = generate(tmp_path / "d", "fsd", n=3, height=32, width=64, max_disparity=24, seed=0)
    left = (ann.parent / ann.read_text().splitlines()[1].split()[0])
    left.unlink()
    with pytest.raises(DataError, match=rf"{ann}:2: left image {left} does not exist; fix the path"):
        check_data_source(ann, "FSD", need_gt=True)


def test_a_missing_annotation_file_and_a_file_without_gt(tmp_path):
    with pytest.raises(DataError, match="annotation file .*nope.txt does not exist"):
        check_data_source(tmp_path / "nope.txt", "FSD", need_gt=True)
    ann = generate(tmp_path / "d", "fsd", n=2, height=32, width=64, max_disparity=24, seed=0)
    two = ann.parent / "two.txt"  # relative paths resolve against the annotation file's folder
    two.write_text("".join(" ".join(line.split()[:2]) + "\n" for line in ann.read_text().splitlines()))
    with pytest.raises(DataError, match="2 columns for dataset_name GenericDataset, expected 3"):
        check_data_source(two, "GenericDataset", need_gt=True)  # training needs the disparity column
    assert check_data_source(two, "GenericDataset", need_gt=False) == 2


def test_long_files_are_checked_on_an_even_sample(tmp_path):
    ann = generate(tmp_path / "d", "fsd", n=4, height=32, width=64, max_disparity=24, seed=0)
    lines = ann.read_text().splitlines()
    gone = ann.parent / lines[1].split()[0]
    gone.unlink()
    assert check_data_source(ann, "FSD", need_gt=True, max_checked=2) == 4  # lines 1 and 3 checked
    with pytest.raises(DataError, match=":2: left image"):
        check_data_source(ann, "FSD", need_gt=True, max_checked=4)
