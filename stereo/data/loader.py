"""Datasets and DataLoaders for one split of `dataset.*` (train / val / test / infer).

Only the train split is augmented. Reproducibility does not depend on the worker count: the sampler
draws one seed per epoch from its own generator and hands `(index, epoch_seed)` to the dataset, which
seeds a Generator per item from that pair.
"""
from __future__ import annotations

import bisect
import random
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from stereo.config.dataset import SplitConfig
from stereo.data.datasets import StereoDataset, get_dataset_class
from stereo.errors import DataError
from stereo.data.transforms import StereoAugmentor

SPLITS = ("train", "val", "test", "infer")


class StereoConcatDataset(torch.utils.data.Dataset):
    """Several data_sources of one split, end to end; accepts `index` or `(index, epoch_seed)` keys.

    Sample names (output files, `predictions_dir` lookups) are unique across the split: when a name occurs
    in two data sources (two GenericDataset folders with `im0`, KITTI 2012 and 2015 `000000_10`), every
    sample of the split is named `src<k>-<name>`, k = its data source's position in `data_sources`
    (0-based); see docs/data.md. Within one source a repeated name is the dataset class's business.
    """

    def __init__(self, datasets: Sequence[StereoDataset]):
        self.datasets = list(datasets)
        self.offsets = np.cumsum([0] + [len(d) for d in self.datasets]).tolist()
        self.names = unique_names([list(d.names) for d in self.datasets])

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, None)
        if index < 0:
            index += len(self)
        part = bisect.bisect_right(self.offsets, index) - 1
        local = index - self.offsets[part]
        # the source number is part of the seed, so two sources never share an augmentation stream
        item = self.datasets[part][(local, seed, part)]
        item["meta"]["index"] = index
        item["meta"]["name"] = self.names[index]
        return item


def unique_names(per_source: Sequence[Sequence[str]]) -> list[str]:
    """Concatenated sample names; all prefixed `src<k>-` when two sources share a name (see above)."""
    owner: dict[str, int] = {}
    clash = False
    for k, names in enumerate(per_source):
        for name in names:
            if owner.setdefault(name, k) != k:
                clash = True
    if not clash:
        return [n for names in per_source for n in names]
    return [f"src{k}-{n}" for k, names in enumerate(per_source) for n in names]


def build_dataset(split_cfg: SplitConfig, split: str, max_disparity: int,
                  seed: int | None = None) -> StereoConcatDataset:
    """All data_sources of a split, concatenated; `train` gets a StereoAugmentor."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not split_cfg.data_sources:
        raise DataError(f"dataset.{split}_dataset.data_sources is empty; add entries "
                        "{dataset_name: ..., data_file: ...}")
    transform = StereoAugmentor(split_cfg.augmentation, max_disparity) if split == "train" else None
    parts = []
    for i, src in enumerate(split_cfg.data_sources):
        if not src.dataset_name or not src.data_file:
            raise DataError(f"dataset.{split}_dataset.data_sources[{i}] needs both dataset_name and data_file, "
                            f"got dataset_name={src.dataset_name!r} data_file={src.data_file!r}")
        cls = get_dataset_class(src.dataset_name)
        parts.append(cls(src.data_file, transform=transform, seed=seed, split=split))
    return StereoConcatDataset(parts)


class SeededSampler(torch.utils.data.Sampler):
    """Yields `(index, epoch_seed)`; a fresh epoch seed (and order, when shuffling) every epoch."""

    def __init__(self, length: int, shuffle: bool, seed: int | None = None):
        self.length = length
        self.shuffle = shuffle
        self.generator = torch.Generator()
        self.generator.manual_seed(seed if seed is not None else int(torch.empty((), dtype=torch.int64).random_()))

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch_seed = int(torch.randint(0, 2 ** 62, (), generator=self.generator))
        order = (torch.randperm(self.length, generator=self.generator).tolist() if self.shuffle
                 else range(self.length))
        for i in order:
            yield (int(i), epoch_seed)


def seed_worker(worker_id: int) -> None:
    """Seed the global RNGs of a worker (for any third-party randomness; ours uses explicit Generators)."""
    seed = torch.initial_seed() % 2 ** 32
    np.random.seed(seed)
    random.seed(seed)


def _pad_hw(t: torch.Tensor, h: int, w: int, mode: str) -> torch.Tensor:
    ph, pw = h - t.shape[-2], w - t.shape[-1]
    if ph == 0 and pw == 0:
        return t
    if mode == "replicate":
        return F.pad(t[None], (0, pw, 0, ph), mode="replicate")[0]
    return F.pad(t, (0, pw, 0, ph), value=0.0)


def collate_stereo(items: list[dict]) -> dict:
    """Stack samples; different sizes are padded bottom/right to the largest (images replicate the edge,
    `disp`/`valid` 0 = invalid); each `meta['orig_hw']` keeps the unpadded size. `meta` becomes a list."""
    has_gt = {("disp" in it) for it in items}
    if len(has_gt) > 1:
        raise DataError("a batch mixes samples with and without ground truth; put data_sources without "
                        "disparity (2-column files) in a split of their own")
    h = max(it["left"].shape[-2] for it in items)
    w = max(it["left"].shape[-1] for it in items)
    out = {"left": torch.stack([_pad_hw(it["left"], h, w, "replicate") for it in items]),
           "right": torch.stack([_pad_hw(it["right"], h, w, "replicate") for it in items])}
    if has_gt == {True}:
        out["disp"] = torch.stack([_pad_hw(it["disp"], h, w, "zeros") for it in items])
        out["valid"] = torch.stack([_pad_hw(it["valid"], h, w, "zeros") for it in items])
    out["meta"] = [it["meta"] for it in items]
    return out


def build_dataloader(split_cfg: SplitConfig, split: str, max_disparity: int, seed: int | None = None,
                     shuffle: bool | None = None, drop_last: bool | None = None
                     ) -> torch.utils.data.DataLoader:
    """DataLoader over build_dataset(...); train shuffles and drops the last partial batch by default."""
    dataset = build_dataset(split_cfg, split, max_disparity, seed=seed)
    is_train = split == "train"
    sampler = SeededSampler(len(dataset), shuffle=is_train if shuffle is None else shuffle, seed=seed)
    return torch.utils.data.DataLoader(
        dataset, batch_size=split_cfg.batch_size, sampler=sampler, num_workers=split_cfg.workers,
        collate_fn=collate_stereo, pin_memory=bool(split_cfg.pin_memory and torch.cuda.is_available()),
        drop_last=is_train if drop_last is None else drop_last, worker_init_fn=seed_worker)
