"""Calibration stereo pairs for int8 quantization: found in a folder, fitted to the graph, fed to ONNX Runtime.

`dataset.quant_calibration_dataset.images_dir` is searched recursively; an image is a left view when its
right partner exists under one of these names (the layouts of the datasets we read):

    .../left/...    <-> .../right/...       (FSD, generic: a `left` folder anywhere in the path)
    .../image_2/... <-> .../image_3/...     (KITTI 2015)   .../colored_0/... <-> .../colored_1/... (KITTI 2012)
    .../im0.png     <-> .../im1.png         (Middlebury, ETH3D)
    ..._left.png    <-> ..._right.png       (CREStereo)

Anything with `disp` in its name (disparity maps next to the images) is skipped. :func:`find_pairs` is
torch-free, so the pre-flight can count pairs before any heavy import.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_FOLDER_PAIRS = (("left", "right"), ("image_2", "image_3"), ("colored_0", "colored_1"))
_STEM_PAIRS = (("im0", "im1"),)
_SUFFIX_PAIRS = (("_left", "_right"),)


def _partner(path: Path, root: Path) -> Path | None:
    rel = path.relative_to(root)
    parts = list(rel.parts)
    for left, right in _FOLDER_PAIRS:
        for i, part in enumerate(parts[:-1]):
            if part == left:
                candidate = root.joinpath(*parts[:i], right, *parts[i + 1:])
                if candidate.is_file():
                    return candidate
    stem, suffix = path.stem, path.suffix
    for left, right in _STEM_PAIRS:
        if stem == left and (candidate := path.with_name(right + suffix)).is_file():
            return candidate
    for left, right in _SUFFIX_PAIRS:
        if stem.endswith(left) and (candidate := path.with_name(stem[: -len(left)] + right + suffix)).is_file():
            return candidate
    return None


def find_pairs(images_dir: str | os.PathLike, limit: int | None = None) -> list[tuple[Path, Path]]:
    """(left, right) image paths under `images_dir`, sorted by the left path; at most `limit` of them."""
    root = Path(images_dir).expanduser()
    pairs: list[tuple[Path, Path]] = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        if "disp" in path.name.lower():
            continue
        right = _partner(path, root)
        if right is not None:
            pairs.append((path, right))
            if limit is not None and len(pairs) >= limit:
                break
    return pairs


def no_pairs_reason(images_dir: str | os.PathLike) -> str:
    """Why a folder gave no pair (for the one-line error)."""
    root = Path(images_dir).expanduser()
    images = [p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        return f"holds no {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} image"
    return (f"holds {len(images)} image(s) but no stereo pair (e.g. {images[0].relative_to(root)} has no right "
            "view under any of the names: left/ -> right/, image_2/ -> image_3/, im0 -> im1, *_left -> *_right)")


def load_pair(left: Path, right: Path, hw: tuple[int, int]) -> tuple[Any, Any, Any]:
    """(left, right, fit): the pair as float32 [1,3,H,W] RGB 0..255 tensors fitted to `hw` (pad, or shrink
    keeping the aspect ratio then pad: stereo.deploy.engine_io), the way deploy evaluate feeds a graph."""
    import torch

    from stereo.data.formats.images import read_image
    from stereo.deploy.engine_io import fit_images, plan_fit

    a, b = read_image(left), read_image(right)
    if a.shape != b.shape:
        raise ValueError(f"{left} is {a.shape[0]}x{a.shape[1]} but its right view {right} is "
                         f"{b.shape[0]}x{b.shape[1]}; a stereo pair must have one size")
    fit = plan_fit(a.shape[:2], hw)
    tensors = [fit_images(torch.from_numpy(x).permute(2, 0, 1).contiguous(), fit)[None] for x in (a, b)]
    return tensors[0], tensors[1], fit


class PairFeeds:
    """The calibration pairs as ONNX Runtime feeds (`{'left_image': ..., 'right_image': ...}`, batch 1),
    loaded once: an `onnxruntime.quantization.CalibrationDataReader` over them is :meth:`reader`."""

    def __init__(self, pairs: Sequence[tuple[Path, Path]], hw: tuple[int, int]):
        from stereo.deploy.runtime import INPUT_NAMES

        if not pairs:
            raise ValueError("no calibration pairs given")
        self.pairs, self.hw = list(pairs), tuple(hw)
        self.loaded = [load_pair(left, right, self.hw) for left, right in self.pairs]  # (left, right, fit)
        self.feeds = [{INPUT_NAMES[0]: a.numpy(), INPUT_NAMES[1]: b.numpy()} for a, b, _ in self.loaded]

    def __len__(self) -> int:
        return len(self.feeds)

    def reader(self) -> Any:
        """A fresh CalibrationDataReader that yields every feed once."""
        from onnxruntime.quantization import CalibrationDataReader

        feeds = self.feeds

        class _Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self._it: Iterator[dict] = iter(feeds)

            def get_next(self) -> dict | None:
                return next(self._it, None)

            def rewind(self) -> None:
                self._it = iter(feeds)

        return _Reader()
