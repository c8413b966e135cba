"""FSD / IsaacReal RGB-encoded disparity PNG: d = (R * 255^2 + G * 255 + B) / 1000; 0 = no GT.

The base is 255, not 256 (as the FoundationStereo dataset writes it). A 16-bit or greyscale PNG is a
different encoding and is rejected instead of silently misdecoded (TAO's reader misreads it).
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from stereo.errors import DataError
from stereo.data.formats.images import check_complete, png_header

BASE = 255
DIVISOR = 1000.0
MAX_DISPARITY = (BASE ** 3 - 1) / DIVISOR  # code (254, 254, 254)


def read_rgb_disparity(path: str | os.PathLike) -> np.ndarray:
    """float32 `[H, W]` disparity; code 0 -> inf. Palette and grey PNGs are refused (they hold no RGB
    code; cv2 would expand a palette into colours that decode to nonsense)."""
    check_complete(path, "RGB PNG")
    header = png_header(path)
    if header is not None and header[1] in (0, 3, 4):
        depth, colour = header
        kind = "palette (indexed-colour)" if colour == 3 else f"{depth}-bit grey"
        if colour != 3 and depth == 16:
            who = ("this is the KITTI (/256) or CREStereo (/32) encoding: use dataset_name Kitti or "
                   "Crestereo")
        else:
            who = ("no dataset_name decodes it as disparity (it looks like a colourised visual or a mask; a "
                   "Middlebury/Eth3d non-occlusion mask belongs in the 4th column): save the disparity as "
                   ".pfm (GenericDataset, Middlebury) or as a 16-bit PNG x256 (Kitti)")
        raise DataError(f"{path}: {kind} PNG, not the RGB disparity encoding of FSD/IsaacRealDataset/"
                        f"GenericDataset (8-bit RGB, d = (R*255^2 + G*255 + B)/1000); {who}")
    raw = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DataError(f"{path}: cannot be decoded as PNG; check that the file is a complete RGB PNG")
    if raw.dtype != np.uint8 or raw.ndim != 3 or raw.shape[2] not in (3, 4):
        kind = f"{raw.dtype} with {1 if raw.ndim == 2 else raw.shape[2]} channel(s)"
        raise DataError(f"{path}: the RGB disparity encoding (FSD, IsaacRealDataset, GenericDataset .png) needs "
                        f"an 8-bit 3-channel PNG, got {kind}; a 16-bit single-channel disparity is KITTI (/256) "
                        "or CREStereo (/32): use dataset_name Kitti or Crestereo, or convert it to .pfm")
    bgr = raw[..., :3].astype(np.int64)
    code = bgr[..., 2] * BASE * BASE + bgr[..., 1] * BASE + bgr[..., 0]
    disp = (code / DIVISOR).astype(np.float32)
    disp[code == 0] = np.inf
    return disp


def encode_rgb_disparity(disp: np.ndarray) -> np.ndarray:
    """uint8 `[H, W, 3]` RGB codes of round(disp * 1000); non-finite or non-positive -> 0 (no GT)."""
    disp = np.asarray(disp, dtype=np.float64)
    valid = np.isfinite(disp) & (disp > 0)
    code = np.zeros(disp.shape, dtype=np.int64)
    code[valid] = np.maximum(np.round(disp[valid] * DIVISOR), 1).astype(np.int64)
    if code.max(initial=0) >= BASE ** 3:
        raise ValueError(f"disparity {disp[valid].max():.3f} exceeds the RGB encoding's maximum {MAX_DISPARITY:.3f}")
    rgb = np.stack([code // (BASE * BASE), (code // BASE) % BASE, code % BASE], axis=-1)
    return rgb.astype(np.uint8)


def write_rgb_disparity(path: str | os.PathLike, disp: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = encode_rgb_disparity(disp)
    if not cv2.imwrite(os.fspath(path), rgb[..., ::-1]):
        raise OSError(f"could not write {path}")
    return path
