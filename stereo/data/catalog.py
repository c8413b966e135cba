"""What each `dataset_name` reads, without torch: annotation columns, the disparity decoder, decoding one
annotation line into numpy arrays. The dataset classes (datasets.py) and the pre-flight checks
(stereo.actions.preflight) share it, so a line that passes the pre-flight decodes the same in training.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from stereo.data.annotations import COLUMN_NAMES, AnnotationLine, check_files_exist
from stereo.errors import DataError
from stereo.data.formats.images import read_image, read_image_size
from stereo.data.formats.masks import read_nocc_mask
from stereo.data.formats.pfm import read_pfm, read_pfm_size
from stereo.data.formats.png16 import read_crestereo_disparity, read_kitti_disparity
from stereo.data.formats.rgb_disparity import read_rgb_disparity

#: splits whose samples need ground truth (3 or 4 columns); `infer` also takes 2-column files
GT_SPLITS = ("train", "val", "test")


def read_generic_disparity(path: str | os.PathLike) -> np.ndarray:
    """TAO's generic decoder: `.pfm` as float map, `.png` RGB-encoded (/1000); invalid = inf."""
    suffix = Path(path).suffix.lower()
    if suffix == ".pfm":
        return read_pfm(path)
    if suffix == ".png":
        return read_rgb_disparity(path)
    raise DataError(f"{path}: unsupported disparity extension {suffix!r}; use .pfm or an RGB-encoded .png")


@dataclass(frozen=True)
class SourceFormat:
    """The file conventions of one dataset_name."""
    name: str
    columns: tuple[int, ...]
    read_disparity: Callable[[Path], np.ndarray]


FORMATS: dict[str, SourceFormat] = {f.name.lower(): f for f in (
    SourceFormat("FSD", (3,), read_generic_disparity),
    SourceFormat("IsaacRealDataset", (3,), read_generic_disparity),
    SourceFormat("GenericDataset", (2, 3), read_generic_disparity),
    SourceFormat("Crestereo", (3,), read_crestereo_disparity),
    SourceFormat("Kitti", (3,), read_kitti_disparity),
    SourceFormat("Middlebury", (3, 4), read_generic_disparity),
    SourceFormat("Eth3d", (3, 4), read_generic_disparity),
)}


def source_format(name: str) -> SourceFormat | None:
    return FORMATS.get(str(name).lower())


def split_columns(fmt: SourceFormat, split: str) -> tuple[int, ...]:
    """The column counts `fmt` accepts in `split` (train/val/test need the disparity column)."""
    return tuple(c for c in fmt.columns if c >= 3) if split in GT_SPLITS else fmt.columns


def read_any_size(path: Path) -> tuple[int, int]:
    """(height, width) from a file header: PFM or anything Pillow opens."""
    if path.suffix.lower() == ".pfm":
        return read_pfm_size(path)
    if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
        return read_image_size(path)
    with Image.open(path) as im:
        return im.size[1], im.size[0]


@contextmanager
def reading(line: AnnotationLine, column: int) -> Iterator[None]:
    """Re-raise a failed read of `line.paths[column]` as one DataError that names `file:line`, the column,
    the path and the fix. A file that vanished since the dataset was built is reported as missing."""
    try:
        yield
    except (DataError, OSError) as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        if text.startswith(line.where):
            raise
        check_files_exist(line)  # raises naming file:line if a file of the sample is gone
        path = line.paths[column]
        if str(path) not in text:
            text = f"{path}: {text}"
        if "; " not in text:  # an OSError from the OS carries no fix of ours
            text += "; check that the file is complete and readable (re-copy or re-export it)"
        raise DataError(f"{line.where}: {COLUMN_NAMES[column]}: {text}") from None


def check_shape(line: AnnotationLine, column: int, hw: tuple, left_hw: tuple) -> None:
    if tuple(hw) != tuple(left_hw):
        raise DataError(f"{line.where}: {COLUMN_NAMES[column]} {line.paths[column]} is {hw[0]}x{hw[1]} but the "
                        f"left image {line.paths[0]} is {left_hw[0]}x{left_hw[1]} (HxW); all files of a sample "
                        "must have the same size")


def check_sizes(line: AnnotationLine) -> None:
    """Every file of the line has the left image's size (headers only)."""
    sizes = []
    for column, p in enumerate(line.paths):
        with reading(line, column):
            sizes.append(read_any_size(p))
    for column, hw in enumerate(sizes[1:], start=1):
        check_shape(line, column, hw, sizes[0])


def decode_line(line: AnnotationLine, read_disparity: Callable[[Path], np.ndarray]) -> dict:
    """Decoded, unaugmented sample as numpy `[H,W,3]` images and `[H,W]` disp/valid (with GT)."""
    with reading(line, 0):
        left = read_image(line.paths[0])
    with reading(line, 1):
        right = read_image(line.paths[1])
    sample = {"left": left, "right": right}
    check_shape(line, 1, right.shape[:2], left.shape[:2])
    if len(line.paths) >= 3:
        with reading(line, 2):
            disp = read_disparity(line.paths[2])
        check_shape(line, 2, disp.shape, left.shape[:2])
        valid = np.isfinite(disp)
        if len(line.paths) == 4:
            with reading(line, 3):
                nocc = read_nocc_mask(line.paths[3])
            check_shape(line, 3, nocc.shape, left.shape[:2])
            valid &= nocc
        sample["disp"] = np.where(valid, disp, 0.0).astype(np.float32)
        sample["valid"] = valid.astype(np.float32)
    return sample
