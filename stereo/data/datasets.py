"""Stereo dataset classes, registered by TAO's `dataset_name` (case-insensitive).

Each class fixes the annotation columns it accepts, how its disparity files are decoded and how a
sample is named in output files. Items follow the ARCHITECTURE.md "Samples" contract: `left`, `right`
float32 `[3,H,W]` 0..255, with GT `disp` `[1,H,W]` (0 where invalid) and `valid` `[1,H,W]`, and `meta`.
"""
from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from stereo.data.annotations import AnnotationLine, check_files_exist, read_annotation_file
from stereo.data.catalog import (  # noqa: F401 (reading, read_any_size: re-exported)
    FORMATS,
    GT_SPLITS,
    check_sizes,
    decode_line,
    read_any_size,
    read_generic_disparity,
    reading,
)
from stereo.errors import DataError

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


class StereoDataset(torch.utils.data.Dataset):
    """Base class: an annotation file's samples, optionally augmented by `transform`."""

    dataset_name: ClassVar[str] = ""
    columns: ClassVar[tuple[int, ...]] = (3,)

    def __init__(self, data_file: str | os.PathLike, transform: Transform | None = None,
                 seed: int | None = None, check_files: bool = True, split: str = "infer"):
        """`seed` makes augmentation of item i reproducible; `check_files` verifies every path and image
        size now, so a bad line fails when the dataset is built rather than mid-epoch; `split` 'train',
        'val' or 'test' requires the disparity column."""
        self.data_file = Path(data_file)
        self.transform = transform
        self.seed = seed
        needs_gt = split in GT_SPLITS
        allowed = tuple(c for c in self.columns if c >= 3) if needs_gt else self.columns
        self.lines = read_annotation_file(self.data_file, allowed, self.dataset_name,
                                          needs=f"the {split} split needs ground truth" if needs_gt else "")
        counts = {len(line.paths) for line in self.lines}
        if 2 in counts and len(counts) > 1:
            bad = next(line for line in self.lines if len(line.paths) != len(self.lines[0].paths))
            raise DataError(f"{bad.where}: {len(bad.paths)} columns but line {self.lines[0].lineno} has "
                            f"{len(self.lines[0].paths)}; a file must not mix samples with and without "
                            "disparity (split it into two files)")
        if check_files:
            for line in self.lines:
                check_files_exist(line)
                check_sizes(line)
        self.names = self._names()

    @staticmethod
    def read_disparity(path: Path) -> np.ndarray:
        return read_generic_disparity(path)

    def sample_name(self, line: AnnotationLine) -> str:
        return line.paths[0].stem

    def _names(self) -> list[str]:
        return [self.sample_name(line) for line in self.lines]

    def __len__(self) -> int:
        return len(self.lines)

    def load(self, index: int) -> dict:
        """Decoded, unaugmented sample as numpy `[H,W,3]` images and `[H,W]` disp/valid."""
        return decode_line(self.lines[index], self.read_disparity)

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

    read_disparity = staticmethod(FORMATS["crestereo"].read_disparity)


@register_dataset
class Kitti(StereoDataset):
    """KITTI 2012/2015: 16-bit PNG / 256, 0 invalid; named by basename (000000_10)."""
    dataset_name = "Kitti"
    columns = (3,)

    read_disparity = staticmethod(FORMATS["kitti"].read_disparity)


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
