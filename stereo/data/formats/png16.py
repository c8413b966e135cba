"""Single-channel 16-bit PNG disparity: KITTI (raw / 256) and CREStereo (raw / 32); raw 0 = no GT.

TAO keeps CREStereo zeros as valid ground truth; here 0 is invalid for both (a zero disparity would be
a point at infinity, which these datasets never contain).
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from stereo.errors import DataError
from stereo.data.formats.images import check_complete, png_header

KITTI_SCALE = 256.0
CRESTEREO_SCALE = 32.0


def read_png16_disparity(path: str | os.PathLike, scale: float) -> np.ndarray:
    """float32 `[H, W]` disparity = raw / scale, with raw 0 -> inf."""
    check_complete(path, "16-bit PNG")
    header = png_header(path)
    if header is not None and header[1] == 3:
        raise DataError(f"{path}: palette (indexed-colour) PNG, not a 16-bit disparity PNG (KITTI /256, "
                        "CREStereo /32); no dataset_name decodes it as disparity (a colourised visual or a "
                        "mask?): export the raw 16-bit disparity")
    raw = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DataError(f"{path}: cannot be decoded as PNG; check that the file is a complete 16-bit PNG")
    if raw.dtype != np.uint16 or raw.ndim != 2:
        kind = f"{raw.dtype} with {1 if raw.ndim == 2 else raw.shape[2]} channel(s)"
        raise DataError(f"{path}: expected a single-channel 16-bit disparity PNG (KITTI /256, CREStereo /32), "
                        f"got {kind}; an 8-bit RGB disparity is the FSD encoding: use dataset_name FSD or "
                        "GenericDataset for it")
    disp = raw.astype(np.float32) / np.float32(scale)
    disp[raw == 0] = np.inf
    return disp


def read_kitti_disparity(path: str | os.PathLike) -> np.ndarray:
    return read_png16_disparity(path, KITTI_SCALE)


def read_crestereo_disparity(path: str | os.PathLike) -> np.ndarray:
    return read_png16_disparity(path, CRESTEREO_SCALE)


def write_png16_disparity(path: str | os.PathLike, disp: np.ndarray, scale: float) -> Path:
    """Encode round(disp * scale) as uint16; non-finite or non-positive disparity is written as 0 (no GT)."""
    disp = np.asarray(disp, dtype=np.float64)
    valid = np.isfinite(disp) & (disp > 0)
    raw = np.zeros(disp.shape, dtype=np.float64)
    raw[valid] = np.round(disp[valid] * scale)
    if raw.max(initial=0) > 65535:
        raise ValueError(f"disparity {disp[valid].max():.2f} does not fit a 16-bit PNG at scale {scale} "
                         f"(max {65535 / scale:.2f})")
    # a tiny positive disparity must not round to the 'no GT' code
    raw[valid & (raw == 0)] = 1
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(os.fspath(path), raw.astype(np.uint16)):
        raise OSError(f"could not write {path}")
    return path
