"""Annotation files: one sample per line, space-separated `left right [disparity [nocc_mask]]`.

Blank lines and `#` comments are skipped; relative paths resolve against the annotation file's folder
(so a dataset folder can be moved with its annotation file). Every error names `file:line`.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stereo.errors import DataError

COLUMN_NAMES = ("left image", "right image", "disparity", "non-occlusion mask")


@dataclass(frozen=True)
class AnnotationLine:
    file: Path
    lineno: int
    paths: tuple[Path, ...]

    @property
    def where(self) -> str:
        return f"{self.file}:{self.lineno}"


def _columns_phrase(allowed: Sequence[int]) -> str:
    parts = [f"{n} ({' '.join(c.split()[0] for c in COLUMN_NAMES[:n])})" for n in sorted(allowed)]
    return " or ".join(parts)


def read_annotation_file(path: str | os.PathLike, allowed_columns: Sequence[int],
                         dataset_name: str = "", needs: str = "") -> list[AnnotationLine]:
    """Parse and check the column count of every line; paths are returned absolute but not yet checked.
    `needs` says why only `allowed_columns` fit (e.g. 'the train split needs ground truth')."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"annotation file {path} is a directory; set data_file to the annotation file "
                        "(one 'left right [disparity [mask]]' line per sample), e.g. written by `depth_net convert`")
    if not path.is_file():
        raise DataError(f"annotation file {path} does not exist; set data_file to an existing file "
                        "(write one with `depth_net convert` or stereo.data.synthetic)")
    base = path.resolve().parent
    who = f" for dataset_name {dataset_name}" if dataset_name else ""
    lines: list[AnnotationLine] = []
    try:
        text_lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text annotation file ({exc.reason} at byte {exc.start}); set data_file "
                        "to the .txt file listing 'left right [disparity [mask]]' paths") from None
    except OSError as exc:
        raise DataError(f"annotation file {path} cannot be read ({exc.strerror or exc}); fix its "
                        "permissions") from None
    for lineno, text in enumerate(text_lines, start=1):
        text = text.strip()
        if not text or text.startswith("#"):
            continue
        cols = text.split()
        if len(cols) not in allowed_columns:
            why = f" ({needs})" if needs else ""
            raise DataError(f"{path}:{lineno}: {len(cols)} columns{who}, expected "
                            f"{_columns_phrase(allowed_columns)}{why} space-separated paths (paths with "
                            "spaces are not supported: rename them)")
        lines.append(AnnotationLine(path, lineno, tuple(base / Path(c) for c in cols)))
    if not lines:
        raise DataError(f"annotation file {path} has no samples (only blank or # lines); add lines "
                        f"'{' '.join(c.split()[0] for c in COLUMN_NAMES[:max(allowed_columns)])}'")
    return lines


def check_files_exist(line: AnnotationLine) -> None:
    for kind, p in zip(COLUMN_NAMES, line.paths):
        if not p.is_file():
            raise DataError(f"{line.where}: {kind} {p} does not exist; fix the path (relative paths resolve "
                            f"against {line.file.resolve().parent})")
        if not os.access(p, os.R_OK):
            raise DataError(f"{line.where}: {kind} {p} is not readable; fix its permissions")
