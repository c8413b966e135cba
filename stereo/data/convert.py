"""`convert`: build train/val/test annotation files from a dataset folder (TAO's pattern semantics).

Left images are the files under the immediate sub-directories of `data_root` whose path contains every
`image_dir_pattern` substring and ends with `image_extension`. For each left path the right / disparity /
mask paths are derived by replacing `image_dir_pattern[i]` with `X_dir_pattern[i]` for every i, then
the trailing `image_extension` with `depth_extension` / `nocc_extension`.

Where TAO is fragile, this is strict: the walk is sorted and the shuffle seeded (same files, same
split), files are overwritten (TAO appends) and split files an earlier run left behind are removed,
every derived file must exist, no split may be empty, and paths with spaces are rejected because the
annotation format is space-separated.

`depth_net convert` runs this through the action runner (stereo.actions.convert): status.json,
experiment.yaml and MLflow. This module only reads the dataset folder and writes the annotation files.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from stereo.atomic_io import atomic_path
from stereo.config.convert import ConvertConfig
from stereo.errors import DataError

_SHOW = 5  # how many offending paths an error lists
SPLITS = ("train", "val", "test")  # <results_dir>/<split>.txt


@dataclass
class ConvertResult:
    files: dict[str, Path] = field(default_factory=dict)  # split -> annotation file
    counts: dict[str, int] = field(default_factory=dict)  # split -> samples
    columns: int = 0
    removed: list[Path] = field(default_factory=list)  # split files of an earlier run that this one replaced


def find_left_images(cfg: ConvertConfig) -> list[str]:
    """Sorted absolute paths of the left images (files directly in data_root are ignored, as in TAO)."""
    root = Path(cfg.data_root)
    if not root.is_dir():
        raise DataError(f"convert.data_root {cfg.data_root!r} is not a directory; point it at the dataset root")
    check_ext = len(cfg.image_extension) > 1  # TAO ignores one-character extensions
    found = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        for dirpath, dirnames, filenames in os.walk(sub):
            dirnames.sort()
            for name in filenames:
                path = os.path.abspath(os.path.join(dirpath, name))
                if check_ext and not path.endswith(cfg.image_extension):
                    continue
                if all(pattern in path for pattern in cfg.image_dir_pattern):
                    found.append(path)
    return sorted(found)


def _derive(left: str, cfg: ConvertConfig, patterns: list[str], new_ext: str | None, key: str) -> str:
    out = left
    for old, new in zip(cfg.image_dir_pattern, patterns):
        out = out.replace(old, new)
    if new_ext is not None and len(cfg.image_extension) > 1 and out.endswith(cfg.image_extension):
        out = out[: len(out) - len(cfg.image_extension)] + new_ext
    if out == left:
        raise DataError(f"convert.{key} {list(patterns)} leaves left image {left} unchanged; the patterns must "
                        f"turn convert.image_dir_pattern {list(cfg.image_dir_pattern)} into a different path")
    return out


def _columns(cfg: ConvertConfig) -> list[tuple[str, list[str], str | None]]:
    """The derived columns in file order: (spec key, patterns, replacement extension)."""
    n = len(cfg.image_dir_pattern)
    cols = []
    for key, patterns, ext in (("right_dir_pattern", cfg.right_dir_pattern, None),
                               ("depth_dir_pattern", cfg.depth_dir_pattern, cfg.depth_extension),
                               ("nocc_dir_pattern", cfg.nocc_dir_pattern, cfg.nocc_extension)):
        if not patterns:
            continue
        if len(patterns) != n:
            raise DataError(f"convert.{key} has {len(patterns)} entries but convert.image_dir_pattern has {n}; "
                            "give one replacement per image_dir_pattern entry (repeat an entry to keep it)")
        cols.append((key, list(patterns), ext))
    keys = [c[0] for c in cols]
    if cols and keys[0] != "right_dir_pattern":
        raise DataError("convert.right_dir_pattern is empty but disparity/mask patterns are set; annotation "
                        "lines are 'left right [disparity [mask]]', so set right_dir_pattern")
    if "nocc_dir_pattern" in keys and "depth_dir_pattern" not in keys:
        raise DataError("convert.nocc_dir_pattern is set without depth_dir_pattern; a mask column needs a "
                        "disparity column before it")
    return cols


def build_lines(cfg: ConvertConfig) -> list[list[str]]:
    """One row of paths per left image (sorted by left path); every derived file is checked."""
    if not cfg.image_dir_pattern:
        raise DataError("convert.image_dir_pattern is empty; give substrings that select left images, e.g. "
                        "['image_2'] for KITTI 2015 or ['/im0.'] for Middlebury")
    cols = _columns(cfg)
    lefts = find_left_images(cfg)
    if not lefts:
        raise DataError(f"convert found no file under the sub-directories of {cfg.data_root} containing all of "
                        f"{list(cfg.image_dir_pattern)} and ending with {cfg.image_extension!r}; check "
                        "image_dir_pattern and image_extension")
    rows = [[left] + [_derive(left, cfg, pats, ext, key) for key, pats, ext in cols] for left in lefts]
    for c, (key, _, _) in enumerate(cols, start=1):
        missing = [(row[0], row[c]) for row in rows if not os.path.isfile(row[c])]
        if missing:
            shown = "; ".join(f"{m} (from {left})" for left, m in missing[:_SHOW])
            raise DataError(f"convert.{key} {getattr(cfg, key)} produced {len(missing)} missing file(s) of "
                            f"{len(rows)}: {shown}; fix the pattern or the extension")
    spaced = [p for row in rows for p in row if " " in p]
    if spaced:
        raise DataError(f"{len(spaced)} path(s) contain spaces, e.g. {spaced[0]!r}; annotation files are "
                        "space-separated: rename the folders (or symlink the dataset to a path without spaces)")
    return rows


def split_rows(rows: list[list[str]], split_ratio: float, seed: int) -> dict[str, list[list[str]]]:
    """TAO's rule: ratio 0 or 1 -> everything in test; else a seeded shuffle, int(N * ratio) to train and
    the rest to val. A split that would be empty is an error (an empty annotation file trains nothing)."""
    if not 0.0 <= split_ratio <= 1.0:
        raise DataError(f"convert.split_ratio must be within [0, 1], got {split_ratio}")
    rows = list(rows)
    if split_ratio in (0.0, 1.0):
        return {"test": rows}  # nothing to split: keep the sorted order (TAO shuffles it needlessly)
    random.Random(seed).shuffle(rows)
    n_train = int(len(rows) * split_ratio)
    if n_train == 0 or n_train == len(rows):
        empty = "train.txt" if n_train == 0 else "val.txt"
        raise DataError(f"convert.split_ratio {split_ratio} of {len(rows)} samples leaves {empty} empty "
                        f"(train gets int({len(rows)} * {split_ratio}) = {n_train}); choose a split_ratio that "
                        "leaves at least one sample on each side, or 0.0 to write everything to test.txt")
    return {"train": rows[:n_train], "val": rows[n_train:]}


def write_annotation_files(cfg: ConvertConfig) -> ConvertResult:
    """Write `<results_dir>/{train,val}.txt` or `test.txt` (overwriting, atomically), then remove the split
    files of SPLITS this run does not produce, so no stale split of an earlier run is left next to them."""
    if not cfg.results_dir:
        raise DataError("convert.results_dir is empty; set the folder where annotation files are written")
    rows = build_lines(cfg)
    parts = split_rows(rows, cfg.split_ratio, cfg.seed)
    out_dir = Path(cfg.results_dir).expanduser().resolve()
    result = ConvertResult(columns=len(rows[0]))
    for split, part in parts.items():
        target = out_dir / f"{split}.txt"
        with atomic_path(target) as tmp:
            tmp.write_text("".join(" ".join(row) + "\n" for row in part))
        result.files[split] = target
        result.counts[split] = len(part)
    for split in SPLITS:
        stale = out_dir / f"{split}.txt"
        if split not in parts and stale.is_file():
            stale.unlink()
            result.removed.append(stale)
    return result
