"""Stereo dataset classes, registered by TAO's `dataset_name` (case-insensitive).

Each class fixes the annotation columns it accepts, how its disparity files are decoded and how a
sample is named in output files. Items follow the ARCHITECTURE.md "Samples" contract: `left`, `right`
float32 `[3,H,W]` 0..255, with GT `disp` `[1,H,W]` (0 where invalid) and `valid` `[1,H,W]`, and `meta`.
"""
from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from PIL import Image

from stereo.data.annotations import COLUMN_NAMES, AnnotationLine, check_files_exist, read_annotation_file
from stereo.data.errors import DataError
from stereo.data.formats.images import read_image, read_image_size
from stereo.data.formats.masks import read_nocc_mask
from stereo.data.formats.pfm import read_pfm, read_pfm_size
from stereo.data.formats.png16 import read_crestereo_disparity, read_kitti_disparity
from stereo.data.formats.rgb_disparity import read_rgb_disparity

#: transform(sample of numpy arrays, rng) -> sample; see stereo.data.transforms.StereoAugmentor
Transform = Callable[[dict, np.random.Generator], dict]

_REGISTRY: dict[str, type[StereoDataset]] = {}


def register_dataset(cls: type[StereoDataset]) -> type[StereoDataset]:
    key = cls.dataset_name.lower()
    if key in _REGISTRY:
        raise ValueError(f"dataset_name {cls.dataset_name!r} is registered twice ({_REGISTRY[key].__name__}, "
                         f"{cls.__name__}); pick a new name")
    _REGISTRY[key] = cls
    return cls


def list_datasets() -> list[str]:
    return [cls.dataset_name for cls in _REGISTRY.values()]


def get_dataset_class(name: str) -> type[StereoDataset]:
    cls = _REGISTRY.get(str(name).lower())
    if cls is None:
        valid = list_datasets()
        close = difflib.get_close_matches(str(name).lower(), [v.lower() for v in valid], n=1)
        hint = f"; did you mean {valid[[v.lower() for v in valid].index(close[0])]!r}?" if close else ""
        raise DataError(f"unknown dataset_name {name!r}; valid (case-insensitive): {', '.join(valid)}{hint}")
    return cls


def read_generic_disparity(path: str | os.PathLike) -> np.ndarray:
    """TAO's generic decoder: `.pfm` as float map, `.png` RGB-encoded (/1000); invalid = inf."""
    suffix = Path(path).suffix.lower()
    if suffix == ".pfm":
        return read_pfm(path)
    if suffix == ".png":
        return read_rgb_disparity(path)
    raise DataError(f"{path}: unsupported disparity extension {suffix!r}; use .pfm or an RGB-encoded .png")


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


def _check_shape(line: AnnotationLine, column: int, hw: tuple, left_hw: tuple) -> None:
    if tuple(hw) != tuple(left_hw):
        raise DataError(f"{line.where}: {COLUMN_NAMES[column]} {line.paths[column]} is {hw[0]}x{hw[1]} but the "
                        f"left image {line.paths[0]} is {left_hw[0]}x{left_hw[1]} (HxW); all files of a sample "
                        "must have the same size")


class StereoDataset(torch.utils.data.Dataset):
    """Base class: an annotation file's samples, optionally augmented by `transform`."""

    dataset_name: ClassVar[str] = ""
    columns: ClassVar[tuple[int, ...]] = (3,)

    def __init__(self, data_file: str | os.PathLike, transform: Transform | None = None,
                 seed: int | None = None, check_files: bool = True):
        """`seed` makes augmentation of item i reproducible; `check_files` verifies every path and image
        size now, so a bad line fails when the dataset is built rather than mid-epoch."""
        self.data_file = Path(data_file)
        self.transform = transform
        self.seed = seed
        self.lines = read_annotation_file(self.data_file, self.columns, self.dataset_name)
        counts = {len(line.paths) for line in self.lines}
        if 2 in counts and len(counts) > 1:
            bad = next(line for line in self.lines if len(line.paths) != len(self.lines[0].paths))
            raise DataError(f"{bad.where}: {len(bad.paths)} columns but line {self.lines[0].lineno} has "
                            f"{len(self.lines[0].paths)}; a file must not mix samples with and without "
                            "disparity (split it into two files)")
        if check_files:
            for line in self.lines:
                check_files_exist(line)
                self._check_sizes(line)
        self.names = self._names()

    @staticmethod
    def read_disparity(path: Path) -> np.ndarray:
        return read_generic_disparity(path)

    def sample_name(self, line: AnnotationLine) -> str:
        return line.paths[0].stem

    def _names(self) -> list[str]:
        return [self.sample_name(line) for line in self.lines]

    def _check_sizes(self, line: AnnotationLine) -> None:
        sizes = []
        for column, p in enumerate(line.paths):
            with reading(line, column):
                sizes.append(read_any_size(p))
        for column, hw in enumerate(sizes[1:], start=1):
            _check_shape(line, column, hw, sizes[0])

    def __len__(self) -> int:
        return len(self.lines)

    def load(self, index: int) -> dict:
        """Decoded, unaugmented sample as numpy `[H,W,3]` images and `[H,W]` disp/valid."""
        line = self.lines[index]
        with reading(line, 0):
            left = read_image(line.paths[0])
        with reading(line, 1):
            right = read_image(line.paths[1])
        sample = {"left": left, "right": right}
        _check_shape(line, 1, right.shape[:2], left.shape[:2])
        if len(line.paths) >= 3:
            with reading(line, 2):
                disp = self.read_disparity(line.paths[2])
            _check_shape(line, 2, disp.shape, left.shape[:2])
            valid = np.isfinite(disp)
            if len(line.paths) == 4:
                with reading(line, 3):
                    nocc = read_nocc_mask(line.paths[3])
                _check_shape(line, 3, nocc.shape, left.shape[:2])
                valid &= nocc
            sample["disp"] = np.where(valid, disp, 0.0).astype(np.float32)
            sample["valid"] = valid.astype(np.float32)
        return sample

    def __getitem__(self, key: int | tuple) -> dict:
        """`key` is an index, `(index, epoch_seed)` (stereo.data.loader.SeededSampler) or
        `(index, epoch_seed, stream)` (one stream per data source of a concatenated split)."""
        index, epoch_seed, *stream = key if isinstance(key, tuple) else (key, None)
        if index < 0:
            index += len(self)
        sample = self.load(index)
        if self.transform is not None:
            # one generator per (seed, stream, index): the same crop whatever the worker count or order
            base = epoch_seed if epoch_seed is not None else self.seed
            entropy = None if base is None else [int(base), *map(int, stream), index]
            sample = self.transform(sample, np.random.default_rng(entropy))
        h, w = sample["left"].shape[:2]
        out = {k: torch.from_numpy(np.ascontiguousarray(v.transpose(2, 0, 1) if v.ndim == 3 else v[None]))
               for k, v in sample.items()}
        out["meta"] = {"name": self.names[index], "left_path": str(self.lines[index].paths[0]),
                       "index": index, "orig_hw": (h, w), "dataset": self.dataset_name}
        return out


@register_dataset
class FSD(StereoDataset):
    """FoundationStereo synthetic data: RGB-encoded disparity PNG (or PFM)."""
    dataset_name = "FSD"
    columns = (3,)

    def _names(self) -> list[str]:
        # the relative left path is unique where basenames are not (FSD repeats 0000.jpg per scene)
        lefts = [line.paths[0] for line in self.lines]
        root = Path(os.path.commonpath([p.parent for p in lefts]))
        return [str(p.relative_to(root).with_suffix("")).replace(os.sep, "_").replace("/", "_")
                for p in lefts]


@register_dataset
class IsaacRealDataset(FSD):
    dataset_name = "IsaacRealDataset"


@register_dataset
class GenericDataset(FSD):
    """2 columns (inference, no GT) or 3 (generic disparity decoder)."""
    dataset_name = "GenericDataset"
    columns = (2, 3)


@register_dataset
class Crestereo(StereoDataset):
    """CREStereo: 16-bit PNG / 32; 0 is invalid (TAO counts it as valid)."""
    dataset_name = "Crestereo"
    columns = (3,)

    @staticmethod
    def read_disparity(path: Path) -> np.ndarray:
        return read_crestereo_disparity(path)


@register_dataset
class Kitti(StereoDataset):
    """KITTI 2012/2015: 16-bit PNG / 256, 0 invalid; named by basename (000000_10)."""
    dataset_name = "Kitti"
    columns = (3,)

    @staticmethod
    def read_disparity(path: Path) -> np.ndarray:
        return read_kitti_disparity(path)


@register_dataset
class Middlebury(StereoDataset):
    """Middlebury: disp0GT.pfm (inf invalid) and optional mask0nocc.png; named by scene folder."""
    dataset_name = "Middlebury"
    columns = (3, 4)

    def sample_name(self, line: AnnotationLine) -> str:
        return line.paths[0].parent.name


@register_dataset
class Eth3d(Middlebury):
    dataset_name = "Eth3d"
