"""Middlebury / ETH3D non-occlusion masks (`mask0nocc.png`): grey value 255 = usable GT, anything else not.

Middlebury stores these as palette PNGs; the palette is applied (index -> grey value) before comparing
with 255, never the raw palette index. 1-bit masks (mode "1") read as white = 255, black = 0. Colour masks
use their first (red) channel, as TAO does.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from stereo.errors import DataError

NOCC_VALUE = 255
OCCLUDED_VALUE = 128  # Middlebury's code for occluded pixels; any value != 255 is treated alike


def read_nocc_mask(path: str | os.PathLike) -> np.ndarray:
    """bool `[H, W]`: True where the pixel is non-occluded (grey value 255)."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("P", "PA"):
                im = im.convert("RGB")
            elif im.mode == "1":  # numpy would give bool, and True == 255 is False: white must be 255
                im = im.convert("L")
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                raise DataError(f"{path}: 16-bit/float non-occlusion masks are not supported (mode {im.mode}); "
                                "save the mask as 8-bit PNG with 255 = non-occluded")
            grey = np.asarray(im)
    except (OSError, SyntaxError) as exc:
        raise DataError(f"{path}: not a readable mask image ({exc}); check that the file is a complete PNG") \
            from None
    if grey.ndim == 3:
        grey = grey[..., 0]
    return grey == NOCC_VALUE


def write_nocc_mask(path: str | os.PathLike, nocc: np.ndarray, palette: bool = False) -> Path:
    """255 where `nocc`, 128 elsewhere; `palette` writes a Middlebury-style palette PNG whose index of
    255 is *not* 255 (so a reader that skipped the palette would get it wrong)."""
    nocc = np.asarray(nocc, dtype=bool)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if palette:
        idx = np.where(nocc, 1, 0).astype(np.uint8)
        im = Image.fromarray(idx, mode="P")
        pal = [OCCLUDED_VALUE] * 3 + [NOCC_VALUE] * 3 + [0] * (3 * 254)
        im.putpalette(pal)
    else:
        im = Image.fromarray(np.where(nocc, NOCC_VALUE, OCCLUDED_VALUE).astype(np.uint8), mode="L")
    im.save(path)
    return path
