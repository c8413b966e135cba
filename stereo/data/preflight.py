"""Check one data source before any heavy work: its annotation file exists, has the columns its
dataset class reads, and every file it names exists (what a dataset checks when it is built, done
up front so that a sweep or a run is refused before it starts rather than failing in every trial).

    n = check_data_source("train/annotations.txt", "Kitti", need_gt=True)   # -> number of samples

Very long files are checked on an evenly spaced sample of lines (`max_checked`), so a million-line
annotation file costs seconds, not minutes; the dataset still checks every line when it is built.
"""
from __future__ import annotations

import os

from stereo.data.annotations import check_files_exist, read_annotation_file
from stereo.errors import DataError

MAX_CHECKED = 5000


def check_data_source(data_file: str | os.PathLike, dataset_name: str, *, need_gt: bool,
                      max_checked: int = MAX_CHECKED) -> int:
    """Number of samples in `data_file`; raises DataError naming file:line and the fix."""
    from stereo.data.datasets import get_dataset_class  # the class decides which columns it reads

    cls = get_dataset_class(dataset_name)
    columns = tuple(c for c in cls.columns if c >= 3) if need_gt else tuple(cls.columns)
    if not columns:
        raise DataError(f"dataset_name {dataset_name} reads no ground truth, so it cannot train or validate; "
                        "use a dataset_name whose annotation lines carry a disparity column")
    lines = read_annotation_file(data_file, columns, dataset_name)
    stride = max(1, -(-len(lines) // max(1, int(max_checked))))
    for line in lines[::stride]:
        check_files_exist(line)
    return len(lines)
